//! Checkpoints in safetensors, under PyTorch `nn.Sequential` names (`0.weight`, `0.bias`,
//! `2.weight`, `2.bias`, ...; the odd indices are the ReLUs), f32, weight `[O, I]`, bias
//! `[O]`: `model.load_state_dict(safetensors.torch.load_file(path))` loads them into
//! `nn.Sequential(nn.Linear(I, H), nn.ReLU(), nn.Linear(H, C))` unchanged.
//!
//! Writes are atomic: a temporary file in the same directory, fsynced, then renamed over
//! the target, so an interrupted run never leaves a half-written file; non-finite weights
//! are refused, so a diverged run never overwrites a good checkpoint.

use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use crate::error::{Error, Result};
use crate::model::{MlpSpec, Normalization};

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Saves the flat parameters of `spec` to `path`.
///
/// # Errors
/// [`Error::Checkpoint`] when a weight is not finite (nothing is written) or the file
/// cannot be written (the previous file, if any, is left intact).
pub fn save(path: &Path, spec: &MlpSpec, params: &[f32], norm: Normalization) -> Result<()> {
    save_with_metadata(path, spec, params, norm, &[])
}

/// As [`save`], with `extra` `(key, value)` pairs added to the safetensors metadata (e.g.
/// `wgtrain.interrupted = true` and where an interrupted run stopped).
///
/// # Errors
/// As [`save`].
pub fn save_with_metadata(
    path: &Path,
    spec: &MlpSpec,
    params: &[f32],
    norm: Normalization,
    extra: &[(&str, String)],
) -> Result<()> {
    let layout = spec.layout();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (l, s) in layout.layers.iter().enumerate() {
        let w = &params[s.weight..s.weight + s.outputs * s.inputs];
        let b = &params[s.bias..s.bias + s.outputs];
        for (name, t) in [("weight", w), ("bias", b)] {
            if let Some(i) = t.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    path,
                    format!(
                        "refusing to save: {}.{name}[{i}] is {} (the run diverged)",
                        2 * l,
                        t[i]
                    ),
                ));
            }
        }
        tensors.push((
            format!("{}.weight", 2 * l),
            vec![s.outputs, s.inputs],
            bytemuck::cast_slice(w).to_vec(),
        ));
        tensors.push((
            format!("{}.bias", 2 * l),
            vec![s.outputs],
            bytemuck::cast_slice(b).to_vec(),
        ));
    }
    // A fixed order (ours, then `extra` as given) so the same weights give the same bytes.
    let mut meta = vec![
        ("format", "pt".to_string()),
        ("wgtrain.sizes", spec.to_string()),
        ("wgtrain.normalize", format!("{},{}", norm.mean, norm.std)),
    ];
    meta.extend(extra.iter().cloned());
    let bytes = serialize(&tensors, &meta);
    // The file must read back as safetensors (a header bug would otherwise only show in
    // PyTorch); this is cheap next to the write.
    SafeTensors::deserialize(&bytes).map_err(|e| err(path, e.to_string()))?;
    crate::output::write_atomically(path, &bytes)
}

/// Serialises f32 tensors `(name, shape, little-endian bytes)` and string metadata into the
/// safetensors format, in the order given: an 8-byte little-endian header length, the JSON
/// header (`__metadata__` first, then one entry per tensor; padded with spaces to a multiple
/// of 8 bytes), then the tensors' bytes back to back.
///
/// The `safetensors` crate takes the metadata as a `HashMap`, whose iteration order is
/// random per process, so two identical runs wrote different bytes (issue 10, item 4);
/// writing the header here in a fixed order makes the file a function of its contents.
/// Format: <https://github.com/huggingface/safetensors#format>.
fn serialize(tensors: &[(String, Vec<usize>, Vec<u8>)], metadata: &[(&str, String)]) -> Vec<u8> {
    // serde_json::to_string of a &str cannot fail: it only escapes.
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises to JSON");
    let mut header = String::from("{\"__metadata__\":{");
    for (i, (k, v)) in metadata.iter().enumerate() {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!("{}:{}", quote(k), quote(v)));
    }
    header.push('}');
    let mut offset = 0;
    for (name, shape, data) in tensors {
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        header.push_str(&format!(
            ",{}:{{\"dtype\":\"F32\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            quote(name),
            dims.join(","),
            offset + data.len()
        ));
        offset += data.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut bytes = Vec::with_capacity(8 + header.len() + offset);
    bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for (_, _, data) in tensors {
        bytes.extend_from_slice(data);
    }
    bytes
}

