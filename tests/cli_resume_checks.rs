//! What `--resume` checks before it goes on, for `sweep`, `sweep --search pbt` and
//! `train`, as a user meets it: a folder that holds nothing to go on with (a mistyped
//! `--out`) and a finished sweep are refused, leaving every file as it was; a run resumed on
//! the other path (CPU vs GPU) is warned of; and a flag's default, given or left out, is the
//! same run; a damaged file in `--out` (settings.json, the state) is refused naming the fix.
//! (Resuming itself, to the uninterrupted run's bytes: `tests/cli_resume.rs`.)

#[path = "common/cli.rs"]
mod cli;

use std::path::Path;
use std::time::Duration;

use cli::{Run, mnist_dir, refused, stderr, strs, tiny_sweep_args, wait_for, wgtrain_in, with};

const LIMIT: Duration = Duration::from_secs(600);

/// The flags of a tiny `train` run (1 epoch of 300 samples, hidden 8, CPU).
fn tiny_train_args(data: &str) -> Vec<String> {
    [
        "train",
        "--device",
        "cpu",
        "--data",
        data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs [`tiny_sweep_args`] into `dir/name` to its end: the flags and the folder.
fn finished_sweep(dir: &Path, data: &str, name: &str) -> (Vec<String>, std::path::PathBuf) {
    let args = tiny_sweep_args(data, name);
    let o = wgtrain_in(dir, &strs(&args));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    (args, dir.join(name))
}

/// [`refused`], and every file in `folder` as it was before.
#[track_caller]
fn refused_unchanged(dir: &Path, folder: &Path, args: &[String], needles: &[&str]) {
    let before = files_of(folder);
    refused(dir, args, needles);
    assert!(
        files_of(folder) == before,
        "{args:?}: {} changed",
        folder.display()
    );
}

/// The flags of a tiny PBT run (2 members, 3 epochs of 300 samples, CPU) into `out`.
fn tiny_pbt_args(data: &str, out: &str) -> Vec<String> {
    [
        "sweep",
        "--device",
        "cpu",
        "--data",
        data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--search",
        "pbt",
        "--population",
        "2",
        "--pbt-interval",
        "1",
        "--lr",
        "0.01:0.5",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        out,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Every file in `dir` with its bytes, by name (a folder as its name and `/`, no bytes).
fn files_of(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let name = e.file_name().to_string_lossy().into_owned();
            match e.path().is_dir() {
                true => (name + "/", Vec::new()),
                false => (name, std::fs::read(e.path()).unwrap()),
            }
        })
        .collect();
    files.sort();
    files
}

/// Regression: `sweep --resume --out DIR` with a DIR that does not exist, or that holds no
/// sweep, started a new sweep there (a mistyped folder, and the user believed the old one
/// went on). It is refused (exit 2) before any data loads or anything is created, naming
/// the folder and the fix; the same for `--search pbt`. `train --resume` of a state in a
/// missing folder says there is no such file (it said the folder could not be written).
#[test]
fn regression_resume_into_a_folder_without_a_sweep_is_refused_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    for (args, run, new) in [
        (
            tiny_sweep_args as fn(&str, &str) -> Vec<String>,
            "sweep",
            "sweep",
        ),
        (tiny_pbt_args, "PBT run", "run"),
    ] {
        // A folder that does not exist: nothing is created.
        refused(
            dir.path(),
            &with(&args(&data, "typo"), &["--resume"]),
            &[&format!(
                "invalid resume = typo: no such folder, so there is no {run} to go on with; check the path (--out), or drop --resume to start a new {new}"
            )],
        );
        assert!(!dir.path().join("typo").exists(), "{run}: typo was created");
        // A folder that holds no sweep: it keeps what it held, and only that.
        let empty = dir.path().join("empty");
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(empty.join("notes.txt"), "mine").unwrap();
        let files = if run == "sweep" {
            "settings.json"
        } else {
            "settings.json or state.safetensors"
        };
        refused(
            dir.path(),
            &with(&args(&data, "empty"), &["--resume"]),
            &[&format!(
                "invalid resume = empty: holds no {run} to go on with (no {files}); check the path (--out), or drop --resume to start a new {new}"
            )],
        );
        assert_eq!(
            files_of(&empty),
            vec![("notes.txt".to_string(), b"mine".to_vec())],
            "{run}"
        );
    }
    refused(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "1",
            "--resume",
            "typo/run.state",
        ]
        .map(String::from),
        &["invalid resume = typo/run.state: no such file"],
    );
    assert!(!dir.path().join("typo").exists());
}

