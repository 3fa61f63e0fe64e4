//! `train --state FILE` / `train --resume FILE` as a user runs them (issue 25 item 1): a run
//! stopped by Ctrl-C, or killed with SIGKILL in the middle of an epoch, and resumed, ends
//! with the checkpoint and metrics of the uninterrupted run, byte for byte (the metrics'
//! wall times aside), on the CPU path and on the GPU path (lavapipe); a resume with other
//! settings or data, or from a file that is not a train state, is refused before any work.
//! A population sweep stopped the same ways resumes its running trials where they were and
//! ends with the uninterrupted sweep's trials; a PBT run (`sweep --search pbt`) with the
//! uninterrupted run's outputs. (The trainer's snapshot and restore are
//! tested in `tests/gpu/resume.rs`.)

#[path = "common/cli.rs"]
mod cli;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use cli::{Run, lines, mnist_dir, refused, stderr, strs, wait_for, wgtrain_in, with};

const LIMIT: Duration = Duration::from_secs(600);

/// The trainer epoch a state file is at (0 before its first epoch ends), or `None` while
/// there is none.
fn state_epoch(p: &Path) -> Option<u64> {
    let bytes = std::fs::read(p).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    let doc: serde_json::Value =
        serde_json::from_str(meta.metadata().as_ref()?.get("wgtrain.state")?).ok()?;
    doc["trainer"]["epoch"].as_u64()
}

/// Each metrics line up to its wall-time fields (`epoch_seconds`, `samples_per_second`,
/// the last two): the bytes that must be the same however the run was interrupted.
fn without_times(p: &Path) -> Vec<String> {
    lines(p)
        .iter()
        .map(|l| {
            let cut = l
                .find(",\"epoch_seconds\"")
                .unwrap_or_else(|| panic!("{l}"));
            l[..cut].to_string()
        })
        .collect()
}

