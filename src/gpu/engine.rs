//! `GpuEngine`: trains an MLP with every step on the GPU.
//!
//! Everything is created once per run: the dataset (u8, resident), the flat parameter,
//! gradient and momentum buffers, the activations for the largest minibatch, the step
//! records, the metrics buffers and every bind group. An epoch writes the sample order and
//! the step records once, records all its steps into a few command buffers, and reads the
//! per-step loss and correct counts back once at the end.
//!
//! One training step of an MLP with L layers is `1 + L + 1 + 2L + (L - 1) + 1` dispatches
//! (10 for one hidden layer):
//! ```text
//! gather_normalize                      X [B, I], y [B]
//! matmul (bias + ReLU fused), per layer H_l [B, O_l]; the last gives logits [B, C]
//! softmax_cross_entropy                 dlogits, per-step Σ loss and Σ correct
//! per layer, last to first:  matmul     dW_l = dZ_lᵀ · H_{l-1}
//!                            column_sum db_l = colsum(dZ_l)
//!                            matmul     dZ_{l-1} = (dZ_l · W_l) ⊙ [H_{l-1} > 0]   (l > 0)
//! sgd_update                            all parameters at once
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use crate::data::Dataset;
use crate::engine::{Engine, EvalSet, Evaluation, StepSums};
use crate::error::{Error, Result};
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::kernels::matmul::BatchDim;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::gpu::kernels::{
    Dispatch, Epilogue, Kernels, MatmulSpec, STEP_STRIDE, StepRecord, column_sum, gather_normalize,
    matmul, sgd_update, softmax_cross_entropy,
};
use crate::gpu::tensor::Readback;
use crate::gpu::{Gpu, View};
use crate::model::{MlpSpec, Normalization, ParamLayout};
use crate::optim::SgdConfig;

/// Steps recorded per command buffer: few submits per epoch, and the progress bar still
/// moves (it advances when a command buffer completes).
const STEPS_PER_SUBMIT: usize = 64;

/// Command buffers of training steps queued at once: enough that the GPU never waits for
/// the host to encode the next one, few enough that the progress bar follows the GPU.
const SUBMITS_IN_FLIGHT: usize = 3;

/// Samples per evaluation minibatch (at least the training minibatch).
const EVAL_BATCH: usize = 1000;

/// What a [`GpuEngine`] is built from.
pub struct GpuEngineConfig<'a> {
    pub spec: &'a MlpSpec,
    /// Initial flat parameters (layout of `spec.layout()`).
    pub params: &'a [f32],
    pub train: &'a Dataset,
    /// Training-sample indices held out for validation (evaluated with [`EvalSet::Validation`]).
    pub validation: &'a [u32],
    pub test: &'a Dataset,
    /// Largest minibatch B.
    pub batch_size: usize,
    pub sgd: &'a SgdConfig,
    pub normalization: Normalization,
    /// Matmul variant per launch: fixed, or timed per shape (`MatmulChoice::Auto`).
    pub variant: MatmulChoice,
}

/// A dataset resident on the GPU.
struct DeviceDataset {
    pixels: wgpu::Buffer,
    labels: wgpu::Buffer,
}

fn upload_dataset(gpu: &Gpu, name: &str, ds: &Dataset) -> Result<DeviceDataset> {
    let bytes = ds.images.len() as u64;
    if bytes > u64::from(u32::MAX) {
        return Err(Error::LimitExceeded {
            what: format!("the {name} set's pixels (32-bit indexing)"),
            requested: bytes,
            max: u64::from(u32::MAX),
            unit: "bytes",
            hint: "use a smaller dataset".into(),
        });
    }
    let hint = "this dataset does not fit this adapter's storage-buffer limits; use a GPU with larger limits or --device cpu";
    let pixels = gpu.storage_buffer(
        &format!("{name}.pixels"),
        bytes,
        wgpu::BufferUsages::COPY_DST,
    )?;
    gpu.check_binding(&format!("the {name} set's pixels"), bytes, hint)?;
    let mut padded = ds.images.clone();
    padded.resize(ds.images.len().next_multiple_of(4), 0);
    gpu.queue.write_buffer(&pixels, 0, &padded);
    let labels = gpu.storage_buffer(
        &format!("{name}.labels"),
        ds.labels.len() as u64 * 4,
        wgpu::BufferUsages::COPY_DST,
    )?;
    gpu.queue
        .write_buffer(&labels, 0, bytemuck::cast_slice(&ds.labels));
    Ok(DeviceDataset { pixels, labels })
}

