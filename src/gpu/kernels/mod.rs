//! One module per WGSL kernel family (`shaders/<name>.wgsl`, the matmul family's in
//! `shaders/matmul/`; entry points named after it), the families listed in [`FAMILIES`]:
//! pipelines are built on first use and cached in
//! [`Kernels`], and each wrapper turns buffers and shapes into
//! a [`Dispatch`] — a pipeline, a bind group created once, and a grid — that training
//! records step after step without creating anything.
//!
//! Every kernel takes its per-step values from a [`StepRecord`] in bind group 1, bound
//! with a dynamic offset: the minibatch's position in the epoch order, its size (the last
//! minibatch may be partial), and the step's index into the metrics buffers and the
//! member-step table (each member's learning rate and flags, in the SGD table:
//! [`sgd_update::SgdTable`]). Every kernel takes the member dimension (K >= 1).

pub mod bias_relu;
pub mod column_sum;
pub mod convert_f16;
pub mod gather_normalize;
pub mod matmul;
pub mod roofline;
pub mod sgd_update;
pub mod softmax_cross_entropy;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

pub use matmul::{Epilogue, MatmulSpec, MatmulVariant};

use crate::error::Result;
use crate::gpu::Gpu;

/// One kernel family: one shader module, declared by its wrapper module next to the
/// shader (`FAMILY` there), and listed in [`FAMILIES`].
#[derive(Clone, Copy, Debug)]
pub struct KernelFamily {
    /// The family's name: its shader file, its wrapper module and the prefix of its entry
    /// points, e.g. `softmax_cross_entropy`.
    pub name: &'static str,
    /// The WGSL source as compiled (the shared fragments prepended).
    pub source: &'static str,
    /// Device features the module needs (`SUBGROUP` for `matmul_subgroup`, none
    /// elsewhere). [`crate::gpu::REQUESTED_FEATURES`] holds every one, so the naga
    /// capabilities a module is validated with are exactly those it is built with.
    pub features: wgpu::Features,
    /// Bind group 0 (group 1 is the step record, the same for all). Families with the same
    /// bindings share one bind-group layout in [`Kernels`], so a bind group made for one
    /// serves the pipelines of the other (the two matmul families).
    pub bindings: &'static [wgpu::BindGroupLayoutEntry],
}

/// Every kernel family, for validation without a device ([`Kernels`] builds each on first
/// use). `bias_relu` is test-only: the engine fuses bias and ReLU into the matmul
/// epilogues, and the unfused kernels are the composed version those are tested against;
/// it is compiled only when a test asks for it. `matmul_subgroup` is built only on devices
/// with subgroups of [`matmul::SUBGROUP_SIZE`], `matmul_tiled2d` only where autotuning
/// (GPUs) or `--kernels` asks for it, `matmul_tiled2d_subgroup` likewise and only with
/// `SUBGROUP`, and the `matmul_gather` versions of subgroup and tiled2d (operand A read from
/// pixels) only where the gather fusion runs. `matmul_f16` and `convert_f16`
/// (`--precision f16`) need `SHADER_F16` and are built only on devices created with it.
/// `roofline` (the peak probe of `profile` and `bench`) is never built in training.
pub const FAMILIES: [KernelFamily; 14] = [
    gather_normalize::FAMILY,
    matmul::FAMILY,
    matmul::SUBGROUP_FAMILY,
    matmul::TILED2D_FAMILY,
    matmul::tiled2d_subgroup::FAMILY,
    softmax_cross_entropy::FAMILY,
    column_sum::FAMILY,
    sgd_update::FAMILY,
    bias_relu::FAMILY,
    matmul::f16::FAMILY,
    convert_f16::FAMILY,
    matmul::gather::SUBGROUP_FAMILY,
    matmul::gather::TILED2D_FAMILY,
    roofline::FAMILY,
];

pub use crate::step::StepRecord;

/// Bytes between consecutive step records: the largest `min_uniform_buffer_offset_alignment`
/// WebGPU allows, so one layout works on every adapter.
pub const STEP_STRIDE: u64 = 256;

/// A kernel launch prepared once: pipeline, bind group and grid. Recording it costs three
/// calls and creates nothing.
#[derive(Clone, Debug)]
pub struct Dispatch {
    /// Kernel family and entry point, e.g. `matmul_register`.
    pub kernel: &'static str,
    /// What this launch computes, e.g. `layer0.forward`.
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    /// Workgroups in x, y, z (never above `max_compute_workgroups_per_dimension`).
    pub grid: [u32; 3],
    /// Bind groups of further launches of the same pipeline and grid, recorded in this
    /// order right after the first: the later chunks of a reduction split to stay under
    /// the adapter's loop cap ([`Gpu::loop_cap`]). Empty when one launch does it all.
    pub splits: Vec<wgpu::BindGroup>,
    /// Floating-point operations at the largest minibatch (matmuls: 2·M·N·K), for GFLOP/s.
    pub flops: u64,
    /// Bytes read plus written at the largest minibatch, for GB/s.
    pub bytes: u64,
    /// Shapes for traces and tables, e.g. `M=64 N=256 K=784`.
    pub shape: String,
}

