//! Run control: the GPU progress callback following the GPU through an epoch, the stop
//! flag ending an epoch at a step boundary with the parameters of that step, and, with a
//! real `wgtrain` child process, Ctrl-C (SIGINT) in `train` and `sweep`, `sweep --resume`
//! and the advisory locks on output paths.

#[path = "common/cli.rs"]
mod cli;
mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cli::{Run, lines, mnist_dir, stderr, wait_for, wgtrain_in};
use common::{On, uniform};
use wgtrain::data::Dataset;
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::model::MlpSpec;
use wgtrain::optim::SgdConfig;
use wgtrain::{RunConfig, train};

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

/// The GPU engine as the CLI opens it by default (matmul kernels timed per shape).
const GPU: On = On::Gpu(MatmulChoice::Auto);

/// Issue 10 item 7: the GPU engine submitted every command buffer of the epoch before
/// waiting on the first, and lavapipe's `submit` runs the work, so the progress bar sat at
/// 0 for the whole epoch and jumped to the end. Now the callback must see increasing
/// counts spread over the epoch, not in one burst at its end.
#[test]
fn gpu_progress_advances_while_the_epoch_runs() {
    let n = 4096;
    let data = small_set(n, 3);
    let batch = 4;
    let cfg = RunConfig {
        hidden: vec![16],
        batch_size: batch,
        ..RunConfig::default()
    };
    // 1024 steps: 16 command buffers of 64 steps.
    let order: Vec<u32> = (0..n as u32).collect();
    let steps = train::step_records(n, batch);
    let table = common::member_steps(steps.len(), 1, 0.01, true);
    let never = AtomicBool::new(false);
    let mut engine = common::engine(GPU, &cfg, common::data(&data, &data)).expect("engine builds");
    // Warm-up: pipelines and first-use costs out of the timed epoch.
    engine
        .train_epoch(&order, &steps[..64], &table[..64], &mut |_| {}, &never)
        .unwrap();
    let start = Instant::now();
    let mut calls: Vec<(Duration, usize)> = Vec::new();
    let sums = engine
        .train_epoch(
            &order,
            &steps,
            &table,
            &mut |done| calls.push((start.elapsed(), done)),
            &never,
        )
        .unwrap();
    let total = start.elapsed();
    assert_eq!(sums[0].len(), steps.len());
    let counts: Vec<usize> = calls.iter().map(|c| c.1).collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "counts must increase: {counts:?}"
    );
    assert_eq!(counts.last(), Some(&steps.len()), "{counts:?}");
    assert!(counts.len() >= 8, "too few updates: {counts:?}");
    // Before the fix every call came within a few ms of the end (the waits returned at
    // once); now they are spaced by the command buffers' run time. A share of a quarter
    // leaves room for a stall of the shared machine before the first completion.
    let span = calls.last().unwrap().0 - calls[0].0;
    assert!(
        span.as_secs_f64() >= 0.25 * total.as_secs_f64(),
        "progress arrives in a burst: the updates span {span:?} of the {total:?} epoch ({calls:?})"
    );
}

