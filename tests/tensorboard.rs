//! `train --tensorboard DIR` and `sweep --tensorboard DIR`: the event files are read back
//! by the `tensorboard` Python package (`tests/data/read_tensorboard.py`: its record
//! reader, which checks every CRC, and its EventAccumulator), and every scalar is held
//! to the same epoch's values in the run's `--metrics` file (or the sweep's
//! `trials.json`), written independently of the event files.
//!
//! Needs Python 3 with `pip install tensorboard` (the README's test prerequisites;
//! `.ci/run` installs it). Without it the tests fail, naming the fix; they never skip.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mnist_dir() -> String {
    std::env::var("MNIST_DIR").expect("set MNIST_DIR to the directory with the four MNIST files")
}

/// What `read_tensorboard.py` reads from each run folder.
fn read_back(runs: &[&Path]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/read_tensorboard.py");
    // The same interpreter rule as the Optuna test: $PYTHON, else python3.
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let o = Command::new(&python)
        .arg(&script)
        .args(runs)
        .output()
        .expect(
            "$PYTHON (default python3) runs: the TensorBoard tests need Python 3 with `pip install tensorboard`",
        );
    assert!(
        o.status.success(),
        "reading the event files back failed (needs `pip install tensorboard`): {}",
        stderr(&o)
    );
    serde_json::from_slice(&o.stdout).expect("the reader prints JSON")
}

#[track_caller]
fn assert_f32(what: &str, got: &Value, want: f64) {
    let got = got
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: {got} is not a number"));
    assert_eq!(got as f32, want as f32, "{what}: {got} vs {want}");
}

/// Checks one run folder against its epochs: one event file; the file version, the
/// session start, one event per epoch and the session end as records; each tag with
/// one value per epoch at step = epoch; the given hyperparameters; the end status.
fn check_run(run: &Value, epochs: &[Value], tags: &[(&str, &str)], hparams: &[(&str, Value)]) {
    assert_eq!(run["files"], 1, "{run}");
    assert_eq!(run["records"], 3 + epochs.len(), "{run}");
    assert_eq!(run["file_version"], 2.0);
    for &(tag, key) in tags {
        let series = run["scalars"][tag]
            .as_array()
            .unwrap_or_else(|| panic!("no scalar {tag}: {run}"));
        assert_eq!(series.len(), epochs.len(), "{tag}");
        for (point, e) in series.iter().zip(epochs) {
            assert_eq!(point[0], e["epoch"], "{tag}: step = epoch");
            assert_f32(
                &format!("{tag} at epoch {}", e["epoch"]),
                &point[1],
                e[key].as_f64().unwrap(),
            );
        }
    }
    let start = &run["hparams"]["_hparams_/session_start_info"]["session_start_info"];
    for (name, want) in hparams {
        assert_eq!(&start["hparams"][*name], want, "hparam {name}: {start}");
    }
    assert!(
        start["start_time_secs"].as_f64().unwrap() > 1.6e9,
        "{start}"
    );
    let end = &run["hparams"]["_hparams_/session_end_info"]["session_end_info"];
    assert_eq!(end["status"], "STATUS_SUCCESS", "{end}");
}

/// Two CPU epochs with a validation split: every per-epoch scalar TensorBoard reads
/// equals the `--metrics` line of that epoch (as f32, TensorBoard's scalar type), and the
/// HParams plugin holds the run's flags.
#[test]
fn train_tensorboard_scalars_and_hparams_read_back_as_the_metrics_file() {
    let dir = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    // The output rule: the run folder is created, its parent must exist.
    std::fs::create_dir(tmp.path().join("runs")).unwrap();
    let tb = tmp.path().join("runs/a");
    let metrics = tmp.path().join("m.jsonl");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &dir,
        "--train-subset",
        "2000",
        "--epochs",
        "2",
        "--val-split",
        "0.1",
        "--lr",
        "0.05",
        "--momentum",
        "0.9",
        "--hidden",
        "32,16",
        "--quiet",
        "--tensorboard",
        tb.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let epochs: Vec<Value> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(epochs.len(), 2);
    let back = read_back(&[&tb]);
    let run = &back[tb.to_str().unwrap()];
    check_run(
        run,
        &epochs,
        &[
            ("loss/train", "train_loss"),
            ("accuracy/train", "train_accuracy"),
            ("loss/validation", "val_loss"),
            ("accuracy/validation", "val_accuracy"),
            ("loss/test", "test_loss"),
            ("accuracy/test", "test_accuracy"),
            ("lr", "lr"),
            ("epoch_seconds", "epoch_seconds"),
        ],
        &[
            ("lr", 0.05.into()),
            ("momentum", 0.9.into()),
            ("hidden", "32,16".into()),
            ("batch_size", 64.0.into()),
            ("epochs", 2.0.into()),
            ("nesterov", false.into()),
            ("lr_schedule", "constant".into()),
            ("device", "cpu".into()),
            ("val_split", 0.1.into()),
        ],
    );
}

/// A two-trial sweep writes one run folder per trial, each with its own learning rate in
/// the HParams plugin and the validation curve `trials.json` records for it.
#[test]
fn sweep_tensorboard_writes_one_run_folder_per_trial() {
    let dir = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let tb = tmp.path().join("tb");
    let out = tmp.path().join("sweep");
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &dir,
        "--train-subset",
        "1000",
        "--val-split",
        "0.2",
        "--search",
        "grid",
        "--lr",
        "0.01,0.1",
        "--epochs",
        "2",
        "--pruning",
        "none",
        "--quiet",
        "--tensorboard",
        tb.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trials: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    assert_eq!(trials.len(), 2);
    let runs: Vec<_> = (0..2).map(|i| tb.join(format!("trial-{i:03}"))).collect();
    let back = read_back(&[&runs[0], &runs[1]]);
    for (run, trial) in runs.iter().zip(&trials) {
        let history = trial["history"].as_array().unwrap();
        check_run(
            &back[run.to_str().unwrap()],
            history,
            &[
                ("loss/train", "train_loss"),
                ("loss/validation", "val_loss"),
                ("accuracy/validation", "val_accuracy"),
                ("lr", "lr"),
            ],
            &[
                ("lr", trial["config"]["lr"].clone()),
                ("trial", trial["id"].as_f64().unwrap().into()),
            ],
        );
        assert!(
            back[run.to_str().unwrap()]["scalars"]["loss/test"].is_null(),
            "a sweep never looks at the test set"
        );
    }
}

/// A `--tensorboard` folder that cannot be created fails before any work, exit 2.
#[test]
fn tensorboard_into_an_unwritable_place_exits_2_first() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    for cmd in ["train", "sweep"] {
        // The data directory is empty: reaching it would give a different error.
        let o = wgtrain(&[
            cmd,
            "--data",
            empty.to_str().unwrap(),
            "--tensorboard",
            file.join("tb").to_str().unwrap(),
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{cmd}: {err}");
        assert!(
            err.contains("cannot write") && err.contains("a-file"),
            "{cmd}: {err}"
        );
    }
}
