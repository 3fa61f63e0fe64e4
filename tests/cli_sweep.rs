//! The command line of `sweep` (grid, random, populations, PBT) and `plot` as a user
//! meets it: flags a sweep would ignore or could not honour are refused with exit 2 and one
//! error line; unreadable sweep files name what is wrong.

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::*;

/// Regression (issue 10, item 14): `sweep --quiet` printed two lines per trial (its
/// settings, then its outcome) while its help promised one.
#[test]
fn sweep_quiet_prints_one_line_per_trial() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--quiet",
        "--train-subset",
        "600",
        "--search",
        "grid",
        "--lr",
        "0.01,0.1",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let trial_lines: Vec<&str> = stdout.lines().filter(|l| l.starts_with("trial ")).collect();
    assert_eq!(trial_lines.len(), 2, "{stdout}");
    for (i, l) in trial_lines.iter().enumerate() {
        assert!(l.starts_with(&format!("trial {i} ({}/2): ", i + 1)), "{l}");
        assert!(l.contains(": complete: val acc "), "{l}");
    }
    let indented = ["  epoch", "  complete", "  pruned", "  diverged"];
    assert!(
        !stdout
            .lines()
            .any(|l| indented.iter().any(|p| l.starts_with(p))),
        "no per-epoch or outcome lines under --quiet: {stdout}"
    );
}

#[test]
fn sweep_refuses_a_population_of_0_and_a_halving_eta_below_2() {
    assert_usage_error(&["sweep", "--population", "0"], "--population");
    let err = stderr(&wgtrain(&["sweep", "--population", "0"]));
    assert!(
        err.contains("must be at least 1") && err.contains("1 runs them one at a time"),
        "{err}"
    );
    assert_usage_error(&["sweep", "--halving-eta", "1"], "--halving-eta");
    assert_usage_error(&["sweep", "--pruning", "hyperband"], "--pruning");
}

/// Regression: `--halving-eta` / `--halving-min-epochs` without `--pruning halving`, and
/// `--prune-warmup` with `--pruning none`, were silently ignored. A pruning flag the chosen
/// rule does not read is refused, naming the rule it applies to.
#[test]
fn sweep_refuses_pruning_flags_the_chosen_rule_ignores() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let out = out.to_str().unwrap();
    let sweep = |extra: &[&str], needle: &str| {
        let mut args = vec!["sweep", "--out", out];
        args.extend_from_slice(extra);
        assert_usage_error(&args, needle);
    };
    sweep(&["--halving-eta", "4"], "applies to --pruning halving only");
    sweep(
        &["--pruning", "median", "--halving-min-epochs", "2"],
        "--pruning halving",
    );
    sweep(
        &["--pruning", "none", "--halving-eta", "2"],
        "--pruning halving",
    );
    sweep(
        &["--pruning", "none", "--prune-warmup", "2"],
        "applies to --pruning median only, and --pruning is none",
    );
    sweep(
        &["--pruning", "halving", "--prune-warmup", "2"],
        "--prune-warmup",
    );
    sweep(
        &["--pruning", "none", "--prune-min-trials", "2"],
        "--pruning median or halving",
    );
    sweep(
        &["--search", "pbt", "--halving-eta", "2"],
        "does not apply to --search pbt",
    );
    // The defaults are still shown by --help.
    let help = String::from_utf8_lossy(&wgtrain(&["sweep", "--help"]).stdout).into_owned();
    for d in ["default 1", "default 3"] {
        assert!(help.contains(d), "{help}");
    }
}

/// Regression: `sweep --search random` over a space where every hyperparameter has one
/// value ran 12 identical trials. Refused, saying to widen a range or use --trials 1.
#[test]
fn a_random_sweep_over_a_single_point_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let out = out.to_str().unwrap();
    assert_usage_error(
        &["sweep", "--out", out, "--lr", "0.1"],
        "all 12 trials would be identical; widen a range (e.g. --lr 1e-3:1) or use --trials 1",
    );
    assert_usage_error(
        &[
            "sweep", "--out", out, "--search", "random", "--lr", "0.1,0.1", "--trials", "3",
        ],
        "all 3 trials would be identical",
    );
    // One trial of that point, or a second value anywhere, is a sweep.
    let dir = mnist_dir();
    let run = |extra: &[&str]| {
        let mut args = vec![
            "sweep",
            "--out",
            out,
            "--data",
            &dir,
            "--device",
            "cpu",
            "--lr",
            "0.1",
            "--train-subset",
            "300",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--quiet",
        ];
        args.extend_from_slice(extra);
        let o = wgtrain_env(&args, &[("XDG_RUNTIME_DIR", "/tmp")]);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    run(&["--trials", "1"]);
    // The same folder: the first sweep is replaced on purpose.
    run(&["--trials", "2", "--momentum", "0,0.9", "--overwrite"]);
}

