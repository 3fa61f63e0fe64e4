//! `Gpu`: the wgpu instance, the chosen adapter, the device and queue, the adapter's real
//! limits, and the bookkeeping every other GPU module relies on (error capture, resource
//! counters, limit checks, dispatch-grid folding).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// How to choose an adapter. Empty fields fall back to `WGPU_BACKEND` / `WGPU_ADAPTER_NAME`,
/// then to the most capable adapter (discrete, integrated, virtual, CPU, in that order).
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backends to search, e.g. `wgpu::Backends::VULKAN`.
    pub backends: Option<wgpu::Backends>,
    /// Case-insensitive substring of the adapter name.
    pub adapter_name: Option<String>,
    /// Also request [`wgpu::Features::SHADER_F16`] where the adapter has it (for
    /// [`crate::config::Precision::F16`]). Off by default: an f32 run's device is created
    /// exactly as before, with no feature it does not use.
    pub shader_f16: bool,
}

/// The device features wgtrain may ask for, where the adapter has them: timestamps for the
/// profiler, subgroups for `matmul_subgroup` (CPU adapters), and, only when
/// [`GpuOptions::shader_f16`] asks ([`ON_DEMAND_FEATURES`]), `SHADER_F16` for the f16
/// kernels (`matmul_f16`, `convert_f16`). Every kernel module needs a subset of these
/// ([`crate::gpu::kernels::KernelFamily::features`]); no other feature is ever enabled, so
/// a shader needing one (e.g. `SHADER_F64`) would fail on every device.
pub const REQUESTED_FEATURES: wgpu::Features = wgpu::Features::TIMESTAMP_QUERY
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES)
    .union(wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS)
    .union(wgpu::Features::SUBGROUP)
    .union(wgpu::Features::SHADER_F16);

/// The part of [`REQUESTED_FEATURES`] requested only when a run needs it: `SHADER_F16`
/// (with [`GpuOptions::shader_f16`]).
pub const ON_DEMAND_FEATURES: wgpu::Features = wgpu::Features::SHADER_F16;

/// Loop iterations Mesa's llvmpipe (lavapipe, and llvmpipe under GL) runs per shader
/// invocation before it silently leaves the loop: `LP_MAX_TGSI_LOOP_ITERATIONS` in
/// `gallivm/lp_bld_limits.h`. One counter serves every loop of an invocation, nested or one
/// after another, and each pass through a loop's end counts (the last, exiting pass
/// included). Measured on Mesa 22.3.6: ones(1, K) · ones(K, 1) gave 65,535 at K = 65,537.
pub const LLVMPIPE_LOOP_CAP: u64 = 65_535;

/// Environment variable that overrides [`Gpu::loop_cap`]: a positive number of loop
/// iterations, or `none` for no cap.
pub const LOOP_CAP_ENV: &str = "WGT_LOOP_CAP";

/// The loop cap of the adapter called `name` with driver `driver` (from
/// [`wgpu::AdapterInfo`]), as its driver is known to have it ([`LLVMPIPE_LOOP_CAP`] for
/// llvmpipe, `None` elsewhere), unless `override_value` (the value of [`LOOP_CAP_ENV`])
/// says otherwise.
///
/// # Errors
/// [`Error::InvalidConfig`] when `override_value` is neither a positive integer nor `none`.
pub fn loop_cap_for(name: &str, driver: &str, override_value: Option<&str>) -> Result<Option<u64>> {
    if let Some(v) = override_value {
        let v = v.trim();
        if v.eq_ignore_ascii_case("none") {
            return Ok(None);
        }
        return match v.parse::<u64>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::InvalidConfig {
                name: LOOP_CAP_ENV,
                value: v.to_string(),
                reason: "must be a positive number of loop iterations per shader invocation, or `none`; unset it to use the adapter's known cap".into(),
            }),
        };
    }
    let llvmpipe = [name, driver]
        .iter()
        .any(|s| s.to_lowercase().contains("llvmpipe"));
    Ok(llvmpipe.then_some(LLVMPIPE_LOOP_CAP))
}

