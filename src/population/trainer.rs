//! [`PopulationTrainer`]: the epoch loop of [`crate::train::Trainer`] for K members at once.
//! One sample order and one set of step records per epoch (the members share them); per
//! member, its own learning-rate schedule (and plateau state), early stopping, first-step
//! flag and status. A member whose loss turns non-finite is reported diverged and frozen;
//! the others go on. Members can be frozen (pruned), restarted with a new configuration in
//! their slot (a sweep refilling it) or overwritten by another member (PBT's exploit).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::config::RunConfig;
use crate::engine::{EvalSet, Evaluation};
use crate::error::{Error, Result};
use crate::schedule::PlateauState;
use crate::step::{StepSums, epoch_order, step_records};
use crate::train::EpochReport;

use super::{MEMBER_FIRST, MEMBER_FROZEN, MemberStep, PopulationEngine, check_member};

/// Where a member stands.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberStatus {
    /// Trains in the next epoch.
    Training,
    /// Ran its epochs, or early stopping ended it.
    Done,
    /// Stopped from outside ([`PopulationTrainer::freeze`]): pruned, say.
    Frozen,
    /// Its training loss turned non-finite: the error says where.
    Diverged(String),
}

/// What one member did in an epoch.
#[derive(Clone, Debug, PartialEq)]
pub enum MemberOutcome {
    /// It trained the epoch and was evaluated.
    Trained(EpochReport),
    /// Its loss turned non-finite in this epoch ([`Error::NonFiniteLoss`]'s message); it is
    /// now frozen with the parameters of its last finite step.
    Diverged(String),
    /// It was not training.
    Idle,
}

/// One member's run state.
#[derive(Clone, Debug)]
struct Member {
    cfg: RunConfig,
    status: MemberStatus,
    /// Population epoch (0-based) at which this member's run started.
    start_epoch: usize,
    /// Optimizer steps this member's run has taken.
    steps_taken: u64,
    plateau: Option<PlateauState>,
    best_val_loss: f64,
    epochs_since_best: usize,
}

impl Member {
    fn new(cfg: RunConfig, start_epoch: usize) -> Member {
        Member {
            plateau: cfg.schedule.plateau_state(),
            cfg,
            status: MemberStatus::Training,
            start_epoch,
            steps_taken: 0,
            best_val_loss: f64::INFINITY,
            epochs_since_best: 0,
        }
    }

    /// Learning rate of step `step` of the member's own epoch `epoch`.
    fn lr_at(&self, epoch: usize, step: usize, steps_per_epoch: usize) -> f64 {
        match &self.plateau {
            Some(p) => p.lr(),
            None => self.cfg.schedule.lr_at(epoch, step, steps_per_epoch),
        }
    }
}

/// Drives a [`PopulationEngine`] through epochs. See the module docs.
pub struct PopulationTrainer<'e> {
    engine: &'e mut dyn PopulationEngine,
    members: Vec<Member>,
    train_indices: Vec<u32>,
    batch_size: usize,
    seed: u64,
    has_validation: bool,
    with_test: bool,
    epoch: usize,
    stop: Option<Arc<AtomicBool>>,
}

impl<'e> PopulationTrainer<'e> {
    /// A trainer for the population `engine` was opened for, every member training from
    /// epoch 0.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an invalid member configuration.
    pub fn new(engine: &'e mut dyn PopulationEngine) -> Result<PopulationTrainer<'e>> {
        let setup = engine.setup();
        let shared = setup.shared();
        let members: Vec<Member> = setup
            .members
            .iter()
            .map(|m| Member::new(m.config.clone(), 0))
            .collect();
        for m in &members {
            crate::train::validate(&m.cfg, shared.train_indices.len())?;
        }
        Ok(PopulationTrainer {
            train_indices: shared.train_indices.clone(),
            batch_size: shared.config.batch_size,
            seed: shared.config.seed,
            has_validation: !shared.validation.is_empty(),
            with_test: true,
            epoch: 0,
            stop: None,
            members,
            engine,
        })
    }

    /// Whether each epoch evaluates the test set (default true). Sweeps turn it off: they
    /// never look at the test set, and it saves K evaluations per epoch.
    pub fn set_evaluate_test(&mut self, on: bool) {
        self.with_test = on;
    }

    /// Makes the run stoppable as [`crate::train::Trainer::set_stop_flag`].
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    /// The engine (for reading parameters between epochs).
    pub fn engine(&mut self) -> &mut dyn PopulationEngine {
        self.engine
    }

    /// Number of members K.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The population epoch the next [`PopulationTrainer::run_epoch`] runs (0-based).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Member `k`'s status.
    pub fn status(&self, k: usize) -> &MemberStatus {
        &self.members[k].status
    }

    /// Member `k`'s current configuration.
    pub fn config(&self, k: usize) -> &RunConfig {
        &self.members[k].cfg
    }

    /// Epochs member `k`'s current run has trained.
    pub fn epochs_trained(&self, k: usize) -> usize {
        self.epoch.saturating_sub(self.members[k].start_epoch)
    }

    /// True while some member trains.
    pub fn any_training(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.status == MemberStatus::Training)
    }

