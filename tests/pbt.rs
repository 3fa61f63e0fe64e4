//! Population-based training: exploit copies the top member's weights exactly and explore
//! moves its hyperparameters by x0.8, x1.25 or a draw from the space; one seed gives one
//! lineage; the best member's schedule, walked back through its lineage, matches a forward
//! account of the lineage, and replaying it from scratch with `Trainer` (and with
//! `wgtrain train --hparam-schedule`) reproduces the best member bit for bit on the CPU.
//! The GPU engine honours a per-epoch weight decay as the CPU engine does. Members may
//! differ in batch size: exploit carries weights, momentum and batch size across them.

mod common;

use std::process::Command;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use wgtrain::RunConfig;
use wgtrain::data::Dataset;
use wgtrain::engine::RunData;
use wgtrain::schedule::{EpochHparams, HparamSchedule};
use wgtrain::train::Trainer;
use wgtrain::tune::pbt::output::{LineageRow, lineage_rows, read_record, write_pbt_outputs};
use wgtrain::tune::pbt::{
    Change, Hparams, Pbt, PbtRecord, PbtSettings, fixed_settings, initial_hparams,
};
use wgtrain::tune::space::SearchSpace;

use common::On;

/// `n` seeded 6 x 6 images over 10 classes: a class prototype plus noise, so that members
/// with different learning rates reach different validation accuracies.
fn prototypes(seed: u64, n: usize) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    let protos: Vec<u8> = (0..10 * 36).map(|_| rng.random_range(0..=255u8)).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..10u32)).collect();
    let images = labels
        .iter()
        .flat_map(|&c| {
            protos[c as usize * 36..(c as usize + 1) * 36]
                .iter()
                .map(|&p| (i32::from(p) + rng.random_range(-90..=90)).clamp(0, 255) as u8)
                .collect::<Vec<u8>>()
        })
        .collect();
    Dataset {
        images,
        labels,
        rows: 6,
        cols: 6,
    }
}

fn space(epochs: usize) -> SearchSpace {
    SearchSpace {
        lr: "0.005:0.1".parse().unwrap(),
        weight_decay: "0,1e-4,3e-3".parse().unwrap(),
        batch_size: "16".parse().unwrap(),
        // Momentum > 0: a copy that forgot the momentum buffer would not replay exactly.
        momentum: "0.9".parse().unwrap(),
        hidden: "12".parse().unwrap(),
        epochs: epochs.to_string().parse().unwrap(),
    }
}

/// The members' configurations: the space's draws on one base run (validation split 0.2,
/// seed `seed` for data order, split and every member's initial weights).
fn configs(space: &SearchSpace, k: usize, seed: u64) -> Vec<RunConfig> {
    let (batch_size, hidden, epochs) = fixed_settings(space).unwrap();
    let base = RunConfig {
        hidden,
        batch_size,
        epochs,
        seed,
        validation_split: 0.2,
        ..RunConfig::default()
    };
    initial_hparams(space, k, seed)
        .unwrap()
        .iter()
        .map(|h| h.apply(&base))
        .collect()
}

fn settings(seed: u64) -> PbtSettings {
    PbtSettings {
        interval: 1,
        quantile: 0.4,
        resample: 0.25,
        seed,
    }
}

/// One explored value: `copied` times 0.8 or 1.25, or (resampled) anywhere in `within`.
fn assert_explored(what: &str, new: f64, copied: f64, change: Change, within: &[f64]) {
    match change {
        Change::Down => assert_eq!(new, copied * 0.8, "{what}"),
        Change::Up => assert_eq!(new, copied * 1.25, "{what}"),
        Change::Resample => assert!(
            within.len() == 2 && (within[0]..=within[1]).contains(&new) || within.contains(&new),
            "{what}: {new} outside {within:?}"
        ),
    }
}

