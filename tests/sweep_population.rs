//! Sweeps run as populations (`wgtrain sweep --population K`): without pruning the trials
//! are those of the sequential sweep (same ids, same metrics: bit for bit at a population's
//! smallest batch size, to the rounding of a gradient sum's order above it), whatever the
//! grouping; pruned, diverged and completed members leave their slot to the next trial of
//! their group (a scripted population engine, so every accuracy is known in advance); an
//! interrupted population sweep resumes from a trials file with gaps.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::AtomicBool;

use wgtrain::RunConfig;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, EvalSet, Evaluation, PopulationSetup, RunData};
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::step::{MEMBER_FROZEN, MemberStep, StepRecord, StepSums};
use wgtrain::tune::population_sweep::{PendingTrial, PopulationEvent, run_group};
use wgtrain::tune::prune::{HalvingPruner, MedianPruner, Pruner};
use wgtrain::tune::space::TrialConfig;
use wgtrain::tune::sweep::{Sweep, Trial, TrialStatus, read_trials};

fn mnist_dir() -> String {
    std::env::var("MNIST_DIR").unwrap_or_else(|_| {
        panic!(
            "set MNIST_DIR to the directory with the four MNIST files, e.g. \
             MNIST_DIR=../shared/data/mnist cargo test --release"
        )
    })
}

fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("the wgtrain binary runs")
}

#[track_caller]
fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A small random sweep on an MNIST subset with mixed batch sizes and epochs (so trials of
/// different groups interleave in id order), no pruning, into `out`.
fn small_sweep(out: &Path, extra: &[&str]) -> Output {
    let data = mnist_dir();
    let mut args = vec![
        "sweep",
        "--device",
        "cpu",
        "--data",
        &data,
        "--no-download",
        "--train-subset",
        "600",
        "--hidden",
        "16",
        "--search",
        "random",
        "--trials",
        "7",
        "--lr",
        "1e-2:0.3",
        "--batch-size",
        "32,64",
        "--epochs",
        "1,2",
        "--momentum",
        "0,0.9",
        "--pruning",
        "none",
        "--seed",
        "11",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    wgtrain(&args)
}

/// Everything of two trials files but the wall times: bit for bit for the trials at
/// `exact_batch`, the smallest batch size (each a member at its population's micro-batch,
/// or alone); for larger batch sizes, whose population members sum their gradients in
/// micro-steps (`tests/mixed_batch.rs` bounds the difference), the losses to 1e-4 and the
/// accuracies on these 60 validation samples equal.
#[track_caller]
fn assert_same_trials(a: &[Trial], b: &[Trial], exact_batch: usize) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!((x.id, x.status, &x.config), (y.id, y.status, &y.config));
        assert_eq!(x.history.len(), y.history.len(), "trial {}", x.id);
        if x.config.batch_size != exact_batch {
            for (m, n) in x.history.iter().zip(&y.history) {
                let close = |p: Option<f64>, q: Option<f64>| (p.unwrap() - q.unwrap()).abs() < 1e-4;
                assert!(
                    (m.train_loss - n.train_loss).abs() < 1e-4
                        && close(m.val_loss, n.val_loss)
                        && m.val_accuracy == n.val_accuracy,
                    "trial {} epoch {}: {m:?} vs {n:?}",
                    x.id,
                    m.epoch
                );
            }
            continue;
        }
        assert_eq!(
            (x.val_loss, x.val_accuracy),
            (y.val_loss, y.val_accuracy),
            "trial {}",
            x.id
        );
        for (m, n) in x.history.iter().zip(&y.history) {
            assert_eq!(
                (
                    m.epoch,
                    m.lr,
                    m.train_loss,
                    m.train_accuracy,
                    m.val_loss,
                    m.val_accuracy
                ),
                (
                    n.epoch,
                    n.lr,
                    n.train_loss,
                    n.train_accuracy,
                    n.val_loss,
                    n.val_accuracy
                ),
                "trial {} epoch {}",
                x.id,
                m.epoch
            );
        }
    }
}

