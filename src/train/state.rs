//! A trainer's state, to resume from: [`TrainerState`] (plain serde data: the epoch, how
//! far into it a stop got, and per member what the engine does not hold) and
//! [`Snapshot`] (the state with every member's parameters and momentum), taken by
//! [`Trainer::snapshot`] and gone on from by [`Trainer::restore`].

use serde::{Deserialize, Serialize};

use super::{Member, MemberStatus, Trainer, validate};
use crate::config::RunConfig;
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::step::StepSums;

/// An epoch that a stop ended before its last step: how far it got, which members it
/// trains, and their per-step sums so far (`[K][steps]`, kept as bit patterns in JSON so
/// that a NaN survives).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct PartialEpoch {
    pub(super) steps: usize,
    pub(super) training: Vec<bool>,
    #[serde(with = "sum_bits")]
    pub(super) sums: Vec<Vec<StepSums>>,
}

/// [`StepSums`] as the bits of their two f32s (exact, NaN included).
mod sum_bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::step::StepSums;

    pub fn serialize<S: Serializer>(sums: &[Vec<StepSums>], s: S) -> Result<S::Ok, S::Error> {
        let bits: Vec<Vec<[u32; 2]>> = sums
            .iter()
            .map(|m| m.iter().map(|v| v.map(f32::to_bits)).collect())
            .collect();
        bits.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<StepSums>>, D::Error> {
        let bits = Vec::<Vec<[u32; 2]>>::deserialize(d)?;
        Ok(bits
            .into_iter()
            .map(|m| m.into_iter().map(|v| v.map(f32::from_bits)).collect())
            .collect())
    }
}

/// Everything a [`Trainer`] knows that its engine does not: the epoch it is at (and how
/// far into it, when a stop interrupted it), and per member its configuration (as the
/// hparam schedule and [`Trainer::set_config`] left it), status, start epoch, steps taken,
/// plateau state, hparam schedule, best validation loss, epochs since it and first-step
/// loss. Plain data: it serialises (serde, JSON-safe: infinite losses are strings), and
/// with the members' parameters and momentum it is a [`Snapshot`], from which
/// [`Trainer::restore`] goes on exactly where the trainer was. The epoch's sample order is
/// not stored: [`epoch_order`](crate::step::epoch_order) recomputes it from the seed and the epoch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    epoch: usize,
    members: Vec<Member>,
    partial: Option<PartialEpoch>,
    /// The micro-batch the members stepped at (the engine's). `None` in a state of an
    /// older wgtrain: then the members' smallest minibatch size, which it equals unless
    /// every member left the smallest size (PBT's exploit copies sizes).
    #[serde(default)]
    micro_batch: Option<usize>,
}

impl TrainerState {
    /// The trainer epoch the state is at (0-based: the epoch the next
    /// [`Trainer::run_epoch`] runs).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Steps of that epoch already run (0 between epochs).
    pub fn epoch_steps_done(&self) -> usize {
        self.partial.as_ref().map_or(0, |p| p.steps)
    }

    /// Number of members K.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// Member `k`'s current configuration (what its engine slot must be opened with).
    ///
    /// # Panics
    /// For `k` out of range.
    pub fn config(&self, k: usize) -> &RunConfig {
        &self.members[k].cfg
    }

    /// Member `k`'s status.
    ///
    /// # Panics
    /// For `k` out of range.
    pub fn status(&self, k: usize) -> &MemberStatus {
        &self.members[k].status
    }

    /// Epochs member `k`'s run has trained (whole epochs).
    ///
    /// # Panics
    /// For `k` out of range.
    pub fn epochs_trained(&self, k: usize) -> usize {
        self.epoch.saturating_sub(self.members[k].start_epoch)
    }

    /// The micro-batch its members stepped at, the rows of each shared step: the engine to
    /// go on from this state must step at it too (open it with this
    /// [`crate::engine::RunData::micro_batch`]). `None` in a state of an older wgtrain,
    /// whose members' smallest minibatch size it was.
    pub fn micro_batch(&self) -> Option<usize> {
        self.micro_batch
    }
}

/// A trainer's state and its members' tensors: what [`Trainer::snapshot`] takes and
/// [`Trainer::restore`] goes on from.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    /// The trainer's state.
    pub state: TrainerState,
    /// Member k's flat parameters, `[K][P]` (layout of [`crate::model::ParamLayout`]).
    pub params: Vec<Vec<f32>>,
    /// Member k's momentum buffer, `[K][P]` (zeros without momentum).
    pub momentum: Vec<Vec<f32>>,
}

