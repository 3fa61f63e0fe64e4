//! One module per WGSL kernel family (`shaders/<name>.wgsl`, entry point `<name>`):
//! pipelines are built once in [`Kernels`], and each wrapper turns buffers and shapes into
//! a [`Dispatch`] — a pipeline, a bind group created once, and a grid — that training
//! records step after step without creating anything.
//!
//! Every kernel takes its per-step values from a [`StepRecord`] in bind group 1, bound
//! with a dynamic offset: the minibatch's position in the epoch order, its size (the last
//! minibatch may be partial), the scheduled learning rate, the first-step flag for
//! momentum, and the step's index into the metrics buffer.

pub mod bias_relu;
pub mod column_sum;
pub mod gather_normalize;
pub mod matmul;
pub mod sgd_update;
pub mod softmax_cross_entropy;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

pub use matmul::{Epilogue, MatmulSpec, MatmulVariant};

use crate::error::Result;
use crate::gpu::Gpu;

/// One shader module the kernels build: its name (the kernel family), its WGSL source, and
/// the device features it needs. [`Kernels::new`] builds a module only on devices that
/// have all of them, and [`crate::gpu::REQUESTED_FEATURES`] holds every one, so that the
/// naga capabilities a module is validated with are exactly those it is built with.
#[derive(Clone, Copy, Debug)]
pub struct KernelSource {
    /// The kernel family, e.g. `matmul_subgroup`.
    pub name: &'static str,
    /// The WGSL source as compiled (shared files prepended).
    pub source: &'static str,
    /// Device features the module needs (`SUBGROUP` for `matmul_subgroup`, none elsewhere).
    pub features: wgpu::Features,
}

const fn plain(name: &'static str, source: &'static str) -> KernelSource {
    KernelSource {
        name,
        source,
        features: wgpu::Features::empty(),
    }
}

/// Every shader module the kernels build, for validation without a device.
pub const SOURCES: [KernelSource; 7] = [
    plain("gather_normalize", gather_normalize::SOURCE),
    plain("matmul", matmul::SOURCE),
    KernelSource {
        name: "matmul_subgroup",
        source: matmul::SUBGROUP_SOURCE,
        features: wgpu::Features::SUBGROUP,
    },
    plain("softmax_cross_entropy", softmax_cross_entropy::SOURCE),
    plain("column_sum", column_sum::SOURCE),
    plain("sgd_update", sgd_update::SOURCE),
    plain("bias_relu", bias_relu::SOURCE),
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
pub(crate) fn uniform_entry(binding: u32) -> wgpu::BindGroupLayoutEntry {
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
pub(crate) fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
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

/// A family's shader module, bind-group layout and pipeline layout, built once.
pub(crate) struct Family {
    pub module: wgpu::ShaderModule,
    pub layout: wgpu::BindGroupLayout,
    pub pipeline_layout: wgpu::PipelineLayout,
}

impl Family {
    fn new(
        gpu: &Gpu,
        name: &str,
        source: &str,
        entries: &[wgpu::BindGroupLayoutEntry],
        steps: &wgpu::BindGroupLayout,
    ) -> Family {
        let layout = gpu
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(name),
                entries,
            });
        Family::with_layout(gpu, name, source, layout, steps)
    }

    /// A family over an existing bind-group layout, so that its pipelines take the bind
    /// groups made for another family.
    fn with_layout(
        gpu: &Gpu,
        name: &str,
        source: &str,
        layout: wgpu::BindGroupLayout,
        steps: &wgpu::BindGroupLayout,
    ) -> Family {
        let desc = wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        };
        let module = if std::env::var("WGT_UNCHECKED").is_ok() {
            unsafe {
                gpu.device
                    .create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked())
            }
        } else {
            gpu.device.create_shader_module(desc)
        };
        let pipeline_layout = gpu
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(name),
                bind_group_layouts: &[Some(&layout), Some(steps)],
                immediate_size: 0,
            });
        Family {
            module,
            layout,
            pipeline_layout,
        }
    }

    fn pipeline(&self, gpu: &Gpu, entry: &str, constants: &[(&str, f64)]) -> wgpu::ComputePipeline {
        gpu.counters.pipelines.fetch_add(1, Ordering::Relaxed);
        gpu.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&self.pipeline_layout),
                module: &self.module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants,
                    ..Default::default()
                },
                cache: None,
            })
    }
}

/// A matmul pipeline: variant, transposes of A, B and C, vec4 reads of A and B (subgroup
/// kernel only), and epilogue.
type MatmulPipelineKey = (MatmulVariant, [bool; 5], u32);

/// Every kernel's pipelines, built once per device. Matmul pipelines are specialised by
/// override constants (transposes, epilogue) and cached on first use.
pub struct Kernels {
    pub(crate) steps_layout: wgpu::BindGroupLayout,
    pub(crate) gather: Family,
    pub(crate) gather_pipeline: wgpu::ComputePipeline,
    pub(crate) matmul: Family,
    /// `matmul_subgroup`, on devices with subgroups of [`matmul::SUBGROUP_SIZE`] only.
    matmul_subgroup: Option<Family>,
    matmul_cache: Mutex<HashMap<MatmulPipelineKey, wgpu::ComputePipeline>>,
    /// Matmul variant timings per shape (see [`crate::gpu::autotune`]).
    pub tuning: crate::gpu::autotune::TuningCache,
    pub(crate) softmax: Family,
    softmax_cache: Mutex<HashMap<usize, wgpu::ComputePipeline>>,
    pub(crate) column_sum: Family,
    pub(crate) column_sum_pipeline: wgpu::ComputePipeline,
    pub(crate) sgd: Family,
    pub(crate) sgd_pipeline: wgpu::ComputePipeline,
    pub(crate) elementwise: Family,
    pub(crate) bias_relu_pipeline: wgpu::ComputePipeline,
    pub(crate) relu_backward_pipeline: wgpu::ComputePipeline,
}