/// Evaluation of one held-out set: its own gather and softmax launches (its data and
/// metrics), the shared forward launches, and its step records after the training ones.
struct EvalPlan {
    set: EvalSet,
    samples: usize,
    gather: Dispatch,
    softmax: Dispatch,
    metrics: wgpu::Buffer,
    /// Index of its first step record in the step buffer.
    first_record: usize,
    steps: usize,
}

/// Activation buffers sized for `capacity` rows.
struct Activations {
    x: wgpu::Buffer,
    y: wgpu::Buffer,
    /// `hidden[l]`: output of layer l for l < L - 1; `[capacity, O_l]`.
    hidden: Vec<wgpu::Buffer>,
    logits: wgpu::Buffer,
    dlogits: wgpu::Buffer,
    /// `dhidden[l]`: gradient with respect to `hidden[l]`.
    dhidden: Vec<wgpu::Buffer>,
    rows: wgpu::Buffer,
}

/// The GPU training engine. See the module docs for the step it runs.
pub struct GpuEngine<'g> {
    gpu: &'g Gpu,
    layout: ParamLayout,
    params: wgpu::Buffer,
    velocity: wgpu::Buffer,
    order: wgpu::Buffer,
    steps: wgpu::Buffer,
    steps_bind_group: wgpu::BindGroup,
    /// `[METRICS_HEADER + steps·2]`: status header, then per-step sums.
    train_metrics: wgpu::Buffer,
    readback: Readback,
    train_step: Vec<Dispatch>,
    eval_forward: Vec<Dispatch>,
    evals: Vec<EvalPlan>,
    max_train_steps: usize,
    batch_size: usize,
    variant: MatmulChoice,
    /// The logits buffer the evaluation forward writes (`[eval_rows, C]`), and its rows.
    logits: wgpu::Buffer,
    eval_rows: usize,
    /// Keeps every buffer bound by the launches alive.
    _keep: Vec<wgpu::Buffer>,
}

fn view(buffer: &wgpu::Buffer, offset_floats: usize, len: usize) -> View<'_> {
    View {
        buffer,
        offset: offset_floats as u64 * 4,
        len,
    }
}

impl<'g> GpuEngine<'g> {
    /// Uploads the data and parameters and prepares every launch.
    ///
    /// # Errors
    /// [`Error::LimitExceeded`] when a buffer, binding or grid does not fit the adapter
    /// (with a hint: a smaller batch, a smaller model); [`Error::Gpu`] on a wgpu error.
    pub fn new(
        gpu: &'g Gpu,
        kernels: &'g Kernels,
        cfg: GpuEngineConfig<'_>,
    ) -> Result<GpuEngine<'g>> {
        let spec = cfg.spec;
        let layout = spec.layout();
        assert_eq!(
            cfg.params.len(),
            layout.len,
            "parameters do not match the model layout"
        );
        let b = cfg.batch_size;
        let n_train = cfg.train.len();
        let capacity = b.max(EVAL_BATCH.min(cfg.test.len().max(cfg.validation.len())));
        let usage = wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC;

        let train = upload_dataset(gpu, "train", cfg.train)?;
        let test = upload_dataset(gpu, "test", cfg.test)?;
        let pbytes = layout.len as u64 * 4;
        // The parameter buffers depend on the layer sizes alone.
        let params_hint = "use smaller --hidden sizes";
        let params = gpu.storage_buffer_hinted(
            "the buffer `params` (parameters)",
            pbytes,
            usage,
            params_hint,
        )?;
        gpu.queue
            .write_buffer(&params, 0, bytemuck::cast_slice(cfg.params));
        let grads = gpu.storage_buffer_hinted(
            "the buffer `grads` (gradients)",
            pbytes,
            usage,
            params_hint,
        )?;
        let velocity = gpu.storage_buffer_hinted(
            "the buffer `velocity` (momentum)",
            pbytes,
            usage,
            params_hint,
        )?;
        let order =
            gpu.storage_buffer("order", n_train as u64 * 4, wgpu::BufferUsages::COPY_DST)?;
        let val_order = gpu.storage_buffer(
            "validation.order",
            cfg.validation.len() as u64 * 4,
            wgpu::BufferUsages::COPY_DST,
        )?;
        gpu.queue
            .write_buffer(&val_order, 0, bytemuck::cast_slice(cfg.validation));
        let identity: Vec<u32> = (0..cfg.test.len() as u32).collect();
        let test_order = gpu.storage_buffer(
            "test.order",
            identity.len() as u64 * 4,
            wgpu::BufferUsages::COPY_DST,
        )?;
        gpu.queue
            .write_buffer(&test_order, 0, bytemuck::cast_slice(&identity));