/// Issue 10 item 9: a set stop flag ends the GPU epoch at a command-buffer boundary (a
/// multiple of 64 steps) and the CPU epoch after the step it is in; either way the
/// parameters are exactly those of a run of only the steps that finished.
#[test]
fn stop_flag_ends_an_epoch_at_a_step_boundary_with_that_steps_parameters() {
    let n = 2048;
    let data = small_set(n, 5);
    let spec = MlpSpec::new(100, &[16], 10).unwrap();
    let params = spec.init(2);
    let batch = 4;
    let cfg = RunConfig {
        hidden: vec![16],
        batch_size: batch,
        sgd: SgdConfig {
            momentum: 0.9,
            ..SgdConfig::default()
        },
        seed: 2,
        ..RunConfig::default()
    };
    let order = train::epoch_order(&(0..n as u32).collect::<Vec<_>>(), 1, 0);
    let steps = train::step_records(n, batch);
    let table = common::member_steps(steps.len(), 1, 0.01, true);
    for on in [GPU, On::Cpu] {
        let device = on.name();
        let mut engine =
            common::engine(on, &cfg, common::data(&data, &data)).expect("engine builds");
        let stop = AtomicBool::new(false);
        let sums = engine
            .train_epoch(
                &order,
                &steps,
                &table,
                &mut |_| stop.store(true, Ordering::Relaxed),
                &stop,
            )
            .unwrap()
            .remove(0);
        let k = sums.len();
        assert!(
            0 < k && k < steps.len(),
            "{device}: stopped after {k} steps"
        );
        if device == "gpu" {
            assert_eq!(k % 64, 0, "gpu: {k} steps is not a command-buffer boundary");
        }
        let stopped = engine.params(0).unwrap();
        engine.set_params(0, &params).unwrap();
        let want_sums = common::train_epoch(engine.as_mut(), &order, &steps[..k], 0.01, true)
            .unwrap()
            .remove(0);
        assert_eq!(sums, want_sums, "{device}: per-step sums");
        assert_eq!(
            stopped,
            engine.params(0).unwrap(),
            "{device}: parameters after {k} steps"
        );
    }
}

// ---- the binary, as a user runs it ----

fn metadata(p: &Path) -> std::collections::HashMap<String, String> {
    let bytes = std::fs::read(p).unwrap();
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    meta.metadata().clone().unwrap_or_default()
}

const LIMIT: Duration = Duration::from_secs(300);

/// Issue 10 item 9(b): Ctrl-C in `train` used to kill the run and lose `--save`. Now it
/// stops at the next step boundary, leaves a metrics file of whole JSON lines (one per
/// finished epoch), saves the weights reached with metadata naming where it stopped, removes
/// its lock files and exits 130.
#[test]
fn ctrl_c_in_train_saves_the_weights_reached_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let mut run = Run::start(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "200",
            "--metrics",
            "m.jsonl",
            "--save",
            "m.safetensors",
            "--quiet",
        ],
    );
    let metrics = dir.path().join("m.jsonl");
    wait_for(&mut run, "the first epoch", LIMIT, || {
        !lines(&metrics).is_empty()
    });
    // Into the second epoch's steps (one takes 0.4 s or more on this machine).
    std::thread::sleep(Duration::from_millis(150));
    run.sigint();
    let out = run.finish(LIMIT);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "stderr: {err}");
    assert!(err.contains("error: interrupted at epoch"), "{err}");
    let rows = lines(&metrics);
    for (i, l) in rows.iter().enumerate() {
        let v: serde_json::Value = serde_json::from_str(l).expect("whole JSON lines");
        assert_eq!(v["epoch"], i + 1, "{l}");
    }
    let ck = wgtrain::checkpoint::load(&dir.path().join("m.safetensors")).unwrap();
    assert_eq!(ck.spec.to_string(), "784-256-10");
    assert!(ck.params.iter().all(|v| v.is_finite()));
    let meta = metadata(&dir.path().join("m.safetensors"));
    let num = |k: &str| -> usize { meta[k].parse().unwrap() };
    assert_eq!(meta["wgtrain.interrupted"], "true");
    // 60,000 samples in minibatches of 64: 938 steps per epoch.
    assert_eq!(num("wgtrain.steps_per_epoch"), 938);
    assert_eq!(num("wgtrain.epoch"), rows.len() + 1, "{meta:?}");
    assert!(num("wgtrain.step") < 938, "{meta:?}");
    assert_eq!(
        num("wgtrain.global_step"),
        rows.len() * 938 + num("wgtrain.step"),
        "{meta:?}"
    );
    assert!(
        err.contains(&format!(
            "after step {} of 938 of epoch {}",
            num("wgtrain.step"),
            num("wgtrain.epoch")
        )),
        "{err}"
    );
    assert!(!dir.path().join("m.jsonl.lock").exists());
    assert!(!dir.path().join("m.safetensors.lock").exists());
}

