//! The element-wise and reduction kernels against the CPU reference (`wgtrain::cpu`, f64
//! accumulation): `column_sum`, `bias_relu` (forward and ReLU backward), `gather_normalize`
//! and `sgd_update`, over seeded random inputs, row counts past llvmpipe's 65,535-iteration
//! loop cap and grids past 65,535 workgroups. Outputs are poisoned with NaN first, so an
//! unwritten element fails. (Split from `kernel_parity.rs`.)

use crate::common;

use common::{assert_close, gpu, integers, record, uniform, with_outliers};
use wgtrain::cpu;
use wgtrain::gpu::kernels::matmul::BatchDim;
use wgtrain::gpu::kernels::sgd_update::{SgdTable, member_settings};
use wgtrain::gpu::kernels::{
    self, StepRecord, bias_relu, column_sum, gather_normalize, sgd_update,
};
use wgtrain::gpu::{GpuTensor, View};
use wgtrain::optim::SgdConfig;
use wgtrain::step::{MEMBER_FIRST, MemberStep};

/// Issue 10 item 2: `column_sum` over more than 65,535 rows was cut short by llvmpipe's
/// loop cap. 70,000 rows (and a minibatch of 70,001 of at most 140,000, whose last chunk
/// is skipped) against the f64 reference; ones give exactly M.
#[test]
fn regression_loop_cap_column_sum_past_65535_rows() {
    let (g, kn) = gpu();
    for (m_max, batch, seed) in [(70_000, 70_000, 21), (140_000, 70_001, 22)] {
        let n = 3;
        let mut x = with_outliers(seed, m_max * n);
        x[..n].fill(1.0);
        let ones = vec![1.0; m_max * n];
        for (what, data) in [("random", &x), ("ones", &ones)] {
            let tx = GpuTensor::upload(g, "x", data, &[m_max, n]).unwrap();
            let out = GpuTensor::poisoned(g, "out", &[n]).unwrap();
            let d = column_sum::dispatch(
                g,
                kn,
                "t",
                m_max,
                n,
                BatchDim::M,
                (1, 0, 0),
                tx.view(),
                out.view(),
            )
            .unwrap();
            kernels::run(g, kn, &[d], record(batch), 1).unwrap();
            let got = out.read(g).unwrap();
            let want = cpu::column_sum(&data[..batch * n], batch, n);
            if what == "ones" {
                assert_eq!(got, vec![batch as f32; n], "ones over {batch} rows");
            }
            assert_close(
                &format!("column_sum {what} {batch} of {m_max} rows"),
                &got,
                &want,
                1e-2,
                1e-4,
            );
        }
    }
}

#[test]
fn column_sum_matches_reference() {
    let (g, kn) = gpu();
    for (m, n, seed) in [
        (1, 1, 1),
        (64, 10, 2),
        (61, 257, 3),
        (1000, 7, 4),
        (3, 65, 5),
    ] {
        let x = with_outliers(seed, m * n);
        let tx = GpuTensor::upload(g, "x", &x, &[m, n]).unwrap();
        let out = GpuTensor::poisoned(g, "out", &[n]).unwrap();
        let one = (1, 0, 0);
        let d = column_sum::dispatch(g, kn, "t", m, n, BatchDim::None, one, tx.view(), out.view())
            .unwrap();
        kernels::run(g, kn, &[d], record(m), 1).unwrap();
        assert_close(
            &format!("column_sum {m}x{n}"),
            &out.read(g).unwrap(),
            &cpu::column_sum(&x, m, n),
            1e-3,
            1e-4,
        );
    }
}