/// Regression: `sweep --resume` into a finished sweep's folder ran no trial but timed the
/// batch sizes again and rewrote trials.json, best.json and the pictures (new wall times).
/// A finished sweep has nothing left to run: refused (exit 2) as a finished PBT run is,
/// naming `--overwrite`, with every file left as it was; a new sweep into the folder is no
/// longer told to give --resume.
#[test]
fn regression_resume_into_a_finished_sweep_is_refused_and_leaves_its_outputs_as_they_were() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let (args, out) = finished_sweep(dir.path(), &data, "sw");
    let before = files_of(&out);
    assert!(before.iter().any(|(f, _)| f == "best.json"));
    refused(
        dir.path(),
        &with(&args, &["--resume"]),
        &[
            "invalid resume = sw: holds a finished sweep (all 2 trials in trials.json): nothing is left to run, and its outputs stay as they are",
            "give --overwrite to run it again, or choose another --out",
        ],
    );
    assert!(
        files_of(&out) == before,
        "the finished sweep's files changed"
    );
    refused(
        dir.path(),
        &args,
        &[
            "invalid out = sw: holds a finished sweep (2 trials in trials.json); give --overwrite to replace it, or another --out",
        ],
    );
    assert!(
        files_of(&out) == before,
        "the finished sweep's files changed"
    );
}

/// `--device` in `args` set to `device`.
fn on_device(args: &[String], device: &str) -> Vec<String> {
    let mut args = args.to_vec();
    let at = args.iter().position(|a| a == "--device").unwrap();
    args[at + 1] = device.into();
    args
}

/// The path a sweep's `settings.json` records (`None` when it records none).
fn recorded_path(out: &Path) -> Option<String> {
    let text = std::fs::read_to_string(out.join("settings.json")).unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    doc["device"].as_str().map(String::from)
}

/// Regression: a sweep or PBT run resumed on the other path (CPU vs GPU) said nothing,
/// where `train --resume` warns: the run goes on correctly, but equals an uninterrupted
/// run's to rounding, not bit for bit. `settings.json` records the path, and the resume is
/// warned of in `train`'s words. A `settings.json` of an older wgtrain (without the path)
/// still resumes, without the warning. The GPU path is lavapipe on CI.
#[test]
fn regression_a_sweep_or_pbt_run_resumed_on_the_other_path_is_warned_of() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let warning = |run: &str, was: &str, now: &str| {
        format!(
            "warning: {run} trained on the {was} path and goes on on the {now} path: its results will equal an uninterrupted run's to rounding, not bit for bit (--device {was} keeps them exact)"
        )
    };
    // A sweep whose trials finished on the CPU, stopped before its last outputs (no
    // best.json): the resume goes on with its trials on the GPU path.
    let (args, out) = finished_sweep(dir.path(), &data, "sw");
    assert_eq!(recorded_path(&out).as_deref(), Some("cpu"));
    std::fs::remove_file(out.join("best.json")).unwrap();
    let o = wgtrain_in(
        dir.path(),
        &strs(&with(&on_device(&args, "gpu"), &["--resume"])),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&warning("the sweep in sw", "cpu", "gpu")),
        "{err}"
    );
    assert_eq!(recorded_path(&out).as_deref(), Some("gpu"));
    // The same on an older wgtrain's settings.json, which recorded no path: no warning.
    let settings = out.join("settings.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&settings).unwrap()).unwrap();
    doc.as_object_mut().unwrap().remove("device");
    std::fs::write(&settings, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    std::fs::remove_file(out.join("best.json")).unwrap();
    let o = wgtrain_in(dir.path(), &strs(&with(&args, &["--resume"])));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(!err.contains("warning: the sweep in"), "{err}");
    assert!(
        err.contains("resuming: 2 of 2 trials already finished"),
        "{err}"
    );

    // A PBT run stopped by Ctrl-C on the GPU path goes on on the CPU path.
    // (More epochs and samples than the tiny run's, so that the stop lands before its end.)
    let mut pbt = on_device(&tiny_pbt_args(&data, "p"), "gpu");
    for (flag, value) in [("--epochs", "20"), ("--train-subset", "2000")] {
        let at = pbt.iter().position(|a| a == flag).unwrap();
        pbt[at + 1] = value.into();
    }
    let p = dir.path().join("p");
    let mut run = Run::start(dir.path(), &strs(&pbt));
    // The state and pbt.json are written after every epoch.
    wait_for(&mut run, "the PBT state after an epoch", LIMIT, || {
        p.join("state.safetensors").is_file() && p.join("pbt.json").is_file()
    });
    run.signal("INT");
    let o = run.finish(LIMIT);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert_eq!(recorded_path(&p).as_deref(), Some("gpu"));
    let o = wgtrain_in(
        dir.path(),
        &strs(&with(&on_device(&pbt, "cpu"), &["--resume"])),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&warning("the PBT run in p", "gpu", "cpu")),
        "{err}"
    );
    assert!(!p.join("state.safetensors").exists());
}

