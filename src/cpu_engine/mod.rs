//! `CpuEngine`: the `--device cpu` training path, for K >= 1 members. The same step as the
//! GPU engine, with the matrix products on the `matrixmultiply` SGEMM (single-threaded calls
//! run in parallel on rayon, [`gemm`]) and
//! the rest in plain loops. It is what a user without a GPU runs and the yardstick for the
//! GPU path; the plain-loop reference in [`crate::cpu`] stays the test oracle.
//!
//! The minibatch (X and its labels) is gathered once per step and shared. The members'
//! parameters, gradients and momentum are stacked tensor by tensor (`stacked.rs`), and each
//! stage runs for all members at once (`stages.rs`): layer 0's forward product and weight
//! gradient, where every member multiplies X, are one wide SGEMM each; the other products
//! are batched over the members ([`gemm`]). Each member keeps a single run's arithmetic,
//! element for element and in the same order, so member k is bit for bit the run of its
//! configuration. Frozen and diverged members are left out of the stages: on the CPU a
//! pruned trial costs nothing.
//!
//! A step is a micro-step of the members' smallest minibatch ([`crate::step`]): a member
//! whose minibatch spans several folds each micro-step's gradient into its running sum
//! ([`crate::cpu::grad_sum_element`], the GPU's `sgd_sum`) and updates on the last one.

pub mod gemm;
mod stacked;
mod stages;

use std::sync::atomic::{AtomicBool, Ordering};

use rayon::prelude::*;

use crate::config::{Precision, RunConfig};
use crate::data::{Dataset, Normalization};
use crate::engine::{
    EVAL_BATCH, Engine, EvalSet, Evaluation, PopulationSetup, RunData, check_member, check_table,
};
use crate::error::{Error, Result};
use crate::optim::SgdConfig;
use crate::step::{MemberStep, StepRecord, StepSums};

use stacked::Stacked;
use stages::{Population, Update, runs};

/// The shared minibatch of a step or an evaluation chunk: X `[rows, I]` and labels `[rows]`.
struct Minibatch {
    x: Vec<f32>,
    labels: Vec<u32>,
    /// X's value for each pixel byte, `(p / 255 - mean) / std` in f32 as the gather kernel
    /// computes it: a lookup in place of two divisions per element (the gather was 7% of a
    /// K = 8 step's CPU time), the same bits.
    pixels: [f32; 256],
}

/// The CPU training engine. One step runs the same stages as the GPU engine's step plan
/// (`crate::gpu::engine`), as method calls over all members: `gather` (shared), then
/// `forward`, `loss` (softmax-cross-entropy), `backward` (weight, bias and input gradients
/// per layer, last to first) and `update` (SGD).
pub struct CpuEngine<'a> {
    setup: PopulationSetup,
    train: &'a Dataset,
    test: &'a Dataset,
    batch: Minibatch,
    pop: Population,
}

