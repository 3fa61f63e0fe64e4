//! One epoch's plan, the same for every device: the seeded sample order, the validation
//! split, the [`StepRecord`] of each minibatch (where it starts in the order, its size),
//! shared by the members, and the `[steps, K]` table of [`MemberStep`]s (each member's
//! learning rate and flags in each step). The GPU reads the records from a uniform buffer
//! and the member steps from its SGD table; the CPU engine reads the same values, so both
//! paths run the same steps.

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

/// What one member's SGD update does in one step. An epoch's table is `[steps, K]`,
/// step-major (entry `s · K + k`); the GPU reads it from its SGD table
/// (`crate::gpu::kernels::sgd_update::SgdTable`), written once per epoch.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MemberStep {
    /// Learning rate of this member in this step.
    pub lr: f32,
    /// [`MEMBER_FIRST`] | [`MEMBER_FROZEN`].
    pub flags: u32,
}

impl MemberStep {
    /// A frozen member's step: no update.
    pub const FROZEN: MemberStep = MemberStep {
        lr: 0.0,
        flags: MEMBER_FROZEN,
    };

    /// Whether the member is frozen in this step.
    pub fn frozen(&self) -> bool {
        self.flags & MEMBER_FROZEN != 0
    }

    /// Whether this is the member's first optimizer step.
    pub fn first(&self) -> bool {
        self.flags & MEMBER_FIRST != 0
    }
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
