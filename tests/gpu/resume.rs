//! Resuming a trainer (issue 25 item 1): a [`Trainer::snapshot`] taken between epochs or
//! after a stop in the middle of one, written out as JSON and read back, restored on a
//! fresh engine ([`Trainer::restore`]), ends with the same parameters, momentum and reports
//! (wall times aside) as the uninterrupted run, bit for bit, on the CPU and the GPU; and a
//! snapshot that does not fit the engine is refused, naming why. The command line's
//! `--state` / `--resume` are tested in `tests/cli_resume.rs`.

use crate::common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{On, uniform};
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, RunData};
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{EpochHparams, HparamSchedule, LrSchedule, PlateauConfig, Schedule};
use wgtrain::train::{MemberOutcome, Snapshot, Trainer, TrainerState};
use wgtrain::{Error, RunConfig};

/// `n` random 10x10 images with labels 0..10.
fn small_set(n: usize, seed: u64) -> Dataset {
    let images = uniform(seed, n * 100, 0.0, 255.0)
        .into_iter()
        .map(|v| v as u8)
        .collect();
    let labels = uniform(seed + 1, n, 0.0, 10.0)
        .into_iter()
        .map(|v| v as u32)
        .collect();
    Dataset {
        images,
        labels,
        rows: 10,
        cols: 10,
    }
}

const GPU: On = On::Gpu(MatmulChoice::Auto);
const EPOCHS: usize = 3;

/// Four members that exercise every piece of a member's state: momentum with nesterov and
/// ReduceLROnPlateau (its state changes every epoch), OneCycle (a per-step lr), early
/// stopping, an hparam schedule (set on member 2 by [`trainer`]) and a member whose loss
/// turns non-finite in its first epoch (lr 1e30). 2400 training samples in minibatches of
/// 8: 300 steps per epoch, so a stop at the GPU's first completed command buffer (it has
/// 3 x 64 steps queued by then) or the CPU's first progress call (16 steps) is in the
/// middle of an epoch.
fn configs() -> Vec<RunConfig> {
    let base = RunConfig {
        hidden: vec![16],
        batch_size: 8,
        epochs: EPOCHS,
        validation_split: 0.2,
        seed: 3,
        ..RunConfig::default()
    };
    let plateau = PlateauConfig {
        patience: 0,
        factor: 0.5,
        threshold: 0.5,
        ..PlateauConfig::default()
    };
    vec![
        RunConfig {
            schedule: LrSchedule::new(0.05, Schedule::Plateau(plateau)),
            sgd: SgdConfig {
                momentum: 0.9,
                nesterov: true,
                ..SgdConfig::default()
            },
            ..base.clone()
        },
        RunConfig {
            schedule: LrSchedule::new(0.05, Schedule::one_cycle(0.1, EPOCHS * 300)),
            early_stop_patience: Some(1),
            init_seed: Some(9),
            ..base.clone()
        },
        RunConfig {
            sgd: SgdConfig {
                momentum: 0.5,
                dampening: 0.1,
                ..SgdConfig::default()
            },
            init_seed: Some(10),
            ..base.clone()
        },
        RunConfig {
            schedule: LrSchedule::new(1e30, Schedule::Constant),
            init_seed: Some(11),
            ..base
        },
    ]
}

/// A trainer for [`configs`] on `engine`, member 2 on a three-epoch hparam schedule.
fn trainer(engine: &mut dyn Engine) -> Trainer<'_> {
    let mut t = Trainer::new(engine).unwrap();
    let epochs = [(0.08, 1e-4), (0.04, 3e-4), (0.02, 0.0)]
        .iter()
        .enumerate()
        .map(|(e, &(lr, weight_decay))| EpochHparams {
            epoch: e + 1,
            lr,
            weight_decay,
        })
        .collect();
    t.set_hparam_schedule(
        2,
        HparamSchedule {
            source: None,
            epochs,
        },
    )
    .unwrap();
    t
}

/// What a member's epoch reported, wall time left out.
fn outcome(o: &MemberOutcome) -> String {
    match o {
        MemberOutcome::Trained(r) => format!(
            "epoch {} lr {:e} train {:e} {:e} test {:e} {:e} val {:?} {:?}",
            r.epoch,
            r.lr,
            r.train_loss,
            r.train_accuracy,
            r.test_loss,
            r.test_accuracy,
            r.val_loss,
            r.val_accuracy
        ),
        MemberOutcome::Diverged(e) => format!("diverged: {e}"),
        MemberOutcome::Idle => "idle".into(),
    }
}

