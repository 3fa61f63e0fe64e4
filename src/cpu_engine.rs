//! `CpuEngine`: the `--device cpu` training path, for K >= 1 members. The same step as the
//! GPU engine, with the matrix products on the `matrixmultiply` SGEMM (multithreaded) and
//! the rest in plain loops. It is what a user without a GPU runs and the yardstick for the
//! GPU path; the plain-loop reference in [`crate::cpu`] stays the test oracle.
//!
//! The minibatch (X and its labels) is gathered once per step and shared; each member has
//! its own parameters, gradients, momentum and activations, and runs the stages on them
//! with a single run's arithmetic, so a member at the micro-batch is bit for bit the run of
//! its configuration. A member whose minibatch spans several micro-steps
//! ([`crate::step`]) folds each micro-step's gradient into its running sum
//! ([`cpu::grad_sum_element`], the GPU's `sgd_sum`) and updates on the last. Members step in parallel (rayon): at MNIST sizes one member's products
//! leave cores idle. Frozen members are skipped: on the CPU a pruned trial costs nothing.

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::config::{Precision, RunConfig};
use crate::cpu;
use crate::data::Dataset;
use crate::engine::{
    EVAL_BATCH, Engine, EvalSet, Evaluation, PopulationSetup, RunData, check_member, check_table,
};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use crate::optim::SgdConfig;
use crate::step::{MemberStep, StepRecord, StepSums};

/// `c [m, n] = a · b` with explicit row/column strides (SGEMM, beta = 0).
#[allow(clippy::too_many_arguments)]
fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: usize,
    csa: usize,
    b: &[f32],
    rsb: usize,
    csb: usize,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    assert!(
        a.len() > (m - 1) * rsa + (k.max(1) - 1) * csa
            && b.len() > (k.max(1) - 1) * rsb + (n - 1) * csb
    );
    // SAFETY: the asserts above keep every index the kernel reads or writes in bounds.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa as isize,
            csa as isize,
            b.as_ptr(),
            rsb as isize,
            csb as isize,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// Weight decay per parameter: `sgd.weight_decay`, 0 on the biases without `decay_bias`.
fn decay_per_param(layout: &ParamLayout, sgd: &SgdConfig) -> Vec<f32> {
    let mut decay = vec![sgd.weight_decay as f32; layout.len];
    if !sgd.decay_bias {
        for (s, e) in layout.bias_ranges() {
            decay[s..e].fill(0.0);
        }
    }
    decay
}

/// The shared minibatch of a step or an evaluation chunk: X `[rows, I]` and labels `[rows]`.
struct Minibatch {
    x: Vec<f32>,
    labels: Vec<u32>,
}

/// One member's state: its parameters, gradients, momentum, per-parameter decay, SGD
/// settings and activations for the largest minibatch.
struct Member {
    params: Vec<f32>,
    grads: Vec<f32>,
    velocity: Vec<f32>,
    /// The running gradient sum of a minibatch that spans several micro-steps (allocated
    /// on a member's first such step; empty for a member at the micro-batch).
    grad_sum: Vec<f32>,
    /// Weight decay per parameter (0 for biases with `--no-decay-bias`).
    decay: Vec<f32>,
    sgd: SgdConfig,
    /// `acts[l]`: output of layer l `[rows, O_l]` (the last: logits).
    acts: Vec<Vec<f32>>,
    /// `deltas[l]`: gradient of the loss with respect to `acts[l]`.
    deltas: Vec<Vec<f32>>,
}

/// What the stages of every member read: the model and the shared minibatch.
#[derive(Clone, Copy)]
struct Shared<'s> {
    layout: &'s ParamLayout,
    classes: usize,
    batch: &'s Minibatch,
}

impl Member {
    fn new(layout: &ParamLayout, rows: usize, init: &[f32], sgd: &SgdConfig) -> Member {
        let outputs = || layout.layers.iter().map(|s| vec![0.0; rows * s.outputs]);
        Member {
            params: init.to_vec(),
            grads: vec![0.0; layout.len],
            velocity: vec![0.0; layout.len],
            grad_sum: Vec::new(),
            decay: decay_per_param(layout, sgd),
            sgd: sgd.clone(),
            acts: outputs().collect(),
            deltas: outputs().collect(),
        }
    }

