//! Checkpoints in safetensors, under PyTorch `nn.Sequential` names (`0.weight`, `0.bias`,
//! `2.weight`, `2.bias`, ...; the odd indices are the ReLUs), weight `[O, I]`, bias `[O]`:
//! `model.load_state_dict(safetensors.torch.load_file(path))` loads them into
//! `nn.Sequential(nn.Linear(I, H), nn.ReLU(), nn.Linear(H, C))` unchanged.
//!
//! Tensors are written as f32 by default, or as f16 or bf16 ([`WeightDtype`]; safetensors
//! `F16`/`BF16` load as `torch.float16`/`torch.bfloat16`), rounded to nearest even as
//! PyTorch's `.half()`/`.bfloat16()` round; [`load`] reads all three back to f32.
//!
//! Writes are atomic: a temporary file in the same directory, fsynced, then renamed over
//! the target, so an interrupted run never leaves a half-written file; non-finite weights
//! are refused, so a diverged run never overwrites a good checkpoint, and so are weights
//! that the narrower dtypes would turn into infinities.

use std::fmt;
use std::io::Read;
use std::path::Path;

use half::{bf16, f16};
use safetensors::tensor::{Dtype, Metadata, SafeTensors};

use crate::error::{Error, Result};
use crate::model::{MlpSpec, Normalization};

/// The element type a checkpoint's tensors are stored in. Training always runs in f32;
/// `F16` and `Bf16` halve the file and round each weight to the nearest representable
/// value, ties to even (IEEE 754 default rounding, as `torch.Tensor.half()` and
/// `.bfloat16()` do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightDtype {
    /// IEEE 754 binary32, `torch.float32` (safetensors `F32`): the weights as trained.
    #[default]
    F32,
    /// IEEE 754 binary16, `torch.float16` (safetensors `F16`): 11 significant bits,
    /// largest finite value 65504.
    F16,
    /// bfloat16, `torch.bfloat16` (safetensors `BF16`): 8 significant bits, f32's exponent
    /// range (largest finite value about 3.39e38).
    Bf16,
}

impl WeightDtype {
    /// The dtype's name in a safetensors header: `F32`, `F16` or `BF16`.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "F32",
            WeightDtype::F16 => "F16",
            WeightDtype::Bf16 => "BF16",
        }
    }

    /// The PyTorch dtype a tensor of this type loads as, e.g. `torch.float16`.
    pub fn torch_name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "torch.float32",
            WeightDtype::F16 => "torch.float16",
            WeightDtype::Bf16 => "torch.bfloat16",
        }
    }

    /// The dtype of a safetensors tensor, when it is one of the three [`load`] reads.
    pub fn from_safetensors(dtype: Dtype) -> Option<Self> {
        match dtype {
            Dtype::F32 => Some(WeightDtype::F32),
            Dtype::F16 => Some(WeightDtype::F16),
            Dtype::BF16 => Some(WeightDtype::Bf16),
            _ => None,
        }
    }

    /// The largest finite value and the wider dtypes, as a refusal to narrow says them.
    fn range(self) -> (&'static str, &'static str) {
        match self {
            WeightDtype::F32 => ("3.4028235e38", "none"),
            WeightDtype::F16 => ("65504", "bf16 and f32"),
            WeightDtype::Bf16 => ("3.3895314e38", "f32"),
        }
    }

    /// `values` as little-endian bytes of this dtype (the f32 bytes unchanged), or the
    /// index of the first value that rounds to an infinity in it.
    fn encode(self, values: &[f32]) -> std::result::Result<Vec<u8>, usize> {
        // Rounding to nearest even maps a finite f32 to an infinity exactly when it is
        // beyond the narrower type's range.
        fn narrow(
            values: &[f32],
            to_bits: impl Fn(f32) -> (bool, u16),
        ) -> std::result::Result<Vec<u8>, usize> {
            let mut out = Vec::with_capacity(2 * values.len());
            for (i, &v) in values.iter().enumerate() {
                let (overflows, bits) = to_bits(v);
                if overflows {
                    return Err(i);
                }
                out.extend_from_slice(&bits.to_le_bytes());
            }
            Ok(out)
        }
        match self {
            WeightDtype::F32 => Ok(bytemuck::cast_slice(values).to_vec()),
            WeightDtype::F16 => narrow(values, |v| {
                let h = f16::from_f32(v);
                (h.is_infinite(), h.to_bits())
            }),
            WeightDtype::Bf16 => narrow(values, |v| {
                let h = bf16::from_f32(v);
                (h.is_infinite(), h.to_bits())
            }),
        }
    }

    /// Little-endian `bytes` of this dtype as f32 (exact: f32 holds every f16 and bf16).
    fn decode(self, bytes: &[u8]) -> Vec<f32> {
        match self {
            WeightDtype::F32 => bytemuck::pod_collect_to_vec(bytes),
            WeightDtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            WeightDtype::Bf16 => bytes
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
        }
    }
}