#[test]
fn bias_relu_forward_and_relu_backward_match_reference() {
    let (g, kn) = gpu();
    for (m, n, relu) in [
        (1, 1, true),
        (7, 61, true),
        (64, 256, false),
        (3, 1757, true),
    ] {
        let y = uniform(m as u64, m * n, -1.0, 1.0);
        let bias = uniform(n as u64, n, -1.0, 1.0);
        let ty = GpuTensor::upload(g, "y", &y, &[m, n]).unwrap();
        let tb = GpuTensor::upload(g, "bias", &bias, &[n]).unwrap();
        let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
        let d =
            bias_relu::forward(g, kn, "t", m, n, relu, tb.view(), ty.view(), dummy.view()).unwrap();
        kernels::run(g, kn, &[d], record(m), 1).unwrap();
        let mut want = y.clone();
        cpu::bias_relu_forward(&mut want, &bias, n, relu);
        assert_close("bias_relu_forward", &ty.read(g).unwrap(), &want, 0.0, 0.0);

        let dy = uniform(9, m * n, -1.0, 1.0);
        let tdy = GpuTensor::upload(g, "dy", &dy, &[m, n]).unwrap();
        let th = GpuTensor::upload(g, "h", &y, &[m, n]).unwrap();
        let tdx = GpuTensor::poisoned(g, "dx", &[m, n]).unwrap();
        let d =
            bias_relu::relu_backward(g, kn, "t", m, n, th.view(), tdy.view(), tdx.view()).unwrap();
        kernels::run(g, kn, &[d], record(m), 1).unwrap();
        assert_close(
            "relu_backward",
            &tdx.read(g).unwrap(),
            &cpu::relu_backward(&dy, &y),
            0.0,
            0.0,
        );
    }
}

fn u32_buffer(values: &[u32]) -> wgpu::Buffer {
    let g = &gpu().0;
    let buf = g
        .storage_buffer(
            "u32",
            (values.len() * 4) as u64,
            wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        )
        .unwrap();
    g.queue.write_buffer(&buf, 0, bytemuck::cast_slice(values));
    buf
}

fn check_gather(
    n: usize,
    features: usize,
    offset: usize,
    batch: usize,
    seed: u64,
    mean: f32,
    std: f32,
) {
    let (g, kn) = gpu();
    let pixels: Vec<u8> = integers(seed, n * features, 256)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let labels = integers(seed + 1, n, 10);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.reverse();
    order.rotate_left(seed as usize % n);
    let mut packed = pixels.clone();
    packed.resize(pixels.len().next_multiple_of(4), 0);
    let pix = u32_buffer(bytemuck::cast_slice(&packed));
    let lab = u32_buffer(&labels);
    let ord = u32_buffer(&order);
    let x = GpuTensor::poisoned(g, "x", &[batch, features]).unwrap();
    let y = u32_buffer(&vec![u32::MAX; batch]);
    let bufs = gather_normalize::GatherNormalizeBuffers {
        pixels: &pix,
        labels: &lab,
        order: &ord,
        x: &x.buffer,
        y: &y,
    };
    let d = gather_normalize::dispatch(g, kn, "t", bufs, features, batch, mean, std).unwrap();
    assert!(
        d.grid
            .iter()
            .all(|&v| v <= g.limits.max_compute_workgroups_per_dimension)
    );
    kernels::run(
        g,
        kn,
        &[d],
        StepRecord {
            offset: offset as u32,
            batch: batch as u32,
            ..Default::default()
        },
        1,
    )
    .unwrap();
    let (want_x, want_y) =
        cpu::gather_normalize(&pixels, &labels, features, &order, offset, batch, mean, std);
    assert_close(
        &format!("gather x n={n} I={features}"),
        &x.read(g).unwrap(),
        &want_x,
        1e-6,
        1e-6,
    );
    let got_y: Vec<u32> = bytemuck::cast_slice(
        &wgtrain::gpu::tensor::read_buffer(g, "y", &y, 0, (batch * 4) as u64).unwrap(),
    )
    .to_vec();
    assert_eq!(got_y, want_y);
}

#[test]
fn gather_normalize_matches_reference() {
    // Odd feature counts straddle the 4-pixel words of the packed dataset.
    check_gather(100, 13, 0, 100, 1, 0.0, 1.0);
    check_gather(100, 13, 37, 1, 2, 0.1307, 0.3081);
    check_gather(50, 784, 10, 33, 3, 0.0, 1.0);
    check_gather(9, 1, 2, 7, 4, 0.5, 2.0);
}

/// A full-batch gather of 60,000 samples of 300 values needs 70,313 workgroups: the grid
/// must fold into y and every element must still be written.
#[test]
fn regression_gather_past_65535_workgroups_folds_the_grid() {
    let g = &gpu().0;
    let groups = (60_000u64 * 300).div_ceil(gather_normalize::ELEMENTS_PER_WORKGROUP);
    assert!(groups > u64::from(g.limits.max_compute_workgroups_per_dimension));
    check_gather(60_000, 300, 0, 60_000, 5, 0.0, 1.0);
}

