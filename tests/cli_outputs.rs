//! Output paths as a user meets them: an output onto a dataset file or hard-linked to an
//! input is refused before any work, and a disk that fills up during a run (a real tmpfs
//! of a few KiB) costs neither the other outputs nor a whole line of the metrics.

#[path = "common/cli.rs"]
mod cli_support;

use std::path::Path;

use cli_support::*;

/// Regression: `train --save DIR/train-images-idx3-ubyte` (the `--data` directory's own
/// file) trained and then replaced the training images with the checkpoint; `sweep
/// --save-best` could do the same. Such an output is refused before training, and the
/// data stays intact.
#[test]
fn an_output_onto_a_dataset_file_is_refused_and_the_data_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    copy_mnist(&data);
    let d = data.to_str().unwrap();
    let before = std::fs::read(data.join("train-labels-idx1-ubyte.gz")).unwrap();
    let target = format!("{d}/../data/train-labels-idx1-ubyte.gz");
    let raw = format!("{d}/t10k-images-idx3-ubyte");
    for (args, path) in [
        (
            vec!["train", "--device", "cpu", "--data", d, "--save", &target],
            &target,
        ),
        (
            vec!["train", "--device", "cpu", "--data", d, "--metrics", &raw],
            &raw,
        ),
        (
            vec![
                "sweep",
                "--device",
                "cpu",
                "--data",
                d,
                "--trials",
                "1",
                "--save-best",
                &target,
            ],
            &target,
        ),
    ] {
        let mut args = args;
        args.extend(["--epochs", "1", "--train-subset", "500"]);
        let o = wgtrain(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains(path.as_str()) && err.contains("dataset's own files"),
            "{args:?}: {err}"
        );
        assert_eq!(error_lines(&err), 1, "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(data.join("train-labels-idx1-ubyte.gz")).unwrap(),
        before
    );
    assert!(!data.join("t10k-images-idx3-ubyte").exists());
}

/// Regression (issue 25, item 8): `--metrics m.jsonl` where `m.jsonl` is a hard link to a
/// dataset file (in another directory) passed the path comparison and truncated the
/// training labels. Outputs are compared with the inputs by identity (device, inode): a
/// hard link to a data file, to the `--init` checkpoint or to the `--hparam-schedule`
/// file, or two outputs linked to one file, are refused before any work and nothing is
/// changed.
#[test]
fn regression_an_output_hard_linked_to_an_input_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    copy_mnist(&data);
    let d = data.to_str().unwrap();
    let labels = data.join("train-labels-idx1-ubyte.gz");
    let before = std::fs::read(&labels).unwrap();
    let link = |name: &str, to: &Path| -> String {
        let p = tmp.path().join(name);
        std::fs::hard_link(to, &p).unwrap();
        p.to_str().unwrap().to_owned()
    };
    let m = link("m.jsonl", &labels);
    let init = tmp.path().join("init.safetensors");
    write_model(&init, 784, 10);
    let init_bytes = std::fs::read(&init).unwrap();
    let i = init.to_str().unwrap();
    let saved = link("saved.safetensors", &init);
    let schedule = tmp.path().join("s.json");
    std::fs::write(
        &schedule,
        r#"{"epochs": [{"epoch": 1, "lr": 0.1, "weight_decay": 0.0001}]}"#,
    )
    .unwrap();
    let sched = link("sched.jsonl", &schedule);
    let other = tmp.path().join("other.jsonl");
    std::fs::write(&other, "").unwrap();
    let twin = link("twin.safetensors", &other);
    let o_str = other.to_str().unwrap().to_owned();
    let train = [
        "train",
        "--device",
        "cpu",
        "--data",
        d,
        "--train-subset",
        "500",
    ];
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--metrics", &m], "dataset's own files"),
        (
            vec!["--hidden", "8", "--init", i, "--save", &saved],
            "is the input --init",
        ),
        (
            vec![
                "--hparam-schedule",
                schedule.to_str().unwrap(),
                "--metrics",
                &sched,
            ],
            "is the input --hparam-schedule",
        ),
        (
            vec!["--metrics", &o_str, "--save", &twin],
            "is also given as another output",
        ),
    ];
    for (extra, needle) in cases {
        let args: Vec<&str> = train.iter().copied().chain(extra).collect();
        let o = wgtrain(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(err.contains("another name"), "{args:?}: {err}");
        assert_eq!(error_lines(&err), 1, "{args:?}: {err}");
    }
    assert_eq!(
        std::fs::read(&labels).unwrap(),
        before,
        "the labels were changed"
    );
    assert_eq!(std::fs::read(&init).unwrap(), init_bytes);
}

