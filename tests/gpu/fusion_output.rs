//! The fused output layer (`Fusions::output_layer`): `softmax_cross_entropy` computing the
//! logits `H · Wᵀ + bias` itself instead of a separate forward matmul launch.
//!
//! The fused kernel sums each logit as every matmul variant does (one fma chain over k
//! ascending from zero, then the bias), so the claim tested is bit-identity: logits,
//! dlogits, per-row and per-step sums and the fused bias gradient against each matmul
//! variant the device runs followed by the unfused launch, on ragged shapes (rows not a
//! multiple of the 256-wide workgroup, hidden widths not a multiple of 4, class counts not
//! a multiple of 4, a partial last minibatch through the step record), plus the CPU
//! reference (f64) within float tolerance. With members (issue 22: every fusion serves
//! every K): K members' hidden activations and output layers in one launch, each member's
//! outputs those of its own launch bit for bit, the gaps between members untouched, up to
//! a grid past 65,535 workgroups. Then whole epochs of the engine with the fusion and
//! without: the same parameters, per-step sums and evaluation, bit for bit, and the
//! dispatch counts (8 and 9 for one hidden layer; 9 again past the size limit).

use crate::common;

use common::{assert_close, gpu, integers, mnist, record, uniform, with_outliers};
use wgtrain::cpu;
use wgtrain::engine::{Engine, EvalSet};
use wgtrain::gpu::GpuTensor;
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, EpilogueOperands, MatmulLaunch, MatmulSpec, MatmulVariant,
};
use wgtrain::gpu::kernels::softmax_cross_entropy::{LossMembers, METRICS_HEADER};
use wgtrain::gpu::kernels::{self, softmax_cross_entropy as sce};
use wgtrain::gpu::{Fusions, View};
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::{RunConfig, train};

/// Everything one loss launch writes, read back: the first `rows` rows only (the rest of
/// each buffer is never written for a partial minibatch).
#[derive(Debug, PartialEq)]
struct LossOutputs {
    logits: Vec<u32>,
    dlogits: Vec<u32>,
    rows: Vec<u32>,
    metrics: Vec<u32>,
    dbias: Vec<u32>,
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn from_bits(v: &[u32]) -> Vec<f32> {
    v.iter().map(|&x| f32::from_bits(x)).collect()
}

/// One shape: minibatches of up to `max_batch` rows (buffers sized for it), this one of
/// `rows`, hidden width `width`, `classes` classes.
struct Shape {
    max_batch: usize,
    rows: usize,
    width: usize,
    classes: usize,
    seed: u64,
}

impl Shape {
    /// Where the bias starts in the output layer's parameter range (the flat buffer's
    /// 64-float alignment).
    fn bias_at(&self) -> usize {
        (self.classes * self.width).next_multiple_of(64)
    }

    /// H `[max_batch, width]`: ReLU outputs (about half zeros, a few large values).
    fn hidden(&self) -> Vec<f32> {
        with_outliers(self.seed, self.max_batch * self.width)
            .into_iter()
            .map(|v| v.max(0.0))
            .collect()
    }

    /// The output layer's range of the flat buffer: W `[C, width]`, zero padding, bias `[C]`.
    fn params(&self) -> Vec<f32> {
        let mut p = vec![0.0; self.bias_at() + self.classes.next_multiple_of(64)];
        let w = uniform(self.seed + 100, self.classes * self.width, -0.3, 0.3);
        p[..w.len()].copy_from_slice(&w);
        let b = uniform(self.seed + 200, self.classes, -1.0, 1.0);
        p[self.bias_at()..self.bias_at() + self.classes].copy_from_slice(&b);
        p
    }