/// Runs epochs until no member trains; the outcomes of each epoch, then every member's
/// parameters and momentum.
fn finish(t: &mut Trainer<'_>) -> (Vec<Vec<String>>, Vec<Vec<u32>>) {
    let mut epochs = Vec::new();
    while t.any_training() {
        let out = t.run_epoch(&mut |_| {}).unwrap();
        epochs.push(out.iter().map(outcome).collect());
    }
    let snap = t.snapshot().unwrap();
    let bits = snap
        .params
        .iter()
        .chain(&snap.momentum)
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect();
    (epochs, bits)
}

/// The snapshot as a state file keeps it: the state through JSON (NaN sums and infinite
/// losses included), the tensors as they are.
fn through_json(s: &Snapshot) -> Snapshot {
    let text = serde_json::to_string(&s.state).unwrap();
    let state: TrainerState = serde_json::from_str(&text).unwrap();
    assert_eq!(
        serde_json::to_string(&state).unwrap(),
        text,
        "the JSON round trip"
    );
    Snapshot { state, ..s.clone() }
}

/// Restores `snap` on a fresh engine opened with the snapshot's own member
/// configurations, and runs it to the end.
fn resumed(
    on: On,
    data: wgtrain::engine::RunData<'_>,
    snap: &Snapshot,
) -> (Vec<Vec<String>>, Vec<Vec<u32>>) {
    let configs: Vec<RunConfig> = (0..snap.state.members())
        .map(|k| snap.state.config(k).clone())
        .collect();
    let mut engine = common::population(on, &configs, data).unwrap();
    let mut t = Trainer::restore(engine.as_mut(), snap).unwrap();
    finish(&mut t)
}

/// Issue 25 item 1: a run could only start from scratch (or from `--init`'s weights, with
/// its momentum, schedule and step count lost), and an epoch a stop interrupted was lost.
/// A snapshot taken after a stop in the middle of epoch 1, and one taken between epochs 1
/// and 2, each restored on a fresh engine, end with the uninterrupted run's reports,
/// parameters and momentum, bit for bit; so does the interrupted trainer itself when it
/// simply runs on.
#[test]
fn a_trainer_restored_from_a_snapshot_ends_as_the_uninterrupted_run_bit_for_bit() {
    let (train, test) = (small_set(3000, 7), small_set(200, 8));
    let data = common::data(&train, &test);
    for on in [On::Cpu, GPU] {
        let device = on.name();
        let mut engine = common::population(on, &configs(), data).unwrap();
        let (want_epochs, want_tensors) = finish(&mut trainer(engine.as_mut()));
        assert_eq!(want_epochs.len(), EPOCHS, "{device}: {want_epochs:?}");
        assert!(
            want_epochs[0][3].starts_with("diverged"),
            "{device}: {want_epochs:?}"
        );

        let mut engine = common::population(on, &configs(), data).unwrap();
        let mut t = trainer(engine.as_mut());
        let stop = Arc::new(AtomicBool::new(false));
        t.set_stop_flag(Arc::clone(&stop));
        let e = t
            .run_epoch(&mut |_| stop.store(true, Ordering::Relaxed))
            .unwrap_err();
        let Error::Interrupted {
            epoch: 1,
            step,
            steps: 300,
        } = e
        else {
            panic!("{device}: {e}");
        };
        // Member 3's loss is already non-finite at the stop: the rest of the epoch keeps
        // it frozen, as the engine had.
        assert!(0 < step && step < 300, "{device}: stopped at step {step}");
        let middle = through_json(&t.snapshot().unwrap());
        assert_eq!(middle.state.epoch_steps_done(), step);
        // The interrupted trainer goes on with the rest of its epoch.
        stop.store(false, Ordering::Relaxed);
        let first: Vec<String> = t
            .run_epoch(&mut |_| {})
            .unwrap()
            .iter()
            .map(outcome)
            .collect();
        assert_eq!(first, want_epochs[0], "{device}: the rest of epoch 1");
        let between = through_json(&t.snapshot().unwrap());
        assert_eq!(between.state.epoch_steps_done(), 0);
        let (rest, tensors) = finish(&mut t);
        assert_eq!(rest, want_epochs[1..], "{device}: run on after the stop");
        assert_eq!(tensors, want_tensors, "{device}: run on after the stop");
        for (what, snap, from) in [("mid-epoch", &middle, 0), ("between epochs", &between, 1)] {
            let (rest, tensors) = resumed(on, data, snap);
            assert_eq!(rest, want_epochs[from..], "{device}: restored {what}");
            assert!(
                tensors == want_tensors,
                "{device}: restored {what}: tensors differ"
            );
        }
    }
}

