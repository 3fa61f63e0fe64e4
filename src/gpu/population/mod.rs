//! `GpuPopulation`: K members of one architecture trained at once on the GPU, every kernel
//! of a step taking the member dimension, so a step is as many dispatches for K members as
//! a single [`crate::gpu::engine::GpuEngine`] step (10 for one hidden layer).
//!
//! ```text
//! gather      gather_normalize        X [B, I], y [B]: once, shared by the members
//! forward     matmul per layer        H_l [K, B, O_l]: member row blocks along the grid's rows
//! loss        softmax_cross_entropy   one workgroup per member; its own metrics block and
//!                                     its last layer's bias gradient (fused, as single runs)
//! backward    matmul, column_sum, matmul per layer, every member in each launch (no
//!             column_sum for the last layer)
//! update      sgd_update_members      [K, P]: member j's settings, lr and flags from the table
//! ```
//!
//! Member j trains bit for bit as a single run of its configuration: the population runs
//! the matmul kernels the single engine's tuning step chooses for the same shapes (the
//! same tuning step, `gpu/engine/tuning.rs`, so `--kernels auto` reads the same cached
//! timings), and every kernel computes each member's outputs with the single kernel's
//! arithmetic (the member only moves the operands' base). Each member has its own status
//! header (the head of its metrics block): after a non-finite loss its SGD stops and the
//! others go on; [`PopulationEngine::set_params`], `copy_member` and `replace_member` clear
//! it. Per-step sums are read back once per epoch.

mod buffers;
mod plan;

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::RunConfig;
use crate::engine::{EvalSet, Evaluation, RunData};
use crate::error::{Error, Result};
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::engine::tuning::{self, MatmulPlan};
use crate::gpu::engine::{STEPS_PER_SUBMIT, SUBMITS_IN_FLIGHT, set_name, write_records};
use crate::gpu::kernels::sgd_update::member_settings;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::gpu::kernels::{Dispatch, Kernels};
use crate::gpu::tensor::read_buffer;
use crate::gpu::{Gpu, MatmulVariant};
use crate::optim::SgdConfig;
use crate::population::cpu::check_table;
use crate::population::{MemberStep, PopulationEngine, PopulationSetup, check_member};
use crate::step::{StepRecord, StepSums};

use buffers::{PopBuffers, Stacked};
use plan::Stages;

/// Evaluation of one held-out set for every member.
struct EvalPlan {
    set: EvalSet,
    samples: usize,
    gather: Dispatch,
    softmax: Dispatch,
    metrics: Stacked,
    first_record: usize,
    steps: usize,
}

/// The GPU population engine. See the module docs.
pub struct GpuPopulation<'g> {
    gpu: &'g Gpu,
    setup: PopulationSetup,
    bufs: PopBuffers,
    steps_bind_group: wgpu::BindGroup,
    train_step: Vec<Dispatch>,
    eval_forward: Vec<Dispatch>,
    evals: Vec<EvalPlan>,
    matmuls: MatmulPlan,
    /// Members whose status header was set (a non-finite loss) by an earlier epoch.
    diverged: Vec<bool>,
}

