//! The stages of the CPU engine's step, each over all K members at once: `forward`, `loss`,
//! `backward` and `update` (the GPU plan's stages, as method calls). Parameters, gradients
//! and momentum are member-stacked ([`Stacked`]); a layer's outputs and their gradients
//! are `[rows, K·O]`, member j's in columns `j·O .. (j+1)·O`, so that
//!
//! - layer 0's forward product and weight gradient, where every member multiplies the
//!   shared minibatch X, are one wide SGEMM each (`Yᵀ [K·O, B] = W [K·O, I] · Xᵀ` and
//!   `dW [K·O, I] = dZᵀ [K·O, B] · X`), and the other products are one batched call over
//!   the members ([`gemm::batched`]);
//! - bias + ReLU, the bias gradients and the ReLU mask are one pass over the rows for all
//!   members (a stacked bias `[K·O]` lines up with a row of outputs).
//!
//! Each member's arithmetic is its single run's, element for element and in the same
//! order (the products: see [`gemm`]), so member k is bit for bit the run of its
//! configuration. Stages run for *runs* of members (consecutive members to step):
//! frozen and diverged members are left out, so a pruned trial costs nothing.

use std::ops::Range;

use rayon::prelude::*;

use super::gemm::{self, Operand, Shape};
use super::stacked::Stacked;
use crate::cpu::{self, SgdStep};
use crate::optim::SgdConfig;
use crate::step::{MemberStep, StepSums};

/// The maximal runs of consecutive members for which `on` holds.
pub fn runs(on: &[bool]) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for (j, _) in on.iter().enumerate().filter(|(_, o)| **o) {
        match out.last_mut() {
            Some(r) if r.end == j => r.end = j + 1,
            _ => out.push(j..j + 1),
        }
    }
    out
}

/// A member's update in one step: its learning rate and whether it is its first step.
#[derive(Clone, Copy, Debug)]
pub struct Update {
    pub lr: f32,
    pub first: bool,
}

/// Bias-gradient columns per task: a layer of 256 outputs in 4 for each member.
const BIAS_CHUNK: usize = 64;

/// Elements of one member's tensor per SGD task (a layer 0 of 784 x 256 splits in 7).
const SGD_CHUNK: usize = 1 << 15;

/// K members' state: stacked parameters, gradients and momentum, their SGD settings, and
/// every layer's outputs and their gradients for the largest minibatch.
pub struct Population {
    pub stacked: Stacked,
    pub params: Vec<f32>,
    pub grads: Vec<f32>,
    pub velocity: Vec<f32>,
    /// The running gradient sums of minibatches that span several micro-steps (stacked as
    /// `grads`; allocated on the first such step, empty until then).
    pub grad_sum: Vec<f32>,
    /// Member j's SGD settings.
    pub sgd: Vec<SgdConfig>,
    /// `acts[l]`: layer l's outputs `[rows, K·O_l]` (the last: logits).
    acts: Vec<Vec<f32>>,
    /// `deltas[l]`: the loss's gradient with respect to `acts[l]`.
    deltas: Vec<Vec<f32>>,
}

impl Population {
    /// `stacked.members` members with buffers for minibatches of up to `rows` rows;
    /// parameters `params` (stacked), momentum zero.
    pub fn new(stacked: Stacked, params: Vec<f32>, sgd: Vec<SgdConfig>, rows: usize) -> Population {
        let k = stacked.members;
        let outputs = || {
            stacked
                .layers
                .iter()
                .map(|s| vec![0.0; rows * k * s.outputs])
        };
        Population {
            grads: vec![0.0; stacked.len],
            velocity: vec![0.0; stacked.len],
            grad_sum: Vec::new(),
            acts: outputs().collect(),
            deltas: outputs().collect(),
            params,
            sgd,
            stacked,
        }
    }

    /// Member `member`'s logits `[rows, C]` after [`Population::forward`] of `rows` rows.
    pub fn logits(&self, member: usize, rows: usize) -> Vec<f32> {
        let c = self.stacked.layers.last().map_or(0, |s| s.outputs);
        let kc = self.stacked.members * c;
        let last = &self.acts[self.acts.len() - 1];
        (0..rows)
            .flat_map(|r| &last[r * kc + member * c..r * kc + (member + 1) * c])
            .copied()
            .collect()
    }

