//! Where to run: the device flags every training command shares ([`DeviceArgs`]), what
//! `--device auto` chooses ([`resolve_device`]), the refusal of GPU-only flags with
//! `--device cpu`, opening the GPU the flags name and the
//! matmul variant policy of `--kernels`; `--precision` ([`PrecisionArgs`], for `train`,
//! `bench` and `profile`) and its checks against the other device flags and the adapter.

use anyhow::Result;
use clap::{Args, ValueEnum};

use wgtrain::Precision;
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::kernels::matmul::f16 as matmul_f16;
use wgtrain::gpu::kernels::matmul::{self, Tile2d};
use wgtrain::gpu::{
    Fusions, Gpu, GpuOptions, MatmulVariant, candidate_adapters, is_software_adapter,
};

use super::errors::usage;

/// Where to run.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// auto (default): the GPU path on a hardware GPU adapter, else the CPU path (software
    /// adapters such as lavapipe, llvmpipe, WARP or SwiftShader are slower than it), with
    /// a line saying which and why; a GPU-only flag (--backend, --adapter, --kernels,
    /// --fuse, --precision f16) or WGPU_ADAPTER_NAME chooses the GPU path. gpu: WGSL
    /// kernels through wgpu on any adapter, software ones included; cpu: the SGEMM path (no
    /// GPU needed). `profile` always times the GPU.
    #[arg(long, value_enum, default_value_t = DeviceKind::Auto)]
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
    /// tiled2d block shapes first, then tiled2d-subgroup where the adapter has subgroups,
    /// then the others); subgroup needs an adapter with subgroups of exactly 8;
    /// tiled2d-subgroup (64x256 blocks, A shared by subgroup shuffles, written for 32-lane
    /// subgroups) needs subgroups whose smallest size is 4 to 32.
    #[arg(long, value_enum)]
    pub kernels: Option<KernelChoice>,
    /// Step fusions the GPU engine may use (default all): `all`, `none`, or a
    /// comma-separated list of `gather` (layer 0 reads the u8 pixels itself), `output` (the
    /// output layer inside the softmax kernel), `update` (SGD in the weight-gradient
    /// epilogue). Each applies only where the adapter and shapes allow; fused and unfused
    /// steps compute the same values. `none` is for side-by-side measurement.
    #[arg(long, value_enum, value_delimiter = ',', num_args = 1)]
    pub fuse: Vec<FuseChoice>,
}

/// The values of `--fuse`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FuseChoice {
    All,
    None,
    Gather,
    Output,
    Update,
}

/// The fusions `--fuse` names ([`Fusions::ALL`] when absent).
pub fn fusions(d: &DeviceArgs) -> Fusions {
    if d.fuse.is_empty() || d.fuse.contains(&FuseChoice::All) {
        return Fusions::ALL;
    }
    Fusions {
        gather: d.fuse.contains(&FuseChoice::Gather),
        output_layer: d.fuse.contains(&FuseChoice::Output),
        update: d.fuse.contains(&FuseChoice::Update),
    }
}

/// Storage precision of the matmul operands (`train`, `bench`, `profile`).
#[derive(Args, Debug, Clone)]
pub struct PrecisionArgs {
    /// Matmul operand precision (GPU only; default f32). f16: activations and a copy of the
    /// weights (refreshed after every update) stored as f16 and multiplied with f32 sums;
    /// weights, gradients and momentum stay f32. Needs an adapter with SHADER_F16
    /// (shaderFloat16); every product then runs the one f16 kernel (no --kernels).
    #[arg(long, value_enum, default_value_t = PrecisionChoice::F32)]
    pub precision: PrecisionChoice,
}

/// The values of `--precision`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionChoice {
    F32,
    F16,
}

impl PrecisionChoice {
    /// The library's [`Precision`].
    pub fn to_lib(self) -> Precision {
        match self {
            PrecisionChoice::F32 => Precision::F32,
            PrecisionChoice::F16 => Precision::F16,
        }
    }
}