fn check_sgd(
    len: usize,
    cfg: &SgdConfig,
    first: bool,
    ranges: &[(usize, usize)],
    halted: bool,
    seed: u64,
) {
    let (g, kn) = gpu();
    let p = uniform(seed, len, -1.0, 1.0);
    let grad = uniform(seed + 1, len, -1.0, 1.0);
    let v = uniform(seed + 2, len, -1.0, 1.0);
    let tp = GpuTensor::upload(g, "p", &p, &[len]).unwrap();
    let tg = GpuTensor::upload(g, "g", &grad, &[len]).unwrap();
    let tv = GpuTensor::upload(g, "v", &v, &[len]).unwrap();
    // The SGD table of one member (issue 22: the settings, learning rate and first-step
    // flag reach the kernel through it, no longer through a uniform and the step record):
    // the no-decay ranges, the member's settings, one step. The ranges apply only to a
    // member that does not decay its biases, so the settings say so (the reference below
    // leaves the ranges undecayed).
    let layout = SgdTable::new(ranges.len(), 1, 1);
    let mut table: Vec<u32> = ranges
        .iter()
        .flat_map(|&(s, e)| [s as u32, e as u32])
        .collect();
    table.extend(member_settings(&SgdConfig {
        decay_bias: false,
        ..cfg.clone()
    }));
    let lr = 0.05;
    let step = MemberStep {
        lr,
        flags: if first { MEMBER_FIRST } else { 0 },
        scale: 1.0,
    };
    table.extend(bytemuck::cast_slice::<MemberStep, u32>(&[step]));
    assert_eq!(table.len(), layout.words());
    let nd = u32_buffer(&table);
    let st = u32_buffer(&[f32::from(u8::from(halted)).to_bits(), 0]);
    let bufs = sgd_update::SgdUpdateBuffers {
        params: tp.view(),
        grads: tg.view(),
        velocity: tv.view(),
        table: View::whole(&nd),
        status: View::whole(&st),
    };
    let stride = len.next_multiple_of(4);
    let d = sgd_update::dispatch(g, kn, "t", bufs, (len, stride), &layout, 0).unwrap();
    kernels::run(g, kn, &[d], StepRecord::default(), 1).unwrap();
    let (mut wp, mut wv) = (p.clone(), v.clone());
    if !halted {
        cpu::sgd_update(&mut wp, &grad, &mut wv, cfg, lr, first, ranges);
    }
    assert_close(
        &format!("sgd params {cfg:?} first={first}"),
        &tp.read(g).unwrap(),
        &wp,
        1e-7,
        1e-6,
    );
    assert_close(
        &format!("sgd velocity {cfg:?} first={first}"),
        &tv.read(g).unwrap(),
        &wv,
        1e-7,
        1e-6,
    );
}

#[test]
fn sgd_update_matches_reference_for_every_option() {
    let base = SgdConfig {
        weight_decay: 0.01,
        ..SgdConfig::default()
    };
    let configs = [
        base.clone(),
        SgdConfig {
            momentum: 0.9,
            ..base.clone()
        },
        SgdConfig {
            momentum: 0.9,
            dampening: 0.3,
            ..base.clone()
        },
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            ..base.clone()
        },
        SgdConfig {
            momentum: 0.5,
            decoupled_weight_decay: true,
            ..base.clone()
        },
    ];
    for (i, cfg) in configs.iter().enumerate() {
        for first in [true, false] {
            check_sgd(1, cfg, first, &[], false, i as u64);
            check_sgd(1000, cfg, first, &[(10, 20), (500, 700)], false, i as u64);
        }
    }
}

#[test]
fn sgd_update_leaves_parameters_alone_after_a_non_finite_loss() {
    check_sgd(
        300,
        &SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
        false,
        &[],
        true,
        3,
    );
}

/// 16.8 M parameters (a 4096-wide, 4096-deep layer): every element updated, the tail
/// past the last full workgroup included.
#[test]
fn sgd_update_covers_sixteen_million_parameters() {
    check_sgd(
        65_536 * 256 + 77,
        &SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
        false,
        &[],
        false,
        4,
    );
}