#[test]
fn exploit_copies_the_top_members_weights_and_explore_perturbs_its_hyperparameters() {
    let (train, test) = (prototypes(1, 150), prototypes(2, 20));
    let data = common::data(&train, &test);
    let space = space(3);
    let cfgs = configs(&space, 5, 11);
    let mut pop = common::population(On::Cpu, &cfgs, data).unwrap();
    let mut trainer = Trainer::new(pop.as_mut()).unwrap();
    trainer.set_evaluate_test(false);
    let mut pbt = Pbt::new(space.clone(), settings(11), &cfgs).unwrap();
    let mut events_seen = 0;
    let mut changes = Vec::new();
    for epoch in 1..=3 {
        let outcomes = trainer.run_epoch(&mut |_| {}).unwrap();
        let rows = pbt.record_epoch(&trainer, &outcomes);
        assert_eq!(pbt.exploit_due(), epoch < 3, "epoch {epoch}");
        if !pbt.exploit_due() {
            continue;
        }
        let before: Vec<Vec<f32>> = (0..5)
            .map(|m| trainer.engine().params(m).unwrap())
            .collect();
        let hp_before: Vec<Hparams> = (0..5).map(|m| Hparams::of(trainer.config(m))).collect();
        // Independently: ceil(5 * 0.4) = 2 members in each group; best first, ties to the
        // lower index.
        let mut by_score: Vec<usize> = (0..5).collect();
        by_score.sort_by(|&a, &b| {
            let (x, y) = (rows[a].val_accuracy.unwrap(), rows[b].val_accuracy.unwrap());
            y.partial_cmp(&x).unwrap().then(a.cmp(&b))
        });
        let events = pbt.exploit_explore(&mut trainer).unwrap();
        assert_eq!(events.len(), 2, "epoch {epoch}");
        let mut replaced: Vec<usize> = events.iter().map(|e| e.member).collect();
        replaced.sort_unstable();
        let mut bottom = by_score[3..].to_vec();
        bottom.sort_unstable();
        assert_eq!(
            replaced, bottom,
            "epoch {epoch}: the bottom two are replaced"
        );
        for e in &events {
            assert_eq!(e.epoch, epoch);
            assert!(by_score[..2].contains(&e.from), "epoch {epoch}: {e:?}");
            assert_eq!(
                trainer.engine().params(e.member).unwrap(),
                before[e.from],
                "epoch {epoch}: member {} holds member {}'s weights",
                e.member,
                e.from
            );
            assert_eq!(e.old, hp_before[e.member]);
            assert_eq!(e.copied, hp_before[e.from]);
            assert_eq!(Hparams::of(trainer.config(e.member)), e.new);
            assert_eq!(e.new.momentum, e.copied.momentum);
            assert_explored("lr", e.new.lr, e.copied.lr, e.lr_change, &[0.005, 0.1]);
            assert_explored(
                "weight decay",
                e.new.weight_decay,
                e.copied.weight_decay,
                e.weight_decay_change,
                &[0.0, 1e-4, 3e-3],
            );
            changes.push(e.lr_change);
            changes.push(e.weight_decay_change);
        }
        for m in by_score[..3].iter().copied() {
            assert_eq!(
                trainer.engine().params(m).unwrap(),
                before[m],
                "member {m} kept"
            );
            assert_eq!(Hparams::of(trainer.config(m)), hp_before[m]);
        }
        events_seen += events.len();
    }
    assert_eq!(events_seen, 4);
    assert_eq!(pbt.record().lineage.len(), 4);
    assert!(
        changes.iter().any(|c| *c != Change::Resample),
        "{changes:?}: some perturbation"
    );
}

/// A whole seeded run; returns the record and every member's final weights.
fn run(seed: u64, k: usize, epochs: usize) -> (PbtRecord, Vec<Vec<f32>>) {
    let (train, test) = (prototypes(1, 150), prototypes(2, 20));
    let data = common::data(&train, &test);
    let space = space(epochs);
    let cfgs = configs(&space, k, seed);
    let mut pop = common::population(On::Cpu, &cfgs, data).unwrap();
    let mut trainer = Trainer::new(pop.as_mut()).unwrap();
    trainer.set_evaluate_test(false);
    let pbt = Pbt::new(space, settings(seed), &cfgs).unwrap();
    let record = pbt.run(&mut trainer, &mut |_, _| Ok(())).unwrap();
    let params = (0..k)
        .map(|m| trainer.engine().params(m).unwrap())
        .collect();
    (record, params)
}

/// The record without wall times (they differ between runs).
fn timeless(r: &PbtRecord) -> PbtRecord {
    let mut r = r.clone();
    for row in &mut r.history {
        row.epoch_seconds = None;
    }
    r
}