/// A Ctrl-C during start-up (outputs locked, data still loading) used to kill the process
/// the default way, leaving its `.lock` files behind. The handler now comes before the
/// locks: the run stops at its first step boundary, writes its outputs (the initial
/// weights, marked interrupted at step 0), releases the locks and exits 130.
#[test]
fn ctrl_c_during_start_up_releases_the_locks_and_exits_130() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let mut run = Run::start(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "200",
            "--save",
            "m.safetensors",
            "--quiet",
        ],
    );
    let lock = dir.path().join("m.safetensors.lock");
    wait_for(&mut run, "the output lock", LIMIT, || lock.exists());
    run.sigint();
    let out = run.finish(LIMIT);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "stderr: {err}");
    assert!(!lock.exists(), "the lock is released: {err}");
    let meta = metadata(&dir.path().join("m.safetensors"));
    assert_eq!(meta["wgtrain.interrupted"], "true", "{meta:?}");
    assert_eq!(meta["wgtrain.global_step"], "0", "{meta:?}");
}

/// Regression (issue 25, item 11): SIGTERM (what `kill`, systemd and CI runners send) was
/// reported as "Ctrl-C" and exited 130. It is named as SIGTERM and exits 143 (128 + 15),
/// after writing the outputs as for Ctrl-C.
#[test]
fn sigterm_is_reported_as_sigterm_and_exits_143() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let mut run = Run::start(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "200",
            "--train-subset",
            "2000",
            "--save",
            "m.safetensors",
            "--quiet",
        ],
    );
    let lock = dir.path().join("m.safetensors.lock");
    wait_for(&mut run, "the output lock", LIMIT, || lock.exists());
    run.signal("TERM");
    let out = run.finish(LIMIT);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(143), "stderr: {err}");
    assert!(
        err.contains("SIGTERM: stopping at the next step boundary"),
        "{err}"
    );
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: interrupted at epoch") && last.contains("(SIGTERM)"),
        "{err}"
    );
    assert!(!err.contains("Ctrl-C:"), "{err}");
    assert_eq!(
        metadata(&dir.path().join("m.safetensors"))["wgtrain.interrupted"],
        "true"
    );
    assert!(!lock.exists());
}

/// Starts `wgtrain args` in `dir`, reads the first line of its stdout and closes the pipe,
/// as `wgtrain ... | head -1` does; returns the line and the finished run's output.
fn first_line_then_close(dir: &Path, args: &[&str]) -> (String, Output) {
    use std::io::BufRead;
    let mut run = Run::start(dir, args);
    let stdout = run.0.as_mut().unwrap().stdout.take().unwrap();
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    // The reader is dropped here: the pipe's read end is closed.
    (line, run.finish(LIMIT))
}

/// Regression (issue 25, item 6): `wgtrain train ... --save m.safetensors | head -1`
/// panicked at the second epoch line (`failed printing to stdout: Broken pipe`, exit 101)
/// and never wrote the checkpoint. A closed stdout now only stops the printing: the run
/// finishes, saves and exits 0.
#[test]
fn a_closed_stdout_stops_the_printing_not_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let (line, out) = first_line_then_close(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "4",
            "--train-subset",
            "500",
            "--hidden",
            "16",
            "--metrics",
            "m.jsonl",
            "--save",
            "m.safetensors",
            "--quiet",
        ],
    );
    let err = stderr(&out);
    assert!(line.starts_with("epoch   1"), "{line}");
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("saved m.safetensors"), "{err}");
    let ck = wgtrain::checkpoint::load(&dir.path().join("m.safetensors")).unwrap();
    assert_eq!(ck.spec.to_string(), "784-16-10");
    assert_eq!(
        lines(&dir.path().join("m.jsonl")).len(),
        4,
        "every epoch ran"
    );

    // A sweep lost best.json and its pictures the same way.
    let (line, out) = first_line_then_close(
        dir.path(),
        &[
            "sweep",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "500",
            "--hidden",
            "16",
            "--search",
            "grid",
            "--lr",
            "0.05,0.1",
            "--epochs",
            "2",
            "--pruning",
            "none",
            "--out",
            "sw",
        ],
    );
    let err = stderr(&out);
    assert!(line.starts_with("trial 0"), "{line}");
    assert_eq!(out.status.code(), Some(0), "stderr: {err}");
    for f in ["best.json", "trials.json", "sweep_lr_accuracy.png"] {
        assert!(dir.path().join("sw").join(f).is_file(), "{f}: {err}");
    }
}

