//! One epoch's plan, the same for every device: the seeded sample order, the validation
//! split, the [`StepRecord`] of each minibatch (where it starts in the order, its size),
//! shared by the members, and the `[steps, K]` table of [`MemberStep`]s (each member's
//! learning rate and flags in each step). The GPU reads the records from a uniform buffer
//! and the member steps from its SGD table; the CPU engine reads the same values, so both
//! paths run the same steps.
//!
//! **Micro-steps.** The shared steps are minibatches of the population's smallest
//! minibatch size b0 (its *micro-batch*). A member whose minibatch is `m · b0` spans `m`
//! consecutive micro-steps: [`epoch_order`] does not depend on the minibatch size, so
//! its minibatch j (of a single run at `m · b0`) is exactly micro-steps `j·m .. j·m + m - 1`
//! (the epoch's last one possibly fewer, as `drop_last=False`). Its member steps say so
//! ([`MEMBER_ACCUMULATE`], [`MEMBER_DEFER`], [`MemberStep::scale`]; [`member_step_plan`]):
//! the gradient of each micro-step, scaled by its rows over the minibatch's, is summed, and
//! the update (learning rate, first-step flag) happens on the minibatch's last micro-step
//! only. A member with `m = 1` has plain steps (no flag, the scale unread): the arithmetic
//! of a population that shares one minibatch size is unchanged.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// Per-step values shared by every kernel of a training step and by every member,
/// mirrored by `struct Step` in `shaders/step.wgsl` (prepended to every kernel module); the
/// GPU engine stores them `crate::gpu::kernels::STEP_STRIDE` bytes apart in one buffer
/// written once per epoch. What a member does in the step (its learning rate, first step,
/// frozen) is its [`MemberStep`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct StepRecord {
    /// First position of this minibatch in the epoch's sample order.
    pub offset: u32,
    /// Samples in this minibatch (B; the last one of an epoch may be smaller).
    pub batch: u32,
    /// Index of this step: its slot in the metrics buffers and its row of the member-step
    /// table.
    pub index: u32,
    pub _pad: u32,
}

/// [`MemberStep::flags`] bit: this is the member's first optimizer step since its
/// parameters were (re)initialised, so its momentum buffer starts as the gradient.
pub const MEMBER_FIRST: u32 = 1;
/// [`MemberStep::flags`] bit: the member is frozen (pruned, finished or diverged): its
/// parameters and momentum do not change this step.
pub const MEMBER_FROZEN: u32 = 2;
/// [`MemberStep::flags`] bit: this micro-step continues the member's minibatch: its scaled
/// gradient is added to the running sum of the minibatch's earlier micro-steps.
pub const MEMBER_ACCUMULATE: u32 = 4;
/// [`MemberStep::flags`] bit: the member's minibatch goes on after this micro-step: its
/// (summed) gradient is kept as the running sum and the member does not update.
pub const MEMBER_DEFER: u32 = 8;

/// What one member's SGD update does in one (micro-)step. An epoch's table is `[steps, K]`,
/// step-major (entry `s · K + k`); the GPU reads it from its SGD table
/// (`crate::gpu::kernels::sgd_update::SgdTable`), written once per epoch. A plain step
/// (flags 0) computes the gradient of the step's minibatch and updates; see the module
/// docs for micro-steps.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MemberStep {
    /// Learning rate of this member in this step (read where it updates).
    pub lr: f32,
    /// [`MEMBER_FIRST`] | [`MEMBER_FROZEN`] | [`MEMBER_ACCUMULATE`] | [`MEMBER_DEFER`].
    pub flags: u32,
    /// With [`MEMBER_ACCUMULATE`] or [`MEMBER_DEFER`]: the factor this micro-step's
    /// gradient (a mean over its `b` rows) is multiplied by before it joins the sum, `b /
    /// B` for a member minibatch of `B` rows, so the sum is the minibatch's mean gradient.
    /// Unread in a plain step.
    pub scale: f32,
}

