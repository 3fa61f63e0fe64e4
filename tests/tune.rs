//! Tuning end to end: a sweep on real MNIST whose leaderboard must agree with its own
//! trial files, the range test on a synthetic problem, pruning inside a sweep, the
//! pictures, and the Optuna example with SQLite storage.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wgtrain::RunConfig;
use wgtrain::cpu_engine::CpuEngine;
use wgtrain::data::Dataset;
use wgtrain::engine::{Engine, EvalSet, Evaluation, PopulationSetup, RunData, StepSums};
use wgtrain::gpu::StepRecord;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{LrSchedule, Schedule};
use wgtrain::step::MemberStep;
use wgtrain::train::Trainer;
use wgtrain::tune::lr_find::{LrFindConfig, Stop, lr_find};
use wgtrain::tune::population_sweep::{PendingTrial, PopulationEvent, run_group};
use wgtrain::tune::prune::MedianPruner;
use wgtrain::tune::space::TrialConfig;
use wgtrain::tune::sweep::{
    BestTrial, LeaderboardRow, Sweep, Trial, TrialEpochRow, TrialStatus, leaderboard, read_trials,
    trial_rows,
};
use wgtrain::tune::{EpochMetrics, plot};

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

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "{} is not a PNG",
        path.display()
    );
    // Big enough to hold more than a blank canvas.
    assert!(
        bytes.len() > 10_000,
        "{}: {} bytes",
        path.display(),
        bytes.len()
    );
}

fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.starts_with("<svg"), "{} is not an SVG", path.display());
    assert!(
        text.trim_end().ends_with("</svg>"),
        "{} is cut short",
        path.display()
    );
    assert!(text.contains("<text"), "{} has no text", path.display());
    assert!(
        text.contains("<polyline") || text.contains("<path"),
        "{} has no lines",
        path.display()
    );
}

/// Equal up to float parsing: `|a - b| <= 1e-12 * max(|a|, |b|)`.
fn assert_close(a: f64, b: f64) {
    assert!((a - b).abs() <= 1e-12 * a.abs().max(b.abs()), "{a} != {b}");
}

