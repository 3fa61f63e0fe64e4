//! `GpuEngine`: trains K >= 1 members of an MLP with every step on the GPU (a single run
//! is K = 1). Every kernel of a step takes the member dimension, so a step is as many
//! dispatches for K members as for one.
//!
//! Everything is created once per engine: the dataset (u8, resident), the members' stacked
//! parameter, gradient and momentum buffers `[K, P]`, the activations for the largest
//! minibatch `[K, rows, O]` (X and the labels shared), the step records, the SGD table,
//! the metrics buffers and every bind group. An epoch writes the sample order, the step
//! records and the members' steps (learning rate and flags) once, records all its steps
//! into a few command buffers, and reads every member's per-step loss and correct counts
//! back once at the end.
//!
//! Opening an engine is four steps: allocate the buffers (`buffers.rs`), decide the step
//! plan (`plan.rs`: the precision, the matmul kernel of every product from the tuning step
//! `tuning.rs`, which fusions apply), then build the launches of the plan's stages
//! (`stages.rs`: named stages, each a short function returning its dispatches, llm.c's
//! `matmul_forward` / `crossentropy_softmax_backward` / `update` reading).
//!
//! For an MLP of L layers a training step without fusions ([`Fusions::NONE`]) is
//! `1 + L + 1 + (2L - 1) + (L - 1) + 1` dispatches (9 for one hidden layer):
//! ```text
//! gather      gather_normalize        X [B, I], y [B] (shared by the members)
//! forward     matmul per layer        H_l = ReLU(H_{l-1} · W_lᵀ + b_l); the last gives logits [B, C]
//! loss        softmax_cross_entropy   one workgroup per member: dlogits, per-step Σ loss and
//!                                     Σ correct, and the last layer's db = colsum(dlogits)
//! backward    per layer, last to first:
//!               matmul     dW_l = dZ_lᵀ · H_{l-1}
//!               column_sum db_l = colsum(dZ_l)                   (l < L - 1)
//!               matmul     dZ_{l-1} = (dZ_l · W_l) ⊙ [H_{l-1} > 0]   (l > 0)
//! update      sgd_update              every member's parameters at once, each with its own
//!                                     settings, learning rate and flags (the SGD table)
//! ```
//! The loss launch takes the last bias gradient over only while its loops fit the
//! adapter's loop cap (`softmax_cross_entropy::fuses_bias`; on lavapipe, minibatches up to
//! about 58,000 rows at C = 10); past it, that gradient is a `column_sum` launch again.
//!
//! With every fusion ([`Fusions::ALL`], the default) the step of one hidden layer is 5
//! dispatches, for any K:
//! ```text
//! layer 0     matmul (gather prologue)  reads the u8 pixels through the sample order,
//!                                       normalises them, + bias, ReLU; stores X and y once
//! loss        softmax_cross_entropy     output layer's logits = H_{L-2} · W_{L-1}ᵀ + b, then
//!                                       as above
//! backward    matmul                    dZ_{l-1} = (dZ_l · W_l) ⊙ [H_{l-1} > 0] (l > 0; reads
//!                                       W_l first)
//!             matmul (SGD epilogue)     dW_l = dZ_lᵀ · H_{l-1}, never stored: each member's
//!                                       W_l, b_l (db_l summed in the epilogue) and momentum
//!                                       take one SGD step
//! ```
//! Each fusion computes the unfused step's bits (the same additions in the same order) and
//! applies only where the plan found that the kernel, shape and adapter allow it
//! (`plan::StepPlan`): the gather prologue on the subgroup and 2-D tiled kernels with K
//! summed in one launch; the output layer in the loss launch for small products
//! (`B·H·C` up to `softmax_cross_entropy::FUSED_OUTPUT_MAX_MACS`) with two layers or more;
//! the update in the weight-gradient epilogue when every layer's product is one chunk of K
//! and its bias loop fits the loop cap.
//!
//! With `--precision f16` ([`Precision::F16`]) every matmul runs `matmul_f16` on f16
//! activations and an f16 copy of the weights, and the step gains two conversions (the
//! inputs after `gather`, the weights after `update`): `stages/f16.rs`.
//!
//! Evaluation is `gather` (or layer 0's product reading the pixels), `forward` and `loss`
//! (without gradient) over a held-out set, every member at once; it never fuses the output
//! layer (its `EVAL_BATCH`-row minibatches are past the size limit).
//!
//! Each member has its own status header (the head of its metrics block): after a
//! non-finite loss its SGD stops and the others go on; [`Engine::set_state`],
//! [`Engine::copy_member`] and [`Engine::replace_member`] clear it.