/// Issue 10 item 9(b): a second Ctrl-C does not wait for the step boundary. On the GPU
/// path the first one lets the queued command buffers (up to 3 x 64 steps) finish, which
/// takes long enough on lavapipe for the second to land while it drains: the run then ends
/// at once, exit 130, without writing `--save`.
#[test]
fn a_second_ctrl_c_exits_at_once_with_130() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let mut run = Run::start(
        dir.path(),
        &[
            "train",
            "--device",
            "gpu",
            "--kernels",
            "rows",
            "--data",
            &data,
            "--epochs",
            "200",
            "--train-subset",
            "4000",
            "--hidden",
            "16",
            "--batch-size",
            "16",
            "--metrics",
            "m.jsonl",
            "--save",
            "m.safetensors",
            "--quiet",
        ],
    );
    wait_for(&mut run, "the first epoch", LIMIT, || {
        !lines(&dir.path().join("m.jsonl")).is_empty()
    });
    run.sigint();
    std::thread::sleep(Duration::from_millis(20));
    run.sigint();
    let out = run.finish(Duration::from_secs(20));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(130), "stderr: {err}");
    assert!(
        err.contains("second Ctrl-C: exiting now; a state written before (train's --state, a sweep's --out/state.safetensors) is kept whole: run the same command with --resume"),
        "{err}"
    );
    assert!(
        !dir.path().join("m.safetensors").exists(),
        "the run went on to save after the second Ctrl-C: {err}"
    );
}

/// Issue 10 item 10: two runs writing one `--metrics` file both exited 0 and the second
/// truncated the first's metrics. The second is now refused before any work, exit 2,
/// naming the first's PID, and the first's file is untouched; once the first has exited
/// its lock files are gone and the path is free again.
#[test]
fn a_second_writer_of_the_same_outputs_is_refused_naming_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let mut first = Run::start(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "200",
            "--metrics",
            "m.jsonl",
            "--save",
            "m.safetensors",
            "--quiet",
        ],
    );
    let metrics = dir.path().join("m.jsonl");
    wait_for(&mut first, "the first run's first epoch", LIMIT, || {
        !lines(&metrics).is_empty()
    });
    let before = lines(&metrics);
    for (flag, path) in [("--metrics", "m.jsonl"), ("--save", "m.safetensors")] {
        let second = wgtrain_in(
            dir.path(),
            &[
                "train", "--device", "cpu", "--data", &data, "--epochs", "1", flag, path,
            ],
        );
        let err = stderr(&second);
        assert_eq!(second.status.code(), Some(2), "{flag}: {err}");
        assert_eq!(
            err.trim_end(),
            format!(
                "error: {path} is being written by another wgtrain run (PID {}); wait for it or choose another path",
                first.pid()
            )
        );
    }
    let after = lines(&metrics);
    assert!(
        after.len() >= before.len() && after[..before.len()] == before[..],
        "the first run's metrics were changed"
    );
    first.sigint();
    assert_eq!(first.finish(LIMIT).status.code(), Some(130));
    assert!(!dir.path().join("m.jsonl.lock").exists());
    let third = wgtrain_in(
        dir.path(),
        &[
            "train",
            "--device",
            "cpu",
            "--data",
            &data,
            "--epochs",
            "1",
            "--train-subset",
            "1000",
            "--metrics",
            "m.jsonl",
            "--quiet",
        ],
    );
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert_eq!(lines(&metrics).len(), 1);
}