#[test]
fn a_population_sweep_without_pruning_gives_the_sequential_trials_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let (seq, pop) = (dir.path().join("seq"), dir.path().join("pop"));
    let seq_best = dir.path().join("seq.safetensors");
    let pop_best = dir.path().join("pop.safetensors");
    let tb = dir.path().join("tb");
    assert_success(
        &small_sweep(
            &seq,
            &[
                "--population",
                "1",
                "--save-best",
                seq_best.to_str().unwrap(),
            ],
        ),
        "sweep --population 1",
    );
    let run = small_sweep(
        &pop,
        &[
            "--population",
            "2",
            "--save-best",
            pop_best.to_str().unwrap(),
            "--tensorboard",
            tb.to_str().unwrap(),
        ],
    );
    assert_success(&run, "sweep --population 2");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("populations: "), "{stderr}");
    let a = read_trials(&seq.join("trials.json")).unwrap();
    let b = read_trials(&pop.join("trials.json")).unwrap();
    // The draw must mix the groups, or the test would not test the grouping.
    let groups: std::collections::BTreeSet<(usize, usize)> = a
        .iter()
        .map(|t| (t.config.batch_size, t.config.epochs))
        .collect();
    assert!(groups.len() >= 3, "{groups:?}");
    assert_eq!(
        b.iter().map(|t| t.id).collect::<Vec<_>>(),
        (0..7).collect::<Vec<_>>()
    );
    assert!(a.iter().all(|t| t.status == TrialStatus::Complete));
    assert_same_trials(&a, &b, 32);
    // One population per epoch count: batch sizes 32 and 64 share it (issue 23).
    assert!(
        stderr.contains("populations: 2 groups of trials sharing hidden sizes and epochs"),
        "{stderr}"
    );
    let best = |d: &Path| std::fs::read_to_string(d.join("best.json")).unwrap();
    let best_json = |d: &Path| serde_json::from_str::<serde_json::Value>(&best(d)).unwrap();
    let (sb, pb) = (best_json(&seq), best_json(&pop));
    assert_eq!((&sb["trial"], &sb["config"]), (&pb["trial"], &pb["config"]));
    // The time side: a single run's epoch time per batch size, measured by each sweep.
    for b in [&sb, &pb] {
        let times = b["epoch_seconds_by_batch"].as_object().unwrap();
        assert_eq!(times.keys().collect::<Vec<_>>(), ["32", "64"], "{b}");
        assert!(times.values().all(|s| s.as_f64().unwrap() > 0.0), "{b}");
    }
    // The best trial's weights, read back from its member of a population, are those of
    // its sequential run (to the rounding of its gradient sums at batch 64); every trial
    // has its TensorBoard run, named by its id.
    let weights = |p: &Path| wgtrain::checkpoint::load(p).unwrap().params;
    let (sw, pw) = (weights(&seq_best), weights(&pop_best));
    if sb["config"]["batch_size"] == 32 {
        assert_eq!(sw, pw);
    } else {
        assert!(sw.iter().zip(&pw).all(|(x, y)| (x - y).abs() < 1e-4));
    }
    for id in 0..7 {
        assert!(
            tb.join(format!("trial-{id:03}")).is_dir(),
            "trial {id}'s run"
        );
    }
    // --quiet: one line per trial, in the order they finished, each naming its id.
    let stdout = String::from_utf8_lossy(&run.stdout);
    let mut ids: Vec<usize> = stdout
        .lines()
        .filter(|l| l.starts_with("trial ") && l.contains(": complete: val acc "))
        .map(|l| l[6..].split(' ').next().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, (0..7).collect::<Vec<_>>(), "{stdout}");

    // Resume from a trials file with a gap (as an interrupted population sweep leaves it):
    // only the missing trial runs, and the sweep ends as the uninterrupted one did.
    let best_id = serde_json::from_str::<serde_json::Value>(&best(&pop)).unwrap()["trial"]
        .as_u64()
        .unwrap() as usize;
    let gap = if best_id == 3 { 4 } else { 3 };
    let kept: Vec<&Trial> = b.iter().filter(|t| t.id != gap).collect();
    std::fs::write(
        pop.join("trials.json"),
        serde_json::to_string_pretty(&kept).unwrap(),
    )
    .unwrap();
    let run = small_sweep(&pop, &["--population", "2", "--resume"]);
    assert_success(&run, "sweep --population 2 --resume");
    let stdout = String::from_utf8_lossy(&run.stdout);
    let ran: Vec<&str> = stdout.lines().filter(|l| l.starts_with("trial ")).collect();
    assert_eq!(ran.len(), 1, "{stdout}");
    assert!(ran[0].starts_with(&format!("trial {gap} ")), "{stdout}");
    assert_same_trials(&a, &read_trials(&pop.join("trials.json")).unwrap(), 32);
}