pub(crate) mod buffers;
pub(crate) mod plan;
pub(crate) mod products;
pub(crate) mod stages;
pub(crate) mod tuning;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Precision, RunConfig};
use crate::engine::{
    Engine, EvalSet, Evaluation, PopulationSetup, RunData, check_member, check_table,
};
use crate::error::{Error, Result};
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::kernels::matmul::f16::f16_device_support;
use crate::gpu::kernels::sgd_update::STEP_WORDS;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::gpu::kernels::{Dispatch, Kernels, STEP_STRIDE};
use crate::gpu::tensor::{Readback, read_buffer};
use crate::gpu::{Fusions, Gpu};
use crate::optim::SgdConfig;
use crate::step::{MemberStep, StepRecord, StepSums};

use buffers::{RunBuffers, Stacked, f16_bytes};
use plan::StepPlan;
use stages::Stages;

/// Steps recorded per command buffer: few submits per epoch, and the progress bar still
/// moves (it advances when a command buffer completes).
pub(crate) const STEPS_PER_SUBMIT: usize = 64;

/// Command buffers of training steps queued at once: enough that the GPU never waits for
/// the host to encode the next one, few enough that the progress bar follows the GPU.
pub(crate) const SUBMITS_IN_FLIGHT: usize = 3;

/// Evaluation of one held-out set for every member: its own first launch (gather, or
/// layer 0's product reading its pixels) and loss launch (its data and metrics), the
/// shared forward launches, and its step records after the training ones.
struct EvalPlan {
    set: EvalSet,
    samples: usize,
    first: Dispatch,
    softmax: Dispatch,
    metrics: Stacked,
    /// Index of its first step record in the step buffer.
    first_record: usize,
    steps: usize,
}

/// The GPU training engine. See the module docs for the step it runs.
pub struct GpuEngine<'g> {
    gpu: &'g Gpu,
    setup: PopulationSetup,
    bufs: RunBuffers,
    plan: StepPlan,
    steps_bind_group: wgpu::BindGroup,
    readback: Readback,
    train_step: Vec<Dispatch>,
    eval_forward: Vec<Dispatch>,
    evals: Vec<EvalPlan>,
    choice: MatmulChoice,
    /// Members whose status header was set (a non-finite loss) by an earlier epoch.
    diverged: Vec<bool>,
}

/// The name of a held-out set in labels.
pub(crate) fn set_name(set: EvalSet) -> &'static str {
    match set {
        EvalSet::Test => "test",
        EvalSet::Validation => "validation",
    }
}

/// Writes `records` into the step buffer from record `first` on, `STEP_STRIDE` bytes apart.
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