        let f32s = |label: &str, len: usize| gpu.storage_buffer(label, len as u64 * 4, usage);
        let layers = &layout.layers;
        let n_layers = layers.len();
        let classes = spec.classes();
        let act = Activations {
            x: f32s(
                "the buffer `x` (minibatch inputs)",
                capacity * spec.inputs(),
            )?,
            y: f32s("the buffer `y` (minibatch labels)", capacity)?,
            hidden: layers[..n_layers - 1]
                .iter()
                .enumerate()
                .map(|(l, s)| {
                    f32s(
                        &format!("the buffer `hidden{l}` (layer {l} activations)"),
                        capacity * s.outputs,
                    )
                })
                .collect::<Result<_>>()?,
            logits: f32s("the buffer `logits`", capacity * classes)?,
            dlogits: f32s("the buffer `dlogits`", capacity * classes)?,
            dhidden: layers[..n_layers - 1]
                .iter()
                .enumerate()
                .map(|(l, s)| {
                    f32s(
                        &format!("the buffer `dhidden{l}` (layer {l} activation gradients)"),
                        capacity * s.outputs,
                    )
                })
                .collect::<Result<_>>()?,
            rows: f32s("rows", capacity * 2)?,
        };
        let dummy = f32s("unused", 4)?;
        let no_decay_ranges: Vec<u32> = if cfg.sgd.decay_bias {
            vec![0, 0]
        } else {
            layout
                .bias_ranges()
                .iter()
                .flat_map(|&(s, e)| [s as u32, e as u32])
                .collect()
        };
        let no_decay = f32s("no_decay", no_decay_ranges.len())?;
        gpu.queue
            .write_buffer(&no_decay, 0, bytemuck::cast_slice(&no_decay_ranges));