    /// Stage `forward`, every layer, for the members in `runs`: `H_l = ReLU(H_{l-1} ·
    /// W_lᵀ + b_l)` (logits without ReLU), computed transposed (`H_lᵀ = W_l · H_{l-1}ᵀ`,
    /// the weights on SGEMM's row side: one wide product at layer 0), on `x [batch, I]`.
    pub fn forward(&mut self, x: &[f32], batch: usize, runs: &[Range<usize>]) {
        let k = self.stacked.members;
        let last = self.stacked.layers.len() - 1;
        for (l, s) in self.stacked.layers.iter().enumerate() {
            let (o, i) = (s.outputs, s.inputs);
            let (lo, hi) = self.acts.split_at_mut(l);
            let y = &mut hi[0];
            let (input, input_o) = match l {
                0 => (
                    x,
                    Operand {
                        offset: 0,
                        rs: 1,
                        cs: i,
                        member: 0,
                    },
                ),
                _ => (
                    &lo[l - 1][..],
                    Operand {
                        offset: 0,
                        rs: 1,
                        cs: k * i,
                        member: i,
                    },
                ),
            };
            let w = Operand {
                offset: s.weight,
                rs: i,
                cs: 1,
                member: o * i,
            };
            let out = Operand {
                offset: 0,
                rs: 1,
                cs: k * o,
                member: o,
            };
            for r in runs {
                gemm::batched(
                    Shape {
                        m: o,
                        k: i,
                        n: batch,
                    },
                    r.clone(),
                    &self.params,
                    w,
                    input,
                    input_o,
                    y,
                    out,
                );
            }
            let bias = &self.params[s.bias..s.bias + k * o];
            y[..batch * k * o].par_chunks_mut(k * o).for_each(|row| {
                for r in runs {
                    let seg = r.start * o..r.end * o;
                    for (v, b) in row[seg.clone()].iter_mut().zip(&bias[seg]) {
                        *v += b;
                        if l < last {
                            *v = v.max(0.0);
                        }
                    }
                }
            });
        }
    }

    /// Stage `loss` for the members in `runs`: softmax cross-entropy over each member's
    /// logits with the shared `labels`, row by row; writes the gradient of the mean loss
    /// when `grad`. Returns every member's sums, `[0, 0]` for those not in `runs`.
    pub fn loss(
        &mut self,
        labels: &[u32],
        batch: usize,
        runs: &[Range<usize>],
        grad: bool,
    ) -> Vec<StepSums> {
        let k = self.stacked.members;
        let c = self.stacked.layers.last().map_or(0, |s| s.outputs);
        let last = self.acts.len() - 1;
        let (logits, dl) = (&self.acts[last], &mut self.deltas[last]);
        let inv_b = 1.0 / batch as f32;
        let members: Vec<usize> = runs.iter().flat_map(|r| r.clone()).collect();
        // Rows in parallel, each member's loss and hit per row; summed below in row order,
        // as a single run sums them.
        let row_sums = |(b, logits_row): (usize, &[f32]), mut dl_row: Option<&mut [f32]>| {
            members
                .iter()
                .map(|&j| {
                    let row = &logits_row[j * c..(j + 1) * c];
                    let r = cpu::softmax_cross_entropy_row::<f32>(row, labels[b]);
                    if let Some(d) = dl_row.as_deref_mut() {
                        r.gradient(row, &mut d[j * c..(j + 1) * c], |d| d * inv_b);
                    }
                    (r.loss, f32::from(u8::from(r.correct)))
                })
                .collect::<Vec<_>>()
        };
        let rows = logits[..batch * k * c].par_chunks(k * c).enumerate();
        let per_row: Vec<Vec<(f32, f32)>> = if grad {
            rows.zip(dl[..batch * k * c].par_chunks_mut(k * c))
                .map(|(row, d)| row_sums(row, Some(d)))
                .collect()
        } else {
            rows.map(|row| row_sums(row, None)).collect()
        };
        let mut sums = vec![[0.0f32; 2]; k];
        for row in &per_row {
            for (&j, &(loss, hit)) in members.iter().zip(row) {
                sums[j][0] += loss;
                sums[j][1] += hit;
            }
        }
        sums
    }