/// Lower case, as the CLI spells it: `f32`, `f16`, `bf16`.
impl fmt::Display for WeightDtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WeightDtype::F32 => "f32",
            WeightDtype::F16 => "f16",
            WeightDtype::Bf16 => "bf16",
        })
    }
}

fn err(path: &Path, reason: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Saves the flat parameters of `spec` to `path`, as f32.
///
/// # Errors
/// [`Error::Checkpoint`] when a weight is not finite (nothing is written) or the file
/// cannot be written (the previous file, if any, is left intact).
pub fn save(path: &Path, spec: &MlpSpec, params: &[f32], norm: Normalization) -> Result<()> {
    save_as_with_metadata(path, spec, params, norm, WeightDtype::F32, &[])
}

/// As [`save`], with the tensors stored as `dtype`.
///
/// # Errors
/// As [`save`]; also when a weight is beyond `dtype`'s range (a value over 65504 in
/// magnitude for f16), naming the tensor, the element and the value.
pub fn save_as(
    path: &Path,
    spec: &MlpSpec,
    params: &[f32],
    norm: Normalization,
    dtype: WeightDtype,
) -> Result<()> {
    save_as_with_metadata(path, spec, params, norm, dtype, &[])
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
    save_as_with_metadata(path, spec, params, norm, WeightDtype::F32, extra)
}

/// As [`save_with_metadata`], with the tensors stored as `dtype`.
///
/// # Errors
/// As [`save_as`].
pub fn save_as_with_metadata(
    path: &Path,
    spec: &MlpSpec,
    params: &[f32],
    norm: Normalization,
    dtype: WeightDtype,
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
        for (name, shape, t) in [
            ("weight", vec![s.outputs, s.inputs], w),
            ("bias", vec![s.outputs], b),
        ] {
            let bytes = dtype.encode(t).map_err(|i| {
                let (largest, wider) = dtype.range();
                err(
                    path,
                    format!(
                        "refusing to save as {dtype}: {}.{name}[{i}] is {:e}, beyond {dtype}'s largest finite value {largest} ({wider} can hold it)",
                        2 * l,
                        t[i],
                    ),
                )
            })?;
            tensors.push((format!("{}.{name}", 2 * l), shape, bytes));
        }
    }
    // A fixed order (ours, then `extra` as given) so the same weights give the same bytes.
    let mut meta = vec![
        ("format", "pt".to_string()),
        ("wgtrain.sizes", spec.to_string()),
        ("wgtrain.normalize", format!("{},{}", norm.mean, norm.std)),
    ];
    meta.extend(extra.iter().cloned());
    let bytes = serialize(&tensors, dtype, &meta);
    // The file must read back as safetensors (a header bug would otherwise only show in
    // PyTorch); this is cheap next to the write.
    SafeTensors::deserialize(&bytes).map_err(|e| err(path, e.to_string()))?;
    crate::output::write_atomically(path, &bytes)
}

