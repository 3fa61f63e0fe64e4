//! `train --state FILE` and `train --resume FILE`: the training state a run writes when it
//! starts, at the end of every epoch and when a signal stops it ([`wgtrain::state_file`],
//! kind `train`), and what `--resume` checks before going on from it.
//!
//! The state holds the trainer's state and the member's parameters and momentum
//! ([`wgtrain::train::Snapshot`]), the weights of the best validation epoch so far (for
//! `--save-best`), every finished epoch's report (so `--metrics` and `--plot` are whole
//! again after a resume), the settings the run was started with (the flags that decide what
//! it computes and the data's fingerprint: a resume with others is refused, naming the flag
//! and both values) and the path it trained on (a resume on the other one is warned of: the
//! CPU and GPU paths agree to rounding, not bit for bit).

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde::{Deserialize, Serialize};

use wgtrain::data::Mnist;
use wgtrain::state_file::{self, Tensors};
use wgtrain::train::{EpochReport, Snapshot, TrainerState};

use super::common::{
    Flags, Recorded, bad_input, data_fingerprint, first_difference, other_path_warning, usage,
};

/// The command a `train` state belongs to ([`state_file`]'s kind).
const KIND: &str = "train";
/// The tensor of the best validation epoch's weights.
const BEST: &str = "best.params";

/// The JSON document of a `train` state.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
struct Doc {
    /// The flags and data the run was started with.
    settings: Recorded,
    /// The path it trains on: `cpu` or `gpu`.
    device: String,
    /// The trainer's state (the tensors are the file's).
    trainer: TrainerState,
    /// Every finished epoch's report, in order.
    history: Vec<EpochReport>,
    /// The epoch (1-based) whose weights are the `best.params` tensor.
    best_epoch: Option<usize>,
}

/// A state read back for `--resume`.
pub(crate) struct Resume {
    /// The file it was read from.
    pub path: PathBuf,
    /// The trainer's state and tensors.
    pub snapshot: Snapshot,
    /// Every finished epoch's report.
    pub history: Vec<EpochReport>,
    /// The best validation epoch (1-based) and its weights.
    pub best: Option<(usize, Vec<f32>)>,
    settings: Recorded,
    device: String,
}

/// Refuses a `--resume` file that does not exist, or a folder, before anything else looks at
/// the path (the output check would otherwise say the file's folder, or the folder, cannot be
/// written: words for an output, where the path is read).
///
/// # Errors
/// A usage error (exit 2) naming the path and the fix: how a state is written, or the path
/// of a `train` state inside the folder when it holds one.
pub(crate) fn check_exists(path: &Path) -> Result<()> {
    if path.is_dir() {
        let fix = match state_in(path) {
            Some(p) => format!("give the state file's path: --resume {}", p.display()),
            None => "give the path of the state file inside it (the --state FILE the run wrote)"
                .to_string(),
        };
        return Err(usage(
            "resume",
            path.display(),
            format!("is a folder, not a training state; {fix}"),
        ));
    }
    if path.exists() {
        return Ok(());
    }
    Err(usage(
        "resume",
        path.display(),
        "no such file; a run writes its training state with --state FILE",
    ))
}

/// The first file (by name) directly in `dir` that reads as a `train` state. Only files
/// named `*.state` or `*.safetensors` are read, as a state is usually named.
fn state_in(dir: &Path) -> Option<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .is_some_and(|x| x == "state" || x == "safetensors")
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .find(|p| state_file::read::<Doc>(p, KIND).is_ok())
}

/// Reads the state `--resume` names.
///
/// # Errors
/// A usage error (exit 2) for a missing file, one that is not a `train` state, or one
/// whose tensors are missing.
pub(crate) fn read(path: &Path) -> Result<Resume> {
    check_exists(path)?;
    let (doc, mut tensors): (Doc, Tensors) = state_file::read(path, KIND).map_err(bad_input)?;
    let snapshot =
        state_file::take_snapshot(path, "", doc.trainer, &mut tensors).map_err(bad_input)?;
    let best = match (doc.best_epoch, tensors.remove(BEST)) {
        (Some(e), Some(p)) => Some((e, p)),
        (None, _) => None,
        (Some(e), None) => {
            return Err(usage(
                "resume",
                path.display(),
                format!("names epoch {e} as the best but holds no {BEST} tensor"),
            ));
        }
    };
    Ok(Resume {
        path: path.to_path_buf(),
        snapshot,
        history: doc.history,
        best,
        settings: doc.settings,
        device: doc.device,
    })
}

impl Resume {
    /// Refuses flags other than the run's (`flags`: the flags that decide what it
    /// computes, as typed), naming the first that differs and both values.
    ///
    /// # Errors
    /// A usage error (exit 2).
    pub(crate) fn check_flags(&self, flags: &Flags) -> Result<()> {
        let Some(d) = first_difference(&self.settings.flags, flags) else {
            return Ok(());
        };
        let fix = if d.flag == "hparam-schedule" {
            "resume with the --hparam-schedule file the run started with".to_string()
        } else {
            d.fix
        };
        Err(usage(
            "resume",
            self.path.display(),
            format!(
                "--{} is {} but the run in {} ran with {}; going on with other settings would not be that run; {fix}, or start a new run (without --resume)",
                d.flag,
                d.now,
                self.path.display(),
                d.was
            ),
        ))
    }