    fn labels(&self) -> Vec<u32> {
        integers(self.seed, self.max_batch, self.classes as u32)
    }
}

/// Runs the loss launch on `sh`: fused (`variant` None), or `variant`'s forward matmul
/// then the unfused launch. Outputs poisoned with NaN first.
fn run_loss(sh: &Shape, variant: Option<MatmulVariant>) -> LossOutputs {
    let (g, kn) = gpu();
    let (b, c) = (sh.max_batch, sh.classes);
    let th = GpuTensor::upload(g, "hidden", &sh.hidden(), &[b, sh.width]).unwrap();
    let params = sh.params();
    let tp = GpuTensor::upload(g, "params", &params, &[params.len()]).unwrap();
    let ty = GpuTensor::upload(g, "labels", bytemuck::cast_slice(&sh.labels()), &[b]).unwrap();
    let tl = GpuTensor::poisoned(g, "logits", &[b, c]).unwrap();
    let td = GpuTensor::poisoned(g, "dlogits", &[b, c]).unwrap();
    let tr = GpuTensor::poisoned(g, "rows", &[b, 2]).unwrap();
    let tm = GpuTensor::upload(g, "metrics", &[0.0; 6], &[6]).unwrap();
    let tdb = GpuTensor::poisoned(g, "dbias", &[c]).unwrap();
    let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
    let bufs = sce::SoftmaxCrossEntropyBuffers {
        logits: tl.view(),
        labels: ty.view(),
        dlogits: td.view(),
        rows: tr.view(),
        metrics: tm.view(),
        dbias: Some(tdb.view()),
    };
    let weights = View {
        buffer: &tp.buffer,
        offset: 0,
        len: c * sh.width,
    };
    let mut launches = Vec::new();
    match variant {
        None => {
            let output = one_output(th.view(), tp.view(), sh.bias_at(), sh.width);
            let one = LossMembers::ONE;
            launches
                .push(sce::dispatch(g, kn, "fused", bufs, b, c, true, one, Some(output)).unwrap());
        }
        Some(v) => {
            let spec = MatmulSpec {
                m: b,
                n: c,
                k: sh.width,
                trans_a: false,
                trans_b: true,
                trans_c: false,
                epilogue: Epilogue::Bias,
                batch_dim: BatchDim::M,
            };
            let bias = View {
                buffer: &tp.buffer,
                offset: sh.bias_at() as u64 * 4,
                len: c,
            };
            let forward = MatmulLaunch::new(spec, th.view(), weights, tl.view(), dummy.view())
                .with_epilogue(EpilogueOperands::Bias(bias));
            launches.push(matmul::dispatch(g, kn, v, "forward", forward).unwrap());
            let one = LossMembers::ONE;
            launches.push(sce::dispatch(g, kn, "unfused", bufs, b, c, true, one, None).unwrap());
        }
    }
    kernels::run(g, kn, &launches, record(sh.rows), 1).unwrap();
    let n = sh.rows * c;
    LossOutputs {
        logits: bits(&tl.read(g).unwrap()[..n]),
        dlogits: bits(&td.read(g).unwrap()[..n]),
        rows: bits(&tr.read(g).unwrap()[..2 * sh.rows]),
        metrics: bits(&tm.read(g).unwrap()),
        dbias: bits(&tdb.read(g).unwrap()),
    }
}

/// The output layer of one member (member strides 0): `hidden`, and `params` (weights
/// from element 0, the bias from `bias_at`).
fn one_output<'a>(
    hidden: View<'a>,
    params: View<'a>,
    bias_at: usize,
    width: usize,
) -> sce::OutputLayer<'a> {
    sce::OutputLayer {
        hidden,
        stride_hidden: 0,
        params,
        stride_params: 0,
        bias_at,
        width,
    }
}

/// The fused launch's outputs against the CPU reference: logits `H · Wᵀ + b` (f64), and
/// loss, correct flags, dlogits, sums and dbias computed by the reference from the GPU's
/// own logits.
fn check_against_reference(sh: &Shape, got: &LossOutputs, what: &str) {
    let (r, c, k) = (sh.rows, sh.classes, sh.width);
    let (h, p) = (sh.hidden(), sh.params());
    let mut want = cpu::matmul(&h[..r * k], &p[..c * k], r, c, k, false, true);
    cpu::bias_relu_forward(&mut want, &p[sh.bias_at()..sh.bias_at() + c], c, false);
    let logits = from_bits(&got.logits);
    assert_close(&format!("{what}: logits"), &logits, &want, 1e-5, 1e-5);
    let labels = &sh.labels()[..r];
    let want = cpu::softmax_cross_entropy(&logits, labels, c);
    let rows = from_bits(&got.rows);
    let loss: Vec<f32> = rows.iter().step_by(2).copied().collect();
    assert_close(&format!("{what}: loss"), &loss, &want.loss, 1e-5, 1e-5);
    let correct: Vec<f32> = want
        .correct
        .iter()
        .map(|&x| f32::from(u8::from(x)))
        .collect();
    let got_correct: Vec<f32> = rows.iter().skip(1).step_by(2).copied().collect();
    assert_eq!(got_correct, correct, "{what}: correct flags");
    let dlogits = from_bits(&got.dlogits);
    assert_close(
        &format!("{what}: dlogits"),
        &dlogits,
        &want.dlogits,
        1e-7,
        1e-4,
    );
    let metrics = from_bits(&got.metrics);
    let loss_sum: f64 = want.loss.iter().map(|&v| f64::from(v)).sum();
    assert_close(
        &format!("{what}: loss sum"),
        &metrics[4..5],
        &[loss_sum as f32],
        1e-4,
        1e-5,
    );
    assert_eq!(
        metrics[5] as usize,
        want.correct.iter().filter(|&&x| x).count(),
        "{what}: correct count"
    );
    assert_eq!(metrics[0], 0.0, "{what}: status (finite loss)");
    let want_db: Vec<f32> = (0..c)
        .map(|j| {
            (0..r)
                .map(|i| f64::from(want.dlogits[i * c + j]))
                .sum::<f64>() as f32
        })
        .collect();
    assert_close(
        &format!("{what}: dbias"),
        &from_bits(&got.dbias),
        &want_db,
        1e-6,
        1e-4,
    );
}

