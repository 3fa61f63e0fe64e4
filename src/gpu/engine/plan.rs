//! The step plan: every decision about a run's step, made once as data before any launch is
//! built — the precision, the matmul kernel of every product (the tuning step,
//! [`super::tuning`]) and which fusions apply. The stages ([`super::stages`]) read it and
//! never ask again whether a fusion fits.
//!
//! Each fusion applies only where it was asked for ([`Fusions`]) and the kernel, the shape
//! and the adapter's limits allow it; otherwise the step keeps the separate launches. They
//! do not depend on the member count: K members run the dispatches of one.

use crate::config::Precision;
use crate::error::Result;
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::kernels::matmul::{gather, sgd};
use crate::gpu::kernels::softmax_cross_entropy;
use crate::gpu::{Fusions, Gpu, Kernels};
use crate::model::LayerSlot;

use super::products::forward_spec;
use super::tuning::{self, MatmulPlan};

/// What a run's step is: see the module docs.
#[derive(Clone, Debug)]
pub(crate) struct StepPlan {
    /// f32 everywhere, or f16 matmul operands ([`super::stages`]' f16 stages).
    pub precision: Precision,
    /// The matmul kernel of every f32 product (empty for f16: every product runs
    /// `matmul_f16`).
    pub matmuls: MatmulPlan,
    /// Training: layer 0's forward product reads the minibatch's pixels (the gather
    /// prologue) and no `gather_normalize` launch runs.
    pub gather: bool,
    /// Evaluation: likewise, over the evaluation minibatch.
    pub eval_gather: bool,
    /// The training loss launch computes the output layer's logits itself (no forward
    /// matmul for the last layer).
    pub output_in_loss: bool,
    /// The training loss launch sums the last layer's bias gradient (no `column_sum` for
    /// it).
    pub bias_in_loss: bool,
    /// The weight-gradient products apply the SGD update in their epilogue: no
    /// `column_sum` and no `sgd_update` launch.
    pub update_in_matmul: bool,
}

impl StepPlan {
    /// Decides the step of a run of `layers` at minibatches of up to `batch` rows,
    /// evaluated `eval_rows` at a time, in `precision`, with the fusions `fusions` allows:
    /// first every matmul kernel (`choice`: autotuned or fixed), then each fusion.
    ///
    /// # Errors
    /// As [`tuning::tune`]: device errors while timing, a shape over the adapter's limits.
    #[allow(clippy::too_many_arguments)]
    pub fn decide(
        gpu: &Gpu,
        kernels: &Kernels,
        choice: MatmulChoice,
        fusions: Fusions,
        layers: &[LayerSlot],
        batch: usize,
        eval_rows: usize,
        precision: Precision,
    ) -> Result<StepPlan> {
        let last = &layers[layers.len() - 1];
        let bias_in_loss = softmax_cross_entropy::fuses_bias(gpu, batch, last.outputs);
        if precision == Precision::F16 {
            // One matmul kernel, nothing to tune; the f16 step keeps its separate launches.
            return Ok(StepPlan {
                precision,
                matmuls: MatmulPlan::default(),
                gather: false,
                eval_gather: false,
                output_in_loss: false,
                bias_in_loss,
                update_in_matmul: false,
            });
        }
        let matmuls = tuning::tune(gpu, kernels, choice, layers, batch, eval_rows)?;
        let reads_pixels = |rows: usize, variant| {
            let spec = forward_spec(&layers[0], rows, layers.len() == 1);
            fusions.gather && gather::supports(gpu, variant, &spec).is_ok()
        };
        let output_in_loss = fusions.output_layer
            && layers.len() >= 2
            && softmax_cross_entropy::fuses_output_layer(
                gpu,
                batch,
                last.outputs,
                last.inputs,
                bias_in_loss,
            );
        let update_in_matmul = fusions.update
            && (matmuls.weight_grad.iter()).all(|wg| sgd::fits(gpu, wg.variant, batch));
        Ok(StepPlan {
            precision,
            gather: reads_pixels(batch, matmuls.forward[0]),
            eval_gather: reads_pixels(eval_rows, matmuls.eval_forward[0]),
            output_in_loss,
            bias_in_loss,
            update_in_matmul,
            matmuls,
        })
    }
}