    /// Stage `backward`, last layer to first, for the members in `runs`: weight gradient
    /// `dZᵀ · X` (one wide product at layer 0), bias gradient `colsum(dZ)` (rows in order),
    /// and the input gradient `(dZ · W) ⊙ [H > 0]` below the first layer.
    pub fn backward(&mut self, x: &[f32], batch: usize, runs: &[Range<usize>]) {
        let k = self.stacked.members;
        for (l, s) in self.stacked.layers.iter().enumerate().rev() {
            let (o, i) = (s.outputs, s.inputs);
            let dz = &self.deltas[l];
            let dz_t = Operand {
                offset: 0,
                rs: 1,
                cs: k * o,
                member: o,
            };
            let (input, input_o) = match l {
                0 => (
                    x,
                    Operand {
                        offset: 0,
                        rs: i,
                        cs: 1,
                        member: 0,
                    },
                ),
                _ => (
                    &self.acts[l - 1][..],
                    Operand {
                        offset: 0,
                        rs: k * i,
                        cs: 1,
                        member: i,
                    },
                ),
            };
            let dw = Operand {
                offset: s.weight,
                rs: i,
                cs: 1,
                member: o * i,
            };
            for r in runs {
                gemm::batched(
                    Shape {
                        m: o,
                        k: batch,
                        n: i,
                    },
                    r.clone(),
                    dz,
                    dz_t,
                    input,
                    input_o,
                    &mut self.grads,
                    dw,
                );
            }
            // Columns in parallel, each summed over the rows in order (a single run's order).
            let db = &mut self.grads[s.bias..s.bias + k * o];
            for r in runs {
                let seg = r.start * o..r.end * o;
                db[seg.clone()]
                    .par_chunks_mut(BIAS_CHUNK)
                    .enumerate()
                    .for_each(|(t, d)| {
                        let from = seg.start + t * BIAS_CHUNK;
                        d.fill(0.0);
                        for row in dz[..batch * k * o].chunks(k * o) {
                            for (d, v) in d.iter_mut().zip(&row[from..]) {
                                *d += v;
                            }
                        }
                    });
            }
            if l > 0 {
                let (lo, hi) = self.deltas.split_at_mut(l);
                let dh = &mut lo[l - 1];
                let dz_o = Operand {
                    offset: 0,
                    rs: k * o,
                    cs: 1,
                    member: o,
                };
                let w = Operand {
                    offset: s.weight,
                    rs: i,
                    cs: 1,
                    member: o * i,
                };
                let dh_o = Operand {
                    offset: 0,
                    rs: k * i,
                    cs: 1,
                    member: i,
                };
                for r in runs {
                    gemm::batched(
                        Shape {
                            m: batch,
                            k: o,
                            n: i,
                        },
                        r.clone(),
                        &hi[0],
                        dz_o,
                        &self.params,
                        w,
                        dh,
                        dh_o,
                    );
                }
                let h = &self.acts[l - 1];
                let rows = dh[..batch * k * i]
                    .par_chunks_mut(k * i)
                    .zip(h.par_chunks(k * i));
                rows.for_each(|(drow, hrow)| {
                    for r in runs {
                        let seg = r.start * i..r.end * i;
                        // A select, not a branch: it vectorises, where the branch on a
                        // random sign pattern mispredicted (7% of a K = 8 step's time).
                        for (d, &hv) in drow[seg.clone()].iter_mut().zip(&hrow[seg]) {
                            *d = if hv <= 0.0 { 0.0 } else { *d };
                        }
                    }
                });
            }
        }
    }

