//! `CpuEngine`: the `--device cpu` training path. The same step as the GPU engine, with the
//! matrix products on the `matrixmultiply` SGEMM (multithreaded) and the rest in plain
//! loops. It is what a user without a GPU runs and the yardstick for the GPU path; the
//! plain-loop reference in [`crate::cpu`] stays the test oracle.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Precision, RunConfig};
use crate::cpu;
use crate::data::Dataset;
use crate::engine::{EVAL_BATCH, Engine, EvalSet, Evaluation, RunData, RunSetup};
use crate::error::{Error, Result};
use crate::model::ParamLayout;
use crate::step::{StepRecord, StepSums};

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
fn decay_per_param(layout: &ParamLayout, sgd: &crate::optim::SgdConfig) -> Vec<f32> {
    let mut decay = vec![sgd.weight_decay as f32; layout.len];
    if !sgd.decay_bias {
        for (s, e) in layout.bias_ranges() {
            decay[s..e].fill(0.0);
        }
    }
    decay
}

/// The CPU training engine. One step runs the same stages as the GPU engine's step plan
/// (`crate::gpu::engine`), as method calls: `gather`, `forward`, `loss`
/// (softmax-cross-entropy), `backward` (weight, bias and input gradients per layer, last to
/// first) and `update` (SGD).
pub struct CpuEngine<'a> {
    setup: RunSetup,
    layout: ParamLayout,
    classes: usize,
    params: Vec<f32>,
    grads: Vec<f32>,
    velocity: Vec<f32>,
    /// Weight decay per parameter (0 for biases with `--no-decay-bias`).
    decay: Vec<f32>,
    train: &'a Dataset,
    test: &'a Dataset,
    /// Activations for the largest minibatch: `acts[0]` = X, `acts[l + 1]` = output of layer l.
    acts: Vec<Vec<f32>>,
    deltas: Vec<Vec<f32>>,
    labels: Vec<u32>,
}

