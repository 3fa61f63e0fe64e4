//! `--precision f16`: the `matmul_f16` kernel against exact references with a derived
//! error bound, the f16 engine's step (dispatch count, the weights' f16 copy), one epoch of
//! real MNIST against f32, and the clear errors where f16 cannot run.
//!
//! The bound. Operands are rounded to f16 on the host (`half`, to nearest even), a relative
//! error of at most `u = 2^-11` each, so each product `ã·b̃` is off from `a·b` by at most
//! `((1 + u)^2 - 1)·|a·b|` (`u·|a·b|` when A stays f32). The kernel sums in f32 with fma, one
//! rounding per term (two where the driver does not fuse the fma and the f32·f16 product
//! is inexact), plus one per K chunk and one for the bias: at most `γ_n·Σ|ã·b̃|` with
//! `γ_n = n·2^-24 / (1 - n·2^-24)`, `n = 2K + 3` (Higham, *Accuracy and Stability of
//! Numerical Algorithms*, §3.1). ReLU and the mask are 1-Lipschitz. Per element:
//!
//! ```text
//! |C_gpu - C_exact| <= ((1 + u)^2 - 1)·Σ_k |a_k·b_k| + γ_{2K+3}·(Σ_k |ã_k·b̃_k| + |bias|)
//! |C_gpu - C̃_exact| <= γ_{2K+3}·(Σ_k |ã_k·b̃_k| + |bias|)      (C̃: exact sum of the f16 operands)
//! ```
//! The second fails when the kernel does not read exactly the f16 values it was given; the
//! first fails for a kernel that sums in f16 (its error grows as `u·Σ_k |partial sum_k|`,
//! shown below to break the bound on a long K).

use crate::common;
use half::f16;
use wgtrain::engine::{Engine, EvalSet, RunData};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::f16::{self as matmul_f16, F16View, MatmulF16Buffers, OperandA};
use wgtrain::gpu::kernels::matmul::{BatchDim, Epilogue, MatmulMembers, MatmulSpec};
use wgtrain::gpu::tensor::read_buffer;
use wgtrain::gpu::{Fusions, Gpu, MatmulVariant, View};
use wgtrain::{Precision, RunConfig, train};

use common::{gpu16, record, uniform};

const U: f64 = 1.0 / 2048.0; // 2^-11: f16's unit roundoff

fn gamma(n: usize) -> f64 {
    let nu = n as f64 * f64::from(f32::EPSILON) / 2.0;
    nu / (1.0 - nu)
}

fn round16(v: &[f32]) -> Vec<f32> {
    v.iter().map(|&x| f16::from_f32(x).to_f32()).collect()
}

/// An f16 storage buffer holding `pad` zeros, then `v` (rounded to nearest even).
fn f16_buffer(gpu: &Gpu, label: &str, pad: usize, v: &[f32]) -> wgpu::Buffer {
    let mut halves = vec![f16::ZERO; pad];
    halves.extend(v.iter().map(|&x| f16::from_f32(x)));
    halves.resize(halves.len().next_multiple_of(2), f16::ZERO);
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let b = gpu
        .storage_buffer(
            label,
            bytes.len() as u64,
            wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        )
        .unwrap();
    gpu.queue.write_buffer(&b, 0, &bytes);
    b
}

fn f32_buffer(gpu: &Gpu, label: &str, v: &[f32]) -> wgpu::Buffer {
    let b = gpu
        .storage_buffer(
            label,
            v.len() as u64 * 4,
            wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        )
        .unwrap();
    gpu.queue.write_buffer(&b, 0, bytemuck::cast_slice(v));
    b
}

/// One kernel check: shape, layout, epilogue, A's precision, the f16 copy of C, and the
/// minibatch rows when M follows the step record.
#[derive(Clone, Copy, Debug)]
struct Case {
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
    trans_c: bool,
    epilogue: Epilogue,
    a_f16: bool,
    c16: bool,
    batch: Option<usize>,
}

impl Case {
    fn new(m: usize, n: usize, k: usize) -> Case {
        Case {
            m,
            n,
            k,
            trans_a: false,
            trans_b: false,
            trans_c: false,
            epilogue: Epilogue::None,
            a_f16: true,
            c16: false,
            batch: None,
        }
    }
}

