//! The products of an MLP's training step as matmul shapes: the forward product of each
//! layer, its weight gradient (in either orientation) and its input gradient. Read by the
//! tuning step (which kernel runs each product) and by the stages (which launch it).

use crate::gpu::kernels::matmul::{BatchDim, Epilogue, MatmulSpec};
use crate::model::LayerSlot;

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