fn read_csv<T: serde::de::DeserializeOwned>(path: &Path) -> Vec<T> {
    csv::Reader::from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .deserialize()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn a_small_mnist_sweep_runs_end_to_end_and_its_leaderboard_matches_its_trials() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("sweep");
    let out = out_dir.to_str().unwrap();
    let data = mnist_dir();
    let run = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &data,
        "--no-download",
        "--train-subset",
        "2000",
        "--epochs",
        "2",
        "--trials",
        "4",
        "--search",
        "random",
        "--lr",
        "1e-2:0.5",
        "--weight-decay",
        "0,1e-4",
        "--prune-min-trials",
        "2",
        "--seed",
        "3",
        "--out",
        out,
        "--quiet",
    ]);
    assert_success(&run, "wgtrain sweep");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("leaderboard"), "{stdout}");

    let trials: Vec<Trial> = read_trials(&out_dir.join("trials.json")).unwrap();
    assert_eq!(trials.len(), 4);
    for (i, t) in trials.iter().enumerate() {
        assert_eq!(t.id, i);
        assert!((1e-2..=0.5).contains(&t.config.lr), "{:?}", t.config);
        assert!([0.0, 1e-4].contains(&t.config.weight_decay));
        assert_eq!(t.config.epochs, 2);
        match t.status {
            TrialStatus::Complete => assert_eq!(t.history.len(), 2),
            TrialStatus::Pruned => assert_eq!(t.history.len(), 1),
            TrialStatus::Diverged => {}
        }
        // The trial's score is its last epoch's validation accuracy; no test metrics.
        let last = t.history.last().unwrap();
        assert_eq!(t.val_accuracy, last.val_accuracy);
        assert_eq!(t.val_loss, last.val_loss);
        assert!(t.history.iter().all(|m| m.test_accuracy.is_none()));
        let acc = t.val_accuracy.unwrap();
        assert!(acc > 0.2 && acc <= 1.0, "trial {i}: {acc}");
        // 200 validation samples: accuracies are multiples of 1/200.
        assert!(
            ((acc * 200.0) - (acc * 200.0).round()).abs() < 1e-9,
            "{acc}"
        );
    }

    // leaderboard.csv: the trials ranked from trials.json, value for value (up to the last
    // bit: serde_json's default float parser may round differently from the CSV's).
    let board: Vec<LeaderboardRow> = read_csv(&out_dir.join("leaderboard.csv"));
    let want = leaderboard(&trials);
    assert_eq!(board.len(), want.len());
    for (got, want) in board.iter().zip(&want) {
        assert_eq!(
            (
                got.rank,
                got.trial,
                got.status,
                got.batch_size,
                got.epochs,
                got.epochs_run
            ),
            (
                want.rank,
                want.trial,
                want.status,
                want.batch_size,
                want.epochs,
                want.epochs_run
            )
        );
        assert_eq!(got.hidden, want.hidden);
        assert_close(got.lr, want.lr);
        assert_close(got.weight_decay, want.weight_decay);
        assert_close(got.momentum, want.momentum);
        assert_close(got.seconds, want.seconds);
        assert_close(got.val_accuracy.unwrap(), want.val_accuracy.unwrap());
        assert_close(got.val_loss.unwrap(), want.val_loss.unwrap());
    }
    for w in board.windows(2) {
        let key = |r: &LeaderboardRow| {
            (
                r.status != TrialStatus::Complete,
                -r.val_accuracy.unwrap_or(-1.0),
            )
        };
        assert!(key(&w[0]) <= key(&w[1]), "not sorted: {w:?}");
    }
    for r in &board {
        let t = &trials[r.trial];
        assert_close(r.val_accuracy.unwrap(), t.val_accuracy.unwrap());
        assert_close(r.lr, t.config.lr);
        assert_eq!(r.epochs_run, t.history.len());
    }

    // trials.csv: one row per trial and epoch, the same numbers as trials.json.
    let rows: Vec<TrialEpochRow> = read_csv(&out_dir.join("trials.csv"));
    let want = trial_rows(&trials);
    assert_eq!(rows.len(), want.len());
    for (got, want) in rows.iter().zip(&want) {
        assert_eq!(
            (got.trial, got.epoch, got.status),
            (want.trial, want.epoch, want.status)
        );
        assert_close(got.lr, want.lr);
        assert_close(got.train_loss.unwrap(), want.train_loss.unwrap());
        assert_close(got.val_loss.unwrap(), want.val_loss.unwrap());
        assert_close(got.val_accuracy.unwrap(), want.val_accuracy.unwrap());
    }
    for t in &trials {
        let last = rows.iter().rfind(|r| r.trial == t.id).unwrap();
        assert_eq!(last.epoch, Some(t.history.len()));
        assert_close(last.val_accuracy.unwrap(), t.val_accuracy.unwrap());
    }

    // best.json: the top completed trial, and its one look at the test set.
    let best: BestTrial =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("best.json")).unwrap()).unwrap();
    assert_eq!(best.trial, board[0].trial);
    assert_eq!(board[0].status, TrialStatus::Complete);
    assert_close(best.val_accuracy, board[0].val_accuracy.unwrap());
    assert_eq!(best.test_samples, 10_000);
    assert!(
        best.test_accuracy > 0.5 && best.test_accuracy <= 1.0,
        "{best:?}"
    );
    assert!(
        stdout.contains(&format!("{:.2}%", 100.0 * best.test_accuracy)),
        "{stdout}"
    );

    for stem in ["sweep_lr_accuracy", "sweep_top_trials"] {
        assert_png(&out_dir.join(format!("{stem}.png")));
        assert_svg(&out_dir.join(format!("{stem}.svg")));
    }

    // The same trial through `wgtrain train` gives the same validation curve: one seed fixes
    // the subset, the split, the initialisation and the shuffles.
    let t = &trials[best.trial];
    let metrics = dir.path().join("m.jsonl");
    let lr = t.config.lr.to_string();
    let wd = t.config.weight_decay.to_string();
    let run = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &data,
        "--no-download",
        "--train-subset",
        "2000",
        "--val-split",
        "0.1",
        "--epochs",
        "2",
        "--lr",
        &lr,
        "--weight-decay",
        &wd,
        "--seed",
        "3",
        "--quiet",
        "--metrics",
        metrics.to_str().unwrap(),
        "--plot",
        dir.path().join("run").to_str().unwrap(),
    ]);
    assert_success(&run, "wgtrain train");
    let m = wgtrain::tune::read_metrics(&metrics).unwrap();
    assert_eq!(m.len(), t.history.len());
    for (got, want) in m.iter().zip(&t.history) {
        assert_close(got.val_accuracy.unwrap(), want.val_accuracy.unwrap());
        assert_close(got.val_loss.unwrap(), want.val_loss.unwrap());
    }
    assert_close(m[1].test_accuracy.unwrap(), best.test_accuracy);
    assert_png(&dir.path().join("run/learning_curves.png"));
    assert_svg(&dir.path().join("run/learning_curves.svg"));
}

