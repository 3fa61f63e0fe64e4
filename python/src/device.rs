//! Which device a population trains on: `"cpu"`, `"gpu"`, or `"auto"` (the CLI's rule: the
//! GPU path on a hardware adapter, the CPU path when the only adapters are software ones
//! such as lavapipe). A GPU is opened once per process (per f16 need) and shared by every
//! population opened on it.

use std::sync::{Arc, Mutex};

use pyo3::prelude::*;
use wgtrain::GpuDevice;
use wgtrain::gpu::{GpuOptions, candidate_adapters, is_software_adapter};

use crate::errors::{config_error, to_py};

/// The opened GPUs: `[f32 only, with SHADER_F16]`.
static GPUS: Mutex<[Option<Arc<GpuDevice>>; 2]> = Mutex::new([None, None]);

/// `"gpu"` or `"cpu"` for `device` (`"auto"` resolved), and why, for `describe`.
pub fn resolve(device: &str, f16: bool) -> PyResult<(&'static str, String)> {
    match device {
        "gpu" => Ok(("gpu", "device=\"gpu\"".into())),
        "cpu" => Ok(("cpu", "device=\"cpu\"".into())),
        "auto" if f16 => Ok(("gpu", "precision=\"f16\" runs on the GPU path".into())),
        "auto" => {
            let adapters = candidate_adapters(&GpuOptions::default()).map_err(to_py)?;
            Ok(
                match adapters.iter().find(|a| !is_software_adapter(&a.info)) {
                    Some(a) => ("gpu", format!("device=\"auto\": {}", a.info.name)),
                    None => (
                        "cpu",
                        "device=\"auto\": no hardware GPU adapter (a software one is slower \
                         than the CPU path; device=\"gpu\" uses it)"
                            .into(),
                    ),
                },
            )
        }
        other => Err(config_error(format!(
            "device=\"{other}\" is not \"auto\", \"gpu\" or \"cpu\""
        ))),
    }
}

/// The process's GPU, opened on first use (`shader_f16` for f16 runs).
pub fn gpu(f16: bool) -> wgtrain::Result<Arc<GpuDevice>> {
    // A poisoned lock only means another thread panicked while opening; the cache is a
    // plain array and stays consistent.
    let mut gpus = GPUS.lock().unwrap_or_else(|e| e.into_inner());
    let slot = &mut gpus[usize::from(f16)];
    if let Some(g) = slot {
        return Ok(g.clone());
    }
    let g = Arc::new(GpuDevice::with_options(&GpuOptions {
        shader_f16: f16,
        ..GpuOptions::default()
    })?);
    *slot = Some(g.clone());
    Ok(g)
}