/// Refuses `--precision f16` with `--device cpu` (the CPU engine computes in f32) and with
/// a fixed `--kernels` (those are the f32 kernels; f16 runs `matmul_f16`).
pub fn check_precision_args(d: &DeviceArgs, precision: Precision) -> Result<()> {
    if precision == Precision::F32 {
        return Ok(());
    }
    if d.device == DeviceKind::Cpu {
        return Err(usage(
            "precision",
            precision,
            "applies to --device gpu only (the CPU engine computes in f32); use --precision f32",
        ));
    }
    if let Some(k) = d.kernels.filter(|&k| k != KernelChoice::Auto) {
        let name = k
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        return Err(usage(
            "kernels",
            name,
            "picks among the f32 matmul kernels; --precision f16 runs matmul_f16 for every product (drop --kernels or use --precision f32)",
        ));
    }
    Ok(())
}

/// The values of `--device` (their docs are `--help`'s).
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    /// A hardware GPU adapter if there is one, else the CPU.
    Auto,
    /// The GPU path on any adapter, software ones included.
    Gpu,
    /// The CPU path.
    Cpu,
}

/// The GPU-only flag (or `WGPU_ADAPTER_NAME`) given in `d`, as a user would name it, or
/// `command_flag` (a command's own GPU-only flag, such as `train --profile`): any of them
/// makes `--device auto` choose the GPU path.
fn gpu_flag_given(
    d: &DeviceArgs,
    precision: Precision,
    command_flag: Option<&str>,
) -> Option<String> {
    let flags = [
        ("--backend", d.backend.is_some()),
        ("--adapter", d.adapter.is_some()),
        ("--kernels", d.kernels.is_some()),
        ("--fuse", !d.fuse.is_empty()),
        ("--precision f16", precision == Precision::F16),
        (
            "WGPU_ADAPTER_NAME",
            std::env::var_os("WGPU_ADAPTER_NAME").is_some_and(|v| !v.is_empty()),
        ),
    ];
    command_flag
        .map(str::to_string)
        .or_else(|| flags.iter().find(|f| f.1).map(|f| f.0.to_string()))
}

/// What `--device auto` chooses among `adapters` (those the GPU path would choose among,
/// most capable first) and why: the GPU path on the first hardware adapter; else the CPU
/// path, naming the software adapter passed over (training on one is slower than the CPU
/// engine: 13 s against 0.74-0.82 s for an MNIST epoch at batch 64 on lavapipe on a
/// 2-core machine) or that there is none.
fn auto_choice(adapters: &[wgpu::AdapterInfo]) -> (DeviceKind, String) {
    let label =
        |i: &wgpu::AdapterInfo| format!("{} ({:?}, {:?})", i.name, i.device_type, i.backend);
    if let Some(hw) = adapters.iter().find(|i| !is_software_adapter(i)) {
        return (
            DeviceKind::Gpu,
            format!("a hardware GPU adapter, {}", label(hw)),
        );
    }
    match adapters.first() {
        Some(sw) => (
            DeviceKind::Cpu,
            format!(
                "no hardware GPU adapter; {} is a software one, slower than the CPU path; --device gpu uses it",
                label(sw)
            ),
        ),
        None => (
            DeviceKind::Cpu,
            "no GPU adapter found; --device gpu needs one".to_string(),
        ),
    }
}

/// `d` with `--device auto` made definite, printing on stderr one line saying which device
/// was chosen and why (`device: cpu (--device auto: no hardware GPU adapter; ...)`); `d`
/// as it is for `--device gpu` or `cpu`. A GPU-only flag ([`gpu_flag_given`], with
/// `command_flag` a command's own) chooses the GPU; otherwise the adapters are listed
/// (not opened) and [`auto_choice`] decides.
///
/// # Errors
/// A `WGPU_BACKEND` that names no backend (exit 2, as when the GPU is opened).
pub fn resolve_device(
    d: &DeviceArgs,
    precision: Precision,
    command_flag: Option<&str>,
) -> Result<DeviceArgs> {
    if d.device != DeviceKind::Auto {
        return Ok(d.clone());
    }
    let (device, why) = match gpu_flag_given(d, precision, command_flag) {
        Some(flag) => (DeviceKind::Gpu, format!("{flag} applies to the GPU path")),
        None => {
            let adapters = candidate_adapters(&GpuOptions::default())?;
            let infos: Vec<wgpu::AdapterInfo> = adapters.into_iter().map(|a| a.info).collect();
            auto_choice(&infos)
        }
    };
    let name = match device {
        DeviceKind::Gpu => "gpu",
        _ => "cpu",
    };
    note!("device: {name} (--device auto: {why})");
    Ok(DeviceArgs {
        device,
        ..d.clone()
    })
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
    /// 2-D tiled kernel for GPUs with subgroups, 64x256 outputs per workgroup, rows of A
    /// shared by subgroup shuffles (teams of the adapter's smallest subgroup size).
    #[value(name = "tiled2d-subgroup")]
    Tiled2dSubgroup,
}