        let max_train_steps = n_train.div_ceil(b);
        let train_metrics = f32s("train.metrics", METRICS_HEADER + max_train_steps * 2)?;
        let eval_steps = |n: usize| n.div_ceil(capacity);
        let total_records =
            max_train_steps + eval_steps(cfg.test.len()) + eval_steps(cfg.validation.len());
        let steps_bytes = total_records as u64 * STEP_STRIDE;
        gpu.check_buffer("the step records", steps_bytes, "use a larger --batch-size")?;
        let steps = gpu.buffer(
            "steps",
            steps_bytes,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let steps_bind_group = kernels.steps_bind_group(gpu, &steps);

        let variant = cfg.variant;
        let forward = |rows: usize, tag: &str| -> Result<Vec<Dispatch>> {
            layers
                .iter()
                .enumerate()
                .map(|(l, s)| {
                    let input = if l == 0 {
                        view(&act.x, 0, rows * s.inputs)
                    } else {
                        view(&act.hidden[l - 1], 0, rows * s.inputs)
                    };
                    let out = if l + 1 < n_layers {
                        &act.hidden[l]
                    } else {
                        &act.logits
                    };
                    let spec = MatmulSpec {
                        m: rows,
                        n: s.outputs,
                        k: s.inputs,
                        trans_a: false,
                        trans_b: true,
                        trans_c: false,
                        epilogue: if l + 1 < n_layers {
                            Epilogue::BiasRelu
                        } else {
                            Epilogue::Bias
                        },
                        batch_dim: BatchDim::M,
                    };
                    matmul::dispatch_with(
                        gpu,
                        kernels,
                        variant,
                        &format!("{tag}.layer{l}.forward"),
                        spec,
                        input,
                        view(&params, s.weight, s.outputs * s.inputs),
                        Some(view(&params, s.bias, s.outputs)),
                        None,
                        view(out, 0, rows * s.outputs),
                        View::whole(&dummy),
                    )
                })
                .collect()
        };

        // The training step.
        let mut train_step = vec![gather_normalize::dispatch(
            gpu,
            kernels,
            "train.gather_normalize",
            gather_normalize::GatherBuffers {
                pixels: &train.pixels,
                labels: &train.labels,
                order: &order,
                x: &act.x,
                y: &act.y,
            },
            spec.inputs(),
            b,
            cfg.normalization.mean,
            cfg.normalization.std,
        )?];
        train_step.extend(forward(b, "train")?);
        train_step.push(softmax_cross_entropy::dispatch(
            gpu,
            kernels,
            "train.softmax_cross_entropy",
            softmax_cross_entropy::SoftmaxBuffers {
                logits: view(&act.logits, 0, b * classes),
                labels: view(&act.y, 0, b),
                dlogits: view(&act.dlogits, 0, b * classes),
                rows: view(&act.rows, 0, b * 2),
                metrics: View::whole(&train_metrics),
            },
            b,
            classes,
            true,
        )?);
        for (l, s) in layers.iter().enumerate().rev() {
            let dz = if l + 1 == n_layers {
                view(&act.dlogits, 0, b * s.outputs)
            } else {
                view(&act.dhidden[l], 0, b * s.outputs)
            };
            let input = if l == 0 {
                view(&act.x, 0, b * s.inputs)
            } else {
                view(&act.hidden[l - 1], 0, b * s.inputs)
            };
            // dW [O, I] = dZᵀ · X, or computed as (Xᵀ · dZ)ᵀ when that orientation is faster
            // (the long I dimension then lies along the rows a workgroup shares).
            let plain = MatmulSpec {
                m: s.outputs,
                n: s.inputs,
                k: b,
                trans_a: true,
                trans_b: false,
                trans_c: false,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::K,
            };
            let flipped = MatmulSpec {
                m: s.inputs,
                n: s.outputs,
                trans_c: true,
                ..plain
            };
            let flip = faster_orientation(gpu, kernels, variant, &plain, &flipped)?;
            let (spec, lhs, rhs) = if flip {
                (flipped, input, dz)
            } else {
                (plain, dz, input)
            };
            train_step.push(matmul::dispatch_with(
                gpu,
                kernels,
                variant,
                &format!("train.layer{l}.weight_grad"),
                spec,
                lhs,
                rhs,
                None,
                None,
                view(&grads, s.weight, s.outputs * s.inputs),
                View::whole(&dummy),
            )?);
            train_step.push(column_sum::dispatch(
                gpu,
                kernels,
                &format!("train.layer{l}.bias_grad"),
                b,
                s.outputs,
                BatchDim::M,
                dz,
                view(&grads, s.bias, s.outputs),
            )?);
            if l > 0 {
                train_step.push(matmul::dispatch_with(
                    gpu,
                    kernels,
                    variant,
                    &format!("train.layer{l}.input_grad"),
                    MatmulSpec {
                        m: b,
                        n: s.inputs,
                        k: s.outputs,
                        trans_a: false,
                        trans_b: false,
                        trans_c: false,
                        epilogue: Epilogue::ReluMask,
                        batch_dim: BatchDim::M,
                    },
                    dz,
                    view(&params, s.weight, s.outputs * s.inputs),
                    None,
                    Some(view(&act.hidden[l - 1], 0, b * s.inputs)),
                    view(&act.dhidden[l - 1], 0, b * s.inputs),
                    View::whole(&dummy),
                )?);
            }
        }
        train_step.push(sgd_update::dispatch(
            gpu,
            kernels,
            "sgd_update",
            sgd_update::SgdBuffers {
                params: View::whole(&params),
                grads: View::whole(&grads),
                velocity: View::whole(&velocity),
                no_decay: View::whole(&no_decay),
                status: view(&train_metrics, 0, METRICS_HEADER),
            },
            layout.len,
            if cfg.sgd.decay_bias { 0 } else { n_layers },
            cfg.sgd,
        )?);

        // Evaluation: shared forward launches at `capacity` rows, one gather and softmax per set.
        let eval_forward = forward(capacity, "eval")?;
        let mut evals = Vec::new();
        let mut first_record = max_train_steps;
        let sets: [(EvalSet, &DeviceDataset, &wgpu::Buffer, usize); 2] = [
            (EvalSet::Test, &test, &test_order, cfg.test.len()),
            (
                EvalSet::Validation,
                &train,
                &val_order,
                cfg.validation.len(),
            ),
        ];
        for (set, data, set_order, samples) in sets {
            if samples == 0 {
                continue;
            }
            let name = match set {
                EvalSet::Test => "test",
                EvalSet::Validation => "validation",
            };
            let n_steps = eval_steps(samples);
            let metrics = f32s(&format!("{name}.metrics"), METRICS_HEADER + n_steps * 2)?;
            let gather = gather_normalize::dispatch(
                gpu,
                kernels,
                &format!("{name}.gather_normalize"),
                gather_normalize::GatherBuffers {
                    pixels: &data.pixels,
                    labels: &data.labels,
                    order: set_order,
                    x: &act.x,
                    y: &act.y,
                },
                spec.inputs(),
                capacity,
                cfg.normalization.mean,
                cfg.normalization.std,
            )?;
            let softmax = softmax_cross_entropy::dispatch(
                gpu,
                kernels,
                &format!("{name}.softmax_cross_entropy"),
                softmax_cross_entropy::SoftmaxBuffers {
                    logits: View::whole(&act.logits),
                    labels: View::whole(&act.y),
                    dlogits: View::whole(&act.dlogits),
                    rows: View::whole(&act.rows),
                    metrics: View::whole(&metrics),
                },
                capacity,
                classes,
                false,
            )?;
            let records: Vec<StepRecord> = (0..n_steps)
                .map(|i| StepRecord {
                    offset: (i * capacity) as u32,
                    batch: (capacity.min(samples - i * capacity)) as u32,
                    index: i as u32,
                    ..Default::default()
                })
                .collect();
            write_records(gpu, &steps, first_record, &records);
            evals.push(EvalPlan {
                set,
                samples,
                gather,
                softmax,
                metrics,
                first_record,
                steps: n_steps,
            });
            first_record += n_steps;
        }
        let readback = Readback::new(
            gpu,
            "metrics.staging",
            (max_train_steps.max(total_records) * 2 * 4 + 8) as u64,
        );
        gpu.take_error("preparing the training launches")?;
        let mut keep = vec![
            train.pixels,
            train.labels,
            test.pixels,
            test.labels,
            grads,
            val_order,
            test_order,
            dummy,
            no_decay,
        ];
        let logits = act.logits.clone();
        keep.extend([act.x, act.y, act.logits, act.dlogits, act.rows]);
        keep.extend(act.hidden);
        keep.extend(act.dhidden);
        Ok(GpuEngine {
            gpu,
            layout,
            params,
            velocity,
            order,
            steps,
            steps_bind_group,
            train_metrics,
            readback,
            train_step,
            eval_forward,
            evals,
            max_train_steps,
            batch_size: b,
            variant,
            logits,
            eval_rows: capacity,
            _keep: keep,
        })
    }

