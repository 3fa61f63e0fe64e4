//! Saving a run's model without losing it: with `--save-dtype f16|bf16`, a weight beyond the
//! narrower type's range makes the checkpoint refuse to save (it would hold an infinity). The
//! trained weights are then written as f32 next to the requested file, and the error says
//! where, so a long run is never thrown away at its last step.

use std::path::{Path, PathBuf};

use wgtrain::checkpoint::{self, WeightDtype};
use wgtrain::data::Normalization;
use wgtrain::model::MlpSpec;

/// File extensions of `torch.save` pickles, which a safetensors file named so is mistaken
/// for (`torch.load` cannot read it).
const TORCH_SAVE_EXTENSIONS: [&str; 6] = ["pt", "pth", "bin", "ckpt", "pkl", "tar"];

/// The warning for a checkpoint path named like a `torch.save` file (`m.pt`): the file
/// will be safetensors, loaded with `safetensors.torch.load_file`, not `torch.load`.
/// `None` for other names.
pub fn torch_save_name_warning(path: &Path) -> Option<String> {
    let ext = path.extension()?.to_string_lossy().to_lowercase();
    TORCH_SAVE_EXTENSIONS.contains(&ext.as_str()).then(|| {
        format!(
            "warning: {} will be a safetensors file, not a torch.save pickle: load it with \
             safetensors.torch.load_file(\"{}\") (torch.load cannot read it), or name it {}",
            path.display(),
            path.display(),
            path.with_extension("safetensors").display()
        )
    })
}

/// Prints [`torch_save_name_warning`] for each checkpoint path given.
pub fn warn_torch_save_names<'a>(paths: impl IntoIterator<Item = Option<&'a Path>>) {
    for warning in paths
        .into_iter()
        .flatten()
        .filter_map(torch_save_name_warning)
    {
        note!("{warning}");
    }
}

/// Where the f32 fallback of `path` goes: `m.safetensors` -> `m.f32.safetensors`.
pub fn f32_sibling(path: &Path) -> PathBuf {
    let stem = path.file_stem().unwrap_or_default().to_string_lossy();
    let name = match path.extension() {
        Some(ext) => format!("{stem}.f32.{}", ext.to_string_lossy()),
        None => format!("{stem}.f32"),
    };
    path.with_file_name(name)
}

/// How `train` saves its weights: the element type (`--save-dtype`) and whether the input
/// normalisation is folded into the first layer (`--fold-normalize`).
#[derive(Clone, Copy, Debug)]
pub struct SaveAs {
    pub dtype: WeightDtype,
    pub fold_normalization: bool,
}

