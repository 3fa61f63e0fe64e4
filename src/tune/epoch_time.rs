//! The time side of the batch-size answer: how long one epoch of a single run at a
//! minibatch size takes on this device. A sweep's own times cannot say it: the members of
//! a mixed-batch population all compute every micro-step of its smallest minibatch, so
//! a member's share of the population's time is the same whatever its minibatch size
//! ([`crate::tune::population_sweep`]).
//!
//! How it is measured: once per minibatch size at the start of a sweep, a fresh single
//! run (K = 1) of that size trains one warm-up step and then the first
//! [`TIMED_SAMPLES`] samples (whole minibatches, at least [`MIN_TIMED_STEPS`]) of its first
//! epoch's order, timed with the wall clock; the epoch time is that time scaled to the
//! epoch's samples (training only, no evaluation). The run trains at a small learning rate
//! (so that no step's loss turns non-finite and skips its backward pass) and is then
//! dropped. On a shared machine the figure carries the load of the moment: a ratio between
//! minibatch sizes measured in one go is what to read from it.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::step::{MEMBER_FIRST, MemberStep, StepRecord, epoch_order, step_records};

/// Samples timed per minibatch size (rounded up to whole minibatches).
pub const TIMED_SAMPLES: usize = 8192;

/// Fewest minibatches timed, whatever their size.
pub const MIN_TIMED_STEPS: usize = 4;

/// Learning rate of the timed steps: small enough that no loss turns non-finite.
const TIMING_LR: f32 = 1e-3;

/// One epoch of the single run `engine` was opened for (one member), in seconds, measured
/// as the module docs say: the time of its first minibatches scaled to its epoch.
///
/// # Errors
/// [`Error::InvalidConfig`] for an engine of more than one member; engine errors.
pub fn single_run_epoch_seconds(engine: &mut dyn Engine) -> Result<f64> {
    let setup = engine.setup();
    if setup.len() != 1 {
        return Err(Error::InvalidConfig {
            name: "members",
            value: setup.len().to_string(),
            reason: "an epoch time is measured on a single run".into(),
        });
    }
    let run = setup.shared();
    let batch = run.config.batch_size;
    let n = run.train_indices.len();
    let order = epoch_order(&run.train_indices, run.config.seed, 0);
    let all = step_records(n, batch);
    let stop = AtomicBool::new(false);
    let mut train = |records: &[StepRecord], first: bool| -> Result<usize> {
        let records: Vec<StepRecord> = records
            .iter()
            .enumerate()
            .map(|(i, r)| StepRecord {
                index: i as u32,
                ..*r
            })
            .collect();
        let table: Vec<MemberStep> = (0..records.len())
            .map(|i| MemberStep::plain(TIMING_LR, if first && i == 0 { MEMBER_FIRST } else { 0 }))
            .collect();
        engine.train_epoch(&order, &records, &table, &mut |_| {}, &stop)?;
        Ok(records.iter().map(|r| r.batch as usize).sum())
    };
    // The first step pays for what is done once (buffers first touched, caches).
    train(&all[..1], true)?;
    let steps = TIMED_SAMPLES
        .div_ceil(batch)
        .max(MIN_TIMED_STEPS)
        .min(all.len());
    let start = Instant::now();
    let samples = train(&all[..steps], false)?;
    let seconds = start.elapsed().as_secs_f64();
    Ok(seconds * n as f64 / samples.max(1) as f64)
}
