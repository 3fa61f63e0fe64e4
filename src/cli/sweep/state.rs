//! A sweep's training state, `--out/state.safetensors` ([`wgtrain::state_file`], kind
//! `sweep`): the finished trials, the best one's weights and the population that was
//! running (each slot's trial and epochs so far, the trainer's state, every member's
//! weights and momentum), written after every population epoch and when a signal stops the
//! sweep. `--resume` goes on from it: the finished trials are not rerun and the running
//! ones go on where they were, so the sweep ends with the trials of an uninterrupted one.
//! It is removed once the sweep has written its outputs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use wgtrain::state_file::{self, Tensors};
use wgtrain::train::TrainerState;
use wgtrain::tune::population_sweep::{PopulationSnapshot, SlotState};
use wgtrain::tune::sweep::{Sweep, Trial};

use super::super::common::usage;

/// The state's file name in `--out`.
pub(in crate::cli) const STATE_FILE: &str = "state.safetensors";
/// The command a sweep state belongs to ([`state_file`]'s kind).
const KIND: &str = "sweep";
/// The tensor of the best trial's weights.
const BEST: &str = "best.params";
/// The prefix of the running population's tensors.
const POPULATION: &str = "population.";

/// The JSON document of a sweep state.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Doc {
    /// The finished trials, by id.
    trials: Vec<Trial>,
    /// The best completed trial, whose weights are the `best.params` tensor.
    best: Option<usize>,
    /// The population that was running.
    population: Option<PopulationDoc>,
}

/// A running population: its slots' trials and its trainer's state (the tensors are the
/// file's).
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct PopulationDoc {
    slots: Vec<Option<SlotState>>,
    trainer: TrainerState,
}

/// What `--resume` goes on from.
pub(in crate::cli) struct Resumed {
    /// The finished trials, by id.
    pub trials: Vec<Trial>,
    /// The best completed trial's id and weights.
    pub best: Option<(usize, Vec<f32>)>,
    /// The population that was running.
    pub population: Option<PopulationSnapshot>,
}

/// The state file of the sweep in `out`.
pub(in crate::cli) fn path(out: &Path) -> PathBuf {
    out.join(STATE_FILE)
}

/// Writes the sweep's state: its finished trials and best weights, and `population` when
/// one is running.
///
/// # Errors
/// [`wgtrain::Error::Output`] when the write fails (the previous state is left whole).
pub(in crate::cli) fn write(
    out: &Path,
    sweep: &Sweep,
    population: Option<&PopulationSnapshot>,
) -> wgtrain::Result<()> {
    let doc = Doc {
        trials: sweep.trials().to_vec(),
        best: sweep.best_trial().map(|t| t.id),
        population: population.map(|p| PopulationDoc {
            slots: p.slots.clone(),
            trainer: p.trainer.state.clone(),
        }),
    };
    let mut tensors = match population {
        Some(p) => state_file::snapshot_tensors(POPULATION, &p.trainer),
        None => Vec::new(),
    };
    if let Some(p) = sweep.best_params() {
        tensors.push((BEST.into(), p));
    }
    state_file::write(&path(out), KIND, &doc, &tensors)
}

/// What a `--resume` whose sweep state cannot be read can do: the finished trials are in
/// `trials.json` too (and the best one's weights in `best_trial.safetensors`), so without
/// the state the sweep goes on from them, its running trials starting again.
const SWEEP_FIX: &str = "remove it to go on from the finished trials in trials.json (the running trials start again), or start again with --overwrite, or choose another --out";

/// The error for a state file `p` of the run in `--out` that cannot be read (`fix`: what
/// the user can do): a usage error (exit 2) naming the file, the problem and the fix.
pub(in crate::cli) fn unreadable<'a>(
    p: &'a Path,
    fix: &'static str,
) -> impl Fn(wgtrain::Error) -> anyhow::Error + 'a {
    move |e| {
        let why = match e {
            wgtrain::Error::Format { reason, .. } => reason,
            wgtrain::Error::Io { source, .. } => format!("cannot be read ({source})"),
            e => e.to_string(),
        };
        usage("resume", p.display(), format!("{why}; {fix}"))
    }
}

/// Reads the state of the sweep in `out`, `None` when it has none.
///
/// # Errors
/// A usage error (exit 2) for a file that is not a sweep's state or misses a tensor,
/// naming the fix ([`SWEEP_FIX`]).
pub(in crate::cli) fn read(out: &Path) -> Result<Option<Resumed>> {
    let p = path(out);
    if !p.exists() {
        return Ok(None);
    }
    let damaged = unreadable(&p, SWEEP_FIX);
    let (doc, mut tensors): (Doc, Tensors) = state_file::read(&p, KIND).map_err(&damaged)?;
    let best = match (doc.best, tensors.remove(BEST)) {
        (None, _) => None,
        (Some(id), Some(w)) => Some((id, w)),
        (Some(id), None) => {
            return Err(usage(
                "resume",
                p.display(),
                format!("names trial {id} as the best but holds no {BEST} tensor; {SWEEP_FIX}"),
            ));
        }
    };
    let population = match doc.population {
        None => None,
        Some(d) => Some(PopulationSnapshot {
            trainer: state_file::take_snapshot(&p, POPULATION, d.trainer, &mut tensors)
                .map_err(&damaged)?,
            slots: d.slots,
        }),
    };
    Ok(Some(Resumed {
        trials: doc.trials,
        best,
        population,
    }))
}

/// Removes the state of a sweep that has written its outputs (a missing one is fine).
pub(in crate::cli) fn remove(out: &Path) {
    let p = path(out);
    if let Err(e) = std::fs::remove_file(&p) {
        if e.kind() != std::io::ErrorKind::NotFound {
            note!("warning: could not remove {}: {e}", p.display());
        }
    }
}