impl Kernels {
    /// Compiles every shader and builds the fixed pipelines.
    ///
    /// # Errors
    /// [`crate::Error::Gpu`] when a shader or pipeline fails validation on this adapter.
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
        let gather = Family::new(
            gpu,
            "gather_normalize",
            gather_normalize::SOURCE,
            &gather_normalize::layout_entries(),
            &steps_layout,
        );
        let gather_pipeline = gather.pipeline(gpu, "gather_normalize", &[]);
        let matmul = Family::new(
            gpu,
            "matmul",
            matmul::SOURCE,
            &matmul::layout_entries(),
            &steps_layout,
        );
        let matmul_subgroup = gpu.has_subgroups_of(matmul::SUBGROUP_SIZE).then(|| {
            Family::with_layout(
                gpu,
                "matmul_subgroup",
                matmul::SUBGROUP_SOURCE,
                matmul.layout.clone(),
                &steps_layout,
            )
        });
        let softmax = Family::new(
            gpu,
            "softmax_cross_entropy",
            softmax_cross_entropy::SOURCE,
            &softmax_cross_entropy::layout_entries(),
            &steps_layout,
        );
        let column_sum = Family::new(
            gpu,
            "column_sum",
            column_sum::SOURCE,
            &column_sum::layout_entries(),
            &steps_layout,
        );
        let column_sum_pipeline = column_sum.pipeline(gpu, "column_sum", &[]);
        let sgd = Family::new(
            gpu,
            "sgd_update",
            sgd_update::SOURCE,
            &sgd_update::layout_entries(),
            &steps_layout,
        );
        let sgd_pipeline = sgd.pipeline(gpu, "sgd_update", &[]);
        let elementwise = Family::new(
            gpu,
            "bias_relu",
            bias_relu::SOURCE,
            &bias_relu::layout_entries(),
            &steps_layout,
        );
        let bias_relu_pipeline = elementwise.pipeline(gpu, "bias_relu_forward", &[]);
        let relu_backward_pipeline = elementwise.pipeline(gpu, "relu_backward", &[]);
        gpu.take_error("building the compute pipelines")?;
        Ok(Kernels {
            steps_layout,
            gather,
            gather_pipeline,
            matmul,
            matmul_subgroup,
            matmul_cache: Mutex::default(),
            tuning: Default::default(),
            softmax,
            softmax_cache: Mutex::default(),
            column_sum,
            column_sum_pipeline,
            sgd,
            sgd_pipeline,
            elementwise,
            bias_relu_pipeline,
            relu_backward_pipeline,
        })
    }

    /// The matmul pipeline for one variant and `spec`'s transposes and epilogue (and, for
    /// the subgroup kernel, which operands it reads as vec4: [`matmul::vec4_operands`]),
    /// built on first use.
    pub(crate) fn matmul_pipeline(
        &self,
        gpu: &Gpu,
        variant: MatmulVariant,
        spec: &MatmulSpec,
    ) -> wgpu::ComputePipeline {
        let (a_vec4, b_vec4) = match variant {
            MatmulVariant::Subgroup => matmul::vec4_operands(spec),
            _ => (false, false),
        };
        let flags = [spec.trans_a, spec.trans_b, spec.trans_c, a_vec4, b_vec4];
        let key = (variant, flags, spec.epilogue as u32);
        let mut cache = self.matmul_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| {
                let flag = |b: bool| f64::from(u8::from(b));
                let mut constants = vec![
                    ("TRANS_A", flag(spec.trans_a)),
                    ("TRANS_B", flag(spec.trans_b)),
                    ("TRANS_C", flag(spec.trans_c)),
                    ("EPILOGUE", f64::from(spec.epilogue as u32)),
                ];
                let family = match variant {
                    MatmulVariant::Subgroup => {
                        constants.push(("A_VEC4", flag(a_vec4)));
                        constants.push(("B_VEC4", flag(b_vec4)));
                        self.matmul_subgroup
                            .as_ref()
                            .expect("dispatch checks MatmulVariant::supports first")
                    }
                    _ => &self.matmul,
                };
                family.pipeline(gpu, variant.entry_point(), &constants)
            })
            .clone()
    }

    /// The softmax-cross-entropy pipeline for `classes` classes (built on first use). The
    /// class count is a pipeline constant: with a uniform loop bound, lavapipe leaks about
    /// 0.8 MB per dispatch (docs/performance.md).
    pub(crate) fn softmax_pipeline(&self, gpu: &Gpu, classes: usize) -> wgpu::ComputePipeline {
        let mut cache = self.softmax_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(classes)
            .or_insert_with(|| {
                self.softmax
                    .pipeline(gpu, "softmax_cross_entropy", &[("CLASSES", classes as f64)])
            })
            .clone()
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