/// A loaded checkpoint.
#[derive(Debug)]
pub struct Checkpoint {
    pub spec: MlpSpec,
    /// Flat parameters in the layout of `spec.layout()`.
    pub params: Vec<f32>,
    /// The input normalisation it was trained with, when the file records it.
    pub normalization: Option<Normalization>,
}

/// Loads a checkpoint: the model it describes, its flat parameters and, when recorded,
/// its input normalisation.
///
/// # Errors
/// [`Error::Checkpoint`] when the file is not safetensors, a tensor is missing, not f32,
/// or shapes do not chain (`weight [O, I]` of one layer must feed the next).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
    let mut sizes = Vec::new();
    let mut tensors = Vec::new();
    for l in 0.. {
        let wname = format!("{}.weight", 2 * l);
        let Ok(w) = st.tensor(&wname) else { break };
        let bname = format!("{}.bias", 2 * l);
        let b = st
            .tensor(&bname)
            .map_err(|_| err(path, format!("has {wname} but no {bname}")))?;
        for (n, t) in [(&wname, &w), (&bname, &b)] {
            if t.dtype() != Dtype::F32 {
                return Err(err(
                    path,
                    format!("{n} is {:?}; only F32 is supported", t.dtype()),
                ));
            }
        }
        let (out, inp) = match w.shape() {
            [o, i] => (*o, *i),
            s => {
                return Err(err(
                    path,
                    format!("{wname} has shape {s:?}, expected [out, in]"),
                ));
            }
        };
        if b.shape() != [out] {
            return Err(err(
                path,
                format!("{bname} has shape {:?}, expected [{out}]", b.shape()),
            ));
        }
        match sizes.last() {
            None => sizes.push(inp),
            Some(&prev) if prev != inp => {
                return Err(err(
                    path,
                    format!("{wname} takes {inp} inputs but the previous layer gives {prev}"),
                ));
            }
            _ => {}
        }
        sizes.push(out);
        tensors.push((w, b));
    }
    if tensors.is_empty() {
        return Err(err(
            path,
            "no tensor named 0.weight: not an nn.Sequential MLP checkpoint",
        ));
    }
    let spec = MlpSpec { sizes };
    let layout = spec.layout();
    let mut params = vec![0.0f32; layout.len];
    for (l, (s, (w, b))) in layout.layers.iter().zip(&tensors).enumerate() {
        let wv: Vec<f32> = bytemuck::pod_collect_to_vec(w.data());
        let bv: Vec<f32> = bytemuck::pod_collect_to_vec(b.data());
        if let Some(i) = wv.iter().chain(&bv).position(|v| !v.is_finite()) {
            return Err(err(
                path,
                format!(
                    "holds a non-finite value (element {i} of {}.weight/{}.bias): the model diverged",
                    2 * l,
                    2 * l
                ),
            ));
        }
        params[s.weight..s.weight + wv.len()].copy_from_slice(&wv);
        params[s.bias..s.bias + bv.len()].copy_from_slice(&bv);
    }
    let normalization = st_normalization(&bytes);
    Ok(Checkpoint {
        spec,
        params,
        normalization,
    })
}