    /// The launches of one training step, in order (for profiling and dispatch counts).
    pub fn train_step_dispatches(&self) -> &[Dispatch] {
        &self.train_step
    }

    /// The step-record bind group (bind group 1 of every launch).
    pub fn steps_bind_group(&self) -> &wgpu::BindGroup {
        &self.steps_bind_group
    }

    /// How the matmul variants were chosen.
    pub fn matmul_choice(&self) -> MatmulChoice {
        self.variant
    }

    /// The kernel entry point of every matmul launch of a training step, by label.
    pub fn matmul_kernels(&self) -> Vec<(&str, &'static str)> {
        self.train_step
            .iter()
            .filter(|d| d.kernel.starts_with("matmul"))
            .map(|d| (d.label.as_str(), d.kernel))
            .collect()
    }

    /// Writes the epoch's order and step records (before recording any step).
    pub fn upload_epoch(&self, order: &[u32], steps: &[StepRecord]) -> Result<()> {
        if steps.len() > self.max_train_steps {
            return Err(Error::InvalidConfig {
                name: "steps per epoch",
                value: steps.len().to_string(),
                reason: format!("this engine was built for at most {}", self.max_train_steps),
            });
        }
        if let Some(s) = steps
            .iter()
            .find(|s| s.batch as usize > self.batch_size || s.batch == 0)
        {
            return Err(Error::InvalidConfig {
                name: "minibatch size",
                value: s.batch.to_string(),
                reason: format!("must be in 1..={}", self.batch_size),
            });
        }
        self.gpu
            .queue
            .write_buffer(&self.order, 0, bytemuck::cast_slice(order));
        write_records(self.gpu, &self.steps, 0, steps);
        Ok(())
    }