    /// Stage `forward`, every layer: `H_l = ReLU(H_{l-1} · W_lᵀ + b_l)`, logits without ReLU.
    fn forward(&mut self, sh: Shared<'_>, batch: usize) {
        let last = sh.layout.layers.len() - 1;
        for (l, s) in sh.layout.layers.iter().enumerate() {
            let (lo, hi) = self.acts.split_at_mut(l);
            let x = match l {
                0 => &sh.batch.x[..batch * s.inputs],
                _ => &lo[l - 1][..batch * s.inputs],
            };
            let y = &mut hi[0][..batch * s.outputs];
            let w = &self.params[s.weight..s.weight + s.outputs * s.inputs];
            sgemm(
                batch, s.inputs, s.outputs, x, s.inputs, 1, w, 1, s.inputs, y,
            );
            let bias = &self.params[s.bias..s.bias + s.outputs];
            for row in y.chunks_mut(s.outputs) {
                for (v, b) in row.iter_mut().zip(bias) {
                    *v += b;
                    if l < last {
                        *v = v.max(0.0);
                    }
                }
            }
        }
    }

    /// Stage `loss`: softmax cross-entropy over the logits; writes dlogits when `grad`.
    /// Returns the sums.
    fn loss(&mut self, sh: Shared<'_>, batch: usize, grad: bool) -> StepSums {
        let c = sh.classes;
        let last = sh.layout.layers.len() - 1;
        let logits = &self.acts[last][..batch * c];
        let dl = &mut self.deltas[last][..batch * c];
        let (mut loss_sum, mut correct) = (0.0f32, 0.0f32);
        let inv_b = 1.0 / batch as f32;
        for b in 0..batch {
            let row = &logits[b * c..(b + 1) * c];
            let r = cpu::softmax_cross_entropy_row::<f32>(row, sh.batch.labels[b]);
            loss_sum += r.loss;
            correct += f32::from(u8::from(r.correct));
            if grad {
                r.gradient(row, &mut dl[b * c..(b + 1) * c], |d| d * inv_b);
            }
        }
        [loss_sum, correct]
    }