impl MemberStep {
    /// A frozen member's step: no update.
    pub const FROZEN: MemberStep = MemberStep {
        lr: 0.0,
        flags: MEMBER_FROZEN,
        scale: 0.0,
    };

    /// A plain step at learning rate `lr` with `flags` ([`MEMBER_FIRST`], say).
    pub fn plain(lr: f32, flags: u32) -> MemberStep {
        MemberStep {
            lr,
            flags,
            scale: 1.0,
        }
    }

    /// Whether the member is frozen in this step.
    pub fn frozen(&self) -> bool {
        self.flags & MEMBER_FROZEN != 0
    }

    /// Whether this is the member's first optimizer step.
    pub fn first(&self) -> bool {
        self.flags & MEMBER_FIRST != 0
    }

    /// Whether the running sum of the member's minibatch is added in ([`MEMBER_ACCUMULATE`]).
    pub fn accumulates(&self) -> bool {
        self.flags & MEMBER_ACCUMULATE != 0
    }

    /// Whether the member holds its update for a later micro-step ([`MEMBER_DEFER`]).
    pub fn defers(&self) -> bool {
        self.flags & MEMBER_DEFER != 0
    }

    /// Whether this micro-step is part of a minibatch of several: its gradient is scaled
    /// and summed ([`MEMBER_ACCUMULATE`] or [`MEMBER_DEFER`]).
    pub fn sums(&self) -> bool {
        self.flags & (MEMBER_ACCUMULATE | MEMBER_DEFER) != 0
    }
}

/// Where micro-step `s` of an epoch falls in a member's own minibatches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MicroStep {
    /// The member's own step (minibatch) index in the epoch.
    pub step: usize,
    /// This micro-step adds to the sum of the minibatch's earlier ones.
    pub accumulate: bool,
    /// The minibatch goes on after this micro-step (no update here).
    pub defer: bool,
    /// Rows of the member's minibatch (the epoch's last one may be short).
    pub rows: usize,
}

/// How micro-step `s` of an epoch of `n` samples in micro-steps of `micro` rows falls in
/// the minibatches of a member of minibatch size `batch` (a multiple of `micro`): its
/// minibatch j = s / m (m = batch / micro) covers micro-steps j·m .. j·m + m - 1, the
/// epoch's last micro-step ending the last one.
///
/// # Panics
/// When `batch` is not a positive multiple of `micro` (the engines refuse such members).
pub fn member_step_plan(n: usize, micro: usize, batch: usize, s: usize) -> MicroStep {
    assert!(
        micro > 0 && batch >= micro && batch.is_multiple_of(micro),
        "minibatch {batch} is not a multiple of the micro-batch {micro}"
    );
    let m = batch / micro;
    let steps = n.div_ceil(micro);
    let step = s / m;
    MicroStep {
        step,
        accumulate: !s.is_multiple_of(m),
        defer: s % m != m - 1 && s + 1 < steps,
        rows: batch.min(n - step * batch),
    }
}

/// Member steps per epoch of `n` samples at minibatch size `batch`.
pub fn steps_per_epoch(n: usize, batch: usize) -> usize {
    n.div_ceil(batch)
}

/// Sums of one minibatch: `[Σ loss, Σ correct]`, as the metrics buffer holds them.
pub type StepSums = [f32; 2];

/// A seeded split of `0..n` into (training, validation) indices: `fraction` of the samples
/// (rounded down) go to validation. Disjoint, covering, and the same for one seed.
///
/// # Errors
/// [`Error::InvalidConfig`] when `fraction` is not in [0, 1) or leaves no training sample.
pub fn validation_split(n: usize, fraction: f64, seed: u64) -> Result<(Vec<u32>, Vec<u32>)> {
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::InvalidConfig {
            name: "validation split",
            value: fraction.to_string(),
            reason: "must be in [0, 1)".into(),
        });
    }
    let mut all: Vec<u32> = (0..n as u32).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::MAX);
    all.shuffle(&mut rng);
    let n_val = (n as f64 * fraction) as usize;
    let mut val = all.split_off(n - n_val);
    all.sort_unstable();
    val.sort_unstable();
    Ok((all, val))
}

