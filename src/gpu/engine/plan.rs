//! The step plan: a training step and an evaluation pass as named stages, each a short
//! function that returns its dispatches, in the order they run. The step itself is drawn
//! in the engine's module docs (`super`). The matmul kernels were chosen before building,
//! by the tuning step (`super::tuning`).

use crate::error::Result;
use crate::gpu::kernels::matmul::BatchDim;
use crate::gpu::kernels::softmax_cross_entropy::METRICS_HEADER;
use crate::gpu::kernels::{
    Dispatch, Epilogue, Kernels, MatmulSpec, MatmulVariant, column_sum, gather_normalize, matmul,
    matmul_gather, matmul_sgd, sgd_update, softmax_cross_entropy,
};
use crate::gpu::{Fusions, Gpu, View};
use crate::model::{LayerSlot, Normalization};
use crate::optim::SgdConfig;

mod f16;

use super::buffers::{DeviceDataset, RunBuffers};
use super::tuning::MatmulPlan;

/// What the stages bind: the device, the run's buffers and the chosen matmul kernels.
pub(super) struct Stages<'a> {
    pub gpu: &'a Gpu,
    pub kernels: &'a Kernels,
    pub bufs: &'a RunBuffers,
    pub matmuls: &'a MatmulPlan,
    /// The fusions the step may use where the adapter and shapes allow.
    pub fusions: Fusions,
}

/// `len` floats of `buffer` from float `offset`.
pub(crate) fn view(buffer: &wgpu::Buffer, offset: usize, len: usize) -> View<'_> {
    View {
        buffer,
        offset: offset as u64 * 4,
        len,
    }
}

/// Forward product of layer `s` over `rows` rows: `H [rows, O] = X [rows, I] · Wᵀ`, bias
/// (and ReLU, except on the `last` layer) fused.
pub(crate) fn forward_spec(s: &LayerSlot, rows: usize, last: bool) -> MatmulSpec {
    MatmulSpec {
        m: rows,
        n: s.outputs,
        k: s.inputs,
        trans_a: false,
        trans_b: true,
        trans_c: false,
        epilogue: if last {
            Epilogue::Bias
        } else {
            Epilogue::BiasRelu
        },
        batch_dim: BatchDim::M,
    }
}

/// Weight gradient of layer `s`: `dW [O, I] = dZᵀ · X`, or with `flipped` `(Xᵀ · dZ)ᵀ` (the
/// long I dimension then lies along the rows a workgroup shares); K is the minibatch.
pub(crate) fn weight_grad_spec(s: &LayerSlot, batch: usize, flipped: bool) -> MatmulSpec {
    let plain = MatmulSpec {
        m: s.outputs,
        n: s.inputs,
        k: batch,
        trans_a: true,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::None,
        batch_dim: BatchDim::K,
    };
    if flipped {
        MatmulSpec {
            m: s.inputs,
            n: s.outputs,
            trans_c: true,
            ..plain
        }
    } else {
        plain
    }
}

/// Input gradient below layer `s`: `dH [B, I] = (dZ [B, O] · W [O, I]) ⊙ [H > 0]`.
pub(crate) fn input_grad_spec(s: &LayerSlot, batch: usize) -> MatmulSpec {
    MatmulSpec {
        m: batch,
        n: s.inputs,
        k: s.outputs,
        trans_a: false,
        trans_b: false,
        trans_c: false,
        epilogue: Epilogue::ReluMask,
        batch_dim: BatchDim::M,
    }
}