/// Ragged shapes: rows past one workgroup and not a multiple of 256; hidden widths not a
/// multiple of 4 (the element-by-element path); class counts below, above and not a
/// multiple of 4 (clamped class groups); partial last minibatches (`rows < max_batch`).
const SHAPES: [Shape; 6] = [
    Shape {
        max_batch: 64,
        rows: 64,
        width: 256,
        classes: 10,
        seed: 1,
    },
    Shape {
        max_batch: 300,
        rows: 300,
        width: 30,
        classes: 10,
        seed: 2,
    },
    Shape {
        max_batch: 257,
        rows: 200,
        width: 33,
        classes: 7,
        seed: 3,
    },
    Shape {
        max_batch: 64,
        rows: 37,
        width: 64,
        classes: 3,
        seed: 4,
    },
    Shape {
        max_batch: 9,
        rows: 9,
        width: 12,
        classes: 13,
        seed: 5,
    },
    Shape {
        max_batch: 600,
        rows: 599,
        width: 8,
        classes: 1,
        seed: 6,
    },
];

/// The fused launch gives the bits of every matmul variant followed by the unfused loss
/// launch, and matches the CPU reference.
#[test]
fn fused_output_layer_gives_the_unfused_bits_for_every_matmul_variant() {
    let g = &gpu().0;
    let variants: Vec<MatmulVariant> = MatmulVariant::ALL
        .into_iter()
        .filter(|v| v.supports(g).is_ok())
        .collect();
    assert!(variants.contains(&MatmulVariant::default_for(g)));
    for sh in &SHAPES {
        let what = format!(
            "B={} of {}, hidden {}, C={}",
            sh.rows, sh.max_batch, sh.width, sh.classes
        );
        let fused = run_loss(sh, None);
        check_against_reference(sh, &fused, &what);
        for &v in &variants {
            let unfused = run_loss(sh, Some(v));
            for (name, a, b) in [
                ("logits", &fused.logits, &unfused.logits),
                ("dlogits", &fused.dlogits, &unfused.dlogits),
                ("rows", &fused.rows, &unfused.rows),
                ("metrics", &fused.metrics, &unfused.metrics),
                ("dbias", &fused.dbias, &unfused.dbias),
            ] {
                if let Some(i) = a.iter().zip(b.iter()).position(|(x, y)| x != y) {
                    panic!(
                        "{what}, {v}: {name}[{i}] fused {} vs unfused {}",
                        f32::from_bits(a[i]),
                        f32::from_bits(b[i])
                    );
                }
            }
        }
    }
}

/// Member strides of a fused launch for several members, in floats: hidden activations
/// and output-layer parameters (multiples of 4: vec4 loads), logits and dlogits, rows,
/// metrics, bias gradient (deliberately not multiples of 4).
struct Strides {
    hidden: usize,
    params: usize,
    logits: usize,
    rows: usize,
    metrics: usize,
    dbias: usize,
}

impl Strides {
    /// A few floats past each member's extent on `sh`, so that members do not abut.
    fn past(sh: &Shape) -> Strides {
        let (b, c) = (sh.max_batch, sh.classes);
        Strides {
            hidden: (b * sh.width).next_multiple_of(4) + 4,
            params: sh.params().len() + 4,
            logits: b * c + 3,
            rows: 2 * b + 1,
            metrics: METRICS_HEADER + 2 + 3,
            dbias: c + 1,
        }
    }
}