impl Dispatch {
    /// Records this launch (and its [`Dispatch::splits`], in order) into `pass` with the
    /// step record at `step_offset` (bytes).
    pub fn record(
        &self,
        pass: &mut wgpu::ComputePass<'_>,
        steps: &wgpu::BindGroup,
        step_offset: u32,
    ) {
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.set_bind_group(1, steps, &[step_offset]);
        pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
        for bind_group in &self.splits {
            pass.set_bind_group(0, bind_group, &[]);
            pass.dispatch_workgroups(self.grid[0], self.grid[1], self.grid[2]);
        }
    }
}

/// Bind-group layout entry for a uniform parameter block.
pub(crate) const fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// Bind-group layout entry for a storage buffer.
pub(crate) const fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A family's shader module, bind-group layout and pipeline layout, built on first use.
struct BuiltFamily {
    bindings: &'static [wgpu::BindGroupLayoutEntry],
    module: wgpu::ShaderModule,
    layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
}

/// What identifies a pipeline: family name, entry point, and its override constants (name
/// and the bits of the f64 value) in the order given.
type PipelineKey = (&'static str, &'static str, Vec<(&'static str, u64)>);

/// What [`Kernels`] has built so far.
#[derive(Default)]
struct Built {
    families: HashMap<&'static str, BuiltFamily>,
    pipelines: HashMap<PipelineKey, wgpu::ComputePipeline>,
}

/// Every kernel's pipelines on one device: a cache keyed by (family, entry point, override
/// constants) that builds each family's module and each pipeline on first use, so a
/// family no launch asks for (`bias_relu` outside tests, `matmul_subgroup` on devices
/// without subgroups of 8) is never compiled. Validation errors while building surface at
/// the caller's next [`Gpu::take_error`].
pub struct Kernels {
    steps_layout: wgpu::BindGroupLayout,
    built: Mutex<Built>,
}

impl Kernels {
    /// Checks the adapter's limits and makes the step-record layout; shader modules and
    /// pipelines are built on first use.
    ///
    /// # Errors
    /// [`crate::Error::LimitExceeded`] when the adapter is too small for the kernels
    /// ([`check_kernel_limits`]); [`crate::Error::Gpu`] when wgpu reports an error.
    pub fn new(gpu: &Gpu) -> Result<Kernels> {
        check_kernel_limits(&gpu.limits)?;
        let steps_layout = gpu
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some("steps"),
                entries: &[wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: wgpu::BufferSize::new(
                            std::mem::size_of::<StepRecord>() as u64
                        ),
                    },
                    count: None,
                }],
            });
        gpu.take_error("building the step-record layout")?;
        Ok(Kernels {
            steps_layout,
            built: Mutex::default(),
        })
    }

    fn built(&self) -> std::sync::MutexGuard<'_, Built> {
        self.built.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `family`'s module and layouts, built now if this is the first use.
    fn family<'b>(
        &self,
        gpu: &Gpu,
        built: &'b mut Built,
        family: &KernelFamily,
    ) -> &'b BuiltFamily {
        if !built.families.contains_key(family.name) {
            assert!(
                gpu.features.contains(family.features),
                "{} needs {:?}; its wrapper checks the device first",
                family.name,
                family.features
            );
            let shared = built
                .families
                .values()
                .find(|f| f.bindings == family.bindings)
                .map(|f| f.layout.clone());
            let layout = shared.unwrap_or_else(|| {
                gpu.device
                    .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                        label: Some(family.name),
                        entries: family.bindings,
                    })
            });
            let module = gpu
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(family.name),
                    source: wgpu::ShaderSource::Wgsl(family.source.into()),
                });
            let pipeline_layout =
                gpu.device
                    .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some(family.name),
                        bind_group_layouts: &[Some(&layout), Some(&self.steps_layout)],
                        immediate_size: 0,
                    });
            built.families.insert(
                family.name,
                BuiltFamily {
                    bindings: family.bindings,
                    module,
                    layout,
                    pipeline_layout,
                },
            );
        }
        &built.families[family.name]
    }

    /// The layout of bind group 0 of `family` (shared by families with the same bindings).
    pub(crate) fn bind_group_layout(
        &self,
        gpu: &Gpu,
        family: &KernelFamily,
    ) -> wgpu::BindGroupLayout {
        let mut built = self.built();
        self.family(gpu, &mut built, family).layout.clone()
    }

    /// The pipeline of `family`'s entry point `entry` specialised by the override
    /// `constants`, built on first use (the family's module too).
    pub(crate) fn pipeline(
        &self,
        gpu: &Gpu,
        family: &KernelFamily,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> wgpu::ComputePipeline {
        let key = (
            family.name,
            entry,
            constants.iter().map(|&(n, v)| (n, v.to_bits())).collect(),
        );
        let mut built = self.built();
        if let Some(p) = built.pipelines.get(&key) {
            return p.clone();
        }
        let f = self.family(gpu, &mut built, family);
        gpu.counters.pipelines.fetch_add(1, Ordering::Relaxed);
        let pipeline = gpu
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&f.pipeline_layout),
                module: &f.module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            });
        built.pipelines.insert(key, pipeline.clone());
        pipeline
    }

    /// The bind group over a step-record buffer (binding size: one record).
    pub fn steps_bind_group(&self, gpu: &Gpu, steps: &wgpu::Buffer) -> wgpu::BindGroup {
        gpu.bind_group(
            "steps",
            &self.steps_layout,
            &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: steps,
                    offset: 0,
                    size: wgpu::BufferSize::new(std::mem::size_of::<StepRecord>() as u64),
                }),
            }],
        )
    }
}