/// Runs `case` on the GPU and checks every element against both bounds (module docs) and
/// the f16 copy of C; rows past the minibatch must stay unwritten (NaN). Returns the
/// largest error as a fraction of its bound (the first bound).
fn check_matmul_f16(case: Case, seed: u64) -> f64 {
    let (gpu, kernels) = gpu16();
    let Case { m, n, k, .. } = case;
    let a = uniform(seed, m * k, -1.0, 1.0);
    let b = uniform(seed + 1, k * n, -1.0, 1.0);
    let bias = uniform(seed + 2, n, -0.5, 0.5);
    let mask = uniform(seed + 3, m * n, -1.0, 1.0);
    let (a16, b16) = (round16(&a), round16(&b));
    // A and B sit at odd element offsets: the kernel must add them.
    let (a_pad, b_pad) = (3, 5);
    let a_buf16 = f16_buffer(gpu, "a16", a_pad, &a);
    let a_buf32 = f32_buffer(gpu, "a32", &a);
    let b_buf = f16_buffer(gpu, "b16", b_pad, &b);
    let bias_buf = f32_buffer(gpu, "bias", &bias);
    let mask_buf = f32_buffer(gpu, "mask", &mask);
    let c_buf = f32_buffer(gpu, "c", &vec![f32::NAN; m * n]);
    let c16_buf = f16_buffer(gpu, "c16", 0, &vec![f32::NAN; m * n]);
    let dummy = f32_buffer(gpu, "dummy", &[0.0; 4]);
    let spec = MatmulSpec {
        m,
        n,
        k,
        trans_a: case.trans_a,
        trans_b: case.trans_b,
        trans_c: case.trans_c,
        epilogue: case.epilogue,
        batch_dim: if case.batch.is_some() {
            BatchDim::M
        } else {
            BatchDim::None
        },
    };
    let d = matmul_f16::dispatch(
        gpu,
        kernels,
        "test.matmul_f16",
        spec,
        MatmulF16Buffers {
            members: MatmulMembers::ONE,
            a: if case.a_f16 {
                OperandA::F16(F16View {
                    buffer: &a_buf16,
                    offset: a_pad,
                    len: m * k,
                })
            } else {
                OperandA::F32(View::whole(&a_buf32))
            },
            b: F16View {
                buffer: &b_buf,
                offset: b_pad,
                len: k * n,
            },
            bias: Some(View::whole(&bias_buf)),
            mask: Some(View::whole(&mask_buf)),
            c: View::whole(&c_buf),
            c16: case.c16.then(|| F16View::whole(&c16_buf)),
            dummy: View::whole(&dummy),
        },
    )
    .unwrap();
    let rows = case.batch.unwrap_or(m);
    wgtrain::gpu::kernels::run(gpu, kernels, &[d], record(rows), 1).unwrap();
    let c: Vec<f32> = bytemuck::pod_collect_to_vec(
        &read_buffer(gpu, "c", &c_buf, 0, (m * n * 4) as u64).unwrap(),
    );
    let c16: Vec<f32> = read_buffer(gpu, "c16", &c16_buf, 0, (m * n * 2) as u64)
        .unwrap()
        .chunks_exact(2)
        .map(|h| f16::from_le_bytes([h[0], h[1]]).to_f32())
        .collect();

    let a_used = if case.a_f16 { &a16 } else { &a };
    let operand_err = if case.a_f16 {
        (1.0 + U) * (1.0 + U) - 1.0
    } else {
        U
    };
    let a_at = |i: usize, kk: usize| if case.trans_a { kk * m + i } else { i * k + kk };
    let b_at = |kk: usize, j: usize| if case.trans_b { j * k + kk } else { kk * n + j };
    let epilogue = |v: f64, i: usize, j: usize| match case.epilogue {
        Epilogue::None => v,
        Epilogue::Bias => v + f64::from(bias[j]),
        Epilogue::BiasRelu => (v + f64::from(bias[j])).max(0.0),
        Epilogue::ReluMask => {
            if mask[i * n + j] > 0.0 {
                v
            } else {
                0.0
            }
        }
        Epilogue::SgdUpdate => unreachable!("matmul_f16 has no SGD epilogue"),
    };
    let has_bias = matches!(case.epilogue, Epilogue::Bias | Epilogue::BiasRelu);
    let mut worst: f64 = 0.0;
    for i in 0..m {
        for j in 0..n {
            let idx = if case.trans_c { j * m + i } else { i * n + j };
            if i >= rows {
                assert!(
                    c[idx].is_nan(),
                    "{case:?}: row {i} past the minibatch was written"
                );
                continue;
            }
            let (mut exact, mut exact_r, mut s, mut s_r) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
            for kk in 0..k {
                let p = f64::from(a[a_at(i, kk)]) * f64::from(b[b_at(kk, j)]);
                let pr = f64::from(a_used[a_at(i, kk)]) * f64::from(b16[b_at(kk, j)]);
                exact += p;
                exact_r += pr;
                s += p.abs();
                s_r += pr.abs();
            }
            let bias_abs = if has_bias {
                f64::from(bias[j].abs())
            } else {
                0.0
            };
            let sum_err = gamma(2 * k + 3) * (s_r + bias_abs) + f64::from(f32::MIN_POSITIVE);
            let bound = operand_err * s + sum_err;
            let got = f64::from(c[idx]);
            let want = epilogue(exact, i, j);
            let want_r = epilogue(exact_r, i, j);
            assert!(
                (got - want_r).abs() <= sum_err,
                "{case:?} C[{i},{j}]: gpu {got} vs exact sum of the f16 operands {want_r}: |diff| {} > f32 summation bound {sum_err}",
                (got - want_r).abs()
            );
            assert!(
                (got - want).abs() <= bound,
                "{case:?} C[{i},{j}]: gpu {got} vs exact {want}: |diff| {} > bound {bound}",
                (got - want).abs()
            );
            worst = worst.max((got - want).abs() / bound);
            if case.c16 {
                // WGSL may round the f16 copy to either neighbour: within one f16 ulp.
                let h = f64::from(c16[idx]);
                let tol = (got.abs() / 1024.0).max(2f64.powi(-24));
                assert!(
                    (h - got).abs() <= tol,
                    "{case:?} c16[{i},{j}] = {h} is not f16({got})"
                );
            }
        }
    }
    worst
}