/// Fault attack, second round: a failed `pbt.json` (a full disk at the final write) kept
/// the files after it from being written, while the run said its other outputs were.
/// Every file is now tried; the error names the one that failed.
#[test]
fn a_failed_pbt_file_does_not_keep_the_others_from_being_written() {
    let (a, _) = run(3, 5, 4);
    let dir = tempfile::tempdir().unwrap();
    // A directory where pbt.json goes: its atomic rename fails.
    std::fs::create_dir(dir.path().join("pbt.json")).unwrap();
    std::fs::write(dir.path().join("pbt.json").join("x"), "").unwrap();
    let err = write_pbt_outputs(dir.path(), &a, None).unwrap_err();
    assert!(err.to_string().contains("pbt.json"), "{err}");
    for name in [
        "pbt_members.csv",
        "pbt_lineage.csv",
        "leaderboard.csv",
        "pbt_best_schedule.json",
    ] {
        assert!(dir.path().join(name).is_file(), "{name} not written");
    }
}

#[test]
fn one_seed_gives_one_lineage_and_the_files_hold_it() {
    let (a, _) = run(3, 5, 4);
    let (b, _) = run(3, 5, 4);
    assert_eq!(timeless(&a), timeless(&b));
    assert_eq!(a.lineage.len(), 3 * 2, "3 exploit steps of 2 members");
    let (c, _) = run(4, 5, 4);
    assert_ne!(a.lineage, c.lineage, "another seed, another lineage");

    let dir = tempfile::tempdir().unwrap();
    let written = write_pbt_outputs(dir.path(), &a, None).unwrap();
    assert_eq!(written.len(), 5);
    assert_eq!(read_record(&dir.path().join("pbt.json")).unwrap(), a);
    let rows: Vec<LineageRow> = csv::Reader::from_path(dir.path().join("pbt_lineage.csv"))
        .unwrap()
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(rows, lineage_rows(&a));
    for (row, e) in rows.iter().zip(&a.lineage) {
        assert_eq!(
            (row.epoch, row.member, row.from),
            (e.epoch, e.member, e.from)
        );
        assert_eq!((row.old_lr, row.new_lr), (e.old.lr, e.new.lr));
        assert_eq!(row.lr_change, e.lr_change.to_string());
    }
    let text = std::fs::read_to_string(dir.path().join("pbt_members.csv")).unwrap();
    assert_eq!(
        text.lines().count(),
        1 + 5 * 4,
        "a header and a row per member and epoch"
    );
    let best = a.best.as_ref().unwrap();
    assert_eq!(
        HparamSchedule::read(&dir.path().join("pbt_best_schedule.json")).unwrap(),
        best.schedule
    );
}

#[test]
fn the_best_members_schedule_follows_its_lineage_and_replays_bit_for_bit() {
    let (record, params) = run(3, 5, 4);
    let best = record.best.as_ref().expect("a best member");
    // Forward account of the lineage: every slot's schedule so far; an exploit step gives
    // the replaced slot the copied slot's account.
    let mut account: Vec<Vec<EpochHparams>> = vec![Vec::new(); 5];
    for e in 1..=4 {
        for (m, acc) in account.iter_mut().enumerate() {
            let row = record.row(m, e).unwrap();
            acc.push(EpochHparams {
                epoch: e,
                lr: row.lr,
                weight_decay: row.weight_decay,
            });
        }
        let snapshot = account.clone();
        for ev in record.lineage.iter().filter(|ev| ev.epoch == e) {
            account[ev.member] = snapshot[ev.from].clone();
        }
    }
    assert_eq!(best.schedule.epochs, account[best.member]);
    // The best member has the top validation accuracy after the last epoch.
    let last: Vec<f64> = (0..5)
        .map(|m| record.row(m, 4).unwrap().val_accuracy.unwrap())
        .collect();
    assert!(last.iter().all(|&a| a <= best.val_accuracy), "{last:?}");
    assert_eq!(last[best.member], best.val_accuracy);
    assert_eq!(best.ancestry.last().unwrap().member, best.member);
    assert_eq!(best.ancestry.first().unwrap().first_epoch, 1);
    assert_eq!(best.ancestry.last().unwrap().last_epoch, 4);

    // Replay from scratch: the sweep's seed (data order, split, initial weights), the
    // lineage's momentum, the schedule per epoch.
    let (train, test) = (prototypes(1, 150), prototypes(2, 20));
    let data: RunData<'_> = common::data(&train, &test);
    let first = best.schedule.epochs[0];
    let cfg = Hparams {
        lr: first.lr,
        weight_decay: first.weight_decay,
        momentum: best.final_hparams.momentum,
        batch_size: best.final_hparams.batch_size,
    }
    .apply(&configs(&space(4), 1, 3)[0]);
    let mut engine = common::engine(On::Cpu, &cfg, data).unwrap();
    let mut trainer = Trainer::new(engine.as_mut()).unwrap();
    trainer
        .set_hparam_schedule(0, best.schedule.clone())
        .unwrap();
    let history = trainer.fit_single(&mut |_| Ok(())).unwrap();
    assert_eq!(history.len(), 4);
    for (h, s) in history.iter().zip(&best.schedule.epochs) {
        assert_eq!(
            h.lr,
            f64::from(s.lr as f32),
            "epoch {}: the schedule's lr",
            h.epoch
        );
    }
    assert_eq!(history[3].val_accuracy, Some(best.val_accuracy));
    assert_eq!(
        engine.params(0).unwrap(),
        params[best.member],
        "the replay ends on the best member's weights"
    );
    // The lineage changed the weight decay or the lr somewhere, so the replay needed the
    // schedule: a run at the first epoch's values alone ends elsewhere.
    assert!(
        best.schedule.epochs.iter().any(|e| *e
            != EpochHparams {
                epoch: e.epoch,
                ..first
            }),
        "{:?}",
        best.schedule
    );
    let mut plain = common::engine(On::Cpu, &RunConfig { epochs: 4, ..cfg }, data).unwrap();
    Trainer::new(plain.as_mut())
        .unwrap()
        .fit_single(&mut |_| Ok(()))
        .unwrap();
    assert_ne!(plain.params(0).unwrap(), params[best.member]);
}