#[test]
fn sweep_refuses_to_run_without_a_validation_split() {
    let out = wgtrain(&["sweep", "--device", "cpu", "--val-split", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("validation split"));
    let out = wgtrain(&["sweep", "--device", "cpu", "--lr", "0:1"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a log range from 0 is refused by the parser"
    );
}

/// A 4-class problem on 8x8 images: class c lights up quadrant c over faint noise. A
/// fraction `label_noise` of the labels is replaced by a random class, so the loss never
/// reaches 0 and a large enough learning rate diverges.
fn quadrants(n: usize, seed: u64, label_noise: f64) -> Dataset {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * 64);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let c = (i % 4) as u32;
        for p in 0..64 {
            let (row, col) = (p / 8, p % 8);
            let quadrant = (row / 4) * 2 + col / 4;
            let bright = quadrant == c as usize && rng.random_range(0..4) != 0;
            images.push(if bright {
                rng.random_range(150..=255)
            } else {
                rng.random_range(0..80)
            });
        }
        labels.push(if rng.random_range(0.0..1.0) < label_noise {
            rng.random_range(0..4)
        } else {
            c
        });
    }
    Dataset {
        images,
        labels,
        rows: 8,
        cols: 8,
    }
}

#[test]
fn lr_find_on_a_synthetic_problem_suggests_a_learning_rate_that_trains() {
    let train = quadrants(4000, 1, 0.2);
    let test = quadrants(400, 2, 0.0);
    let data = RunData {
        train: &train,
        test: &test,
        classes: 4,
        micro_batch: None,
    };
    // The range test runs over the engine's run (minibatch 32, seed 1); the engine's
    // learning rate is the one it trains at, so it is opened again at the suggestion.
    let open = |lr: f64| {
        let cfg = RunConfig {
            hidden: vec![32],
            epochs: 1,
            batch_size: 32,
            schedule: LrSchedule::new(lr, Schedule::Constant),
            sgd: SgdConfig {
                weight_decay: 0.0,
                ..SgdConfig::default()
            },
            seed: 1,
            ..RunConfig::default()
        };
        CpuEngine::new(&[cfg], data).unwrap()
    };
    let mut engine = open(0.01);
    let init = engine.setup().shared().init.clone();
    let cfg = LrFindConfig {
        start_lr: 1e-4,
        end_lr: 1e3,
        steps: 100,
        ..LrFindConfig::default()
    };
    let mut progress = Vec::new();
    let r = lr_find(&mut engine, &cfg, &mut |s| progress.push(s)).unwrap();
    // 1e3 is far past any usable rate: the test stops by itself.
    assert!(
        matches!(r.stop, Stop::Diverged { .. } | Stop::NonFinite { .. }),
        "{:?}",
        r.stop
    );
    assert!(r.points.len() < 100);
    assert!(progress.windows(2).all(|w| w[0] < w[1]) && !progress.is_empty());
    assert!(r.points.windows(2).all(|w| w[1].lr > w[0].lr));
    let s = r.suggestion().expect("a suggestion");
    assert!((1e-3..=30.0).contains(&s), "suggested lr {s}");
    assert!(r.steepest.is_some(), "the curve descends somewhere");
    // It must train: one epoch from fresh parameters at the suggestion.
    let mut engine = open(s);
    assert_eq!(engine.setup().shared().init, init, "fresh parameters");
    let mut trainer = Trainer::new(&mut engine).unwrap();
    let report = trainer
        .run_epoch(&mut |_| {})
        .unwrap()
        .remove(0)
        .into_report()
        .unwrap();
    assert!(
        report.test_accuracy > 0.9,
        "lr {s}: test accuracy {}",
        report.test_accuracy
    );

    let dir = tempfile::tempdir().unwrap();
    let files = plot::lr_find_curve(&r, dir.path(), "lr_find").unwrap();
    assert_eq!(files.len(), 2);
    assert_png(&dir.path().join("lr_find.png"));
    assert_svg(&dir.path().join("lr_find.svg"));
}