/// The flags of the run under test: momentum with nesterov and ReduceLROnPlateau at
/// patience 0 (whose state changes every epoch), a validation split, 3 epochs of 9,000
/// training samples in minibatches of 32: 282 steps per epoch, more than the 192 the GPU
/// path queues, so a Ctrl-C stops it in the middle of an epoch there too.
fn run_args(device: &str, data: &str) -> Vec<String> {
    [
        "train",
        "--device",
        device,
        "--data",
        data,
        "--train-subset",
        "10000",
        "--hidden",
        "32",
        "--epochs",
        "3",
        "--batch-size",
        "32",
        "--lr",
        "0.05",
        "--momentum",
        "0.9",
        "--nesterov",
        "--val-split",
        "0.1",
        "--lr-schedule",
        "plateau",
        "--plateau-patience",
        "0",
        "--plateau-factor",
        "0.5",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Runs the test's run uninterrupted, then twice interrupted after its first epoch (by
/// Ctrl-C, and by SIGKILL) and resumed; each resumed run's checkpoint and metrics must be
/// the uninterrupted run's.
fn resumed_runs_end_as_the_uninterrupted_one(device: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let args = run_args(device, &data);
    let whole = wgtrain_in(
        dir.path(),
        &strs(&with(
            &args,
            &["--save", "want.safetensors", "--metrics", "want.jsonl"],
        )),
    );
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let want = std::fs::read(dir.path().join("want.safetensors")).unwrap();
    let want_metrics = without_times(&dir.path().join("want.jsonl"));
    assert_eq!(want_metrics.len(), 3);

    for signal in ["INT", "KILL"] {
        let (state, got, metrics) = (
            format!("{signal}.state"),
            format!("{signal}.safetensors"),
            format!("{signal}.jsonl"),
        );
        let outputs = with(&args, &["--save", &got, "--metrics", &metrics]);
        let first = with(&outputs, &["--state", &state]);
        let mut run = Run::start(dir.path(), &strs(&first));
        let state_path = dir.path().join(&state);
        wait_for(&mut run, "the state after epoch 1", LIMIT, || {
            state_epoch(&state_path).is_some_and(|e| e >= 1)
        });
        // The state is written at the end of an epoch: the run is now in epoch 2.
        run.signal(signal);
        let o = run.finish(LIMIT);
        let err = stderr(&o);
        match signal {
            "INT" => {
                assert_eq!(o.status.code(), Some(130), "{err}");
                assert!(
                    err.contains(&format!("saved the training state to {state} (epoch ")),
                    "{err}"
                );
                let hint = err
                    .lines()
                    .find_map(|l| l.split_once("; resume with: ").map(|(_, h)| h))
                    .unwrap_or_else(|| panic!("no resume hint: {err}"));
                assert!(hint.ends_with(&format!("--resume {state}")), "{hint}");
            }
            _ => assert_eq!(o.status.signal(), Some(9), "{err}"),
        }
        let stopped_at = state_epoch(&state_path).unwrap();
        assert!(
            stopped_at < 3,
            "{signal}: the run had finished ({stopped_at})"
        );

        let resumed = wgtrain_in(dir.path(), &strs(&with(&outputs, &["--resume", &state])));
        let err = stderr(&resumed);
        assert_eq!(resumed.status.code(), Some(0), "{signal}: {err}");
        assert!(
            err.contains(&format!("resuming {state}: {stopped_at} of 3 epochs done")),
            "{signal}: {err}"
        );
        let got_bytes = std::fs::read(dir.path().join(&got)).unwrap();
        assert!(
            got_bytes == want,
            "{device}, {signal}: the resumed run's checkpoint differs from the uninterrupted run's"
        );
        assert_eq!(
            without_times(&dir.path().join(&metrics)),
            want_metrics,
            "{device}, {signal}: metrics"
        );
        assert_eq!(
            state_epoch(&state_path),
            Some(3),
            "{signal}: the final state"
        );
    }
}

/// Issue 25 item 1: a killed or interrupted run could not be continued: `--save` kept the
/// weights reached, but not the momentum, the plateau schedule's state or the position, so a
/// new run from them (`--init`) was another run. CPU path.
#[test]
fn a_run_stopped_by_ctrl_c_or_sigkill_resumes_to_the_uninterrupted_bytes_on_the_cpu() {
    resumed_runs_end_as_the_uninterrupted_one("cpu");
}

/// The same on the GPU path (lavapipe on CI).
#[test]
fn a_run_stopped_by_ctrl_c_or_sigkill_resumes_to_the_uninterrupted_bytes_on_the_gpu() {
    resumed_runs_end_as_the_uninterrupted_one("gpu");
}

/// A state goes on only with the run's own flags and data: another value of a flag that
/// decides what the run computes is refused naming the flag and both values, other data
/// naming both fingerprints, a checkpoint or a missing file naming what it is; and a new
/// run does not overwrite the state of an unfinished one.
#[test]
fn a_resume_with_other_settings_or_data_is_refused_naming_what_differs() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let base: Vec<String> = [
        "train",
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        "500",
        "--hidden",
        "16",
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let o = wgtrain_in(dir.path(), &strs(&with(&base, &["--state", "s.state"])));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let done = wgtrain_in(dir.path(), &strs(&with(&base, &["--resume", "s.state"])));
    assert_eq!(done.status.code(), Some(0), "{}", stderr(&done));
    assert!(
        stderr(&done).contains("resuming s.state: 2 of 2 epochs done; the run had finished"),
        "{}",
        stderr(&done)
    );
    let lr = base.iter().position(|a| a == "0.05").unwrap();
    let mut other = base.clone();
    other[lr] = "0.2".into();
    refused(
        dir.path(),
        &with(&other, &["--resume", "s.state"]),
        &[
            "invalid resume = s.state: --lr is 0.2 but the run in s.state ran with 0.05",
            "resume with --lr 0.05",
        ],
    );
    refused(
        dir.path(),
        &with(&base, &["--resume", "s.state", "--momentum", "0.9"]),
        &["--momentum is 0.9 but the run in s.state ran with 0"],
    );
    let subset = base.iter().position(|a| a == "500").unwrap();
    let mut other = base.clone();
    other[subset] = "600".into();
    refused(
        dir.path(),
        &with(&other, &["--resume", "s.state"]),
        &["--train-subset is 600 but the run in s.state ran with 500"],
    );
    // Other data under the same flags: the training files as the test set too.
    let moved = dir.path().join("other");
    std::fs::create_dir(&moved).unwrap();
    for (from, to) in [
        ("train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz"),
        ("train-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        std::fs::copy(Path::new(&data).join(from), moved.join(to)).unwrap();
    }
    let d = base.iter().position(|a| *a == data).unwrap();
    let mut other = base.clone();
    other[d] = moved.display().to_string();
    refused(
        dir.path(),
        &with(&other, &["--resume", "s.state"]),
        &[
            "the data are 500 training and 60000 test samples",
            "but the run in s.state trained on 500 training and 10000 test samples",
        ],
    );
    cli::write_model(&dir.path().join("m.safetensors"), 784, 10);
    refused(
        dir.path(),
        &with(&base, &["--resume", "m.safetensors"]),
        &["is a checkpoint (weights only), not a training state"],
    );
    refused(
        dir.path(),
        &with(&base, &["--resume", "nothing.state"]),
        &["invalid resume = nothing.state: no such file"],
    );
    // A state that --resume could still finish is not replaced by a new run.
    let epochs = base.iter().position(|a| a == "2").unwrap();
    let mut long = base.clone();
    long[epochs] = "400".into();
    let mut run = Run::start(dir.path(), &strs(&with(&long, &["--state", "u.state"])));
    let u = dir.path().join("u.state");
    wait_for(&mut run, "the first state", LIMIT, || {
        state_epoch(&u).is_some()
    });
    run.signal("KILL");
    run.finish(LIMIT);
    refused(
        dir.path(),
        &with(&long, &["--state", "u.state"]),
        // The kill lands after the first state file (epoch 0, or epoch 1 on a fast machine).
        &[
            "invalid state = u.state: holds an unfinished run (",
            " of 400 epochs done); give --resume u.state",
        ],
    );
}

/// A sweep's state document (`--out/state.safetensors`), when there is one.
fn sweep_state(out: &Path) -> Option<serde_json::Value> {
    let bytes = std::fs::read(out.join("state.safetensors")).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    serde_json::from_str(meta.metadata().as_ref()?.get("wgtrain.state")?).ok()
}

/// Epochs of the running trials in a sweep's state (none between populations).
fn running_epochs(doc: &serde_json::Value) -> Vec<usize> {
    doc["population"]["slots"]
        .as_array()
        .map(|slots| {
            slots
                .iter()
                .filter(|s| !s.is_null())
                .map(|s| s["history"].as_array().map_or(0, Vec::len))
                .collect()
        })
        .unwrap_or_default()
}

/// The comparable part of each trial of `out/trials.json`: everything but its wall time
/// (`seconds`, and each epoch's `epoch_seconds`).
fn trials_without_times(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(out.join("trials.json")).unwrap();
    let mut trials: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
    for t in &mut trials {
        // Wall times: the trial's, and a single run's epoch at its batch size (timed
        // again when a sweep resumes).
        t.as_object_mut().unwrap().remove("seconds");
        t.as_object_mut()
            .unwrap()
            .remove("single_run_epoch_seconds");
        for m in t["history"].as_array_mut().unwrap() {
            m.as_object_mut().unwrap().remove("epoch_seconds");
        }
    }
    trials
}

/// Issue 25 item 1: `sweep --resume` reran the trials that were running from scratch (only
/// finished trials were kept). A population sweep (2 members, median pruning, so finished
/// trials judge later ones and freed slots are refilled) stopped by Ctrl-C in the middle of
/// a population epoch, and one killed with SIGKILL while its second population trains,
/// each resumed: the running trials go on where they were, and the final trials.json is
/// the uninterrupted sweep's (wall times aside).
#[test]
fn a_sweep_stopped_by_ctrl_c_or_sigkill_resumes_its_running_trials_to_the_same_trials() {
    sweep_resumes_its_running_trials("cpu", "20000");
}

/// The same on the GPU path (lavapipe on CI; a smaller subset, as lavapipe is slow).
#[test]
fn a_sweep_stopped_by_ctrl_c_or_sigkill_resumes_its_running_trials_on_the_gpu() {
    sweep_resumes_its_running_trials("gpu", "10000");
}

/// Runs the sweep of the tests above on `device` with `subset` training samples,
/// uninterrupted, then stopped by Ctrl-C and by SIGKILL and resumed; the resumed sweeps'
/// trials must be the uninterrupted one's.
fn sweep_resumes_its_running_trials(device: &str, subset: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let sweep = |out: &str| -> Vec<String> {
        [
            "sweep",
            "--device",
            device,
            "--data",
            &data,
            "--train-subset",
            subset,
            "--search",
            "grid",
            "--lr",
            "0.01,0.4,0.05,0.1,0.2",
            "--momentum",
            "0.5",
            "--hidden",
            "64",
            "--epochs",
            "4",
            "--pruning",
            "median",
            "--prune-min-trials",
            "1",
            "--prune-warmup",
            "0",
            "--population",
            "2",
            "--quiet",
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let whole = wgtrain_in(dir.path(), &strs(&sweep("whole")));
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let want = trials_without_times(&dir.path().join("whole"));
    assert_eq!(want.len(), 5);
    assert!(
        !dir.path().join("whole/state.safetensors").exists(),
        "a finished sweep removes its state"
    );

    for signal in ["INT", "KILL"] {
        let name = signal.to_lowercase();
        let out = dir.path().join(&name);
        let args = sweep(&name);
        let mut run = Run::start(dir.path(), &strs(&args));
        // Ctrl-C once the first population has trained an epoch; SIGKILL once a trial has
        // finished and a running one has trained an epoch since.
        let finished = |d: &serde_json::Value| d["trials"].as_array().map_or(0, Vec::len);
        wait_for(
            &mut run,
            "running trials in the sweep's state",
            LIMIT,
            || {
                sweep_state(&out).is_some_and(|d| {
                    let done = if signal == "INT" { 0 } else { 1 };
                    finished(&d) >= done && running_epochs(&d).iter().any(|&e| e >= 1)
                })
            },
        );
        run.signal(signal);
        let o = run.finish(LIMIT);
        let err = stderr(&o);
        if signal == "INT" {
            assert_eq!(o.status.code(), Some(130), "{err}");
            assert!(
                err.contains("running, were saved where they stopped"),
                "{err}"
            );
        } else {
            assert_eq!(o.status.signal(), Some(9), "{err}");
        }
        let doc = sweep_state(&out).expect("the state is kept");
        let going_on = running_epochs(&doc);
        assert!(
            going_on.iter().any(|&e| e >= 1),
            "{signal}: no running trial to resume: {going_on:?}"
        );

        let resumed = wgtrain_in(dir.path(), &strs(&with(&args, &["--resume"])));
        let err = stderr(&resumed);
        assert_eq!(resumed.status.code(), Some(0), "{signal}: {err}");
        assert!(
            err.contains("running trials go on where they were: trial "),
            "{signal}: {err}"
        );
        // Each running trial of the state is named with its epochs so far.
        for s in doc["population"]["slots"].as_array().unwrap() {
            if s.is_null() {
                continue;
            }
            let (id, epochs) = (&s["id"], s["history"].as_array().unwrap().len());
            let plural = if epochs == 1 { "" } else { "s" };
            let said = format!("trial {id} after {epochs} epoch{plural}");
            assert!(err.contains(&said), "{signal}: {said} in {err}");
        }
        let stdout = String::from_utf8_lossy(&resumed.stdout);
        assert_eq!(
            trials_without_times(&out),
            want,
            "{signal}: the resumed sweep's trials; its output: {stdout}"
        );
        assert!(!out.join("state.safetensors").exists(), "{signal}");
    }
}

/// The flags of the PBT run under test on `device`: 4 members at batch sizes 32 and 64
/// (exploit copies sizes, so the members may all leave 32, the population's micro-batch),
/// an exploit step after every epoch, 8 epochs of `subset` samples less the validation
/// split (so a signal sent once the first epochs' state exists lands well before the end).
fn pbt_args(device: &str, subset: &str, data: &str, out: &str, save_best: &str) -> Vec<String> {
    [
        "sweep",
        "--device",
        device,
        "--data",
        data,
        "--train-subset",
        subset,
        "--search",
        "pbt",
        "--population",
        "4",
        "--pbt-interval",
        "1",
        "--lr",
        "0.01:0.5",
        "--batch-size",
        "32,64",
        "--momentum",
        "0.5,0.9",
        "--hidden",
        "64",
        "--epochs",
        "8",
        "--quiet",
        "--out",
        out,
        "--save-best",
        save_best,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// A PBT state's trainer epoch (`--out/state.safetensors`), when there is one.
fn pbt_state_epoch(out: &Path) -> Option<u64> {
    sweep_state(out)?["trainer"]["epoch"].as_u64()
}

/// The files of a finished PBT run in `out`, and `best`'s bytes, with the wall-clock
/// fields taken out: each epoch's `epoch_seconds` (pbt.json, pbt_members.csv) and a
/// member's share of the time, `seconds` (leaderboard.csv). Everything else must be the
/// same bytes however the run was interrupted.
fn pbt_outputs_without_times(out: &Path, best: &Path) -> Vec<(String, Vec<u8>)> {
    let read = |f: &str| std::fs::read(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
    let mut record: serde_json::Value = serde_json::from_slice(&read("pbt.json")).unwrap();
    for row in record["history"].as_array_mut().unwrap() {
        row.as_object_mut().unwrap().remove("epoch_seconds");
    }
    // A CSV without one column, by its header name.
    let drop_column = |f: &str, column: &str| -> Vec<u8> {
        let text = String::from_utf8(read(f)).unwrap();
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap().split(',').collect();
        let at = header.iter().position(|h| *h == column).unwrap();
        let keep = |l: &str| -> String {
            let cells: Vec<&str> = l.split(',').collect();
            assert_eq!(cells.len(), header.len(), "{f}: {l}");
            let kept: Vec<&str> = (0..cells.len())
                .filter(|&i| i != at)
                .map(|i| cells[i])
                .collect();
            kept.join(",")
        };
        let mut rows = vec![keep(text.lines().next().unwrap())];
        rows.extend(lines.map(keep));
        rows.join("\n").into_bytes()
    };
    vec![
        ("pbt.json".into(), record.to_string().into_bytes()),
        (
            "pbt_members.csv".into(),
            drop_column("pbt_members.csv", "epoch_seconds"),
        ),
        (
            "leaderboard.csv".into(),
            drop_column("leaderboard.csv", "seconds"),
        ),
        ("pbt_lineage.csv".into(), read("pbt_lineage.csv")),
        (
            "pbt_best_schedule.json".into(),
            read("pbt_best_schedule.json"),
        ),
        ("best.json".into(), read("best.json")),
        ("--save-best".into(), std::fs::read(best).unwrap()),
    ]
}

/// Issue 25 ("nothing lost"): an interrupted `sweep --search pbt` kept no weights and no
/// state, and `--resume` was refused for PBT. A PBT run stopped by Ctrl-C after its first
/// epoch's state exists (mid-epoch: the state holds the step the stop landed on), and one
/// killed with SIGKILL after its second, each resumed with `--resume`: the outputs are the
/// uninterrupted run's byte for byte (wall times aside), and the state is removed. A resume
/// with another setting is refused naming it, and a new run into the folder is told to
/// give --resume (into a finished run's folder, not: it has nothing to go on with).
#[test]
fn a_pbt_run_stopped_by_ctrl_c_or_sigkill_resumes_to_the_uninterrupted_outputs() {
    pbt_resumes_to_the_uninterrupted_outputs("cpu", "20000");
}

/// The same on the GPU path (lavapipe on CI; a smaller subset, as lavapipe is slow).
#[test]
fn a_pbt_run_stopped_by_ctrl_c_or_sigkill_resumes_to_the_uninterrupted_outputs_on_the_gpu() {
    pbt_resumes_to_the_uninterrupted_outputs("gpu", "10000");
}

/// Runs the PBT run of the tests above on `device` with `subset` training samples,
/// uninterrupted, then stopped by Ctrl-C and by SIGKILL and resumed.
fn pbt_resumes_to_the_uninterrupted_outputs(device: &str, subset: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let pbt = |out: &str, best: &Path| pbt_args(device, subset, &data, out, best.to_str().unwrap());
    let whole_best = dir.path().join("whole.safetensors");
    let whole_args = pbt("whole", &whole_best);
    let whole = wgtrain_in(dir.path(), &strs(&whole_args));
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let want = pbt_outputs_without_times(&dir.path().join("whole"), &whole_best);
    assert!(
        !dir.path().join("whole/state.safetensors").exists(),
        "a finished PBT run removes its state"
    );
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("whole/pbt.json")).unwrap()).unwrap();
    assert!(
        !record["lineage"].as_array().unwrap().is_empty(),
        "no exploit step to carry over a resume"
    );
    // A finished run has nothing to go on with: neither refusal offers --resume.
    let again = wgtrain_in(dir.path(), &strs(&whole_args));
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr(&again)
            .contains("holds a finished PBT run; give --overwrite to replace it, or another --out"),
        "{}",
        stderr(&again)
    );
    refused(
        dir.path(),
        &with(&whole_args, &["--resume"]),
        &["holds a finished PBT run (pbt.json names its best member); give --overwrite"],
    );

    for (signal, after) in [("INT", 1), ("KILL", 2)] {
        let name = signal.to_lowercase();
        let out = dir.path().join(&name);
        let best = dir.path().join(format!("{name}.safetensors"));
        let args = pbt(&name, &best);
        let mut run = Run::start(dir.path(), &strs(&args));
        wait_for(&mut run, "the PBT state after an epoch", LIMIT, || {
            pbt_state_epoch(&out).is_some_and(|e| e >= after)
        });
        run.signal(signal);
        let o = run.finish(LIMIT);
        let err = stderr(&o);
        if signal == "INT" {
            assert_eq!(o.status.code(), Some(130), "{err}");
            assert!(
                err.contains("the members were saved where they stopped and go on with --resume"),
                "{err}"
            );
            let line = err
                .lines()
                .find(|l| l.starts_with("resume with: "))
                .unwrap_or_else(|| panic!("no resume command: {err}"));
            assert!(
                line.ends_with(&format!(
                    "--out {name} --save-best {} --resume",
                    best.display()
                )),
                "{line}"
            );
        } else {
            assert_eq!(o.status.signal(), Some(9), "{err}");
        }
        assert!(
            pbt_state_epoch(&out).is_some(),
            "{signal}: the state is kept"
        );

        // A new run into the folder is told how to go on with it.
        let again = wgtrain_in(dir.path(), &strs(&args));
        let err = stderr(&again);
        assert_eq!(again.status.code(), Some(2), "{err}");
        assert!(
            err.contains("holds an interrupted PBT run") && err.contains("give --resume"),
            "{err}"
        );
        if signal == "KILL" {
            // Another setting is refused naming it, before any work.
            let mut other = with(&args, &["--resume"]);
            let at = other.iter().position(|a| a == "--pbt-interval").unwrap();
            other[at + 1] = "2".into();
            refused(
                dir.path(),
                &other,
                &["--pbt-interval is 2 but the sweep in kill ran with 1"],
            );
        }

        // Giving a default explicitly is the same run (second fault attack: it was refused
        // as "--pbt-quantile is 0.25 but ... ran with (not given)").
        let extra: &[&str] = match signal {
            "INT" => &[
                "--resume",
                "--pbt-quantile",
                "0.25",
                "--pbt-resample",
                "0.25",
            ],
            _ => &["--resume"],
        };
        let resumed = wgtrain_in(dir.path(), &strs(&with(&args, extra)));
        let err = stderr(&resumed);
        assert_eq!(resumed.status.code(), Some(0), "{signal}: {err}");
        assert!(
            err.contains(&format!("resuming {name}: ")),
            "{signal}: {err}"
        );
        let got = pbt_outputs_without_times(&out, &best);
        for ((file, w), (_, g)) in want.iter().zip(&got) {
            assert!(
                w == g,
                "{signal}: {file} differs from the uninterrupted run's:\n{}\n---\n{}",
                String::from_utf8_lossy(w),
                String::from_utf8_lossy(g)
            );
        }
        assert!(!out.join("state.safetensors").exists(), "{signal}");
    }
}