#[test]
fn pbt_refuses_spaces_and_settings_it_cannot_run() {
    let mut s = space(3);
    // Several batch sizes are fine when they are multiples of the smallest (issue 23).
    s.batch_size = "16,32".parse().unwrap();
    assert_eq!(fixed_settings(&s).unwrap().0, 16);
    s.batch_size = "16,24".parse().unwrap();
    let e = fixed_settings(&s).unwrap_err().to_string();
    assert!(
        e.contains("24") && e.contains("multiple of the smallest, 16"),
        "{e}"
    );
    s.batch_size = "16:64".parse().unwrap();
    let e = fixed_settings(&s).unwrap_err().to_string();
    assert!(e.contains("batch-size") && e.contains("list"), "{e}");
    let mut s = space(3);
    s.hidden = "12,24".parse().unwrap();
    let e = fixed_settings(&s).unwrap_err().to_string();
    assert!(e.contains("hidden") && e.contains("one"), "{e}");
    let mut s = space(3);
    s.epochs = "2:8".parse().unwrap();
    assert!(
        fixed_settings(&s)
            .unwrap_err()
            .to_string()
            .contains("epochs")
    );
    let cfgs = configs(&space(3), 4, 1);
    for (bad, flag) in [
        (
            PbtSettings {
                interval: 0,
                ..settings(1)
            },
            "pbt-interval",
        ),
        (
            PbtSettings {
                quantile: 0.6,
                ..settings(1)
            },
            "pbt-quantile",
        ),
        (
            PbtSettings {
                resample: 1.5,
                ..settings(1)
            },
            "pbt-resample",
        ),
    ] {
        let e = Pbt::new(space(3), bad, &cfgs).err().unwrap().to_string();
        assert!(e.contains(flag), "{e}");
    }
    let e = Pbt::new(space(3), settings(1), &cfgs[..1])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("at least 2"), "{e}");
    assert_eq!(settings(1).group_size(5), 2);
    assert_eq!(
        PbtSettings {
            quantile: 0.25,
            ..settings(1)
        }
        .group_size(4),
        1
    );
    assert_eq!(
        PbtSettings {
            quantile: 0.5,
            ..settings(1)
        }
        .group_size(3),
        1
    );
}