#[test]
fn lr_find_cli_writes_its_curve_and_suggestion() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lrf");
    let run = wgtrain(&[
        "lr-find",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--no-download",
        "--train-subset",
        "3000",
        "--steps",
        "60",
        "--out",
        out.to_str().unwrap(),
        "--quiet",
    ]);
    assert_success(&run, "wgtrain lr-find");
    assert!(String::from_utf8_lossy(&run.stdout).contains("suggested learning rate"));
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("lr_find.json")).unwrap()).unwrap();
    let s = json["suggestion"].as_f64().expect("a suggestion");
    assert!((1e-4..=10.0).contains(&s), "{s}");
    let points = json["result"]["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 60);
    assert_png(&out.join("lr_find.png"));
    assert_svg(&out.join("lr_find.svg"));
    assert!(out.join("lr_find.csv").exists());
}

/// An engine whose member k's validation accuracy after its epoch e is `curves[k][e]`:
/// the sweep's pruning and ranking without any training. Its parameters are one value,
/// the curve's first point.
struct ScriptedEngine {
    setup: PopulationSetup,
    curves: Vec<Vec<f64>>,
    epochs: Vec<usize>,
}

impl Engine for ScriptedEngine {
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
        _stop: &std::sync::atomic::AtomicBool,
    ) -> wgtrain::Result<Vec<Vec<StepSums>>> {
        for (m, e) in self.epochs.iter_mut().enumerate() {
            if !member_steps[m].frozen() {
                *e += 1;
            }
        }
        progress(steps.len());
        let sums = steps.iter().map(|s| [0.5 * s.batch as f32, 0.0]).collect();
        Ok(vec![sums; self.epochs.len()])
    }

    fn evaluate(&mut self, set: EvalSet) -> wgtrain::Result<Vec<Evaluation>> {
        assert_eq!(
            set,
            EvalSet::Validation,
            "a sweep must never evaluate the test set"
        );
        Ok(self
            .curves
            .iter()
            .zip(&self.epochs)
            .map(|(curve, &e)| Evaluation {
                loss: 1.0 - curve[e - 1],
                accuracy: curve[e - 1],
                samples: 10,
            })
            .collect())
    }

    fn logits(&mut self, _member: usize, _set: EvalSet) -> wgtrain::Result<Vec<f32>> {
        unreachable!("a sweep reads no logits")
    }

    fn dispatches_per_step(&self) -> usize {
        1
    }

    fn params(&mut self, member: usize) -> wgtrain::Result<Vec<f32>> {
        Ok(vec![self.curves[member][0] as f32])
    }

    fn momentum(&mut self, _member: usize) -> wgtrain::Result<Vec<f32>> {
        unreachable!("a sweep reads no momentum")
    }

    fn set_state(
        &mut self,
        _member: usize,
        _params: &[f32],
        _momentum: Option<&[f32]>,
    ) -> wgtrain::Result<()> {
        unreachable!("a sweep sets no parameters")
    }

    fn copy_member(&mut self, _from: usize, _to: usize) -> wgtrain::Result<()> {
        unreachable!("a sweep copies no member")
    }

    fn set_sgd(&mut self, _member: usize, _sgd: &SgdConfig) -> wgtrain::Result<()> {
        unreachable!("a sweep changes no member's settings")
    }

    fn replace_member(&mut self, _member: usize, _cfg: &RunConfig) -> wgtrain::Result<()> {
        unreachable!("one trial at a time: a slot is never refilled")
    }
}

