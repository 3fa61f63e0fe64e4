//! The SGD-update epilogue of the matmul kernels ([`Epilogue::SgdUpdate`], EPILOGUE 4 in
//! `shaders/matmul/matmul_common.wgsl`): a layer's weight-gradient product `dW [O, I] = dZᵀ
//! · X` (or its transpose, `(Xᵀ · dZ)ᵀ`) applies one `torch.optim.SGD` step to the layer's
//! weights and bias in place, for every member, instead of storing dW for a `column_sum`
//! (bias gradient) and an `sgd_update` launch.
//!
//! Each invocation that finishes `dW[o, i]` runs `sgd_step` (`shaders/sgd_step.wgsl`, the
//! arithmetic `sgd_update` runs too) on `W[o, i]` and its momentum; the one that finishes
//! `dW[o, 0]` also sums `db[o] = Σ_r dZ[r, o]` over the minibatch, rows in order
//! (`column_sum`'s additions) and updates `b[o]`. So the fused step gives the bits of the
//! unfused one. The member's settings, learning rate and flags (first step, frozen) come
//! from the SGD table that `sgd_update` reads ([`super::super::sgd_update::SgdTable`]);
//! its status word (a non-finite loss) from the training metrics. The product must be one
//! chunk of K, and the bias loop must fit the loop cap too ([`fits`]).
//!
//! Bindings (the matmul bind group, [`super::BINDINGS`]): 1 A, 2 B (one of them dZ stored
//! `[B, O]`: A, or B with `trans_c`), 3 the training metrics (member j's status header at
//! `status_stride · j`), 4 the SGD table, 5 each member's parameters from the layer's
//! weight to the end of its bias (read-write; member stride: C's), 6 the momentum buffer
//! over the same ranges and, `sum_offset` floats further, the members' gradient sums.
//!
//! Micro-steps ([`crate::step`]): a member whose minibatch spans several micro-steps joins
//! each element's gradient to its running sum (`sgd_sum`, as `sgd_update` does, so fused
//! and unfused steps keep the same bits) and updates on the minibatch's last micro-step.

use super::{Epilogue, MatmulMembers, MatmulSpec, MatmulVariant};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};

/// The operands of the SGD epilogue besides A, B and C (the layer's parameters).
#[derive(Clone, Copy, Debug)]
pub struct SgdOperands<'a> {
    /// The training metrics of every member (status header first).
    pub status: View<'a>,
    /// Floats between consecutive members' status headers.
    pub status_stride: usize,
    /// The SGD table, shared by the members.
    pub table: View<'a>,
    /// Word of the table where member 0's settings start.
    pub hyper_offset: usize,
    /// Word of the table where the member-step table starts.
    pub steps_offset: usize,
    /// The momentum buffer over the same ranges as C, and the gradient sums after it.
    pub velocity: View<'a>,
    /// Floats from the start of `velocity` to the members' gradient sums (the GPU engine
    /// keeps them after the momentum: K · P_pad). Read and written only by member steps
    /// that sum ([`crate::step::MemberStep::sums`]); 0 for a launch whose steps never do.
    pub sum_offset: usize,
    /// Where the layer's bias starts in each member's range of C, floats.
    pub bias_offset: usize,
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

/// Checks an SGD-epilogue launch of `spec` for `mm` members whose C (the layer's
/// parameters) is `c`.
///
/// # Errors
/// [`Error::LimitExceeded`] when the product and the bias loop do not fit the adapter's
/// loop cap in one chunk ([`fits`]); [`Error::InvalidConfig`] when a buffer is shorter than
/// the shape, the members and the bias offset need.
pub(super) fn check(
    gpu: &Gpu,
    variant: MatmulVariant,
    label: &str,
    spec: &MatmulSpec,
    mm: MatmulMembers,
    c: &View<'_>,
    s: &SgdOperands<'_>,
) -> Result<()> {
    debug_assert_eq!(spec.epilogue, Epilogue::SgdUpdate);
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
    let end = mm.needed(mm.c, s.bias_offset + outputs);
    if s.bias_offset < weights || c.len < end || s.velocity.len < end + s.sum_offset {
        return Err(invalid(
            label,
            &format!(
                "parameters of {} and momentum of {} elements with the bias at {} and the gradient sums at {}: W [{}] and its bias [{outputs}] need {end} with the bias past W (and the sums past the momentum)",
                c.len, s.velocity.len, s.bias_offset, s.sum_offset, weights
            ),
        ));
    }
    if s.status.len < mm.needed(s.status_stride, 1) {
        return Err(invalid(label, "the status headers are too short"));
    }
    Ok(())
}

fn invalid(label: &str, reason: &str) -> Error {
    Error::InvalidConfig {
        name: "matmul SGD epilogue",
        value: label.to_string(),
        reason: reason.to_string(),
    }
}
