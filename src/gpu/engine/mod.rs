//! `GpuEngine`: trains an MLP with every step on the GPU.
//!
//! Everything is created once per run: the dataset (u8, resident), the flat parameter,
//! gradient and momentum buffers, the activations for the largest minibatch, the step
//! records, the metrics buffers and every bind group. An epoch writes the sample order and
//! the step records once, records all its steps into a few command buffers, and reads the
//! per-step loss and correct counts back once at the end.
//!
//! Opening an engine is three steps: allocate the buffers, choose the matmul kernels
//! (`tuning.rs`), then build the step plan's launches (`plan.rs`): named stages, each a short
//! function returning its dispatches (llm.c's `matmul_forward` /
//! `crossentropy_softmax_backward` / `update` reading).
//!
//! For an MLP of L layers a training step is `1 + L + 1 + (2L - 1) + (L - 1) + 1` dispatches
//! (9 for one hidden layer) without fusions ([`Fusions::NONE`]):
//! ```text
//! gather      gather_normalize        X [B, I], y [B]            (fused: none, see below)
//! forward     matmul per layer        H_l = ReLU(H_{l-1} · W_lᵀ + b_l); the last gives logits [B, C]
//! loss        softmax_cross_entropy   dlogits, per-step Σ loss and Σ correct, and the last
//!                                     layer's db = colsum(dlogits) (fused: same order, same bits)
//! backward    per layer, last to first:
//!               matmul     dW_l = dZ_lᵀ · H_{l-1}
//!               column_sum db_l = colsum(dZ_l)                   (l < L - 1)
//!               matmul     dZ_{l-1} = (dZ_l · W_l) ⊙ [H_{l-1} > 0]   (l > 0)
//! update      sgd_update              all parameters at once
//! ```
//! The loss launch takes the last bias gradient over only while its loops fit the adapter's
//! loop cap (`softmax_cross_entropy::fuses_bias`; on lavapipe, minibatches up to about 58,000 rows
//! at C = 10); past it, that gradient is a `column_sum` launch again (one dispatch more).
//!
//! Fused output layer (`Fusions::output_layer`, `plan::Stages::fused_output`): when the
//! output layer's input is a hidden layer (L ≥ 2) and its product is small (`B·H·C` up to
//! `softmax_cross_entropy::FUSED_OUTPUT_MAX_MACS`, batch 128 at H = 256, C = 10) and fits
//! the loop cap, the training `loss` launch computes the logits itself from `H_{L-2}` and
//! the last layer's weights, in the matmul kernels' summation order (the same bits), and
//! `forward` has no matmul for the last layer: one dispatch fewer (8 for one hidden layer).
//! ```text
//! forward     matmul per layer but the last     H_l = ReLU(H_{l-1} · W_lᵀ + b_l)
//! loss        softmax_cross_entropy             logits = H_{L-2} · W_{L-1}ᵀ + b_{L-1}, then as above
//! ```
//! Evaluation is `gather`, `forward` and `loss` (without gradient) over a held-out set; it
//! never fuses the output layer (its `EVAL_BATCH`-row minibatches are past the size limit,
//! and [`GpuEngine`]'s `logits` reads the forward's logits buffer).
//!
//! The gather fusion ([`Fusions::gather`]) drops the `gather` launch, in training (8 for one
//! hidden layer) and in evaluation: layer 0's forward product reads the minibatch's u8
//! pixels through the sample order and normalises them in its operand loads, and the
//! workgroups of its first column block store X (training only, for layer 0's weight
//! gradient) and y (for the loss) on the way (`matmul_gather`; the same values and products,
//! bit for bit). It applies where layer 0's kernel reads pixels (subgroup, tiled2d), K is
//! summed in one launch under the loop cap, and the adapter binds 9 storage buffers
//! (`Stages::fuses_gather`); elsewhere the `gather` launch stays.
//!
//! With the `update` fusion ([`Fusions::update`]) the weight-gradient products apply the
//! SGD step themselves (`kernels::matmul_sgd`): no `column_sum` and no `update` stage, `L`
//! dispatches fewer (7 for one hidden layer), the same bits. `backward` of layer l is then
//! ```text
//!               matmul     dZ_{l-1} = (dZ_l · W_l) ⊙ [H_{l-1} > 0]   (l > 0; reads W_l first)
//!               matmul     dW_l = dZ_lᵀ · H_{l-1}, never stored: W_l, b_l (db_l = colsum(dZ_l)
//!                          summed in the epilogue) and their momentum take one SGD step
//! ```
//! It applies only when every layer's product is one chunk of K and the bias sum fits the
//! loop cap too (`matmul_sgd::fits`; on lavapipe minibatches up to about 52,000 rows with
//! the subgroup kernel, 32,000 with rows);
//! otherwise, and for f16 runs, the step keeps the separate launches. The SGD settings the
//! fused launches read are per-layer records that `set_sgd` rewrites.
//!
//! With `--precision f16` ([`Precision::F16`]) every matmul runs `matmul_f16` on f16
//! activations and an f16 copy of the weights, and the step gains two conversions (the
//! inputs after `gather`, the weights after `update`): 2 dispatches more (`plan::f16`).