/// `parts` stacked `stride` apart, the gaps `gap`.
fn stack(parts: &[Vec<f32>], stride: usize, gap: f32) -> Vec<f32> {
    let mut all = vec![gap; (parts.len() - 1) * stride + parts[parts.len() - 1].len()];
    for (j, p) in parts.iter().enumerate() {
        all[j * stride..j * stride + p.len()].copy_from_slice(p);
    }
    all
}

/// One fused training launch on `sh`'s minibatch for `hidden.len()` members (member j
/// computing its logits from `hidden[j]` and `params[j]`; the labels shared): with
/// `strides`, the member path, buffers stacked that far apart; without, the launch of one
/// run ([`LossMembers::ONE`], strides 0). Outputs poisoned with NaN (the metrics: zero, NaN
/// between members). Returns logits, dlogits, rows, metrics and dbias, read back whole.
fn run_fused_members(
    sh: &Shape,
    hidden: &[Vec<f32>],
    params: &[Vec<f32>],
    labels: &[u32],
    strides: Option<&Strides>,
) -> [Vec<f32>; 5] {
    let (g, kn) = gpu();
    let past = Strides::past(sh);
    let st = strides.unwrap_or(&past);
    let (b, c, count) = (sh.max_batch, sh.classes, hidden.len());
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let nan = |len: usize, stride: usize| {
        up(
            "out",
            &stack(&vec![vec![f32::NAN; len]; count], stride, f32::NAN),
        )
    };
    let (th, tp) = (
        up("hidden", &stack(hidden, st.hidden, f32::NAN)),
        up("params", &stack(params, st.params, f32::NAN)),
    );
    let ty = GpuTensor::upload(g, "labels", bytemuck::cast_slice(labels), &[b]).unwrap();
    let (tl, td, tr, tdb) = (
        nan(b * c, st.logits),
        nan(b * c, st.logits),
        nan(2 * b, st.rows),
        nan(c, st.dbias),
    );
    let tm = up(
        "metrics",
        &stack(
            &vec![vec![0.0; METRICS_HEADER + 2]; count],
            st.metrics,
            f32::NAN,
        ),
    );
    let bufs = sce::SoftmaxCrossEntropyBuffers {
        logits: tl.view(),
        labels: ty.view(),
        dlogits: td.view(),
        rows: tr.view(),
        metrics: tm.view(),
        dbias: Some(tdb.view()),
    };
    let (members, output) = if strides.is_none() {
        assert_eq!(count, 1);
        (
            LossMembers::ONE,
            one_output(th.view(), tp.view(), sh.bias_at(), sh.width),
        )
    } else {
        let members = LossMembers {
            count,
            logits: st.logits,
            rows: st.rows,
            metrics: st.metrics,
            bias: st.dbias,
        };
        let output = sce::OutputLayer {
            stride_hidden: st.hidden,
            stride_params: st.params,
            ..one_output(th.view(), tp.view(), sh.bias_at(), sh.width)
        };
        (members, output)
    };
    let d = sce::dispatch(g, kn, "members", bufs, b, c, true, members, Some(output)).unwrap();
    kernels::run(g, kn, &[d], record(sh.rows), 1).unwrap();
    [&tl, &td, &tr, &tm, &tdb].map(|t| t.read(g).unwrap())
}

/// Member j's hidden activations and output layer: `sh`'s for member 0, other seeds for
/// the others.
fn member_inputs(sh: &Shape, j: usize) -> (Vec<f32>, Vec<f32>) {
    let mj = Shape {
        seed: sh.seed + 1000 * j as u64,
        ..*sh
    };
    (mj.hidden(), mj.params())
}