/// Ragged shapes, each layout and epilogue the engine uses, A in f16 and in f32.
#[test]
fn matmul_f16_matches_exact_products_within_the_derived_bound() {
    let forward = |m, n, k| Case {
        trans_b: true,
        epilogue: Epilogue::BiasRelu,
        c16: true,
        ..Case::new(m, n, k)
    };
    let cases = [
        Case::new(1, 1, 1),
        Case::new(5, 67, 3),
        Case::new(16, 256, 16),
        Case::new(17, 257, 61),
        Case::new(61, 7, 1757),
        // Forward: X16 · W16ᵀ + b, ReLU, and the f16 copy (the MNIST hidden layer).
        forward(64, 256, 784),
        // ... over a partial minibatch: rows past it stay unwritten.
        Case {
            batch: Some(37),
            ..forward(64, 256, 784)
        },
        // Logits: bias, no ReLU, no copy.
        Case {
            trans_b: true,
            epilogue: Epilogue::Bias,
            ..Case::new(33, 10, 256)
        },
        // Weight gradient: dZᵀ (f32) · X16, and the flipped layout.
        Case {
            trans_a: true,
            a_f16: false,
            ..Case::new(10, 256, 64)
        },
        Case {
            trans_a: true,
            trans_c: true,
            a_f16: false,
            ..Case::new(13, 29, 37)
        },
        // Input gradient: (dZ (f32) · W16) ⊙ [H > 0].
        Case {
            epilogue: Epilogue::ReluMask,
            a_f16: false,
            ..Case::new(64, 256, 10)
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let worst = check_matmul_f16(case, 100 + i as u64);
        eprintln!("{case:?}: worst error {worst:.3} of the bound");
    }
}

/// A K past llvmpipe's loop cap is summed in chunks, and the bound still holds.
#[test]
fn matmul_f16_splits_a_long_k_under_the_loop_cap() {
    let (gpu, _) = gpu16();
    let k = 70_000;
    if let Some(cap) = gpu.loop_cap {
        assert!(
            matmul_f16::loop_passes(k as u64) > cap,
            "K must pass the cap"
        );
        assert!(matmul_f16::k_chunks(gpu, "t", k).unwrap().len() > 1);
    }
    check_matmul_f16(Case::new(2, 3, k), 7);
}

/// Row blocks past the 65,535-workgroup limit fold into z: 65,537 row blocks of 16.
#[test]
fn matmul_f16_folds_a_grid_past_65535_workgroups() {
    let m = 16 * 65_536 + 1;
    check_matmul_f16(
        Case {
            trans_b: true,
            epilogue: Epilogue::BiasRelu,
            c16: true,
            ..Case::new(m, 3, 2)
        },
        11,
    );
}

/// The bound has teeth: a sum kept in f16 (each partial sum rounded, as a kernel with an
/// f16 accumulator would) breaks it on a K of 1757, where the f32 sum stays inside.
#[test]
fn the_bound_rejects_an_f16_accumulator() {
    let (m, n, k) = (8, 8, 1757);
    let a = uniform(5, m * k, 0.0, 1.0);
    let b = uniform(6, k * n, 0.0, 1.0);
    let broken = (0..m * n).any(|ij| {
        let (i, j) = (ij / n, ij % n);
        let (mut exact, mut s, mut acc) = (0.0f64, 0.0f64, f16::ZERO);
        for kk in 0..k {
            let (x, y) = (a[i * k + kk], b[kk * n + j]);
            exact += f64::from(x) * f64::from(y);
            s += (f64::from(x) * f64::from(y)).abs();
            let p = f16::from_f32(x).to_f32() * f16::from_f32(y).to_f32();
            acc = f16::from_f32(acc.to_f32() + p);
        }
        let bound = ((1.0 + U) * (1.0 + U) - 1.0) * s + gamma(2 * k + 3) * s;
        (f64::from(acc.to_f32()) - exact).abs() > bound
    });
    assert!(broken, "an f16 accumulator should break the bound");
}

/// `[I, H..., C]` on `n` MNIST training samples and the full test set.
fn mnist_data(n: usize) -> (wgtrain::data::Dataset, &'static wgtrain::data::Dataset) {
    let mnist = common::mnist();
    (mnist.train.head(n), &mnist.test)
}

fn gpu_engine<'a>(cfg: &RunConfig, data: RunData<'a>) -> wgtrain::Result<GpuEngine<'a>> {
    let (gpu, kernels) = gpu16();
    let variant = MatmulVariant::default_for(gpu);
    GpuEngine::new(
        gpu,
        kernels,
        variant.into(),
        Fusions::ALL,
        std::slice::from_ref(cfg),
        data,
    )
}

