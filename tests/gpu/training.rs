//! Whole training steps: CPU gradients against finite differences, the fast CPU engine
//! against the reference, GPU steps against CPU steps, end-to-end accuracy on real MNIST,
//! determinism, non-finite losses, and flat resource use over many epochs.

use crate::common;

use std::sync::atomic::AtomicBool;

use common::{On, gpu, mnist, uniform};
use wgtrain::RunConfig;
use wgtrain::cpu;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, StepSums};
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::{MatmulVariant, StepRecord};
use wgtrain::model::MlpSpec;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::step::{MEMBER_FIRST, MemberStep};
use wgtrain::train::{self, EpochReport, Trainer};

#[test]
fn cpu_gradients_match_finite_differences() {
    let spec = MlpSpec::new(6, &[5, 4], 3).unwrap();
    let layout = spec.layout();
    let params = spec.init(3);
    let x = uniform(1, 4 * 6, -1.0, 1.0);
    let y = [0u32, 2, 1, 2];
    let (_, _, grads) = cpu::loss_and_gradients(&layout, &params, &x, &y);
    let eps = 1e-3f32;
    let mut checked = 0;
    for s in &layout.layers {
        for i in (s.weight..s.weight + s.inputs * s.outputs).chain(s.bias..s.bias + s.outputs) {
            let mut plus = params.clone();
            plus[i] += eps;
            let mut minus = params.clone();
            minus[i] -= eps;
            let fd = (cpu::loss_and_gradients(&layout, &plus, &x, &y).0
                - cpu::loss_and_gradients(&layout, &minus, &x, &y).0)
                / (2.0 * f64::from(eps));
            let g = f64::from(grads[i]);
            assert!(
                (g - fd).abs() <= 5e-4 + 1e-2 * fd.abs(),
                "parameter {i}: analytic {g} vs finite difference {fd}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, spec.layout().trainable());
}

/// A hand-computed case: one sample, logits from a 1-layer model with zero weights give a
/// uniform softmax, so the loss is ln(C) and dlogits = (1/C - onehot).
#[test]
fn zero_weights_give_ln_c_loss_and_uniform_gradients() {
    let spec = MlpSpec::new(2, &[], 4).unwrap();
    let layout = spec.layout();
    let params = vec![0.0; layout.len];
    let (loss, _, grads) = cpu::loss_and_gradients(&layout, &params, &[1.0, 2.0], &[1]);
    assert!((loss - 4f64.ln()).abs() < 1e-7);
    let b = layout.layers[0].bias;
    assert_eq!(&grads[b..b + 4], &[0.25, -0.75, 0.25, 0.25]);
    let w = layout.layers[0].weight;
    assert_eq!(
        &grads[w..w + 8],
        &[0.25, 0.5, -0.75, -1.5, 0.25, 0.5, 0.25, 0.5]
    );
}

/// Issue 10 item 1 at the evaluation level: a model whose logits are all 1e8 (zero
/// weights, every bias 1e8) evaluated to loss 0.0000 on both paths. A uniform softmax over
/// C = 10 classes has loss ln 10 = 2.302585 for every sample, whatever the label.
#[test]
fn regression_eval_with_all_logits_near_1e8_reports_ln_c() {
    let n = 7;
    let data = Dataset {
        images: common::integers(5, n * 4, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: common::integers(6, n, 10),
        rows: 2,
        cols: 2,
    };
    let spec = MlpSpec::new(4, &[], 10).unwrap();
    let layout = spec.layout();
    let mut params = vec![0.0; layout.len];
    let b = layout.layers[0].bias;
    params[b..b + 10].fill(1e8);
    let cfg = RunConfig {
        hidden: vec![],
        batch_size: 4,
        ..RunConfig::default()
    };
    for on in [On::default_gpu(), On::Cpu] {
        let mut engine = common::engine(on, &cfg, common::data(&data, &data)).unwrap();
        engine.set_params(0, &params).unwrap();
        let eval = engine.evaluate(wgtrain::engine::EvalSet::Test).unwrap()[0];
        assert_eq!(eval.samples, n);
        assert!(
            (eval.loss - 10f64.ln()).abs() < 1e-6,
            "{}: loss {} with every logit 1e8, want ln 10",
            on.name(),
            eval.loss
        );
    }
}

/// The member-step table of a single run (K = 1) whose step `s` has learning rate
/// `lr(s)`, step 0 the run's first (what `step_records(n, b, 0, lr)` encoded before the
/// learning rate moved out of the step record).
fn lr_table(steps: usize, lr: impl Fn(usize) -> f64) -> Vec<MemberStep> {
    (0..steps)
        .map(|s| MemberStep {
            lr: lr(s) as f32,
            flags: if s == 0 { MEMBER_FIRST } else { 0 },
            scale: 1.0,
        })
        .collect()
}

/// One epoch of the single run `engine` over `order` in `steps`, step s at `table[s]`.
fn train_single(
    engine: &mut dyn Engine,
    order: &[u32],
    steps: &[StepRecord],
    table: &[MemberStep],
) -> Vec<StepSums> {
    let stop = AtomicBool::new(false);
    let mut sums = engine
        .train_epoch(order, steps, table, &mut |_| {}, &stop)
        .unwrap();
    assert_eq!(sums.len(), 1, "a single run");
    sums.remove(0)
}

/// The single run's only member's report of the epoch `trainer` runs next.
fn run_epoch(trainer: &mut Trainer<'_>) -> wgtrain::Result<EpochReport> {
    trainer.run_epoch(&mut |_| {})?.remove(0).into_report()
}

fn reference_steps(
    spec: &MlpSpec,
    params: &[f32],
    data: &Dataset,
    order: &[u32],
    steps: &[StepRecord],
    table: &[MemberStep],
    sgd: &SgdConfig,
) -> (Vec<f64>, Vec<f32>) {
    let layout = spec.layout();
    let mut p = params.to_vec();
    let mut v = vec![0.0; p.len()];
    let no_decay = if sgd.decay_bias {
        vec![]
    } else {
        layout.bias_ranges()
    };
    let mut losses = vec![];
    for (st, ms) in steps.iter().zip(table) {
        let (x, y) = cpu::gather_normalize(
            &data.images,
            &data.labels,
            data.features(),
            order,
            st.offset as usize,
            st.batch as usize,
            0.0,
            1.0,
        );
        let (loss, _, g) = cpu::loss_and_gradients(&layout, &p, &x, &y);
        losses.push(loss);
        cpu::sgd_update(&mut p, &g, &mut v, sgd, ms.lr, ms.first(), &no_decay);
    }
    (losses, p)
}

#[test]
fn cpu_engine_steps_match_the_reference() {
    let data = mnist().train.head(1000);
    let spec = MlpSpec::new(784, &[32, 16], 10).unwrap();
    let params = spec.init(5);
    let sgd = SgdConfig {
        momentum: 0.9,
        nesterov: true,
        decay_bias: false,
        ..SgdConfig::default()
    };
    let order = train::epoch_order(&(0..1000).collect::<Vec<u32>>(), 5, 0);
    let steps = train::step_records(1000, 100);
    let table = lr_table(steps.len(), |i| 0.05 / (1.0 + i as f64));
    let (want_losses, want_params) =
        reference_steps(&spec, &params, &data, &order, &steps, &table, &sgd);
    let cfg = RunConfig {
        hidden: vec![32, 16],
        batch_size: 100,
        sgd,
        seed: 5,
        ..RunConfig::default()
    };
    let mut engine = common::engine(On::Cpu, &cfg, common::data(&data, &data)).unwrap();
    let sums = train_single(engine.as_mut(), &order, &steps, &table);
    for (i, (s, w)) in sums.iter().zip(&want_losses).enumerate() {
        let got = f64::from(s[0]) / f64::from(steps[i].batch);
        assert!(
            (got - w).abs() <= 1e-5 * w.abs(),
            "step {i}: cpu engine {got} vs reference {w}"
        );
    }
    common::assert_close(
        "params after 10 steps",
        &engine.params(0).unwrap(),
        &want_params,
        1e-5,
        1e-3,
    );
}

/// 20 steps on the GPU and on the CPU reference from the same weights and minibatches
/// (the last one partial): per-step losses agree to 1e-4 relative. Every matmul variant,
/// and autotuning's choice per shape (`--kernels auto`, the CLI's default: on a GPU, or in
/// the 32-lane leg of scripts/test.sh, among a GPU's candidates).
#[test]
fn twenty_gpu_steps_match_the_cpu_reference() {
    let n = 64 * 19 + 17;
    let data = mnist().train.head(n);
    let test = mnist().test.head(100);
    let spec = MlpSpec::new(784, &[256], 10).unwrap();
    let params = spec.init(1);
    let sgd = SgdConfig {
        momentum: 0.5,
        ..SgdConfig::default()
    };
    let order = train::epoch_order(&(0..n as u32).collect::<Vec<u32>>(), 1, 0);
    let steps = train::step_records(n, 64);
    assert_eq!(steps.len(), 20);
    let table = lr_table(steps.len(), |_| 0.1);
    let (want, want_params) = reference_steps(&spec, &params, &data, &order, &steps, &table, &sgd);
    let cfg = RunConfig {
        sgd,
        ..RunConfig::default()
    };
    let choices = MatmulVariant::ALL.map(MatmulChoice::from);
    for choice in choices.into_iter().chain([MatmulChoice::Auto]) {
        let variant = match choice {
            MatmulChoice::Fixed(v) => v.to_string(),
            MatmulChoice::Auto => "auto".to_string(),
        };
        let on = On::Gpu(choice);
        let mut engine = common::engine(on, &cfg, common::data(&data, &test)).unwrap();
        let sums = train_single(engine.as_mut(), &order, &steps, &table);
        for (i, (s, w)) in sums.iter().zip(&want).enumerate() {
            let got = f64::from(s[0]) / f64::from(steps[i].batch);
            assert!(
                (got - w).abs() <= 1e-4 * w.abs(),
                "{variant} step {i}: gpu {got} vs cpu {w}"
            );
        }
        common::assert_close(
            &format!("{variant} params after 20 steps"),
            &engine.params(0).unwrap(),
            &want_params,
            1e-5,
            1e-3,
        );
    }
}

/// A hidden layer of 4096 (a 64-wide grid of 4x4-register blocks per row) matches the CPU.
#[test]
fn wide_hidden_layer_matches_the_cpu() {
    let n = 200;
    let data = mnist().train.head(n);
    let spec = MlpSpec::new(784, &[4096], 10).unwrap();
    let params = spec.init(2);
    let sgd = SgdConfig::default();
    let order: Vec<u32> = (0..n as u32).collect();
    let steps = train::step_records(n, 100);
    let table = lr_table(steps.len(), |_| 0.05);
    let (want, want_params) = reference_steps(&spec, &params, &data, &order, &steps, &table, &sgd);
    let cfg = RunConfig {
        hidden: vec![4096],
        batch_size: 100,
        sgd,
        seed: 2,
        ..RunConfig::default()
    };
    let mut engine = common::engine(On::default_gpu(), &cfg, common::data(&data, &data)).unwrap();
    let sums = train_single(engine.as_mut(), &order, &steps, &table);
    for (i, (s, w)) in sums.iter().zip(&want).enumerate() {
        let got = f64::from(s[0]) / 100.0;
        assert!(
            (got - w).abs() <= 1e-4 * w.abs(),
            "step {i}: gpu {got} vs cpu {w}"
        );
    }
    common::assert_close(
        "params",
        &engine.params(0).unwrap(),
        &want_params,
        1e-5,
        1e-3,
    );
}

fn config(hidden: &[usize], epochs: usize, batch: usize, lr: f64, seed: u64) -> RunConfig {
    RunConfig {
        hidden: hidden.to_vec(),
        epochs,
        batch_size: batch,
        schedule: LrSchedule::new(lr, Schedule::Constant),
        sgd: SgdConfig::default(),
        seed,
        ..RunConfig::default()
    }
}

/// The end-to-end bar: 1 epoch, batch 64, lr 0.1, weight decay 1e-4, seed 1 on the
/// full MNIST reaches 92% test accuracy (PyTorch with the same setup: 92.6-92.9%).
#[test]
fn one_gpu_epoch_on_mnist_reaches_92_percent() {
    let m = mnist();
    let cfg = config(&[256], 1, 64, 0.1, 1);
    let mut engine = common::engine(On::default_gpu(), &cfg, m.into()).unwrap();
    let mut trainer = Trainer::new(&mut *engine).unwrap();
    let report = run_epoch(&mut trainer).unwrap();
    assert!(
        report.test_accuracy >= 0.92,
        "test accuracy {}",
        report.test_accuracy
    );
    assert!(
        report.train_loss < 0.6 && report.train_loss > 0.1,
        "train loss {}",
        report.train_loss
    );
}

/// Same seed, same adapter: bit-identical parameters and metrics after several epochs, on
/// the GPU and on the CPU path. No float atomics; every reduction runs in a fixed order.
#[test]
fn same_seed_gives_bit_identical_runs_on_gpu_and_cpu() {
    let train_set = mnist().train.head(3000);
    let test = mnist().test.head(500);
    let run = |on: On| {
        let cfg = RunConfig {
            sgd: SgdConfig {
                momentum: 0.9,
                ..SgdConfig::default()
            },
            ..config(&[64], 3, 50, 0.05, 7)
        };
        let mut engine = common::engine(on, &cfg, common::data(&train_set, &test)).unwrap();
        let mut trainer = Trainer::new(&mut *engine).unwrap();
        let reports: Vec<(f64, f64, f64)> = (0..3)
            .map(|_| run_epoch(&mut trainer).unwrap())
            .map(|r| (r.train_loss, r.test_loss, r.test_accuracy))
            .collect();
        let bits: Vec<u32> = trainer
            .engine()
            .params(0)
            .unwrap()
            .iter()
            .map(|v| v.to_bits())
            .collect();
        (reports, bits)
    };
    for on in [On::default_gpu(), On::Cpu] {
        let (a, pa) = run(on);
        let (b, pb) = run(on);
        let device = on.name();
        assert_eq!(a, b, "metrics differ between two runs ({device})");
        assert!(pa == pb, "parameters differ between two runs ({device})");
    }
}

/// A learning rate that blows up stops the run with an error naming the epoch, the step and
/// the last finite loss, and the GPU keeps the parameters of the last finite step.
#[test]
fn regression_non_finite_loss_stops_the_run_and_keeps_finite_parameters() {
    let train_set = mnist().train.head(2000);
    let test = mnist().test.head(200);
    let cfg = config(&[64], 2, 100, 1e6, 1);
    for on in [On::default_gpu(), On::Cpu] {
        let mut engine = common::engine(on, &cfg, common::data(&train_set, &test)).unwrap();
        let mut trainer = Trainer::new(&mut *engine).unwrap();
        let err = run_epoch(&mut trainer).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, wgtrain::Error::NonFiniteLoss { epoch: 1, .. }),
            "{msg}"
        );
        assert!(
            msg.contains("epoch 1, step") && msg.contains("last finite"),
            "{msg}"
        );
        let p = trainer.engine().params(0).unwrap();
        assert!(
            p.iter().all(|v| v.is_finite()),
            "parameters went non-finite ({})",
            on.name()
        );
    }
}

/// Full-batch training (B = 60,000, grids far past 65,535 workgroups in the gather) matches
/// the CPU, on a synthetic set small enough per sample to fit the storage-binding limit.
#[test]
fn full_batch_of_60000_matches_the_cpu() {
    let n = 60_000;
    let features = 100;
    let images: Vec<u8> = common::integers(3, n * features, 256)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let labels = common::integers(4, n, 10);
    let data = Dataset {
        images,
        labels,
        rows: 10,
        cols: 10,
    };
    let spec = MlpSpec::new(features, &[16], 10).unwrap();
    let params = spec.init(1);
    let sgd = SgdConfig::default();
    let order: Vec<u32> = (0..n as u32).collect();
    let steps = train::step_records(n, n);
    let table = lr_table(steps.len(), |_| 0.5);
    let (want, want_params) = reference_steps(&spec, &params, &data, &order, &steps, &table, &sgd);
    let cfg = RunConfig {
        hidden: vec![16],
        batch_size: n,
        sgd,
        ..RunConfig::default()
    };
    let mut engine = common::engine(On::default_gpu(), &cfg, common::data(&data, &data)).unwrap();
    let sums = train_single(engine.as_mut(), &order, &steps, &table);
    let got = f64::from(sums[0][0]) / n as f64;
    assert!(
        (got - want[0]).abs() <= 1e-4 * want[0].abs(),
        "gpu {got} vs cpu {}",
        want[0]
    );
    common::assert_close(
        "params after a full-batch step",
        &engine.params(0).unwrap(),
        &want_params,
        1e-5,
        1e-3,
    );
}

/// Issue 10 item 2: one full-batch step of 70,000 samples was 10-20% off in the weights and
/// 14% in the biases on lavapipe, whose shaders stop every loop after 65,535 iterations:
/// the weight gradients sum K = 70,000 and the bias gradients 70,000 rows. Against the CPU
/// reference (f64), on 10x10 images to keep it fast.
#[test]
fn regression_loop_cap_full_batch_step_of_70000_matches_the_cpu() {
    let n = 70_000;
    let features = 100;
    let images: Vec<u8> = common::integers(7, n * features, 256)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let labels = common::integers(8, n, 10);
    let data = Dataset {
        images,
        labels,
        rows: 10,
        cols: 10,
    };
    let spec = MlpSpec::new(features, &[16], 10).unwrap();
    let params = spec.init(2);
    let sgd = SgdConfig::default();
    let order: Vec<u32> = (0..n as u32).collect();
    let steps = train::step_records(n, n);
    let table = lr_table(steps.len(), |_| 0.5);
    let (want, want_params) = reference_steps(&spec, &params, &data, &order, &steps, &table, &sgd);
    let test = data.head(10);
    // The adapter's default kernel (its column sums split on lavapipe) and the register
    // kernel (its weight gradients split too); every variant's split K is pinned in
    // tests/kernel_parity.rs, where the tiled and rows kernels cost far less than here.
    let default = MatmulVariant::default_for(&gpu().0);
    let cfg = RunConfig {
        hidden: vec![16],
        batch_size: n,
        sgd,
        seed: 2,
        ..RunConfig::default()
    };
    for variant in [default, MatmulVariant::Register] {
        let on = On::gpu_variant(variant);
        let mut engine = common::engine(on, &cfg, common::data(&data, &test)).unwrap();
        // Past the loop cap (lavapipe's: 70,000 rows) the loss launch leaves the last bias
        // gradient to a column_sum launch: 10 dispatches, not 9 (and one fewer where layer
        // 0's forward reads the pixels, the gather fusion: its K = 100 fits).
        if gpu().0.loop_cap.is_some() {
            let fused = common::gather_fuses(variant, features, 16, n, false);
            assert_eq!(
                engine.dispatches_per_step(),
                10 - usize::from(fused),
                "{variant}: unfused loss step"
            );
        }
        let sums = train_single(engine.as_mut(), &order, &steps, &table);
        let got = f64::from(sums[0][0]) / n as f64;
        assert!(
            (got - want[0]).abs() <= 1e-4 * want[0].abs(),
            "{variant}: gpu {got} vs cpu {}",
            want[0]
        );
        common::assert_close(
            &format!("{variant}: params after a full-batch step of {n}"),
            &engine.params(0).unwrap(),
            &want_params,
            1e-5,
            1e-3,
        );
    }
}

/// Full-batch MNIST needs a 188 MB activation binding: on an adapter whose storage-binding
/// limit is smaller, the engine refuses with LimitExceeded and a hint, never zeros.
#[test]
fn regression_activation_over_the_binding_limit_is_refused_with_a_hint() {
    let m = mnist();
    let (g, _) = gpu();
    let needed = 60_000u64 * 784 * 4;
    if needed <= g.limits.max_storage_buffer_binding_size {
        // A GPU with large limits trains it instead: nothing to refuse.
        return;
    }
    let cfg = RunConfig {
        batch_size: 60_000,
        ..RunConfig::default()
    };
    let on = On::gpu_variant(MatmulVariant::Register);
    let err = common::engine(on, &cfg, m.into()).err().expect("refused");
    match &err {
        wgtrain::Error::LimitExceeded {
            requested,
            max,
            hint,
            ..
        } => {
            assert_eq!(*requested, needed);
            assert_eq!(*max, g.limits.max_storage_buffer_binding_size);
            assert!(hint.contains("--batch-size"), "{hint}");
        }
        e => panic!("expected LimitExceeded, got {e}"),
    }
}