/// What `wgtrain devices` prints for one adapter.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let i = &self.info;
        let l = &self.limits;
        writeln!(f, "{} ({:?}, {:?})", i.name, i.device_type, i.backend)?;
        let driver: Vec<&str> = [i.driver.as_str(), i.driver_info.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        writeln!(f, "  driver: {}", driver.join(" "))?;
        writeln!(
            f,
            "  max_buffer_size: {} MiB, max_storage_buffer_binding_size: {} MiB",
            l.max_buffer_size >> 20,
            l.max_storage_buffer_binding_size >> 20
        )?;
        writeln!(
            f,
            "  max_compute_workgroups_per_dimension: {}, max_compute_invocations_per_workgroup: {}, max_compute_workgroup_storage_size: {} B",
            l.max_compute_workgroups_per_dimension,
            l.max_compute_invocations_per_workgroup,
            l.max_compute_workgroup_storage_size
        )?;
        write!(
            f,
            "  max_storage_buffers_per_shader_stage: {}, timestamp queries: {}, subgroups: {}, f16 (--precision f16): {}",
            l.max_storage_buffers_per_shader_stage,
            timestamp_mode_name(self.features),
            if self.features.contains(wgpu::Features::SUBGROUP) {
                format!("{}..{}", i.subgroup_min_size, i.subgroup_max_size)
            } else {
                "none".to_string()
            },
            if self.features.contains(wgpu::Features::SHADER_F16) {
                "yes"
            } else {
                "no"
            }
        )
    }
}

fn timestamp_mode_name(features: wgpu::Features) -> &'static str {
    if features.contains(wgpu::Features::TIMESTAMP_QUERY_INSIDE_PASSES) {
        "per dispatch"
    } else if features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        "per pass"
    } else {
        "none"
    }
}

/// Counts of GPU objects created through [`Gpu`], to prove that training allocates once
/// per run and not per step.
#[derive(Debug, Default)]
pub struct ResourceCounters {
    pub buffers: AtomicU64,
    pub bind_groups: AtomicU64,
    pub pipelines: AtomicU64,
}

/// Device, queue and adapter facts. Cheap to share by reference; every GPU module takes `&Gpu`.
pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    /// The limits the device was created with: the adapter's own, not the WebGPU defaults.
    pub limits: wgpu::Limits,
    /// The features the device was created with (see [`REQUESTED_FEATURES`]).
    pub features: wgpu::Features,
    /// Every feature the adapter offers, requested or not: lets an error tell "this
    /// adapter lacks it" from "this device was opened without it".
    pub adapter_features: wgpu::Features,
    /// Most loop iterations one shader invocation may run, summed over all its loops (see
    /// [`LLVMPIPE_LOOP_CAP`]); `None` when the driver has no such cap (real GPUs). Kernels
    /// whose reductions would run longer split them into several dispatches, summed in a
    /// fixed order, or refuse with [`Error::LimitExceeded`]. Known per driver, overridden by
    /// [`LOOP_CAP_ENV`]; set it before building engines to try another value.
    pub loop_cap: Option<u64>,
    pub counters: ResourceCounters,
    errors: Arc<Mutex<Vec<String>>>,
    /// Process-unique, never reused: see [`Gpu::id`].
    id: u64,
}

/// The backends to search: the option, then `WGPU_BACKEND`, then the primary ones (Vulkan,
/// Metal, DX12). GL is searched by default only when no primary backend has an adapter:
/// its compute support is the weakest, and probing it prints EGL noise on headless Linux.
fn backends_from(opts: &GpuOptions) -> wgpu::Backends {
    opts.backends
        .or_else(wgpu::Backends::from_env)
        .unwrap_or(wgpu::Backends::PRIMARY)
}