/// Regression: `wgtrain plot DIR/trials.json` (a sweep's trials file instead of its
/// folder) said "not an epoch record"; it now says to pass the folder.
#[test]
fn plot_of_a_sweeps_trials_file_says_to_pass_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let out = out.to_str().unwrap();
    let dir = mnist_dir();
    let o = wgtrain_env(
        &[
            "sweep",
            "--out",
            out,
            "--data",
            &dir,
            "--device",
            "cpu",
            "--lr",
            "0.1",
            "--trials",
            "1",
            "--train-subset",
            "300",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--quiet",
        ],
        &[("XDG_RUNTIME_DIR", "/tmp")],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let trials = format!("{out}/trials.json");
    let plots = tmp.path().join("plots");
    let plots = plots.to_str().unwrap();
    assert_usage_error(
        &["plot", &trials, "--out", plots],
        &format!(
            "is a sweep's trials file, not a train --metrics file; pass the sweep's folder instead: wgtrain plot {out}"
        ),
    );
    let o = wgtrain(&["plot", out, "--out", plots]);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Regression: `sweep --resume` on a truncated `trials.json` said only
/// "invalid resume = DIR/trials.json: DIR/trials.json", not what was wrong with it, and
/// `train --hparam-schedule` on a missing file or a directory the same.
#[test]
fn unreadable_trials_and_schedule_files_name_what_is_wrong() {
    assert_usage_error(
        &["train", "--hparam-schedule", "/nonexistent/s.json"],
        "/nonexistent/s.json: No such file or directory",
    );
    assert_usage_error(&["train", "--hparam-schedule", "/"], "Is a directory");
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("trials.json"), "[{\"id\": 0, \"conf").unwrap();
    let data = mnist_dir();
    let out = out.to_str().unwrap();
    assert_usage_error(
        &[
            "sweep",
            "--device",
            "cpu",
            "--data",
            &data,
            "--lr",
            "0.1",
            "--trials",
            "1",
            "--epochs",
            "1",
            "--train-subset",
            "500",
            "--out",
            out,
            "--resume",
        ],
        "cannot be read as this sweep's finished trials (EOF while parsing",
    );
}

