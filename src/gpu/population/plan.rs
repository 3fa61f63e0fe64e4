//! The population's step plan: the single engine's stages (`crate::gpu::engine::plan`,
//! whose matmul shapes it reuses) with the member axis in every launch. Each launch binds
//! every member's operands and carries their strides, so a step is as many dispatches for
//! K members as for one.

use crate::error::Result;
use crate::gpu::engine::buffers::DeviceDataset;
use crate::gpu::engine::plan::{forward_spec, input_grad_spec, view, weight_grad_spec};
use crate::gpu::engine::tuning::MatmulPlan;
use crate::gpu::kernels::matmul::{BatchDim, MatmulMembers};
use crate::gpu::kernels::sgd_update::SgdMembers;
use crate::gpu::kernels::softmax_cross_entropy::LossMembers;
use crate::gpu::kernels::{
    Dispatch, Kernels, MatmulVariant, column_sum, gather_normalize, matmul, sgd_update,
    softmax_cross_entropy,
};
use crate::gpu::{Gpu, View};
use crate::model::{LayerSlot, Normalization};

use super::buffers::{PopBuffers, Stacked};

/// What the stages bind: the device, the population's buffers and the chosen kernels.
pub(super) struct Stages<'a> {
    pub gpu: &'a Gpu,
    pub kernels: &'a Kernels,
    pub bufs: &'a PopBuffers,
    pub matmuls: &'a MatmulPlan,
}

/// A member-stacked operand: the view from float `offset` of `buffer` to its end, and the
/// stride between members (0: shared).
#[derive(Clone, Copy)]
struct Operand<'a> {
    view: View<'a>,
    stride: usize,
}

fn rest(buffer: &wgpu::Buffer, offset: usize) -> View<'_> {
    view(buffer, offset, (buffer.size() / 4) as usize - offset)
}

fn stacked(s: &Stacked, offset: usize) -> Operand<'_> {
    Operand {
        view: rest(&s.buffer, offset),
        stride: s.stride,
    }
}