/// Trains one epoch of `n` samples with `engine`; returns the mean training loss.
fn one_epoch(engine: &mut dyn Engine, n: usize, batch: usize, lr: f64) -> f64 {
    let order = train::epoch_order(&(0..n as u32).collect::<Vec<_>>(), 1, 0);
    // Not the run's first step (the momentum buffer is not seeded from the gradient), as
    // `step_records(n, batch, 1, ..)` had it before the member-step table.
    let steps = train::step_records(n, batch);
    let sums = common::train_epoch(engine, &order, &steps, lr, false)
        .unwrap()
        .remove(0);
    sums.iter().map(|s| f64::from(s[0])).sum::<f64>() / n as f64
}

/// Issue 13 item 3: one epoch of 10,000 real MNIST samples at batch 64 (lr 0.1), f16
/// against f32 on the same adapter: test accuracy within 0.5 points, and the runs really
/// differ (most weights end up different).
#[test]
fn f16_trains_mnist_within_half_a_point_of_f32() {
    let (train_set, test) = mnist_data(10_000);
    let data = RunData {
        train: &train_set,
        test,
        classes: 10,
        micro_batch: None,
    };
    let run = |precision| {
        let cfg = RunConfig {
            epochs: 1,
            precision,
            ..RunConfig::default()
        };
        let mut engine = gpu_engine(&cfg, data).unwrap();
        let loss = one_epoch(&mut engine, train_set.len(), 64, 0.1);
        let eval = engine.evaluate(EvalSet::Test).unwrap()[0];
        (loss, eval.accuracy, engine.params(0).unwrap())
    };
    let (loss32, acc32, p32) = run(Precision::F32);
    let (loss16, acc16, p16) = run(Precision::F16);
    eprintln!(
        "f32: train loss {loss32:.5}, test acc {:.2}%; f16: train loss {loss16:.5}, test acc {:.2}%",
        acc32 * 100.0,
        acc16 * 100.0
    );
    let differ = p16.iter().zip(&p32).filter(|(a, b)| a != b).count();
    let max_diff = p16
        .iter()
        .zip(&p32)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!(
        "{differ} of {} weights differ, by at most {max_diff}",
        p32.len()
    );
    assert!(
        differ > p32.len() / 2,
        "only {differ} weights differ: is f16 running?"
    );
    assert!(
        (acc16 - acc32).abs() <= 0.005,
        "f16 test accuracy {acc16} vs f32 {acc32}: more than 0.5 points apart"
    );
    assert!(acc16 > 0.85, "f16 trained to {acc16} only");
}