    /// Folds each member's micro-step gradient into the running sum of its minibatch, for
    /// the members with a step in `folds` ([`cpu::grad_sum_element`]: `grad · scale`, plus
    /// the sum when the step accumulates): kept in the sum while the member defers its
    /// update, else left in the gradients for [`Population::update`].
    pub fn fold(&mut self, folds: &[Option<MemberStep>]) {
        if self.grad_sum.is_empty() {
            self.grad_sum = vec![0.0; self.grads.len()];
        }
        let k = self.stacked.members;
        for t in &self.stacked.tensors {
            let all = t.start..t.start + k * t.len;
            let grads = self.grads[all.clone()].par_chunks_mut(t.len);
            let sums = self.grad_sum[all].par_chunks_mut(t.len);
            grads.zip(sums).enumerate().for_each(|(j, (g, sum))| {
                let Some(ms) = folds[j] else { return };
                let (scale, acc) = (ms.scale, ms.accumulates());
                for (g, sum) in g.iter_mut().zip(sum.iter_mut()) {
                    let joined = cpu::grad_sum_element(*g, *sum, scale, acc);
                    if ms.defers() {
                        *sum = joined;
                    } else {
                        *g = joined;
                    }
                }
            });
        }
    }

    /// Stage `update`: one SGD step of every member with an update (`updates[j]`), over
    /// each of its tensors ([`cpu::sgd_update_element`] per element), members and chunks of
    /// large tensors in parallel.
    pub fn update(&mut self, updates: &[Option<Update>]) {
        let k = self.stacked.members;
        for t in &self.stacked.tensors {
            let all = t.start..t.start + k * t.len;
            let params = self.params[all.clone()].par_chunks_mut(t.len);
            let grads = self.grads[all.clone()].par_chunks(t.len);
            let velocity = self.velocity[all].par_chunks_mut(t.len);
            let sgd = &self.sgd;
            params
                .zip(grads)
                .zip(velocity)
                .enumerate()
                .for_each(|(j, ((p, g), v))| {
                    let Some(u) = updates[j] else { return };
                    let cfg = &sgd[j];
                    let wd = if t.bias && !cfg.decay_bias {
                        0.0
                    } else {
                        cfg.weight_decay as f32
                    };
                    let step = SgdStep::new(cfg, u.lr, u.first);
                    p.par_chunks_mut(SGD_CHUNK)
                        .zip(g.par_chunks(SGD_CHUNK))
                        .zip(v.par_chunks_mut(SGD_CHUNK))
                        .for_each(|((p, g), v)| sgd_slice(&step, p, g, v, wd));
                });
        }
    }
}

/// [`cpu::sgd_update_element`] over a slice, compiled once per combination of the settings
/// that decide its arithmetic (momentum or not, coupled or decoupled decay), so that the
/// loop carries no branch on them.
fn sgd_slice(step: &SgdStep, p: &mut [f32], g: &[f32], v: &mut [f32], wd: f32) {
    #[inline(always)]
    fn each(s: SgdStep, p: &mut [f32], g: &[f32], v: &mut [f32], wd: f32) {
        for ((p, &g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
            cpu::sgd_update_element(&s, p, g, v, wd);
        }
    }
    match (step.momentum != 0.0, step.decoupled) {
        (false, false) => each(
            SgdStep {
                momentum: 0.0,
                decoupled: false,
                ..*step
            },
            p,
            g,
            v,
            wd,
        ),
        (false, true) => each(
            SgdStep {
                momentum: 0.0,
                decoupled: true,
                ..*step
            },
            p,
            g,
            v,
            wd,
        ),
        (true, false) => each(
            SgdStep {
                decoupled: false,
                ..*step
            },
            p,
            g,
            v,
            wd,
        ),
        (true, true) => each(
            SgdStep {
                decoupled: true,
                ..*step
            },
            p,
            g,
            v,
            wd,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_the_maximal_stretches_of_members_on() {
        assert_eq!(
            runs(&[true, true, false, true, false, false, true, true]),
            vec![0..2, 3..4, 6..8]
        );
        assert_eq!(runs(&[false, false]), Vec::<Range<usize>>::new());
        assert_eq!(runs(&[true]), vec![0..1]);
    }
}
