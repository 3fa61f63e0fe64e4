//! A PBT run's training state, `--out/state.safetensors` ([`wgtrain::state_file`], kind
//! `pbt`): the run's progress ([`PbtProgress`]: its record so far and the position of its
//! exploit/explore random stream), the trainer's state and every member's weights and
//! momentum. Written after every epoch (after its exploit step) and when a signal stops
//! the run (then mid-epoch, where the stop landed); `--resume` goes on from it, and the run
//! ends with the outputs of an uninterrupted one. It is removed once the run has written
//! its outputs.

use std::path::Path;

use anyhow::Result;
use serde::{Deserialize, Serialize};

use wgtrain::state_file::{self, Tensors};
use wgtrain::train::{Snapshot, TrainerState};
use wgtrain::tune::pbt::PbtProgress;

use super::super::sweep::state::{path, unreadable};

/// What a `--resume` whose PBT state cannot be read can do: the run cannot go on without
/// its members' weights.
const PBT_FIX: &str =
    "the run cannot go on without it; start again with --overwrite, or choose another --out";

/// The command a PBT state belongs to ([`state_file`]'s kind).
const KIND: &str = "pbt";
/// The prefix of the members' tensors.
const MEMBERS: &str = "population.";

/// The JSON document of a PBT state.
#[derive(Serialize, Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct Doc {
    pbt: PbtProgress,
    trainer: TrainerState,
}

/// What `--resume` goes on from.
pub(super) struct Resumed {
    /// The run's record and random stream.
    pub progress: PbtProgress,
    /// The trainer's state and the members' tensors.
    pub trainer: Snapshot,
}

/// Writes the state of the run in `out`.
///
/// # Errors
/// [`wgtrain::Error::Output`] when the write fails (the previous state is left whole).
pub(super) fn write(out: &Path, progress: PbtProgress, trainer: &Snapshot) -> wgtrain::Result<()> {
    let doc = Doc {
        pbt: progress,
        trainer: trainer.state.clone(),
    };
    state_file::write(
        &path(out),
        KIND,
        &doc,
        &state_file::snapshot_tensors(MEMBERS, trainer),
    )
}

/// Reads the state of the run in `out`, `None` when it has none.
///
/// # Errors
/// A usage error (exit 2) for a file that is not a PBT run's state or misses a tensor,
/// naming the fix ([`PBT_FIX`]).
pub(super) fn read(out: &Path) -> Result<Option<Resumed>> {
    let p = path(out);
    if !p.exists() {
        return Ok(None);
    }
    let damaged = unreadable(&p, PBT_FIX);
    let (doc, mut tensors): (Doc, Tensors) = state_file::read(&p, KIND).map_err(&damaged)?;
    let trainer =
        state_file::take_snapshot(&p, MEMBERS, doc.trainer, &mut tensors).map_err(&damaged)?;
    Ok(Some(Resumed {
        progress: doc.pbt,
        trainer,
    }))
}