pub(crate) mod buffers;
pub(crate) mod plan;
pub(crate) mod tuning;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Precision, RunConfig};
use crate::engine::{Engine, EvalSet, Evaluation, RunData, RunSetup};
use crate::error::{Error, Result};
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::gpu::kernels::{Dispatch, Kernels, STEP_STRIDE, matmul_f16};
use crate::gpu::tensor::Readback;
use crate::gpu::{Fusions, Gpu};
use crate::step::{StepRecord, StepSums};

use buffers::{RunBuffers, f32_buffer};
use plan::Stages;

/// Steps recorded per command buffer: few submits per epoch, and the progress bar still
/// moves (it advances when a command buffer completes).
pub(crate) const STEPS_PER_SUBMIT: usize = 64;

/// Command buffers of training steps queued at once: enough that the GPU never waits for
/// the host to encode the next one, few enough that the progress bar follows the GPU.
pub(crate) const SUBMITS_IN_FLIGHT: usize = 3;

/// Evaluation of one held-out set: its own gather and softmax launches (its data and
/// metrics), the shared forward launches, and its step records after the training ones.
struct EvalPlan {
    set: EvalSet,
    samples: usize,
    /// `gather_normalize`, or with the gather fusion layer 0's forward reading the set's
    /// pixels (then the shared forward launches start at layer 1).
    gather: Dispatch,
    softmax: Dispatch,
    metrics: wgpu::Buffer,
    /// Index of its first step record in the step buffer.
    first_record: usize,
    steps: usize,
}

/// One command buffer recording steps `first_record .. first_record + count`: every
/// dispatch of `launches`, in order, per step, with that step's record bound at its
/// dynamic offset (`STEP_STRIDE` bytes apart). Shared by the single and population engines.
pub(crate) fn encode_steps(
    gpu: &Gpu,
    label: &str,
    steps_bind_group: &wgpu::BindGroup,
    launches: &[&[Dispatch]],
    first_record: usize,
    count: usize,
) -> wgpu::CommandBuffer {
    let mut enc = gpu
        .device
        .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some(label) });
    {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some(label),
            timestamp_writes: None,
        });
        for i in first_record..first_record + count {
            let offset = (i as u64 * STEP_STRIDE) as u32;
            for group in launches {
                for d in group.iter() {
                    d.record(&mut pass, steps_bind_group, offset);
                }
            }
        }
    }
    enc.finish()
}

/// The GPU training engine. See the module docs for the step it runs.
pub struct GpuEngine<'g> {
    gpu: &'g Gpu,
    kernels: &'g Kernels,
    setup: RunSetup,
    bufs: RunBuffers,
    steps_bind_group: wgpu::BindGroup,
    readback: Readback,
    train_step: Vec<Dispatch>,
    eval_forward: Vec<Dispatch>,
    evals: Vec<EvalPlan>,
    variant: MatmulChoice,
}

/// The evaluation plans of the run's held-out sets (test, then validation, those that
/// have samples), their step records written after the training ones. With `fused` (layer
/// 0's evaluation kernel, where the gather fusion applies) each set's first launch is layer
/// 0's forward reading its pixels, without storing X.
fn eval_plans(
    stages: &Stages<'_>,
    setup: &RunSetup,
    data: RunData<'_>,
    norm: crate::model::Normalization,
    fused: Option<crate::gpu::MatmulVariant>,
) -> Result<Vec<EvalPlan>> {
    let bufs = stages.bufs;
    let eval_rows = bufs.eval_rows;
    let sets = [
        (EvalSet::Test, &bufs.test, &bufs.test_order, data.test.len()),
        (
            EvalSet::Validation,
            &bufs.train,
            &bufs.validation_order,
            setup.validation.len(),
        ),
    ];
    let mut evals = Vec::new();
    let mut first_record = bufs.max_train_steps;
    for (set, dataset, set_order, samples) in sets {
        if samples == 0 {
            continue;
        }
        let name = set_name(set);
        let n_steps = samples.div_ceil(eval_rows);
        let metrics = f32_buffer(
            stages.gpu,
            &format!("{name}.metrics"),
            METRICS_HEADER + n_steps * 2,
        )?;
        let records: Vec<StepRecord> = (0..n_steps)
            .map(|i| StepRecord {
                offset: (i * eval_rows) as u32,
                batch: (eval_rows.min(samples - i * eval_rows)) as u32,
                index: i as u32,
                ..Default::default()
            })
            .collect();
        write_records(stages.gpu, &bufs.steps, first_record, &records);
        evals.push(EvalPlan {
            set,
            samples,
            gather: match fused {
                Some(v) => {
                    stages.gather_forward(name, dataset, set_order, eval_rows, norm, v, false)?
                }
                None => stages.gather(name, dataset, set_order, eval_rows, norm)?,
            },
            softmax: stages.loss(name, eval_rows, &metrics, false)?,
            metrics,
            first_record,
            steps: n_steps,
        });
        first_record += n_steps;
    }
    Ok(evals)
}