/// [`checkpoint::save_as_with_metadata`]; when that refuses a narrower `dtype` and the f32
/// weights can be saved (they are finite) to [`f32_sibling`] (not already a file), saves
/// them there and returns the refusal with that path and the fix appended. With
/// `fold_normalization`, the weights saved take pixels in [0, 1]
/// ([`MlpSpec::fold_input_normalization`]); the file then records no normalisation and
/// `wgtrain.normalize_folded = "mean,std"`.
///
/// # Errors
/// The checkpoint's error (with the fallback's path when it was written), or the
/// fallback's own write error.
pub fn save_checkpoint(
    path: &Path,
    spec: &MlpSpec,
    params: &[f32],
    norm: Normalization,
    how: SaveAs,
    extra: &[(&str, String)],
) -> anyhow::Result<()> {
    if how.fold_normalization {
        let folded = spec.fold_input_normalization(params, norm);
        let mut extra = extra.to_vec();
        extra.push((
            "wgtrain.normalize_folded",
            format!("{},{}", norm.mean, norm.std),
        ));
        let how = SaveAs {
            fold_normalization: false,
            ..how
        };
        return save_checkpoint(path, spec, &folded, Normalization::UNIT, how, &extra);
    }
    let dtype = how.dtype;
    let refused = match checkpoint::save_as_with_metadata(path, spec, params, norm, dtype, extra) {
        Ok(()) => return Ok(()),
        Err(e) if dtype != WeightDtype::F32 && params.iter().all(|v| v.is_finite()) => e,
        Err(e) => return Err(e.into()),
    };
    let fallback = f32_sibling(path);
    if fallback.exists() {
        anyhow::bail!(
            "{refused}; the f32 weights were not saved to {} either (it exists): rerun with --save-dtype f32 or bf16",
            fallback.display()
        );
    }
    checkpoint::save_as_with_metadata(&fallback, spec, params, norm, WeightDtype::F32, extra)?;
    anyhow::bail!(
        "{refused}; the trained weights were saved as f32 to {} instead (use --save-dtype f32 or bf16 for weights this large)",
        fallback.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_and_params(big: f32) -> (MlpSpec, Vec<f32>) {
        let spec = MlpSpec::new(2, &[], 2).unwrap();
        let layout = spec.layout();
        let s = &layout.layers[0];
        // The layout pads between tensors; a loaded checkpoint has zeros there.
        let mut params = vec![0.0; layout.len];
        params[s.weight..s.weight + 4].fill(0.25);
        params[s.bias..s.bias + 2].fill(0.25);
        params[s.weight + 1] = big;
        (spec, params)
    }

    /// A weight past f16's 65504 keeps the run's weights: written as f32 beside the asked
    /// file, which is not written, and the error names both.
    #[test]
    fn weights_beyond_f16_are_saved_as_f32_beside_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let (spec, params) = spec_and_params(1e6);
        let e = save_checkpoint(
            &path,
            &spec,
            &params,
            Normalization::UNIT,
            SaveAs {
                dtype: WeightDtype::F16,
                fold_normalization: false,
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        let fallback = dir.path().join("m.f32.safetensors");
        assert!(e.contains("refusing to save as f16"), "{e}");
        assert!(e.contains(&fallback.display().to_string()), "{e}");
        assert!(!path.exists());
        assert_eq!(checkpoint::load(&fallback).unwrap().params, params);
        // A second refusal does not overwrite the first fallback.
        let e = save_checkpoint(
            &path,
            &spec,
            &params,
            Normalization::UNIT,
            SaveAs {
                dtype: WeightDtype::F16,
                fold_normalization: false,
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("(it exists)"), "{e}");
    }

    /// Non-finite weights are refused as before, with no fallback written.
    #[test]
    fn diverged_weights_get_no_fallback() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        let (spec, params) = spec_and_params(f32::NAN);
        let e = save_checkpoint(
            &path,
            &spec,
            &params,
            Normalization::UNIT,
            SaveAs {
                dtype: WeightDtype::F16,
                fold_normalization: false,
            },
            &[],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("diverged"), "{e}");
        assert!(!dir.path().join("m.f32.safetensors").exists());
    }

    /// Regression (issue 26, item 11): `--save m.pt` wrote a safetensors file silently,
    /// which `torch.load` then fails to read.
    #[test]
    fn a_checkpoint_named_like_a_torch_save_file_gets_a_warning() {
        let w = torch_save_name_warning(Path::new("out/m.pt")).unwrap();
        assert!(
            w.contains("out/m.pt will be a safetensors file, not a torch.save pickle")
                && w.contains("safetensors.torch.load_file(\"out/m.pt\")")
                && w.contains("out/m.safetensors"),
            "{w}"
        );
        for name in ["m.PTH", "m.bin", "m.ckpt"] {
            assert!(torch_save_name_warning(Path::new(name)).is_some(), "{name}");
        }
        for name in ["m.safetensors", "m", "m.st"] {
            assert_eq!(torch_save_name_warning(Path::new(name)), None, "{name}");
        }
    }

    #[test]
    fn the_fallback_sits_beside_the_file() {
        assert_eq!(
            f32_sibling(Path::new("a/m.safetensors")),
            Path::new("a/m.f32.safetensors")
        );
        assert_eq!(f32_sibling(Path::new("m")), Path::new("m.f32"));
    }
}
