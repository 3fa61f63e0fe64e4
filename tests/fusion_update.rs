//! The `update` fusion (`Fusions::update`): the SGD step applied in the epilogue of each
//! layer's weight-gradient product (`matmul_sgd`) against the unfused launches (matmul,
//! `column_sum`, `sgd_update`). Same additions in the same order, the same SGD arithmetic
//! (`shaders/sgd_step.wgsl`): the parameters and momentum must agree bit for bit, and with
//! the CPU reference within float tolerance. Kernel level: every matmul variant, both
//! orientations of C, ragged shapes and a partial minibatch, momentum / nesterov /
//! dampening / decoupled decay / undecayed biases, first and later steps, a flagged
//! non-finite loss. Engine level: epochs of fused and unfused steps (SGD settings changed
//! between epochs, the last partial minibatch) give the same metrics and weights.

mod common;

use common::{assert_close, gpu, integers, uniform};
use wgtrain::cpu;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, EvalSet, RunData};
use wgtrain::gpu::kernels::matmul::{self, BatchDim, Epilogue, MatmulSpec, MatmulVariant};
use wgtrain::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use wgtrain::gpu::kernels::{self, column_sum, matmul_sgd, sgd_update};
use wgtrain::gpu::{Fusions, GpuTensor, StepRecord, View};
use wgtrain::optim::SgdConfig;
use wgtrain::{Device, RunConfig};

/// The SGD settings the kernel cases cover.
fn sgd_cases() -> Vec<(&'static str, SgdConfig)> {
    vec![
        ("plain", SgdConfig::default()),
        (
            "momentum+nesterov",
            SgdConfig {
                weight_decay: 1e-3,
                momentum: 0.9,
                nesterov: true,
                ..SgdConfig::default()
            },
        ),
        (
            "dampening+decoupled+undecayed bias",
            SgdConfig {
                weight_decay: 0.05,
                momentum: 0.5,
                dampening: 0.1,
                decoupled_weight_decay: true,
                decay_bias: false,
                ..SgdConfig::default()
            },
        ),
        (
            "coupled+undecayed bias",
            SgdConfig {
                weight_decay: 0.02,
                momentum: 0.8,
                decay_bias: false,
                ..SgdConfig::default()
            },
        ),
    ]
}

/// One layer's weight-gradient update: `o` outputs, `i` inputs, launches sized for `k`
/// rows run on a minibatch of `batch`.
struct Case {
    o: usize,
    i: usize,
    k: usize,
    batch: usize,
    flipped: bool,
    first: bool,
    status: f32,
}