/// The GPU engine changes its weight decay between epochs as the CPU engine does: the
/// two replays of one schedule agree, and differ from a run that keeps the first decay.
#[test]
fn gpu_engine_honours_a_per_epoch_weight_decay() {
    let (train, test) = (prototypes(1, 60), prototypes(2, 10));
    let data = common::data(&train, &test);
    let cfg = RunConfig {
        hidden: vec![8],
        batch_size: 16,
        epochs: 2,
        seed: 2,
        schedule: wgtrain::schedule::LrSchedule::new(0.05, wgtrain::schedule::Schedule::Constant),
        sgd: wgtrain::optim::SgdConfig {
            weight_decay: 0.0,
            momentum: 0.9,
            ..Default::default()
        },
        ..RunConfig::default()
    };
    let schedule = HparamSchedule {
        source: None,
        epochs: vec![
            EpochHparams {
                epoch: 1,
                lr: 0.05,
                weight_decay: 0.0,
            },
            EpochHparams {
                epoch: 2,
                lr: 0.02,
                weight_decay: 0.5,
            },
        ],
    };
    let replay = |on: On, schedule: Option<&HparamSchedule>| {
        let mut engine = common::engine(on, &cfg, data).unwrap();
        let mut t = Trainer::new(engine.as_mut()).unwrap();
        if let Some(s) = schedule {
            t.set_hparam_schedule(0, s.clone()).unwrap();
        }
        t.fit_single(&mut |_| Ok(())).unwrap();
        engine.params(0).unwrap()
    };
    let cpu = replay(On::Cpu, Some(&schedule));
    let gpu = replay(On::default_gpu(), Some(&schedule));
    common::assert_close("gpu vs cpu replay", &gpu, &cpu, 1e-5, 1e-4);
    let kept = replay(On::Cpu, None);
    let moved = cpu
        .iter()
        .zip(&kept)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        moved > 1e-2,
        "the schedule's decay moved the weights by only {moved}"
    );
}

fn mnist_dir() -> String {
    std::env::var("MNIST_DIR")
        .unwrap_or_else(|_| panic!("set MNIST_DIR to the directory with the four MNIST files"))
}

fn wgtrain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("the wgtrain binary runs")
}

/// `wgtrain sweep --search pbt` writes its files and prints a replay command;
/// `wgtrain train --hparam-schedule` run with it ends on the best member's validation
/// accuracy exactly.
#[test]
fn pbt_sweep_cli_prints_a_replay_command_that_reproduces_the_best_member() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pbt");
    let mnist = mnist_dir();
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &mnist,
        "--no-download",
        "--search",
        "pbt",
        "--population",
        "4",
        "--pbt-interval",
        "1",
        "--epochs",
        "3",
        "--hidden",
        "16",
        "--batch-size",
        "32",
        "--lr",
        "0.01:0.5",
        "--weight-decay",
        "0,1e-4,1e-3",
        "--momentum",
        "0.9",
        "--train-subset",
        "600",
        "--val-split",
        "0.2",
        "--seed",
        "5",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stdout}\n{stderr}");
    for f in [
        "pbt.json",
        "pbt_members.csv",
        "pbt_lineage.csv",
        "pbt_best_schedule.json",
        "leaderboard.csv",
        "best.json",
        "pbt_val_accuracy.png",
        "pbt_val_accuracy.svg",
    ] {
        assert!(out.join(f).is_file(), "{f} missing; stderr:\n{stderr}");
    }
    let record = read_record(&out.join("pbt.json")).unwrap();
    assert_eq!(record.lineage.len(), 2, "2 exploit steps of 1 member");
    let best = record.best.as_ref().unwrap();
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("wgtrain train"))
        .unwrap_or_else(|| panic!("no replay command in:\n{stdout}"));
    let mut args: Vec<String> = shell_words(line.trim())[1..].to_vec();
    let metrics = dir.path().join("replay.jsonl");
    args.extend([
        "--quiet".into(),
        "--metrics".into(),
        metrics.display().to_string(),
    ]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = wgtrain(&args);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = wgtrain::tune::read_metrics(&metrics).unwrap();
    assert_eq!(m.len(), 3);
    assert_eq!(m[2].val_accuracy, Some(best.val_accuracy), "{line}");

    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &mnist,
        "--no-download",
        "--search",
        "pbt",
        "--batch-size",
        "32,48",
        "--out",
        dir.path().join("bad").to_str().unwrap(),
    ]);
    // Mixed batch sizes are fine as multiples of the smallest (issue 23); 48 is not one.
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("batch-size") && err.contains("48 is not a multiple of the smallest, 32"),
        "{err}"
    );
}