fn enumerate(opts: &GpuOptions) -> (wgpu::Backends, Vec<wgpu::Adapter>) {
    let backends = backends_from(opts);
    let adapters = pollster::block_on(instance(backends).enumerate_adapters(backends));
    if adapters.is_empty() && opts.backends.is_none() && wgpu::Backends::from_env().is_none() {
        let all = wgpu::Backends::all();
        return (
            all,
            pollster::block_on(instance(all).enumerate_adapters(all)),
        );
    }
    (backends, adapters)
}

fn name_filter(opts: &GpuOptions) -> Option<String> {
    opts.adapter_name
        .clone()
        .or_else(|| std::env::var("WGPU_ADAPTER_NAME").ok())
        .filter(|s| !s.is_empty())
}

/// `"llvmpipe (LLVM 15.0.6, 256 bits)" (Cpu, Vulkan)`: an adapter as error hints name it.
fn adapter_label(i: &wgpu::AdapterInfo) -> String {
    format!("\"{}\" ({:?}, {:?})", i.name, i.device_type, i.backend)
}

/// `vulkan, metal, dx12` rather than the bitflags' debug form.
pub fn backend_names(b: wgpu::Backends) -> String {
    let names = [
        (wgpu::Backends::VULKAN, "vulkan"),
        (wgpu::Backends::METAL, "metal"),
        (wgpu::Backends::DX12, "dx12"),
        (wgpu::Backends::GL, "gl"),
    ];
    let v: Vec<&str> = names
        .iter()
        .filter(|(f, _)| b.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "no backend".into()
    } else {
        v.join(", ")
    }
}

fn instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

fn device_type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

/// Every adapter on the given backends (all backends by default), most capable first.
pub fn list_adapters(backends: Option<wgpu::Backends>) -> Vec<AdapterSummary> {
    let opts = GpuOptions {
        backends,
        ..GpuOptions::default()
    };
    let mut adapters: Vec<AdapterSummary> = enumerate(&opts)
        .1
        .into_iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            limits: a.limits(),
            features: a.features(),
        })
        .collect();
    adapters.sort_by_key(|a| {
        (
            device_type_rank(a.info.device_type),
            backend_rank(a.info.backend),
        )
    });
    adapters
}

/// Names of software (CPU) rasterisers, matched case-insensitively against an adapter's
/// name and driver: Mesa's llvmpipe (lavapipe on Vulkan, and under GL, where wgpu may not
/// report the type) and softpipe, Google's SwiftShader, and Microsoft's WARP ("Microsoft
/// Basic Render Driver", which DX12 also reports as a CPU adapter).
const SOFTWARE_ADAPTER_NAMES: [&str; 5] = [
    "llvmpipe",
    "lavapipe",
    "softpipe",
    "swiftshader",
    "microsoft basic render driver",
];

/// True for a software adapter, one that runs on the CPU: its type is
/// [`wgpu::DeviceType::Cpu`], or its name or driver is a known software rasteriser
/// (llvmpipe, lavapipe, softpipe, SwiftShader, WARP). Training on one is slower than the CPU engine, which runs
/// the same arithmetic without a rasteriser in between.
pub fn is_software_adapter(info: &wgpu::AdapterInfo) -> bool {
    let text = format!("{} {}", info.name, info.driver).to_lowercase();
    info.device_type == wgpu::DeviceType::Cpu
        || SOFTWARE_ADAPTER_NAMES.iter().any(|n| text.contains(n))
}