/// The fused launch for `count` members on `sh` (the member path, non-zero strides)
/// against each member's launch as a single run (K = 1), bit for bit, every output (the rows past a partial minibatch stay NaN in both); the
/// gaps between members are never written. `bad`: that member's activations hold an
/// infinity, so its loss (and its status word alone) turns non-finite.
fn check_fused_members(sh: &Shape, count: usize, bad: Option<usize>, members_checked: &[usize]) {
    let (mut hidden, mut params) = (Vec::new(), Vec::new());
    for j in 0..count {
        let (h, p) = member_inputs(sh, j);
        hidden.push(h);
        params.push(p);
    }
    if let Some(j) = bad {
        hidden[j][1] = f32::INFINITY;
    }
    let labels = sh.labels();
    let st = Strides::past(sh);
    let got = run_fused_members(sh, &hidden, &params, &labels, Some(&st));
    let (b, c) = (sh.max_batch, sh.classes);
    let extents = [
        (b * c, st.logits, "logits"),
        (b * c, st.logits, "dlogits"),
        (2 * b, st.rows, "rows"),
        (METRICS_HEADER + 2, st.metrics, "metrics"),
        (c, st.dbias, "dbias"),
    ];
    let what = format!(
        "{count} members, B={} of {b}, hidden {}, C={c}",
        sh.rows, sh.width
    );
    for &j in members_checked {
        let one = run_fused_members(sh, &hidden[j..=j], &params[j..=j], &labels, None);
        for ((all, single), &(len, stride, name)) in got.iter().zip(&one).zip(&extents) {
            assert_eq!(
                bits(&all[j * stride..j * stride + len]),
                bits(single),
                "{what}: {name} of member {j}"
            );
        }
        let status = got[3][j * st.metrics];
        assert_eq!(
            status != 0.0,
            bad == Some(j),
            "{what}: status of member {j}"
        );
    }
    for (all, &(len, stride, name)) in got.iter().zip(&extents) {
        for j in 0..count - 1 {
            let gap = &all[j * stride + len..(j + 1) * stride];
            assert!(
                gap.iter().all(|v| v.is_nan()),
                "{what}: {name} of member {j} wrote past its block"
            );
        }
    }
}

/// The fused output layer with members (issue 22): K = 3 members, each its own hidden
/// activations and output layer at non-zero member strides, equal their own launches bit
/// for bit on ragged shapes (the element-by-element and the vec4 k loop, a partial
/// minibatch, class counts not a multiple of 4), one member's loss non-finite (its status
/// alone set); the member path with K = 1 gives the single run's launch.
#[test]
fn fused_output_layer_members_match_their_single_launches() {
    for (si, sh) in [&SHAPES[2], &SHAPES[3], &SHAPES[4]].into_iter().enumerate() {
        check_fused_members(sh, 3, (si == 0).then_some(1), &[0, 1, 2]);
    }
    check_fused_members(&SHAPES[4], 1, None, &[0]);
}

/// One workgroup per member past 65,535 workgroups: the grid folds, and members at both
/// ends and in the middle equal their own launches bit for bit.
#[test]
fn fused_output_layer_members_past_65535_workgroups_fold_the_grid() {
    let sh = Shape {
        max_batch: 4,
        rows: 3,
        width: 4,
        classes: 3,
        seed: 8,
    };
    let count = 65_600;
    check_fused_members(&sh, count, None, &[0, 1, count / 2, count - 2, count - 1]);
}

/// The loop-cap model: the fused launch's loops are the unfused ones plus
/// `ceil(ceil(B/4)·ceil(C/4)/256)·(k + 1) + 1`, k the k-loop passes (`width/4 + 1` for
/// whole vec4 rows, else `width + 1`); counted by hand for three shapes.
#[test]
fn fused_output_loop_passes_count_items_and_k_passes() {
    // 16 row blocks x 3 class groups = 48 items: one per invocation; 256/4 + 1 = 65 k passes.
    assert_eq!(sce::fused_output_loop_passes(64, 10, 256), 67);
    // 75 x 3 = 225 items: still one; 30 + 1 k passes (not whole vec4s).
    assert_eq!(sce::fused_output_loop_passes(300, 10, 30), 33);
    // 1025 x 1 = 1025 items: 5 per invocation.
    assert_eq!(sce::fused_output_loop_passes(4097, 3, 8), 5 * 4 + 1);
}

