//! The stages of a step: a training step and an evaluation pass as named stages, each a
//! short function that returns its dispatches, in the order they run, built as the step
//! plan ([`StepPlan`]) decided. Every launch binds every member's operands and carries
//! their strides (0 for the shared X and labels), so a step is as many dispatches for K
//! members as for one. The f16 stages are in [`f16`].

mod f16;

use crate::config::Precision;
use crate::error::Result;
use crate::gpu::kernels::matmul::{
    self, EpilogueOperands, MatmulLaunch, MatmulMembers, MatmulSpec, OperandA, PixelSource,
    SgdOperands,
};
use crate::gpu::kernels::softmax_cross_entropy::{LossMembers, OutputLayer};
use crate::gpu::kernels::{
    Dispatch, Epilogue, Kernels, MatmulVariant, column_sum, gather_normalize, sgd_update,
    softmax_cross_entropy,
};
use crate::gpu::{Gpu, View};
use crate::model::{LayerSlot, Normalization};

use super::buffers::{DeviceDataset, RunBuffers, Stacked};
use super::plan::StepPlan;
use super::products::{forward_spec, input_grad_spec, weight_grad_spec};

/// What the stages bind: the device, the engine's buffers and the step plan.
pub(super) struct Stages<'a> {
    pub gpu: &'a Gpu,
    pub kernels: &'a Kernels,
    pub bufs: &'a RunBuffers,
    pub plan: &'a StepPlan,
}

/// A member-stacked operand: the view from float `offset` of its buffer to the end, and
/// the floats between members (0: shared).
#[derive(Clone, Copy)]
struct Operand<'a> {
    view: View<'a>,
    stride: usize,
}

/// `len` floats of `buffer` from float `offset`.
pub(crate) fn view(buffer: &wgpu::Buffer, offset: usize, len: usize) -> View<'_> {
    View {
        buffer,
        offset: offset as u64 * 4,
        len,
    }
}

/// `buffer` from float `offset` to its end.
fn rest(buffer: &wgpu::Buffer, offset: usize) -> View<'_> {
    view(buffer, offset, (buffer.size() / 4) as usize - offset)
}