/// Four trials one at a time (`--population 1`, each a fresh engine, as the sequential
/// sweep ran them before populations and single runs became one engine).
#[test]
fn a_sweep_prunes_trials_behind_the_median_and_keeps_the_best_parameters() {
    let mut sweep = Sweep::new(Some(
        MedianPruner {
            warmup_epochs: 1,
            min_trials: 2,
        }
        .into(),
    ));
    let curves = [
        vec![0.50, 0.80, 0.90],
        vec![0.60, 0.85, 0.95],
        // Epoch 2: 0.70 < median(0.80, 0.85): pruned after epoch 2.
        vec![0.70, 0.70, 0.99],
        // Far behind at epoch 1 (warm-up: kept), above the median at epoch 2 (kept).
        vec![0.10, 0.83, 0.92],
    ];
    // 100 one-pixel samples, 10 of them held out for validation: 9 steps an epoch.
    let samples = Dataset {
        images: vec![0; 100],
        labels: vec![0; 100],
        rows: 1,
        cols: 1,
    };
    let data = RunData {
        train: &samples,
        test: &samples,
        classes: 4,
        micro_batch: None,
    };
    // Trial i has learning rate 0.1 (i + 1) and the curve curves[i].
    let group: Vec<PendingTrial> = (0..curves.len())
        .map(|i| {
            let lr = 0.1 * (i + 1) as f64;
            PendingTrial {
                id: i,
                config: TrialConfig {
                    lr,
                    weight_decay: 0.0,
                    batch_size: 10,
                    momentum: 0.0,
                    hidden: vec![8],
                    epochs: 3,
                },
                run: RunConfig {
                    hidden: vec![8],
                    epochs: 3,
                    batch_size: 10,
                    schedule: LrSchedule::new(lr, Schedule::Constant),
                    validation_split: 0.1,
                    ..RunConfig::default()
                },
            }
        })
        .collect();
    let mut open = |cfgs: &[RunConfig], micro: Option<usize>| -> wgtrain::Result<Box<dyn Engine>> {
        let setup = PopulationSetup::new(
            cfgs,
            RunData {
                micro_batch: micro,
                ..data
            },
        )?;
        let curves = setup
            .members
            .iter()
            .map(|m| curves[(m.config.schedule.base_lr / 0.1).round() as usize - 1].clone())
            .collect();
        Ok(Box::new(ScriptedEngine {
            setup,
            curves,
            epochs: vec![0; cfgs.len()],
        }))
    };
    let mut seen = vec![0; curves.len()];
    let mut on_event = |_: &Sweep, e: PopulationEvent<'_>| {
        if let PopulationEvent::Epoch { id, .. } = e {
            seen[id] += 1;
        }
        Ok(())
    };
    run_group(&mut sweep, &group, 1, &mut open, &mut on_event).unwrap();
    for t in sweep.trials() {
        assert_eq!(seen[t.id], t.history.len(), "trial {}", t.id);
    }
    let status: Vec<TrialStatus> = sweep.trials().iter().map(|t| t.status).collect();
    use TrialStatus::{Complete, Pruned};
    assert_eq!(status, [Complete, Complete, Pruned, Complete]);
    assert_eq!(sweep.trials()[2].history.len(), 2);
    assert_eq!(sweep.trials()[2].val_accuracy, Some(0.70));
    // Trial 1 (0.95) is best: a pruned trial never is, however good its later epochs.
    assert_eq!(sweep.best_trial().unwrap().id, 1);
    assert_eq!(sweep.best_params().unwrap(), [0.60f32]);
    let order: Vec<usize> = leaderboard(sweep.trials())
        .iter()
        .map(|r| r.trial)
        .collect();
    assert_eq!(order, [1, 3, 0, 2]);
    assert!(
        sweep.trials()[2]
            .note
            .as_deref()
            .unwrap()
            .contains("median")
    );
}