/// The adapters [`Gpu::new`] would choose among for `opts` (its backends, `WGPU_BACKEND`,
/// its name filter or `WGPU_ADAPTER_NAME`), most capable first, without opening any.
///
/// # Errors
/// [`Error::InvalidConfig`] when `WGPU_BACKEND` names no backend (as [`Gpu::new`]).
pub fn candidate_adapters(opts: &GpuOptions) -> Result<Vec<AdapterSummary>> {
    check_backend_env(opts)?;
    let needle = name_filter(opts).map(|f| f.to_lowercase());
    let mut adapters: Vec<AdapterSummary> = enumerate(opts)
        .1
        .into_iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            limits: a.limits(),
            features: a.features(),
        })
        .filter(|a| {
            needle
                .as_ref()
                .is_none_or(|n| a.info.name.to_lowercase().contains(n))
        })
        .collect();
    adapters.sort_by_key(|a| {
        (
            device_type_rank(a.info.device_type),
            backend_rank(a.info.backend),
        )
    });
    Ok(adapters)
}

/// Refuses a `WGPU_BACKEND` that names no backend (wgpu ignores names it does not know,
/// which would search no backend at all), unless `opts` chooses the backends.
fn check_backend_env(opts: &GpuOptions) -> Result<()> {
    if opts.backends.is_none() && wgpu::Backends::from_env().is_some_and(|b| b.is_empty()) {
        return Err(Error::InvalidConfig {
            name: "WGPU_BACKEND",
            value: std::env::var("WGPU_BACKEND").unwrap_or_default(),
            reason: "names no backend; valid: vulkan, metal, dx12, gl (comma-separated)".into(),
        });
    }
    Ok(())
}

const INSTALL_HINT: &str = "Install a Vulkan driver: on headless Linux `apt-get install -y mesa-vulkan-drivers libvulkan1` \
gives the lavapipe software adapter; on a desktop, your GPU vendor's driver.";

/// The next [`Gpu::id`].
static NEXT_GPU_ID: AtomicU64 = AtomicU64::new(0);