/// Regression: a default given explicitly on `--resume` (`--lr-schedule constant`,
/// `--epochs 10`, PBT's `--population 8`), or left out where the run gave it, was refused
/// as another setting ("--lr-schedule is constant but the sweep in sw ran with (not
/// given)"). The records hold the values the runs ran with, so both are the same run; a
/// record written before that ("(not given)") reads as the default. Another value is still
/// refused, naming the default the run ran with.
#[test]
fn regression_a_default_given_or_left_out_on_resume_is_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    // A sweep, stopped before its last outputs (no best.json).
    let (args, out) = finished_sweep(dir.path(), &data, "sw");
    for extra in [
        &["--lr-schedule", "constant"][..],
        &["--lr-schedule", "none", "--warmup-epochs", "0"][..],
    ] {
        std::fs::remove_file(out.join("best.json")).unwrap();
        let o = wgtrain_in(
            dir.path(),
            &strs(&with(&args, &[&["--resume"], extra].concat())),
        );
        assert_eq!(o.status.code(), Some(0), "{extra:?}: {}", stderr(&o));
    }
    // As an older wgtrain recorded a schedule left out.
    let settings = out.join("settings.json");
    let text = std::fs::read_to_string(&settings).unwrap();
    assert!(text.contains("\"lr-schedule\": \"constant\""), "{text}");
    std::fs::write(
        &settings,
        text.replace(
            "\"lr-schedule\": \"constant\"",
            "\"lr-schedule\": \"(not given)\"",
        ),
    )
    .unwrap();
    std::fs::remove_file(out.join("best.json")).unwrap();
    let o = wgtrain_in(
        dir.path(),
        &strs(&with(&args, &["--resume", "--lr-schedule", "constant"])),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(out.join("best.json")).unwrap();
    refused(
        dir.path(),
        &with(&args, &["--resume", "--lr-schedule", "cosine"]),
        &["--lr-schedule is cosine but the sweep in sw ran with constant (settings.json)"],
    );

    // A sweep started with a default given, resumed without it.
    let given = with(
        &tiny_sweep_args(&data, "pl"),
        &["--lr-schedule", "plateau", "--plateau-patience", "10"],
    );
    let o = wgtrain_in(dir.path(), &strs(&given));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::remove_file(dir.path().join("pl/best.json")).unwrap();
    let o = wgtrain_in(
        dir.path(),
        &strs(&with(
            &tiny_sweep_args(&data, "pl"),
            &["--lr-schedule", "ReduceLROnPlateau", "--resume"],
        )),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // A PBT run killed before its first epoch ended (only settings.json): left out at
    // first, its population (8) given on --resume.
    let mut pbt = tiny_pbt_args(&data, "p");
    let at = pbt.iter().position(|a| a == "--population").unwrap();
    pbt.drain(at..at + 2);
    let o = wgtrain_in(dir.path(), &strs(&pbt));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p = dir.path().join("p");
    for (f, _) in files_of(&p) {
        if f != "settings.json" {
            std::fs::remove_file(p.join(f)).unwrap();
        }
    }
    let o = wgtrain_in(
        dir.path(),
        &strs(&with(&pbt, &["--resume", "--population", "8"])),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("resuming: no epoch had finished in p"),
        "{err}"
    );

    // train: --epochs left out (10), given on --resume with the default schedule.
    let run: Vec<String> = [
        "train",
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = wgtrain_in(dir.path(), &strs(&with(&run, &["--state", "t.state"])));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = wgtrain_in(
        dir.path(),
        &strs(&with(
            &run,
            &[
                "--resume",
                "t.state",
                "--epochs",
                "10",
                "--lr-schedule",
                "constant",
            ],
        )),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("resuming t.state: 10 of 10 epochs done; the run had finished"),
        "{err}"
    );
    refused(
        dir.path(),
        &with(&run, &["--resume", "t.state", "--epochs", "11"]),
        &[
            "--epochs is 11 but the run in t.state ran with 10",
            "resume with --epochs 10",
        ],
    );
}

/// Regression: damaged files in a sweep's `--out` were refused with the bare cause and no
/// way on ("s/settings.json: Is a directory (os error 21)", "stream did not contain valid
/// UTF-8", "s/state.safetensors: is not a training state (...header too large)"), and
/// `--overwrite` over a folder in the place of settings.json removed the earlier sweep's
/// files and then failed (exit 1) to write its settings. Each is refused (exit 2) naming
/// the problem and the fix, `--overwrite` before it removes anything; and the fix named
/// for a damaged sweep state (remove it) goes on to the end.
#[test]
fn regression_damaged_files_in_a_sweeps_out_are_refused_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let (args, out) = finished_sweep(dir.path(), &data, "sw");
    // Stopped before its last outputs: --resume goes on (to write them).
    std::fs::remove_file(out.join("best.json")).unwrap();
    let settings = out.join("settings.json");
    let good = std::fs::read(&settings).unwrap();
    std::fs::write(&settings, b"{\"flags\": \"\xff\xfe\"}").unwrap();
    refused(
        dir.path(),
        &with(&args, &["--resume"]),
        &[
            "invalid resume = sw/settings.json: is not a sweep's settings file (not UTF-8 text",
            "restore it, or start again with --overwrite, or choose another --out",
        ],
    );
    std::fs::remove_file(&settings).unwrap();
    std::fs::create_dir(&settings).unwrap();
    refused(
        dir.path(),
        &with(&args, &["--resume"]),
        &[
            "invalid resume = sw/settings.json: cannot be read (",
            "put the sweep's settings file back there, or choose another --out",
        ],
    );
    refused_unchanged(
        dir.path(),
        &out,
        &with(&args, &["--overwrite"]),
        &[
            "invalid overwrite = sw/settings.json: is a folder where a sweep writes a file, and --overwrite removes a sweep's files, never a folder; move it out of the way, or choose another --out",
        ],
    );
    assert!(
        out.join("trials.json").is_file(),
        "--overwrite removed files"
    );
    std::fs::remove_dir(&settings).unwrap();
    std::fs::write(&settings, good).unwrap();

    // A sweep state that is not one.
    let state = out.join("state.safetensors");
    std::fs::write(&state, [0xffu8; 64]).unwrap();
    refused(
        dir.path(),
        &with(&args, &["--resume"]),
        &[
            "invalid resume = sw/state.safetensors: is not a training state (not a safetensors file",
            "remove it to go on from the finished trials in trials.json (the running trials start again), or start again with --overwrite, or choose another --out",
        ],
    );
    std::fs::remove_file(&state).unwrap();
    let o = wgtrain_in(dir.path(), &strs(&with(&args, &["--resume"])));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("best.json").is_file());

    // A PBT run's state that is not one.
    let pbt = tiny_pbt_args(&data, "p");
    let o = wgtrain_in(dir.path(), &strs(&pbt));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(dir.path().join("p/state.safetensors"), b"").unwrap();
    refused(
        dir.path(),
        &with(&pbt, &["--resume"]),
        &[
            "invalid resume = p/state.safetensors: is not a training state",
            "the run cannot go on without it; start again with --overwrite, or choose another --out",
        ],
    );
}