/// A population engine whose members' validation accuracy after their own epoch e is
/// `lr + 0.01 e` (so each trial's curve is known from its learning rate), and whose
/// training loss is non-finite for a learning rate above 1. Its parameters are one value,
/// the member's learning rate: the sweep's best parameters name the member they came from.
struct Scripted {
    setup: PopulationSetup,
    epochs: Vec<usize>,
}

fn lr_of(cfg: &RunConfig) -> f64 {
    cfg.schedule.base_lr
}

impl Engine for Scripted {
    fn setup(&self) -> &PopulationSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        "scripted".into()
    }

    fn train_epoch(
        &mut self,
        _order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        _stop: &AtomicBool,
    ) -> wgtrain::Result<Vec<Vec<StepSums>>> {
        let k = self.setup.len();
        let mut sums = vec![Vec::new(); k];
        for (m, member_sums) in sums.iter_mut().enumerate() {
            let frozen = member_steps[m].flags & MEMBER_FROZEN != 0;
            if !frozen {
                self.epochs[m] += 1;
            }
            let bad = !frozen && lr_of(&self.setup.members[m].config) > 1.0;
            for st in steps {
                let loss = if bad { f32::NAN } else { 0.5 * st.batch as f32 };
                member_sums.push([loss, 0.0]);
            }
        }
        progress(steps.len());
        Ok(sums)
    }

    fn evaluate(&mut self, set: EvalSet) -> wgtrain::Result<Vec<Evaluation>> {
        assert_eq!(
            set,
            EvalSet::Validation,
            "a sweep never looks at the test set"
        );
        Ok(self
            .setup
            .members
            .iter()
            .zip(&self.epochs)
            .map(|(m, &e)| Evaluation {
                loss: 1.0,
                accuracy: lr_of(&m.config) + 0.01 * e as f64,
                samples: 10,
            })
            .collect())
    }

    fn dispatches_per_step(&self) -> usize {
        1
    }

    fn logits(&mut self, _member: usize, _set: EvalSet) -> wgtrain::Result<Vec<f32>> {
        unreachable!("sweeps do not read logits")
    }

    fn params(&mut self, member: usize) -> wgtrain::Result<Vec<f32>> {
        Ok(vec![lr_of(&self.setup.members[member].config) as f32])
    }

    fn momentum(&mut self, _member: usize) -> wgtrain::Result<Vec<f32>> {
        unreachable!("sweeps do not read momentum")
    }

    fn set_state(
        &mut self,
        _member: usize,
        _params: &[f32],
        _momentum: Option<&[f32]>,
    ) -> wgtrain::Result<()> {
        unreachable!("sweeps do not set parameters")
    }

    fn copy_member(&mut self, _from: usize, _to: usize) -> wgtrain::Result<()> {
        unreachable!("sweeps do not copy members")
    }

    fn set_sgd(&mut self, _member: usize, _sgd: &SgdConfig) -> wgtrain::Result<()> {
        unreachable!("sweeps do not change a member's settings")
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> wgtrain::Result<()> {
        self.setup.members[member] = self.setup.member_setup(member, cfg)?;
        self.epochs[member] = 0;
        Ok(())
    }
}

/// Trials with these learning rates and `epochs` epochs each, one group.
fn trials(lrs: &[f64], epochs: usize) -> Vec<PendingTrial> {
    trials_at(lrs, &vec![8; lrs.len()], epochs)
}