/// Parameters and momentum after the fused launch, after the unfused launches, the CPU
/// reference's, and the initial ones; `None` when `variant` does not run here.
#[allow(clippy::type_complexity)]
fn run_case(
    variant: MatmulVariant,
    c: &Case,
    cfg: &SgdConfig,
    seed: u64,
) -> Option<[(Vec<f32>, Vec<f32>); 4]> {
    let (g, kn) = gpu();
    if variant.supports(g).is_err() {
        return None;
    }
    let (o, i) = (c.o, c.i);
    let bias_at = (o * i).next_multiple_of(64);
    let p_len = (bias_at + o).next_multiple_of(64);
    // Weights and bias random, the padding between and after them zero (as in the engine).
    let live = |e: usize| e < o * i || (bias_at..bias_at + o).contains(&e);
    let fill = |s: u64, lo: f32, hi: f32| -> Vec<f32> {
        let r = uniform(s, p_len, lo, hi);
        (0..p_len)
            .map(|e| if live(e) { r[e] } else { 0.0 })
            .collect()
    };
    let params = fill(seed, -1.0, 1.0);
    let velocity = fill(seed + 1, -0.5, 0.5);
    let dz = uniform(seed + 2, c.k * o, -1.0, 1.0);
    let x = uniform(seed + 3, c.k * i, -1.0, 1.0);
    let mut status = [0.0; METRICS_HEADER];
    status[0] = c.status;
    let mut record = vec![0.0f32; 64];
    for (w, r) in record.iter_mut().zip(matmul_sgd::record(cfg, bias_at)) {
        *w = f32::from_bits(r);
    }
    let ranges = if cfg.decay_bias { 0 } else { 1 };
    let no_decay = [bias_at as u32, (bias_at + o) as u32].map(f32::from_bits);
    let up = |name: &str, v: &[f32]| GpuTensor::upload(g, name, v, &[v.len()]).unwrap();
    let [tdz, tx, tstatus, trecord, tno_decay] = [
        ("dz", &dz[..]),
        ("x", &x[..]),
        ("status", &status[..]),
        ("record", &record[..]),
        ("no_decay", &no_decay[..]),
    ]
    .map(|(n, v)| up(n, v));
    let (fp, fv, up_, uv) = (
        up("fused.params", &params),
        up("fused.velocity", &velocity),
        up("unfused.params", &params),
        up("unfused.velocity", &velocity),
    );
    let grads = up("grads", &vec![0.0; p_len]);
    let dummy = up("dummy", &[0.0; 4]);
    let plain = MatmulSpec {
        m: o,
        n: i,
        k: c.k,
        trans_a: true,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim: BatchDim::K,
    };
    let spec = if c.flipped {
        MatmulSpec {
            m: i,
            n: o,
            trans_c: true,
            ..plain
        }
    } else {
        plain
    };
    let (lhs, rhs) = if c.flipped {
        (tx.view(), tdz.view())
    } else {
        (tdz.view(), tx.view())
    };
    let fused = matmul_sgd::dispatch(
        g,
        kn,
        variant,
        "fused",
        MatmulSpec {
            epilogue: Epilogue::SgdUpdate,
            ..spec
        },
        lhs,
        rhs,
        matmul_sgd::SgdEpilogueBuffers {
            params: part(&fp, 0, bias_at + o),
            velocity: part(&fv, 0, bias_at + o),
            status: tstatus.view(),
            record: trecord.view(),
            bias_offset: bias_at,
        },
    )
    .unwrap();
    let unfused = vec![
        matmul::dispatch(
            g,
            kn,
            variant,
            "weight_grad",
            spec,
            lhs,
            rhs,
            None,
            None,
            part(&grads, 0, o * i),
            dummy.view(),
        )
        .unwrap(),
        column_sum::dispatch(
            g,
            kn,
            "bias_grad",
            c.k,
            o,
            BatchDim::M,
            tdz.view(),
            part(&grads, bias_at, o),
        )
        .unwrap(),
        sgd_update::dispatch(
            g,
            kn,
            "sgd_update",
            sgd_update::SgdUpdateBuffers {
                params: up_.view(),
                grads: grads.view(),
                velocity: uv.view(),
                no_decay: tno_decay.view(),
                status: tstatus.view(),
            },
            p_len,
            ranges,
            cfg,
        )
        .unwrap(),
    ];
    let lr = 0.05;
    let rec = StepRecord {
        batch: c.batch as u32,
        lr,
        first: u32::from(c.first),
        ..Default::default()
    };
    kernels::run(g, kn, &[fused], rec, 1).unwrap();
    kernels::run(g, kn, &unfused, rec, 1).unwrap();

    // The CPU reference: f64-accumulated product over the minibatch, column sums, SGD.
    let (mut cp, mut cv) = (params.clone(), velocity.clone());
    if c.status == 0.0 {
        let rows = c.batch;
        let dw = cpu::matmul(&dz[..rows * o], &x[..rows * i], o, i, rows, true, false);
        let db = cpu::column_sum(&dz[..rows * o], rows, o);
        let mut cg = vec![0.0; p_len];
        cg[..o * i].copy_from_slice(&dw);
        cg[bias_at..bias_at + o].copy_from_slice(&db);
        let no_decay = if cfg.decay_bias {
            vec![]
        } else {
            vec![(bias_at, bias_at + o)]
        };
        cpu::sgd_update(&mut cp, &cg, &mut cv, cfg, lr, c.first, &no_decay);
    }
    Some([
        (fp.read(g).unwrap(), fv.read(g).unwrap()),
        (up_.read(g).unwrap(), uv.read(g).unwrap()),
        (cp, cv),
        (params, velocity),
    ])
}