impl<'e> Trainer<'e> {
    /// The trainer's state ([`TrainerState`]), without the tensors.
    pub fn state(&self) -> TrainerState {
        // Every field named: one added to the trainer must be saved here or derived from
        // the engine on restore.
        let Trainer {
            engine: _,
            members,
            train_indices: _,
            micro_batch,
            seed: _,
            has_validation: _,
            with_test: _,
            epoch,
            stop: _,
            partial,
        } = self;
        TrainerState {
            epoch: *epoch,
            members: members.clone(),
            partial: partial.clone(),
            micro_batch: Some(*micro_batch),
        }
    }

    /// The trainer's state with every member's parameters and momentum read from the
    /// engine: between epochs, or after a stop interrupted one (then the snapshot goes on
    /// from that step).
    ///
    /// # Errors
    /// Device errors reading the tensors back.
    pub fn snapshot(&mut self) -> Result<Snapshot> {
        let k = self.members.len();
        let mut params = Vec::with_capacity(k);
        let mut momentum = Vec::with_capacity(k);
        for m in 0..k {
            params.push(self.engine.params(m)?);
            momentum.push(self.engine.momentum(m)?);
        }
        Ok(Snapshot {
            state: self.state(),
            params,
            momentum,
        })
    }

    /// A trainer that goes on exactly where `snapshot` was taken, on `engine`: opened on
    /// the same data with members that share the snapshot's minibatch stream (hidden
    /// sizes, minibatch size, normalisation, seed, validation split, precision), e.g. from
    /// the snapshot's own member configurations ([`TrainerState::config`]). Each member's
    /// configuration, parameters, momentum and SGD settings are written to the engine; its
    /// schedule, plateau state, early stopping, status and step count come from the state.
    /// Its runs then end with the parameters and reports an uninterrupted trainer would
    /// have had (bit for bit on the device the snapshot was taken on). The stop flag and
    /// [`Trainer::set_evaluate_test`] are the caller's to set again.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a snapshot of another member count, a member that
    /// does not share the engine's minibatch stream, tensors of another model, or an
    /// interrupted epoch that does not fit the engine's epoch; engine errors.
    pub fn restore(engine: &'e mut dyn Engine, snapshot: &Snapshot) -> Result<Trainer<'e>> {
        let state = &snapshot.state;
        let k = engine.members();
        let bad = |reason: String| Error::InvalidConfig {
            name: "training state",
            value: format!(
                "{} members at epoch {}",
                state.members.len(),
                state.epoch + 1
            ),
            reason,
        };
        let counts = [
            state.members.len(),
            snapshot.params.len(),
            snapshot.momentum.len(),
        ];
        if counts.iter().any(|&c| c != k) {
            return Err(bad(format!(
                "holds {} members, {} parameter and {} momentum buffers, but the engine has {k} members",
                counts[0], counts[1], counts[2]
            )));
        }
        let shared = engine.setup().shared().config.clone();
        // The interrupted epoch's steps are micro-steps: the engine's must be the same.
        let micro = engine.setup().micro_batch();
        let state_micro = state
            .micro_batch
            .or_else(|| state.members.iter().map(|m| m.cfg.batch_size).min());
        if state_micro.is_some_and(|s| s != micro) {
            return Err(bad(format!(
                "does not fit this engine: its members step {} samples at a time, this \
                 engine's members {micro}",
                state_micro.unwrap_or(0)
            )));
        }
        for (m, member) in state.members.iter().enumerate() {
            crate::engine::check_shared(&shared, &member.cfg, m)
                .and_then(|()| crate::engine::check_micro_batch(micro, &member.cfg, m))
                .map_err(|e| bad(format!("does not fit this engine: {e}")))?;
        }
        let mut t = Trainer::new(engine)?;
        let spe = t.steps_per_epoch();
        if let Some(p) = &state.partial {
            let sums_fit = p.sums.len() == k && p.sums.iter().all(|s| s.len() == p.steps);
            if p.steps >= spe || p.training.len() != k || !sums_fit {
                return Err(bad(format!(
                    "its interrupted epoch ({} steps done) does not fit this engine's epochs of {spe} steps and {k} members",
                    p.steps
                )));
            }
        }
        for (m, member) in state.members.iter().enumerate() {
            validate(&member.cfg, t.train_indices.len())?;
            if t.engine.setup().members[m].config != member.cfg {
                t.engine.replace_member(m, &member.cfg)?;
            }
            t.engine
                .set_state(m, &snapshot.params[m], Some(&snapshot.momentum[m]))?;
            t.engine.set_sgd(m, &member.cfg.sgd)?;
        }
        t.members = state.members.clone();
        t.epoch = state.epoch;
        t.partial = state.partial.clone();
        Ok(t)
    }
}