/// Splits a printed command line on spaces, honouring single quotes.
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '\'' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Issue 23: PBT members may differ in batch size (multiples of the smallest, one
/// population). An exploit copies weights, momentum and the better member's batch size;
/// explore never changes a batch size; the run goes on across such copies, and the best
/// member names the batch sizes of its lineage.
#[test]
fn pbt_members_of_several_batch_sizes_copy_the_better_members_batch_size() {
    let (train, test) = (prototypes(1, 150), prototypes(2, 20));
    let data = common::data(&train, &test);
    let mut space = space(4);
    space.batch_size = "16,32".parse().unwrap();
    let mut crossed = 0;
    for seed in 1..=6 {
        let cfgs = configs(&space, 5, seed);
        let sizes: std::collections::BTreeSet<usize> = cfgs.iter().map(|c| c.batch_size).collect();
        let mut pop = common::population(On::Cpu, &cfgs, data).unwrap();
        assert_eq!(pop.setup().micro_batch(), *sizes.first().unwrap());
        let mut trainer = Trainer::new(pop.as_mut()).unwrap();
        trainer.set_evaluate_test(false);
        let pbt = Pbt::new(space.clone(), settings(seed), &cfgs).unwrap();
        let record = pbt.run(&mut trainer, &mut |_, _| Ok(())).unwrap();
        for e in &record.lineage {
            assert_eq!(e.new.batch_size, e.copied.batch_size, "seed {seed}: {e:?}");
            let next = record.row(e.member, e.epoch + 1).unwrap();
            assert_eq!(next.batch_size, e.copied.batch_size, "seed {seed}: {e:?}");
            crossed += usize::from(e.old.batch_size != e.copied.batch_size);
        }
        let best = record.best.as_ref().unwrap();
        assert_eq!(
            best.batch_sizes.last(),
            Some(&best.final_hparams.batch_size),
            "seed {seed}"
        );
        assert!(best.batch_sizes.iter().all(|b| sizes.contains(b)));
    }
    assert!(crossed > 0, "some copy crosses batch sizes");
}

/// Issue 23: an exploit between members of different batch sizes copies weights and
/// momentum, and the copy takes the source's batch size and step count: after one more
/// epoch the two members are still equal bit for bit, whichever way the copy went (into a
/// larger-batch slot the copy steps at the micro-batch; into a smaller one it sums two
/// micro-steps as its source does). A member that copied the micro-batch member also
/// equals that member's single run of two epochs, bit for bit.
#[test]
fn exploit_across_batch_sizes_copies_weights_momentum_and_batch_size() {
    let (train, test) = (prototypes(1, 150), prototypes(2, 20));
    let data = common::data(&train, &test);
    let cfg = |batch: usize, lr: f64| {
        let mut c = RunConfig {
            hidden: vec![12],
            batch_size: batch,
            epochs: 2,
            seed: 7,
            validation_split: 0.2,
            ..RunConfig::default()
        };
        c = Hparams {
            lr,
            weight_decay: 1e-4,
            momentum: 0.9,
            batch_size: batch,
        }
        .apply(&c);
        c
    };
    let cfgs = [cfg(16, 0.05), cfg(32, 0.02)];
    for (from, to) in [(0, 1), (1, 0)] {
        let mut pop = common::population(On::Cpu, &cfgs, data).unwrap();
        assert_eq!(pop.setup().micro_batch(), 16);
        let mut trainer = Trainer::new(pop.as_mut()).unwrap();
        trainer.set_evaluate_test(false);
        trainer.run_epoch(&mut |_| {}).unwrap();
        assert_ne!(
            trainer.engine().params(0).unwrap(),
            trainer.engine().params(1).unwrap()
        );
        trainer.exploit(from, to, cfgs[from].clone()).unwrap();
        assert_eq!(trainer.config(to).batch_size, cfgs[from].batch_size);
        trainer.run_epoch(&mut |_| {}).unwrap();
        let (a, b) = (
            trainer.engine().params(0).unwrap(),
            trainer.engine().params(1).unwrap(),
        );
        assert_eq!(
            a, b,
            "copy {from} -> {to}: same weights, momentum and batch train alike"
        );
        if from == 0 {
            let mut single = common::engine(On::Cpu, &cfgs[0], data).unwrap();
            Trainer::new(single.as_mut())
                .unwrap()
                .fit_single(&mut |_| Ok(()))
                .unwrap();
            assert_eq!(
                b,
                single.params(0).unwrap(),
                "member 1 is batch 16's single run"
            );
        }
    }
}