/// Refuses a `--fuse` list that names `all` or `none` next to another value (`all,none`,
/// `none,gather`): [`fusions`] would silently keep one of them.
pub fn check_fuse(fuse: &[FuseChoice]) -> Result<()> {
    let name = |f: &FuseChoice| {
        f.to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default()
    };
    let alone = fuse
        .iter()
        .find(|f| matches!(f, FuseChoice::All | FuseChoice::None));
    if let (true, Some(f)) = (fuse.len() > 1, alone) {
        let list = fuse.iter().map(name).collect::<Vec<_>>().join(",");
        return Err(usage(
            "fuse",
            list,
            format!(
                "`{}` stands alone; give `all`, `none`, or a list of gather, output and update",
                name(f)
            ),
        ));
    }
    Ok(())
}

/// Refuses GPU-only flags with `--device cpu`, where they would be silently ignored, and a
/// contradictory `--fuse` list ([`check_fuse`]).
pub fn check_device_args(d: &DeviceArgs) -> Result<()> {
    check_fuse(&d.fuse)?;
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
        (
            "fuse",
            (!d.fuse.is_empty()).then(|| {
                let names = d.fuse.iter().filter_map(|f| f.to_possible_value());
                names
                    .map(|v| v.get_name().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            }),
        ),
    ];
    for (flag, value) in given {
        if let Some(v) = value {
            return Err(usage(
                flag,
                v,
                format!("applies to --device gpu only; drop --{flag} or use --device gpu"),
            ));
        }
    }
    Ok(())
}