impl Gpu {
    /// Opens the best matching adapter and creates a device with the adapter's real limits.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when nothing matches (the message lists the adapters there are,
    /// or what to install); [`Error::RequestDevice`] when the device cannot be created.
    pub fn new(opts: &GpuOptions) -> Result<Gpu> {
        check_backend_env(opts)?;
        let (backends, mut adapters) = enumerate(opts);
        adapters.sort_by_key(|a| {
            let i = a.get_info();
            (device_type_rank(i.device_type), backend_rank(i.backend))
        });
        let all_names: Vec<String> = adapters
            .iter()
            .map(|a| adapter_label(&a.get_info()))
            .collect();
        let filter = name_filter(opts);
        let chosen = match &filter {
            Some(f) => {
                let needle = f.to_lowercase();
                adapters
                    .into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&needle))
            }
            None => adapters.into_iter().next(),
        };
        let Some(adapter) = chosen else {
            let elsewhere = if all_names.is_empty() {
                // Nothing on the backends searched: say what the other backends have.
                list_adapters(Some(wgpu::Backends::all()))
                    .iter()
                    .map(|a| adapter_label(&a.info))
                    .collect()
            } else {
                Vec::new()
            };
            let hint = if !all_names.is_empty() {
                format!("Adapters available: {}.", all_names.join(", "))
            } else if !elsewhere.is_empty() {
                format!(
                    "Adapters on other backends: {}; choose one with --backend.",
                    elsewhere.join(", ")
                )
            } else {
                INSTALL_HINT.to_string()
            };
            return Err(Error::NoAdapter {
                backends: backend_names(backends),
                explicit_backend: opts.backends.is_some() || wgpu::Backends::from_env().is_some(),
                filter: filter
                    .map(|f| format!(" matching name \"{f}\""))
                    .unwrap_or_default(),
                hint,
            });
        };
        let info = adapter.get_info();
        let loop_cap = loop_cap_for(
            &info.name,
            &info.driver,
            std::env::var(LOOP_CAP_ENV).ok().as_deref(),
        )?;
        let adapter_features = adapter.features();
        let wanted = if opts.shader_f16 {
            REQUESTED_FEATURES
        } else {
            REQUESTED_FEATURES.difference(ON_DEMAND_FEATURES)
        };
        let features = adapter_features & wanted;
        let limits = adapter.limits();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("wgtrain"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::RequestDevice {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let sink = errors.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            // A poisoned lock only means another thread panicked while pushing; keep going.
            if let Ok(mut v) = sink.lock() {
                v.push(e.to_string());
            }
        }));
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            features,
            adapter_features,
            loop_cap,
            counters: ResourceCounters::default(),
            errors,
            id: NEXT_GPU_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// This device's number, unique in the process and never reused, so that what is
    /// measured on one device (matmul timings: [`crate::gpu::autotune`]) can be kept
    /// outside it and never applied to another.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// One line for the start of a run: adapter name, type, backend and driver.
    pub fn describe(&self) -> String {
        let i = &self.info;
        format!(
            "adapter: {} ({:?}, {:?}, driver {} {})",
            i.name, i.device_type, i.backend, i.driver, i.driver_info
        )
    }

    /// True when the device runs subgroup operations in subgroups of exactly `size`
    /// invocations, so that a workgroup of `size` is one full subgroup.
    pub fn has_subgroups_of(&self, size: u32) -> bool {
        self.features.contains(wgpu::Features::SUBGROUP)
            && self.info.subgroup_min_size == size
            && self.info.subgroup_max_size == size
    }

    /// True for software adapters such as lavapipe, WARP or SwiftShader.
    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Returns the first wgpu error reported since the last call, as [`Error::Gpu`].
    pub fn take_error(&self, context: &str) -> Result<()> {
        let mut errs = self.errors.lock().unwrap_or_else(|p| p.into_inner());
        if errs.is_empty() {
            return Ok(());
        }
        let message = errs.join("\n");
        errs.clear();
        Err(Error::Gpu {
            context: context.to_string(),
            message,
        })
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::Gpu {
                context: "waiting for the device".into(),
                message: e.to_string(),
            })?;
        Ok(())
    }

    /// Checks that one shader invocation of `what` runs at most [`Gpu::loop_cap`] loop
    /// iterations in all (`passes`, counted as [`LLVMPIPE_LOOP_CAP`] describes).
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] naming the kernel and the cap, with `hint`.
    pub fn check_loop_passes(&self, what: &str, passes: u64, hint: &str) -> Result<()> {
        match self.loop_cap {
            Some(cap) if passes > cap => Err(self.loop_cap_exceeded(what, passes, hint)),
            _ => Ok(()),
        }
    }

    /// The [`Error::LimitExceeded`] of [`Gpu::check_loop_passes`] (for a cap that is set).
    pub fn loop_cap_exceeded(&self, what: &str, passes: u64, hint: &str) -> Error {
        let cap = self.loop_cap.unwrap_or(0);
        Error::LimitExceeded {
            what: format!(
                "{what}: one shader invocation (the adapter's loop cap: {} stops every shader loop after {cap} iterations in all; {LOOP_CAP_ENV} overrides it)",
                self.info.name
            ),
            requested: passes,
            max: cap,
            unit: "loop iterations",
            hint: hint.to_string(),
        }
    }

    /// Checks a buffer size against `max_buffer_size`.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] naming `what`, with `hint` on how to shrink it.
    pub fn check_buffer(&self, what: &str, bytes: u64, hint: &str) -> Result<()> {
        check_limit(
            &format!("{what} (max_buffer_size)"),
            bytes,
            self.limits.max_buffer_size,
            "bytes",
            hint,
        )
    }

    /// Checks a storage binding size against `max_storage_buffer_binding_size`.
    pub fn check_binding(&self, what: &str, bytes: u64, hint: &str) -> Result<()> {
        check_limit(
            &format!("{what} as one storage binding (max_storage_buffer_binding_size)"),
            bytes,
            self.limits.max_storage_buffer_binding_size,
            "bytes",
            hint,
        )
    }

    /// A storage buffer of `bytes` (rounded up to 16: whole vec4s), checked against the buffer and
    /// binding limits, counted, and labelled.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when it does not fit, hinting at the batch and hidden sizes.
    pub fn storage_buffer(
        &self,
        label: &str,
        bytes: u64,
        extra: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        self.storage_buffer_hinted(
            label,
            bytes,
            extra,
            "use a smaller --batch-size or smaller --hidden sizes",
        )
    }

    /// [`Gpu::storage_buffer`] with the `hint` an over-limit error gives.
    pub fn storage_buffer_hinted(
        &self,
        label: &str,
        bytes: u64,
        extra: wgpu::BufferUsages,
        hint: &str,
    ) -> Result<wgpu::Buffer> {
        // Whole vec4s, so that kernels reading four elements per load can cover a tail.
        let bytes = bytes.max(16).next_multiple_of(16);
        self.check_buffer(label, bytes, hint)?;
        self.check_binding(label, bytes, hint)?;
        Ok(self.buffer(label, bytes, wgpu::BufferUsages::STORAGE | extra))
    }

    /// A counted, labelled buffer of any usage (size already checked by the caller).
    pub fn buffer(&self, label: &str, bytes: u64, usage: wgpu::BufferUsages) -> wgpu::Buffer {
        self.counters.buffers.fetch_add(1, Ordering::Relaxed);
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes,
            usage,
            mapped_at_creation: false,
        })
    }

    /// A counted bind group.
    pub fn bind_group(
        &self,
        label: &str,
        layout: &wgpu::BindGroupLayout,
        entries: &[wgpu::BindGroupEntry<'_>],
    ) -> wgpu::BindGroup {
        self.counters.bind_groups.fetch_add(1, Ordering::Relaxed);
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout,
            entries,
        })
    }

    /// The dispatch grid for `workgroups` workgroups along one logical axis, folded into
    /// y and z so that no dimension exceeds `max_compute_workgroups_per_dimension`.
    /// Kernels recover the flat id as `(wg.z * nwg.y + wg.y) * nwg.x + wg.x`; the few
    /// trailing workgroups past `workgroups` must return early (every kernel guards its tail).
    pub fn grid_1d(&self, what: &str, workgroups: u64) -> Result<[u32; 3]> {
        fold_grid(
            what,
            workgroups,
            self.limits.max_compute_workgroups_per_dimension,
        )
    }

    /// The grid for a 2-D kernel: `x_blocks` along x (checked), `y_blocks` folded into y and z.
    /// Kernels recover the row block as `wg.z * nwg.y + wg.y`.
    pub fn grid_2d(&self, what: &str, x_blocks: u64, y_blocks: u64) -> Result<[u32; 3]> {
        let max = self.limits.max_compute_workgroups_per_dimension;
        check_limit(
            &format!(
                "the x dimension of the dispatch grid of {what} (max_compute_workgroups_per_dimension)"
            ),
            x_blocks,
            u64::from(max),
            "workgroups",
            "use smaller --hidden sizes",
        )?;
        let [y, z, w] = fold_grid(what, y_blocks, max)?;
        if w > 1 {
            return Err(Error::LimitExceeded {
                what: format!("the dispatch grid of {what}, folded into y and z"),
                requested: y_blocks,
                max: u64::from(max) * u64::from(max),
                unit: "workgroups",
                hint: "use a smaller --batch-size".into(),
            });
        }
        Ok([x_blocks.max(1) as u32, y, z])
    }
}