/// Trials with these learning rates and batch sizes and `epochs` epochs each, one group.
fn trials_at(lrs: &[f64], batches: &[usize], epochs: usize) -> Vec<PendingTrial> {
    lrs.iter()
        .zip(batches)
        .enumerate()
        .map(|(id, (&lr, &batch))| PendingTrial {
            id,
            config: TrialConfig {
                lr,
                weight_decay: 0.0,
                batch_size: batch,
                momentum: 0.0,
                hidden: vec![4],
                epochs,
            },
            run: RunConfig {
                hidden: vec![4],
                batch_size: batch,
                epochs,
                schedule: LrSchedule::new(lr, Schedule::Constant),
                validation_split: 0.2,
                ..RunConfig::default()
            },
        })
        .collect()
}

/// Runs `group` as populations of `k` scripted members; returns the sweep and the
/// `(trial, slot)` of every start, in order.
fn run_scripted(
    pruner: Option<Pruner>,
    group: &[PendingTrial],
    k: usize,
) -> (Sweep, Vec<(usize, usize)>) {
    let train = Dataset {
        images: (0..50 * 4).map(|v| (v % 251) as u8).collect(),
        labels: (0..50).map(|i| i % 3).collect(),
        rows: 2,
        cols: 2,
    };
    let test = train.clone();
    let data = RunData {
        train: &train,
        test: &test,
        classes: 3,
        micro_batch: None,
    };
    let mut sweep = Sweep::new(pruner);
    let mut starts = Vec::new();
    let mut open = |cfgs: &[RunConfig], micro: Option<usize>| -> wgtrain::Result<Box<dyn Engine>> {
        Ok(Box::new(Scripted {
            setup: PopulationSetup::new(
                cfgs,
                RunData {
                    micro_batch: micro,
                    ..data
                },
            )?,
            epochs: vec![0; cfgs.len()],
        }))
    };
    let mut on_event = |_: &Sweep, e: PopulationEvent<'_>| {
        if let PopulationEvent::Started { id, slot, .. } = e {
            starts.push((id, slot));
        }
        Ok(())
    };
    run_group(&mut sweep, group, k, &mut open, &mut on_event).unwrap();
    (sweep, starts)
}

fn summary(sweep: &Sweep) -> Vec<(usize, TrialStatus, usize)> {
    sweep
        .trials()
        .iter()
        .map(|t| (t.id, t.status, t.history.len()))
        .collect()
}

#[test]
fn a_median_pruned_member_leaves_its_slot_to_the_next_trial() {
    use TrialStatus::{Complete, Pruned};
    let pruner = MedianPruner {
        warmup_epochs: 1,
        min_trials: 1,
    };
    let (sweep, starts) = run_scripted(
        Some(pruner.into()),
        &trials(&[0.5, 0.9, 0.3, 0.8, 0.7], 3),
        2,
    );
    // Wave 1: trials 0 and 1 (nothing completed, nothing pruned) complete together; the
    // slots are all free, so wave 2 opens a fresh population with trials 2 and 3. After
    // epoch 2 the completed trials' accuracies are 0.52 and 0.92 (median 0.72): trial 2
    // (0.32) is pruned and trial 4 takes its slot 0; trial 3 (0.82) goes on and completes.
    // Trial 4 after its epoch 2: completed 0.52, 0.92, 0.82 (median 0.82) > 0.72: pruned.
    assert_eq!(starts, [(0, 0), (1, 1), (2, 0), (3, 1), (4, 0)]);
    assert_eq!(
        summary(&sweep),
        [
            (0, Complete, 3),
            (1, Complete, 3),
            (2, Pruned, 2),
            (3, Complete, 3),
            (4, Pruned, 2)
        ]
    );
    let t4 = &sweep.trials()[4];
    assert_eq!(t4.history.last().unwrap().val_accuracy, Some(0.7 + 0.02));
    assert!(
        t4.note.as_deref().unwrap().contains("median"),
        "{:?}",
        t4.note
    );
    assert_eq!(sweep.best_trial().unwrap().id, 1);
    assert_eq!(sweep.best_params().unwrap(), [0.9f32]);
}