/// Opens the adapter the flags choose for a run of `precision`, prints its description on
/// stderr, and checks that `--kernels subgroup` or `tiled2d-subgroup` can run on it. With f16 the device also
/// gets `SHADER_F16`, and an adapter without it is refused here (exit 2), naming the
/// adapter and the fix.
///
/// # Errors
/// [`wgtrain::Error::NoAdapter`] when no adapter matches; a usage error (exit 2) when
/// `--kernels subgroup` or `tiled2d-subgroup` needs subgroups the adapter lacks or f16
/// needs `SHADER_F16`.
pub fn open_gpu_for(d: &DeviceArgs, precision: Precision) -> Result<Gpu> {
    let gpu = Gpu::new(&GpuOptions {
        backends: d.backend.map(|b| b.to_wgpu()),
        adapter_name: d.adapter.clone(),
        shader_f16: precision == Precision::F16,
    })?;
    note!("{}", gpu.describe());
    if precision == Precision::F16 {
        if let Err(reason) = matmul_f16::f16_device_support(&gpu) {
            return Err(usage("precision", precision, reason));
        }
    }
    if d.kernels == Some(KernelChoice::Subgroup) {
        if let Err(reason) = matmul::subgroup_device_support(&gpu) {
            return Err(usage(
                "kernels",
                "subgroup",
                format!("{reason}; use --kernels auto"),
            ));
        }
    }
    if d.kernels == Some(KernelChoice::Tiled2dSubgroup) {
        if let Err(reason) = MatmulVariant::Tiled2dSubgroup.supports(&gpu) {
            return Err(usage(
                "kernels",
                "tiled2d-subgroup",
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
        KernelChoice::Tiled2dSubgroup => MatmulVariant::Tiled2dSubgroup.into(),
        KernelChoice::Auto => MatmulChoice::Auto,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use FuseChoice::{All, Gather, None as NoFusion, Output, Update};

    fn adapter(t: wgpu::DeviceType, name: &str) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            name: name.into(),
            ..wgpu::AdapterInfo::new(t, wgpu::Backend::Vulkan)
        }
    }

    /// Issue 26, item 14: `--device auto` (the default) takes the GPU path only on a
    /// hardware adapter. With only a software one (lavapipe: an MNIST epoch in 13 s
    /// against 0.8 s on the CPU path) or none, it takes the CPU path and says why.
    #[test]
    fn device_auto_takes_a_hardware_gpu_and_otherwise_the_cpu() {
        use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu, Other};
        let lavapipe = adapter(Cpu, "llvmpipe (LLVM 15.0.6, 256 bits)");
        let (kind, why) = auto_choice(std::slice::from_ref(&lavapipe));
        assert_eq!(kind, DeviceKind::Cpu);
        assert!(
            why.contains("no hardware GPU adapter; llvmpipe (LLVM 15.0.6, 256 bits) (Cpu, Vulkan) is a software one"),
            "{why}"
        );
        // llvmpipe under GL, typed Other by wgpu, is still software.
        assert_eq!(
            auto_choice(&[adapter(Other, "llvmpipe (LLVM 15.0.6)")]).0,
            DeviceKind::Cpu
        );
        let (kind, why) = auto_choice(&[]);
        assert_eq!(kind, DeviceKind::Cpu);
        assert!(why.contains("no GPU adapter found"), "{why}");
        let (kind, why) = auto_choice(&[
            lavapipe.clone(),
            adapter(IntegratedGpu, "Intel(R) UHD Graphics"),
        ]);
        assert_eq!(kind, DeviceKind::Gpu);
        assert!(
            why.contains("Intel(R) UHD Graphics (IntegratedGpu, Vulkan)"),
            "{why}"
        );
        assert_eq!(
            auto_choice(&[adapter(DiscreteGpu, "NVIDIA GeForce RTX 4090"), lavapipe]).0,
            DeviceKind::Gpu
        );
    }

    /// A GPU-only flag under `--device auto` means the GPU path (it would otherwise be
    /// refused or ignored on the CPU), and `--device gpu|cpu` are kept as given.
    #[test]
    fn gpu_only_flags_make_device_auto_choose_the_gpu() {
        let args = |device, adapter: Option<&str>| DeviceArgs {
            device,
            backend: None,
            adapter: adapter.map(String::from),
            kernels: None,
            fuse: vec![],
        };
        let gpu = resolve_device(
            &args(DeviceKind::Auto, Some("llvmpipe")),
            Precision::F32,
            None,
        )
        .unwrap();
        assert_eq!(gpu.device, DeviceKind::Gpu);
        let gpu = resolve_device(
            &args(DeviceKind::Auto, None),
            Precision::F32,
            Some("--profile"),
        )
        .unwrap();
        assert_eq!(gpu.device, DeviceKind::Gpu);
        for kept in [DeviceKind::Gpu, DeviceKind::Cpu] {
            assert_eq!(
                resolve_device(&args(kept, None), Precision::F32, None)
                    .unwrap()
                    .device,
                kept
            );
        }
    }

    /// Regression: `--fuse all,none` trained with every fusion and `--fuse none,gather`
    /// with gather alone, each silently dropping one of the values it was given.
    #[test]
    fn fuse_lists_naming_all_or_none_with_another_value_are_refused() {
        for ok in [&[][..], &[All], &[NoFusion], &[Gather, Output], &[Update]] {
            assert!(check_fuse(ok).is_ok(), "{ok:?}");
        }
        for (bad, alone) in [
            (&[All, NoFusion][..], "`all`"),
            (&[NoFusion, Gather], "`none`"),
            (&[Gather, All], "`all`"),
        ] {
            let e = check_fuse(bad).unwrap_err().to_string();
            assert!(e.contains("fuse") && e.contains(alone), "{bad:?}: {e}");
        }
    }
}