/// Regression (issue 25, item 5): `--metrics` on a disk that filled at epoch 56 of 100
/// exited 1 at once, so `--save` (on a disk with room) wrote nothing, and the metrics file
/// kept a torn last line that `plot` refused. Now the run goes on, saves its weights, ends
/// with exit 1 naming the metrics file and the epoch, the metrics file holds only whole
/// lines (epochs 1, 2, ... in order), and `plot` draws them.
#[test]
fn regression_a_full_disk_under_metrics_keeps_the_checkpoint_and_whole_lines() {
    let tmp = tempfile::tempdir().unwrap();
    // 12 KiB: a page for the lock file and two for about 36 lines of metrics.
    let disk = TinyFs::mount(12);
    let metrics = disk.path().join("m.jsonl");
    let save = tmp.path().join("m.safetensors");
    let data = mnist_dir();
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--epochs",
        "60",
        "--quiet",
        "--metrics",
        metrics.to_str().unwrap(),
        "--save",
        save.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "error: writing the metrics file {} failed at epoch ",
            metrics.display()
        )) && last.contains("the run's other outputs were written"),
        "{err}"
    );
    let ck = wgtrain::checkpoint::load(&save).unwrap();
    assert_eq!(ck.spec.to_string(), "784-8-10");
    let text = std::fs::read_to_string(&metrics).unwrap();
    assert!(text.ends_with('\n'), "a torn last line: {text:?}");
    let epochs: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["epoch"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert!((1..60).contains(&epochs.len()), "{} lines", epochs.len());
    assert_eq!(epochs, (1..=epochs.len() as u64).collect::<Vec<_>>());
    assert!(
        last.contains(&format!("failed at epoch {}", epochs.len() + 1)),
        "{last}"
    );
    let plots = tmp.path().join("plots");
    let o = wgtrain(&[
        "plot",
        metrics.to_str().unwrap(),
        "--out",
        plots.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(plots.join("learning_curves.png").is_file());
}

/// Regression (issue 25, item 11): an output on a full disk left an empty `.lock` file
/// behind (the lock file was created, then writing the PID into it failed). The run fails
/// naming the lock file and the cause, and removes it.
#[test]
fn regression_a_full_disk_leaves_no_empty_lock_file() {
    let disk = TinyFs::mount(8);
    disk.fill();
    let save = disk.path().join("m.safetensors");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--train-subset",
        "300",
        "--epochs",
        "1",
        "--save",
        save.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("m.safetensors.lock") && err.contains("No space left on device"),
        "{err}"
    );
    assert_eq!(error_lines(&err), 1, "{err}");
    let left: Vec<_> = std::fs::read_dir(disk.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["filler"], "{err}");
}

/// The flags of a small `train` run for the full-disk tests below, with `extra`.
fn small_train<'a>(data: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
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
        "2",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    args
}