/// Issue 23: trials of several batch sizes share a population when each is a multiple of
/// its smallest (the scripted engine opens through `PopulationSetup::new`, which refuses
/// any other mix).
#[test]
fn a_wave_mixes_batch_sizes_that_are_multiples_of_its_smallest() {
    use TrialStatus::{Complete, Pruned};
    let pruner = MedianPruner {
        warmup_epochs: 1,
        min_trials: 1,
    };
    let (sweep, starts) = run_scripted(
        Some(pruner.into()),
        &trials_at(&[0.5, 0.9, 0.3, 0.8, 0.7], &[16, 8, 16, 12, 16], 3),
        2,
    );
    // Wave 1 steps at 8 (the smallest waiting): trial 1 and, in id order, trial 0 (16).
    // Wave 2 at 12: trial 3 alone (16 is no multiple of 12). Wave 3 at 16: trials 2 and 4,
    // both below the median of the completed trials at epoch 2 (0.82): pruned.
    assert_eq!(starts, [(0, 0), (1, 1), (3, 0), (2, 0), (4, 1)]);
    assert_eq!(
        summary(&sweep),
        [
            (0, Complete, 3),
            (1, Complete, 3),
            (2, Pruned, 2),
            (3, Complete, 3),
            (4, Pruned, 2)
        ]
    );
}

#[test]
fn successive_halving_keeps_the_top_of_each_rung_and_refills_the_slots() {
    use TrialStatus::{Complete, Pruned};
    let pruner = HalvingPruner {
        min_epochs: 1,
        eta: 3,
        min_trials: 1,
    };
    let (sweep, starts) = run_scripted(
        Some(pruner.into()),
        &trials(&[0.5, 0.9, 0.3, 0.8, 0.7], 3),
        3,
    );
    // Rung epoch 1, first wave: 0.51, 0.91, 0.31, n = 3, m = 1: only trial 1 goes on.
    // Trials 3 and 4 take slots 0 and 2; at their rung 1 the values are 0.51, 0.31 (pruned
    // trials), 0.91 (trial 1, running), 0.81, 0.71: n = 5, m = 1, both pruned. Trial 1's
    // next rung (epoch 3) is its last epoch: it completes.
    assert_eq!(starts, [(0, 0), (1, 1), (2, 2), (3, 0), (4, 2)]);
    assert_eq!(
        summary(&sweep),
        [
            (0, Pruned, 1),
            (1, Complete, 3),
            (2, Pruned, 1),
            (3, Pruned, 1),
            (4, Pruned, 1)
        ]
    );
    let note = sweep.trials()[3].note.clone().unwrap();
    assert!(
        note.contains("top 1/3 of the 5 trials at rung epoch 1"),
        "{note}"
    );
}

#[test]
fn a_diverged_member_leaves_its_slot_and_seconds_are_shares() {
    use TrialStatus::{Complete, Diverged};
    let (sweep, starts) = run_scripted(None, &trials(&[5.0, 0.5, 0.6], 2), 2);
    // Trial 0 diverges in its first epoch; trial 2 starts in its slot while trial 1 trains.
    assert_eq!(starts, [(0, 0), (1, 1), (2, 0)]);
    assert_eq!(
        summary(&sweep),
        [(0, Diverged, 0), (1, Complete, 2), (2, Complete, 2)]
    );
    let note = sweep.trials()[0].note.clone().unwrap();
    assert!(note.contains("epoch 1"), "{note}");
    // Refilled, trial 2 counts its own epochs.
    let epochs: Vec<usize> = sweep.trials()[2].history.iter().map(|m| m.epoch).collect();
    assert_eq!(epochs, [1, 2]);
    assert_eq!(sweep.trials()[2].val_accuracy, Some(0.6 + 0.02));
    assert!(
        sweep
            .trials()
            .iter()
            .all(|t| t.seconds >= 0.0 && t.seconds.is_finite())
    );
}
