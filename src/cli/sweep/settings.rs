//! What a sweep's `--out` directory records about the sweep that writes it, and the two
//! checks that rest on it:
//!
//! - `settings.json`: every flag that decides what the trials train on and how they are
//!   trained, pruned and ranked, and a fingerprint of the data. `--resume` refuses a run
//!   whose flags or data differ, naming the flag and both values: its trials would be
//!   ranked with trials of another sweep.
//! - A new sweep into a directory that holds one (finished or interrupted: the default
//!   `--out` is `sweep`, so two sweeps without `--out` meet there) is refused unless
//!   `--resume` goes on with it or `--overwrite` replaces it (its files removed first).
//!
//! Not recorded, since they do not change what a trial computes: the outputs (`--out`,
//! `--save-best`, `--tensorboard`, `--top`, `--quiet`), `--resume`, `--overwrite`,
//! `--no-download`, the device flags (the CPU and GPU paths compute the same trials to
//! rounding; the path a sweep trains on is recorded apart, and a resume on the other one is
//! warned of, as `train`'s), `--data` (the data's fingerprint is recorded instead, so a moved copy
//! resumes), and `--population` when nothing is pruned (a population sweep's trials then
//! equal the sequential sweep's; with pruning, it decides which trials are pruned, and is
//! recorded).

use std::path::Path;

use anyhow::Result;

use wgtrain::data::Mnist;
use wgtrain::tune::space::{HiddenChoices, Values};

use wgtrain::tune::pbt::{
    DEFAULT_INTERVAL, DEFAULT_POPULATION, DEFAULT_QUANTILE, DEFAULT_RESAMPLE,
};
use wgtrain::tune::space::DEFAULT_RANDOM_TRIALS;

use super::super::common::{
    Flags, NOT_GIVEN, Recorded, choice, data_fingerprint, first_difference, opt,
    other_path_warning, schedule_flags, sgd_flags, usage,
};
use super::{
    DEFAULT_HALVING_ETA, DEFAULT_HALVING_MIN_EPOCHS, DEFAULT_PRUNE_MIN_TRIALS,
    DEFAULT_PRUNE_WARMUP, PruningChoice, SearchChoice, SweepArgs,
};

/// The file in `--out` that records the sweep's settings.
pub(super) const SETTINGS_FILE: &str = "settings.json";

/// Every file a sweep or a PBT run writes into `--out`; `--overwrite` removes these (and
/// nothing else) before the new sweep starts.
const SWEEP_FILES: &[&str] = &[
    SETTINGS_FILE,
    "trials.json",
    "trials.csv",
    "leaderboard.csv",
    "best.json",
    "best_trial.safetensors",
    super::state::STATE_FILE,
    "sweep_lr_accuracy.png",
    "sweep_lr_accuracy.svg",
    "sweep_wd_accuracy.png",
    "sweep_wd_accuracy.svg",
    "sweep_batch_accuracy.png",
    "sweep_batch_accuracy.svg",
    "sweep_momentum_accuracy.png",
    "sweep_momentum_accuracy.svg",
    "sweep_time_accuracy.png",
    "sweep_time_accuracy.svg",
    "sweep_top_trials.png",
    "sweep_top_trials.svg",
    "pbt.json",
    "pbt_members.csv",
    "pbt_lineage.csv",
    "pbt_best_schedule.json",
    "pbt_val_accuracy.png",
    "pbt_val_accuracy.svg",
];

/// `v` as a flag takes it: `0.01,0.1` or `1e-3:1`.
fn values(v: &Values) -> String {
    match v {
        Values::List(l) => l.iter().map(f64::to_string).collect::<Vec<_>>().join(","),
        Values::LogUniform { lo, hi } => format!("{lo}:{hi}"),
    }
}