fn st_normalization(bytes: &[u8]) -> Option<Normalization> {
    let (_, meta) = SafeTensors::read_metadata(bytes).ok()?;
    let s = meta.metadata().as_ref()?.get("wgtrain.normalize")?.clone();
    let (m, sd) = s.split_once(',')?;
    Some(Normalization {
        mean: m.parse().ok()?,
        std: sd.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_shapes_names_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let spec = MlpSpec::new(5, &[3, 4], 2).unwrap();
        let params = spec.init(3);
        save(&path, &spec, &params, Normalization::MNIST).unwrap();
        let ck = load(&path).unwrap();
        assert_eq!(ck.spec, spec);
        assert_eq!(ck.params, params);
        assert_eq!(ck.normalization, Some(Normalization::MNIST));
        let bytes = std::fs::read(&path).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let mut names = st.names();
        names.sort();
        assert_eq!(
            names,
            [
                "0.bias", "0.weight", "2.bias", "2.weight", "4.bias", "4.weight"
            ]
        );
        assert_eq!(st.tensor("2.weight").unwrap().shape(), [4, 3]);
    }

    /// Regression (issue 10, item 4): the metadata went through a `HashMap`, so saving the
    /// same weights twice could write its three entries in different orders. The header is
    /// now fixed: checked against the bytes written out by hand from the format's definition.
    #[test]
    fn checkpoint_bytes_are_a_function_of_the_weights() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MlpSpec::new(2, &[], 1).unwrap();
        // weight [1, 2] = [1, -2], bias [1] = [0.5], at the layout's (aligned) offsets.
        let slot = &spec.layout().layers[0];
        let mut params = vec![0.0f32; spec.layout().len];
        params[slot.weight..slot.weight + 2].copy_from_slice(&[1.0, -2.0]);
        params[slot.bias] = 0.5;
        let path = dir.path().join("m.safetensors");
        save(&path, &spec, &params, Normalization::MNIST).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = r#"{"__metadata__":{"format":"pt","wgtrain.sizes":"2-1","wgtrain.normalize":"0.1307,0.3081"},"0.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},"0.bias":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#;
        let padded = format!("{header:<width$}", width = header.len().next_multiple_of(8));
        let mut want = (padded.len() as u64).to_le_bytes().to_vec();
        want.extend_from_slice(padded.as_bytes());
        for v in [1.0f32, -2.0, 0.5] {
            want.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            String::from_utf8_lossy(&bytes[8..8 + padded.len()]),
            padded,
            "header"
        );
        assert_eq!(bytes, want);
        // Each HashMap gets new random keys, so 20 saves of the old code would have hit
        // several of the 6 orders; every save must now give the same bytes.
        let spec = MlpSpec::new(5, &[3], 2).unwrap();
        let params = spec.init(7);
        save(&path, &spec, &params, Normalization::UNIT).unwrap();
        let first = std::fs::read(&path).unwrap();
        for _ in 0..20 {
            save(&path, &spec, &params, Normalization::UNIT).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), first);
        }
    }

    #[test]
    fn non_finite_weights_never_replace_a_good_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let spec = MlpSpec::new(5, &[3], 2).unwrap();
        let good = spec.init(1);
        save(&path, &spec, &good, Normalization::UNIT).unwrap();
        let mut bad = good.clone();
        bad[spec.layout().layers[1].bias] = f32::NAN;
        let e = save(&path, &spec, &bad, Normalization::UNIT)
            .unwrap_err()
            .to_string();
        assert!(e.contains("2.bias[0] is NaN"), "{e}");
        assert_eq!(load(&path).unwrap().params, good);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temporary file left behind"
        );
    }

    #[test]
    fn truncated_or_foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let spec = MlpSpec::new(5, &[3], 2).unwrap();
        save(&path, &spec, &spec.init(1), Normalization::UNIT).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
        assert!(
            load(&path)
                .unwrap_err()
                .to_string()
                .contains("not a safetensors file")
        );
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(load(&path), Err(Error::Checkpoint { .. })));
    }
}
