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
//! rounding), `--data` (the data's fingerprint is recorded instead, so a moved copy
//! resumes), and `--population` when nothing is pruned (a population sweep's trials then
//! equal the sequential sweep's; with pruning, it decides which trials are pruned, and is
//! recorded).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Result;
use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use wgtrain::data::Mnist;
use wgtrain::tune::space::{HiddenChoices, Values};

use super::super::common::usage;
use super::{PruningChoice, SweepArgs};

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

/// A flag's value when it was not given.
const NOT_GIVEN: &str = "(not given)";

/// `settings.json`: the flags (name without dashes, value as typed) and the data.
#[derive(Serialize, Deserialize, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
struct Recorded {
    /// Every flag that decides what the trials compute, given or at its default.
    flags: BTreeMap<String, String>,
    /// The data the trials trained on ([`data_fingerprint`]).
    data: String,
}

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

fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(NOT_GIVEN.into(), T::to_string)
}

fn choice(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

/// The flags of `a` that decide what its trials compute, in `--help` order, as
/// (flag without dashes, value as typed or [`NOT_GIVEN`]); booleans as `true`/`false`.
fn flags_of(a: &SweepArgs) -> Vec<(&'static str, String)> {
    let s = &a.schedule;
    let population = if a.pruning == PruningChoice::None {
        "any (nothing is pruned)".to_string()
    } else {
        opt(&a.population)
    };
    vec![
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
        ("trials", opt(&a.trials)),
        (
            "configs",
            a.configs
                .as_ref()
                .map_or(NOT_GIVEN.into(), |p| p.display().to_string()),
        ),
        ("grid-points", a.grid_points.to_string()),
        ("val-split", a.val_split.to_string()),
        ("train-subset", opt(&a.train_subset)),
        ("pruning", choice(a.pruning)),
        ("prune-warmup", opt(&a.prune_warmup)),
        ("prune-min-trials", opt(&a.prune_min_trials)),
        ("halving-eta", opt(&a.halving_eta)),
        ("halving-min-epochs", opt(&a.halving_min_epochs)),
        ("population", population),
        ("dampening", a.sgd.dampening.to_string()),
        ("nesterov", a.sgd.nesterov.to_string()),
        (
            "decoupled-weight-decay",
            a.sgd.decoupled_weight_decay.to_string(),
        ),
        ("no-decay-bias", a.sgd.no_decay_bias.to_string()),
        ("seed", a.seed.to_string()),
        ("lr-schedule", opt(&s.lr_schedule)),
        ("step-size", opt(&s.step_size)),
        ("gamma", opt(&s.gamma)),
        ("milestones", opt(&s.milestones)),
        ("t-max", opt(&s.t_max)),
        ("eta-min", opt(&s.eta_min)),
        ("warmup-epochs", s.warmup_epochs.to_string()),
        ("warmup-start-factor", opt(&s.warmup_start_factor)),
        ("max-lr", opt(&s.max_lr)),
        ("pct-start", opt(&s.pct_start)),
        ("plateau-factor", opt(&s.plateau_factor)),
        ("plateau-patience", opt(&s.plateau_patience)),
        ("plateau-cooldown", opt(&s.plateau_cooldown)),
        ("min-lr", opt(&s.min_lr)),
        ("pbt-interval", opt(&a.pbt_interval)),
        ("pbt-quantile", opt(&a.pbt_quantile)),
        ("pbt-resample", opt(&a.pbt_resample)),
    ]
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

/// What identifies the data: its counts, image size, class count and a CRC-32C of every
/// pixel and label (training set after `--train-subset`, then the test set).
pub(super) fn data_fingerprint(mnist: &Mnist) -> String {
    let mut crc = 0u32;
    for set in [&mnist.train, &mnist.test] {
        crc = crc32c::crc32c_append(crc, &set.images);
        for label in &set.labels {
            crc = crc32c::crc32c_append(crc, &label.to_le_bytes());
        }
    }
    format!(
        "{} training and {} test samples of {}x{} pixels, {} classes, CRC-32C {crc:08x}",
        mnist.train.len(),
        mnist.test.len(),
        mnist.train.rows,
        mnist.train.cols,
        mnist.classes
    )
}

/// What `dir` holds of an earlier sweep: `None` when none of its files is there, else a
/// few words for the refusal (`a finished sweep of 6 trials`).
fn earlier_sweep(dir: &Path) -> Option<String> {
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
    let what = if present.contains(&"pbt.json") {
        "a PBT run"
    } else if finished {
        "a finished sweep"
    } else {
        "an unfinished sweep"
    };
    Some(format!("{what}{trials}"))
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
    let Some(earlier) = earlier_sweep(out) else {
        return Ok(());
    };
    if a.overwrite {
        return Ok(());
    }
    if !a.resume {
        return Err(usage(
            "out",
            out.display(),
            format!(
                "holds {earlier}; give --resume to go on with it, --overwrite to replace it, or another --out"
            ),
        ));
    }
    let path = out.join(SETTINGS_FILE);
    let Some(recorded) = read(&path)? else {
        note!(
            "warning: {} has no {SETTINGS_FILE} (written by an older wgtrain): only the finished trials' own hyperparameters can be checked against this run's",
            out.display()
        );
        return Ok(());
    };
    for (flag, now) in flags_of(a) {
        let was = recorded.flags.get(flag).map_or(NOT_GIVEN, String::as_str);
        if was != now {
            let fix = match was {
                NOT_GIVEN | "false" => format!("resume without --{flag}"),
                "true" => format!("resume with --{flag}"),
                v => format!("resume with --{flag} {v}"),
            };
            return Err(usage(
                "resume",
                out.display(),
                format!(
                    "--{flag} is {now} but the sweep in {} ran with {was} ({SETTINGS_FILE}); its trials would be ranked with this run's; {fix}, or choose another --out",
                    out.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Once the data is loaded, before any trial: with `--resume`, refuses data other than the
/// recorded sweep's; with `--overwrite`, removes the earlier sweep's files
/// ([`SWEEP_FILES`], nothing else); then records this sweep's settings in `settings.json`
/// (atomically).
///
/// # Errors
/// A usage error (exit 2) for other data; an I/O error for a file that cannot be removed;
/// [`wgtrain::Error::Output`] when the settings cannot be written.
pub(in crate::cli) fn record(a: &SweepArgs, mnist: &Mnist) -> Result<()> {
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
        if let Some(earlier) = earlier_sweep(&a.out) {
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
    let flags = flags_of(a)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let text = serde_json::to_string_pretty(&Recorded { flags, data })?;
    wgtrain::output::write_atomically(&path, (text + "\n").as_bytes())?;
    Ok(())
}

/// `settings.json`, when it exists.
///
/// # Errors
/// A usage error (exit 2) for a file that cannot be read as settings.
fn read(path: &Path) -> Result<Option<Recorded>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(usage("resume", path.display(), e)),
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        usage(
            "resume",
            path.display(),
            format!(
                "is not a sweep's settings file ({e}); fix or remove it, or choose another --out"
            ),
        )
    })
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