fn trials(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("trials.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<serde_json::Value>>(&t).ok())
        .unwrap_or_default()
}

/// The comparable part of a trial: what it ran and what it measured (not its wall time).
fn outcome(t: &serde_json::Value) -> String {
    let history: Vec<_> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["train_loss"].clone(),
                m["val_loss"].clone(),
                m["val_accuracy"].clone(),
            )
        })
        .collect();
    format!("{} {} {} {:?}", t["id"], t["status"], t["config"], history)
}

/// Issue 10 item 9(a): a sweep interrupted after two finished trials left `--out` empty.
/// Now its files list the finished trials as soon as each finishes, Ctrl-C exits 130 with
/// the command that resumes it, a second writer of `--out` is refused, and `--resume`
/// runs only the rest: the resumed sweep's trials and best trial equal those of the same
/// sweep run without interruption (the CPU path is deterministic for one seed).
#[test]
fn an_interrupted_sweep_keeps_its_finished_trials_and_resumes_to_the_same_result() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let sweep = |out: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "sweep",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "10000",
            "--search",
            "grid",
            "--lr",
            "0.02,0.05,0.1,0.2,0.4",
            "--epochs",
            "3",
            "--pruning",
            "none",
            // One trial at a time, so the sweep is interrupted between trials.
            "--population",
            "1",
            "--quiet",
            "--out",
            out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let args = sweep("out", &[]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = Run::start(dir.path(), &argv);
    let out = dir.path().join("out");
    wait_for(&mut run, "two finished trials", LIMIT, || {
        trials(&out).len() >= 2
    });
    let busy = wgtrain_in(dir.path(), &argv);
    assert_eq!(busy.status.code(), Some(2), "{}", stderr(&busy));
    assert!(
        stderr(&busy).contains(&format!(
            "is being written by another wgtrain run (PID {})",
            run.pid()
        )),
        "{}",
        stderr(&busy)
    );
    // Regression (issue 25, item 4): the lock on `--out` did not cover the files in it,
    // so a `train` run replaced the sweep's best weights and trials.
    let trials_before = std::fs::read(out.join("trials.json")).unwrap();
    for (flag, file) in [
        ("--save", "out/best_trial.safetensors"),
        ("--metrics", "out/trials.json"),
    ] {
        let o = wgtrain_in(
            dir.path(),
            &[
                "train", "--device", "cpu", "--data", &data, "--epochs", "1", flag, file,
            ],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag}: {err}");
        assert!(
            err.contains(&format!(
                "{file} is inside {}, which another wgtrain run (PID {}) is writing",
                out.canonicalize().unwrap().display(),
                run.pid()
            )),
            "{err}"
        );
    }
    let now = std::fs::read(out.join("trials.json")).unwrap();
    assert!(
        now.len() >= trials_before.len(),
        "trials.json was replaced by another run"
    );
    run.sigint();
    let o = run.finish(LIMIT);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    let kept = trials(&out);
    assert!((2..5).contains(&kept.len()), "{} trials kept", kept.len());
    assert!(
        err.contains(&format!(
            "sweep interrupted: {} of 5 trials finished",
            kept.len()
        )),
        "{err}"
    );
    let hint = err
        .lines()
        .find_map(|l| l.strip_prefix("resume with: "))
        .unwrap_or_else(|| panic!("no resume hint: {err}"));
    assert!(
        hint.starts_with("wgtrain sweep ") && hint.ends_with(" --resume"),
        "{hint}"
    );
    for f in ["trials.csv", "leaderboard.csv"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap();
        assert!(text.lines().count() > kept.len(), "{f}: {text}");
    }

    let resumed = wgtrain_in(
        dir.path(),
        &argv.iter().copied().chain(["--resume"]).collect::<Vec<_>>(),
    );
    let err = stderr(&resumed);
    assert_eq!(resumed.status.code(), Some(0), "{err}");
    assert!(
        err.contains(&format!(
            "resuming: {} of 5 trials already finished",
            kept.len()
        )),
        "{err}"
    );
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        !stdout.contains("trial 0 (1/5)"),
        "a finished trial ran again: {stdout}"
    );

    let args = sweep("whole", &[]);
    let whole = wgtrain_in(
        dir.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(whole.status.code(), Some(0), "{}", stderr(&whole));
    let got: Vec<String> = trials(&out).iter().map(outcome).collect();
    let want: Vec<String> = trials(&dir.path().join("whole"))
        .iter()
        .map(outcome)
        .collect();
    assert_eq!(got.len(), 5);
    assert_eq!(got, want);
    let best = |d: PathBuf| -> serde_json::Value {
        let mut b: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("best.json")).unwrap()).unwrap();
        let o = b.as_object_mut().unwrap();
        // The text, and the single-run epoch times each sweep measures on the wall clock.
        for k in [
            "test_method",
            "single_run_epoch_seconds",
            "epoch_seconds_by_batch",
        ] {
            o.remove(k);
        }
        b
    };
    assert_eq!(best(out.clone()), best(dir.path().join("whole")));

    // Resuming with other flags is refused before any work.
    let other = sweep("out", &["--resume"]);
    let mut other: Vec<&str> = other.iter().map(String::as_str).collect();
    let lr = other
        .iter()
        .position(|a| *a == "0.02,0.05,0.1,0.2,0.4")
        .unwrap();
    other[lr] = "0.03,0.05,0.1,0.2,0.4";
    let refused = wgtrain_in(dir.path(), &other);
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains(
            "--lr is 0.03,0.05,0.1,0.2,0.4 but the sweep in out ran with 0.02,0.05,0.1,0.2,0.4 (settings.json)"
        ),
        "{}",
        stderr(&refused)
    );
}