/// Regression: `sweep --resume` into a finished sweep whose trials.json was gone (best.json
/// there, no state) ran every trial again and replaced best.json and the pictures, where
/// a finished sweep is refused. It is refused (exit 2), naming the fix, its files as they
/// were.
#[test]
fn regression_resume_into_a_finished_sweep_without_trials_json_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let (args, out) = finished_sweep(dir.path(), &data, "sw");
    std::fs::remove_file(out.join("trials.json")).unwrap();
    refused_unchanged(
        dir.path(),
        &out,
        &with(&args, &["--resume"]),
        &[
            "invalid resume = sw: holds a finished sweep (best.json) but no trials.json",
            "put trials.json back, give --overwrite to run it again, or choose another --out",
        ],
    );
}

/// Regression: `sweep --resume --out DIR` into a folder holding only a stray file a sweep
/// also writes (`leaderboard.csv`, no settings.json) warned of an "older sweep" and started
/// a whole new sweep there. `--resume` never starts a new sweep: refused (exit 2) as a
/// folder without a sweep is, naming the stray file and `--overwrite`, the folder as it
/// was; the same for `--search pbt`.
#[test]
fn regression_resume_into_a_folder_with_only_a_stray_sweep_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let stray = dir.path().join("stray");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("leaderboard.csv"), "mine").unwrap();
    let before = files_of(&stray);
    for (args, run) in [
        (
            tiny_sweep_args(&data, "stray"),
            "sweep to go on with (no settings.json",
        ),
        (
            tiny_pbt_args(&data, "stray"),
            "PBT run to go on with (no settings.json or state.safetensors",
        ),
    ] {
        refused(
            dir.path(),
            &with(&args, &["--resume"]),
            &[
                &format!("invalid resume = stray: holds no {run}, only leaderboard.csv)"),
                "check the path (--out), or give --overwrite instead of --resume to start a new",
                "(it removes leaderboard.csv)",
            ],
        );
        assert!(files_of(&stray) == before, "{run}: the folder changed");
    }
}

