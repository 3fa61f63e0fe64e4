//! The stages of `--precision f16` ([`crate::config::Precision::F16`]): the same step as
//! the f32 plan (`super`), with every matmul on `matmul_f16` reading f16 operands, and two
//! conversions. Master weights, gradients, momentum and the loss stay f32.
//!
//! ```text
//! gather      gather_normalize        X [B, I] f32
//!             convert_f16             X16 = f16(X)                               (+1 dispatch)
//! forward     matmul_f16 per layer    H_l = ReLU(H16_{l-1} · W16_lᵀ + b_l) in f32, and
//!                                     H16_l = f16(H_l) in the same epilogue (not the logits)
//! loss        softmax_cross_entropy   as f32
//! backward    matmul_f16   dW_l = dZ_lᵀ · H16_{l-1}                    (dZ f32, H16 f16)
//!             column_sum   db_l = colsum(dZ_l)   (not for the last layer: the loss stage's)
//!             matmul_f16   dZ_{l-1} = (dZ_l · W16_l) ⊙ [H_{l-1} > 0]   (dZ f32, W16 f16)
//! update      sgd_update              f32 master weights
//!             convert_f16             W16 = f16(params), all of `[P]`           (+1 dispatch)
//! ```
//! So a step is the f32 plan's dispatch count plus 2 (12 for one hidden layer). The
//! gradients stay f32 (no loss scaling needed: `dZ` never rounds to f16). Weight gradients
//! are never computed flipped (`TRANS_C`): `matmul_f16` is one kernel, there is nothing to
//! tune.

use super::{Stages, forward_spec, input_grad_spec, view, weight_grad_spec};
use crate::error::Result;
use crate::gpu::View;
use crate::gpu::kernels::matmul::BatchDim;
use crate::gpu::kernels::matmul_f16::{self, F16View, MatmulF16Buffers, OperandA};
use crate::gpu::kernels::{Dispatch, column_sum, convert_f16};

use super::super::buffers::F16Buffers;

impl Stages<'_> {
    fn f16_bufs(&self) -> &F16Buffers {
        // Invariant: the engine builds f16 stages only on runs it allocated f16 buffers for.
        self.bufs
            .f16
            .as_ref()
            .expect("f16 stages need the run's f16 buffers")
    }

    /// f16 input of layer `l` (`X16` or the previous layer's `H16`), `rows` rows.
    fn input16(&self, l: usize, rows: usize) -> F16View<'_> {
        let s = &self.layers()[l];
        let f = self.f16_bufs();
        let buffer = match l {
            0 => &f.x16,
            _ => &f.hidden16[l - 1],
        };
        F16View {
            buffer,
            offset: 0,
            len: rows * s.inputs,
        }
    }

    /// The f16 copy of layer `l`'s weight `[O, I]`.
    fn weight16(&self, l: usize) -> F16View<'_> {
        let s = &self.layers()[l];
        F16View {
            buffer: &self.f16_bufs().params16,
            offset: s.weight,
            len: s.outputs * s.inputs,
        }
    }

    /// `X16 = f16(X)` for the step record's minibatch (up to `rows` rows).
    pub fn convert_inputs(&self, tag: &str, rows: usize) -> Result<Dispatch> {
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

    /// `W16 = f16(params)` over the whole flat parameter buffer `[P]` (after the update).
    pub fn convert_params(&self) -> Result<Dispatch> {
        let len = self.bufs.layout.len;
        convert_f16::dispatch(
            self.gpu,
            self.kernels,
            "convert_f16.params",
            view(&self.bufs.params, 0, len),
            &self.f16_bufs().params16,
            len,
            0,
        )
    }

    /// Stage `forward` on f16 operands: `rows` rows, bias (and ReLU) fused, each hidden
    /// layer's output also written as f16 for the next product.
    pub fn forward_f16(&self, tag: &str, rows: usize) -> Result<Vec<Dispatch>> {
        let last = self.layers().len() - 1;
        let layers = self.layers().iter().enumerate();
        layers
            .map(|(l, s)| {
                let c16 = self.f16_bufs().hidden16.get(l).map(F16View::whole);
                matmul_f16::dispatch(
                    self.gpu,
                    self.kernels,
                    &format!("{tag}.layer{l}.forward"),
                    forward_spec(s, rows, l == last),
                    MatmulF16Buffers {
                        a: OperandA::F16(self.input16(l, rows)),
                        b: self.weight16(l),
                        bias: Some(view(&self.bufs.params, s.bias, s.outputs)),
                        mask: None,
                        c: self.output(l, rows),
                        c16,
                        dummy: View::whole(&self.bufs.dummy),
                    },
                )
            })
            .collect()
    }

    /// Stage `backward` of layer `l` on f16 operands: weight gradient from the f32
    /// gradient and the f16 input, bias gradient, and (below the first layer) the input
    /// gradient from the f32 gradient and the f16 weights, through the ReLU of the f32
    /// forward output.
    pub fn backward_f16(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        let s = &self.layers()[l];
        let dz = self.output_grad(l, batch);
        let dummy = View::whole(&self.bufs.dummy);
        let mut out = vec![matmul_f16::dispatch(
            self.gpu,
            self.kernels,
            &format!("train.layer{l}.weight_grad"),
            weight_grad_spec(s, batch, false),
            MatmulF16Buffers {
                a: OperandA::F32(dz),
                b: self.input16(l, batch),
                bias: None,
                mask: None,
                c: view(&self.bufs.grads, s.weight, s.outputs * s.inputs),
                c16: None,
                dummy,
            },
        )?];
        if self.bias_grad_launch(l, batch) {
            out.push(column_sum::dispatch(
                self.gpu,
                self.kernels,
                &format!("train.layer{l}.bias_grad"),
                batch,
                s.outputs,
                BatchDim::M,
                dz,
                view(&self.bufs.grads, s.bias, s.outputs),
            )?);
        }
        if l > 0 {
            out.push(matmul_f16::dispatch(
                self.gpu,
                self.kernels,
                &format!("train.layer{l}.input_grad"),
                input_grad_spec(s, batch),
                MatmulF16Buffers {
                    a: OperandA::F32(dz),
                    b: self.weight16(l),
                    bias: None,
                    mask: Some(self.input(l, batch)),
                    c: self.output_grad(l - 1, batch),
                    c16: None,
                    dummy,
                },
            )?);
        }
        Ok(out)
    }
}