impl<'g> GpuEngine<'g> {
    /// Opens the GPU engine for `cfg` on `data` (see [`crate::device::open`]): uploads the
    /// data and the initial parameters, chooses the matmul kernels (`matmul`) and prepares
    /// every launch.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`RunSetup::new`]; [`Error::LimitExceeded`] when a buffer,
    /// binding or grid does not fit the adapter (with a hint: a smaller batch, a smaller
    /// model); [`Error::Gpu`] on a wgpu error.
    pub fn new(
        gpu: &'g Gpu,
        kernels: &'g Kernels,
        matmul: MatmulChoice,
        fusions: Fusions,
        cfg: &RunConfig,
        data: RunData<'_>,
    ) -> Result<GpuEngine<'g>> {
        let setup = RunSetup::new(cfg, data)?;
        let f16 = cfg.precision == Precision::F16;
        if f16 {
            // Before anything is allocated or built: a clear error, never a wgpu panic.
            matmul_f16::f16_device_support(gpu).map_err(|reason| Error::InvalidConfig {
                name: "precision",
                value: cfg.precision.to_string(),
                reason,
            })?;
        }
        let bufs = RunBuffers::allocate(gpu, &setup, data)?;
        let steps_bind_group = kernels.steps_bind_group(gpu, &bufs.steps);
        let (b, eval_rows, layers) = (cfg.batch_size, bufs.eval_rows, &bufs.layout.layers);

        // The tuning step: every matmul kernel, chosen before any launch is built (f16 runs
        // have one matmul kernel, nothing to choose).
        let matmuls = if f16 {
            tuning::MatmulPlan::default()
        } else {
            tuning::tune(gpu, kernels, matmul, layers, b, eval_rows)?
        };

        // The training step, stage by stage (`plan::f16` draws the f16 one).
        let stages = Stages {
            gpu,
            kernels,
            bufs: &bufs,
            matmuls: &matmuls,
            fusions,
        };
        let norm = cfg.normalization;
        let (train, order, metrics) = (&bufs.train, &bufs.order, &bufs.train_metrics);
        // The gather fusion: layer 0's forward reads the pixels, no gather launch.
        let fused = !f16 && stages.fuses_gather(b, matmuls.forward[0]);
        let mut train_step = vec![if fused {
            stages.gather_forward("train", train, order, b, norm, matmuls.forward[0], true)?
        } else {
            stages.gather("train", train, order, b, norm)?
        }];
        if f16 {
            train_step.push(stages.convert_inputs("train", b)?);
            train_step.extend(stages.forward_f16("train", b)?);
        } else {
            let first = usize::from(fused);
            train_step.extend(stages.train_forward(b, first)?);
        }
        train_step.push(stages.loss("train", b, metrics, true)?);
        for l in (0..layers.len()).rev() {
            if f16 {
                train_step.extend(stages.backward_f16(l, b)?);
            } else {
                train_step.extend(stages.backward(l, b)?);
            }
        }
        if f16 || !stages.update_fused(b) {
            train_step.push(stages.update(&cfg.sgd)?);
        }
        if f16 {
            train_step.push(stages.convert_params()?);
        }

