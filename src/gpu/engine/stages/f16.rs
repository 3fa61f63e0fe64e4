//! The stages of the `--precision f16` plan ([`crate::config::Precision::F16`]): the same
//! step as the f32 plan (`super`), for every member, with every matmul on `matmul_f16`
//! reading f16 operands, and two conversions. Master weights, gradients, momentum and the
//! loss stay f32.
//!
//! ```text
//! gather      gather_normalize        X [B, I] f32 (shared)
//!             convert_f16             X16 = f16(X)                               (+1 dispatch)
//! forward     matmul_f16 per layer    H_l = ReLU(H16_{l-1} · W16_lᵀ + b_l) in f32, and
//!                                     H16_l = f16(H_l) in the same epilogue (not the logits)
//! loss        softmax_cross_entropy   as f32
//! backward    matmul_f16   dW_l = dZ_lᵀ · H16_{l-1}                    (dZ f32, H16 f16)
//!             column_sum   db_l = colsum(dZ_l)   (not for the last layer: the loss stage's)
//!             matmul_f16   dZ_{l-1} = (dZ_l · W16_l) ⊙ [H_{l-1} > 0]   (dZ f32, W16 f16)
//! update      sgd_update              f32 master weights
//!             convert_f16             W16 = f16(params), all of `[K, P]`        (+1 dispatch)
//! ```
//! So a step is the unfused f32 plan's dispatch count plus 2 (11 for one hidden layer: the
//! loss launch still sums the last bias gradient). The gradients stay f32 (no loss scaling
//! needed: `dZ` never rounds to f16). Weight gradients are never computed flipped
//! (`TRANS_C`): `matmul_f16` is one kernel, there is nothing to tune.

use super::{Stages, rest, stacked, view};
use crate::error::Result;
use crate::gpu::View;
use crate::gpu::engine::buffers::{F16Buffers, Stacked};
use crate::gpu::kernels::matmul::MatmulMembers;
use crate::gpu::kernels::matmul::f16::{self as matmul_f16, F16View, MatmulF16Buffers, OperandA};
use crate::gpu::kernels::{Dispatch, convert_f16};
use crate::model::Normalization;

use super::super::products::{forward_spec, input_grad_spec, weight_grad_spec};

/// An f16 operand of every member: the view from element `offset` of its buffer to the
/// end, and the elements between members (0: shared).
#[derive(Clone, Copy)]
struct Operand16<'a> {
    view: F16View<'a>,
    stride: usize,
}

/// Every member's f16 tensor `s` from element `offset` of each member's block.
fn stacked16(s: &Stacked, offset: usize) -> Operand16<'_> {
    let len = (s.buffer.size() / 2) as usize - offset;
    Operand16 {
        view: F16View {
            buffer: &s.buffer,
            offset,
            len,
        },
        stride: s.stride,
    }
}