/// Every member's tensor `s` from float `offset` of each member's block.
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

    fn dummy(&self) -> View<'_> {
        View::whole(&self.bufs.dummy)
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

    /// One matmul launch of `spec` on `variant` for every member: A, B and C with their
    /// strides, and the epilogue's operand (bias or mask) with its stride.
    fn matmul(
        &self,
        variant: MatmulVariant,
        label: &str,
        spec: MatmulSpec,
        [a, b, c]: [Operand<'_>; 3],
        extra: Option<Operand<'_>>,
    ) -> Result<Dispatch> {
        let stride = extra.map_or(0, |o| o.stride);
        let (epilogue, bias, mask) = match (spec.epilogue, extra) {
            (Epilogue::Bias | Epilogue::BiasRelu, Some(o)) => {
                (EpilogueOperands::Bias(o.view), stride, 0)
            }
            (Epilogue::ReluMask, Some(o)) => (EpilogueOperands::Mask(o.view), 0, stride),
            _ => (EpilogueOperands::None, 0, 0),
        };
        let members = MatmulMembers {
            count: self.members(),
            a: a.stride,
            b: b.stride,
            bias,
            mask,
            c: c.stride,
        };
        let launch = MatmulLaunch::new(spec, a.view, b.view, c.view, self.dummy())
            .with_members(members)
            .with_epilogue(epilogue);
        matmul::dispatch(self.gpu, self.kernels, variant, label, launch)
    }

    /// The whole training step over minibatches of up to `batch` rows, stage by stage, as
    /// the plan says (the f16 plan: [`f16`]).
    pub fn train_step(&self, norm: Normalization) -> Result<Vec<Dispatch>> {
        if self.plan.precision == Precision::F16 {
            return self.train_step_f16(norm);
        }
        let (b, bufs) = (self.bufs.batch, self.bufs);
        let (train, order) = (&bufs.train, &bufs.order);
        let mut step = vec![if self.plan.gather {
            let variant = self.plan.matmuls.forward[0];
            self.gather_forward("train", train, order, b, norm, variant, true)?
        } else {
            self.gather("train", train, order, b, norm)?
        }];
        let first = usize::from(self.plan.gather);
        let count = self.layers().len() - usize::from(self.plan.output_in_loss);
        let variants = &self.plan.matmuls.forward;
        step.extend(self.forward_layers("train", b, variants, first, count)?);
        step.push(self.loss("train", b, &bufs.train_metrics, true)?);
        for l in (0..self.layers().len()).rev() {
            step.extend(if self.plan.update_in_matmul {
                self.backward_update(l, b)?
            } else {
                self.backward(l, b)?
            });
        }
        if !self.plan.update_in_matmul {
            step.push(self.update()?);
        }
        Ok(step)
    }

    /// The evaluation forward launches shared by the held-out sets, over `eval_rows`
    /// rows: every layer's product, from layer 1 when the sets' first launch is layer 0's
    /// product reading pixels ([`Stages::eval_first`]); f16 converts X first.
    pub fn eval_forward(&self) -> Result<Vec<Dispatch>> {
        let rows = self.bufs.eval_rows;
        if self.plan.precision == Precision::F16 {
            let mut v = vec![self.convert_inputs("eval", rows)?];
            v.extend(self.forward_f16("eval", rows)?);
            return Ok(v);
        }
        let first = usize::from(self.plan.eval_gather);
        let variants = &self.plan.matmuls.eval_forward;
        self.forward_layers("eval", rows, variants, first, self.layers().len())
    }

    /// The first launch of evaluating a held-out set: its `gather`, or (the gather
    /// prologue, as planned) layer 0's product reading its pixels without storing X.
    pub fn eval_first(
        &self,
        name: &str,
        data: &DeviceDataset,
        order: &wgpu::Buffer,
        norm: Normalization,
    ) -> Result<Dispatch> {
        let rows = self.bufs.eval_rows;
        if self.plan.eval_gather {
            let variant = self.plan.matmuls.eval_forward[0];
            self.gather_forward(name, data, order, rows, norm, variant, false)
        } else {
            self.gather(name, data, order, rows, norm)
        }
    }

    /// Stage `gather`: the shared X `[rows, I]` = normalised pixels of the samples `order`
    /// lists from position `offset` of the step record on, and their labels y.
    fn gather(
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

    /// Stages `gather` and layer 0's `forward` in one launch (the gather prologue): every
    /// member's layer 0 product over `rows` rows on `variant` reads the normalised pixels
    /// of the samples `order` lists from the step record's `offset` on, and member 0's
    /// first column block writes their labels y and (with `write_x`, for the weight
    /// gradient) X.
    #[allow(clippy::too_many_arguments)]
    fn gather_forward(
        &self,
        tag: &str,
        data: &DeviceDataset,
        order: &wgpu::Buffer,
        rows: usize,
        norm: Normalization,
        variant: MatmulVariant,
        write_x: bool,
    ) -> Result<Dispatch> {
        let s = &self.layers()[0];
        let params = &self.bufs.params;
        let (out, bias) = (self.output(0), stacked(params, s.bias));
        let members = MatmulMembers {
            count: self.members(),
            a: 0,
            b: params.stride,
            bias: bias.stride,
            mask: 0,
            c: out.stride,
        };
        let launch = MatmulLaunch {
            spec: forward_spec(s, rows, self.layers().len() == 1),
            members,
            a: OperandA::Pixels(PixelSource {
                pixels: &data.pixels,
                labels: &data.labels,
                order,
                x: view(&self.bufs.act.x, 0, rows * s.inputs),
                y: view(&self.bufs.act.y, 0, rows),
                mean: norm.mean,
                std: norm.std,
                write_x,
            }),
            b: stacked(params, s.weight).view,
            c: out.view,
            epilogue: EpilogueOperands::Bias(bias.view),
            dummy: self.dummy(),
        };
        let label = format!("{tag}.layer0.forward");
        matmul::dispatch(self.gpu, self.kernels, variant, &label, launch)
    }

    /// The forward matmuls of layers `first .. count` over `rows` rows with the kernels
    /// `variants` (one per layer), bias (and ReLU) fused.
    fn forward_layers(
        &self,
        tag: &str,
        rows: usize,
        variants: &[MatmulVariant],
        first: usize,
        count: usize,
    ) -> Result<Vec<Dispatch>> {
        let last = self.layers().len() - 1;
        let params = &self.bufs.params;
        let layers = self.layers().iter().enumerate().take(count).skip(first);
        layers
            .map(|(l, s)| {
                self.matmul(
                    variants[l],
                    &format!("{tag}.layer{l}.forward"),
                    forward_spec(s, rows, l == last),
                    [self.input(l), stacked(params, s.weight), self.output(l)],
                    Some(stacked(params, s.bias)),
                )
            })
            .collect()
    }

    /// Stage `loss`: every member's softmax cross-entropy (one workgroup each) of `rows`
    /// rows, the step's sums into its block of `metrics`; with `grad`, also dlogits
    /// `(softmax - onehot) / B`, the last layer's bias gradient `colsum(dlogits)` and the
    /// logits themselves from the last hidden activations, as the plan says.
    pub fn loss(&self, tag: &str, rows: usize, metrics: &Stacked, grad: bool) -> Result<Dispatch> {
        let l = self.layers().len() - 1;
        let last = &self.layers()[l];
        let classes = last.outputs;
        let act = &self.bufs.act;
        let params = &self.bufs.params;
        let output = (grad && self.plan.output_in_loss).then(|| {
            let hidden = self.input(l);
            OutputLayer {
                hidden: hidden.view,
                stride_hidden: hidden.stride,
                params: rest(&params.buffer, last.weight),
                stride_params: params.stride,
                bias_at: last.bias - last.weight,
                width: last.inputs,
            }
        });
        let dbias = grad && self.plan.bias_in_loss;
        softmax_cross_entropy::dispatch(
            self.gpu,
            self.kernels,
            &format!("{tag}.softmax_cross_entropy"),
            softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
                logits: View::whole(&act.logits.buffer),
                labels: view(&act.y, 0, rows),
                dlogits: View::whole(&act.dlogits.buffer),
                rows: View::whole(&act.rows.buffer),
                metrics: View::whole(&metrics.buffer),
                dbias: dbias.then(|| stacked(&self.bufs.grads, last.bias).view),
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
            output,
        )
    }

    /// Whether `backward` of layer `l` launches `column_sum` for its bias gradient: all but
    /// a last layer whose gradient the loss stage wrote.
    fn bias_grad_launch(&self, l: usize) -> bool {
        l + 1 < self.layers().len() || !self.plan.bias_in_loss
    }

    /// The bias gradient of layer `l` for every member: `db = colsum(dZ)`.
    fn bias_grad(&self, l: usize, batch: usize) -> Result<Dispatch> {
        let s = &self.layers()[l];
        let (dz, db) = (self.output_grad(l), stacked(&self.bufs.grads, s.bias));
        column_sum::dispatch(
            self.gpu,
            self.kernels,
            &format!("train.layer{l}.bias_grad"),
            batch,
            s.outputs,
            matmul::BatchDim::M,
            (self.members(), dz.stride, db.stride),
            dz.view,
            db.view,
        )
    }

    /// Stage `backward` of layer `l` for every member, minibatches of up to `batch` rows:
    /// weight gradient, bias gradient and (below the first layer) input gradient through
    /// the ReLU.
    fn backward(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        let s = &self.layers()[l];
        let dz = self.output_grad(l);
        let input = self.input(l);
        let wg = self.plan.matmuls.weight_grad[l];
        let (lhs, rhs) = if wg.flipped { (input, dz) } else { (dz, input) };
        let mut out = vec![self.matmul(
            wg.variant,
            &format!("train.layer{l}.weight_grad"),
            weight_grad_spec(s, batch, wg.flipped),
            [lhs, rhs, stacked(&self.bufs.grads, s.weight)],
            None,
        )?];
        if self.bias_grad_launch(l) {
            out.push(self.bias_grad(l, batch)?);
        }
        if let Some(variant) = self.plan.matmuls.input_grad[l] {
            out.push(self.input_grad(l, batch, variant)?);
        }
        Ok(out)
    }

    /// The input gradient below layer `l` (`l > 0`) over up to `batch` rows, on `variant`.
    fn input_grad(&self, l: usize, batch: usize, variant: MatmulVariant) -> Result<Dispatch> {
        let s = &self.layers()[l];
        self.matmul(
            variant,
            &format!("train.layer{l}.input_grad"),
            input_grad_spec(s, batch),
            [
                self.output_grad(l),
                stacked(&self.bufs.params, s.weight),
                self.output_grad(l - 1),
            ],
            Some(self.input(l)),
        )
    }

    /// `backward` of layer `l` with the update in the weight-gradient product: the input
    /// gradient (before `W_l` changes), then the weight-gradient product whose epilogue
    /// applies each member's SGD step to its `W_l` and `b_l` (`matmul::sgd`; the bias
    /// gradient summed there from dZ).
    fn backward_update(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        let s = &self.layers()[l];
        let b = self.bufs;
        let dz = self.output_grad(l);
        let input = self.input(l);
        let wg = self.plan.matmuls.weight_grad[l];
        let (lhs, rhs) = if wg.flipped { (input, dz) } else { (dz, input) };
        let mut out = Vec::new();
        if let Some(variant) = self.plan.matmuls.input_grad[l] {
            out.push(self.input_grad(l, batch, variant)?);
        }
        let members = MatmulMembers {
            count: self.members(),
            a: lhs.stride,
            b: rhs.stride,
            bias: 0,
            mask: 0,
            c: b.params.stride,
        };
        let launch = MatmulLaunch {
            spec: MatmulSpec {
                epilogue: Epilogue::SgdUpdate,
                ..weight_grad_spec(s, batch, wg.flipped)
            },
            members,
            a: OperandA::Values(lhs.view),
            b: rhs.view,
            c: rest(&b.params.buffer, s.weight),
            epilogue: EpilogueOperands::Sgd(SgdOperands {
                status: View::whole(&b.train_metrics.buffer),
                status_stride: b.train_metrics.stride,
                table: View::whole(&b.table),
                hyper_offset: b.sgd.hyper_offset,
                steps_offset: b.sgd.steps_offset,
                velocity: rest(&b.velocity.buffer, s.weight),
                sum_offset: b.sum_offset(),
                bias_offset: s.bias - s.weight,
            }),
            dummy: self.dummy(),
        };
        let label = format!("train.layer{l}.weight_grad");
        out.push(matmul::dispatch(
            self.gpu,
            self.kernels,
            wg.variant,
            &label,
            launch,
        )?);
        Ok(out)
    }

    /// Stage `update`: every member's SGD over its whole flat parameter buffer
    /// (`torch.optim.SGD` semantics) with its settings, learning rate and flags from the
    /// SGD table; a frozen member, or one whose status header is set, is skipped.
    fn update(&self) -> Result<Dispatch> {
        let b = self.bufs;
        sgd_update::dispatch(
            self.gpu,
            self.kernels,
            "sgd_update",
            sgd_update::SgdUpdateBuffers {
                params: View::whole(&b.params.buffer),
                grads: View::whole(&b.grads.buffer),
                velocity: View::whole(&b.velocity.buffer),
                table: View::whole(&b.table),
                status: View::whole(&b.train_metrics.buffer),
            },
            (b.layout.len, b.params.stride),
            &b.sgd,
            b.train_metrics.stride,
        )
    }
}
