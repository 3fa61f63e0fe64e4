//! Population training: member k of a population trains exactly as a single run of its
//! configuration (same seed, same data order), on the CPU and GPU paths; divergence of one
//! member leaves the others going.

mod common;

use wgtrain::data::Dataset;
use wgtrain::engine::{EvalSet, RunData};
use wgtrain::optim::SgdConfig;
use wgtrain::population::{MemberOutcome, MemberStatus, PopulationTrainer};
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::train::Trainer;
use wgtrain::{Device, RunConfig, open_population};

use common::On;

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
    let (train, test) = (synthetic(1, n), synthetic(3, 37));
    let data = RunData {
        train: &train,
        test: &test,
        classes: 10,
    };
    let configs = member_configs(k, batch);
    let mut pop = open_population(on.device(), &configs, data).unwrap();
    let histories = PopulationTrainer::new(pop.as_mut())
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap();
    for (m, cfg) in configs.iter().enumerate() {
        let mut single = common::engine(on, cfg, data).unwrap();
        let want = Trainer::new(single.as_mut())
            .unwrap()
            .fit(&mut |_, _| Ok(()))
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
            single.params().unwrap(),
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

#[test]
fn a_diverging_member_is_frozen_and_the_others_train_on() {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = RunData {
        train: &train,
        test: &test,
        classes: 10,
    };
    let mut configs = member_configs(3, 16);
    configs[1].schedule = LrSchedule::new(1e30, Schedule::Constant);
    let mut pop = open_population(Device::Cpu, &configs, data).unwrap();
    let before = pop.params(1).unwrap();
    let mut trainer = PopulationTrainer::new(pop.as_mut()).unwrap();
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert!(matches!(outcomes[0], MemberOutcome::Trained(_)));
    assert!(
        matches!(&outcomes[1], MemberOutcome::Diverged(msg) if msg.contains("epoch 1")),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(trainer.status(1), MemberStatus::Diverged(_)));
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert_eq!(outcomes[1], MemberOutcome::Idle);
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

/// Issue 12: a step is as many dispatches for K members as for one unfused run (9 for one
/// hidden layer, 13 for two: `1 + L + 1 + (2L - 1) + (L - 1) + 1` for L layers; the last
/// layer's bias gradient is the loss launch's).
#[test]
fn gpu_population_step_is_as_many_dispatches_as_a_single_run() {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = common::data(&train, &test);
    for hidden in [vec![13], vec![13, 6]] {
        let mut configs = member_configs(5, 16);
        configs.iter_mut().for_each(|c| c.hidden = hidden.clone());
        let pop = open_population(On::default_gpu().device(), &configs, data).unwrap();
        // Populations run the unfused step.
        let (gpu, kernels) = common::gpu();
        let unfused = wgtrain::Device::Gpu {
            gpu,
            kernels,
            matmul: wgtrain::gpu::MatmulVariant::default_for(gpu).into(),
            fusions: wgtrain::gpu::Fusions::NONE,
        };
        let single = wgtrain::open(unfused, &configs[0], data).unwrap();
        assert_eq!(pop.dispatches_per_step(), single.dispatches_per_step());
        assert_eq!(
            pop.dispatches_per_step(),
            4 * hidden.len() + 5,
            "{hidden:?}"
        );
    }
}

/// One member's loss turns non-finite on the GPU: its SGD stops there (status header of its
/// own), its later sums read NaN, and the other members train exactly as alone.
#[test]
fn gpu_a_diverging_member_is_frozen_and_the_others_train_on() {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = common::data(&train, &test);
    let on = On::default_gpu();
    let mut configs = member_configs(3, 16);
    configs[1].schedule = LrSchedule::new(1e30, Schedule::Constant);
    let mut pop = open_population(on.device(), &configs, data).unwrap();
    let mut trainer = PopulationTrainer::new(pop.as_mut()).unwrap();
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert!(
        matches!(&outcomes[1], MemberOutcome::Diverged(msg) if msg.contains("epoch 1")),
        "{:?}",
        outcomes[1]
    );
    let frozen = trainer.engine().params(1).unwrap();
    assert!(
        frozen.iter().all(|p| p.is_finite()),
        "the last finite step's weights"
    );
    let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
    assert_eq!(outcomes[1], MemberOutcome::Idle);
    assert_eq!(trainer.engine().params(1).unwrap(), frozen);
    // Members 0 and 2 trained two epochs as single runs do.
    for m in [0, 2] {
        let mut cfg = configs[m].clone();
        cfg.epochs = 2;
        let mut single = common::engine(on, &cfg, data).unwrap();
        Trainer::new(single.as_mut())
            .unwrap()
            .fit(&mut |_, _| Ok(()))
            .unwrap();
        assert_eq!(
            trainer.engine().params(m).unwrap(),
            single.params().unwrap(),
            "member {m}"
        );
    }
}

/// set_params, copy_member (parameters and momentum, on the device) and replace_member on
/// the GPU: a copied member then trains as its source does, and a replaced one as a fresh
/// run of its configuration.
#[test]
fn gpu_copy_and_replace_members() {
    let (train, test) = (synthetic(1, 97), synthetic(3, 37));
    let data = common::data(&train, &test);
    let mut configs = member_configs(3, 16);
    for c in &mut configs {
        c.sgd = configs_sgd();
        c.schedule = LrSchedule::new(0.05, Schedule::Constant);
    }
    let mut pop = open_population(On::default_gpu().device(), &configs, data).unwrap();
    let mut trainer = PopulationTrainer::new(pop.as_mut()).unwrap();
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