    /// Minibatches per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.train_indices.len().div_ceil(self.batch_size)
    }

    /// Stops member `k` from the next epoch on (its parameters stay).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range.
    pub fn freeze(&mut self, k: usize) -> Result<()> {
        check_member(k, self.members.len())?;
        self.members[k].status = MemberStatus::Frozen;
        Ok(())
    }

    /// Starts a new run `cfg` in slot `k` from the next epoch: fresh parameters from its
    /// `init_seed()`, cleared momentum, its own epoch count and schedule from its start.
    /// Its epochs see the shuffles of the population's next epochs (epoch `e` of the
    /// population, not epoch 0 of a single run), so only members that start at epoch 0
    /// are bit-identical to single runs.
    ///
    /// # Errors
    /// As [`PopulationEngine::replace_member`].
    pub fn restart(&mut self, k: usize, cfg: &RunConfig) -> Result<()> {
        check_member(k, self.members.len())?;
        crate::train::validate(cfg, self.train_indices.len())?;
        self.engine.replace_member(k, cfg)?;
        self.members[k] = Member::new(cfg.clone(), self.epoch);
        Ok(())
    }

    /// PBT's exploit step: member `to` continues from member `from`'s parameters and
    /// momentum (copied on the device) and from its run's progress (step count and schedule
    /// position), with `cfg` as its configuration from now on (the caller's explored
    /// hyperparameters).
    ///
    /// # Errors
    /// As [`PopulationEngine::copy_member`] and [`PopulationEngine::set_sgd`].
    pub fn exploit(&mut self, from: usize, to: usize, cfg: RunConfig) -> Result<()> {
        check_member(from, self.members.len())?;
        check_member(to, self.members.len())?;
        self.engine.copy_member(from, to)?;
        self.engine.set_sgd(to, &cfg.sgd)?;
        let src = self.members[from].clone();
        self.members[to] = Member {
            plateau: cfg.schedule.plateau_state(),
            cfg,
            ..src
        };
        Ok(())
    }

    /// Gives member `k` new hyperparameters (schedule and SGD settings) from the next step
    /// on, keeping its parameters, momentum and progress.
    ///
    /// # Errors
    /// As [`PopulationEngine::set_sgd`].
    pub fn set_config(&mut self, k: usize, cfg: RunConfig) -> Result<()> {
        check_member(k, self.members.len())?;
        self.engine.set_sgd(k, &cfg.sgd)?;
        self.members[k].plateau = cfg.schedule.plateau_state();
        self.members[k].cfg = cfg;
        Ok(())
    }

    /// Runs the next population epoch for every training member and evaluates them.
    /// `progress` gets finished steps. Members that finish their epochs or stop early
    /// turn [`MemberStatus::Done`]; a non-finite loss turns a member
    /// [`MemberStatus::Diverged`].
    ///
    /// # Errors
    /// [`Error::Interrupted`] when the stop flag ended the epoch early; engine errors.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(usize)) -> Result<Vec<MemberOutcome>> {
        let epoch = self.epoch;
        let k = self.members.len();
        let spe = self.steps_per_epoch();
        let order = epoch_order(&self.train_indices, self.seed, epoch);
        // The shared records carry no learning rate: each member's is in its table entry.
        let steps = step_records(order.len(), self.batch_size, 0, |_| 0.0);
        let training: Vec<bool> = self
            .members
            .iter()
            .map(|m| m.status == MemberStatus::Training)
            .collect();
        let mut table = vec![MemberStep::default(); steps.len() * k];
        for (s, row) in table.chunks_mut(k).enumerate() {
            for (m, entry) in self.members.iter().enumerate() {
                if !training[m] {
                    entry_frozen(&mut row[m]);
                    continue;
                }
                let own_epoch = epoch - entry.start_epoch;
                row[m] = MemberStep {
                    lr: entry.lr_at(own_epoch, s, spe) as f32,
                    flags: if entry.steps_taken == 0 && s == 0 {
                        MEMBER_FIRST
                    } else {
                        0
                    },
                };
            }
        }
        let interrupted = |step| Error::Interrupted {
            epoch: epoch + 1,
            step,
            steps: steps.len(),
        };
        let stop = self.stop.clone().unwrap_or_default();
        if stop.load(Ordering::Relaxed) {
            return Err(interrupted(0));
        }
        let start = Instant::now();
        let sums = self
            .engine
            .train_epoch_until(&order, &steps, &table, progress, &stop)?;
        let seconds = start.elapsed().as_secs_f64();
        let ran = sums.first().map_or(0, Vec::len);
        for (m, member) in self.members.iter_mut().enumerate() {
            if training[m] {
                member.steps_taken += ran as u64;
            }
        }
        if ran < steps.len() {
            return Err(interrupted(ran));
        }
        let val = if self.has_validation {
            Some(self.engine.evaluate(EvalSet::Validation)?)
        } else {
            None
        };
        let test = if self.with_test {
            self.engine.evaluate(EvalSet::Test)?
        } else {
            vec![Evaluation::default(); k]
        };
        let n = order.len() as f64;
        let mut out = Vec::with_capacity(k);
        for (m, member) in self.members.iter_mut().enumerate() {
            if !training[m] {
                out.push(MemberOutcome::Idle);
                continue;
            }
            if let Some(err) = non_finite(&sums[m], &steps, member.start_epoch, epoch) {
                let msg = err.to_string();
                member.status = MemberStatus::Diverged(msg.clone());
                out.push(MemberOutcome::Diverged(msg));
                continue;
            }
            let train_loss = sums[m].iter().map(|s| f64::from(s[0])).sum::<f64>() / n;
            let train_accuracy = sums[m].iter().map(|s| f64::from(s[1])).sum::<f64>() / n;
            let v = val.as_ref().map(|v| v[m]);
            let lr = f64::from(table[m].lr);
            if let Some(p) = &mut member.plateau {
                p.step(v.map_or(train_loss, |v| v.loss));
            }
            if let Some(v) = v {
                if v.loss < member.best_val_loss {
                    member.best_val_loss = v.loss;
                    member.epochs_since_best = 0;
                } else {
                    member.epochs_since_best += 1;
                }
            }
            let own_epoch = epoch - member.start_epoch + 1;
            let early = member
                .cfg
                .early_stop_patience
                .is_some_and(|p| member.epochs_since_best >= p);
            if own_epoch >= member.cfg.epochs || early {
                member.status = MemberStatus::Done;
            }
            out.push(MemberOutcome::Trained(EpochReport {
                epoch: own_epoch,
                lr,
                train_loss,
                train_accuracy,
                test_loss: test[m].loss,
                test_accuracy: test[m].accuracy,
                val_loss: v.map(|v| v.loss),
                val_accuracy: v.map(|v| v.accuracy),
                epoch_seconds: seconds,
                samples_per_second: n / seconds.max(1e-9),
            }));
        }
        self.epoch += 1;
        Ok(out)
    }

    /// Runs epochs until no member trains, calling `on_epoch` after each with the
    /// outcomes; returns each member's reports (its trained epochs, in order).
    ///
    /// # Errors
    /// As [`PopulationTrainer::run_epoch`], and whatever `on_epoch` returns.
    pub fn fit(
        &mut self,
        on_epoch: &mut dyn FnMut(&mut PopulationTrainer<'_>, &[MemberOutcome]) -> Result<()>,
    ) -> Result<Vec<Vec<EpochReport>>> {
        let mut history = vec![Vec::new(); self.members.len()];
        while self.any_training() {
            let outcomes = self.run_epoch(&mut |_| {})?;
            on_epoch(self, &outcomes)?;
            for (h, o) in history.iter_mut().zip(outcomes) {
                if let MemberOutcome::Trained(r) = o {
                    h.push(r);
                }
            }
        }
        Ok(history)
    }
}

fn entry_frozen(e: &mut MemberStep) {
    *e = MemberStep {
        lr: 0.0,
        flags: MEMBER_FROZEN,
    };
}

/// The error a single run would report for these sums: the first non-finite step of the
/// member's own epoch, and its last finite mean loss.
fn non_finite(
    sums: &[StepSums],
    steps: &[crate::step::StepRecord],
    start_epoch: usize,
    epoch: usize,
) -> Option<Error> {
    let bad = sums.iter().position(|s| !s[0].is_finite())?;
    let last_finite = match bad.checked_sub(1) {
        Some(p) => {
            let mean = sums[p][0] / steps[p].batch as f32;
            if mean.abs() < 1e6 {
                format!("{mean:.4}")
            } else {
                format!("{mean:.4e}")
            }
        }
        None => "none in this epoch".into(),
    };
    Some(Error::NonFiniteLoss {
        epoch: epoch - start_epoch + 1,
        step: bad + 1,
        last_finite,
    })
}