impl<'g> GpuPopulation<'g> {
    /// Opens the population of `configs` on `data` (see [`crate::device::open_population`]):
    /// uploads the data and every member's initial parameters, chooses the matmul kernels
    /// as a single engine of member 0's configuration would (`matmul`), and prepares every
    /// launch.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`PopulationSetup::new`]; [`Error::LimitExceeded`] when
    /// a buffer, binding or grid does not fit the adapter (fewer members, a smaller batch
    /// or model); [`Error::Gpu`] on a wgpu error.
    pub fn new(
        gpu: &'g Gpu,
        kernels: &'g Kernels,
        matmul: MatmulChoice,
        configs: &[RunConfig],
        data: RunData<'_>,
    ) -> Result<GpuPopulation<'g>> {
        let setup = PopulationSetup::new(configs, data)?;
        let bufs = PopBuffers::allocate(gpu, &setup.members, data)?;
        let cfg = &setup.shared().config;
        let (b, eval_rows, layers) = (cfg.batch_size, bufs.eval_rows, &bufs.layout.layers);
        let matmuls = tuning::tune(gpu, kernels, matmul, layers, b, eval_rows)?;
        let stages = Stages {
            gpu,
            kernels,
            bufs: &bufs,
            matmuls: &matmuls,
        };
        let norm = cfg.normalization;
        let mut train_step = vec![stages.gather("train", &bufs.train, &bufs.order, b, norm)?];
        train_step.extend(stages.forward("train", b, &matmuls.forward)?);
        train_step.push(stages.loss("train", b, &bufs.train_metrics, true)?);
        for l in (0..layers.len()).rev() {
            train_step.extend(stages.backward(l, b)?);
        }
        train_step.push(stages.update()?);
        let eval_forward = stages.forward("eval", eval_rows, &matmuls.eval_forward)?;
        let evals = eval_plans(&stages, &setup, data.test.len())?;
        let steps_bind_group = kernels.steps_bind_group(gpu, &bufs.steps);
        let k = setup.len();
        let population = GpuPopulation {
            gpu,
            setup,
            bufs,
            steps_bind_group,
            train_step,
            eval_forward,
            evals,
            matmuls,
            diverged: vec![false; k],
        };
        for m in 0..k {
            population.write_settings(m, &population.setup.members[m].config.sgd);
        }
        gpu.take_error("preparing the population's launches")?;
        Ok(population)
    }

    /// The launches of one training step, in order.
    pub fn train_step_dispatches(&self) -> &[Dispatch] {
        &self.train_step
    }

    /// The matmul variant of every matmul launch of a training step, by label, as the
    /// single engine's tuning step chose them.
    pub fn matmul_kernels(&self) -> Vec<(&str, MatmulVariant)> {
        let p = &self.matmuls;
        let mut out = Vec::new();
        for (l, v) in p.forward.iter().enumerate() {
            out.push((self.train_step[1 + l].label.as_str(), *v));
        }
        out.extend(
            self.train_step
                .iter()
                .filter(|d| d.kernel.starts_with("matmul") && !d.label.ends_with("forward"))
                .zip(
                    (0..p.weight_grad.len())
                        .rev()
                        .flat_map(|l| [Some(p.weight_grad[l].variant), p.input_grad[l]])
                        .flatten(),
                )
                .map(|(d, v)| (d.label.as_str(), v)),
        );
        out
    }

    fn write_settings(&self, member: usize, sgd: &SgdConfig) {
        let offset = (self.bufs.hyper_offset + 8 * member) * 4;
        self.gpu.queue.write_buffer(
            &self.bufs.table,
            offset as u64,
            bytemuck::cast_slice(&member_settings(sgd)),
        );
    }

    /// Zeroes member `member`'s status header (its non-finite flag).
    fn clear_status(&mut self, member: usize) {
        let m = &self.bufs.train_metrics;
        self.gpu.queue.write_buffer(
            &m.buffer,
            (member * m.stride * 4) as u64,
            &[0u8; METRICS_HEADER * 4],
        );
        self.diverged[member] = false;
    }

    fn encode_steps(
        &self,
        launches: &[&[Dispatch]],
        first_record: usize,
        count: usize,
    ) -> wgpu::CommandBuffer {
        crate::gpu::engine::encode_steps(
            self.gpu,
            "population.steps",
            &self.steps_bind_group,
            launches,
            first_record,
            count,
        )
    }

    /// Every member's per-step sums of `metrics` and status word, `[K]`, from one read.
    fn read_sums(
        &self,
        what: &str,
        metrics: &Stacked,
        steps: usize,
    ) -> Result<Vec<(Vec<StepSums>, bool)>> {
        let k = self.setup.len();
        let bytes = read_buffer(
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

    fn check_steps(&self, steps: &[StepRecord]) -> Result<()> {
        let b = self.setup.shared().config.batch_size;
        if steps.len() > self.bufs.max_train_steps {
            return Err(Error::InvalidConfig {
                name: "steps per epoch",
                value: steps.len().to_string(),
                reason: format!(
                    "this population was built for at most {}",
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
        Ok(())
    }

    /// Writes member `member`'s parameters and zeroes its momentum and status.
    fn write_member(&mut self, member: usize, params: &[f32]) {
        let (p, v) = (&self.bufs.params, &self.bufs.velocity);
        let queue = &self.gpu.queue;
        queue.write_buffer(
            &p.buffer,
            (member * p.stride * 4) as u64,
            bytemuck::cast_slice(params),
        );
        queue.write_buffer(
            &v.buffer,
            (member * v.stride * 4) as u64,
            &vec![0u8; v.stride * 4],
        );
        self.clear_status(member);
    }
}

/// The evaluation plans of the held-out sets (test, then validation, those with samples),
/// their step records after the training ones.
fn eval_plans(stages: &Stages<'_>, setup: &PopulationSetup, tests: usize) -> Result<Vec<EvalPlan>> {
    let bufs = stages.bufs;
    let eval_rows = bufs.eval_rows;
    let norm = setup.shared().config.normalization;
    let sets = [
        (EvalSet::Test, &bufs.test, &bufs.test_order, tests),
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
                ..Default::default()
            })
            .collect();
        write_records(stages.gpu, &bufs.steps, first_record, &records);
        evals.push(EvalPlan {
            set,
            samples,
            gather: stages.gather(name, dataset, order, eval_rows, norm)?,
            softmax: stages.loss(name, eval_rows, &metrics, false)?,
            metrics,
            first_record,
            steps,
        });
        first_record += steps;
    }
    Ok(evals)
}

impl PopulationEngine for GpuPopulation<'_> {
    fn setup(&self) -> &PopulationSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        let kernels: Vec<String> = self
            .matmul_kernels()
            .iter()
            .map(|(label, v)| format!("{} {v}", label.trim_start_matches("train.")))
            .collect();
        format!(
            "gpu {}, {} members; matmul kernels: {}",
            self.gpu.describe(),
            self.setup.len(),
            kernels.join(", ")
        )
    }

    /// As the single engine: at most 3 command buffers of 64 steps queued, `progress`
    /// after each completes, `stop` honoured at command-buffer boundaries. Sums of a
    /// member after its first non-finite step read as NaN (its SGD stopped there).
    fn train_epoch_until(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<StepSums>>> {
        let k = self.setup.len();
        check_table(member_steps.len(), steps.len(), k)?;
        self.check_steps(steps)?;
        let queue = &self.gpu.queue;
        queue.write_buffer(&self.bufs.order, 0, bytemuck::cast_slice(order));
        write_records(self.gpu, &self.bufs.steps, 0, steps);
        if !member_steps.is_empty() {
            queue.write_buffer(
                &self.bufs.table,
                (self.bufs.steps_offset * 4) as u64,
                bytemuck::cast_slice(member_steps),
            );
        }
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
                    context: "training the population".into(),
                    message: e.to_string(),
                })?;
            progress(done);
        }
        self.gpu.take_error("training the population")?;
        let read = self.read_sums("the training metrics", &self.bufs.train_metrics, submitted)?;
        let mut out = Vec::with_capacity(k);
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

    fn dispatches_per_step(&self) -> usize {
        self.train_step.len()
    }

    fn params(&mut self, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.setup.len())?;
        let p = &self.bufs.params;
        let bytes = read_buffer(
            self.gpu,
            "a member's parameters",
            &p.buffer,
            (member * p.stride * 4) as u64,
            self.bufs.layout.len as u64 * 4,
        )?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    fn set_params(&mut self, member: usize, params: &[f32]) -> Result<()> {
        check_member(member, self.setup.len())?;
        self.setup.members[member].check_params(params)?;
        self.write_member(member, params);
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
                    label: Some("population.copy_member"),
                });
            // A buffer cannot be copied onto itself: through the scratch buffer, in order.
            let scratch = &self.bufs.scratch;
            for s in [&self.bufs.params, &self.bufs.velocity] {
                let bytes = (s.stride * 4) as u64;
                enc.copy_buffer_to_buffer(&s.buffer, from as u64 * bytes, scratch, 0, bytes);
                enc.copy_buffer_to_buffer(scratch, 0, &s.buffer, to as u64 * bytes, bytes);
            }
            self.gpu.queue.submit([enc.finish()]);
        }
        self.clear_status(to);
        self.gpu.take_error("copying a member")
    }

    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()> {
        check_member(member, self.setup.len())?;
        sgd.validate()?;
        self.write_settings(member, sgd);
        self.setup.members[member].config.sgd = sgd.clone();
        Ok(())
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()> {
        let setup = self.setup.member_setup(member, cfg)?;
        self.write_member(member, &setup.init);
        self.write_settings(member, &cfg.sgd);
        self.setup.members[member] = setup;
        Ok(())
    }
}