/// `len` floats of `t` from float `at`.
fn part(t: &GpuTensor, at: usize, len: usize) -> View<'_> {
    View {
        buffer: &t.buffer,
        offset: at as u64 * 4,
        len,
    }
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// `got` and `want` hold the same bits; else fails naming the first differing index, both
/// values and how many differ.
fn assert_bits(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let differ: Vec<usize> = (0..got.len())
        .filter(|&i| got[i].to_bits() != want[i].to_bits())
        .collect();
    if let Some(&i) = differ.first() {
        panic!(
            "{what}: {} of {} elements differ; first at {i}: {} vs {}",
            differ.len(),
            got.len(),
            got[i],
            want[i]
        );
    }
}

/// Every variant, both orientations, ragged shapes (a full and a partial minibatch, a
/// multiple-of-4 input count for the subgroup kernel's vec4 transposed stores, and a
/// multiple-of-4 output count for its vec4 bias sums), the SGD
/// cases in turn (each variant meets all four), first and later steps: fused == unfused
/// bit for bit, both near the CPU.
#[test]
fn sgd_epilogue_gives_the_unfused_launches_bits() {
    // (O, I, K, minibatch): O = 12 lets the subgroup kernel read dZ as vec4 for the biases.
    let shapes = [
        (13, 37, 29, 29),
        (13, 37, 29, 23),
        (10, 36, 21, 21),
        (12, 37, 29, 26),
    ];
    let cases = sgd_cases();
    let mut ran = 0;
    for (vi, variant) in MatmulVariant::ALL.into_iter().enumerate() {
        for (si, &(o, i, k, batch)) in shapes.iter().enumerate() {
            for flipped in [false, true] {
                let ci = (vi + 2 * si + usize::from(flipped)) % cases.len();
                {
                    let (name, cfg) = &cases[ci];
                    let first = (vi + si) % 2 == 0;
                    let case = Case {
                        o,
                        i,
                        k,
                        batch,
                        flipped,
                        first,
                        status: 0.0,
                    };
                    let seed = 10 * (si * 4 + ci) as u64;
                    let Some([fused, unfused, cpu_ref, init]) = run_case(variant, &case, cfg, seed)
                    else {
                        continue;
                    };
                    let what = format!(
                        "{variant} {o}x{i} k={k} batch={batch} flipped={flipped} {name} first={first}"
                    );
                    assert_ne!(bits(&fused.0), bits(&init.0), "{what}: nothing updated");
                    assert_bits(&format!("{what}: parameters"), &fused.0, &unfused.0);
                    assert_bits(&format!("{what}: momentum"), &fused.1, &unfused.1);
                    assert_close(&what, &fused.0, &cpu_ref.0, 1e-5, 1e-4);
                    assert_close(&what, &fused.1, &cpu_ref.1, 1e-5, 1e-4);
                    ran += 1;
                }
            }
        }
    }
    assert!(ran >= 3 * 4 * 2, "too few variants ran: {ran}");
}

/// A non-finite loss flagged in the status header: the fused launch leaves parameters and
/// momentum untouched, as `sgd_update` does.
#[test]
fn sgd_epilogue_skips_the_update_after_a_non_finite_loss() {
    let (_, cfg) = &sgd_cases()[1];
    for variant in MatmulVariant::ALL {
        for flipped in [false, true] {
            let case = Case {
                o: 13,
                i: 37,
                k: 29,
                batch: 29,
                flipped,
                first: false,
                status: 1.0,
            };
            let Some([fused, unfused, _, init]) = run_case(variant, &case, cfg, 5) else {
                continue;
            };
            assert_bits(&format!("{variant} parameters"), &fused.0, &init.0);
            assert_bits(&format!("{variant} momentum"), &fused.1, &init.1);
            assert_bits(
                &format!("{variant} unfused parameters"),
                &unfused.0,
                &init.0,
            );
        }
    }
}

