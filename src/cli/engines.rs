//! One place that turns the device flags into a training engine: the CPU engine, or a GPU
//! engine on a device opened once (matmul timings per shape are cached with its kernels).
//! `train`, `profile`, `lr-find` and `sweep` all build their engines here.

use anyhow::Result;

use wgtrain::cpu_engine::CpuEngine;
use wgtrain::data::Dataset;
use wgtrain::engine::Engine;
use wgtrain::gpu::engine::{GpuEngine, GpuEngineConfig};
use wgtrain::gpu::{Gpu, Kernels};
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::optim::SgdConfig;

use super::common::{DeviceArgs, DeviceKind, check_device_args, matmul_choice, open_gpu};

/// What one engine is built from.
pub(crate) struct EngineSpec<'a> {
    pub spec: &'a MlpSpec,
    pub params: &'a [f32],
    pub train: &'a Dataset,
    pub validation: &'a [u32],
    pub test: &'a Dataset,
    pub batch_size: usize,
    pub sgd: &'a SgdConfig,
    pub norm: Normalization,
}

/// Builds engines on one device, opened once.
pub(crate) struct Engines {
    device: DeviceArgs,
    gpu: Option<(Gpu, Kernels)>,
}

impl Engines {
    /// Opens the device the flags name.
    pub(crate) fn open(d: &DeviceArgs) -> Result<Engines> {
        check_device_args(d)?;
        let gpu = match d.device {
            DeviceKind::Cpu => None,
            DeviceKind::Gpu => {
                let gpu = open_gpu(d)?;
                let kernels = Kernels::new(&gpu)?;
                Some((gpu, kernels))
            }
        };
        Ok(Engines {
            device: d.clone(),
            gpu,
        })
    }

    /// Builds an engine and hands it to `f`.
    pub(crate) fn with<R>(
        &mut self,
        s: EngineSpec<'_>,
        f: impl FnOnce(&mut dyn Engine) -> Result<R>,
    ) -> Result<R> {
        if self.gpu.is_none() {
            let mut engine = CpuEngine::new(
                s.spec,
                s.params,
                s.train,
                s.validation,
                s.test,
                s.batch_size,
                s.sgd,
                s.norm,
            );
            return f(&mut engine);
        }
        self.with_gpu(s, |_, engine| f(engine))
            .map(|r| r.expect("a GPU was opened"))
    }

    /// Builds the GPU engine and hands it to `f` with its device (profiling needs the
    /// concrete engine). `Ok(None)` when the flags chose the CPU.
    pub(crate) fn with_gpu<R>(
        &mut self,
        s: EngineSpec<'_>,
        f: impl FnOnce(&Gpu, &mut GpuEngine<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        let Some((gpu, kernels)) = &self.gpu else {
            return Ok(None);
        };
        let mut engine = GpuEngine::new(
            gpu,
            kernels,
            GpuEngineConfig {
                spec: s.spec,
                params: s.params,
                train: s.train,
                validation: s.validation,
                test: s.test,
                batch_size: s.batch_size,
                sgd: s.sgd,
                normalization: s.norm,
                variant: matmul_choice(&self.device),
            },
        )?;
        f(gpu, &mut engine).map(Some)
    }
}