/// Issue 25 (fault findings): a full disk at `train --save` after the last epoch lost the
/// trained weights and the error said nothing of how to keep them. Without `--state` the
/// error now says so and suggests `--state`; with it, the error names the state and the
/// command that writes the weights again, and that command (with `--save` on a disk with
/// room) writes the uninterrupted run's checkpoint, byte for byte.
#[test]
fn regression_a_full_disk_at_save_suggests_state_or_the_command_that_saves_again() {
    let tmp = tempfile::tempdir().unwrap();
    // 8 KiB: a page for the lock file, too little for the 25 KiB checkpoint.
    let disk = TinyFs::mount(8);
    let data = mnist_dir();
    let full = disk.path().join("m.safetensors");
    let o = wgtrain(&small_train(&data, &["--save", full.to_str().unwrap()]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(&format!("error: saving {}: ", full.display()))
            && last.contains("No space left on device")
            && last.contains(
                "the trained weights are lost with this run: give --state FILE to keep the \
                 trained state, so that a failed save can be written again with --resume FILE"
            ),
        "{err}"
    );
    assert!(!err.contains("holds the state written before"), "{err}");

    let state = tmp.path().join("run.state");
    let o = wgtrain(&small_train(
        &data,
        &[
            "--save",
            full.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    ));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap();
    let said = format!("the trained state is in {}: `", state.display());
    let at = last.find(&said).unwrap_or_else(|| panic!("{err}"));
    let command = &last[at + said.len()..];
    let command = &command[..command.find('`').unwrap()];
    assert!(
        command.ends_with(&format!(
            "--state {} --resume {}",
            state.display(),
            state.display()
        )),
        "{command}"
    );
    // The printed command, its --save on a disk with room.
    let saved = tmp.path().join("saved.safetensors");
    let mut again: Vec<&str> = command.split(' ').skip(1).collect();
    let s = again.iter().position(|w| *w == "--save").unwrap();
    again[s + 1] = saved.to_str().unwrap();
    let o = wgtrain(&again);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let whole = tmp.path().join("whole.safetensors");
    let o = wgtrain(&small_train(&data, &["--save", whole.to_str().unwrap()]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::read(&saved).unwrap() == std::fs::read(&whole).unwrap());
}

/// Issue 25 (fault findings): a full disk under `train --state` is warned of once, the run
/// goes on (trying the state again at every epoch) and writes its other outputs; the error
/// at the end does not claim that the file "holds the state written before" when no state
/// was ever written.
#[test]
fn regression_a_full_disk_under_state_warns_once_and_the_run_goes_on() {
    let tmp = tempfile::tempdir().unwrap();
    // A page for the lock file; the 50 KiB state never fits.
    let disk = TinyFs::mount(8);
    let data = mnist_dir();
    let state = disk.path().join("run.state");
    let save = tmp.path().join("m.safetensors");
    let o = wgtrain(&small_train(
        &data,
        &[
            "--save",
            save.to_str().unwrap(),
            "--state",
            state.to_str().unwrap(),
        ],
    ));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning: writing the training state"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(
        warned[0].contains("failed after 0 epochs; no state was written yet")
            && warned[0].ends_with("the run goes on and tries again after the next epoch"),
        "{err}"
    );
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with(&format!(
            "error: writing the training state {} failed after 2 epochs; no state was written yet",
            state.display()
        )),
        "{err}"
    );
    assert!(!err.contains("holds the state written before"), "{err}");
    assert_eq!(
        wgtrain::checkpoint::load(&save).unwrap().spec.to_string(),
        "784-8-10"
    );
}

/// Issue 25 (fault findings): a full disk at a sweep's state write aborted the sweep
/// (without the resume command), while `train` warned and went on. A sweep whose state
/// never fits its `--out` now warns once and finishes every trial and output.
#[test]
fn regression_a_full_disk_at_a_sweeps_state_warns_and_the_sweep_goes_on() {
    // 700 KiB: the trials' files, the best weights (200 KiB) and the pictures fit; the
    // state of 2 members (800 KiB) never does.
    let disk = TinyFs::mount(700);
    let out = disk.path().join("sw");
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--train-subset",
        "300",
        "--hidden",
        "64",
        "--search",
        "grid",
        "--lr",
        "0.05,0.1",
        "--epochs",
        "2",
        "--pruning",
        "none",
        "--population",
        "2",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning: writing the sweep's state failed"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(
        warned[0].contains("No space left on device")
            && warned[0].ends_with(
                "no state was written yet; the sweep goes on and tries again after the next population epoch"
            ),
        "{err}"
    );
    let trials: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    assert_eq!(trials.as_array().unwrap().len(), 2);
    assert!(out.join("best.json").is_file(), "{err}");
}