impl Stages<'_> {
    fn f16_bufs(&self) -> &F16Buffers {
        // Invariant: the engine builds f16 stages only on runs it allocated f16 buffers for.
        self.bufs
            .f16
            .as_ref()
            .expect("f16 stages need the run's f16 buffers")
    }

    /// f16 input of layer `l`: the shared X16, or every member's previous H16.
    fn input16(&self, l: usize) -> Operand16<'_> {
        match l {
            0 => Operand16 {
                view: F16View::whole(&self.f16_bufs().x16),
                stride: 0,
            },
            _ => stacked16(&self.f16_bufs().hidden16[l - 1], 0),
        }
    }

    /// The f16 copy of every member's layer `l` weight `[O, I]`.
    fn weight16(&self, l: usize) -> Operand16<'_> {
        stacked16(&self.f16_bufs().params16, self.layers()[l].weight)
    }

    /// The f16 training step (module docs).
    pub(super) fn train_step_f16(&self, norm: Normalization) -> Result<Vec<Dispatch>> {
        let (b, bufs) = (self.bufs.batch, self.bufs);
        let mut step = vec![self.gather("train", &bufs.train, &bufs.order, b, norm)?];
        step.push(self.convert_inputs("train", b)?);
        step.extend(self.forward_f16("train", b)?);
        step.push(self.loss("train", b, &bufs.train_metrics, true)?);
        for l in (0..self.layers().len()).rev() {
            step.extend(self.backward_f16(l, b)?);
        }
        step.push(self.update()?);
        step.push(self.convert_params()?);
        Ok(step)
    }

    /// `X16 = f16(X)` for the step record's minibatch (up to `rows` rows).
    pub(super) fn convert_inputs(&self, tag: &str, rows: usize) -> Result<Dispatch> {
        let inputs = self.layers()[0].inputs;
        convert_f16::dispatch(
            self.gpu,
            self.kernels,
            &format!("{tag}.convert_f16.x"),
            view(&self.bufs.act.x, 0, rows * inputs),
            &self.f16_bufs().x16,
            rows * inputs,
            inputs,
        )
    }

    /// `W16 = f16(params)` over every member's flat parameter buffer `[K, P]` (after the
    /// update).
    fn convert_params(&self) -> Result<Dispatch> {
        let len = self.members() * self.bufs.params.stride;
        convert_f16::dispatch(
            self.gpu,
            self.kernels,
            "convert_f16.params",
            view(&self.bufs.params.buffer, 0, len),
            &self.f16_bufs().params16.buffer,
            len,
            0,
        )
    }

    /// Stage `forward` on f16 operands: `rows` rows, bias (and ReLU) fused, each hidden
    /// layer's output also written as f16 for the next product.
    pub(super) fn forward_f16(&self, tag: &str, rows: usize) -> Result<Vec<Dispatch>> {
        let last = self.layers().len() - 1;
        let params = &self.bufs.params;
        let layers = self.layers().iter().enumerate();
        layers
            .map(|(l, s)| {
                let (a, b, c) = (self.input16(l), self.weight16(l), self.output(l));
                let bias = stacked(params, s.bias);
                let c16 = self
                    .f16_bufs()
                    .hidden16
                    .get(l)
                    .map(|h| F16View::whole(&h.buffer));
                matmul_f16::dispatch(
                    self.gpu,
                    self.kernels,
                    &format!("{tag}.layer{l}.forward"),
                    forward_spec(s, rows, l == last),
                    MatmulF16Buffers {
                        members: MatmulMembers {
                            count: self.members(),
                            a: a.stride,
                            b: b.stride,
                            bias: bias.stride,
                            mask: 0,
                            c: c.stride,
                        },
                        a: OperandA::F16(a.view),
                        b: b.view,
                        bias: Some(bias.view),
                        mask: None,
                        c: c.view,
                        c16,
                        dummy: self.dummy(),
                    },
                )
            })
            .collect()
    }

    /// Stage `backward` of layer `l` on f16 operands, every member: weight gradient from
    /// the f32 gradient and the f16 input, bias gradient, and (below the first layer) the
    /// input gradient from the f32 gradient and the f16 weights, through the ReLU of the
    /// f32 forward output.
    fn backward_f16(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        let s = &self.layers()[l];
        let dz = self.output_grad(l);
        let x16 = self.input16(l);
        let grads = &self.bufs.grads;
        let mut out = vec![matmul_f16::dispatch(
            self.gpu,
            self.kernels,
            &format!("train.layer{l}.weight_grad"),
            weight_grad_spec(s, batch, false),
            MatmulF16Buffers {
                members: MatmulMembers {
                    count: self.members(),
                    a: dz.stride,
                    b: x16.stride,
                    bias: 0,
                    mask: 0,
                    c: grads.stride,
                },
                a: OperandA::F32(dz.view),
                b: x16.view,
                bias: None,
                mask: None,
                c: rest(&grads.buffer, s.weight),
                c16: None,
                dummy: self.dummy(),
            },
        )?];
        if self.bias_grad_launch(l) {
            out.push(self.bias_grad(l, batch)?);
        }
        if l > 0 {
            let (w16, mask, dh) = (self.weight16(l), self.input(l), self.output_grad(l - 1));
            out.push(matmul_f16::dispatch(
                self.gpu,
                self.kernels,
                &format!("train.layer{l}.input_grad"),
                input_grad_spec(s, batch),
                MatmulF16Buffers {
                    members: MatmulMembers {
                        count: self.members(),
                        a: dz.stride,
                        b: w16.stride,
                        bias: 0,
                        mask: mask.stride,
                        c: dh.stride,
                    },
                    a: OperandA::F32(dz.view),
                    b: w16.view,
                    bias: None,
                    mask: Some(mask.view),
                    c: dh.view,
                    c16: None,
                    dummy: View::whole(&self.bufs.dummy),
                },
            )?);
        }
        Ok(out)
    }
}