/// `--hidden` as typed: `256,512-256,none`.
fn hidden(h: &HiddenChoices) -> String {
    h.0.iter()
        .map(|c| {
            if c.is_empty() {
                "none".to_string()
            } else {
                c.iter().map(usize::to_string).collect::<Vec<_>>().join("-")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The flags of `a` that decide what its trials compute, in `--help` order, as
/// (flag without dashes, value as typed or [`NOT_GIVEN`]); booleans as `true`/`false`. A
/// flag the run reads at a default when it is left out is recorded at the value it runs
/// with (`--trials 12` of a random search, `--prune-warmup 1` with the median rule, PBT's
/// `--population 8`, the schedule's options: [`schedule_flags`]), so that giving the
/// default on `--resume` is the same run; a flag the run does not read is refused when
/// given, and recorded as [`NOT_GIVEN`].
fn flags_of(a: &SweepArgs) -> Flags {
    let pbt = a.search == SearchChoice::Pbt;
    let mut flags = Flags::from(vec![
        ("dataset", opt(&a.data.dataset)),
        ("normalize", a.data.normalize.to_string()),
        ("classes", opt(&a.data.classes)),
        ("lr", values(&a.lr)),
        ("weight-decay", values(&a.weight_decay)),
        ("batch-size", values(&a.batch_size)),
        ("momentum", values(&a.momentum)),
        ("hidden", hidden(&a.hidden)),
        ("epochs", values(&a.epochs)),
        ("search", choice(a.search)),
    ]);
    if a.search == SearchChoice::Random && a.configs.is_none() {
        flags.push_or_default("trials", a.trials, DEFAULT_RANDOM_TRIALS);
    } else {
        // A grid's default is the whole grid, a count that depends on the other flags: a
        // --trials at least as large runs the same trials but is recorded as given.
        // --configs and PBT refuse --trials.
        flags.push("trials", opt(&a.trials));
    }
    flags.push(
        "configs",
        a.configs
            .as_ref()
            .map_or(NOT_GIVEN.into(), |p| p.display().to_string()),
    );
    flags.push("grid-points", a.grid_points);
    flags.push("val-split", a.val_split);
    flags.push("train-subset", opt(&a.train_subset));
    flags.push("pruning", choice(a.pruning));
    // The pruning flags the rule reads, at its defaults (PBT prunes nothing, and refuses
    // them).
    let (median, halving) = match (pbt, a.pruning) {
        (false, PruningChoice::Median) => (true, false),
        (false, PruningChoice::Halving) => (false, true),
        _ => (false, false),
    };
    let mut rule = |flag, given: Option<usize>, reads: bool, default: usize| match reads {
        true => flags.push_or_default(flag, given, default),
        false => flags.push(flag, opt(&given)),
    };
    rule("prune-warmup", a.prune_warmup, median, DEFAULT_PRUNE_WARMUP);
    rule(
        "prune-min-trials",
        a.prune_min_trials,
        median || halving,
        DEFAULT_PRUNE_MIN_TRIALS,
    );
    rule("halving-eta", a.halving_eta, halving, DEFAULT_HALVING_ETA);
    rule(
        "halving-min-epochs",
        a.halving_min_epochs,
        halving,
        DEFAULT_HALVING_MIN_EPOCHS,
    );
    if pbt {
        flags.push_or_default("population", a.population, DEFAULT_POPULATION);
    } else if a.pruning == PruningChoice::None {
        flags.push("population", "any (nothing is pruned)");
    } else {
        // Without the flag, as many as fit the device: not one value to record.
        flags.push("population", opt(&a.population));
    }
    flags.append(Flags::from(sgd_flags(&a.sgd)));
    flags.push("seed", a.seed);
    // --t-max and --max-lr default to each trial's epochs and lr: recorded as given.
    flags.append(schedule_flags(&a.schedule, None, None));
    // A PBT run records the values it runs with, so that giving a default explicitly on
    // --resume (`--pbt-quantile 0.25`) is the same run.
    let mut pbt_flag = |flag, given: Option<String>, default: String| match pbt {
        true => flags.push_or_default(flag, given, default),
        false => flags.push(flag, opt(&given)),
    };
    pbt_flag(
        "pbt-interval",
        a.pbt_interval.map(|v| v.to_string()),
        DEFAULT_INTERVAL.to_string(),
    );
    pbt_flag(
        "pbt-quantile",
        a.pbt_quantile.map(|v| v.to_string()),
        DEFAULT_QUANTILE.to_string(),
    );
    pbt_flag(
        "pbt-resample",
        a.pbt_resample.map(|v| v.to_string()),
        DEFAULT_RESAMPLE.to_string(),
    );
    flags
}

/// The flags of `sweep` that [`flags_of`] leaves out, on purpose (see the module docs).
#[cfg(test)]
const NOT_RECORDED: &[&str] = &[
    "device",
    "backend",
    "adapter",
    "kernels",
    "fuse",
    "data",
    "no_download",
    "out",
    "top",
    "save_best",
    "quiet",
    "tensorboard",
    "resume",
    "overwrite",
];

/// What `dir` holds of an earlier sweep: `None` when none of its files is there, else a
/// few words for the refusal (`a finished sweep (6 trials in trials.json)`) and whether
/// `--resume` goes on with it (a finished sweep or PBT run has nothing to go on with, unless
/// it kept its state because an output failed).
fn earlier_sweep(dir: &Path) -> Option<(String, bool)> {
    let present: Vec<&str> = SWEEP_FILES
        .iter()
        .copied()
        .filter(|f| dir.join(f).exists())
        .collect();
    if present.is_empty() {
        return None;
    }
    let finished = present.contains(&"best.json");
    let trials = wgtrain::tune::sweep::read_trials(&dir.join("trials.json"))
        .map(|t| format!(" ({} trials in trials.json)", t.len()))
        .unwrap_or_default();
    // A PBT run stopped before its first epoch ended has written no pbt.json yet.
    let recorded_pbt = read(&dir.join(SETTINGS_FILE))
        .ok()
        .flatten()
        .is_some_and(|r| r.flags.get("search").is_some_and(|s| s == "pbt"));
    let pbt = recorded_pbt || present.contains(&"pbt.json");
    // A finished run has nothing to go on with, unless its last outputs failed: then its
    // state is kept, and going on writes them.
    let state = present.contains(&super::state::STATE_FILE);
    let (what, resumable) = match (pbt, finished) {
        (true, true) => ("a finished PBT run", state),
        (true, false) => ("an interrupted PBT run", true),
        (false, true) => ("a finished sweep", state),
        (false, false) => ("an unfinished sweep", true),
    };
    Some((format!("{what}{trials}"), resumable))
}

/// Before anything is created or loaded: with `--resume`, `--out` must hold a sweep (with
/// `--search pbt`, a PBT run) to go on with. A mistyped folder would otherwise start a new
/// sweep there while the user believes the old one goes on. A folder holding only files a
/// sweep also writes (a stray `leaderboard.csv`), with nothing a resume goes on from
/// (settings, state, finished trials), is refused too: a resume there would start a whole
/// new sweep. (A file as `--out` is left to the output check, which names it.)
///
/// # Errors
/// A usage error (exit 2) naming the folder and the fix.
pub(in crate::cli) fn check_resume_target(a: &SweepArgs) -> Result<()> {
    if !a.resume {
        return Ok(());
    }
    let out = &a.out;
    let state = super::state::STATE_FILE;
    // The files a resume goes on from, or that make it refuse naming what the folder holds
    // (a finished sweep's best.json, a PBT run's pbt.json): a folder with none of them holds
    // no run to go on with, whatever else of a sweep's files it holds.
    let (run, files, goes_on_from) = match a.search {
        SearchChoice::Pbt => (
            "PBT run",
            format!("{SETTINGS_FILE} or {state}"),
            [SETTINGS_FILE, state, "pbt.json"],
        ),
        _ => (
            "sweep",
            SETTINGS_FILE.to_string(),
            [SETTINGS_FILE, state, "trials.json"],
        ),
    };
    let new = if run == "sweep" { "sweep" } else { "run" };
    let (problem, fix) = match std::fs::metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (
            format!("no such folder, so there is no {run} to go on with"),
            format!("drop --resume to start a new {new}"),
        ),
        Ok(m) if m.is_dir() && !goes_on_from.iter().any(|f| out.join(f).exists()) => {
            let stray: Vec<&str> = SWEEP_FILES
                .iter()
                .copied()
                .filter(|f| out.join(f).exists())
                .collect();
            if stray.is_empty() {
                (
                    format!("holds no {run} to go on with (no {files})"),
                    format!("drop --resume to start a new {new}"),
                )
            } else {
                // Without --resume such a folder is refused as an earlier sweep: only
                // --overwrite starts a new one there.
                let stray = stray.join(", ");
                (
                    format!("holds no {run} to go on with (no {files}, only {stray})"),
                    format!(
                        "give --overwrite instead of --resume to start a new {new} there (it removes {stray})"
                    ),
                )
            }
        }
        _ => return Ok(()),
    };
    Err(usage(
        "resume",
        out.display(),
        format!("{problem}; check the path (--out), or {fix}"),
    ))
}

/// Before any work: refuses a sweep into a directory that holds another sweep unless
/// `--resume` or `--overwrite` says what to do with it, and with `--resume` refuses flags
/// that differ from the recorded ones, naming the flag and both values. (`--overwrite`
/// removes the other sweep's files only once the data has loaded, in [`record`]: a run
/// refused before then loses nothing.)
///
/// # Errors
/// A usage error (exit 2).
pub(in crate::cli) fn check_out(a: &SweepArgs) -> Result<()> {
    let out = &a.out;
    let Some((earlier, resumable)) = earlier_sweep(out) else {
        return Ok(());
    };
    if a.overwrite {
        return check_overwritable(out);
    }
    if !a.resume {
        let fix = if resumable {
            "give --resume to go on with it, --overwrite to replace it, or another --out"
        } else {
            "give --overwrite to replace it, or another --out"
        };
        return Err(usage(
            "out",
            out.display(),
            format!("holds {earlier}; {fix}"),
        ));
    }
    let path = out.join(SETTINGS_FILE);
    let Some(recorded) = read(&path)? else {
        // Every wgtrain that writes a state also writes settings.json: without it the
        // state's data and settings cannot be checked, and a resume would go on with
        // whatever this run was given.
        let state = super::state::path(out);
        if state.is_file() {
            return Err(usage(
                "resume",
                out.display(),
                format!(
                    "holds {} but no {SETTINGS_FILE}, so the settings and data it was trained \
                     with cannot be checked against this run's; put {SETTINGS_FILE} back, or \
                     start again with --overwrite",
                    state.display()
                ),
            ));
        }
        note!(
            "warning: {} has no {SETTINGS_FILE} (written by an older wgtrain): only the finished trials' own hyperparameters can be checked against this run's",
            out.display()
        );
        return Ok(());
    };
    if let Some(d) = first_difference(&recorded.flags, &flags_of(a)) {
        return Err(usage(
            "resume",
            out.display(),
            format!(
                "--{} is {} but the sweep in {} ran with {} ({SETTINGS_FILE}); its trials would be ranked with this run's; {}, or choose another --out",
                d.flag,
                d.now,
                out.display(),
                d.was,
                d.fix
            ),
        ));
    }
    Ok(())
}

/// Before `--overwrite` removes anything: a folder in the place of one of a sweep's files
/// ([`SWEEP_FILES`]) is refused. `--overwrite` removes files only, so the new sweep would
/// fail to write there after the old sweep's files were gone.
///
/// # Errors
/// A usage error (exit 2) naming the folder and the fix.
fn check_overwritable(out: &Path) -> Result<()> {
    let folder = SWEEP_FILES
        .iter()
        .map(|f| out.join(f))
        .find(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.is_dir()));
    match folder {
        None => Ok(()),
        Some(p) => Err(usage(
            "overwrite",
            p.display(),
            "is a folder where a sweep writes a file, and --overwrite removes a sweep's files, never a folder; move it out of the way, or choose another --out",
        )),
    }
}

/// With `--resume`, before [`record`] replaces `settings.json`: warns when the sweep (or PBT
/// run) trained on the other path than `device` (`cpu` or `gpu`), in `train`'s words. Its
/// trials go on correctly, but equal an uninterrupted sweep's to rounding only. Nothing is
/// said for a `settings.json` of an older wgtrain, which did not record the path.
pub(in crate::cli) fn warn_other_path(a: &SweepArgs, device: &str) {
    let Ok(Some(Recorded {
        device: Some(was), ..
    })) = read(&a.out.join(SETTINGS_FILE))
    else {
        return;
    };
    let run = match a.search {
        SearchChoice::Pbt => format!("the PBT run in {}", a.out.display()),
        _ => format!("the sweep in {}", a.out.display()),
    };
    if let Some(w) = other_path_warning(&run, &was, device) {
        note!("{w}");
    }
}

/// Once the data is loaded, before any trial: with `--resume`, refuses data other than the
/// recorded sweep's; with `--overwrite`, removes the earlier sweep's files
/// ([`SWEEP_FILES`], nothing else); then records this sweep's settings in `settings.json`
/// (atomically), with the path it trains on (`device`: `cpu` or `gpu`).
///
/// # Errors
/// A usage error (exit 2) for other data; an I/O error for a file that cannot be removed;
/// [`wgtrain::Error::Output`] when the settings cannot be written.
pub(in crate::cli) fn record(a: &SweepArgs, mnist: &Mnist, device: &str) -> Result<()> {
    let path = a.out.join(SETTINGS_FILE);
    let data = data_fingerprint(mnist);
    if a.resume {
        if let Some(r) = read(&path)?.filter(|r| r.data != data) {
            return Err(usage(
                "resume",
                a.out.display(),
                format!(
                    "the data are {data}, but the sweep in {} trained on {} ({SETTINGS_FILE}); resume with its data (--data, --dataset, --train-subset, --classes), or choose another --out",
                    a.out.display(),
                    r.data
                ),
            ));
        }
    }
    if a.overwrite {
        if let Some((earlier, _)) = earlier_sweep(&a.out) {
            let mut removed = Vec::new();
            for f in SWEEP_FILES {
                let p = a.out.join(f);
                if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_file()) {
                    std::fs::remove_file(&p).map_err(|e| {
                        anyhow::anyhow!("--overwrite: cannot remove {}: {e}", p.display())
                    })?;
                    removed.push(*f);
                }
            }
            note!(
                "--overwrite: removed the files of {earlier} from {} ({})",
                a.out.display(),
                removed.join(", ")
            );
        }
    }
    let text = serde_json::to_string_pretty(&Recorded::new(&flags_of(a), mnist).on(device))?;
    wgtrain::output::write_atomically(&path, (text + "\n").as_bytes())?;
    Ok(())
}

/// `settings.json`, when it exists.
///
/// # Errors
/// A usage error (exit 2) for a file that cannot be read as settings.
fn read(path: &Path) -> Result<Option<Recorded>> {
    // Read as bytes: text that is not UTF-8 is a damaged file, named as one below.
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            // A folder in its place, say: --overwrite would not remove it either.
            return Err(usage(
                "resume",
                path.display(),
                format!(
                    "cannot be read ({e}), so the sweep's settings cannot be checked against this run's; put the sweep's settings file back there, or choose another --out"
                ),
            ));
        }
    };
    let damaged = |why: String| {
        usage(
            "resume",
            path.display(),
            format!(
                "is not a sweep's settings file ({why}); restore it, or start again with --overwrite, or choose another --out"
            ),
        )
    };
    let text = String::from_utf8(bytes).map_err(|e| damaged(format!("not UTF-8 text: {e}")))?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| damaged(e.to_string()))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// A flag added to `sweep` must be recorded or left out on purpose: every argument is
    /// in one list or the other, and no name is in both.
    #[test]
    fn every_sweep_flag_is_recorded_or_left_out_on_purpose() {
        let cmd = super::super::super::Cli::command();
        let sweep = cmd.find_subcommand("sweep").expect("sweep");
        let a = <SweepArgs as clap::FromArgMatches>::from_arg_matches(
            &sweep.clone().get_matches_from(["sweep"]),
        )
        .unwrap();
        let recorded: Vec<String> = flags_of(&a)
            .values()
            .iter()
            .map(|(f, _)| f.replace('-', "_"))
            .collect();
        for arg in sweep.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let r = recorded.iter().any(|f| f == id);
            let n = NOT_RECORDED.contains(&id);
            assert!(r != n, "--{id}: recorded {r}, left out {n}");
        }
    }
}