/// `dispatches_per_step` tells the truth: the f32 plan's launches plus the two conversions
/// (inputs, weights), every product on `matmul_f16`, for one and two hidden layers.
#[test]
fn f16_step_is_the_f32_step_plus_two_conversions() {
    let (train_set, test) = mnist_data(256);
    let data = RunData {
        train: &train_set,
        test,
        classes: 10,
        micro_batch: None,
    };
    for hidden in [vec![256], vec![32, 16]] {
        let cfg = |precision| RunConfig {
            hidden: hidden.clone(),
            precision,
            ..RunConfig::default()
        };
        // The unfused f32 step: the f16 plan takes none of the step fusions.
        let (gpu, kernels) = gpu16();
        let variant = MatmulVariant::default_for(gpu).into();
        let cfg32 = cfg(Precision::F32);
        let e32 = GpuEngine::new(gpu, kernels, variant, Fusions::NONE, &[cfg32], data).unwrap();
        let e16 = gpu_engine(&cfg(Precision::F16), data).unwrap();
        let l = hidden.len() + 1;
        // The last layer's bias gradient is the loss launch's: 2L - 1 backward products.
        assert_eq!(
            e32.dispatches_per_step(),
            1 + l + 1 + (2 * l - 1) + (l - 1) + 1
        );
        assert_eq!(e16.dispatches_per_step(), e32.dispatches_per_step() + 2);
        // Opened with `Fusions::ALL`, the f16 loss launch still computes no logits (the
        // fused output layer's launch has the product's K in its shape).
        let loss = e16
            .train_step_dispatches()
            .iter()
            .find(|d| d.kernel == "softmax_cross_entropy");
        assert!(
            !loss.unwrap().shape.contains("K="),
            "f16: unfused loss launch"
        );
        let kernels: Vec<&str> = e16
            .train_step_dispatches()
            .iter()
            .map(|d| d.kernel)
            .collect();
        assert_eq!(kernels.len(), e16.dispatches_per_step());
        assert_eq!(kernels.iter().filter(|k| **k == "convert_f16").count(), 2);
        assert_eq!(kernels[1], "convert_f16", "X16 right after the gather");
        assert_eq!(
            kernels[kernels.len() - 1],
            "convert_f16",
            "W16 right after the update"
        );
        let matmuls = kernels.iter().filter(|k| k.starts_with("matmul")).count();
        assert_eq!(matmuls, 3 * l - 1);
        assert!(e16.matmul_kernels().iter().all(|(_, k)| *k == "matmul_f16"));
        assert!(
            e16.describe().contains("precision f16"),
            "{}",
            e16.describe()
        );
        assert!(!e32.describe().contains("precision"), "{}", e32.describe());
    }
}

/// `set_params` refreshes the weights' f16 copy: an engine started from seed 2 and given
/// seed 1's parameters evaluates exactly as one started from seed 1.
#[test]
fn f16_set_params_refreshes_the_f16_weights() {
    let (train_set, test) = mnist_data(256);
    let data = RunData {
        train: &train_set,
        test,
        classes: 10,
        micro_batch: None,
    };
    let cfg = |seed| RunConfig {
        seed,
        precision: Precision::F16,
        ..RunConfig::default()
    };
    let mut one = gpu_engine(&cfg(1), data).unwrap();
    let mut two = gpu_engine(&cfg(2), data).unwrap();
    let before = two.evaluate(EvalSet::Test).unwrap()[0];
    two.set_params(0, &one.params(0).unwrap()).unwrap();
    let (a, b) = (
        one.evaluate(EvalSet::Test).unwrap()[0],
        two.evaluate(EvalSet::Test).unwrap()[0],
    );
    assert_ne!(before.loss, a.loss, "seeds 1 and 2 should start apart");
    assert_eq!((a.loss, a.accuracy), (b.loss, b.accuracy));
}