impl<'a> CpuEngine<'a> {
    /// Opens the CPU engine for the members `configs` on `data` (see
    /// [`crate::device::open`]), allocating every buffer once for steps of up to the
    /// micro-batch, the members' smallest minibatch (and the evaluation minibatch).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`PopulationSetup::new`], and for [`Precision::F16`]
    /// ([`check_precision`]).
    pub fn new(configs: &[RunConfig], data: RunData<'a>) -> Result<CpuEngine<'a>> {
        let setup = PopulationSetup::new(configs, data)?;
        check_precision(&setup.shared().config)?;
        let spec = &setup.shared().spec;
        let stacked = Stacked::new(&spec.layout(), setup.len());
        let rows = setup.micro_batch().max(EVAL_BATCH);
        let mut params = vec![0.0; stacked.len];
        for (j, m) in setup.members.iter().enumerate() {
            stacked.write_flat(&mut params, j, &m.init);
        }
        let sgd = setup.members.iter().map(|m| m.config.sgd.clone()).collect();
        Ok(CpuEngine {
            train: data.train,
            test: data.test,
            batch: Minibatch {
                x: vec![0.0; rows * spec.sizes[0]],
                labels: vec![0; rows],
                pixels: pixel_table(setup.shared().config.normalization),
            },
            pop: Population::new(stacked, params, sgd, rows),
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
        let pixels = &self.batch.pixels;
        let rows = self.batch.x[..order.len() * f].par_chunks_mut(f);
        rows.zip(order).for_each(|(x, &s)| {
            let px = &data.images[s as usize * f..(s as usize + 1) * f];
            for (x, &p) in x.iter_mut().zip(px) {
                *x = pixels[usize::from(p)];
            }
        });
        for (label, &s) in self.batch.labels.iter_mut().zip(order) {
            *label = data.labels[s as usize];
        }
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

    /// One training (micro-)step of `batch` gathered rows: forward and loss for the members
    /// that train (neither frozen nor diverged), then for those whose loss is finite
    /// backward, the gradient folded into the running sum of a minibatch that spans several
    /// micro-steps, and the update unless the member defers it. Returns every member's
    /// sums: NaN for a diverged member, zeros for a frozen one.
    fn step(&mut self, batch: usize, row: &[MemberStep], diverged: &[bool]) -> Vec<StepSums> {
        let train: Vec<bool> = row
            .iter()
            .zip(diverged)
            .map(|(ms, &dead)| !dead && !ms.frozen())
            .collect();
        let on = runs(&train);
        let (x, labels) = (&self.batch.x, &self.batch.labels);
        self.pop.forward(x, batch, &on);
        let mut sums = self.pop.loss(labels, batch, &on, true);
        let finite: Vec<bool> = (0..row.len())
            .map(|j| train[j] && sums[j][0].is_finite())
            .collect();
        self.pop.backward(x, batch, &runs(&finite));
        let folds: Vec<Option<MemberStep>> = (0..row.len())
            .map(|j| (finite[j] && row[j].sums()).then_some(row[j]))
            .collect();
        if folds.iter().any(Option::is_some) {
            self.pop.fold(&folds);
        }
        let updates: Vec<Option<Update>> = (0..row.len())
            .map(|j| {
                (finite[j] && !row[j].defers()).then_some(Update {
                    lr: row[j].lr,
                    first: row[j].first(),
                })
            })
            .collect();
        self.pop.update(&updates);
        for (s, &dead) in sums.iter_mut().zip(diverged) {
            if dead {
                *s = [f32::NAN, 0.0];
            }
        }
        sums
    }
}

impl Engine for CpuEngine<'_> {
    fn setup(&self) -> &PopulationSetup {
        &self.setup
    }

    fn describe(&self) -> String {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let k = self.setup.len();
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
        let k = self.setup.len();
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
            let step_sums = self.step(b, &member_steps[i * k..(i + 1) * k], &diverged);
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
        let k = self.setup.len();
        let every = 0..k;
        let all = std::slice::from_ref(&every);
        let mut totals = vec![(0.0f64, 0.0f64); k];
        let chunk = self.batch.labels.len();
        for idx in order.chunks(chunk) {
            self.gather(data, idx);
            let n = idx.len();
            self.pop.forward(&self.batch.x, n, all);
            let sums = self.pop.loss(&self.batch.labels, n, all, false);
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
        check_member(member, self.setup.len())?;
        let (data, order) = self.eval_order(set);
        let c = self.setup.shared().spec.classes();
        let mut out = Vec::with_capacity(order.len() * c);
        for idx in order.chunks(self.batch.labels.len()) {
            self.gather(data, idx);
            self.pop.forward(
                &self.batch.x,
                idx.len(),
                std::slice::from_ref(&(member..member + 1)),
            );
            out.extend(self.pop.logits(member, idx.len()));
        }
        Ok(out)
    }

    /// Stage calls per step, each over every member: gather, per layer the forward
    /// product (with bias and ReLU), the weight and bias gradients, the input gradients
    /// below the first layer, the loss and the update (10 for one hidden layer, for any K).
    fn dispatches_per_step(&self) -> usize {
        let l = self.pop.stacked.layers.len();
        1 + l + 1 + 2 * l + (l - 1) + 1
    }

    fn params(&mut self, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.setup.len())?;
        Ok(self.pop.stacked.to_flat(&self.pop.params, member))
    }

    fn momentum(&mut self, member: usize) -> Result<Vec<f32>> {
        check_member(member, self.setup.len())?;
        Ok(self.pop.stacked.to_flat(&self.pop.velocity, member))
    }

    fn set_state(&mut self, member: usize, params: &[f32], momentum: Option<&[f32]>) -> Result<()> {
        check_member(member, self.setup.len())?;
        let setup = &self.setup.members[member];
        setup.check_params(params)?;
        if let Some(v) = momentum {
            setup.check_params(v)?;
        }
        let p = &mut self.pop;
        p.stacked.write_flat(&mut p.params, member, params);
        match momentum {
            Some(v) => p.stacked.write_flat(&mut p.velocity, member, v),
            None => p.stacked.fill_member(&mut p.velocity, member, 0.0),
        }
        Ok(())
    }

    fn copy_member(&mut self, from: usize, to: usize) -> Result<()> {
        check_member(from, self.setup.len())?;
        check_member(to, self.setup.len())?;
        let p = &mut self.pop;
        p.stacked.copy_member(&mut p.params, from, to);
        p.stacked.copy_member(&mut p.velocity, from, to);
        Ok(())
    }

    /// The momentum buffer is kept.
    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()> {
        check_member(member, self.setup.len())?;
        sgd.validate()?;
        self.pop.sgd[member] = sgd.clone();
        self.setup.members[member].config.sgd = sgd.clone();
        Ok(())
    }

    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()> {
        let setup = self.setup.member_setup(member, cfg)?;
        let p = &mut self.pop;
        p.stacked.write_flat(&mut p.params, member, &setup.init);
        p.stacked.fill_member(&mut p.velocity, member, 0.0);
        p.sgd[member] = cfg.sgd.clone();
        self.setup.members[member] = setup;
        Ok(())
    }
}

/// X's value for each of the 256 pixel bytes: `(p / 255 - mean) / std`, in f32 and in that
/// order, the arithmetic of the gather kernel (`shaders/gather_normalize.wgsl`) and of
/// [`crate::cpu`]'s reference.
fn pixel_table(n: Normalization) -> [f32; 256] {
    std::array::from_fn(|p| (p as f32 / 255.0 - n.mean) / n.std)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The gather's lookup gives the reference gather's bits for every byte value, under
    /// MNIST's normalisation, none, and an odd one (a dataset's own statistics).
    #[test]
    fn pixel_table_gives_the_reference_gathers_bits() {
        let bytes: Vec<u8> = (0..=255).collect();
        for n in [
            Normalization::MNIST,
            Normalization::UNIT,
            Normalization {
                mean: 0.4733,
                std: 0.2516,
            },
        ] {
            let labels = vec![0; 256];
            let order: Vec<u32> = (0..256).collect();
            let (want, _) =
                crate::cpu::gather_normalize(&bytes, &labels, 1, &order, 0, 256, n.mean, n.std);
            let got = pixel_table(n);
            for (p, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "byte {p} under {n:?}: {g} vs {w}");
            }
        }
    }
}