fn handmade_metrics(with_val: bool) -> Vec<EpochMetrics> {
    (1..=5)
        .map(|e| {
            let f = e as f64;
            EpochMetrics {
                epoch: e,
                lr: 0.1,
                train_loss: 1.0 / f,
                train_accuracy: 1.0 - 0.1 / f,
                val_loss: with_val.then_some(1.1 / f),
                val_accuracy: with_val.then_some(0.98 - 0.1 / f),
                test_loss: Some(1.2 / f),
                test_accuracy: Some(0.97 - 0.1 / f),
                epoch_seconds: 1.0,
            }
        })
        .collect()
}

#[test]
fn learning_curves_are_valid_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    for with_val in [true, false] {
        let files =
            plot::learning_curves(&handmade_metrics(with_val), "a run", dir.path(), "lc").unwrap();
        assert_eq!(
            files,
            [dir.path().join("lc.png"), dir.path().join("lc.svg")]
        );
        assert_png(&files[0]);
        assert_svg(&files[1]);
        let svg = std::fs::read_to_string(&files[1]).unwrap();
        assert_eq!(svg.contains("validation"), with_val);
        assert_eq!(
            svg.contains(">\ntest\n<") || svg.contains(">test<"),
            !with_val
        );
    }
    assert!(plot::learning_curves(&[], "empty", dir.path(), "none").is_err());
}