/// Regression: `train --resume DIR` with a folder said "cannot write DIR: is a directory,
/// not a regular file; give a file path inside it", words for an output, where the folder
/// is read. It is refused (exit 2) as a folder, not a training state, naming the state
/// file inside it when there is one.
#[test]
fn regression_train_resume_of_a_folder_names_the_state_file_inside_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let run = tiny_train_args(&data);
    std::fs::create_dir(dir.path().join("runs")).unwrap();
    refused(
        dir.path(),
        &with(&run, &["--resume", "runs"]),
        &[
            "invalid resume = runs: is a folder, not a training state; give the path of the state file inside it (the --state FILE the run wrote)",
        ],
    );
    let o = wgtrain_in(dir.path(), &strs(&with(&run, &["--state", "runs/t.state"])));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    std::fs::write(dir.path().join("runs/notes.state"), "mine").unwrap();
    refused_unchanged(
        dir.path(),
        &dir.path().join("runs"),
        &with(&run, &["--resume", "runs"]),
        &[
            "invalid resume = runs: is a folder, not a training state; give the state file's path: --resume runs/t.state",
        ],
    );
}

/// Regression: a hand-edited `"device": "tpu"` in a sweep's settings.json was accepted, and
/// echoed in the warning of a resume on the other path ("trained on the tpu path"). The path
/// is read as `cpu` or `gpu` only; another value is refused (exit 2) as a damaged settings
/// file, naming the fix, with the sweep's files as they were.
#[test]
fn regression_a_sweeps_settings_with_an_unknown_device_are_refused_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let (args, out) = finished_sweep(dir.path(), &data, "sw");
    std::fs::remove_file(out.join("best.json")).unwrap();
    let settings = out.join("settings.json");
    let text = std::fs::read_to_string(&settings).unwrap();
    assert!(text.contains("\"device\": \"cpu\""), "{text}");
    std::fs::write(&settings, text.replace("\"cpu\"", "\"tpu\"")).unwrap();
    refused_unchanged(
        dir.path(),
        &out,
        &with(&args, &["--resume"]),
        &[
            "invalid resume = sw/settings.json: is not a sweep's settings file (",
            "device is \"tpu\", not cpu or gpu",
            "restore it, or start again with --overwrite, or choose another --out",
        ],
    );
}