impl Stages<'_> {
    fn layers(&self) -> &[LayerSlot] {
        &self.bufs.layout.layers
    }

    fn members(&self) -> usize {
        self.bufs.members
    }

    /// Input of layer `l`: the shared X, or every member's previous activations.
    fn input(&self, l: usize) -> Operand<'_> {
        match l {
            0 => Operand {
                view: View::whole(&self.bufs.act.x),
                stride: 0,
            },
            _ => stacked(&self.bufs.act.hidden[l - 1], 0),
        }
    }

    /// Output of layer `l` (activations or logits), every member.
    fn output(&self, l: usize) -> Operand<'_> {
        match self.bufs.act.hidden.get(l) {
            Some(h) => stacked(h, 0),
            None => stacked(&self.bufs.act.logits, 0),
        }
    }

    /// Gradient with respect to layer `l`'s output, every member.
    fn output_grad(&self, l: usize) -> Operand<'_> {
        match self.bufs.act.dhidden.get(l) {
            Some(d) => stacked(d, 0),
            None => stacked(&self.bufs.act.dlogits, 0),
        }
    }

    fn matmul(
        &self,
        variant: MatmulVariant,
        label: &str,
        spec: matmul::MatmulSpec,
        [a, b, c]: [Operand<'_>; 3],
        bias: Option<Operand<'_>>,
        mask: Option<Operand<'_>>,
    ) -> Result<Dispatch> {
        let members = MatmulMembers {
            count: self.members(),
            a: a.stride,
            b: b.stride,
            bias: bias.map_or(0, |o| o.stride),
            mask: mask.map_or(0, |o| o.stride),
            c: c.stride,
        };
        matmul::dispatch_members(
            self.gpu,
            self.kernels,
            variant,
            label,
            spec,
            members,
            [a.view, b.view, c.view, View::whole(&self.bufs.dummy)],
            bias.map(|o| o.view),
            mask.map(|o| o.view),
        )
    }

    /// Stage `gather`: the shared X `[rows, I]` and labels, once for all members.
    pub fn gather(
        &self,
        tag: &str,
        data: &DeviceDataset,
        order: &wgpu::Buffer,
        rows: usize,
        norm: Normalization,
    ) -> Result<Dispatch> {
        gather_normalize::dispatch(
            self.gpu,
            self.kernels,
            &format!("{tag}.gather_normalize"),
            gather_normalize::GatherNormalizeBuffers {
                pixels: &data.pixels,
                labels: &data.labels,
                order,
                x: &self.bufs.act.x,
                y: &self.bufs.act.y,
            },
            self.layers()[0].inputs,
            rows,
            norm.mean,
            norm.std,
        )
    }

    /// Stage `forward`: one matmul per layer for every member, bias (and ReLU) fused.
    pub fn forward(
        &self,
        tag: &str,
        rows: usize,
        variants: &[MatmulVariant],
    ) -> Result<Vec<Dispatch>> {
        let last = self.layers().len() - 1;
        let params = &self.bufs.params;
        self.layers()
            .iter()
            .enumerate()
            .map(|(l, s)| {
                self.matmul(
                    variants[l],
                    &format!("{tag}.layer{l}.forward"),
                    forward_spec(s, rows, l == last),
                    [self.input(l), stacked(params, s.weight), self.output(l)],
                    Some(stacked(params, s.bias)),
                    None,
                )
            })
            .collect()
    }

    /// Whether the training `loss` stage over up to `batch` rows also writes every member's
    /// last-layer bias gradient (then `backward` has no `column_sum` for it), as in the
    /// single engine.
    fn fused_bias(&self, batch: usize) -> bool {
        let classes = self.layers()[self.layers().len() - 1].outputs;
        softmax_cross_entropy::fuses_bias(self.gpu, batch, classes)
    }

    /// Stage `loss`: every member's softmax cross-entropy (one workgroup each) into its
    /// block of `metrics`; with `grad`, also its dlogits and (when it fits the loop cap) its
    /// last layer's bias gradient `colsum(dlogits)`.
    pub fn loss(&self, tag: &str, rows: usize, metrics: &Stacked, grad: bool) -> Result<Dispatch> {
        let last = &self.layers()[self.layers().len() - 1];
        let classes = last.outputs;
        let act = &self.bufs.act;
        softmax_cross_entropy::dispatch_members(
            self.gpu,
            self.kernels,
            &format!("{tag}.softmax_cross_entropy"),
            softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
                logits: View::whole(&act.logits.buffer),
                labels: view(&act.y, 0, rows),
                dlogits: View::whole(&act.dlogits.buffer),
                rows: View::whole(&act.rows.buffer),
                metrics: View::whole(&metrics.buffer),
                dbias: (grad && self.fused_bias(rows))
                    .then(|| stacked(&self.bufs.grads, last.bias).view),
            },
            rows,
            classes,
            grad,
            LossMembers {
                count: self.members(),
                logits: act.logits.stride,
                rows: act.rows.stride,
                metrics: metrics.stride,
                bias: self.bufs.grads.stride,
            },
        )
    }

    /// Stage `backward` of layer `l` for every member: weight gradient, bias gradient and
    /// (below the first layer) input gradient through the ReLU.
    pub fn backward(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        let s = &self.layers()[l];
        let (params, grads) = (&self.bufs.params, &self.bufs.grads);
        let dz = self.output_grad(l);
        let input = self.input(l);
        let wg = self.matmuls.weight_grad[l];
        let (lhs, rhs) = if wg.flipped { (input, dz) } else { (dz, input) };
        let mut out = vec![self.matmul(
            wg.variant,
            &format!("train.layer{l}.weight_grad"),
            weight_grad_spec(s, batch, wg.flipped),
            [lhs, rhs, stacked(grads, s.weight)],
            None,
            None,
        )?];
        let db = stacked(grads, s.bias);
        if l + 1 < self.layers().len() || !self.fused_bias(batch) {
            out.push(column_sum::dispatch_members(
                self.gpu,
                self.kernels,
                &format!("train.layer{l}.bias_grad"),
                batch,
                s.outputs,
                BatchDim::M,
                (self.members(), dz.stride, db.stride),
                dz.view,
                db.view,
            )?);
        }
        if let Some(variant) = self.matmuls.input_grad[l] {
            out.push(self.matmul(
                variant,
                &format!("train.layer{l}.input_grad"),
                input_grad_spec(s, batch),
                [dz, stacked(params, s.weight), self.output_grad(l - 1)],
                None,
                Some(input),
            )?);
        }
        Ok(out)
    }

    /// Stage `update`: every member's SGD in one launch, with its own settings and step
    /// from the SGD table; a frozen member, or one whose status header is set, is skipped.
    pub fn update(&self) -> Result<Dispatch> {
        let b = self.bufs;
        sgd_update::dispatch_members(
            self.gpu,
            self.kernels,
            "sgd_update",
            sgd_update::SgdUpdateBuffers {
                params: View::whole(&b.params.buffer),
                grads: View::whole(&b.grads.buffer),
                velocity: View::whole(&b.velocity.buffer),
                no_decay: View::whole(&b.table),
                status: View::whole(&b.train_metrics.buffer),
            },
            b.layout.len,
            b.ranges,
            SgdMembers {
                count: b.members,
                stride: b.params.stride,
                hyper_offset: b.hyper_offset,
                steps_offset: b.steps_offset,
                stride_status: b.train_metrics.stride,
            },
        )
    }
}
