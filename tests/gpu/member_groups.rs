//! Populations split into groups of members (issue 27 item 4): a population whose stacked
//! tensors pass one storage binding trains as groups of engines, and every member trains
//! exactly as in one engine (CPU groups against one CPU engine) and as its single run
//! (a GPU population past lavapipe's 128 MiB binding against single runs).

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};

use wgtrain::cpu_engine::CpuEngine;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, EvalSet, RunData};
use wgtrain::member_groups::{CHUNK_STEPS, MemberGroups, members_per_binding};
use wgtrain::model::MlpSpec;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::step::{StepRecord, epoch_order, step_records};
use wgtrain::train::Trainer;
use wgtrain::{Error, RunConfig};

use common::On;

/// A seeded synthetic set of `n` images of `rows` x `cols` pixels over 10 classes.
fn synthetic(seed: u64, n: usize, rows: usize, cols: usize) -> Dataset {
    Dataset {
        images: common::integers(seed, n * rows * cols, 256)
            .into_iter()
            .map(|v| v as u8)
            .collect(),
        labels: common::integers(seed + 1, n, 10),
        rows,
        cols,
    }
}

/// `k` members that differ in learning rate, weight decay, momentum and initialisation.
fn configs(k: usize, hidden: usize, batch: usize, epochs: usize) -> Vec<RunConfig> {
    (0..k)
        .map(|m| RunConfig {
            hidden: vec![hidden],
            batch_size: batch,
            epochs,
            schedule: LrSchedule::new(0.01 * (1.0 + m as f64), Schedule::Constant),
            sgd: SgdConfig {
                weight_decay: [0.0, 1e-3][m % 2],
                momentum: [0.0, 0.9, 0.5][m % 3],
                nesterov: m % 3 == 1,
                ..SgdConfig::default()
            },
            seed: 5,
            init_seed: Some(40 + m as u64),
            validation_split: 0.2,
            ..RunConfig::default()
        })
        .collect()
}

/// Groups of CPU engines over `configs`, split after each index of `cuts`.
fn cpu_groups<'a>(configs: &[RunConfig], cuts: &[usize], data: RunData<'a>) -> MemberGroups<'a> {
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(configs.len());
    let groups = bounds
        .windows(2)
        .map(|w| Box::new(CpuEngine::new(&configs[w[0]..w[1]], data).unwrap()) as Box<dyn Engine>)
        .collect();
    MemberGroups::new(groups).unwrap()
}

/// Hand-checked: 784-2048-10 has 784·2048 + 2048 + 2048·10 + 10 = 1,628,170 parameters
/// (6.5 MB as f32); the largest stacked tensor is the momentum with the gradient sums, 2 ·
/// 4 · 1,628,170 = 13,025,360 bytes (a few floats more in the padded layout), so 128
/// MiB (134,217,728 bytes) holds 10 members; at 4096 activation rows the widest
/// activation, 4096·2048·4 = 33,554,432 bytes, is the largest, and 4 fit. A member that fits no binding still gets a group.
#[test]
fn members_per_binding_counts_the_largest_stacked_tensor() {
    let spec = MlpSpec::new(784, &[2048], 10).unwrap();
    let binding = 128 << 20;
    assert_eq!(members_per_binding(&spec, 100, binding), 10);
    assert_eq!(members_per_binding(&spec, 4096, binding), 4);
    assert_eq!(members_per_binding(&spec, 100, 1 << 20), 1);
}