/// What the kernels need of an adapter, checked before any pipeline is built so that a
/// small adapter gets a clear error rather than a wgpu validation panic: the most storage
/// buffers one kernel binds (softmax_cross_entropy, matmul: 5), the largest workgroup
/// (256 invocations), and the workgroup memory of `matmul_tiled` (two 64x16 f32 tiles).
/// `matmul_tiled2d`'s larger blocks (up to 16 KiB, WebGPU's default) are checked per block
/// shape by [`matmul::MatmulVariant::supports`] instead, so a smaller adapter keeps the
/// other kernels.
pub const REQUIRED: [(&str, u64, &str); 4] = [
    ("max_storage_buffers_per_shader_stage", 5, "storage buffers"),
    ("max_compute_invocations_per_workgroup", 256, "invocations"),
    ("max_compute_workgroup_size_x", 256, "invocations"),
    ("max_compute_workgroup_storage_size", 8192, "bytes"),
];

/// Checks [`REQUIRED`] against `limits`.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] naming the first limit that is too small.
pub fn check_kernel_limits(limits: &wgpu::Limits) -> Result<()> {
    let have = [
        u64::from(limits.max_storage_buffers_per_shader_stage),
        u64::from(limits.max_compute_invocations_per_workgroup),
        u64::from(limits.max_compute_workgroup_size_x),
        u64::from(limits.max_compute_workgroup_storage_size),
    ];
    for ((what, need, unit), max) in REQUIRED.iter().zip(have) {
        if max < *need {
            return Err(crate::Error::LimitExceeded {
                what: format!("the kernels' {what}"),
                requested: *need,
                max,
                unit,
                hint: "this adapter is too small for wgtrain's kernels; pick another with --adapter or use --device cpu".into(),
            });
        }
    }
    Ok(())
}

/// A uniform buffer holding one parameter block (created once per dispatch).
pub(crate) fn params_buffer<T: bytemuck::Pod>(gpu: &Gpu, label: &str, params: &T) -> wgpu::Buffer {
    let buf = gpu.buffer(
        label,
        std::mem::size_of::<T>() as u64,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    );
    gpu.queue.write_buffer(&buf, 0, bytemuck::bytes_of(params));
    buf
}

/// Bind-group entry for a whole buffer.
pub(crate) fn whole(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// Runs `dispatches` in order, `repeats` times, with one step record, and waits; returns the
/// host wall time of the whole submission. For tests, benchmarks and start-up autotuning:
/// it creates a step buffer per call, which the training loop never does.
///
/// # Errors
/// [`crate::Error::Gpu`] when wgpu reports an error.
pub fn run(
    gpu: &Gpu,
    kernels: &Kernels,
    dispatches: &[Dispatch],
    record: StepRecord,
    repeats: usize,
) -> Result<std::time::Duration> {
    let steps = gpu.buffer(
        "steps.once",
        STEP_STRIDE,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    );
    gpu.queue
        .write_buffer(&steps, 0, bytemuck::bytes_of(&record));
    let bg = kernels.steps_bind_group(gpu, &steps);
    let mut enc = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("run"),
            timestamp_writes: None,
        });
        for _ in 0..repeats {
            for d in dispatches {
                d.record(&mut pass, &bg, 0);
            }
        }
    }
    let start = std::time::Instant::now();
    gpu.queue.submit([enc.finish()]);
    gpu.wait()?;
    let elapsed = start.elapsed();
    gpu.take_error("running kernels")?;
    Ok(elapsed)
}