fn check_limit(what: &str, requested: u64, max: u64, unit: &'static str, hint: &str) -> Result<()> {
    if requested > max {
        return Err(Error::LimitExceeded {
            what: what.to_string(),
            requested,
            max,
            unit,
            hint: hint.to_string(),
        });
    }
    Ok(())
}

/// Folds `workgroups` into `[x, y, z]` with every dimension at most `max_dim`.
pub fn fold_grid(what: &str, workgroups: u64, max_dim: u32) -> Result<[u32; 3]> {
    let max = u64::from(max_dim.max(1));
    let x = workgroups.clamp(1, max);
    let rest = workgroups.div_ceil(x);
    let y = rest.clamp(1, max);
    let z = rest.div_ceil(y);
    if z > max {
        return Err(Error::LimitExceeded {
            what: format!("the dispatch grid of {what}, folded into x, y and z"),
            requested: workgroups,
            max: max * max * max,
            unit: "workgroups",
            hint: "use a smaller --batch-size or smaller --hidden sizes".into(),
        });
    }
    Ok([x as u32, y as u32, z as u32])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10 item 2: llvmpipe's loop cap is a known adapter property, absent on other
    /// drivers, and WGT_LOOP_CAP overrides it either way.
    #[test]
    fn regression_loop_cap_is_known_for_llvmpipe_and_overridable() {
        let lavapipe = ("llvmpipe (LLVM 15.0.6, 256 bits)", "llvmpipe");
        assert_eq!(
            loop_cap_for(lavapipe.0, lavapipe.1, None).unwrap(),
            Some(65_535)
        );
        assert_eq!(
            loop_cap_for("NVIDIA GeForce RTX 4090", "NVIDIA", None).unwrap(),
            None
        );
        assert_eq!(
            loop_cap_for(lavapipe.0, lavapipe.1, Some("none")).unwrap(),
            None
        );
        assert_eq!(
            loop_cap_for("AMD Radeon", "radv", Some(" 1000 ")).unwrap(),
            Some(1000)
        );
        for bad in ["0", "-3", "lots", ""] {
            let err = loop_cap_for(lavapipe.0, lavapipe.1, Some(bad)).unwrap_err();
            assert!(err.to_string().contains("WGT_LOOP_CAP"), "{bad}: {err}");
        }
    }

    #[test]
    fn software_adapters_are_known_by_type_name_or_driver() {
        let info = |t: wgpu::DeviceType, name: &str, driver: &str| wgpu::AdapterInfo {
            name: name.into(),
            driver: driver.into(),
            ..wgpu::AdapterInfo::new(t, wgpu::Backend::Vulkan)
        };
        use wgpu::DeviceType::{Cpu, DiscreteGpu, IntegratedGpu, Other};
        assert!(is_software_adapter(&info(
            Cpu,
            "llvmpipe (LLVM 15.0.6, 256 bits)",
            "llvmpipe"
        )));
        assert!(is_software_adapter(&info(
            Other,
            "llvmpipe (LLVM 15.0.6)",
            "4.5 Mesa"
        )));
        assert!(is_software_adapter(&info(Other, "SwiftShader Device", "")));
        assert!(is_software_adapter(&info(
            Cpu,
            "Microsoft Basic Render Driver",
            ""
        )));
        assert!(!is_software_adapter(&info(
            DiscreteGpu,
            "NVIDIA GeForce RTX 4090",
            "NVIDIA"
        )));
        assert!(!is_software_adapter(&info(
            IntegratedGpu,
            "Intel(R) UHD Graphics",
            "Intel"
        )));
    }

    #[test]
    fn fold_grid_stays_under_the_limit_and_covers_every_workgroup() {
        for (n, max) in [
            (1u64, 65535u32),
            (65535, 65535),
            (65536, 65535),
            (183_750, 65535),
            (10, 3),
            (27, 3),
        ] {
            let [x, y, z] = fold_grid("t", n, max).unwrap();
            assert!(x <= max && y <= max && z <= max, "{n} {max}: {x} {y} {z}");
            let covered = u64::from(x) * u64::from(y) * u64::from(z);
            assert!(covered >= n, "{n}: {covered}");
            // No whole row of x workgroups is wasted.
            assert!(covered - n < u64::from(x) * u64::from(y), "{n}: {covered}");
        }
        assert!(matches!(
            fold_grid("t", 28, 3),
            Err(Error::LimitExceeded { .. })
        ));
    }
}
