//! The SGD-update epilogue of the matmul kernels ([`Epilogue::SgdUpdate`], EPILOGUE 4 in
//! `shaders/matmul_common.wgsl`): a layer's weight-gradient product `dW [O, I] = dZᵀ · X`
//! (or its transpose, `(Xᵀ · dZ)ᵀ`) applies one `torch.optim.SGD` step to the layer's
//! weights and bias in place, instead of storing dW for a `column_sum` (bias gradient) and
//! an `sgd_update` launch.
//!
//! Each invocation that finishes `dW[o, i]` runs `sgd_step` (`shaders/sgd_step.wgsl`, the
//! arithmetic `sgd_update` runs too) on `W[o, i]` and its momentum; the one that finishes
//! `dW[o, 0]` also sums `db[o] = Σ_r dZ[r, o]` over the minibatch, rows in order
//! (`column_sum`'s additions) and updates `b[o]`. So the fused step gives the bits of the
//! unfused one. The product must be one chunk of K, and the bias loop must fit the loop
//! cap too ([`fits`]).
//!
//! Bindings (the matmul bind group, [`super::matmul::BINDINGS`]): 1 A, 2 B (one of them
//! dZ stored `[B, O]`: A, or B with `trans_c`), 3 the training metrics' status header
//! `[1..]`, 4 the layer's SGD record `[8]` ([`record`]), 5 the layer's parameters from its
//! weight to the end of its bias (read-write), 6 the momentum buffer over the same range.

use super::matmul::{self, Epilogue, MatmulMembers, MatmulSpec, MatmulVariant};
use super::{Dispatch, Kernels};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};
use crate::optim::SgdConfig;

/// Words of the SGD record ([`record`]).
pub const RECORD_WORDS: usize = 8;

/// The SGD record of a layer whose bias starts `bias_offset` floats after its weight: the
/// words `SGD_*` of `shaders/matmul_common.wgsl` (weight decay of the weights and of the
/// bias, momentum, dampening as f32 bits; nesterov, decoupled decay, `bias_offset`; one
/// unused). The bias is not decayed without `decay_bias` (`sgd_update`'s no-decay ranges).
pub fn record(cfg: &SgdConfig, bias_offset: usize) -> [u32; RECORD_WORDS] {
    let wd = cfg.weight_decay as f32;
    [
        wd.to_bits(),
        if cfg.decay_bias { wd } else { 0.0 }.to_bits(),
        (cfg.momentum as f32).to_bits(),
        (cfg.dampening as f32).to_bits(),
        u32::from(cfg.nesterov),
        u32::from(cfg.decoupled_weight_decay),
        bias_offset as u32,
        0,
    ]
}

/// Loop passes one invocation of `variant` runs for the fused update over a minibatch of
/// `k` rows: the product's ([`MatmulVariant::loop_passes`]), the bias loop's `k + 1`, and
/// 5 for the subgroup kernel's four-bias store loop (its SGD stores run no more loops than
/// the plain ones).
pub fn loop_passes(variant: MatmulVariant, k: usize) -> u64 {
    variant.loop_passes(k as u64) + k as u64 + 6
}

/// Whether the weight-gradient product of `variant` over a minibatch of up to `k` rows can
/// take the SGD epilogue on `gpu`: K is one chunk and the bias loop fits the loop cap too
/// ([`Gpu::loop_cap`]).
pub fn fits(gpu: &Gpu, variant: MatmulVariant, k: usize) -> bool {
    gpu.loop_cap
        .is_none_or(|cap| loop_passes(variant, k) <= cap)
}

/// The buffers of one fused update besides the operands.
pub struct SgdEpilogueBuffers<'a> {
    /// The layer's parameters from its weight `[O, I]` to the end of its bias `[O]`.
    pub params: View<'a>,
    /// The momentum buffer over the same range.
    pub velocity: View<'a>,
    /// The training metrics' status header (element 0 set: a non-finite loss was seen).
    pub status: View<'a>,
    /// The layer's SGD record, [`RECORD_WORDS`] words ([`record`]).
    pub record: View<'a>,
    /// Where the record says the bias starts in `params` (floats), for the length checks.
    pub bias_offset: usize,
}

/// Prepares the weight-gradient product `spec` of one layer (`trans_a`, the minibatch
/// along K; with `trans_c` the flipped orientation) with the SGD update fused: `a`, `b`
/// its operands (dZ `[K, O]` is `a`, or `b` with `trans_c`), `bufs` the rest.
///
/// # Errors
/// [`Error::LimitExceeded`] when the product and the bias loop do not fit the adapter's
/// loop cap in one chunk ([`fits`]) or a binding or grid is over the limits;
/// [`Error::InvalidConfig`] when a buffer is shorter than the shape and the record say, or
/// `variant` does not run on this device.
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    a: View<'_>,
    b: View<'_>,
    bufs: SgdEpilogueBuffers<'_>,
) -> Result<Dispatch> {
    assert_eq!(
        spec.epilogue,
        Epilogue::SgdUpdate,
        "{label}: not an SGD epilogue"
    );
    if !fits(gpu, variant, spec.k) {
        return Err(gpu.loop_cap_exceeded(
            &format!(
                "{label} ({variant} matmul with the SGD update, K = {})",
                spec.k
            ),
            loop_passes(variant, spec.k),
            "use --fuse without update or a smaller --batch-size",
        ));
    }
    let outputs = if spec.trans_c { spec.n } else { spec.m };
    let weights = spec.m * spec.n;
    if bufs.record.len < RECORD_WORDS || bufs.status.len == 0 {
        return Err(invalid(
            label,
            "the SGD record or the status header is too short",
        ));
    }
    let end = bufs.bias_offset + outputs;
    if bufs.bias_offset < weights || bufs.params.len < end || bufs.velocity.len < end {
        return Err(invalid(
            label,
            &format!(
                "parameters of {} and momentum of {} elements with the bias at {}: W [{}] and its bias [{outputs}] need {end} with the bias past W",
                bufs.params.len, bufs.velocity.len, bufs.bias_offset, weights
            ),
        ));
    }
    matmul::dispatch_velocity(
        gpu,
        kernels,
        variant,
        label,
        spec,
        MatmulMembers::ONE,
        [a, b, bufs.params, bufs.status],
        Some(bufs.status),
        Some(bufs.record),
        Some(bufs.velocity),
    )
}

fn invalid(label: &str, reason: &str) -> Error {
    Error::InvalidConfig {
        name: "matmul SGD epilogue",
        value: label.to_string(),
        reason: reason.to_string(),
    }
}