    fn encode_steps(
        &self,
        launches: &[&[Dispatch]],
        first_record: usize,
        count: usize,
    ) -> wgpu::CommandBuffer {
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("steps"),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("steps"),
                timestamp_writes: None,
            });
            for i in first_record..first_record + count {
                let offset = (i as u64 * STEP_STRIDE) as u32;
                for group in launches {
                    for d in group.iter() {
                        d.record(&mut pass, &self.steps_bind_group, offset);
                    }
                }
            }
        }
        enc.finish()
    }

    fn read_sums(&self, what: &str, buffer: &wgpu::Buffer, steps: usize) -> Result<Vec<StepSums>> {
        let bytes = self.readback.read(
            self.gpu,
            what,
            buffer,
            METRICS_HEADER as u64 * 4,
            steps as u64 * 8,
        )?;
        let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(floats.chunks_exact(2).map(|c| [c[0], c[1]]).collect())
    }
}

/// True when `flipped` (the same product with C transposed) is measured faster than
/// `plain`; always false for a fixed variant.
fn faster_orientation(
    gpu: &Gpu,
    kernels: &Kernels,
    choice: MatmulChoice,
    plain: &MatmulSpec,
    flipped: &MatmulSpec,
) -> Result<bool> {
    if choice != MatmulChoice::Auto {
        return Ok(false);
    }
    let best =
        |s: &MatmulSpec| crate::gpu::autotune::rank_variants(gpu, kernels, s).map(|r| r[0].ms);
    Ok(best(flipped)? < best(plain)?)
}

fn set_name(set: EvalSet) -> &'static str {
    match set {
        EvalSet::Test => "test",
        EvalSet::Validation => "validation",
    }
}

fn write_records(gpu: &Gpu, steps: &wgpu::Buffer, first: usize, records: &[StepRecord]) {
    if records.is_empty() {
        return;
    }
    let stride = STEP_STRIDE as usize;
    let mut bytes = vec![0u8; records.len() * stride];
    for (i, r) in records.iter().enumerate() {
        bytes[i * stride..i * stride + std::mem::size_of::<StepRecord>()]
            .copy_from_slice(bytemuck::bytes_of(r));
    }
    gpu.queue
        .write_buffer(steps, (first * stride) as u64, &bytes);
}

