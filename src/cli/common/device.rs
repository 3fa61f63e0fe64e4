//! Where to run: the device flags every training command shares ([`DeviceArgs`]), the
//! refusal of GPU-only flags with `--device cpu`, opening the GPU the flags name and the
//! matmul variant policy of `--kernels`.

use anyhow::Result;
use clap::{Args, ValueEnum};

use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::kernels::matmul::{self, Tile2d};
use wgtrain::gpu::{Gpu, GpuOptions, MatmulVariant};

use super::errors::usage;

/// Where to run.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// gpu: WGSL kernels through wgpu; cpu: the SGEMM path (no GPU needed).
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    pub device: DeviceKind,
    /// Restrict the adapter search to one backend (default: all; `WGPU_BACKEND` is honoured).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Use the first adapter whose name contains this (case-insensitive; `WGPU_ADAPTER_NAME` is honoured).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Matmul kernel (GPU only; default auto): auto times this adapter's candidates on
    /// each of the run's shapes and keeps the fastest (subgroup and rows with subgroups of
    /// 8, as on lavapipe; rows and register on other CPU adapters; on GPUs the three
    /// tiled2d block shapes first, then the others); subgroup needs an adapter with
    /// subgroups of exactly 8.
    #[arg(long, value_enum)]
    pub kernels: Option<KernelChoice>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl Backend {
    /// The wgpu backend set of this one backend.
    pub fn to_wgpu(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    Auto,
    Tiled,
    Register,
    Rows,
    Subgroup,
    /// 2-D register-tiled kernel for discrete GPUs, 64x64 outputs per workgroup.
    #[value(name = "tiled2d-64x64")]
    Tiled2d64x64,
    /// 2-D register-tiled kernel, 128x64 outputs per workgroup.
    #[value(name = "tiled2d-128x64")]
    Tiled2d128x64,
    /// 2-D register-tiled kernel, 128x128 outputs per workgroup.
    #[value(name = "tiled2d-128x128")]
    Tiled2d128x128,
}

/// Refuses GPU-only flags with `--device cpu`, where they would be silently ignored.
pub fn check_device_args(d: &DeviceArgs) -> Result<()> {
    if d.device != DeviceKind::Cpu {
        return Ok(());
    }
    let given = [
        (
            "kernels",
            d.kernels
                .and_then(|k| k.to_possible_value())
                .map(|v| v.get_name().to_string()),
        ),
        (
            "backend",
            d.backend.map(|b| format!("{b:?}").to_lowercase()),
        ),
        ("adapter", d.adapter.clone()),
    ];
    for (flag, value) in given {
        if let Some(v) = value {
            return Err(usage(flag, v, "applies to --device gpu only"));
        }
    }
    Ok(())
}

/// Opens the adapter the flags choose, prints its description on stderr, and checks that
/// `--kernels subgroup` can run on it.
///
/// # Errors
/// [`wgtrain::Error::NoAdapter`] when no adapter matches; a usage error (exit 2) when
/// `--kernels subgroup` needs subgroups the adapter lacks.
pub fn open_gpu(d: &DeviceArgs) -> Result<Gpu> {
    let gpu = Gpu::new(&GpuOptions {
        backends: d.backend.map(|b| b.to_wgpu()),
        adapter_name: d.adapter.clone(),
    })?;
    eprintln!("{}", gpu.describe());
    if d.kernels == Some(KernelChoice::Subgroup) {
        if let Err(reason) = matmul::subgroup_device_support(&gpu) {
            return Err(usage(
                "kernels",
                "subgroup",
                format!("{reason}; use --kernels auto"),
            ));
        }
    }
    Ok(gpu)
}

/// The matmul variant policy the flag names: fixed, or timed per shape (`auto`).
pub fn matmul_choice(d: &DeviceArgs) -> MatmulChoice {
    match d.kernels.unwrap_or(KernelChoice::Auto) {
        KernelChoice::Tiled => MatmulVariant::Tiled.into(),
        KernelChoice::Register => MatmulVariant::Register.into(),
        KernelChoice::Rows => MatmulVariant::Rows.into(),
        KernelChoice::Subgroup => MatmulVariant::Subgroup.into(),
        KernelChoice::Tiled2d64x64 => MatmulVariant::Tiled2d(Tile2d::T64x64).into(),
        KernelChoice::Tiled2d128x64 => MatmulVariant::Tiled2d(Tile2d::T128x64).into(),
        KernelChoice::Tiled2d128x128 => MatmulVariant::Tiled2d(Tile2d::T128x128).into(),
        KernelChoice::Auto => MatmulChoice::Auto,
    }
}