    /// Refuses other data than the run's.
    ///
    /// # Errors
    /// A usage error (exit 2) naming both fingerprints.
    pub(crate) fn check_data(&self, mnist: &Mnist) -> Result<()> {
        let now = data_fingerprint(mnist);
        if now == self.settings.data {
            return Ok(());
        }
        Err(usage(
            "resume",
            self.path.display(),
            format!(
                "the data are {now}, but the run in {} trained on {}; resume with its data (--data, --dataset, --train-subset, --classes), or start a new run (without --resume)",
                self.path.display(),
                self.settings.data
            ),
        ))
    }

    /// Warns when the run goes on on another path than it started on (`device`: `cpu` or
    /// `gpu`): it goes on correctly, but not bit for bit as it would have.
    pub(crate) fn warn_device(&self, device: &str) {
        let run = format!("the run in {}", self.path.display());
        if let Some(w) = other_path_warning(&run, &self.device, device) {
            note!("{w}");
        }
    }
}

/// Refuses to start a new run whose `--state` would replace the state of an unfinished run
/// (one that `--resume` could still finish), or a file that is not a `train` state at all
/// (a CSV, a checkpoint, another command's state, a damaged state): the run's first state
/// would be written over it. A finished run's state, and an empty file, are replaced.
/// `state` is `--state`, `resumed` `--resume`: a run resumed into another `--state` file
/// writes over it as a new run would; the file it goes on from is its own.
///
/// # Errors
/// A usage error (exit 2) naming how far that run got, or why the file is not a state.
pub(crate) fn check_not_replacing(state: Option<&Path>, resumed: Option<&Path>) -> Result<()> {
    let Some(path) = state else {
        return Ok(());
    };
    let same =
        |r: &Path| matches!((path.canonicalize(), r.canonicalize()), (Ok(x), Ok(y)) if x == y);
    if resumed.is_some_and(same)
        || std::fs::metadata(path).map_or(true, |m| m.is_file() && m.len() == 0)
    {
        // Nothing there (a folder or a special file is the output check's), or nothing lost.
        return Ok(());
    }
    let doc = match state_file::read::<Doc>(path, KIND) {
        Ok((doc, _)) => doc,
        Err(e) => {
            let reason = match &e {
                wgtrain::Error::Format { reason, .. } => reason.clone(),
                other => other.to_string(),
            };
            // "is not a training state (not a safetensors file: ...)" reads as its cause.
            let why = [
                "is not a training state (",
                "is not a wgtrain training state (",
            ]
            .iter()
            .find_map(|p| reason.strip_prefix(p)?.strip_suffix(')'))
            .unwrap_or(&reason);
            return Err(usage(
                "state",
                path.display(),
                format!(
                    "is not a wgtrain training state ({why}), and the run would write its state over it; give another --state path, or delete the file to start a new run there"
                ),
            ));
        }
    };
    let t = &doc.trainer;
    let unfinished =
        (0..t.members()).any(|k| *t.status(k) == wgtrain::train::MemberStatus::Training);
    if !unfinished {
        return Ok(());
    }
    Err(usage(
        "state",
        path.display(),
        format!(
            "holds an unfinished run ({} of {} epochs done); give --resume {} to go on with it, or another --state (or delete the file) to start anew",
            t.epochs_trained(0),
            t.config(0).epochs,
            path.display()
        ),
    ))
}

/// Where a run writes its state, and what goes with every write.
pub(crate) struct StateWriter {
    /// The file.
    pub path: PathBuf,
    settings: Recorded,
    device: String,
}

impl StateWriter {
    /// A writer of `path` for a run of `settings` on `device` (`cpu` or `gpu`).
    pub(crate) fn new(path: &Path, settings: Recorded, device: &str) -> StateWriter {
        StateWriter {
            path: path.to_path_buf(),
            settings,
            device: device.to_string(),
        }
    }

    /// Writes the state (atomically): `snapshot`, the reports of the finished epochs and
    /// the best validation epoch's weights.
    ///
    /// # Errors
    /// [`wgtrain::Error::Output`] when the write fails (the previous state is left whole).
    pub(crate) fn write(
        &self,
        snapshot: &Snapshot,
        history: &[EpochReport],
        best: Option<&(usize, Vec<f32>)>,
    ) -> wgtrain::Result<()> {
        let doc = Doc {
            settings: self.settings.clone(),
            device: self.device.clone(),
            trainer: snapshot.state.clone(),
            history: history.to_vec(),
            best_epoch: best.map(|b| b.0),
        };
        let mut tensors = state_file::snapshot_tensors("", snapshot);
        if let Some((_, p)) = best {
            tensors.push((BEST.into(), p));
        }
        state_file::write(&self.path, KIND, &doc, &tensors)
    }
}