/// The loop-cap model at its edge: with 4 rows and 3 classes (one work item) and an odd
/// hidden width (the element-by-element k loop, `width + 1` passes), the width that makes
/// the launch's loops exactly lavapipe's cap of 65,535 by the model runs to the end: exact
/// logits (small integers times multiples of 1/8, so every partial sum is exact in f32),
/// then dlogits and the bias gradient (the last loops). Measured with the cap check off,
/// lavapipe still completed 10 passes past the model's count here and truncated at 14 (the
/// model is a little conservative), so this catches undercounts larger than that, e.g. the
/// k loop counted as `width/4` on this path. One pass over a device's cap is refused
/// naming the limit, and `fuses_output_layer` says no there.
#[test]
fn fused_output_runs_exactly_at_the_loop_cap_and_is_refused_past_it() {
    let (g, kn) = gpu();
    // 4 rows, 3 classes: one work item; the fused passes are width + 3.
    let (b, c) = (4usize, 3usize);
    let width = 65_535 - sce::loop_passes(b, c, true) as usize - 3;
    assert_eq!(width % 2, 1, "odd width, element-by-element path");
    let passes = sce::loop_passes(b, c, true) + sce::fused_output_loop_passes(b, c, width);
    assert_eq!(passes, 65_535);
    let h: Vec<f32> = (0..b * width)
        .map(|i| ((i * 7 + i / 5) % 4) as f32)
        .collect();
    let bias_at = (c * width).next_multiple_of(64);
    let mut p = vec![0.0f32; bias_at + 64];
    for (i, v) in p[..c * width].iter_mut().enumerate() {
        *v = [0.125, -0.25, 0.5, -0.375, 0.0][(i * 3 + i / 7) % 5];
    }
    p[bias_at..bias_at + c].copy_from_slice(&[1.0, -2.0, 0.5]);
    let labels = [0u32, 1, 2, 0];
    let th = GpuTensor::upload(g, "hidden", &h, &[b, width]).unwrap();
    let tp = GpuTensor::upload(g, "params", &p, &[p.len()]).unwrap();
    let ty = GpuTensor::upload(g, "labels", bytemuck::cast_slice(&labels), &[b]).unwrap();
    let tl = GpuTensor::poisoned(g, "logits", &[b, c]).unwrap();
    let td = GpuTensor::poisoned(g, "dlogits", &[b, c]).unwrap();
    let tr = GpuTensor::poisoned(g, "rows", &[b, 2]).unwrap();
    let tm = GpuTensor::upload(g, "metrics", &[0.0; 6], &[6]).unwrap();
    let tdb = GpuTensor::poisoned(g, "dbias", &[c]).unwrap();
    let bufs = || sce::SoftmaxCrossEntropyBuffers {
        logits: tl.view(),
        labels: ty.view(),
        dlogits: td.view(),
        rows: tr.view(),
        metrics: tm.view(),
        dbias: Some(tdb.view()),
    };
    let output = one_output(th.view(), tp.view(), bias_at, width);
    let one = LossMembers::ONE;
    if g.loop_cap.is_some() {
        assert_eq!(g.loop_cap, Some(65_535), "lavapipe's loop cap");
        assert!(
            sce::fuses_output_layer(g, b, c, width, true)
                || b * width * c > sce::FUSED_OUTPUT_MAX_MACS
        );
    }
    let d = sce::dispatch(g, kn, "edge", bufs(), b, c, true, one, Some(output)).unwrap();
    kernels::run(g, kn, &[d], record(b), 1).unwrap();
    let want: Vec<f32> = (0..b * c)
        .map(|i| {
            let (r, j) = (i / c, i % c);
            let dot: f64 = (0..width)
                .map(|k| f64::from(h[r * width + k]) * f64::from(p[j * width + k]))
                .sum();
            (dot + f64::from(p[bias_at + j])) as f32
        })
        .collect();
    assert_eq!(tl.read(g).unwrap(), want, "exact logits at the loop cap");
    // The loops after the product (the rows', the classes', the bias gradient's, last)
    // ran to the end too: dlogits and their column sums (rows in order, as the kernel adds
    // them) against the reference.
    let reference = cpu::softmax_cross_entropy(&want, &labels, c);
    let dlogits = td.read(g).unwrap();
    assert_close(
        "dlogits at the loop cap",
        &dlogits,
        &reference.dlogits,
        1e-7,
        1e-4,
    );
    let colsum: Vec<f32> = (0..c)
        .map(|j| (0..b).fold(0.0f32, |acc, r| acc + dlogits[r * c + j]))
        .collect();
    assert_eq!(
        bits(&tdb.read(g).unwrap()),
        bits(&colsum),
        "dbias at the loop cap"
    );

    let mut small = wgtrain::gpu::Gpu::new(&wgtrain::gpu::GpuOptions::default()).unwrap();
    small.loop_cap = Some(passes - 1);
    let kn2 = wgtrain::gpu::Kernels::new(&small).unwrap();
    assert!(!sce::fuses_output_layer(&small, b, c, width, true));
    let err = sce::dispatch(&small, &kn2, "edge", bufs(), b, c, true, one, Some(output))
        .expect_err("refused one pass over the cap")
        .to_string();
    assert!(err.contains("loop cap"), "{err}");
}