/// Issue 23 with issue 25: members of minibatches 8, 16 and 40 (1, 2 and 5 micro-steps of
/// 8). A stop inside a member's minibatch runs on to the next micro-step where every
/// member's minibatch ends (a multiple of 10 here), so a snapshot holds no half-summed
/// gradient, and restored on a fresh engine it ends as the uninterrupted run, bit for bit.
#[test]
fn a_mixed_batch_population_stopped_inside_a_minibatch_resumes_bit_for_bit() {
    let (train, test) = (small_set(3000, 7), small_set(200, 8));
    let data = common::data(&train, &test);
    let cfgs: Vec<RunConfig> = configs()
        .into_iter()
        .zip([8, 16, 40, 8])
        .map(|(c, batch_size)| RunConfig { batch_size, ..c })
        .collect();
    for on in [On::Cpu, GPU] {
        let device = on.name();
        let mut engine = common::population(on, &cfgs, data).unwrap();
        let (want_epochs, want_tensors) = finish(&mut trainer(engine.as_mut()));

        let mut engine = common::population(on, &cfgs, data).unwrap();
        let mut t = trainer(engine.as_mut());
        let stop = Arc::new(AtomicBool::new(false));
        t.set_stop_flag(Arc::clone(&stop));
        let e = t
            .run_epoch(&mut |_| stop.store(true, Ordering::Relaxed))
            .unwrap_err();
        let Error::Interrupted { epoch: 1, step, .. } = e else {
            panic!("{device}: {e}");
        };
        assert!(
            0 < step && step < 300 && step % 10 == 0,
            "{device}: stopped at micro-step {step}, not where every member's minibatch ends"
        );
        let middle = through_json(&t.snapshot().unwrap());
        let (rest, tensors) = resumed(on, data, &middle);
        assert_eq!(rest, want_epochs, "{device}: restored mid-epoch");
        assert!(
            tensors == want_tensors,
            "{device}: restored mid-epoch: tensors differ"
        );
    }
}

/// Minibatch sizes 8 and 16 (micro-steps of 8), one epoch, then member 0 copies member 1
/// (PBT's exploit copies the size): only 16s left. Returns the starting configurations,
/// the snapshot then, and the uninterrupted run's remaining epochs and final tensors.
#[allow(clippy::type_complexity)]
fn all_left_the_smallest_batch(
    data: RunData<'_>,
) -> (Vec<RunConfig>, Snapshot, (Vec<Vec<String>>, Vec<Vec<u32>>)) {
    let cfgs: Vec<RunConfig> = configs()[..2]
        .iter()
        .zip([8, 16])
        .map(|(c, batch_size)| RunConfig {
            batch_size,
            early_stop_patience: None,
            ..c.clone()
        })
        .collect();
    let mut engine = common::population(On::Cpu, &cfgs, data).unwrap();
    let mut t = Trainer::new(engine.as_mut()).unwrap();
    t.run_epoch(&mut |_| {}).unwrap();
    t.exploit(1, 0, cfgs[1].clone()).unwrap();
    let snap = through_json(&t.snapshot().unwrap());
    assert_eq!(
        (
            snap.state.config(0).batch_size,
            snap.state.config(1).batch_size
        ),
        (16, 16)
    );
    assert_eq!(snap.state.micro_batch(), Some(8));
    let rest = finish(&mut t);
    assert_eq!(rest.0.len(), EPOCHS - 1);
    (cfgs, snap, rest)
}

