//! One place that turns the device flags into a training engine: the CPU engine, or a GPU
//! engine on a device opened once (matmul timings per shape are cached with its kernels).
//! `train`, `eval`, `profile`, `lr-find`, `bench` and `sweep` all open their engines here,
//! from [`RunConfig`]s (one per member) through [`wgtrain::device::open`].

use anyhow::Result;

use wgtrain::RunConfig;
use wgtrain::device::{self, Device};
use wgtrain::engine::{Engine, RunData};
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::{Gpu, Kernels};

use wgtrain::Precision;

use super::common::{
    DeviceArgs, DeviceKind, check_device_args, check_precision_args, fusions, matmul_choice,
    open_gpu_for, resolve_device,
};

/// Opens engines on one device, opened once.
pub(crate) struct Engines {
    device: DeviceArgs,
    gpu: Option<(Gpu, Kernels)>,
}

impl Engines {
    /// Opens the device the flags name, for f32 runs.
    pub(crate) fn open(d: &DeviceArgs) -> Result<Engines> {
        Engines::open_for(d, Precision::F32)
    }

    /// Opens the device the flags name, for runs of `precision` (f16: checked against the
    /// flags and the adapter, the device opened with `SHADER_F16`). `--device auto` is
    /// resolved here ([`resolve_device`]) unless the command resolved it before.
    pub(crate) fn open_for(d: &DeviceArgs, precision: Precision) -> Result<Engines> {
        let d = &resolve_device(d, precision, None)?;
        check_device_args(d)?;
        check_precision_args(d, precision)?;
        let gpu = match d.device {
            DeviceKind::Cpu => None,
            DeviceKind::Gpu | DeviceKind::Auto => {
                let gpu = open_gpu_for(d, precision)?;
                let kernels = Kernels::new(&gpu)?;
                Some((gpu, kernels))
            }
        };
        Ok(Engines {
            device: d.clone(),
            gpu,
        })
    }

    /// The device the flags chose, for [`wgtrain::device::open`].
    pub(crate) fn device(&self) -> Device<'_> {
        match &self.gpu {
            None => Device::Cpu,
            Some((gpu, kernels)) => Device::Gpu {
                gpu,
                kernels,
                matmul: matmul_choice(&self.device),
                fusions: fusions(&self.device),
            },
        }
    }

    /// The GPU's limits (the adapter's own); `None` on the CPU.
    pub(crate) fn gpu_limits(&self) -> Option<&wgpu::Limits> {
        self.gpu.as_ref().map(|(gpu, _)| &gpu.limits)
    }

    /// Opens an engine for `cfg` on `data` (one member), starting from `params` when given
    /// (else from `cfg.seed`'s initialisation), and hands it to `f`.
    pub(crate) fn with<R>(
        &mut self,
        cfg: &RunConfig,
        data: RunData<'_>,
        params: Option<&[f32]>,
        f: impl FnOnce(&mut dyn Engine) -> Result<R>,
    ) -> Result<R> {
        let mut engine = self.engine(std::slice::from_ref(cfg), data)?;
        if let Some(p) = params {
            engine.set_params(0, p)?;
        }
        f(engine.as_mut())
    }

    /// Opens an engine with one member per configuration of `configs` on `data`.
    pub(crate) fn engine<'a>(
        &'a self,
        configs: &[RunConfig],
        data: RunData<'a>,
    ) -> Result<Box<dyn Engine + 'a>> {
        Ok(device::open(self.device(), configs, data)?)
    }

    /// Opens the GPU engine and hands it to `f` with its device and kernels (profiling
    /// needs the concrete engine, and its roofline probe the kernels). `Ok(None)` when the
    /// flags chose the CPU.
    pub(crate) fn with_gpu<R>(
        &mut self,
        cfg: &RunConfig,
        data: RunData<'_>,
        f: impl FnOnce(&Gpu, &Kernels, &mut GpuEngine<'_>) -> Result<R>,
    ) -> Result<Option<R>> {
        let Some((gpu, kernels)) = &self.gpu else {
            return Ok(None);
        };
        let choice = matmul_choice(&self.device);
        let fusions = fusions(&self.device);
        let cfgs = std::slice::from_ref(cfg);
        let mut engine = GpuEngine::new(gpu, kernels, choice, fusions, cfgs, data)?;
        f(gpu, kernels, &mut engine).map(Some)
    }
}