/// An MLP config for the engine tests: `hidden`, minibatches of `batch`, momentum.
fn config(hidden: &[usize], batch: usize) -> RunConfig {
    RunConfig {
        hidden: hidden.to_vec(),
        batch_size: batch,
        schedule: LrSchedule::new(0.1, Schedule::Constant),
        sgd: SgdConfig {
            momentum: 0.9,
            weight_decay: 1e-4,
            ..SgdConfig::default()
        },
        seed: 3,
        ..RunConfig::default()
    }
}

fn engine_with<'a>(
    fusions: Fusions,
    cfg: &RunConfig,
    data: wgtrain::engine::RunData<'a>,
) -> GpuEngine<'a> {
    let (g, kn) = gpu();
    let matmul = MatmulVariant::default_for(g).into();
    GpuEngine::new(g, kn, matmul, fusions, std::slice::from_ref(cfg), data).unwrap()
}

const OUTPUT_ONLY: Fusions = Fusions {
    output_layer: true,
    ..Fusions::NONE
};

/// Two epochs with the fused output layer and without, from the same initial parameters
/// and minibatches (the last of each epoch partial: 300 = 4·64 + 44): the same per-step
/// sums, parameters, evaluation and logits, bit for bit (the fused kernel sums in the
/// matmul's order); one dispatch fewer per step. A hidden width of 30 takes the
/// element-by-element path, 64 the vec4 one.
#[test]
fn engine_steps_with_the_fused_output_layer_match_the_unfused_bits() {
    let train_set = mnist().train.head(300);
    let test = mnist().test.head(100);
    let data = common::data(&train_set, &test);
    for hidden in [vec![64], vec![30], vec![48, 20]] {
        let cfg = config(&hidden, 64);
        let mut fused = engine_with(OUTPUT_ONLY, &cfg, data);
        let mut plain = engine_with(Fusions::NONE, &cfg, data);
        let l = hidden.len() + 1;
        let unfused_count = 1 + l + 1 + (2 * l - 1) + (l - 1) + 1;
        assert_eq!(plain.dispatches_per_step(), unfused_count, "{hidden:?}");
        assert_eq!(fused.dispatches_per_step(), unfused_count - 1, "{hidden:?}");
        let last = format!("train.layer{}.forward", l - 1);
        assert!(
            fused
                .train_step_dispatches()
                .iter()
                .all(|d| d.label != last),
            "{hidden:?}: no {last} launch"
        );
        for epoch in 0..2 {
            let order = train::epoch_order(&(0..300).collect::<Vec<u32>>(), 3, epoch);
            let steps = train::step_records(300, 64);
            assert_eq!(steps.last().unwrap().batch, 44);
            let first = epoch == 0;
            let a = common::train_epoch(&mut fused, &order, &steps, 0.1, first).unwrap();
            let b = common::train_epoch(&mut plain, &order, &steps, 0.1, first).unwrap();
            let (a, b) = (&a[0], &b[0]);
            let flat = |s: &[[f32; 2]]| bits(&s.iter().flatten().copied().collect::<Vec<_>>());
            assert_eq!(flat(a), flat(b), "{hidden:?} epoch {epoch}: per-step sums");
            assert!(a.iter().all(|s| s[0].is_finite()));
        }
        assert!(
            bits(&fused.params(0).unwrap()) == bits(&plain.params(0).unwrap()),
            "{hidden:?}: parameters after two epochs"
        );
        let (ea, eb) = (
            fused.evaluate(EvalSet::Test).unwrap()[0],
            plain.evaluate(EvalSet::Test).unwrap()[0],
        );
        assert_eq!((ea.loss, ea.accuracy), (eb.loss, eb.accuracy), "{hidden:?}");
        assert!(
            ea.accuracy > 0.3,
            "{hidden:?}: it learned ({})",
            ea.accuracy
        );
        assert_eq!(
            bits(&fused.logits(0, EvalSet::Test).unwrap()),
            bits(&plain.logits(0, EvalSet::Test).unwrap()),
            "{hidden:?}: logits"
        );
    }
}