#[test]
fn plot_command_draws_a_metrics_file_and_a_sweep_directory() {
    let dir = tempfile::tempdir().unwrap();
    let metrics: PathBuf = dir.path().join("run.jsonl");
    let lines: Vec<String> = handmade_metrics(true)
        .iter()
        .map(|m| serde_json::to_string(m).unwrap())
        .collect();
    std::fs::write(&metrics, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("plots");
    let run = wgtrain(&[
        "plot",
        metrics.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_success(&run, "wgtrain plot FILE");
    assert_png(&out.join("learning_curves.png"));
    assert_svg(&out.join("learning_curves.svg"));

    // A sweep directory: trials.json written by the library, pictures by the CLI.
    let sweep_dir = dir.path().join("sweep");
    let trial = |id: usize, lr: f64, wd: f64, status: TrialStatus, accs: &[f64]| {
        let history: Vec<EpochMetrics> = accs
            .iter()
            .enumerate()
            .map(|(e, &a)| EpochMetrics {
                epoch: e + 1,
                lr,
                train_loss: 1.0 - a,
                train_accuracy: a,
                val_loss: Some(1.0 - a),
                val_accuracy: Some(a),
                test_loss: None,
                test_accuracy: None,
                epoch_seconds: 1.0,
            })
            .collect();
        Trial {
            id,
            status,
            config: TrialConfig {
                lr,
                weight_decay: wd,
                batch_size: 64,
                momentum: 0.0,
                hidden: vec![256],
                epochs: 3,
            },
            val_loss: history.last().and_then(|m| m.val_loss),
            val_accuracy: history.last().and_then(|m| m.val_accuracy),
            history,
            seconds: 1.0,
            note: None,
            single_run_epoch_seconds: None,
        }
    };
    let trials = vec![
        trial(0, 0.01, 0.0, TrialStatus::Complete, &[0.8, 0.85, 0.9]),
        trial(1, 0.1, 0.0, TrialStatus::Complete, &[0.85, 0.9, 0.95]),
        trial(2, 0.1, 1e-4, TrialStatus::Pruned, &[0.8, 0.82]),
        trial(3, 10.0, 1e-4, TrialStatus::Diverged, &[]),
        trial(4, 0.3, 1e-4, TrialStatus::Complete, &[0.86, 0.91, 0.94]),
    ];
    wgtrain::tune::sweep::write_outputs(&sweep_dir, &trials, None).unwrap();
    let run = wgtrain(&[
        "plot",
        sweep_dir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_success(&run, "wgtrain plot DIR");
    for stem in ["sweep_lr_accuracy", "sweep_top_trials"] {
        assert_png(&out.join(format!("{stem}.png")));
        assert_svg(&out.join(format!("{stem}.svg")));
    }
}

/// Issue 23 item 4: a sweep draws one picture per hyperparameter it varied. A
/// weight-decay-only sweep and a batch-size-only sweep (with a single run's epoch time per
/// batch size) each get their own axis, not a column of points at one learning rate.
#[test]
fn a_weight_decay_or_batch_size_only_sweep_draws_its_own_picture() {
    let trial = |id: usize, wd: f64, batch: usize, acc: f64, secs: Option<f64>| {
        let history = vec![EpochMetrics {
            epoch: 1,
            lr: 0.1,
            train_loss: 1.0 - acc,
            train_accuracy: acc,
            val_loss: Some(1.0 - acc),
            val_accuracy: Some(acc),
            test_loss: None,
            test_accuracy: None,
            epoch_seconds: 1.0,
        }];
        Trial {
            id,
            status: TrialStatus::Complete,
            config: TrialConfig {
                lr: 0.1,
                weight_decay: wd,
                batch_size: batch,
                momentum: 0.0,
                hidden: vec![32],
                epochs: 1,
            },
            val_loss: Some(1.0 - acc),
            val_accuracy: Some(acc),
            history,
            seconds: 1.0,
            note: None,
            single_run_epoch_seconds: secs,
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let stems = |d: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".png"))
            .map(|n| n.trim_end_matches(".png").to_string())
            .collect();
        v.sort();
        v
    };
    let wd_only: Vec<Trial> = [0.0, 1e-5, 1e-4, 1e-3]
        .iter()
        .enumerate()
        .map(|(i, &wd)| trial(i, wd, 64, 0.90 + 0.01 * i as f64, None))
        .collect();
    let wd_dir = dir.path().join("wd");
    plot::sweep_plots(&wd_only, 3, &wd_dir).unwrap();
    assert_eq!(stems(&wd_dir), ["sweep_top_trials", "sweep_wd_accuracy"]);
    let batch_only: Vec<Trial> = [32, 64, 128, 256]
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            trial(
                i,
                0.0,
                b,
                0.95 - 0.01 * i as f64,
                Some(4.0 / (i + 1) as f64),
            )
        })
        .collect();
    let b_dir = dir.path().join("batch");
    plot::sweep_plots(&batch_only, 3, &b_dir).unwrap();
    assert_eq!(
        stems(&b_dir),
        [
            "sweep_batch_accuracy",
            "sweep_time_accuracy",
            "sweep_top_trials"
        ]
    );
    for d in [&wd_dir, &b_dir] {
        for stem in stems(d) {
            assert_png(&d.join(format!("{stem}.png")));
            assert_svg(&d.join(format!("{stem}.svg")));
        }
    }
}