impl<'a> CpuEngine<'a> {
    /// Opens the CPU engine for `cfg` on `data` (see [`crate::device::open`]), allocating
    /// every buffer once for minibatches of up to `cfg.batch_size` samples.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`RunSetup::new`], and for [`Precision::F16`]
    /// ([`check_precision`]).
    pub fn new(cfg: &RunConfig, data: RunData<'a>) -> Result<CpuEngine<'a>> {
        check_precision(cfg)?;
        let setup = RunSetup::new(cfg, data)?;
        let sgd = &cfg.sgd;
        let spec = &setup.spec;
        let layout = spec.layout();
        let decay = decay_per_param(&layout, sgd);
        let cap = cfg.batch_size.max(EVAL_BATCH);
        Ok(CpuEngine {
            classes: spec.classes(),
            params: setup.init.clone(),
            grads: vec![0.0; layout.len],
            velocity: vec![0.0; layout.len],
            decay,
            train: data.train,
            test: data.test,
            acts: spec.sizes.iter().map(|&s| vec![0.0; cap * s]).collect(),
            deltas: spec.sizes.iter().map(|&s| vec![0.0; cap * s]).collect(),
            labels: vec![0; cap],
            layout,
            setup,
        })
    }

    /// A held-out set's data and the indices of its samples, in evaluation order.
    fn eval_order(&self, set: EvalSet) -> (&'a Dataset, Vec<u32>) {
        match set {
            EvalSet::Test => (self.test, (0..self.test.len() as u32).collect()),
            EvalSet::Validation => (self.train, self.setup.validation.clone()),
        }
    }

    /// Stage `gather`: X `[B, I]` = normalised pixels of the samples `order` names, y `[B]`.
    fn gather(&mut self, data: &Dataset, order: &[u32]) {
        let f = data.features();
        let n = self.setup.config.normalization;
        let (mean, std) = (n.mean, n.std);
        for (b, &s) in order.iter().enumerate() {
            let s = s as usize;
            let px = &data.images[s * f..(s + 1) * f];
            for (x, &p) in self.acts[0][b * f..(b + 1) * f].iter_mut().zip(px) {
                *x = (f32::from(p) / 255.0 - mean) / std;
            }
            self.labels[b] = data.labels[s];
        }
    }

    /// Stage `forward`, every layer: `H_l = ReLU(H_{l-1} · W_lᵀ + b_l)`, logits without ReLU.
    fn forward(&mut self, batch: usize) {
        let last = self.layout.layers.len() - 1;
        for (l, s) in self.layout.layers.iter().enumerate() {
            let (lo, hi) = self.acts.split_at_mut(l + 1);
            let x = &lo[l][..batch * s.inputs];
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
    fn loss(&mut self, batch: usize, grad: bool) -> StepSums {
        let c = self.classes;
        let n_layers = self.layout.layers.len();
        let logits = &self.acts[n_layers][..batch * c];
        let dl = &mut self.deltas[n_layers][..batch * c];
        let (mut loss_sum, mut correct) = (0.0f32, 0.0f32);
        let inv_b = 1.0 / batch as f32;
        for b in 0..batch {
            let row = &logits[b * c..(b + 1) * c];
            let r = cpu::softmax_cross_entropy_row::<f32>(row, self.labels[b]);
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
    fn backward(&mut self, batch: usize) {
        for (l, s) in self.layout.layers.iter().enumerate().rev() {
            let dz = &self.deltas[l + 1][..batch * s.outputs];
            let x = &self.acts[l][..batch * s.inputs];
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
                let (lo, hi) = self.deltas.split_at_mut(l + 1);
                let dz = &hi[0][..batch * s.outputs];
                let dh = &mut lo[l][..batch * s.inputs];
                let w = &self.params[s.weight..s.weight + s.outputs * s.inputs];
                sgemm(
                    batch, s.outputs, s.inputs, dz, s.outputs, 1, w, s.inputs, 1, dh,
                );
                for (d, &h) in dh.iter_mut().zip(&self.acts[l][..batch * s.inputs]) {
                    if h <= 0.0 {
                        *d = 0.0;
                    }
                }
            }
        }
    }

    /// One training step on the `b` samples of `order` from position `off`: gather,
    /// forward, loss, and (when the loss is finite) backward and update at `lr`; `first`
    /// starts the momentum buffer as the gradient. Returns the step's sums.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a minibatch that is empty, larger than the engine was
    /// opened for or past the end of `order`.
    pub(crate) fn step(
        &mut self,
        order: &[u32],
        off: usize,
        b: usize,
        lr: f32,
        first: bool,
    ) -> Result<StepSums> {
        let batch_size = self.setup.config.batch_size;
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
        let train = self.train;
        self.gather(train, &order[off..off + b]);
        self.forward(b);
        let s = self.loss(b, true);
        if s[0].is_finite() {
            self.backward(b);
            self.update(lr, first);
        }
        Ok(s)
    }

    /// Gives the run new SGD settings from the next step on (the momentum buffer is kept).
    pub(crate) fn set_sgd(&mut self, sgd: &crate::optim::SgdConfig) {
        self.decay = decay_per_param(&self.layout, sgd);
        self.setup.config.sgd = sgd.clone();
    }

    /// Starts the run `setup` in this engine (same model and minibatch size): its
    /// configuration, parameters and SGD settings, the momentum buffer cleared.
    pub(crate) fn restart(&mut self, setup: RunSetup) {
        self.decay = decay_per_param(&self.layout, &setup.config.sgd);
        self.params.copy_from_slice(&setup.init);
        self.velocity.fill(0.0);
        self.setup = setup;
    }

    /// The momentum buffer (for copying a member of a population onto another).
    pub(crate) fn velocity(&self) -> &[f32] {
        &self.velocity
    }

    /// Replaces parameters and momentum buffer together.
    pub(crate) fn set_state(&mut self, params: &[f32], velocity: &[f32]) {
        self.params.copy_from_slice(params);
        self.velocity.copy_from_slice(velocity);
    }

    /// Stage `update`: SGD over the flat parameter buffer.
    fn update(&mut self, lr: f32, first: bool) {
        let step = cpu::SgdStep::new(&self.setup.config.sgd, lr, first);
        for (i, p) in self.params.iter_mut().enumerate() {
            let v = &mut self.velocity[i];
            cpu::sgd_update_element(&step, p, self.grads[i], v, self.decay[i]);
        }
    }
}

impl Engine for CpuEngine<'_> {
    fn setup(&self) -> &RunSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        format!("cpu: matrixmultiply SGEMM, {threads} threads")
    }

    /// Checks `stop` before every step: an interrupted epoch ends after the step it was in.
    fn train_epoch_until(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<StepSums>> {
        let mut sums = Vec::with_capacity(steps.len());
        for (i, st) in steps.iter().enumerate() {
            if stop.load(Ordering::Relaxed) {
                progress(i);
                return Ok(sums);
            }
            let s = self.step(
                order,
                st.offset as usize,
                st.batch as usize,
                st.lr,
                st.first != 0,
            )?;
            sums.push(s);
            if !s[0].is_finite() {
                // Same contract as the GPU engine: parameters stay as after the last finite step.
                sums.extend(std::iter::repeat_n([f32::NAN, 0.0], steps.len() - i - 1));
                break;
            }
            if i % 16 == 15 {
                progress(i + 1);
            }
        }
        progress(steps.len());
        Ok(sums)
    }

    fn evaluate(&mut self, set: EvalSet) -> Result<Evaluation> {
        let (data, order) = self.eval_order(set);
        let (mut loss, mut correct) = (0.0f64, 0.0f64);
        let chunk = self.labels.len();
        for idx in order.chunks(chunk) {
            self.gather(data, idx);
            self.forward(idx.len());
            let s = self.loss(idx.len(), false);
            loss += f64::from(s[0]);
            correct += f64::from(s[1]);
        }
        let n = order.len();
        if n == 0 {
            return Ok(Evaluation::default());
        }
        Ok(Evaluation {
            loss: loss / n as f64,
            accuracy: correct / n as f64,
            samples: n,
        })
    }

    fn logits(&mut self, set: EvalSet) -> Result<Vec<f32>> {
        let (data, order) = self.eval_order(set);
        let c = self.classes;
        let n_layers = self.layout.layers.len();
        let mut out = Vec::with_capacity(order.len() * c);
        for idx in order.chunks(self.labels.len()) {
            self.gather(data, idx);
            self.forward(idx.len());
            out.extend_from_slice(&self.acts[n_layers][..idx.len() * c]);
        }
        Ok(out)
    }

    fn dispatches_per_step(&self) -> usize {
        let l = self.layout.layers.len();
        1 + l + 1 + 2 * l + (l - 1) + 1
    }

    fn params(&mut self) -> Result<Vec<f32>> {
        Ok(self.params.clone())
    }

    fn set_params(&mut self, params: &[f32]) -> Result<()> {
        self.setup.check_params(params)?;
        self.params.copy_from_slice(params);
        self.velocity.fill(0.0);
        Ok(())
    }

    /// The same change as a population member's ([`crate::population::cpu`]): the
    /// per-parameter decay rebuilt, the momentum buffer kept.
    fn set_sgd(&mut self, sgd: &crate::optim::SgdConfig) -> Result<()> {
        crate::engine::check_sgd_change(&self.setup.config.sgd, sgd)?;
        // The inherent method (population members share it).
        CpuEngine::set_sgd(self, sgd);
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
