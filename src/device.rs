//! Where a run trains: [`Device`] and [`open`], the one function that opens the CPU or the
//! GPU engine from a [`RunConfig`]. The only module outside `gpu/` that names the GPU.

use crate::config::RunConfig;
use crate::cpu_engine::CpuEngine;
use crate::engine::{Engine, RunData};
use crate::error::Result;
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::engine::GpuEngine;
use crate::gpu::population::GpuPopulation;
use crate::gpu::{Fusions, Gpu, Kernels};
use crate::population::PopulationEngine;
use crate::population::cpu::CpuPopulation;

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

/// Opens the engine for `device`, built for `cfg` on `data`, with the parameters
/// initialised from `cfg.seed` ([`crate::model::MlpSpec::init`]; [`Engine::set_params`] replaces them).
///
/// # Errors
/// [`crate::Error::InvalidConfig`] for an invalid configuration ([`RunConfig::validate`]) or one
/// that does not fit the data (a minibatch larger than the training samples left after the
/// validation split); for the GPU, [`crate::Error::LimitExceeded`] and [`crate::Error::Gpu`] as
/// [`GpuEngine::new`].
pub fn open<'a>(
    device: Device<'a>,
    cfg: &RunConfig,
    data: RunData<'a>,
) -> Result<Box<dyn Engine + 'a>> {
    Ok(match device {
        Device::Cpu => Box::new(CpuEngine::new(cfg, data)?),
        Device::Gpu {
            gpu,
            kernels,
            matmul,
            fusions,
        } => Box::new(GpuEngine::new(gpu, kernels, matmul, fusions, cfg, data)?),
    })
}

/// Opens the population engine for `device`: one member per configuration in `configs`
/// (see [`crate::population`]), each initialised from its `init_seed()`: the
/// [`CpuPopulation`] or the [`GpuPopulation`] (its matmul kernels chosen by `matmul` as a
/// single engine's would be for the same shapes).
///
/// # Errors
/// [`crate::Error::InvalidConfig`] as [`crate::population::PopulationSetup::new`]; for the
/// GPU, [`crate::Error::LimitExceeded`] and [`crate::Error::Gpu`] when the population does
/// not fit the adapter.
pub fn open_population<'a>(
    device: Device<'a>,
    configs: &[RunConfig],
    data: RunData<'a>,
) -> Result<Box<dyn PopulationEngine + 'a>> {
    Ok(match device {
        Device::Cpu => Box::new(CpuPopulation::new(configs, data)?),
        Device::Gpu {
            gpu,
            kernels,
            matmul,
            fusions: _,
        } => Box::new(GpuPopulation::new(gpu, kernels, matmul, configs, data)?),
    })
}