/// Past the size limit (`B·hidden·C > FUSED_OUTPUT_MAX_MACS`) and for a model without a
/// hidden layer the step keeps its forward matmul for the output layer.
#[test]
fn output_layer_stays_a_matmul_past_the_size_limit_and_without_a_hidden_layer() {
    let train_set = mnist().train.head(300);
    let test = mnist().test.head(100);
    let data = common::data(&train_set, &test);
    let width = sce::FUSED_OUTPUT_MAX_MACS / (64 * 10) + 1;
    for (hidden, unfused) in [(vec![width], 9), (vec![], 5)] {
        let cfg = config(&hidden, 64);
        let fused = engine_with(OUTPUT_ONLY, &cfg, data);
        assert_eq!(fused.dispatches_per_step(), unfused, "{hidden:?}");
    }
    // Just under the limit it fuses.
    let cfg = config(&[width - 1], 64);
    assert_eq!(
        engine_with(OUTPUT_ONLY, &cfg, data).dispatches_per_step(),
        8
    );
}

/// The measurement behind `FUSED_OUTPUT_MAX_MACS` (docs/performance.md), not a check:
/// `cargo test --release --test gpu fusion_output:: -- --ignored --nocapture`. Per batch size
/// (hidden 256, C = 10), the fused launch against the default matmul variant's forward
/// plus the unfused launch, alternated A, B, A, B (5 rounds of 40 repeats each); prints
/// microseconds per step's worth (min and median over the rounds).
#[test]
#[ignore = "timing probe; run by hand"]
fn probe_fused_output_timing() {
    let (g, kn) = gpu();
    let variant = MatmulVariant::default_for(g);
    for b in [64usize, 128, 256, 512] {
        let sh = Shape {
            max_batch: b,
            rows: b,
            width: 256,
            classes: 10,
            seed: 9,
        };
        let c = sh.classes;
        let th = GpuTensor::upload(g, "hidden", &sh.hidden(), &[b, sh.width]).unwrap();
        let params = sh.params();
        let tp = GpuTensor::upload(g, "params", &params, &[params.len()]).unwrap();
        let ty = GpuTensor::upload(g, "labels", bytemuck::cast_slice(&sh.labels()), &[b]).unwrap();
        let tl = GpuTensor::poisoned(g, "logits", &[b, c]).unwrap();
        let td = GpuTensor::poisoned(g, "dlogits", &[b, c]).unwrap();
        let tr = GpuTensor::poisoned(g, "rows", &[b, 2]).unwrap();
        let tm = GpuTensor::upload(g, "metrics", &[0.0; 6], &[6]).unwrap();
        let tdb = GpuTensor::poisoned(g, "dbias", &[c]).unwrap();
        let dummy = GpuTensor::upload(g, "dummy", &[0.0; 4], &[4]).unwrap();
        let bufs = || sce::SoftmaxCrossEntropyBuffers {
            logits: tl.view(),
            labels: ty.view(),
            dlogits: td.view(),
            rows: tr.view(),
            metrics: tm.view(),
            dbias: Some(tdb.view()),
        };
        let output = one_output(th.view(), tp.view(), sh.bias_at(), sh.width);
        let one = LossMembers::ONE;
        let fused =
            vec![sce::dispatch(g, kn, "fused", bufs(), b, c, true, one, Some(output)).unwrap()];
        let spec = MatmulSpec {
            m: b,
            n: c,
            k: sh.width,
            trans_a: false,
            trans_b: true,
            trans_c: false,
            epilogue: Epilogue::Bias,
            batch_dim: BatchDim::M,
        };
        let w = View {
            buffer: &tp.buffer,
            offset: 0,
            len: c * sh.width,
        };
        let bias = View {
            buffer: &tp.buffer,
            offset: sh.bias_at() as u64 * 4,
            len: c,
        };
        let forward = MatmulLaunch::new(spec, th.view(), w, tl.view(), dummy.view())
            .with_epilogue(EpilogueOperands::Bias(bias));
        let unfused = vec![
            matmul::dispatch(g, kn, variant, "forward", forward).unwrap(),
            sce::dispatch(g, kn, "unfused", bufs(), b, c, true, one, None).unwrap(),
        ];
        let reps = 40;
        let time = |d: &[kernels::Dispatch]| {
            kernels::run(g, kn, d, record(b), reps)
                .unwrap()
                .as_secs_f64()
                * 1e6
                / reps as f64
        };
        time(&fused);
        time(&unfused);
        let (mut tf, mut tu) = (vec![], vec![]);
        for _ in 0..5 {
            tf.push(time(&fused));
            tu.push(time(&unfused));
        }
        let stats = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            format!("min {:.0} median {:.0} us", v[0], v[v.len() / 2])
        };
        println!(
            "B={b} hidden 256 C=10: fused {}; {variant} forward + softmax {}",
            stats(&mut tf),
            stats(&mut tu)
        );
    }
}
