//! Where a run trains: [`Device`] and [`open`], the one function that opens the CPU or the
//! GPU engine for K >= 1 members (a single run is `open(device, &[cfg], data)`), and
//! [`GpuDevice`], a GPU opened in one call with the defaults. The only module outside
//! `gpu/` that names the GPU.

use crate::config::RunConfig;
use crate::cpu_engine::CpuEngine;
use crate::engine::{Engine, RunData, RunSetup, activation_rows, check_micro_batch, check_shared};
use crate::error::Result;
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::engine::GpuEngine;
use crate::gpu::{Fusions, Gpu, GpuOptions, Kernels};
use crate::member_groups::{MemberGroups, members_per_binding};

/// Where an engine runs.
#[derive(Clone, Copy)]
pub enum Device<'g> {
    /// The CPU engine ([`CpuEngine`]: SGEMM from `matrixmultiply`, all cores).
    Cpu,
    /// The GPU engine ([`GpuEngine`]) on an opened adapter, its kernels, how its matmul
    /// variants are chosen, and which step fusions it may use ([`Fusions::ALL`] unless
    /// comparing).
    Gpu {
        gpu: &'g Gpu,
        kernels: &'g Kernels,
        matmul: MatmulChoice,
        fusions: Fusions,
    },
}

/// A GPU opened with everything a run needs: the adapter and device ([`Gpu`]), its
/// kernels, autotuned matmul kernels ([`MatmulChoice::Auto`]) and every step fusion.
/// [`GpuDevice::device`] lends it to [`open`].
pub struct GpuDevice {
    pub gpu: Gpu,
    pub kernels: Kernels,
    pub matmul: MatmulChoice,
    pub fusions: Fusions,
}

impl GpuDevice {
    /// Opens the first adapter `GpuOptions::default()` finds (`WGPU_BACKEND`,
    /// `WGPU_ADAPTER_NAME` and `WGPU_POWER_PREF` apply) with the defaults.
    ///
    /// # Errors
    /// [`crate::Error::NoAdapter`] when no adapter matches (then train with
    /// [`Device::Cpu`]); the errors of [`Gpu::new`] and [`Kernels::new`].
    pub fn open() -> Result<GpuDevice> {
        GpuDevice::with_options(&GpuOptions::default())
    }

    /// Opens the adapter `options` choose (f16 runs need `shader_f16`), with autotuned
    /// matmuls and every fusion.
    ///
    /// # Errors
    /// As [`GpuDevice::open`].
    pub fn with_options(options: &GpuOptions) -> Result<GpuDevice> {
        let gpu = Gpu::new(options)?;
        let kernels = Kernels::new(&gpu)?;
        Ok(GpuDevice {
            gpu,
            kernels,
            matmul: MatmulChoice::Auto,
            fusions: Fusions::ALL,
        })
    }

    /// The device to [`open`] engines on.
    pub fn device(&self) -> Device<'_> {
        Device::Gpu {
            gpu: &self.gpu,
            kernels: &self.kernels,
            matmul: self.matmul,
            fusions: self.fusions,
        }
    }
}

/// Opens the engine for `device` with one member per configuration in `configs` (a single
/// run: one), built on `data`, each member's parameters initialised from its
/// `init_seed()` ([`crate::model::MlpSpec::init`]; [`Engine::set_params`] replaces them).
/// Members share the minibatch stream ([`crate::engine::PopulationSetup::new`]). On a GPU, a
/// population whose stacked tensors pass one storage binding is split into groups that
/// each fit, run as one [`MemberGroups`] engine.
///
/// # Errors
/// [`crate::Error::InvalidConfig`] for an invalid configuration ([`RunConfig::validate`]),
/// one that does not fit the data (a minibatch larger than the training samples left after
/// the validation split) or members that cannot share a minibatch stream; for the GPU,
/// [`crate::Error::LimitExceeded`] and [`crate::Error::Gpu`] as [`GpuEngine::new`].
pub fn open<'a>(
    device: Device<'a>,
    configs: &[RunConfig],
    data: RunData<'a>,
) -> Result<Box<dyn Engine + 'a>> {
    Ok(match device {
        Device::Cpu => Box::new(CpuEngine::new(configs, data)?),
        Device::Gpu {
            gpu,
            kernels,
            matmul,
            fusions,
        } => {
            let per_group = gpu_members_per_group(gpu, configs, data)?;
            let mut groups: Vec<Box<dyn Engine + 'a>> = Vec::new();
            for group in configs.chunks(per_group) {
                let engine = GpuEngine::new(gpu, kernels, matmul, fusions, group, data)?;
                groups.push(Box::new(engine));
            }
            if groups.len() == 1 {
                groups.pop().expect("one group")
            } else {
                Box::new(MemberGroups::new(groups)?)
            }
        }
    })
}

/// How many of `configs`' members one GPU engine holds: all of them, unless their stacked
/// tensors pass the adapter's storage-binding (or buffer) size; then as many as fit one
/// binding ([`members_per_binding`]), the population running as [`MemberGroups`]. Checks
/// first that all members can share one minibatch stream (the micro-batch, their smallest
/// minibatch size, dividing each one's), since no group sees the others.
fn gpu_members_per_group(gpu: &Gpu, configs: &[RunConfig], data: RunData<'_>) -> Result<usize> {
    let Some(first) = configs.first() else {
        return Ok(1);
    };
    let micro = configs.iter().map(|c| c.batch_size).min().unwrap_or(1);
    for (k, c) in configs.iter().enumerate() {
        check_shared(first, c, k)?;
        check_micro_batch(micro, c, k)?;
    }
    let shared = RunSetup::new(first, data)?;
    let rows = activation_rows(micro, data.test.len().max(shared.validation.len()));
    let binding = gpu
        .limits
        .max_storage_buffer_binding_size
        .min(gpu.limits.max_buffer_size);
    Ok(members_per_binding(&shared.spec, rows, binding))
}