/// Issue 25 (PBT's resume): exploit copies a member's minibatch size, so a PBT population
/// opened at sizes 8 and 16 (micro-steps of 8) can hold only members at 16. Its snapshot
/// was read as stepping 16 samples at a time (its members' smallest size) and refused by
/// the engine it was opened on; the state now records the micro-batch, and the run
/// restored on a fresh engine of the starting sizes ends as the uninterrupted one, bit for
/// bit (CPU).
#[test]
fn a_population_whose_members_all_left_the_smallest_batch_resumes_bit_for_bit() {
    let (train, test) = (small_set(3000, 7), small_set(200, 8));
    let data = common::data(&train, &test);
    let (cfgs, snap, want) = all_left_the_smallest_batch(data);
    let mut engine = common::population(On::Cpu, &cfgs, data).unwrap();
    let mut t = Trainer::restore(engine.as_mut(), &snap).unwrap();
    let got = finish(&mut t);
    assert_eq!(got.0, want.0);
    assert!(got.1 == want.1, "restored: tensors differ");
}

/// A sweep reopens a resumed population from the snapshot's own member configurations,
/// and refills may have left only larger sizes than the micro-batch it stepped at (8 and
/// 16 opened, only 16s running): reopened at the recorded micro-batch
/// (`RunData::micro_batch`), it ends as the uninterrupted run, bit for bit (CPU); opened at
/// its members' smallest size instead, it is refused, naming both step sizes.
#[test]
fn a_population_reopened_from_its_snapshots_sizes_steps_at_the_recorded_micro_batch() {
    let (train, test) = (small_set(3000, 7), small_set(200, 8));
    let data = common::data(&train, &test);
    let (_, snap, want) = all_left_the_smallest_batch(data);
    let now: Vec<RunConfig> = (0..snap.state.members())
        .map(|m| snap.state.config(m).clone())
        .collect();
    let mut engine = common::population(On::Cpu, &now, data).unwrap();
    let refused = Trainer::restore(engine.as_mut(), &snap).err().unwrap();
    assert!(
        refused
            .to_string()
            .contains("step 8 samples at a time, this engine's members 16"),
        "{refused}"
    );
    let at_8 = RunData {
        micro_batch: snap.state.micro_batch(),
        ..data
    };
    let mut engine = common::population(On::Cpu, &now, at_8).unwrap();
    assert_eq!(engine.setup().micro_batch(), 8);
    let mut t = Trainer::restore(engine.as_mut(), &snap).unwrap();
    let got = finish(&mut t);
    assert_eq!(got.0, want.0);
    assert!(got.1 == want.1, "reopened at 8: tensors differ");
}

/// A snapshot restores only onto an engine whose members fit it: the same member count,
/// the same minibatch stream, and epochs long enough for its interrupted one.
#[test]
fn a_snapshot_that_does_not_fit_the_engine_is_refused_naming_why() {
    let (train, test) = (small_set(3000, 7), small_set(200, 8));
    let data = common::data(&train, &test);
    let cfgs = configs();
    let mut engine = common::population(On::Cpu, &cfgs[..2], data).unwrap();
    let mut t = Trainer::new(engine.as_mut()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    t.set_stop_flag(Arc::clone(&stop));
    t.run_epoch(&mut |_| stop.store(true, Ordering::Relaxed))
        .unwrap_err();
    let snap = t.snapshot().unwrap();
    // Members change between epochs only.
    let e = t.freeze(0).unwrap_err().to_string();
    assert!(
        e.contains("run the rest of the interrupted epoch first"),
        "{e}"
    );

    let mut three = common::population(On::Cpu, &cfgs[..3], data).unwrap();
    let e = Trainer::restore(three.as_mut(), &snap)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("holds 2 members") && e.contains("the engine has 3 members"),
        "{e}"
    );

    let other: Vec<RunConfig> = cfgs[..2]
        .iter()
        .map(|c| RunConfig {
            batch_size: 16,
            ..c.clone()
        })
        .collect();
    let mut wider = common::population(On::Cpu, &other, data).unwrap();
    let e = Trainer::restore(wider.as_mut(), &snap)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("does not fit this engine") && e.contains("step 8 samples at a time"),
        "{e}"
    );

    // Fewer training samples: epochs of 10 steps cannot hold one interrupted at step 16.
    let small = small_set(100, 7);
    let mut short = common::population(On::Cpu, &cfgs[..2], common::data(&small, &test)).unwrap();
    let e = Trainer::restore(short.as_mut(), &snap)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("(16 steps done) does not fit this engine's epochs of 10 steps"),
        "{e}"
    );
}