/// Serialises tensors `(name, shape, little-endian bytes)`, all of `dtype`, and string
/// metadata into the safetensors format, in the order given: an 8-byte little-endian header length, the JSON
/// header (`__metadata__` first, then one entry per tensor; padded with spaces to a multiple
/// of 8 bytes), then the tensors' bytes back to back.
///
/// The `safetensors` crate takes the metadata as a `HashMap`, whose iteration order is
/// random per process, so two identical runs wrote different bytes (issue 10, item 4);
/// writing the header here in a fixed order makes the file a function of its contents.
/// Format: <https://github.com/huggingface/safetensors#format>.
pub(crate) fn serialize(
    tensors: &[(String, Vec<usize>, Vec<u8>)],
    dtype: WeightDtype,
    metadata: &[(&str, String)],
) -> Vec<u8> {
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
            ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{}]}}",
            quote(name),
            dtype.safetensors_name(),
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

/// What a checkpoint's header says, read without its tensors ([`read_header`]).
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointHeader {
    /// The model its tensors describe.
    pub spec: MlpSpec,
    /// The input normalisation it was trained with, when the file records it.
    pub normalization: Option<Normalization>,
}

/// The metadata key under which a training state file (`train --state`, also safetensors)
/// keeps its JSON document: a checkpoint reader that finds it names the file for what it is.
pub(crate) const STATE_METADATA_KEY: &str = "wgtrain.state";

/// The largest safetensors header (the `safetensors` crate's own limit).
const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Reads and checks a checkpoint's header only (the 8-byte length and the JSON after it,
/// never the tensors): the tensors' names, dtypes and shapes must be an `nn.Sequential`
/// MLP, and the file must hold exactly the bytes they need. A file that claims a huge
/// tensor, or holds another model than a caller wants (compare [`CheckpointHeader::spec`]
/// before [`load`]), is thus refused without reading it.
///
/// # Errors
/// [`Error::Io`] when the file cannot be read; [`Error::Checkpoint`] when it is not
/// safetensors, its header's sizes disagree with the file's, a tensor is missing, is not
/// F32, F16 or BF16, or shapes do not chain (`weight [O, I]` of one layer must feed the
/// next), a tensor is not part of the MLP, or the normalisation entry is malformed.
pub fn read_header(path: &Path) -> Result<CheckpointHeader> {
    let (meta, _) = read_metadata(path)?;
    Ok(CheckpointHeader {
        spec: layer_chain(path, &meta)?,
        normalization: normalization_of(&meta).map_err(|why| err(path, why))?,
    })
}

/// The header of the safetensors file at `path`, parsed and checked against the file's
/// length, and the header's length in bytes (after the 8-byte length).
fn read_metadata(path: &Path) -> Result<(Metadata, u64)> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let not_st = |why: String| err(path, format!("not a safetensors file: {why}"));
    let mut file = std::fs::File::open(path).map_err(io)?;
    let file_len = file.metadata().map_err(io)?.len();
    let mut len = [0u8; 8];
    if file_len < 8 {
        return Err(not_st(format!(
            "{file_len} bytes, shorter than the 8-byte header length"
        )));
    }
    file.read_exact(&mut len).map_err(io)?;
    let n = u64::from_le_bytes(len);
    if n > MAX_HEADER_BYTES || n > file_len - 8 {
        return Err(not_st(format!(
            "the header length is {n} bytes, but the file has {} after it (and a header has at most {MAX_HEADER_BYTES})",
            file_len - 8
        )));
    }
    let mut header = vec![0u8; n as usize];
    file.read_exact(&mut header).map_err(io)?;
    let meta: Metadata =
        serde_json::from_slice(&header).map_err(|e| not_st(format!("its header: {e}")))?;
    let data = file_len - 8 - n;
    if meta.data_len() as u64 != data {
        return Err(not_st(format!(
            "its header's tensors need {} bytes of data, the file has {data} (truncated, or not this header's data; refused before reading the tensors)",
            meta.data_len()
        )));
    }
    Ok((meta, n))
}

