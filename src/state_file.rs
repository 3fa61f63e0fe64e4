//! Training-state files (`train --state FILE`, a sweep's `--out/state.safetensors`): what a
//! run needs to go on exactly after Ctrl-C or `kill -9`. One safetensors file holds named
//! f32 tensors (each member's parameters and momentum, the best weights so far) and, in its
//! metadata, one JSON document (the trainer's state, [`crate::train::TrainerState`], and
//! what the command adds: its settings, its epochs' reports). It is written atomically
//! (a temporary file, then a rename), so a reader sees the previous state or the new one,
//! never a mix of two, whenever the writer was killed.
//!
//! The metadata says which command wrote it (`kind`: `train`, `sweep`), so a state given
//! to the other command, a checkpoint given as a state, and a state given as a checkpoint
//! are each refused naming what the file is.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::checkpoint::{STATE_METADATA_KEY, WeightDtype, serialize};
use crate::error::{Error, Result};
use crate::train::{Snapshot, TrainerState};

/// The metadata key naming the command that wrote the state.
const KIND_KEY: &str = "wgtrain.state_kind";
/// The metadata key of the format's version.
const VERSION_KEY: &str = "wgtrain.state_version";
/// The version this build writes and reads.
const VERSION: &str = "1";

/// Named f32 tensors, as a state file holds them.
pub type Tensors = BTreeMap<String, Vec<f32>>;

fn bad(path: &Path, reason: impl Into<String>) -> Error {
    Error::Format {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Writes `doc` (as JSON) and `tensors` (1-D f32) to `path` atomically, as a state of
/// `kind` (the command: `train`, `sweep`).
///
/// # Errors
/// [`Error::Output`] when `path` breaks the output rule or the write fails (the previous
/// file, if any, is left whole); [`Error::Format`] when `doc` does not serialise.
pub fn write<T: Serialize>(
    path: &Path,
    kind: &str,
    doc: &T,
    tensors: &[(String, &[f32])],
) -> Result<()> {
    let json = serde_json::to_string(doc)
        .map_err(|e| bad(path, format!("the state does not serialise: {e}")))?;
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, v)| {
            let bytes: &[u8] = bytemuck::cast_slice(v);
            (name.clone(), vec![v.len()], bytes.to_vec())
        })
        .collect();
    let meta = [
        ("format", "wgtrain-state".to_string()),
        (KIND_KEY, kind.to_string()),
        (VERSION_KEY, VERSION.to_string()),
        (STATE_METADATA_KEY, json),
    ];
    let bytes = serialize(&tensors, WeightDtype::F32, &meta);
    crate::output::write_atomically(path, &bytes)
}

/// Reads a state of `kind` that [`write()`] wrote: its document and its tensors.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Format`] when it is not a
/// safetensors file, is a checkpoint or another command's state, has another version, or
/// its document or a tensor does not read.
pub fn read<T: DeserializeOwned>(path: &Path, kind: &str) -> Result<(T, Tensors)> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| {
        bad(
            path,
            format!("is not a training state (not a safetensors file: {e})"),
        )
    })?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(path, format!("is not a training state ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let Some(found) = meta.get(KIND_KEY) else {
        let what = if st.names().contains(&"0.weight") {
            "is a checkpoint (weights only), not a training state; a run writes its state with --state FILE"
        } else {
            "is not a wgtrain training state (no state in its metadata)"
        };
        return Err(bad(path, what));
    };
    if found != kind {
        return Err(bad(
            path,
            format!("holds the state of a `{found}` run, not of a `{kind}` run"),
        ));
    }
    let version = meta.get(VERSION_KEY).map_or("(none)", String::as_str);
    if version != VERSION {
        return Err(bad(
            path,
            format!(
                "is a training state of version {version}; this wgtrain reads version {VERSION}"
            ),
        ));
    }
    let json = meta
        .get(STATE_METADATA_KEY)
        .ok_or_else(|| bad(path, "has no state document in its metadata"))?;
    let doc = serde_json::from_str(json)
        .map_err(|e| bad(path, format!("its state does not read: {e}")))?;
    let mut tensors = Tensors::new();
    for (name, t) in st.tensors() {
        if t.dtype() != Dtype::F32 || t.shape().len() != 1 {
            return Err(bad(
                path,
                format!(
                    "tensor {name} is {:?} of shape {:?}, not a 1-D F32 tensor",
                    t.dtype(),
                    t.shape()
                ),
            ));
        }
        tensors.insert(name, bytemuck::pod_collect_to_vec(t.data()));
    }
    Ok((doc, tensors))
}