    /// Stage `backward`, last layer to first: weight gradient `dZᵀ · X`, bias gradient
    /// `colsum(dZ)`, and the input gradient `(dZ · W) ⊙ [H > 0]` below the first layer.
    fn backward(&mut self, sh: Shared<'_>, batch: usize) {
        for (l, s) in sh.layout.layers.iter().enumerate().rev() {
            let dz = &self.deltas[l][..batch * s.outputs];
            let x = match l {
                0 => &sh.batch.x[..batch * s.inputs],
                _ => &self.acts[l - 1][..batch * s.inputs],
            };
            sgemm(
                s.outputs,
                batch,
                s.inputs,
                dz,
                1,
                s.outputs,
                x,
                s.inputs,
                1,
                &mut self.grads[s.weight..s.weight + s.outputs * s.inputs],
            );
            let db = &mut self.grads[s.bias..s.bias + s.outputs];
            db.fill(0.0);
            for row in dz.chunks(s.outputs) {
                for (d, v) in db.iter_mut().zip(row) {
                    *d += v;
                }
            }
            if l > 0 {
                let (lo, hi) = self.deltas.split_at_mut(l);
                let dz = &hi[0][..batch * s.outputs];
                let dh = &mut lo[l - 1][..batch * s.inputs];
                let w = &self.params[s.weight..s.weight + s.outputs * s.inputs];
                sgemm(
                    batch, s.outputs, s.inputs, dz, s.outputs, 1, w, s.inputs, 1, dh,
                );
                for (d, &h) in dh.iter_mut().zip(&self.acts[l - 1][..batch * s.inputs]) {
                    if h <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
        }
    }

    /// Stage `update`: SGD over the flat parameter buffer.
    fn update(&mut self, lr: f32, first: bool) {
        let step = cpu::SgdStep::new(&self.sgd, lr, first);
        for (i, p) in self.params.iter_mut().enumerate() {
            let v = &mut self.velocity[i];
            cpu::sgd_update_element(&step, p, self.grads[i], v, self.decay[i]);
        }
    }

    /// The micro-step's gradient joined to the running sum of the member's minibatch
    /// ([`cpu::grad_sum_element`]): kept as the sum when the update is deferred, else left in
    /// `grads` for the update.
    fn fold(&mut self, ms: MemberStep) {
        if self.grad_sum.is_empty() {
            self.grad_sum = vec![0.0; self.grads.len()];
        }
        for (g, sum) in self.grads.iter_mut().zip(&mut self.grad_sum) {
            let joined = cpu::grad_sum_element(*g, *sum, ms.scale, ms.accumulates());
            if ms.defers() {
                *sum = joined;
            } else {
                *g = joined;
            }
        }
    }

    /// One training (micro-)step on the shared minibatch of `batch` rows: forward, loss,
    /// and (when the loss is finite) backward, the gradient joined to the member's running
    /// sum when its minibatch spans several micro-steps, and the update unless `ms` defers
    /// it. Returns the step's sums.
    fn step(&mut self, sh: Shared<'_>, batch: usize, ms: MemberStep) -> StepSums {
        self.forward(sh, batch);
        let s = self.loss(sh, batch, true);
        if s[0].is_finite() {
            self.backward(sh, batch);
            if ms.sums() {
                self.fold(ms);
            }
            if !ms.defers() {
                self.update(ms.lr, ms.first());
            }
        }
        s
    }
}

/// Runs `f` on every member with its item of `per_member`: in parallel when there are
/// several, on this thread for one (a single run pays no hand-off to the pool).
fn each_member<T: Sync, R: Send>(
    members: &mut [Member],
    per_member: &[T],
    f: impl Fn(&mut Member, &T) -> R + Sync,
) -> Vec<R> {
    if members.len() == 1 {
        return vec![f(&mut members[0], &per_member[0])];
    }
    members
        .par_iter_mut()
        .zip(per_member.par_iter())
        .map(|(m, t)| f(m, t))
        .collect()
}

/// The CPU training engine. One step runs the same stages as the GPU engine's step plan
/// (`crate::gpu::engine`), as method calls: `gather` (once, shared), then per member
/// `forward`, `loss` (softmax-cross-entropy), `backward` (weight, bias and input gradients
/// per layer, last to first) and `update` (SGD).
pub struct CpuEngine<'a> {
    setup: PopulationSetup,
    layout: ParamLayout,
    classes: usize,
    train: &'a Dataset,
    test: &'a Dataset,
    batch: Minibatch,
    members: Vec<Member>,
}

impl<'a> CpuEngine<'a> {
    /// Opens the CPU engine for the members `configs` on `data` (see
    /// [`crate::device::open`]), allocating every buffer once for steps of up to the
    /// micro-batch (and the evaluation minibatch).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`PopulationSetup::new`], and for [`Precision::F16`]
    /// ([`check_precision`]).
    pub fn new(configs: &[RunConfig], data: RunData<'a>) -> Result<CpuEngine<'a>> {
        let setup = PopulationSetup::new(configs, data)?;
        check_precision(&setup.shared().config)?;
        let spec = &setup.shared().spec;
        let layout = spec.layout();
        let rows = setup.micro_batch().max(EVAL_BATCH);
        let members = setup
            .members
            .iter()
            .map(|m| Member::new(&layout, rows, &m.init, &m.config.sgd))
            .collect();
        Ok(CpuEngine {
            classes: spec.classes(),
            train: data.train,
            test: data.test,
            batch: Minibatch {
                x: vec![0.0; rows * spec.sizes[0]],
                labels: vec![0; rows],
            },
            members,
            layout,
            setup,
        })
    }

    /// A held-out set's data and the indices of its samples, in evaluation order.
    fn eval_order(&self, set: EvalSet) -> (&'a Dataset, Vec<u32>) {
        match set {
            EvalSet::Test => (self.test, (0..self.test.len() as u32).collect()),
            EvalSet::Validation => (self.train, self.setup.shared().validation.clone()),
        }
    }

    /// Stage `gather`: X `[B, I]` = normalised pixels of the samples `order` names, y `[B]`,
    /// once for every member.
    fn gather(&mut self, data: &Dataset, order: &[u32]) {
        let f = data.features();
        let n = self.setup.shared().config.normalization;
        let (mean, std) = (n.mean, n.std);
        for (b, &s) in order.iter().enumerate() {
            let s = s as usize;
            let px = &data.images[s * f..(s + 1) * f];
            for (x, &p) in self.batch.x[b * f..(b + 1) * f].iter_mut().zip(px) {
                *x = (f32::from(p) / 255.0 - mean) / std;
            }
            self.batch.labels[b] = data.labels[s];
        }
    }

    /// The shared view and the members, borrowed apart.
    fn split(&mut self) -> (Shared<'_>, &mut [Member]) {
        (
            Shared {
                layout: &self.layout,
                classes: self.classes,
                batch: &self.batch,
            },
            &mut self.members,
        )
    }

    /// Checks a step's minibatch against the engine and the epoch's order.
    fn check_step(&self, st: &StepRecord, order: &[u32]) -> Result<()> {
        let batch_size = self.setup.micro_batch();
        let (off, b) = (st.offset as usize, st.batch as usize);
        if b == 0 || b > batch_size || off + b > order.len() {
            return Err(Error::InvalidConfig {
                name: "minibatch",
                value: format!("{b} samples at position {off}"),
                reason: format!(
                    "this engine was opened for minibatches of 1..={batch_size} samples \
                     within the epoch's order of {}",
                    order.len()
                ),
            });
        }
        Ok(())
    }
}

impl Engine for CpuEngine<'_> {
    fn setup(&self) -> &PopulationSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let k = self.members.len();
        let members = if k > 1 {
            format!(", {k} members")
        } else {
            String::new()
        };
        format!("cpu: matrixmultiply SGEMM, {threads} threads{members}")
    }

