//! Population training: member k of a population trains exactly as a single run of its
//! configuration (same seed, same data order), on the CPU and GPU paths, fused and in f16;
//! divergence of one member (a non-finite or an exploded loss) leaves the others going.
//! Since issue 22 a single run is the same engine with one member, so "a single run" here
//! is that engine opened for one configuration.

use crate::common;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, EvalSet, RunData};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::{Fusions, MatmulVariant};
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::train::{EpochReport, MemberOutcome, MemberStatus, Trainer};
use wgtrain::{Device, Precision, RunConfig};

use common::{On, gpu16};

/// A seeded synthetic set of `n` 7 x 5 images (35 features: not a multiple of 4 or of a
/// workgroup) over 10 classes.
fn synthetic(seed: u64, n: usize) -> Dataset {
    Dataset {
        images: common::integers(seed, n * 35, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: common::integers(seed + 1, n, 10),
        rows: 7,
        cols: 5,
    }
}

/// K configurations that differ in everything a member may have of its own: learning rate
/// and schedule, weight decay (coupled or decoupled), momentum, dampening, nesterov, bias
/// decay, initialisation seed and epochs.
fn member_configs(k: usize, batch: usize) -> Vec<RunConfig> {
    (0..k)
        .map(|m| {
            let lr = 0.02 * (1.0 + m as f64);
            RunConfig {
                hidden: vec![13],
                batch_size: batch,
                epochs: 2 + m % 2,
                schedule: if m % 3 == 2 {
                    LrSchedule::new(
                        lr,
                        Schedule::Step {
                            step_size: 1,
                            gamma: 0.5,
                        },
                    )
                } else {
                    LrSchedule::new(lr, Schedule::Constant)
                },
                sgd: SgdConfig {
                    weight_decay: [0.0, 1e-3, 5e-4][m % 3],
                    momentum: [0.0, 0.9, 0.5, 0.9][m % 4],
                    dampening: if m % 4 == 2 { 0.1 } else { 0.0 },
                    nesterov: m % 4 == 3,
                    decoupled_weight_decay: m % 2 == 1,
                    decay_bias: m % 5 != 4,
                },
                seed: 7,
                init_seed: Some(100 + m as u64),
                validation_split: 0.2,
                ..RunConfig::default()
            }
        })
        .collect()
}

/// Trains every member alone and as one population; the reports (validation and test
/// metrics) and the final weights must agree exactly.
fn assert_population_matches_single_runs(on: On, k: usize, n: usize, batch: usize) {
    assert_members_match_single_runs(on.device(), &member_configs(k, batch), n);
}

/// Trains every member of `configs` alone and as one population on `device`, on `n`
/// synthetic samples; the reports (validation and test metrics) and the final weights must
/// agree exactly.
fn assert_members_match_single_runs(device: Device<'_>, configs: &[RunConfig], n: usize) {
    let (train, test) = (synthetic(1, n), synthetic(3, 37));
    let data = RunData {
        train: &train,
        test: &test,
        classes: 10,
        micro_batch: None,
    };
    let mut pop = wgtrain::open(device, configs, data).unwrap();
    let histories = Trainer::new(pop.as_mut())
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap();
    for (m, cfg) in configs.iter().enumerate() {
        let mut single = wgtrain::open(device, std::slice::from_ref(cfg), data).unwrap();
        let want = Trainer::new(single.as_mut())
            .unwrap()
            .fit_single(&mut |_| Ok(()))
            .unwrap();
        assert_eq!(histories[m].len(), want.len(), "member {m}: epochs");
        for (got, want) in histories[m].iter().zip(&want) {
            assert_eq!(
                got.val_loss, want.val_loss,
                "member {m} epoch {}",
                want.epoch
            );
            assert_eq!(got.val_accuracy, want.val_accuracy, "member {m}");
            assert_eq!(got.test_loss, want.test_loss, "member {m}");
            assert_eq!(got.train_loss, want.train_loss, "member {m}");
            assert_eq!(got.lr, want.lr, "member {m}");
        }
        assert_eq!(
            pop.params(m).unwrap(),
            single.params(0).unwrap(),
            "member {m}: final weights"
        );
    }
}

#[test]
fn cpu_population_members_train_exactly_as_single_runs() {
    for k in [1, 3, 8] {
        // 97 samples, 20% held out: 78 training samples in minibatches of 16 (the last 14).
        assert_population_matches_single_runs(On::Cpu, k, 97, 16);
    }
}

/// Issue 28: two hidden layers, so that a product between two hidden layers (the members'
/// own operands, batched) and its ReLU mask run on the members' interleaved outputs
/// `[B, K·H]`; K = 3 with hidden sizes not a multiple of anything (13, 6).
#[test]
fn cpu_population_with_two_hidden_layers_trains_exactly_as_single_runs() {
    let mut configs = member_configs(3, 16);
    configs.iter_mut().for_each(|c| c.hidden = vec![13, 6]);
    assert_members_match_single_runs(Device::Cpu, &configs, 97);
}

/// Issue 22: the CPU engine steps its members in parallel, each with its own SGD
/// settings; three members that differ pairwise in learning rate, weight decay, momentum,
/// nesterov and bias decay train exactly as their single runs.
#[test]
fn cpu_members_with_their_own_sgd_settings_train_exactly_as_single_runs() {
    let settings = [
        (0.05, 0.0, 0.0, false, true),
        (0.02, 1e-3, 0.9, true, false),
        (0.08, 5e-3, 0.5, false, false),
    ];
    let configs: Vec<RunConfig> = settings
        .iter()
        .enumerate()
        .map(
            |(m, &(lr, weight_decay, momentum, nesterov, decay_bias))| RunConfig {
                schedule: LrSchedule::new(lr, Schedule::Constant),
                sgd: SgdConfig {
                    weight_decay,
                    momentum,
                    nesterov,
                    decay_bias,
                    ..SgdConfig::default()
                },
                epochs: 2,
                ..member_configs(3, 16)[m].clone()
            },
        )
        .collect();
    assert_members_match_single_runs(Device::Cpu, &configs, 97);
}

#[test]
fn a_diverging_member_is_frozen_and_the_others_train_on() {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = RunData {
        train: &train,
        test: &test,
        classes: 10,
        micro_batch: None,
    };
    let mut configs = member_configs(3, 16);
    configs[1].schedule = LrSchedule::new(1e30, Schedule::Constant);
    let mut pop = common::population(On::Cpu, &configs, data).unwrap();
    let before = pop.params(1).unwrap();
    let mut trainer = Trainer::new(pop.as_mut()).unwrap();
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert!(matches!(outcomes[0], MemberOutcome::Trained(_)));
    assert!(
        matches!(&outcomes[1], MemberOutcome::Diverged(e) if e.to_string().contains("epoch 1")),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(trainer.status(1), MemberStatus::Diverged(_)));
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert!(
        matches!(outcomes[1], MemberOutcome::Idle),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(outcomes[2], MemberOutcome::Trained(_)));
    let after = trainer.engine().params(1).unwrap();
    assert!(after.iter().all(|p| p.is_finite()));
    assert_ne!(before, after, "the first step's update was finite");
    let _ = trainer.engine().evaluate(EvalSet::Validation).unwrap();
}

#[test]
fn gpu_population_members_train_exactly_as_single_runs() {
    for k in [1, 3, 8] {
        assert_population_matches_single_runs(On::default_gpu(), k, 97, 16);
    }
}

/// Another variant than the adapter's default (the register kernel runs everywhere): the
/// member axis is in every matmul kernel, not only the default one.
#[test]
fn gpu_population_matches_single_runs_on_the_register_kernel() {
    let on = On::gpu_variant(wgtrain::gpu::MatmulVariant::Register);
    assert_population_matches_single_runs(on, 3, 97, 16);
}

/// Issue 12: a step is as many dispatches for K members as for one run (unfused: 9 for one
/// hidden layer, 13 for two: `1 + L + 1 + (2L - 1) + (L - 1) + 1` for L layers; the last
/// layer's bias gradient is the loss launch's). Issue 22 on purpose: the population now
/// runs the single run's fusions too, so the fused population step is the fused single
/// step (it was the unfused one).
#[test]
fn gpu_population_step_is_as_many_dispatches_as_a_single_run() {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = common::data(&train, &test);
    for hidden in [vec![13], vec![13, 6]] {
        let mut configs = member_configs(5, 16);
        configs.iter_mut().for_each(|c| c.hidden = hidden.clone());
        for fusions in [Fusions::ALL, Fusions::NONE] {
            let device = with_fusions(On::default_gpu().device(), fusions);
            let pop = wgtrain::open(device, &configs, data).unwrap();
            let single = wgtrain::open(device, &configs[..1], data).unwrap();
            assert_eq!(
                pop.dispatches_per_step(),
                single.dispatches_per_step(),
                "{hidden:?}, {fusions:?}"
            );
            if fusions == Fusions::NONE {
                assert_eq!(
                    pop.dispatches_per_step(),
                    4 * hidden.len() + 5,
                    "{hidden:?}"
                );
            }
        }
    }
}

/// `device` (the GPU) allowed only `fusions`.
fn with_fusions(device: Device<'_>, fusions: Fusions) -> Device<'_> {
    match device {
        Device::Gpu {
            gpu,
            kernels,
            matmul,
            ..
        } => Device::Gpu {
            gpu,
            kernels,
            matmul,
            fusions,
        },
        cpu => cpu,
    }
}

/// One member's loss turns non-finite on the GPU: its SGD stops there (status header of its
/// own), its later sums read NaN, and the other members train exactly as alone.
#[test]
fn gpu_a_diverging_member_is_frozen_and_the_others_train_on() {
    a_diverging_member_is_frozen_and_the_others_train_as_alone(On::default_gpu());
}

/// Issue 28: on the CPU, a diverged member in the middle splits the members that train
/// into two runs (the wide layer-0 products then cover members 0 and 2 apart); the others
/// still train exactly as alone.
#[test]
fn cpu_a_diverging_member_in_the_middle_leaves_the_others_as_alone() {
    a_diverging_member_is_frozen_and_the_others_train_as_alone(On::Cpu);
}

/// Member 1 of 3 diverges in its first step; it stays frozen and finite, and members 0 and
/// 2 end two epochs with their single runs' weights.
fn a_diverging_member_is_frozen_and_the_others_train_as_alone(on: On) {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = common::data(&train, &test);
    let mut configs = member_configs(3, 16);
    configs[1].schedule = LrSchedule::new(1e30, Schedule::Constant);
    let mut pop = common::population(on, &configs, data).unwrap();
    let mut trainer = Trainer::new(pop.as_mut()).unwrap();
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert!(
        matches!(&outcomes[1], MemberOutcome::Diverged(e) if e.to_string().contains("epoch 1")),
        "{:?}",
        outcomes[1]
    );
    let frozen = trainer.engine().params(1).unwrap();
    assert!(
        frozen.iter().all(|p| p.is_finite()),
        "the last finite step's weights"
    );
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert!(
        matches!(outcomes[1], MemberOutcome::Idle),
        "{:?}",
        outcomes[1]
    );
    assert_eq!(trainer.engine().params(1).unwrap(), frozen);
    // Members 0 and 2 trained two epochs as single runs do.
    for m in [0, 2] {
        let mut cfg = configs[m].clone();
        cfg.epochs = 2;
        let mut single = common::engine(on, &cfg, data).unwrap();
        Trainer::new(single.as_mut())
            .unwrap()
            .fit_single(&mut |_| Ok(()))
            .unwrap();
        assert_eq!(
            trainer.engine().params(m).unwrap(),
            single.params(0).unwrap(),
            "member {m}"
        );
    }
}

/// set_params, copy_member (parameters and momentum, on the device) and replace_member on
/// the GPU: a copied member then trains as its source does, and a replaced one as a fresh
/// run of its configuration.
#[test]
fn gpu_copy_and_replace_members() {
    copy_and_replace_members(On::default_gpu());
}

/// Issue 28: the same on the CPU, whose members' tensors are stacked (copy, replace and
/// set_params move one member's slice of every tensor).
#[test]
fn cpu_copy_and_replace_members() {
    copy_and_replace_members(On::Cpu);
}

fn copy_and_replace_members(on: On) {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = common::data(&train, &test);
    let mut configs = member_configs(3, 16);
    for c in &mut configs {
        c.sgd = configs_sgd();
        c.schedule = LrSchedule::new(0.05, Schedule::Constant);
    }
    let mut pop = common::population(on, &configs, data).unwrap();
    let mut trainer = Trainer::new(pop.as_mut()).unwrap();
    trainer.run_epoch(&mut |_| {}).unwrap();
    trainer.exploit(0, 2, configs[0].clone()).unwrap();
    let engine = trainer.engine();
    assert_eq!(engine.params(2).unwrap(), engine.params(0).unwrap());
    trainer.run_epoch(&mut |_| {}).unwrap();
    let engine = trainer.engine();
    assert_eq!(
        engine.params(2).unwrap(),
        engine.params(0).unwrap(),
        "same weights, momentum and settings train alike"
    );
    let init = configs[1].clone();
    engine.replace_member(1, &init).unwrap();
    let fresh = wgtrain::engine::RunSetup::new(&init, data).unwrap().init;
    assert_eq!(engine.params(1).unwrap(), fresh);
    engine.set_params(0, &fresh).unwrap();
    assert_eq!(engine.params(0).unwrap(), fresh);
}

fn configs_sgd() -> SgdConfig {
    SgdConfig {
        momentum: 0.9,
        weight_decay: 1e-3,
        ..SgdConfig::default()
    }
}

/// The reproducible part of an epoch report (everything but the wall times).
type Metrics = (usize, f64, f64, f64, f64, f64, Option<f64>, Option<f64>);

fn metrics(r: &EpochReport) -> Metrics {
    (
        r.epoch,
        r.lr,
        r.train_loss,
        r.train_accuracy,
        r.test_loss,
        r.test_accuracy,
        r.val_loss,
        r.val_accuracy,
    )
}

/// Trains every member of `engine` to its end; every member's per-epoch metrics and final
/// parameters (as bits).
fn fit_all(engine: &mut dyn Engine) -> Vec<(Vec<Metrics>, Vec<u32>)> {
    let histories = Trainer::new(&mut *engine)
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap();
    histories
        .iter()
        .enumerate()
        .map(|(m, h)| {
            let params = engine.params(m).unwrap();
            (
                h.iter().map(metrics).collect(),
                params.iter().map(|p| p.to_bits()).collect(),
            )
        })
        .collect()
}

/// K MNIST members (784-256-10, minibatch 64) that differ in learning rate and
/// schedule, weight decay (coupled and decoupled), momentum, dampening, nesterov, bias
/// decay and initialisation.
fn mnist_members(k: usize, precision: Precision) -> Vec<RunConfig> {
    (0..k)
        .map(|m| {
            let lr = 0.05 + 0.01 * m as f64;
            RunConfig {
                hidden: vec![256],
                batch_size: 64,
                epochs: 2,
                schedule: if m % 3 == 1 {
                    LrSchedule::new(
                        lr,
                        Schedule::Step {
                            step_size: 1,
                            gamma: 0.5,
                        },
                    )
                } else {
                    LrSchedule::new(lr, Schedule::Constant)
                },
                sgd: SgdConfig {
                    weight_decay: [0.0, 1e-4, 5e-4][m % 3],
                    momentum: [0.0, 0.9, 0.5, 0.9][m % 4],
                    dampening: if m % 4 == 2 { 0.1 } else { 0.0 },
                    nesterov: m % 4 == 3,
                    decoupled_weight_decay: m % 2 == 1,
                    decay_bias: m % 5 != 4,
                },
                seed: 3,
                init_seed: Some(40 + m as u64),
                validation_split: 0.1,
                precision,
                ..RunConfig::default()
            }
        })
        .collect()
}

/// Issue 22, item 4: a K = 8 population of 784-256-10 on 2,000 MNIST samples (batch 64,
/// two epochs; 1,800 training samples, so each epoch ends on a partial minibatch of 8) runs
/// the 5 dispatches of one fused model (gather in layer 0's product, output layer in the
/// loss launch, SGD in the weight-gradient epilogues), is bit-identical to the same
/// population with no fusion (9 dispatches), and member k is bit-identical to its own fused
/// single run: every epoch's metrics and the final parameters.
#[test]
fn gpu_k8_mnist_population_is_five_dispatches_and_bit_identical_to_unfused_and_single_runs() {
    let mnist = common::mnist();
    let (train, test) = (mnist.train.head(2000), mnist.test.head(1000));
    let data = common::data(&train, &test);
    let configs = mnist_members(8, Precision::F32);
    let (gpu, kernels) = common::gpu();
    // A fixed kernel: autotuning could pick different kernels for K = 8 and K = 1.
    let matmul = MatmulVariant::default_for(gpu).into();
    let open = |fusions, configs: &[RunConfig]| {
        GpuEngine::new(gpu, kernels, matmul, fusions, configs, data).unwrap()
    };
    let mut fused = open(Fusions::ALL, &configs);
    assert_eq!(fused.dispatches_per_step(), 5);
    assert_eq!(fused.fusions_applied(), ["gather", "output", "update"]);
    let mut unfused = open(Fusions::NONE, &configs);
    assert_eq!(unfused.dispatches_per_step(), 9);
    assert!(unfused.fusions_applied().is_empty());
    let got = fit_all(&mut fused);
    let want = fit_all(&mut unfused);
    assert_eq!(got.len(), 8);
    for (m, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.0.len(), 2, "member {m}: epochs");
        assert_eq!(g.0, w.0, "member {m}: metrics, fused vs unfused");
        assert!(g.1 == w.1, "member {m}: parameters, fused vs unfused");
    }
    for (m, cfg) in configs.iter().enumerate() {
        let mut single = open(Fusions::ALL, std::slice::from_ref(cfg));
        assert_eq!(single.dispatches_per_step(), 5);
        let alone = fit_all(&mut single).remove(0);
        assert_eq!(got[m].0, alone.0, "member {m}: metrics vs its single run");
        assert!(
            got[m].1 == alone.1,
            "member {m}: parameters vs its single run"
        );
    }
    // The members really differ, and learned.
    for (m, g) in got.iter().enumerate() {
        let (first, last) = (&g.0[0], &g.0[1]);
        eprintln!("member {m}: {last:?}");
        assert!(last.2 < first.2, "member {m}: {:?}", g.0);
        assert!(last.7.unwrap() > 0.5, "member {m}: {:?}", g.0);
    }
    assert!(got[0].1 != got[1].1);
}

/// Issue 22, item 4: `--precision f16` populations train (the population engine refused
/// f16 before), and member k of an f16 population is bit-identical to its f16 single run.
#[test]
fn gpu_f16_population_trains_and_members_equal_their_f16_single_runs() {
    let (gpu, kernels) = gpu16();
    assert!(
        gpu.features.contains(wgpu::Features::SHADER_F16),
        "this test needs an adapter with SHADER_F16 (lavapipe has it); {} lacks it",
        gpu.info.name
    );
    let mnist = common::mnist();
    let (train, test) = (mnist.train.head(1000), mnist.test.head(500));
    let data = common::data(&train, &test);
    let configs = mnist_members(3, Precision::F16);
    let matmul = MatmulVariant::default_for(gpu).into();
    let open = |configs: &[RunConfig]| {
        GpuEngine::new(gpu, kernels, matmul, Fusions::ALL, configs, data).unwrap()
    };
    let mut pop = open(&configs);
    assert!(
        pop.describe().contains("precision f16"),
        "{}",
        pop.describe()
    );
    let got = fit_all(&mut pop);
    for (m, cfg) in configs.iter().enumerate() {
        let mut single = open(std::slice::from_ref(cfg));
        assert_eq!(pop.dispatches_per_step(), single.dispatches_per_step());
        let alone = fit_all(&mut single).remove(0);
        assert_eq!(
            got[m].0, alone.0,
            "member {m}: metrics vs its f16 single run"
        );
        assert!(
            got[m].1 == alone.1,
            "member {m}: parameters vs its f16 single run"
        );
        let (first, last) = (&got[m].0[0], &got[m].0[1]);
        eprintln!("f16 member {m}: {last:?}");
        assert!(last.2 < first.2, "member {m}: {:?}", got[m].0);
        assert!(last.7.unwrap() > 0.5, "member {m}: {:?}", got[m].0);
    }
}

/// Issue 26 item 7 for populations: a member whose loss stays finite but explodes (lr
/// 1e3: its epoch's mean loss over 100x its first step's) is stopped with
/// `Error::LossExploded` while the member beside it trains on exactly as alone;
/// `Trainer::fit_single` returns the error for the same run alone. On both paths.
#[test]
fn an_exploding_member_is_stopped_and_the_others_train_on() {
    let mnist = common::mnist();
    let (train, test) = (mnist.train.head(1000), mnist.test.head(200));
    let data = common::data(&train, &test);
    let sane = RunConfig {
        hidden: vec![32],
        batch_size: 50,
        epochs: 2,
        schedule: LrSchedule::new(0.05, Schedule::Constant),
        seed: 4,
        validation_split: 0.1,
        ..RunConfig::default()
    };
    let wild = RunConfig {
        schedule: LrSchedule::new(1e3, Schedule::Constant),
        init_seed: Some(9),
        ..sane.clone()
    };
    for on in [On::Cpu, On::default_gpu()] {
        let name = on.name();
        let configs = [sane.clone(), wild.clone()];
        let mut pop = common::population(on, &configs, data).unwrap();
        let mut trainer = Trainer::new(pop.as_mut()).unwrap();
        let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
        assert!(matches!(outcomes[0], MemberOutcome::Trained(_)), "{name}");
        match &outcomes[1] {
            MemberOutcome::Diverged(e @ wgtrain::Error::LossExploded { epoch: 1, .. }) => {
                assert!(e.to_string().contains("--lr"), "{name}: {e}")
            }
            o => panic!("{name}: member 1 should have exploded: {o:?}"),
        }
        assert!(matches!(trainer.status(1), MemberStatus::Diverged(_)));
        let exploded = trainer.engine().params(1).unwrap();
        assert!(
            exploded.iter().all(|p| p.is_finite()),
            "{name}: a finite loss"
        );
        let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
        assert!(matches!(outcomes[0], MemberOutcome::Trained(_)), "{name}");
        assert!(matches!(outcomes[1], MemberOutcome::Idle), "{name}");
        assert!(!trainer.any_training(), "{name}");
        assert_eq!(
            trainer.engine().params(1).unwrap(),
            exploded,
            "{name}: the stopped member no longer steps"
        );
        // The sane member trained exactly as alone.
        let mut single = common::engine(on, &sane, data).unwrap();
        Trainer::new(single.as_mut())
            .unwrap()
            .fit_single(&mut |_| Ok(()))
            .unwrap();
        assert_eq!(
            trainer.engine().params(0).unwrap(),
            single.params(0).unwrap(),
            "{name}: the sane member"
        );
        // The wild run alone: fit_single ends with the error.
        let mut alone = common::engine(on, &wild, data).unwrap();
        let err = Trainer::new(alone.as_mut())
            .unwrap()
            .fit_single(&mut |_| Ok(()))
            .unwrap_err();
        assert!(
            matches!(err, wgtrain::Error::LossExploded { epoch: 1, .. }),
            "{name}: {err}"
        );
    }
}