        // Evaluation: shared forward launches at `eval_rows` rows, one gather (or, fused,
        // layer 0's forward reading the pixels) and loss per set.
        let eval_fused = (!f16)
            .then(|| matmuls.eval_forward[0])
            .filter(|&v| stages.fuses_gather(eval_rows, v));
        let eval_forward = if f16 {
            let mut v = vec![stages.convert_inputs("eval", eval_rows)?];
            v.extend(stages.forward_f16("eval", eval_rows)?);
            v
        } else {
            let first = usize::from(eval_fused.is_some());
            stages.forward("eval", eval_rows, &matmuls.eval_forward, first)?
        };
        let evals = eval_plans(&stages, &setup, data, norm, eval_fused)?;
        let records = bufs.max_train_steps + evals.iter().map(|e| e.steps).sum::<usize>();
        let readback = Readback::new(gpu, "metrics.staging", (records * 2 * 4 + 8) as u64);
        gpu.take_error("preparing the training launches")?;
        Ok(GpuEngine {
            gpu,
            kernels,
            setup,
            bufs,
            steps_bind_group,
            readback,
            train_step,
            eval_forward,
            evals,
            variant: matmul,
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
        if steps.len() > self.bufs.max_train_steps {
            return Err(Error::InvalidConfig {
                name: "steps per epoch",
                value: steps.len().to_string(),
                reason: format!(
                    "this engine was built for at most {}",
                    self.bufs.max_train_steps
                ),
            });
        }
        if let Some(s) = steps
            .iter()
            .find(|s| s.batch as usize > self.setup.config.batch_size || s.batch == 0)
        {
            return Err(Error::InvalidConfig {
                name: "minibatch size",
                value: s.batch.to_string(),
                reason: format!("must be in 1..={}", self.setup.config.batch_size),
            });
        }
        self.gpu
            .queue
            .write_buffer(&self.bufs.order, 0, bytemuck::cast_slice(order));
        write_records(self.gpu, &self.bufs.steps, 0, steps);
        Ok(())
    }

    fn encode_steps(
        &self,
        launches: &[&[Dispatch]],
        first_record: usize,
        count: usize,
    ) -> wgpu::CommandBuffer {
        encode_steps(
            self.gpu,
            "steps",
            &self.steps_bind_group,
            launches,
            first_record,
            count,
        )
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

pub(crate) fn set_name(set: EvalSet) -> &'static str {
    match set {
        EvalSet::Test => "test",
        EvalSet::Validation => "validation",
    }
}

pub(crate) fn write_records(gpu: &Gpu, steps: &wgpu::Buffer, first: usize, records: &[StepRecord]) {
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
    fn setup(&self) -> &RunSetup {
        &self.setup
    }

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
        // f32 runs describe themselves as before; f16 runs say so.
        let precision = match self.setup.config.precision {
            Precision::F32 => String::new(),
            p => format!("; precision {p}"),
        };
        format!(
            "gpu {}{precision}; matmul kernels: {}",
            self.gpu.describe(),
            kernels.join(", ")
        )
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
        self.read_sums("the training metrics", &self.bufs.train_metrics, submitted)
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
        let classes = self.bufs.layout.layers.last().map_or(0, |l| l.outputs);
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
            let first = i * self.bufs.eval_rows;
            let rows = self.bufs.eval_rows.min(plan.samples - first);
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
                &self.bufs.act.logits,
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
            &self.bufs.params,
            0,
            self.bufs.layout.len as u64 * 4,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.setup.check_params(params)?;
        self.gpu
            .queue
            .write_buffer(&self.bufs.params, 0, bytemuck::cast_slice(params));
        if let Some(f) = &self.bufs.f16 {
            self.gpu
                .queue
                .write_buffer(&f.params16, 0, &buffers::f16_bytes(params));
        }
        self.gpu
            .queue
            .write_buffer(&self.bufs.velocity, 0, &vec![0u8; params.len() * 4]);
        self.gpu
            .queue
            .write_buffer(&self.bufs.train_metrics, 0, &[0u8; METRICS_HEADER * 4]);
        Ok(())
    }

    /// Rebuilds the `update` launch with the new settings in its uniform, and rewrites the
    /// layers' SGD records that the fused update reads (`buffers::write_sgd_records`):
    /// once per change, never per step.
    fn set_sgd(&mut self, sgd: &crate::optim::SgdConfig) -> Result<()> {
        crate::engine::check_sgd_change(&self.setup.config.sgd, sgd)?;
        let update = plan::update_dispatch(self.gpu, self.kernels, &self.bufs, sgd)?;
        let b = &self.bufs;
        buffers::write_sgd_records(
            self.gpu,
            &b.sgd_records,
            b.sgd_record_stride,
            &b.layout,
            sgd,
        );
        self.gpu.take_error("changing the SGD settings")?;
        // A step has one sgd_update launch, or none when the update is fused.
        if let Some(d) = self
            .train_step
            .iter_mut()
            .find(|d| d.kernel == "sgd_update")
        {
            *d = update;
        }
        self.setup.config.sgd = sgd.clone();
        Ok(())
    }
}