/// Regression (issue 26, item 8): a population sweep interrupted before any trial finished
/// said "0 of 2 trials finished and kept in out (trials.json, trials.csv,
/// leaderboard.csv)" over an empty folder, and its error that "the parameters are those
/// after that step" though none were saved. It now says no trial finished and names only
/// the files written: the settings, and the sweep's state, which holds the running trials
/// where they stopped (issue 25 item 1: they go on with `--resume`).
#[test]
fn a_population_sweep_interrupted_before_any_trial_finished_says_nothing_was_written() {
    let dir = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let out = dir.path().join("out");
    let mut run = Run::start(
        dir.path(),
        &[
            "sweep",
            "--device",
            "cpu",
            "--data",
            &data,
            "--train-subset",
            "5000",
            "--search",
            "grid",
            "--lr",
            "0.05,0.1",
            // Far more epochs than run before the Ctrl-C: no trial can finish first.
            "--epochs",
            "100",
            "--pruning",
            "none",
            "--population",
            "2",
            "--out",
            "out",
        ],
    );
    // The lock is taken after the Ctrl-C handler is installed and before any work.
    wait_for(&mut run, "the sweep's lock", LIMIT, || {
        out.join(".wgtrain.lock").exists()
    });
    run.sigint();
    let o = run.finish(LIMIT);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(
        err.contains(
            "sweep interrupted: none of 2 trials finished; out holds settings.json, \
             state.safetensors; trials 0, 1, running, were saved where they stopped and go on \
             with --resume"
        ),
        "{err}"
    );
    assert!(!err.contains("the parameters"), "{err}");
    // Only the settings the sweep records when it starts (issue 25 item 3) and its state
    // (item 1) are left.
    let mut left: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["settings.json", "state.safetensors"], "{left:?}");
}