/// A sweep's trials without their wall-clock fields (`seconds`, `epoch_seconds`, ...).
fn trials_without_times(path: &Path) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !k.contains("seconds"));
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    strip(&mut v);
    v
}

/// Fault attack, second round: a full disk between a finished trial's record and its
/// weights left trials.json naming a best trial whose `best_trial.safetensors` was never
/// written, and the printed `--resume` was refused for good ("the best finished trial's
/// weights cannot be read"). The weights are now written first: with space freed, the
/// printed command finishes the sweep as an uninterrupted one.
#[test]
fn regression_a_sweep_stopped_by_a_full_disk_resumes_once_there_is_space() {
    let disk = TinyFs::mount(200);
    let out = disk.path().join("m");
    let data = mnist_dir();
    let sweep = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "sweep",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "2000",
            "--search",
            "grid",
            "--lr",
            "0.05,0.1",
            "--hidden",
            "64",
            "--epochs",
            "2",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        wgtrain(&args)
    };
    let o = sweep(&out, &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("--resume"), "{err}");
    disk.resize(8192);
    let o = sweep(&out, &["--resume"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("m");
    let o = sweep(&whole, &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        trials_without_times(&out.join("trials.json")),
        trials_without_times(&whole.join("trials.json"))
    );
}

/// Fault attack, second round: a PBT run whose state never fits and whose picture fails
/// at the end said "the run's state is kept in .../state.safetensors" (there was none) and
/// left a truncated `pbt_val_accuracy.png`. It now says no state could be written and what
/// to do, and removes the picture it could not finish.
#[test]
fn regression_a_pbt_run_without_a_state_says_so_when_an_output_fails() {
    // 120 KiB: the run's files fit, its 100 KiB picture does not, nor its 200 KiB state.
    let disk = TinyFs::mount(120);
    let out = disk.path().join("pbt");
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--search",
        "pbt",
        "--population",
        "4",
        "--pbt-interval",
        "1",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("drawing the PBT picture"), "{err}");
    assert!(!err.contains("the run's state is kept"), "{err}");
    assert!(
        err.contains("no state of the run could be written to")
            && err.contains("train again with --overwrite"),
        "{err}"
    );
    assert!(!out.join("state.safetensors").exists());
    assert!(
        !out.join("pbt_val_accuracy.png").exists(),
        "a truncated picture was left"
    );
    assert!(out.join("best.json").is_file(), "{err}");
}

/// The same for a PBT run (`sweep --search pbt`, whose state is new with issue 25): a state
/// that never fits its `--out` is warned of once, and the run trains every epoch and
/// writes its outputs.
#[test]
fn a_full_disk_at_a_pbt_runs_state_warns_and_the_run_goes_on() {
    // 700 KiB: the run's files and the picture fit; the state of 2 members (800 KiB) never
    // does.
    let disk = TinyFs::mount(700);
    let out = disk.path().join("pbt");
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--train-subset",
        "300",
        "--hidden",
        "64",
        "--search",
        "pbt",
        "--population",
        "2",
        "--pbt-interval",
        "1",
        "--epochs",
        "3",
        "--quiet",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning: writing the run's files or state"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(
        warned[0].contains("failed after epoch 1") && warned[0].contains("No space left on device"),
        "{err}"
    );
    let record = wgtrain::tune::pbt::output::read_record(&out.join("pbt.json")).unwrap();
    assert_eq!(record.epochs_done(), 3);
    assert!(record.best.is_some(), "{err}");
}