impl Stages<'_> {
    fn layers(&self) -> &[LayerSlot] {
        &self.bufs.layout.layers
    }

    /// Input of layer `l` (`X` or the previous layer's activations), `rows` rows.
    fn input(&self, l: usize, rows: usize) -> View<'_> {
        let s = &self.layers()[l];
        match l {
            0 => view(&self.bufs.act.x, 0, rows * s.inputs),
            _ => view(&self.bufs.act.hidden[l - 1], 0, rows * s.inputs),
        }
    }

    /// Output of layer `l` (its activations or the logits), `rows` rows.
    fn output(&self, l: usize, rows: usize) -> View<'_> {
        let s = &self.layers()[l];
        match self.bufs.act.hidden.get(l) {
            Some(h) => view(h, 0, rows * s.outputs),
            None => view(&self.bufs.act.logits, 0, rows * s.outputs),
        }
    }

    /// Gradient with respect to layer `l`'s output, `rows` rows.
    fn output_grad(&self, l: usize, rows: usize) -> View<'_> {
        let s = &self.layers()[l];
        match self.bufs.act.dhidden.get(l) {
            Some(d) => view(d, 0, rows * s.outputs),
            None => view(&self.bufs.act.dlogits, 0, rows * s.outputs),
        }
    }

    /// Stage `gather`: X `[rows, I]` = normalised pixels of the samples `order` lists from
    /// position `offset` of the step record on, and their labels y.
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

    /// Whether layer 0's forward over `rows` rows on `variant` reads the pixels itself (the
    /// gather fusion, [`Fusions::gather`]): asked for, and the kernel, shape and adapter
    /// allow it ([`matmul_gather::supports`]). Then [`Self::gather_forward`] replaces both
    /// the `gather` launch and layer 0's `forward` launch.
    pub fn fuses_gather(&self, rows: usize, variant: MatmulVariant) -> bool {
        let spec = forward_spec(&self.layers()[0], rows, self.layers().len() == 1);
        self.fusions.gather && matmul_gather::supports(self.gpu, variant, &spec).is_ok()
    }

    /// Stages `gather` and layer 0's `forward` in one launch (the gather fusion, where
    /// [`Self::fuses_gather`]): layer 0's product over `rows` rows on `variant` reads the
    /// normalised pixels of the samples `order` lists from the step record's `offset` on,
    /// and writes their labels y and (with `write_x`, for the weight gradient) X.
    #[allow(clippy::too_many_arguments)]
    pub fn gather_forward(
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
        matmul_gather::dispatch(
            self.gpu,
            self.kernels,
            variant,
            &format!("{tag}.layer0.forward"),
            forward_spec(s, rows, self.layers().len() == 1),
            matmul_gather::PixelSource {
                pixels: &data.pixels,
                labels: &data.labels,
                order,
                x: self.input(0, rows),
                y: view(&self.bufs.act.y, 0, rows),
                mean: norm.mean,
                std: norm.std,
                write_x,
            },
            view(&self.bufs.params, s.weight, s.outputs * s.inputs),
            view(&self.bufs.params, s.bias, s.outputs),
            self.output(0, rows),
            View::whole(&self.bufs.dummy),
        )
    }

    /// Stage `forward`: one matmul per layer with bias (and ReLU) fused, `rows` rows, with
    /// the kernels `variants` (one per layer), from layer `first` on (1 when
    /// [`Self::gather_forward`] launches layer 0's).
    pub fn forward(
        &self,
        tag: &str,
        rows: usize,
        variants: &[MatmulVariant],
        first: usize,
    ) -> Result<Vec<Dispatch>> {
        self.forward_layers(tag, rows, variants, first, self.layers().len())
    }

    /// Stage `forward` of the training step over minibatches of up to `batch` rows: as
    /// [`Self::forward`], without the output layer's matmul when the `loss` stage computes
    /// the logits ([`Self::fused_output`]), from layer `first` on as [`Self::forward`].
    pub fn train_forward(&self, batch: usize, first: usize) -> Result<Vec<Dispatch>> {
        let n = self.layers().len() - usize::from(self.fused_output(batch));
        self.forward_layers("train", batch, &self.matmuls.forward, first, n)
    }

    /// The forward matmuls of layers `first .. count`.
    fn forward_layers(
        &self,
        tag: &str,
        rows: usize,
        variants: &[MatmulVariant],
        first: usize,
        count: usize,
    ) -> Result<Vec<Dispatch>> {
        let last = self.layers().len() - 1;
        let layers = self.layers().iter().enumerate().take(count).skip(first);
        layers
            .map(|(l, s)| {
                matmul::dispatch(
                    self.gpu,
                    self.kernels,
                    variants[l],
                    &format!("{tag}.layer{l}.forward"),
                    forward_spec(s, rows, l == last),
                    self.input(l, rows),
                    view(&self.bufs.params, s.weight, s.outputs * s.inputs),
                    Some(view(&self.bufs.params, s.bias, s.outputs)),
                    None,
                    self.output(l, rows),
                    View::whole(&self.bufs.dummy),
                )
            })
            .collect()
    }

    /// Whether the training `loss` stage over up to `batch` rows also writes the last
    /// layer's bias gradient (then `backward` has no `column_sum` for it).
    fn fused_bias(&self, batch: usize) -> bool {
        let classes = self.layers()[self.layers().len() - 1].outputs;
        softmax_cross_entropy::fuses_bias(self.gpu, batch, classes)
    }

    /// The last layer's bias gradient in `grads` when the training `loss` stage over `rows`
    /// rows writes it ([`Self::fused_bias`]).
    pub(crate) fn fused_dbias(&self, rows: usize, grad: bool) -> Option<View<'_>> {
        let last = &self.layers()[self.layers().len() - 1];
        (grad && self.fused_bias(rows)).then(|| view(&self.bufs.grads, last.bias, last.outputs))
    }

    /// Whether `backward` of layer `l` over `batch` rows launches `column_sum` for its bias
    /// gradient (all but a last layer whose gradient the loss stage wrote).
    pub(crate) fn bias_grad_launch(&self, l: usize, batch: usize) -> bool {
        l + 1 < self.layers().len() || !self.fused_bias(batch)
    }

    /// Whether the training `loss` stage over minibatches of up to `batch` rows computes the
    /// logits itself (`Fusions::output_layer`; then `forward` has no matmul for the output
    /// layer): only in f32 runs (the f16 plan, `plan::f16`, stays unfused), when its input
    /// is a hidden layer's activations (two layers or more), and the product is small and
    /// fits the loop cap ([`softmax_cross_entropy::fuses_output_layer`]).
    pub(crate) fn fused_output(&self, batch: usize) -> bool {
        let layers = self.layers();
        let last = &layers[layers.len() - 1];
        self.fusions.output_layer
            && self.bufs.f16.is_none()
            && layers.len() >= 2
            && softmax_cross_entropy::fuses_output_layer(
                self.gpu,
                batch,
                last.outputs,
                last.inputs,
                self.fused_bias(batch),
            )
    }

    /// Stage `loss`: softmax cross-entropy of the logits of `rows` rows, the step's sums into
    /// `metrics`; with `grad`, also dlogits `(softmax - onehot) / B`, (when it fits the
    /// loop cap) the last layer's bias gradient `colsum(dlogits)` and (when
    /// [`Self::fused_output`]) the logits themselves from the last hidden activations.
    pub fn loss(
        &self,
        tag: &str,
        rows: usize,
        metrics: &wgpu::Buffer,
        grad: bool,
    ) -> Result<Dispatch> {
        let l = self.layers().len() - 1;
        let last = &self.layers()[l];
        let classes = last.outputs;
        let output =
            (grad && self.fused_output(rows)).then(|| softmax_cross_entropy::OutputLayer {
                hidden: self.input(l, rows),
                params: view(
                    &self.bufs.params,
                    last.weight,
                    last.bias - last.weight + classes,
                ),
                bias_at: last.bias - last.weight,
                width: last.inputs,
            });
        let label = format!("{tag}.softmax_cross_entropy");
        let bufs = softmax_cross_entropy::SoftmaxCrossEntropyBuffers {
            logits: view(&self.bufs.act.logits, 0, rows * classes),
            labels: view(&self.bufs.act.y, 0, rows),
            dlogits: view(&self.bufs.act.dlogits, 0, rows * classes),
            rows: view(&self.bufs.act.rows, 0, rows * 2),
            metrics: View::whole(metrics),
            dbias: self.fused_dbias(rows, grad),
        };
        let (gpu, kernels) = (self.gpu, self.kernels);
        match output {
            Some(o) => softmax_cross_entropy::dispatch_fused_output(
                gpu, kernels, &label, bufs, o, rows, classes, grad,
            ),
            None => {
                softmax_cross_entropy::dispatch(gpu, kernels, &label, bufs, rows, classes, grad)
            }
        }
    }

    /// Whether the training step over minibatches of up to `batch` rows applies the SGD
    /// update inside the weight-gradient products (`Fusions::update`): only when every
    /// layer's product takes the SGD epilogue on this adapter (one chunk of K, the bias
    /// loop under the loop cap: `matmul_sgd::fits`), since the separate `update` stage
    /// updates all parameters at once. Then `backward` has no `column_sum` and the step no
    /// `update` stage.
    pub(crate) fn update_fused(&self, batch: usize) -> bool {
        self.fusions.update
            && (self.matmuls.weight_grad.iter())
                .all(|wg| matmul_sgd::fits(self.gpu, wg.variant, batch))
    }

    /// Stage `backward` of layer `l` for minibatches of up to `batch` rows: weight gradient,
    /// bias gradient and (below the first layer) input gradient through the ReLU. With the
    /// update fused ([`Self::update_fused`]): the input gradient first (it reads `W_l`),
    /// then the weight gradient, which updates `W_l` and `b_l` in place.
    pub fn backward(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        if self.update_fused(batch) {
            return self.backward_update(l, batch);
        }
        let s = &self.layers()[l];
        let dz = self.output_grad(l, batch);
        let input = self.input(l, batch);
        let wg = self.matmuls.weight_grad[l];
        let (lhs, rhs) = if wg.flipped { (input, dz) } else { (dz, input) };
        let mut out = vec![matmul::dispatch(
            self.gpu,
            self.kernels,
            wg.variant,
            &format!("train.layer{l}.weight_grad"),
            weight_grad_spec(s, batch, wg.flipped),
            lhs,
            rhs,
            None,
            None,
            view(&self.bufs.grads, s.weight, s.outputs * s.inputs),
            View::whole(&self.bufs.dummy),
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
        if let Some(variant) = self.matmuls.input_grad[l] {
            out.push(self.input_grad(l, batch, variant)?);
        }
        Ok(out)
    }

    /// The input gradient below layer `l` (`l > 0`) over up to `batch` rows, on `variant`.
    fn input_grad(&self, l: usize, batch: usize, variant: MatmulVariant) -> Result<Dispatch> {
        let s = &self.layers()[l];
        matmul::dispatch(
            self.gpu,
            self.kernels,
            variant,
            &format!("train.layer{l}.input_grad"),
            input_grad_spec(s, batch),
            self.output_grad(l, batch),
            view(&self.bufs.params, s.weight, s.outputs * s.inputs),
            None,
            Some(self.input(l, batch)),
            self.output_grad(l - 1, batch),
            View::whole(&self.bufs.dummy),
        )
    }

    /// `backward` of layer `l` with the update fused: the input gradient (before `W_l`
    /// changes), then the weight-gradient product whose epilogue applies the SGD step to
    /// `W_l` and `b_l` (`matmul_sgd`; the bias gradient summed there from dZ).
    fn backward_update(&self, l: usize, batch: usize) -> Result<Vec<Dispatch>> {
        let s = &self.layers()[l];
        let b = self.bufs;
        let dz = self.output_grad(l, batch);
        let input = self.input(l, batch);
        let wg = self.matmuls.weight_grad[l];
        let (lhs, rhs) = if wg.flipped { (input, dz) } else { (dz, input) };
        let mut out = Vec::new();
        if let Some(variant) = self.matmuls.input_grad[l] {
            out.push(self.input_grad(l, batch, variant)?);
        }
        let len = s.bias + s.outputs - s.weight;
        out.push(matmul_sgd::dispatch(
            self.gpu,
            self.kernels,
            wg.variant,
            &format!("train.layer{l}.weight_grad"),
            MatmulSpec {
                epilogue: Epilogue::SgdUpdate,
                ..weight_grad_spec(s, batch, wg.flipped)
            },
            lhs,
            rhs,
            matmul_sgd::SgdEpilogueBuffers {
                params: view(&b.params, s.weight, len),
                velocity: view(&b.velocity, s.weight, len),
                status: view(&b.train_metrics, 0, METRICS_HEADER),
                record: view(
                    &b.sgd_records,
                    l * b.sgd_record_stride,
                    matmul_sgd::RECORD_WORDS,
                ),
                bias_offset: s.bias - s.weight,
            },
        )?);
        Ok(out)
    }

    /// Stage `update`: SGD over the whole flat parameter buffer (`torch.optim.SGD`
    /// semantics), skipping decay on the no-decay ranges; does nothing after a non-finite
    /// loss flagged in the training metrics' status header.
    pub fn update(&self, sgd: &SgdConfig) -> Result<Dispatch> {
        update_dispatch(self.gpu, self.kernels, self.bufs, sgd)
    }
}

/// The `update` stage's launch for the SGD settings `sgd` ([`Stages::update`]); rebuilt
/// alone when a run's SGD settings change between epochs (`GpuEngine::set_sgd`).
pub(super) fn update_dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    b: &RunBuffers,
    sgd: &SgdConfig,
) -> Result<Dispatch> {
    sgd_update::dispatch(
        gpu,
        kernels,
        "sgd_update",
        sgd_update::SgdUpdateBuffers {
            params: View::whole(&b.params),
            grads: View::whole(&b.grads),
            velocity: View::whole(&b.velocity),
            no_decay: View::whole(&b.no_decay),
            status: view(&b.train_metrics, 0, METRICS_HEADER),
        },
        b.layout.len,
        if sgd.decay_bias {
            0
        } else {
            b.layout.layers.len()
        },
        sgd,
    )
}