/// The MLP the tensors of `meta` describe: `0.weight`, `0.bias`, `2.weight`, ... with
/// chaining shapes and dtypes [`load`] reads, and no other tensor.
fn layer_chain(path: &Path, meta: &Metadata) -> Result<MlpSpec> {
    let mut sizes = Vec::new();
    let mut layers = 0;
    for l in 0.. {
        let wname = format!("{}.weight", 2 * l);
        let Some(w) = meta.info(&wname) else { break };
        let bname = format!("{}.bias", 2 * l);
        let b = meta
            .info(&bname)
            .ok_or_else(|| err(path, format!("has {wname} but no {bname}")))?;
        for (n, t) in [(&wname, w), (&bname, b)] {
            if WeightDtype::from_safetensors(t.dtype).is_none() {
                return Err(err(
                    path,
                    format!("{n} is {:?}; only F32, F16 and BF16 are supported", t.dtype),
                ));
            }
        }
        let (out, inp) = match w.shape[..] {
            [o, i] => (o, i),
            ref s => {
                return Err(err(
                    path,
                    format!("{wname} has shape {s:?}, expected [out, in]"),
                ));
            }
        };
        if b.shape != [out] {
            return Err(err(
                path,
                format!("{bname} has shape {:?}, expected [{out}]", b.shape),
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
        layers += 1;
    }
    let is_state = meta
        .metadata()
        .as_ref()
        .is_some_and(|m| m.contains_key(STATE_METADATA_KEY));
    if layers == 0 && is_state {
        return Err(err(
            path,
            "is a training state (train --state), not a checkpoint: go on with it with train --resume, or save the weights with --save",
        ));
    }
    if layers == 0 {
        return Err(err(
            path,
            "no tensor named 0.weight: not an nn.Sequential MLP checkpoint",
        ));
    }
    // A tensor the layers above did not take (`1.weight`, a layer after a gap such as
    // `6.weight` after `2.weight`) would otherwise be dropped, loading a different model.
    let taken = |n: &str| {
        (0..layers).any(|l| n == format!("{}.weight", 2 * l) || n == format!("{}.bias", 2 * l))
    };
    let mut left: Vec<String> = meta
        .offset_keys()
        .into_iter()
        .filter(|n| !taken(n))
        .collect();
    if !left.is_empty() {
        left.sort_unstable();
        return Err(err(
            path,
            format!(
                "holds tensors that are not part of its MLP ({}): wgtrain reads nn.Sequential Linear layers at 0, 2, 4, ... with ReLUs between, and the {layers} layer(s) it found end at {}.bias",
                left.join(", "),
                2 * (layers - 1)
            ),
        ));
    }
    Ok(MlpSpec { sizes })
}

/// Loads a checkpoint: the model it describes, its flat parameters and, when recorded,
/// its input normalisation. The header is checked first ([`read_header`]); only then are
/// the tensors read.
///
/// # Errors
/// As [`read_header`]; [`Error::Checkpoint`] for a non-finite value (each tensor is read
/// back to f32 on its own).
pub fn load(path: &Path) -> Result<Checkpoint> {
    let header = read_header(path)?;
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| err(path, format!("not a safetensors file: {e}")))?;
    let layout = header.spec.layout();
    let mut params = vec![0.0f32; layout.len];
    for (l, s) in layout.layers.iter().enumerate() {
        for (name, at) in [("weight", s.weight), ("bias", s.bias)] {
            let full = format!("{}.{name}", 2 * l);
            let t = st
                .tensor(&full)
                .map_err(|e| err(path, format!("{full}: {e}")))?;
            // The dtype was checked with the header.
            let v = WeightDtype::from_safetensors(t.dtype())
                .map_or_else(Vec::new, |d| d.decode(t.data()));
            if let Some(i) = v.iter().position(|v| !v.is_finite()) {
                return Err(err(
                    path,
                    format!(
                        "holds a non-finite value ({full}[{i}] is {}): the model diverged",
                        v[i]
                    ),
                ));
            }
            params[at..at + v.len()].copy_from_slice(&v);
        }
    }
    Ok(Checkpoint {
        spec: header.spec,
        params,
        normalization: header.normalization,
    })
}

/// The `wgtrain.normalize` metadata (`"mean,std"`), if the checkpoint has it.
///
/// # Errors
/// Why a present value is malformed: not two numbers, or not a finite mean with a finite
/// std > 0. (A wrong normalisation would silently skew every prediction.)
fn normalization_of(meta: &Metadata) -> std::result::Result<Option<Normalization>, String> {
    let Some(s) = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("wgtrain.normalize"))
    else {
        return Ok(None);
    };
    let malformed = || {
        format!(
            "has a malformed wgtrain.normalize metadata value {s:?}: expected \"mean,std\" with \
             a finite mean and a finite std > 0 (re-save the checkpoint with wgtrain, or remove \
             the entry to load it without normalisation)"
        )
    };
    let (m, sd) = s.split_once(',').ok_or_else(malformed)?;
    let (Ok(mean), Ok(std)) = (m.trim().parse::<f32>(), sd.trim().parse::<f32>()) else {
        return Err(malformed());
    };
    if !(mean.is_finite() && std.is_finite() && std > 0.0) {
        return Err(malformed());
    }
    Ok(Some(Normalization { mean, std }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_normalize_entry_is_an_error_not_a_silent_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let spec = MlpSpec::new(5, &[3], 2).unwrap();
        let norm = Normalization {
            mean: 0.5,
            std: 0.25,
        };
        save(&path, &spec, &spec.init(1), norm).unwrap();
        assert_eq!(load(&path).unwrap().normalization, Some(norm));
        let good = std::fs::read(&path).unwrap();
        for bad in ["0.5,x.25", "0.5;0.25", "0.5,-0.2", "NaN,0.25"] {
            // Same length as "0.5,0.25", so the header length stays right.
            let mut bytes = good.clone();
            let at = bytes.windows(8).position(|w| w == b"0.5,0.25").unwrap();
            bytes[at..at + 8].copy_from_slice(bad.as_bytes());
            std::fs::write(&path, &bytes).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(
                e.contains("malformed wgtrain.normalize") && e.contains(bad),
                "{bad}: {e}"
            );
        }
    }

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

    /// Writes a safetensors file of F32 tensors `(name, shape, values)` by hand.
    fn write_tensors(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, shape, values) in tensors {
            let start = data.len();
            data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            header.insert(
                (*name).into(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [start, data.len()]}),
            );
        }
        let header = serde_json::to_string(&header).unwrap();
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend(data);
        std::fs::write(path, bytes).unwrap();
    }

    /// Regression: tensors past the chain of `0.`, `2.`, ... layers were dropped without a
    /// word (`0.*`, `1.*` loaded as a one-layer model; `0.*`, `2.*`, `6.*` as two layers),
    /// and a non-finite value was reported as "element i of 0.weight/0.bias".
    #[test]
    fn tensors_outside_the_layer_chain_and_non_finite_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let layer = |n: usize, o: usize, i: usize| {
            [
                (format!("{n}.weight"), vec![o, i], vec![0.5; o * i]),
                (format!("{n}.bias"), vec![o], vec![0.0; o]),
            ]
        };
        let write = |layers: Vec<(String, Vec<usize>, Vec<f32>)>| {
            let t: Vec<_> = layers
                .iter()
                .map(|(n, s, v)| (n.as_str(), s.clone(), v.clone()))
                .collect();
            write_tensors(&path, &t);
        };
        write([layer(0, 3, 2), layer(2, 2, 3)].concat());
        assert_eq!(load(&path).unwrap().spec.sizes, [2, 3, 2]);
        for (layers, extra) in [
            (
                [layer(0, 3, 2), layer(1, 2, 3)].concat(),
                "1.bias, 1.weight",
            ),
            (
                [layer(0, 3, 2), layer(2, 3, 3), layer(6, 2, 3)].concat(),
                "6.bias, 6.weight",
            ),
        ] {
            write(layers);
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains(&format!("not part of its MLP ({extra})")), "{e}");
        }
        let mut bad = [layer(0, 3, 2), layer(2, 2, 3)].concat();
        bad[3].2[1] = f32::NAN;
        write(bad);
        let e = load(&path).unwrap_err().to_string();
        assert!(e.contains("(2.bias[1] is NaN)"), "{e}");
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

    /// Regression (issue 25, item 10): a file whose header claims a 2 GiB tensor was read
    /// whole before anything was checked. The header is checked against the file's length
    /// first: a short file claiming it is refused from the header, and a header alone
    /// gives the model.
    #[test]
    fn regression_a_header_claiming_more_data_than_the_file_has_is_refused_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let mut header = r#"{"0.weight":{"dtype":"F32","shape":[65536,8192],"data_offsets":[0,2147483648]},"0.bias":{"dtype":"F32","shape":[65536],"data_offsets":[2147483648,2147745792]}}"#.to_string();
        while !header.len().is_multiple_of(8) {
            header.push(' ');
        }
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend(header.as_bytes());
        bytes.extend([0u8; 1024]);
        std::fs::write(&path, &bytes).unwrap();
        for e in [read_header(&path).unwrap_err(), load(&path).unwrap_err()] {
            let e = e.to_string();
            assert!(
                e.contains("need 2147745792 bytes of data, the file has 1024")
                    && e.contains("refused before reading the tensors"),
                "{e}"
            );
        }
        let spec = MlpSpec::new(5, &[3], 2).unwrap();
        save(&path, &spec, &spec.init(1), Normalization::MNIST).unwrap();
        assert_eq!(
            read_header(&path).unwrap(),
            CheckpointHeader {
                spec,
                normalization: Some(Normalization::MNIST)
            }
        );
    }

    /// The JSON header of a safetensors file: its first 8 bytes are the header's
    /// little-endian length.
    fn header(bytes: &[u8]) -> serde_json::Value {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        serde_json::from_slice(&bytes[8..8 + n]).unwrap()
    }

    /// A 4-2 model (weight [2, 4], bias [2]) holding `weight` and `bias`.
    fn model(weight: [f32; 8], bias: [f32; 2]) -> (MlpSpec, Vec<f32>) {
        let spec = MlpSpec::new(4, &[], 2).unwrap();
        let slot = &spec.layout().layers[0];
        let mut params = vec![0.0f32; spec.layout().len];
        params[slot.weight..slot.weight + 8].copy_from_slice(&weight);
        params[slot.bias..slot.bias + 2].copy_from_slice(&bias);
        (spec, params)
    }

    /// f16 and bf16 round to nearest, ties to even, as `torch.Tensor.half()` and
    /// `.bfloat16()`; values either type holds come back exactly, the others as the
    /// rounded value. The expected bit patterns are written out from the formats'
    /// definitions (1 sign, 5 exponent, 10 fraction bits for f16; 1, 8, 7 for bf16).
    #[test]
    fn f16_and_bf16_round_to_nearest_even_and_load_back_as_f32() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let exact = [0.5f32, -2.0, 1.0 / 1024.0, 0.0, -0.75, 3.0];
        let (f16_tie_down, f16_tie_up) = (1.0 + 2f32.powi(-11), 1.0 + 3.0 * 2f32.powi(-11));
        let (bf16_tie_down, bf16_tie_up) = (1.0 + 2f32.powi(-8), 1.0 + 3.0 * 2f32.powi(-8));
        let weight = [
            exact[0], exact[1], exact[2], exact[3], exact[4], exact[5], 0.1, -0.1,
        ];
        for (dtype, ties, tenth) in [
            // 0.1 is 0x2E66 in f16 (0.0999755859375) and 0x3DCD in bf16 (0.10009765625).
            (
                WeightDtype::F16,
                [f16_tie_down, f16_tie_up],
                f32::from_bits(0x3DCC_C000),
            ),
            (
                WeightDtype::Bf16,
                [bf16_tie_down, bf16_tie_up],
                f32::from_bits(0x3DCD_0000),
            ),
        ] {
            let (spec, params) = model(weight, ties);
            save_as(&path, &spec, &params, Normalization::MNIST, dtype).unwrap();
            let ck = load(&path).unwrap();
            assert_eq!(ck.spec, spec);
            assert_eq!(ck.normalization, Some(Normalization::MNIST));
            let slot = &spec.layout().layers[0];
            let w = &ck.params[slot.weight..slot.weight + 8];
            let b = &ck.params[slot.bias..slot.bias + 2];
            assert_eq!(w[..6], exact, "{dtype}: exactly representable values");
            assert_eq!([w[6], w[7]], [tenth, -tenth], "{dtype}: 0.1 rounded");
            // Halfway cases go to the even neighbour: down to 1, up to 1 + 2 ulp.
            let ulp = if dtype == WeightDtype::F16 {
                2f32.powi(-10)
            } else {
                2f32.powi(-7)
            };
            assert_eq!(b, [1.0, 1.0 + 2.0 * ulp], "{dtype}: ties to even");
            // And the same as the half crate's own conversion.
            let via_half: Vec<f32> = weight
                .iter()
                .map(|&v| match dtype {
                    WeightDtype::F16 => f16::from_f32(v).to_f32(),
                    _ => bf16::from_f32(v).to_f32(),
                })
                .collect();
            assert_eq!(w, via_half, "{dtype}");
        }
        assert_eq!(f16::from_f32(0.1).to_bits(), 0x2E66);
        assert_eq!(bf16::from_f32(0.1).to_bits(), 0x3DCD);
    }

    /// An f16 file, byte for byte from the format's definition: the header names `F16`,
    /// each value takes 2 little-endian bytes, the metadata and its order are unchanged; and
    /// the `safetensors` crate's reader (the format's reference implementation, which
    /// `safetensors.torch.load_file` wraps) reads it as F16 with those bytes.
    #[test]
    fn f16_checkpoint_bytes_follow_the_format() {
        let dir = tempfile::tempdir().unwrap();
        let spec = MlpSpec::new(2, &[], 1).unwrap();
        let slot = &spec.layout().layers[0];
        let mut params = vec![0.0f32; spec.layout().len];
        params[slot.weight..slot.weight + 2].copy_from_slice(&[1.0, -2.0]);
        params[slot.bias] = 0.5;
        let path = dir.path().join("m.safetensors");
        save_as(
            &path,
            &spec,
            &params,
            Normalization::MNIST,
            WeightDtype::F16,
        )
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let header = r#"{"__metadata__":{"format":"pt","wgtrain.sizes":"2-1","wgtrain.normalize":"0.1307,0.3081"},"0.weight":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},"0.bias":{"dtype":"F16","shape":[1],"data_offsets":[4,6]}}"#;
        let padded = format!("{header:<width$}", width = header.len().next_multiple_of(8));
        let mut want = (padded.len() as u64).to_le_bytes().to_vec();
        want.extend_from_slice(padded.as_bytes());
        // 1.0 = 0x3C00, -2.0 = 0xC000, 0.5 = 0x3800 in binary16.
        want.extend_from_slice(&[0x00, 0x3C, 0x00, 0xC0, 0x00, 0x38]);
        assert_eq!(bytes, want);
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let w = st.tensor("0.weight").unwrap();
        assert_eq!((w.dtype(), w.shape()), (Dtype::F16, &[1, 2][..]));
        assert_eq!(w.data(), [0x00, 0x3C, 0x00, 0xC0]);
        assert_eq!(st.tensor("0.bias").unwrap().dtype(), Dtype::F16);
    }

    #[test]
    fn the_header_names_the_saved_dtype_and_two_bytes_per_narrow_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let spec = MlpSpec::new(5, &[3], 2).unwrap();
        let params = spec.init(4);
        for (dtype, name, size) in [
            (WeightDtype::F32, "F32", 4),
            (WeightDtype::F16, "F16", 2),
            (WeightDtype::Bf16, "BF16", 2),
        ] {
            save_as(&path, &spec, &params, Normalization::UNIT, dtype).unwrap();
            let h = header(&std::fs::read(&path).unwrap());
            for (t, n) in [
                ("0.weight", 15),
                ("0.bias", 3),
                ("2.weight", 6),
                ("2.bias", 2),
            ] {
                assert_eq!(h[t]["dtype"], name, "{t} {h}");
                let o = &h[t]["data_offsets"];
                assert_eq!(o[1].as_u64().unwrap() - o[0].as_u64().unwrap(), n * size);
            }
            assert_eq!(dtype.safetensors_name(), name);
        }
        // f32 stays what `save` writes, byte for byte.
        save_as(&path, &spec, &params, Normalization::UNIT, WeightDtype::F32).unwrap();
        let as_f32 = std::fs::read(&path).unwrap();
        save(&path, &spec, &params, Normalization::UNIT).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), as_f32);
    }

    /// f16 tops out at 65504: a weight beyond it would be written as an infinity, so the
    /// save is refused, naming the tensor, the element and the value, and the previous
    /// file stays. bf16 has f32's exponent range and keeps 1e30 (to 8 significant bits).
    #[test]
    fn a_weight_beyond_f16_range_is_refused_and_bf16_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        // 65519 rounds down to 65504; 65520 is halfway to 65536 (an infinity) and rounds up.
        let (spec, fits) = model([65504.0, -65519.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0; 2]);
        save_as(&path, &spec, &fits, Normalization::UNIT, WeightDtype::F16).unwrap();
        let good = load(&path).unwrap().params;
        assert_eq!(good[spec.layout().layers[0].weight + 1], -65504.0);
        for (big, shown) in [(65520.0f32, "6.552e4"), (1e30, "1e30")] {
            let (_, params) = model([0.0; 8], [0.0, -big]);
            let e = save_as(&path, &spec, &params, Normalization::UNIT, WeightDtype::F16)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(&format!("refusing to save as f16: 0.bias[1] is -{shown}, beyond f16's largest finite value 65504")),
                "{e}"
            );
            assert_eq!(load(&path).unwrap().params, good, "the previous file stays");
        }
        let (_, params) = model([1e30, -1e30, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0; 2]);
        save_as(
            &path,
            &spec,
            &params,
            Normalization::UNIT,
            WeightDtype::Bf16,
        )
        .unwrap();
        let back = &load(&path).unwrap().params[spec.layout().layers[0].weight..][..2];
        assert_eq!(
            back,
            [
                bf16::from_f32(1e30).to_f32(),
                -bf16::from_f32(1e30).to_f32()
            ]
        );
        assert!((back[0] / 1e30 - 1.0).abs() <= 2f32.powi(-9));
        // Only the top of f32's range is beyond bf16's.
        let (_, params) = model([f32::MAX, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], [0.0; 2]);
        let e = save_as(
            &path,
            &spec,
            &params,
            Normalization::UNIT,
            WeightDtype::Bf16,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("0.weight[0] is 3.4028235e38, beyond bf16's"),
            "{e}"
        );
    }

    /// A tensor of another dtype (here F64, as `model.double()` would save) is refused,
    /// naming the tensor, its dtype and the ones supported.
    #[test]
    fn other_dtypes_are_refused_naming_the_tensor() {
        use safetensors::tensor::TensorView;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let w = vec![0u8; 8 * 6];
        let b = vec![0u8; 2 * 2];
        let bytes = safetensors::tensor::serialize(
            [
                (
                    "0.weight",
                    TensorView::new(Dtype::F64, vec![2, 3], &w).unwrap(),
                ),
                ("0.bias", TensorView::new(Dtype::F16, vec![2], &b).unwrap()),
            ],
            None,
        )
        .unwrap();
        std::fs::write(&path, bytes).unwrap();
        let e = load(&path).unwrap_err().to_string();
        assert!(
            e.contains("0.weight is F64; only F32, F16 and BF16 are supported"),
            "{e}"
        );
    }
}