/// The fused launch is refused when the bias loop would pass the loop cap, and
/// `matmul_sgd::fits` says so (the engine then keeps the unfused launches).
#[test]
fn sgd_epilogue_respects_the_loop_cap() {
    let (g, _) = gpu();
    let v = MatmulVariant::Rows;
    let Some(cap) = g.loop_cap else {
        assert!(matmul_sgd::fits(g, v, 1 << 20));
        return;
    };
    // Rows: K loop k + 1, stores 80, bias loop k + 1 (and 5 spare).
    let k_max = ((cap - 87) / 2) as usize;
    assert!(matmul_sgd::fits(g, v, k_max));
    assert!(!matmul_sgd::fits(g, v, k_max + 1));
    // The unfused product alone still fits there in one chunk.
    assert!(v.loop_passes(k_max as u64 + 1) <= cap);
}

/// A synthetic set of `n` 7 x 5 images (35 features) over 10 classes.
fn synthetic(seed: u64, n: usize) -> Dataset {
    Dataset {
        images: integers(seed, n * 35, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: integers(seed + 1, n, 10),
        rows: 7,
        cols: 5,
    }
}

fn open<'a>(
    fusions: Fusions,
    variant: MatmulVariant,
    cfg: &RunConfig,
    data: RunData<'a>,
) -> Box<dyn Engine + 'a> {
    let (gpu, kernels) = gpu();
    wgtrain::open(
        Device::Gpu {
            gpu,
            kernels,
            matmul: variant.into(),
            fusions,
        },
        cfg,
        data,
    )
    .unwrap()
}

/// Epochs of steps with explicit step records: a shuffled order, minibatches of the
/// configured size and a last partial one, the first step flagged, the learning rate
/// decaying; the SGD settings change after every epoch. Returns each epoch's sums and
/// the parameters after it.
fn train(engine: &mut dyn Engine, epochs: usize) -> Vec<(Vec<[f32; 2]>, Vec<f32>)> {
    let setup = engine.setup().clone();
    let batch = setup.config.batch_size;
    let mut order = setup.train_indices.clone();
    let settings = sgd_cases();
    let mut out = Vec::new();
    for e in 0..epochs {
        // A seeded shuffle (the same for both engines).
        let keys = integers(100 + e as u64, order.len(), u32::MAX);
        let mut keyed: Vec<(u32, u32)> = keys.into_iter().zip(order.iter().copied()).collect();
        keyed.sort();
        order = keyed.into_iter().map(|(_, s)| s).collect();
        let steps: Vec<StepRecord> = (0..order.len().div_ceil(batch))
            .map(|s| StepRecord {
                offset: (s * batch) as u32,
                batch: batch.min(order.len() - s * batch) as u32,
                lr: 0.1 / (1.0 + s as f32),
                first: u32::from(e == 0 && s == 0),
                index: s as u32,
                ..Default::default()
            })
            .collect();
        let sums = engine.train_epoch(&order, &steps, &mut |_| {}).unwrap();
        out.push((sums, engine.params().unwrap()));
        let (_, next) = &settings[(e + 1) % settings.len()];
        engine
            .set_sgd(&SgdConfig {
                decay_bias: setup.config.sgd.decay_bias,
                ..next.clone()
            })
            .unwrap();
    }
    out
}