/// Three groups (2 + 1 + 2 members) train every member exactly as one engine of all five:
/// reports, weights and momentum alike, over epochs of more than one chunk of steps.
#[test]
fn grouped_members_train_exactly_as_one_engine() {
    // 400 samples, 20% held out: 320 in minibatches of 2, 160 steps: two chunks.
    let (train, test) = (synthetic(1, 400, 7, 5), synthetic(3, 37, 7, 5));
    let data = common::data(&train, &test);
    let configs = configs(5, 13, 2, 2);
    const { assert!(320 / 2 > CHUNK_STEPS, "the epoch spans more than one chunk") };
    let mut one = CpuEngine::new(&configs, data).unwrap();
    let want = Trainer::new(&mut one)
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap();
    let mut groups = cpu_groups(&configs, &[2, 3], data);
    assert_eq!(groups.group_sizes(), vec![2, 1, 2]);
    assert_eq!(groups.members(), 5);
    let got = Trainer::new(&mut groups)
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap();
    for m in 0..5 {
        assert_eq!(got[m].len(), want[m].len(), "member {m}: epochs");
        for (g, w) in got[m].iter().zip(&want[m]) {
            assert_eq!(g.train_loss, w.train_loss, "member {m} epoch {}", w.epoch);
            assert_eq!(g.val_loss, w.val_loss, "member {m} epoch {}", w.epoch);
            assert_eq!(
                g.test_accuracy, w.test_accuracy,
                "member {m} epoch {}",
                w.epoch
            );
        }
        assert_eq!(
            groups.params(m).unwrap(),
            one.params(m).unwrap(),
            "member {m}"
        );
        assert_eq!(
            groups.momentum(m).unwrap(),
            one.momentum(m).unwrap(),
            "member {m}"
        );
    }
    let (a, b) = (
        groups.evaluate(EvalSet::Test).unwrap(),
        one.evaluate(EvalSet::Test).unwrap(),
    );
    assert_eq!(a, b);
    assert_eq!(
        groups.logits(4, EvalSet::Validation).unwrap(),
        one.logits(4, EvalSet::Validation).unwrap()
    );
}

/// A stop in the middle of an epoch leaves every group at the same step; running the
/// remaining steps (indexed from 0, as the trainer resumes an epoch) then ends exactly as
/// the uninterrupted epoch.
#[test]
fn a_stopped_epoch_stops_every_group_at_the_same_step() {
    let (train, test) = (synthetic(1, 400, 7, 5), synthetic(3, 37, 7, 5));
    let data = common::data(&train, &test);
    let configs = configs(4, 13, 2, 1);
    let mut whole = CpuEngine::new(&configs, data).unwrap();
    let indices = whole.setup().shared().train_indices.clone();
    let order = epoch_order(&indices, configs[0].seed, 0);
    let steps = step_records(indices.len(), 2);
    let table = common::member_steps(steps.len(), 4, 0.05, true);
    let never = AtomicBool::new(false);
    whole
        .train_epoch(&order, &steps, &table, &mut |_| {}, &never)
        .unwrap();

    let mut groups = cpu_groups(&configs, &[1], data);
    let stop = AtomicBool::new(false);
    // Ctrl-C while group 0 is in its second chunk.
    let mut progress = |done: usize| {
        if done > CHUNK_STEPS + 3 {
            stop.store(true, Ordering::Relaxed);
        }
    };
    let first = groups
        .train_epoch(&order, &steps, &table, &mut progress, &stop)
        .unwrap();
    let ran = first[0].len();
    assert!(
        ran > CHUNK_STEPS && ran < steps.len(),
        "stopped mid-epoch at {ran}"
    );
    assert!(
        first.iter().all(|s| s.len() == ran),
        "every member ran {ran} steps"
    );
    let mut rest: Vec<StepRecord> = steps[ran..].to_vec();
    for (i, r) in rest.iter_mut().enumerate() {
        r.index = i as u32;
    }
    let rest_table = &table[ran * 4..];
    groups
        .train_epoch(&order, &rest, rest_table, &mut |_| {}, &never)
        .unwrap();
    for m in 0..4 {
        assert_eq!(
            groups.params(m).unwrap(),
            whole.params(m).unwrap(),
            "member {m}"
        );
    }
}