/// One command buffer recording steps `first_record .. first_record + count`: every
/// dispatch of `launches`, in order, per step, with that step's record bound at its
/// dynamic offset (`STEP_STRIDE` bytes apart).
fn encode_steps(
    gpu: &Gpu,
    steps_bind_group: &wgpu::BindGroup,
    launches: &[&[Dispatch]],
    first_record: usize,
    count: usize,
) -> wgpu::CommandBuffer {
    let label = "steps";
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

/// The evaluation plans of the held-out sets (test, then validation, those that have
/// samples), their step records written after the training ones.
fn eval_plans(
    stages: &Stages<'_>,
    setup: &PopulationSetup,
    test_samples: usize,
    norm: crate::model::Normalization,
) -> Result<Vec<EvalPlan>> {
    let bufs = stages.bufs;
    let eval_rows = bufs.eval_rows;
    let sets = [
        (EvalSet::Test, &bufs.test, &bufs.test_order, test_samples),
        (
            EvalSet::Validation,
            &bufs.train,
            &bufs.validation_order,
            setup.shared().validation.len(),
        ),
    ];
    let mut evals = Vec::new();
    let mut first_record = bufs.max_train_steps;
    for (set, dataset, order, samples) in sets {
        if samples == 0 {
            continue;
        }
        let name = set_name(set);
        let steps = samples.div_ceil(eval_rows);
        let metrics = bufs.metrics(stages.gpu, &format!("{name}.metrics"), steps)?;
        let records: Vec<StepRecord> = (0..steps)
            .map(|i| StepRecord {
                offset: (i * eval_rows) as u32,
                batch: (eval_rows.min(samples - i * eval_rows)) as u32,
                index: i as u32,
                _pad: 0,
            })
            .collect();
        write_records(stages.gpu, &bufs.steps, first_record, &records);
        evals.push(EvalPlan {
            set,
            samples,
            first: stages.eval_first(name, dataset, order, norm)?,
            softmax: stages.loss(name, eval_rows, &metrics, false)?,
            metrics,
            first_record,
            steps,
        });
        first_record += steps;
    }
    Ok(evals)
}

impl<'g> GpuEngine<'g> {
    /// Opens the GPU engine for the members `configs` on `data` (see
    /// [`crate::device::open`]): uploads the data and every member's initial parameters,
    /// decides the step plan (the matmul kernels by `matmul`, the fusions `fusions` allows)
    /// and prepares every launch.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`PopulationSetup::new`], and for f16 on a device
    /// without it; [`Error::LimitExceeded`] when a buffer, binding or grid does not fit the
    /// adapter (with a hint: fewer members, a smaller batch, a smaller model);
    /// [`Error::Gpu`] on a wgpu error.
    pub fn new(
        gpu: &'g Gpu,
        kernels: &'g Kernels,
        matmul: MatmulChoice,
        fusions: Fusions,
        configs: &[RunConfig],
        data: RunData<'_>,
    ) -> Result<GpuEngine<'g>> {
        let setup = PopulationSetup::new(configs, data)?;
        let cfg = &setup.shared().config;
        if cfg.precision == Precision::F16 {
            // Before anything is allocated or built: a clear error, never a wgpu panic.
            f16_device_support(gpu).map_err(|reason| Error::InvalidConfig {
                name: "precision",
                value: cfg.precision.to_string(),
                reason,
            })?;
        }
        let bufs = RunBuffers::allocate(gpu, &setup, data)?;
        let layers = &bufs.layout.layers;
        let plan = StepPlan::decide(
            gpu,
            kernels,
            matmul,
            fusions,
            layers,
            bufs.batch,
            bufs.eval_rows,
            cfg.precision,
        )?;
        let stages = Stages {
            gpu,
            kernels,
            bufs: &bufs,
            plan: &plan,
        };
        let norm = cfg.normalization;
        let train_step = stages.train_step(norm)?;
        let eval_forward = stages.eval_forward()?;
        let evals = eval_plans(&stages, &setup, data.test.len(), norm)?;
        let largest_metrics = evals
            .iter()
            .map(|e| &e.metrics)
            .chain([&bufs.train_metrics])
            .map(|m| m.buffer.size())
            .max()
            .unwrap_or(4);
        let readback = Readback::new(gpu, "metrics.staging", largest_metrics);
        let steps_bind_group = kernels.steps_bind_group(gpu, &bufs.steps);
        gpu.take_error("preparing the training launches")?;
        let k = setup.len();
        Ok(GpuEngine {
            gpu,
            setup,
            bufs,
            plan,
            steps_bind_group,
            readback,
            train_step,
            eval_forward,
            evals,
            choice: matmul,
            diverged: vec![false; k],
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
        self.choice
    }

    /// The kernel entry point of every matmul launch of a training step, by label.
    pub fn matmul_kernels(&self) -> Vec<(&str, &'static str)> {
        self.train_step
            .iter()
            .filter(|d| d.kernel.starts_with("matmul"))
            .map(|d| (d.label.as_str(), d.kernel))
            .collect()
    }

    /// Which fusions the step plan applies, by name (`gather`, `output`, `update`), for
    /// reports and tests.
    pub fn fusions_applied(&self) -> Vec<&'static str> {
        let p = &self.plan;
        [
            (p.gather, "gather"),
            (p.output_in_loss, "output"),
            (p.update_in_matmul, "update"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }

    /// Writes the epoch's order, step records and member steps (`[steps, K]`) before any
    /// step is recorded.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for more steps than the engine was built for, a minibatch
    /// size out of range, or a member-step table that is not `[steps, K]`.
    pub fn upload_epoch(
        &self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
    ) -> Result<()> {
        let b = self.bufs.batch;
        check_table(member_steps.len(), steps.len(), self.setup.len())?;
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
        if let Some(s) = steps.iter().find(|s| s.batch as usize > b || s.batch == 0) {
            return Err(Error::InvalidConfig {
                name: "minibatch size",
                value: s.batch.to_string(),
                reason: format!("must be in 1..={b}"),
            });
        }
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.bufs.order, 0, bytemuck::cast_slice(order));
        write_records(self.gpu, &self.bufs.steps, 0, steps);
        if !member_steps.is_empty() {
            debug_assert_eq!(std::mem::size_of::<MemberStep>(), 4 * STEP_WORDS);
            queue.write_buffer(
                &self.bufs.table,
                (self.bufs.sgd.steps_offset * 4) as u64,
                bytemuck::cast_slice(member_steps),
            );
        }
        Ok(())
    }

    fn encode(
        &self,
        launches: &[&[Dispatch]],
        first_record: usize,
        count: usize,
    ) -> wgpu::CommandBuffer {
        encode_steps(
            self.gpu,
            &self.steps_bind_group,
            launches,
            first_record,
            count,
        )
    }

    /// Every member's per-step sums of `metrics` and its status word, `[K]`, from one read.
    fn read_sums(
        &self,
        what: &str,
        metrics: &Stacked,
        steps: usize,
    ) -> Result<Vec<(Vec<StepSums>, bool)>> {
        let k = self.setup.len();
        let bytes = self.readback.read(
            self.gpu,
            what,
            &metrics.buffer,
            0,
            (k * metrics.stride * 4) as u64,
        )?;
        let floats: Vec<f32> = bytemuck::pod_collect_to_vec(&bytes);
        Ok(floats
            .chunks_exact(metrics.stride)
            .map(|block| {
                let sums = block[METRICS_HEADER..METRICS_HEADER + 2 * steps]
                    .chunks_exact(2)
                    .map(|c| [c[0], c[1]])
                    .collect();
                (sums, block[0] != 0.0)
            })
            .collect())
    }

    /// Zeroes member `member`'s status header (its non-finite flag).
    fn clear_status(&mut self, member: usize) {
        let m = &self.bufs.train_metrics;
        self.gpu
            .queue
            .write_buffer(&m.buffer, m.offset(member), &[0u8; METRICS_HEADER * 4]);
        self.diverged[member] = false;
    }

    /// Writes member `member`'s parameters (and its f16 copy) and momentum (`None`:
    /// zeros), and clears its status.
    fn write_member(&mut self, member: usize, params: &[f32], momentum: Option<&[f32]>) {
        let (p, v) = (&self.bufs.params, &self.bufs.velocity);
        let queue = &self.gpu.queue;
        queue.write_buffer(&p.buffer, p.offset(member), bytemuck::cast_slice(params));
        match momentum {
            Some(m) => queue.write_buffer(&v.buffer, v.offset(member), bytemuck::cast_slice(m)),
            None => queue.write_buffer(&v.buffer, v.offset(member), &vec![0u8; v.stride * 4]),
        }
        if let Some(f) = &self.bufs.f16 {
            let at = (member * f.params16.stride * 2) as u64;
            queue.write_buffer(&f.params16.buffer, at, &f16_bytes(params));
        }
        self.clear_status(member);
    }

    /// Member `member`'s block of `s`, read back.
    fn read_member(&self, what: &str, s: &Stacked, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.setup.len())?;
        let len = self.bufs.layout.len;
        let bytes = read_buffer(self.gpu, what, &s.buffer, s.offset(member), len as u64 * 4)?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }
}

impl Engine for GpuEngine<'_> {
    fn setup(&self) -> &PopulationSetup {
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
        let k = self.setup.len();
        let members = if k > 1 {
            format!(", {k} members")
        } else {
            String::new()
        };
        // f32 runs describe themselves as before; f16 runs say so.
        let precision = match self.plan.precision {
            Precision::F32 => String::new(),
            p => format!("; precision {p}"),
        };
        format!(
            "gpu {}{members}{precision}; matmul kernels: {}",
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
    /// command-buffer (step) boundary. Sums of a member after its first non-finite step
    /// read as NaN (its SGD stopped there).
    fn train_epoch(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<StepSums>>> {
        self.upload_epoch(order, steps, member_steps)?;
        let queue = &self.gpu.queue;
        let mut in_flight = std::collections::VecDeque::with_capacity(SUBMITS_IN_FLIGHT);
        let mut submitted = 0;
        loop {
            while in_flight.len() < SUBMITS_IN_FLIGHT
                && submitted < steps.len()
                && !stop.load(Ordering::Relaxed)
            {
                let count = STEPS_PER_SUBMIT.min(steps.len() - submitted);
                let cb = self.encode(&[&self.train_step], submitted, count);
                submitted += count;
                in_flight.push_back((queue.submit([cb]), submitted));
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
        let read = self.read_sums("the training metrics", &self.bufs.train_metrics, submitted)?;
        let mut out = Vec::with_capacity(read.len());
        for (m, (mut sums, flagged)) in read.into_iter().enumerate() {
            if self.diverged[m] {
                sums.iter_mut().for_each(|s| *s = [f32::NAN, 0.0]);
            } else if flagged {
                // The first non-finite step of this epoch stopped its SGD; later sums come
                // from parameters that no longer train.
                if let Some(bad) = sums.iter().position(|s| !s[0].is_finite()) {
                    sums[bad + 1..]
                        .iter_mut()
                        .for_each(|s| *s = [f32::NAN, 0.0]);
                }
            }
            self.diverged[m] |= flagged;
            out.push(sums);
        }
        Ok(out)
    }

    fn evaluate(&mut self, set: EvalSet) -> Result<Vec<Evaluation>> {
        let k = self.setup.len();
        let Some(plan) = self.evals.iter().find(|p| p.set == set) else {
            return Ok(vec![Evaluation::default(); k]);
        };
        let cb = self.encode(
            &[
                std::slice::from_ref(&plan.first),
                &self.eval_forward,
                std::slice::from_ref(&plan.softmax),
            ],
            plan.first_record,
            plan.steps,
        );
        self.gpu.queue.submit([cb]);
        let sums = self.read_sums("the evaluation metrics", &plan.metrics, plan.steps)?;
        Ok(sums
            .iter()
            .map(|(sums, _)| {
                let loss: f64 = sums.iter().map(|s| f64::from(s[0])).sum();
                let correct: f64 = sums.iter().map(|s| f64::from(s[1])).sum();
                Evaluation {
                    loss: loss / plan.samples as f64,
                    accuracy: correct / plan.samples as f64,
                    samples: plan.samples,
                }
            })
            .collect())
    }

    /// Runs the evaluation forward minibatch by minibatch in one command buffer, copying
    /// each minibatch's logits of member `member` into one buffer of `[N, C]` (allocated
    /// here: this is a one-off for `eval`, not part of training), then reads it back once.
    fn logits(&mut self, member: usize, set: EvalSet) -> Result<Vec<f32>> {
        check_member(member, self.setup.len())?;
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
        let logits = &self.bufs.act.logits;
        for i in 0..plan.steps {
            let first = i * self.bufs.eval_rows;
            let rows = self.bufs.eval_rows.min(plan.samples - first);
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("eval.logits"),
                    timestamp_writes: None,
                });
                let offset = ((plan.first_record + i) as u64 * STEP_STRIDE) as u32;
                plan.first.record(&mut pass, &self.steps_bind_group, offset);
                for d in &self.eval_forward {
                    d.record(&mut pass, &self.steps_bind_group, offset);
                }
            }
            enc.copy_buffer_to_buffer(
                &logits.buffer,
                logits.offset(member),
                &all,
                first as u64 * row_bytes,
                rows as u64 * row_bytes,
            );
        }
        self.gpu.queue.submit([enc.finish()]);
        self.gpu.take_error("computing the logits")?;
        let bytes = read_buffer(
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

    fn params(&mut self, member: usize) -> Result<Vec<f32>> {
        self.read_member("a member's parameters", &self.bufs.params, member)
    }

    fn momentum(&mut self, member: usize) -> Result<Vec<f32>> {
        self.read_member("a member's momentum buffer", &self.bufs.velocity, member)
    }

    fn set_state(&mut self, member: usize, params: &[f32], momentum: Option<&[f32]>) -> Result<()> {
        check_member(member, self.setup.len())?;
        let setup = &self.setup.members[member];
        setup.check_params(params)?;
        if let Some(v) = momentum {
            setup.check_params(v)?;
        }
        self.write_member(member, params, momentum);
        Ok(())
    }

    fn copy_member(&mut self, from: usize, to: usize) -> Result<()> {
        check_member(from, self.setup.len())?;
        check_member(to, self.setup.len())?;
        if from != to {
            let mut enc = self
                .gpu
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("copy_member"),
                });
            // A buffer cannot be copied onto itself: through the scratch buffer, in order.
            let scratch = &self.bufs.scratch;
            let f16 = self.bufs.f16.as_ref().map(|f| (&f.params16, 2));
            let stacks = [(&self.bufs.params, 4), (&self.bufs.velocity, 4)];
            for (s, elem) in stacks.into_iter().chain(f16) {
                let bytes = (s.stride * elem) as u64;
                enc.copy_buffer_to_buffer(&s.buffer, from as u64 * bytes, scratch, 0, bytes);
                enc.copy_buffer_to_buffer(scratch, 0, &s.buffer, to as u64 * bytes, bytes);
            }
            self.gpu.queue.submit([enc.finish()]);
        }
        self.clear_status(to);
        self.gpu.take_error("copying a member")
    }

    /// Writes the member's settings into the SGD table: nothing is rebuilt.
    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()> {
        check_member(member, self.setup.len())?;
        sgd.validate()?;
        self.bufs.write_settings(self.gpu, member, sgd);
        self.setup.members[member].config.sgd = sgd.clone();
        Ok(())
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()> {
        let setup = self.setup.member_setup(member, cfg)?;
        self.write_member(member, &setup.init, None);
        self.bufs.write_settings(self.gpu, member, &cfg.sgd);
        self.setup.members[member] = setup;
        Ok(())
    }
}