/// The first steps of f16 training follow the f32 CPU engine closely: per-step losses of
/// five steps at batch 64 within 1%, from the same initialisation and data order.
#[test]
fn f16_first_steps_follow_the_cpu_reference() {
    let (train_set, test) = mnist_data(320);
    let data = RunData {
        train: &train_set,
        test,
        classes: 10,
        micro_batch: None,
    };
    let cfg = |precision| RunConfig {
        precision,
        ..RunConfig::default()
    };
    let n = train_set.len();
    let order = train::epoch_order(&(0..n as u32).collect::<Vec<_>>(), 1, 0);
    // Not the run's first step, as `step_records(n, 64, 1, ..)` had it.
    let steps = train::step_records(n, 64);
    let mut cpu = wgtrain::cpu_engine::CpuEngine::new(&[cfg(Precision::F32)], data).unwrap();
    let mut gpu = gpu_engine(&cfg(Precision::F16), data).unwrap();
    let want = common::train_epoch(&mut cpu, &order, &steps, 0.1, false).unwrap();
    let got = common::train_epoch(&mut gpu, &order, &steps, 0.1, false).unwrap();
    for (i, (g, w)) in got[0].iter().zip(&want[0]).enumerate() {
        assert!(
            (g[0] - w[0]).abs() <= 0.01 * w[0].abs(),
            "step {i}: f16 loss sum {} vs f32 CPU {}",
            g[0],
            w[0]
        );
    }
}

/// A device without `SHADER_F16` (here: the shared one, opened without it) gets a clear
/// error naming the adapter, the feature and the fix, before anything is built; the CPU
/// engine refuses f16 with the fix too.
#[test]
fn f16_without_shader_f16_is_a_clear_error() {
    let (train_set, test) = mnist_data(256);
    let data = RunData {
        train: &train_set,
        test,
        classes: 10,
        micro_batch: None,
    };
    let cfg = RunConfig {
        precision: Precision::F16,
        ..RunConfig::default()
    };
    let (gpu, kernels) = common::gpu();
    assert!(!gpu.features.contains(wgpu::Features::SHADER_F16));
    let choice = MatmulVariant::default_for(gpu).into();
    let err = GpuEngine::new(
        gpu,
        kernels,
        choice,
        Fusions::ALL,
        std::slice::from_ref(&cfg),
        data,
    )
    .err()
    .expect("f16 on a device without SHADER_F16 must fail")
    .to_string();
    for want in [gpu.info.name.as_str(), "SHADER_F16", "--precision f32"] {
        assert!(err.contains(want), "missing {want:?} in: {err}");
    }
    gpu.take_error("after the refusal")
        .expect("no wgpu error was raised");
    let err = wgtrain::cpu_engine::CpuEngine::new(std::slice::from_ref(&cfg), data)
        .err()
        .expect("the CPU engine refuses f16")
        .to_string();
    assert!(
        err.contains("precision") && err.contains("--precision f32"),
        "{err}"
    );
}

fn wgtrain_cmd(args: &[&str]) -> std::process::Output {
    std::process::Command::new(common::wgtrain_bin())
        .args(args)
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .expect("the binary runs")
}

/// The flag is refused where it cannot apply (exit 2, the fix named), and `bench --json`
/// reports each row's precision. Issue 22: `bench --population 2 --precision f16` (refused
/// before: populations were f32 only) times an f16 population, with the f16 step's
/// dispatches.
#[test]
fn cli_precision_flag_is_checked_and_reported() {
    let dir = std::env::var("MNIST_DIR").expect("MNIST_DIR");
    let out = wgtrain_cmd(&[
        "train",
        "--device",
        "cpu",
        "--precision",
        "f16",
        "--data",
        &dir,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--precision f32"), "{err}");
    let out = wgtrain_cmd(&[
        "train",
        "--device",
        "gpu",
        "--kernels",
        "rows",
        "--precision",
        "f16",
        "--data",
        &dir,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("matmul_f16"), "{err}");
    let out = wgtrain_cmd(&[
        "bench",
        "--device",
        "gpu",
        "--json",
        "--precision",
        "f16",
        "--samples",
        "640",
        "--batch-sizes",
        "64",
        "--population",
        "2",
        "--data",
        &dir,
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |path: &str| rows.iter().find(|r| r["path"] == path).unwrap();
    assert_eq!(find("gpu")["precision"], "f16");
    assert_eq!(find("gpu")["dispatches_per_step"], 11);
    assert_eq!(find("cpu")["precision"], "f32");
    let population = rows
        .iter()
        .find(|r| r["path"] == "gpu" && r["members"] == 2)
        .unwrap_or_else(|| panic!("no GPU population row in {stdout}"));
    assert_eq!(population["dispatches_per_step"], 11, "{population}");
}