/// Regression: `train --state FILE` with a FILE that is not a wgtrain training state (a
/// CSV, a checkpoint, a damaged state) was written over by the run's first state, the
/// user's file lost. Refused (exit 2) before training, naming the file, why it is not a
/// state and the fix, the file as it was; a finished run's state is still replaced, an
/// empty file too (nothing is lost).
#[test]
fn regression_train_state_refuses_to_replace_a_file_that_is_not_a_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let run = tiny_train_args(&data);
    let csv = dir.path().join("metrics.csv");
    std::fs::write(&csv, "epoch,loss\n1,0.5\n").unwrap();
    refused(
        dir.path(),
        &with(&run, &["--state", "metrics.csv"]),
        &[
            "invalid state = metrics.csv: is not a wgtrain training state (not a safetensors file",
            "the run would write its state over it; give another --state path, or delete the file to start a new run there",
        ],
    );
    assert_eq!(std::fs::read(&csv).unwrap(), b"epoch,loss\n1,0.5\n");
    // A finished run's state is replaced; a damaged one is refused.
    for _ in 0..2 {
        let o = wgtrain_in(dir.path(), &strs(&with(&run, &["--state", "t.state"])));
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    }
    let state = dir.path().join("t.state");
    let mut bytes = std::fs::read(&state).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&state, &bytes).unwrap();
    refused(
        dir.path(),
        &with(&run, &["--state", "t.state"]),
        &[
            "invalid state = t.state: is not a wgtrain training state (",
            "give another --state path, or delete the file",
        ],
    );
    assert_eq!(std::fs::read(&state).unwrap(), bytes);
    std::fs::write(&state, b"").unwrap();
    let o = wgtrain_in(dir.path(), &strs(&with(&run, &["--state", "t.state"])));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A sweep's state names its best trial's id with the weights; the best finished trial is
/// ranked again from the trials on `--resume` (an accuracy tie goes to the lower validation
/// loss, where an older wgtrain took the smaller id). A state whose best is not the trial
/// ranked best is refused (exit 2), naming both trials and the fix, not resumed with one
/// trial's weights under another's name.
#[test]
fn a_sweep_state_whose_best_is_not_the_trial_ranked_best_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let mut args = tiny_sweep_args(&data, "sw");
    for (flag, value) in [
        ("--lr", "0.05,0.1,0.2,0.3"),
        ("--epochs", "100"),
        ("--train-subset", "2000"),
    ] {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1] = value.into();
    }
    // One trial at a time, so that the stop lands after the first and before the last.
    args.extend(["--population", "1"].map(String::from));
    let out = dir.path().join("sw");
    let state = out.join("state.safetensors");
    let mut run = Run::start(dir.path(), &strs(&args));
    // The state names a best once the first trial finished (100 epochs of 2,000 samples).
    wait_for(&mut run, "a finished trial in the state", LIMIT, || {
        std::fs::read(&state)
            .ok()
            .and_then(|b| {
                let (_, m) = safetensors::SafeTensors::read_metadata(&b).ok()?;
                let doc: serde_json::Value =
                    serde_json::from_str(m.metadata().as_ref()?.get("wgtrain.state")?).ok()?;
                Some(doc["best"].is_u64())
            })
            .unwrap_or(false)
    });
    run.sigint();
    let o = run.finish(LIMIT);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    // Name another trial as the best, as a state of another ranking would.
    let bytes = std::fs::read(&state).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut doc: serde_json::Value = serde_json::from_str(&meta["wgtrain.state"]).unwrap();
    let best = doc["best"].as_u64().unwrap();
    doc["best"] = serde_json::json!(best + 7);
    meta.insert("wgtrain.state".into(), doc.to_string());
    let tensors: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    std::fs::write(&state, safetensors::serialize(tensors, Some(meta)).unwrap()).unwrap();
    refused_unchanged(
        dir.path(),
        &out,
        &with(&args, &["--resume"]),
        &[
            &format!(
                "invalid resume = sw/state.safetensors: holds trial {}'s weights as the best, but the best finished trial is {best}",
                best + 7
            ),
            "finish the sweep with the wgtrain that started it, or start again with --overwrite",
        ],
    );
}