/// The tensors of `snapshot` under `prefix`: `{prefix}member{k}.params` and
/// `{prefix}member{k}.momentum`.
pub fn snapshot_tensors<'s>(prefix: &str, snapshot: &'s Snapshot) -> Vec<(String, &'s [f32])> {
    let mut out = Vec::new();
    for (k, (p, m)) in snapshot.params.iter().zip(&snapshot.momentum).enumerate() {
        out.push((format!("{prefix}member{k}.params"), p.as_slice()));
        out.push((format!("{prefix}member{k}.momentum"), m.as_slice()));
    }
    out
}

/// The snapshot of `state` whose tensors [`snapshot_tensors`] named (taken out of
/// `tensors`).
///
/// # Errors
/// [`Error::Format`] naming a missing tensor.
pub fn take_snapshot(
    path: &Path,
    prefix: &str,
    state: TrainerState,
    tensors: &mut Tensors,
) -> Result<Snapshot> {
    let mut take = |name: String| {
        tensors
            .remove(&name)
            .ok_or_else(|| bad(path, format!("has no tensor {name}")))
    };
    let k = state.members();
    let mut params = Vec::with_capacity(k);
    let mut momentum = Vec::with_capacity(k);
    for m in 0..k {
        params.push(take(format!("{prefix}member{m}.params"))?);
        momentum.push(take(format!("{prefix}member{m}.momentum"))?);
    }
    Ok(Snapshot {
        state,
        params,
        momentum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{MlpSpec, Normalization};

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Doc {
        epoch: usize,
        note: String,
    }

    /// What is written comes back: the document, and the tensors bit for bit (NaN too).
    #[test]
    fn a_state_reads_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.state");
        let doc = Doc {
            epoch: 3,
            note: "x".into(),
        };
        let a = [1.5f32, -0.0, f32::NAN, 3.0e-39];
        let b = [0.25f32; 5];
        write(
            &path,
            "train",
            &doc,
            &[("a".into(), &a[..]), ("b".into(), &b[..])],
        )
        .unwrap();
        let (got, tensors): (Doc, Tensors) = read(&path, "train").unwrap();
        assert_eq!(got, doc);
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&tensors["a"]), bits(&a));
        assert_eq!(bits(&tensors["b"]), bits(&b));
        assert_eq!(tensors.len(), 2);
    }

    /// A state of the other command, a checkpoint and a file of anything else are each
    /// refused naming what the file is; a checkpoint reader names a state as one.
    #[test]
    fn a_checkpoint_or_another_commands_state_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("s.state");
        write(
            &state,
            "sweep",
            &Doc {
                epoch: 0,
                note: String::new(),
            },
            &[],
        )
        .unwrap();
        let e = read::<Doc>(&state, "train").unwrap_err().to_string();
        assert!(
            e.contains("holds the state of a `sweep` run, not of a `train` run"),
            "{e}"
        );
        let e = crate::checkpoint::load(&state).unwrap_err().to_string();
        assert!(e.contains("is a training state"), "{e}");

        let ck = dir.path().join("m.safetensors");
        let spec = MlpSpec::new(4, &[3], 2).unwrap();
        crate::checkpoint::save(&ck, &spec, &spec.init(1), Normalization::UNIT).unwrap();
        let e = read::<Doc>(&ck, "train").unwrap_err().to_string();
        assert!(
            e.contains("is a checkpoint (weights only), not a training state"),
            "{e}"
        );

        let junk = dir.path().join("junk");
        std::fs::write(&junk, b"not a state").unwrap();
        let e = read::<Doc>(&junk, "train").unwrap_err().to_string();
        assert!(e.contains("is not a training state"), "{e}");
    }
}