/// Regression: `sweep --search pbt` with `--pbt-interval` (2 by default) not below
/// `--epochs` never exploited, so its members trained as independent trials under a PBT
/// report; and `--pruning halving|none` was ignored by PBT.
#[test]
fn pbt_refuses_an_interval_with_no_exploit_step_and_pruning() {
    let pbt = [
        "sweep",
        "--device",
        "cpu",
        "--search",
        "pbt",
        "--population",
        "2",
    ];
    let with = |extra: &[&'static str]| [&pbt[..], extra].concat();
    assert_usage_error(
        &with(&["--epochs", "4", "--pbt-interval", "4"]),
        "no exploit step would happen",
    );
    assert_usage_error(
        &with(&["--epochs", "2"]),
        "(the default) is not below --epochs 2",
    );
    assert_usage_error(
        &with(&["--epochs", "4", "--pruning", "halving"]),
        "does not apply to --search pbt",
    );
}

/// A tiny finished sweep (2 trials, 1 epoch on 300 samples) into `out`, with `extra` flags.
fn tiny_sweep(data: &str, out: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = tiny_sweep_args(data, out.to_str().unwrap());
    args.extend(extra.iter().map(|s| s.to_string()));
    wgtrain(&strs(&args))
}

/// Regression (issue 25, item 3; issue 26, item 10): `sweep --resume` with another
/// `--train-subset`, `--seed`, `--val-split`, `--normalize` or `--lr-schedule` said
/// "resuming: 2 of 6 trials already finished" and ranked incomparable trials together.
/// `--out/settings.json` records every flag that decides what the trials compute and a
/// fingerprint of the data; a resume that differs is refused (exit 2, one line) naming the
/// flag and both values, or saying the data differ, and the sweep's files are kept.
#[test]
fn regression_sweep_resume_with_other_settings_names_the_flag_and_both_values() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sw");
    let data = mnist_dir();
    let o = tiny_sweep(&data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let trials = std::fs::read(out.join("trials.json")).unwrap();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--train-subset", "400"],
            "--train-subset is 400 but the sweep in",
        ),
        (&["--seed", "2"], "--seed is 2 but the sweep in"),
        (
            &["--val-split", "0.2"],
            "--val-split is 0.2 but the sweep in",
        ),
        (&["--normalize"], "--normalize is true but the sweep in"),
        (
            &["--lr-schedule", "cosine"],
            "--lr-schedule is cosine but the sweep in",
        ),
        (
            &["--no-decay-bias"],
            "--no-decay-bias is true but the sweep in",
        ),
    ];
    for (extra, needle) in cases {
        // The changed flag replaces the tiny sweep's own value.
        let mut args: Vec<&str> = vec![
            "sweep",
            "--device",
            "cpu",
            "--data",
            &data,
            "--hidden",
            "8",
            "--search",
            "grid",
            "--lr",
            "0.05,0.1",
            "--epochs",
            "1",
            "--pruning",
            "none",
            "--quiet",
            "--resume",
            "--out",
        ];
        args.push(out.to_str().unwrap());
        if !extra.contains(&"--train-subset") {
            args.extend(["--train-subset", "300"]);
        }
        args.extend(extra);
        let o = wgtrain(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{extra:?}: {err}");
        let was = match extra[0] {
            "--train-subset" => "ran with 300 (settings.json)",
            "--seed" => "ran with 1 (settings.json)",
            "--val-split" => "ran with 0.1 (settings.json)",
            "--lr-schedule" => "ran with constant (settings.json)",
            _ => "ran with false (settings.json)",
        };
        assert!(err.contains(was), "{extra:?}: {err}");
        assert_eq!(error_lines(&err), 1, "{err}");
    }
    // The data are checked once they have loaded, so only for a sweep with something left
    // to do (a finished one is refused before): without best.json, as one interrupted
    // before its last outputs. Other data under the same flags: the training files
    // replaced by the test files.
    std::fs::remove_file(out.join("best.json")).unwrap();
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    for (to, from) in [
        ("train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        ("train-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"),
        ("t10k-labels-idx1-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        std::fs::copy(std::path::Path::new(&data).join(from), other.join(to)).unwrap();
    }
    let o = tiny_sweep(other.to_str().unwrap(), &out, &["--resume"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the data are 300 training and 10000 test samples")
            && err.contains("but the sweep in"),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("trials.json")).unwrap(), trials);
    // The same flags and data resume.
    let o = tiny_sweep(&data, &out, &["--resume"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("resuming: 2 of 2 trials already finished"));
}

/// Regression (issue 25, item 7): a second sweep into a finished sweep's folder (the
/// default `--out sweep` makes two sweeps meet there) replaced it silently. It is refused
/// (exit 2) naming `--overwrite` (and, for an unfinished one, `--resume`: a finished sweep
/// has nothing left to run), with the first sweep's files untouched;
/// `--overwrite` replaces it, removing the first sweep's files and nothing else.
#[test]
fn regression_a_new_sweep_into_a_sweeps_folder_needs_resume_or_overwrite() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let data = mnist_dir();
    let o = tiny_sweep(&data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(out.join("notes.txt"), "mine").unwrap();
    let trials = std::fs::read(out.join("trials.json")).unwrap();
    let o = tiny_sweep(&data, &out, &["--seed", "2"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "invalid out = {}: holds a finished sweep (2 trials in trials.json); give --overwrite to replace it, or another --out",
            out.display()
        )),
        "{err}"
    );
    assert_eq!(std::fs::read(out.join("trials.json")).unwrap(), trials);
    // An interrupted sweep's folder (no best.json yet) is refused the same way, and offers
    // --resume.
    std::fs::remove_file(out.join("best.json")).unwrap();
    let o = tiny_sweep(&data, &out, &["--seed", "2"]);
    assert!(
        stderr(&o).contains("holds an unfinished sweep (2 trials in trials.json); give --resume to go on with it, --overwrite to replace it, or another --out"),
        "{}",
        stderr(&o)
    );
    // --overwrite replaces it with a sweep of one trial.
    let o = wgtrain(&[
        "sweep",
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--lr",
        "0.1",
        "--trials",
        "1",
        "--epochs",
        "1",
        "--quiet",
        "--overwrite",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(
            "--overwrite: removed the files of an unfinished sweep (2 trials in trials.json)"
        ),
        "{err}"
    );
    let now: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("trials.json")).unwrap()).unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(
        std::fs::read_to_string(out.join("notes.txt")).unwrap(),
        "mine"
    );
}

/// Two epoch records as `train --metrics` writes them.
fn write_metrics(path: &std::path::Path, accuracy: f64) {
    let line = |epoch: usize| {
        format!(
            r#"{{"epoch":{epoch},"lr":0.1,"train_loss":0.5,"train_accuracy":{accuracy},"val_loss":0.4,"val_accuracy":{accuracy},"epoch_seconds":1.0}}"#
        )
    };
    std::fs::write(path, format!("{}\n{}\n", line(1), line(2))).unwrap();
}

/// Issue 26, item 5: `plot a.jsonl b.jsonl` draws both runs in one picture, labelled by
/// their file names; a folder among several inputs is refused.
#[test]
fn plot_of_several_metrics_files_draws_them_in_one_picture_labelled_by_file_name() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (
        tmp.path().join("lr0.1.jsonl"),
        tmp.path().join("lr0.3.jsonl"),
    );
    write_metrics(&a, 0.9);
    write_metrics(&b, 0.8);
    let plots = tmp.path().join("plots");
    let o = wgtrain(&[
        "plot",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--out",
        plots.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let svg = std::fs::read_to_string(plots.join("learning_curves.svg")).unwrap();
    for label in ["lr0.1: train", "lr0.1: validation", "lr0.3: validation"] {
        assert!(svg.contains(label), "the picture lacks {label:?}");
    }
    assert!(plots.join("learning_curves.png").is_file());
    assert_usage_error(
        &[
            "plot",
            a.to_str().unwrap(),
            tmp.path().to_str().unwrap(),
            "--out",
            plots.to_str().unwrap(),
        ],
        "is a folder: plot takes one sweep folder alone",
    );
}

/// Regression (issue 26, item 11): `plot best.safetensors` said "stream did not contain
/// valid UTF-8"; it now says the file is a checkpoint, not a metrics file or sweep folder.
#[test]
fn plot_of_a_checkpoint_says_it_is_not_a_metrics_file() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("best.safetensors");
    let spec = wgtrain::model::MlpSpec::new(4, &[3], 2).unwrap();
    wgtrain::checkpoint::save(
        &model,
        &spec,
        &spec.init(1),
        wgtrain::model::Normalization::UNIT,
    )
    .unwrap();
    let plots = tmp.path().join("plots");
    assert_usage_error(
        &[
            "plot",
            model.to_str().unwrap(),
            "--out",
            plots.to_str().unwrap(),
        ],
        "is a checkpoint (safetensors), not a train --metrics file or a sweep folder",
    );
}

/// Issue 25 (fault findings): a sweep refused for its arguments or data left behind the
/// empty `--out` folder it had made for its lock. A sweep refused after the folder is made
/// (`--val-split 0`, a `--pruning` flag the rule ignores), and a PBT run refused once its
/// data loaded (a minibatch larger than the training set) or for one member, leave no
/// folder; a folder that existed before stays.
#[test]
fn a_refused_sweep_leaves_no_empty_out_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let out = tmp.path().join("sw");
    let o_str = out.to_str().unwrap();
    let pbt = [
        "sweep",
        "--device",
        "cpu",
        "--data",
        &data,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--search",
        "pbt",
        "--population",
        "2",
        "--epochs",
        "2",
        "--pbt-interval",
        "1",
        "--batch-size",
        "512",
        "--out",
        o_str,
    ];
    for (o, needle) in [
        (
            tiny_sweep(&data, &out, &["--val-split", "0"]),
            "a sweep ranks trials on a validation split",
        ),
        (
            tiny_sweep(&data, &out, &["--halving-eta", "3"]),
            "applies to --pruning halving only",
        ),
        (
            wgtrain(&pbt),
            "must be at most the number of training samples",
        ),
        // A one-member PBT run was refused only after --out recorded its settings, so the
        // corrected command was told to --resume it (fault attack, second round).
        (
            wgtrain(&[&pbt[..12], &["1"], &pbt[13..]].concat()),
            "PBT needs at least 2 members",
        ),
    ] {
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains(needle), "{err}");
        assert!(
            !out.exists(),
            "{needle}: the refused sweep left {}",
            out.display()
        );
    }
    std::fs::create_dir(&out).unwrap();
    let o = tiny_sweep(&data, &out, &["--val-split", "0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(out.is_dir(), "a folder the sweep did not make is kept");
}

/// Fault attack, second round: with its `settings.json` removed (as the corrupt-file
/// message once suggested), an interrupted sweep or PBT run resumed with other data or
/// settings, unchecked. A state without its settings is now refused, naming both fixes.
#[test]
fn a_state_without_its_settings_is_not_resumed() {
    let tmp = tempfile::tempdir().unwrap();
    let data = mnist_dir();
    let out = tmp.path().join("sw");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("state.safetensors"), b"a state").unwrap();
    let o = tiny_sweep(&data, &out, &["--resume"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("state.safetensors but no settings.json")
            && err.contains("put settings.json back, or start again with --overwrite"),
        "{err}"
    );
    assert!(out.join("state.safetensors").is_file(), "the state is kept");
}