/// Members move between groups through the host: an exploit copy across groups gives the
/// target the source's weights and momentum; settings changes reach the population's
/// setup; a replacement that cannot share the stream is refused against member 0.
#[test]
fn members_copy_and_change_across_groups() {
    let (train, test) = (synthetic(1, 97, 7, 5), synthetic(3, 37, 7, 5));
    let data = common::data(&train, &test);
    let configs = configs(4, 13, 16, 1);
    let mut groups = cpu_groups(&configs, &[2], data);
    Trainer::new(&mut groups)
        .unwrap()
        .run_epoch(&mut |_| {})
        .unwrap();
    groups.copy_member(0, 3).unwrap();
    assert_eq!(groups.params(3).unwrap(), groups.params(0).unwrap());
    assert_eq!(groups.momentum(3).unwrap(), groups.momentum(0).unwrap());
    assert_ne!(groups.params(2).unwrap(), groups.params(0).unwrap());

    let sgd = SgdConfig {
        weight_decay: 0.25,
        ..SgdConfig::default()
    };
    groups.set_sgd(2, &sgd).unwrap();
    assert_eq!(groups.setup().members[2].config.sgd, sgd);

    let mut other = configs[0].clone();
    other.init_seed = Some(999);
    groups.replace_member(3, &other).unwrap();
    assert_eq!(groups.setup().members[3].config.init_seed, Some(999));
    assert_eq!(groups.params(3).unwrap(), groups.setup().members[3].init);

    other.batch_size = 8;
    let err = groups.replace_member(2, &other).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err}");
    assert!(err.to_string().contains("minibatch size"), "{err}");
    let err = groups.params(4).unwrap_err();
    assert!(err.to_string().contains("4 members"), "{err}");
}

/// 21 members of 784-2048-10 need 21 · 13 MB = 274 MB for the stacked momentum and
/// gradient sums, past lavapipe's 128 MiB storage binding: the GPU population opens as
/// three groups (10 + 10 + 1), trains, and the last member of the second group and the
/// member of the third equal their single runs bit for bit.
#[test]
fn a_gpu_population_past_one_storage_binding_trains_as_single_runs() {
    let device = On::default_gpu().device();
    let (gpu, _) = common::gpu();
    assert_eq!(
        gpu.limits.max_storage_buffer_binding_size,
        128 << 20,
        "lavapipe's limit"
    );
    // 160 samples, 20% held out: two minibatches of 64.
    let (train, test) = (synthetic(11, 160, 28, 28), synthetic(13, 40, 28, 28));
    let data = common::data(&train, &test);
    let configs = configs(21, 2048, 64, 1);
    let mut pop = wgtrain::open(device, &configs, data).unwrap();
    assert!(
        pop.describe().contains("in 3 groups of at most 10"),
        "{}",
        pop.describe()
    );
    let histories = Trainer::new(pop.as_mut())
        .unwrap()
        .fit(&mut |_, _| Ok(()))
        .unwrap();
    for m in [19, 20] {
        let mut single = wgtrain::open(device, std::slice::from_ref(&configs[m]), data).unwrap();
        let want = Trainer::new(single.as_mut())
            .unwrap()
            .fit_single(&mut |_| Ok(()))
            .unwrap();
        assert_eq!(histories[m].len(), want.len(), "member {m}");
        for (got, want) in histories[m].iter().zip(&want) {
            assert_eq!(got.train_loss, want.train_loss, "member {m}");
            assert_eq!(got.val_loss, want.val_loss, "member {m}");
            assert_eq!(got.test_loss, want.test_loss, "member {m}");
        }
        assert_eq!(
            pop.params(m).unwrap(),
            single.params(0).unwrap(),
            "member {m}"
        );
    }
    // PBT's exploit across the two groups.
    pop.copy_member(20, 0).unwrap();
    assert_eq!(pop.params(0).unwrap(), pop.params(20).unwrap());
    assert_eq!(pop.momentum(0).unwrap(), pop.momentum(20).unwrap());
}