impl Engine for GpuEngine<'_> {
    fn describe(&self) -> String {
        let kernels: Vec<String> = self
            .matmul_kernels()
            .iter()
            .map(|(label, kernel)| {
                format!(
                    "{} {}",
                    label.trim_start_matches("train."),
                    kernel.trim_start_matches("matmul_")
                )
            })
            .collect();
        format!(
            "gpu {}; matmul kernels: {}",
            self.gpu.describe(),
            kernels.join(", ")
        )
    }

    fn train_epoch(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<StepSums>> {
        self.train_epoch_until(order, steps, progress, &AtomicBool::new(false))
    }

    /// Keeps at most `SUBMITS_IN_FLIGHT` (3) command buffers of `STEPS_PER_SUBMIT` (64) steps
    /// queued: each time the oldest completes, `progress` gets the steps finished so far
    /// and the next command buffer is encoded and submitted while the GPU runs the queued
    /// ones. (Submitting the whole epoch up front left the bar at 0 on adapters whose
    /// `submit` runs the work, lavapipe among them, then jumped to the end.) Once `stop`
    /// is set nothing more is submitted; what is queued finishes, so the epoch ends at a
    /// command-buffer (step) boundary.
    fn train_epoch_until(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<StepSums>> {
        self.upload_epoch(order, steps)?;
        let mut in_flight = std::collections::VecDeque::with_capacity(SUBMITS_IN_FLIGHT);
        let mut submitted = 0;
        loop {
            while in_flight.len() < SUBMITS_IN_FLIGHT
                && submitted < steps.len()
                && !stop.load(Ordering::Relaxed)
            {
                let count = STEPS_PER_SUBMIT.min(steps.len() - submitted);
                let cb = self.encode_steps(&[&self.train_step], submitted, count);
                submitted += count;
                in_flight.push_back((self.gpu.queue.submit([cb]), submitted));
            }
            let Some((index, done)) = in_flight.pop_front() else {
                break;
            };
            self.gpu
                .device
                .poll(wgpu::PollType::Wait {
                    submission_index: Some(index),
                    timeout: None,
                })
                .map_err(|e| Error::Gpu {
                    context: "training".into(),
                    message: e.to_string(),
                })?;
            progress(done);
        }
        self.gpu.take_error("training")?;
        self.read_sums("the training metrics", &self.train_metrics, submitted)
    }

    fn evaluate(&mut self, set: EvalSet) -> Result<Evaluation> {
        let Some(plan) = self.evals.iter().find(|p| p.set == set) else {
            return Ok(Evaluation::default());
        };
        let cb = self.encode_steps(
            &[
                std::slice::from_ref(&plan.gather),
                &self.eval_forward,
                std::slice::from_ref(&plan.softmax),
            ],
            plan.first_record,
            plan.steps,
        );
        self.gpu.queue.submit([cb]);
        let sums = self.read_sums("the evaluation metrics", &plan.metrics, plan.steps)?;
        let loss: f64 = sums.iter().map(|s| f64::from(s[0])).sum();
        let correct: f64 = sums.iter().map(|s| f64::from(s[1])).sum();
        Ok(Evaluation {
            loss: loss / plan.samples as f64,
            accuracy: correct / plan.samples as f64,
            samples: plan.samples,
        })
    }

    /// Runs the evaluation forward minibatch by minibatch in one command buffer, copying
    /// each minibatch's logits into one buffer of `[N, C]` (allocated here: this is a
    /// one-off for `eval`, not part of training), then reads it back once.
    fn logits(&mut self, set: EvalSet) -> Result<Vec<f32>> {
        let Some(plan) = self.evals.iter().find(|p| p.set == set) else {
            return Ok(Vec::new());
        };
        let classes = self.layout.layers.last().map_or(0, |l| l.outputs);
        let row_bytes = classes as u64 * 4;
        let all = self.gpu.buffer(
            &format!("{}.logits", set_name(set)),
            plan.samples as u64 * row_bytes,
            wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        );
        let mut enc = self
            .gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("eval.logits"),
            });
        for i in 0..plan.steps {
            let first = i * self.eval_rows;
            let rows = self.eval_rows.min(plan.samples - first);
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("eval.logits"),
                    timestamp_writes: None,
                });
                let offset = ((plan.first_record + i) as u64 * STEP_STRIDE) as u32;
                plan.gather
                    .record(&mut pass, &self.steps_bind_group, offset);
                for d in &self.eval_forward {
                    d.record(&mut pass, &self.steps_bind_group, offset);
                }
            }
            enc.copy_buffer_to_buffer(
                &self.logits,
                0,
                &all,
                first as u64 * row_bytes,
                rows as u64 * row_bytes,
            );
        }
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.take_error("computing the logits")?;
        let bytes = crate::gpu::tensor::read_buffer(
            self.gpu,
            "the logits",
            &all,
            0,
            plan.samples as u64 * row_bytes,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn dispatches_per_step(&self) -> usize {
        self.train_step.len()
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        let bytes = crate::gpu::tensor::read_buffer(
            self.gpu,
            "the parameters",
            &self.params,
            0,
            self.layout.len as u64 * 4,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        assert_eq!(
            params.len(),
            self.layout.len,
            "parameters do not match the model layout"
        );
        self.gpu
            .queue
            .write_buffer(&self.params, 0, bytemuck::cast_slice(params));
        self.gpu
            .queue
            .write_buffer(&self.velocity, 0, &vec![0u8; params.len() * 4]);
        self.gpu
            .queue
            .write_buffer(&self.train_metrics, 0, &[0u8; METRICS_HEADER * 4]);
        Ok(())
    }
}