    /// Checks `stop` before every step: an interrupted epoch ends after the step it was in.
    fn train_epoch(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<StepSums>>> {
        let k = self.members.len();
        check_table(member_steps.len(), steps.len(), k)?;
        let mut sums: Vec<Vec<StepSums>> = vec![Vec::with_capacity(steps.len()); k];
        let mut diverged = vec![false; k];
        for (i, st) in steps.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                progress(i);
                return Ok(sums);
            }
            self.check_step(st, order)?;
            let (off, b) = (st.offset as usize, st.batch as usize);
            let train = self.train;
            self.gather(train, &order[off..off + b]);
            let row: Vec<(MemberStep, bool)> = member_steps[i * k..(i + 1) * k]
                .iter()
                .zip(&diverged)
                .map(|(&ms, &dead)| (ms, dead))
                .collect();
            let (sh, members) = self.split();
            let step_sums = each_member(members, &row, |m, &(ms, dead)| {
                if dead {
                    [f32::NAN, 0.0]
                } else if ms.frozen() {
                    [0.0, 0.0]
                } else {
                    m.step(sh, b, ms)
                }
            });
            for (m, s) in step_sums.into_iter().enumerate() {
                diverged[m] = !s[0].is_finite();
                sums[m].push(s);
            }
            if i % 16 == 15 {
                progress(i + 1);
            }
        }
        progress(steps.len());
        Ok(sums)
    }

    fn evaluate(&mut self, set: EvalSet) -> Result<Vec<Evaluation>> {
        let (data, order) = self.eval_order(set);
        let k = self.members.len();
        let mut totals = vec![(0.0f64, 0.0f64); k];
        let chunk = self.batch.labels.len();
        for idx in order.chunks(chunk) {
            self.gather(data, idx);
            let (sh, members) = self.split();
            let n = idx.len();
            let sums = each_member(members, &vec![(); k], |m, _| {
                m.forward(sh, n);
                m.loss(sh, n, false)
            });
            for (t, s) in totals.iter_mut().zip(sums) {
                t.0 += f64::from(s[0]);
                t.1 += f64::from(s[1]);
            }
        }
        let n = order.len();
        Ok(totals
            .into_iter()
            .map(|(loss, correct)| {
                if n == 0 {
                    Evaluation::default()
                } else {
                    Evaluation {
                        loss: loss / n as f64,
                        accuracy: correct / n as f64,
                        samples: n,
                    }
                }
            })
            .collect())
    }

    fn logits(&mut self, member: usize, set: EvalSet) -> Result<Vec<f32>> {
        check_member(member, self.members.len())?;
        let (data, order) = self.eval_order(set);
        let c = self.classes;
        let last = self.layout.layers.len() - 1;
        let mut out = Vec::with_capacity(order.len() * c);
        for idx in order.chunks(self.batch.labels.len()) {
            self.gather(data, idx);
            let (sh, members) = self.split();
            let m = &mut members[member];
            m.forward(sh, idx.len());
            out.extend_from_slice(&m.acts[last][..idx.len() * c]);
        }
        Ok(out)
    }

    fn dispatches_per_step(&self) -> usize {
        let l = self.layout.layers.len();
        1 + self.members.len() * (l + 1 + 2 * l + (l - 1) + 1)
    }

    fn params(&mut self, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.members.len())?;
        Ok(self.members[member].params.clone())
    }

    fn momentum(&mut self, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.members.len())?;
        Ok(self.members[member].velocity.clone())
    }

    fn set_state(&mut self, member: usize, params: &[f32], momentum: Option<&[f32]>) -> Result<()> {
        check_member(member, self.members.len())?;
        let setup = &self.setup.members[member];
        setup.check_params(params)?;
        if let Some(v) = momentum {
            setup.check_params(v)?;
        }
        let m = &mut self.members[member];
        m.params.copy_from_slice(params);
        match momentum {
            Some(v) => m.velocity.copy_from_slice(v),
            None => m.velocity.fill(0.0),
        }
        Ok(())
    }

    fn copy_member(&mut self, from: usize, to: usize) -> Result<()> {
        check_member(from, self.members.len())?;
        check_member(to, self.members.len())?;
        let (params, velocity) = {
            let src = &self.members[from];
            (src.params.clone(), src.velocity.clone())
        };
        let dst = &mut self.members[to];
        dst.params = params;
        dst.velocity = velocity;
        Ok(())
    }

    /// The per-parameter decay is rebuilt, the momentum buffer kept.
    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()> {
        check_member(member, self.members.len())?;
        sgd.validate()?;
        let m = &mut self.members[member];
        m.decay = decay_per_param(&self.layout, sgd);
        m.sgd = sgd.clone();
        self.setup.members[member].config.sgd = sgd.clone();
        Ok(())
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()> {
        let setup = self.setup.member_setup(member, cfg)?;
        let m = &mut self.members[member];
        m.params.copy_from_slice(&setup.init);
        m.velocity.fill(0.0);
        m.grad_sum = Vec::new();
        m.decay = decay_per_param(&self.layout, &cfg.sgd);
        m.sgd = cfg.sgd.clone();
        self.setup.members[member] = setup;
        Ok(())
    }
}

/// Refuses [`Precision::F16`]: the CPU engine computes in f32 only. Emulating f16 operands
/// (rounding them through `half::f16` before each SGEMM) would cost a copy per product and
/// buy neither speed nor memory on a CPU; it would only be a second definition of the f16
/// path to keep in step with the GPU's. The GPU path is checked against this f32 engine
/// with derived bounds instead (`tests/precision_f16.rs`).
///
/// # Errors
/// [`Error::InvalidConfig`] naming the precision and the fix.
pub fn check_precision(cfg: &RunConfig) -> Result<()> {
    match cfg.precision {
        Precision::F32 => Ok(()),
        Precision::F16 => Err(Error::InvalidConfig {
            name: "precision",
            value: cfg.precision.to_string(),
            reason: "the CPU engine computes in f32 only; f16 matmul operands are a GPU option (--device gpu on an adapter with SHADER_F16), or use --precision f32".into(),
        }),
    }
}