/// Fused and unfused steps give the same per-step sums, weights and evaluation, bit for
/// bit, over epochs with changing SGD settings and a last partial minibatch; one and two
/// hidden layers; the default kernel and the rows kernel; the fused step has 2 launches
/// fewer per layer-0 bias gradient and update.
#[test]
fn fused_update_steps_equal_unfused_steps() {
    let (g, _) = gpu();
    let (train_set, test_set) = (synthetic(1, 97), synthetic(3, 37));
    let data = RunData {
        train: &train_set,
        test: &test_set,
        classes: 10,
    };
    let fused_only = Fusions {
        update: true,
        ..Fusions::NONE
    };
    for (hidden, decay_bias) in [(vec![13], true), (vec![13, 11], false)] {
        for variant in [MatmulVariant::default_for(g), MatmulVariant::Rows] {
            let cfg = RunConfig {
                hidden: hidden.clone(),
                batch_size: 16, // 78 training samples: 4 full minibatches and one of 14
                seed: 7,
                validation_split: 0.2,
                sgd: SgdConfig {
                    momentum: 0.9,
                    decay_bias,
                    ..SgdConfig::default()
                },
                ..RunConfig::default()
            };
            let mut unfused = open(Fusions::NONE, variant, &cfg, data);
            let mut fused = open(fused_only, variant, &cfg, data);
            let layers = hidden.len() + 1;
            // Unfused: gather, L forwards, loss, L weight grads, L - 1 column sums (the
            // last bias gradient is the loss launch's), L - 1 input grads, update.
            assert_eq!(
                unfused.dispatches_per_step(),
                1 + layers + 1 + 3 * layers - 1
            );
            assert_eq!(
                fused.dispatches_per_step(),
                unfused.dispatches_per_step() - layers
            );
            let want = train(unfused.as_mut(), 3);
            let got = train(fused.as_mut(), 3);
            for (e, (g, w)) in got.iter().zip(&want).enumerate() {
                let what = format!("{hidden:?} {variant} epoch {e}");
                assert_eq!(g.0.len(), 5, "{what}: steps");
                assert_eq!(
                    g.0.iter()
                        .flatten()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                    w.0.iter()
                        .flatten()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>(),
                    "{what}: step sums"
                );
                assert_bits(&format!("{what}: parameters"), &g.1, &w.1);
            }
            assert_ne!(bits(&got[0].1), bits(&got[2].1), "training moved nothing");
            let (a, b) = (
                fused.evaluate(EvalSet::Test).unwrap(),
                unfused.evaluate(EvalSet::Test).unwrap(),
            );
            assert_eq!(
                a.loss.to_bits(),
                b.loss.to_bits(),
                "{hidden:?} {variant}: test loss"
            );
        }
    }
}

/// A non-finite loss (a NaN weight) flags the step: the fused update then leaves every
/// parameter as it was, as the unfused one does.
#[test]
fn fused_update_leaves_params_after_a_non_finite_loss() {
    let (train_set, test_set) = (synthetic(5, 60), synthetic(6, 10));
    let data = RunData {
        train: &train_set,
        test: &test_set,
        classes: 10,
    };
    let cfg = RunConfig {
        hidden: vec![13],
        batch_size: 16,
        seed: 3,
        validation_split: 0.0,
        sgd: SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
        ..RunConfig::default()
    };
    let fused_only = Fusions {
        update: true,
        ..Fusions::NONE
    };
    for fusions in [fused_only, Fusions::NONE] {
        let mut engine = open(fusions, MatmulVariant::default_for(&gpu().0), &cfg, data);
        let mut params = engine.params().unwrap();
        // In the output layer's bias: every logit of class 0 is NaN (a NaN before a ReLU
        // may be clamped away).
        let layout = engine.setup().spec.layout();
        params[layout.layers[1].bias] = f32::NAN;
        engine.set_params(&params).unwrap();
        let sums = train(engine.as_mut(), 1);
        assert!(
            !sums[0].0[0][0].is_finite(),
            "{fusions:?}: the loss is finite"
        );
        assert_bits(
            &format!("{fusions:?}: parameters changed"),
            &sums[0].1,
            &params,
        );
    }
}