/// The order in which epoch `epoch` (0-based) visits `samples`: a Fisher-Yates shuffle by
/// ChaCha8 seeded with `seed`, stream `epoch`, so any epoch can be reproduced on its own.
pub fn epoch_order(samples: &[u32], seed: u64, epoch: usize) -> Vec<u32> {
    let mut order = samples.to_vec();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(epoch as u64);
    order.shuffle(&mut rng);
    order
}

/// Step records for one epoch of `n` samples in minibatches of `batch` (the last one
/// partial, as PyTorch's `drop_last=False`).
pub fn step_records(n: usize, batch: usize) -> Vec<StepRecord> {
    (0..n.div_ceil(batch))
        .map(|i| StepRecord {
            offset: (i * batch) as u32,
            batch: batch.min(n - i * batch) as u32,
            index: i as u32,
            _pad: 0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_records_cover_every_sample_once_with_a_partial_last_batch() {
        let r = step_records(10, 4);
        assert_eq!(r.iter().map(|s| s.batch).collect::<Vec<_>>(), [4, 4, 2]);
        assert_eq!(r.iter().map(|s| s.offset).collect::<Vec<_>>(), [0, 4, 8]);
        assert_eq!(r.iter().map(|s| s.index).collect::<Vec<_>>(), [0, 1, 2]);
        // 60000 / 64: 937 full minibatches and one of 32, as PyTorch's drop_last=False.
        let r = step_records(60_000, 64);
        assert_eq!(r.len(), 938);
        assert_eq!(r[937].batch, 32);
    }

    #[test]
    fn a_member_minibatch_is_m_consecutive_micro_steps_and_the_last_one_ends_the_epoch() {
        // 10 samples, micro-batch 2 (5 micro-steps), member minibatch 4: minibatches of 4,
        // 4 and 2 rows, as step_records(10, 4) has them.
        let plan: Vec<MicroStep> = (0..5).map(|s| member_step_plan(10, 2, 4, s)).collect();
        let at = |step, accumulate, defer, rows| MicroStep {
            step,
            accumulate,
            defer,
            rows,
        };
        assert_eq!(
            plan,
            [
                at(0, false, true, 4),
                at(0, true, false, 4),
                at(1, false, true, 4),
                at(1, true, false, 4),
                at(2, false, false, 2),
            ]
        );
        let single: Vec<usize> = step_records(10, 4)
            .iter()
            .map(|r| r.batch as usize)
            .collect();
        assert_eq!(single, [4, 4, 2]);
        // 60000 at micro-batch 32, member 128: the last minibatch (96 rows) is micro-steps
        // 1872 .. 1874, the epoch's last three.
        let last = member_step_plan(60_000, 32, 128, 1874);
        assert_eq!(last, at(468, true, false, 96));
        assert!(member_step_plan(60_000, 32, 128, 1872).defer);
        // A member at the micro-batch has plain steps.
        assert_eq!(member_step_plan(10, 2, 2, 4), at(4, false, false, 2));
    }

    #[test]
    fn epoch_order_is_a_seeded_permutation() {
        let s: Vec<u32> = (0..1000).collect();
        let a = epoch_order(&s, 1, 0);
        assert_eq!(a, epoch_order(&s, 1, 0));
        assert_ne!(a, epoch_order(&s, 1, 1));
        assert_ne!(a, epoch_order(&s, 2, 0));
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, s);
    }

    #[test]
    fn validation_split_is_disjoint_covering_and_stable() {
        let (t, v) = validation_split(1000, 0.1, 7).unwrap();
        assert_eq!(v.len(), 100);
        assert_eq!(t.len(), 900);
        let mut all: Vec<u32> = t.iter().chain(&v).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<u32>>());
        assert_eq!(validation_split(1000, 0.1, 7).unwrap(), (t, v.clone()));
        assert_ne!(validation_split(1000, 0.1, 8).unwrap().1, v);
        assert!(validation_split(1000, 1.0, 7).is_err());
    }
}
