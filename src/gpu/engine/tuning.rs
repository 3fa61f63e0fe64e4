//! The tuning step of the GPU engine: before any launch is built, decide which matmul
//! variant each matmul of the step plan runs, and which orientation each weight gradient
//! takes. With [`MatmulChoice::Auto`] this times the adapter's candidates on the real shapes
//! ([`crate::gpu::autotune`]); with a fixed choice it only checks what the adapter supports.

use crate::error::Result;
use crate::gpu::autotune::{MatmulChoice, rank_variants};
use crate::gpu::kernels::{MatmulSpec, MatmulVariant};
use crate::gpu::{Gpu, Kernels};
use crate::model::LayerSlot;

use super::products;

/// A weight gradient's kernel and orientation.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WeightGradKernel {
    pub variant: MatmulVariant,
    /// Computed as `(Xᵀ · dZ)ᵀ` (`TRANS_C`) rather than `dZᵀ · X`.
    pub flipped: bool,
}

/// The matmul kernels of one run, per layer: what [`tune`] decided. Empty (`Default`) for
/// `--precision f16` runs, whose products all run `matmul_f16`.
#[derive(Clone, Debug, Default)]
pub(crate) struct MatmulPlan {
    /// Forward product of the training step, per layer.
    pub forward: Vec<MatmulVariant>,
    /// Forward product of evaluation (more rows), per layer.
    pub eval_forward: Vec<MatmulVariant>,
    /// Weight gradient, per layer.
    pub weight_grad: Vec<WeightGradKernel>,
    /// Input gradient, per layer (`None` for layer 0, which has none).
    pub input_grad: Vec<Option<MatmulVariant>>,
}

/// Chooses every matmul kernel of a run of minibatches of `batch` rows, evaluated
/// `eval_rows` at a time.
///
/// # Errors
/// Device errors while timing; a shape over the adapter's limits.
pub(crate) fn tune(
    gpu: &Gpu,
    kernels: &Kernels,
    choice: MatmulChoice,
    layers: &[LayerSlot],
    batch: usize,
    eval_rows: usize,
) -> Result<MatmulPlan> {
    let last = layers.len() - 1;
    let resolve = |spec: MatmulSpec| choice.resolve(gpu, kernels, &spec);
    let forward = |rows: usize| -> Result<Vec<MatmulVariant>> {
        let specs = layers.iter().enumerate();
        specs
            .map(|(l, s)| resolve(products::forward_spec(s, rows, l == last)))
            .collect()
    };
    let weight_grad = layers
        .iter()
        .map(|s| {
            let plain = products::weight_grad_spec(s, batch, false);
            let flipped = products::weight_grad_spec(s, batch, true);
            let flipped = faster_orientation(gpu, kernels, choice, &plain, &flipped)?;
            let variant = resolve(products::weight_grad_spec(s, batch, flipped))?;
            Ok(WeightGradKernel { variant, flipped })
        })
        .collect::<Result<_>>()?;
    let input_grad = layers
        .iter()
        .enumerate()
        .map(|(l, s)| {
            (l > 0)
                .then(|| resolve(products::input_grad_spec(s, batch)))
                .transpose()
        })
        .collect::<Result<_>>()?;
    Ok(MatmulPlan {
        forward: forward(batch)?,
        eval_forward: forward(eval_rows)?,
        weight_grad,
        input_grad,
    })
}

/// True when `flipped` (the same product with C transposed) is measured faster than
/// `plain`; always false for a fixed variant.
fn faster_orientation(
    gpu: &Gpu,
    kernels: &Kernels,
    choice: MatmulChoice,
    plain: &MatmulSpec,
    flipped: &MatmulSpec,
) -> Result<bool> {
    if choice != MatmulChoice::Auto {
        return Ok(false);
    }
    let best = |s: &MatmulSpec| rank_variants(gpu, kernels, s).map(|r| r[0].ms);
    Ok(best(flipped)? < best(plain)?)
}
