//! The epoch loop, one for every run: [`Trainer`] drives an [`Engine`] of K >= 1 members
//! (a single run is K = 1) through epochs. Each epoch has one seeded sample order and one
//! set of step records (the last minibatch partial, as PyTorch's `drop_last=False`),
//! shared by the members, in micro-steps of the population's smallest minibatch size
//! (its micro-batch, [`crate::engine::PopulationSetup::micro_batch`]); per member, its own
//! minibatches (each `m` micro-steps: [`crate::step::member_step_plan`]), learning-rate
//! schedule (and plateau state) over its own steps, per-epoch hyperparameter schedule,
//! early stopping, first-step flag, step count and status, written into the epoch's `[steps,
//! K]` member-step table. Evaluation follows every epoch.
//!
//! A member whose training loss turns non-finite, or explodes (its epoch's mean loss over
//! [`EXPLODED_LOSS_FACTOR`] times its first step's), is reported diverged and frozen; the
//! others go on. Members can be frozen (pruned), restarted with a new configuration in
//! their slot (a sweep refilling it) or overwritten by another member (PBT's exploit).
//!
//! A stop (Ctrl-C) ends an epoch at a step boundary without losing it: the next
//! [`Trainer::run_epoch`] runs its remaining steps. [`Trainer::snapshot`] takes the
//! trainer's state ([`TrainerState`], plain serde data) with every member's parameters and
//! momentum, between epochs or in such an interrupted one, and [`Trainer::restore`] goes on
//! from it on a fresh engine, ending exactly as the uninterrupted run (`train --resume`).
//!
//! ```no_run
//! # fn main() -> wgtrain::Result<()> {
//! use wgtrain::{Device, RunConfig, open, train::Trainer};
//! let mnist = wgtrain::data::load_dir(std::path::Path::new("data/mnist"))?;
//! let configs = [0.01, 0.03, 0.1, 0.3]
//!     .map(|lr| RunConfig::builder().lr(lr).epochs(3).validation_split(0.1).build());
//! let configs = configs.into_iter().collect::<wgtrain::Result<Vec<_>>>()?;
//! let mut engine = open(Device::Cpu, &configs, (&mnist).into())?;
//! let histories = Trainer::new(engine.as_mut())?.fit(&mut |_, _| Ok(()))?;
//! for (cfg, history) in configs.iter().zip(&histories) {
//!     let last = history.last().expect("every member trains");
//!     println!("lr {}: val acc {:.2}%", cfg.schedule.base_lr, 100.0 * last.val_accuracy.unwrap());
//! }
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::{RunConfig, check_batch_size};
use crate::engine::{Engine, EvalSet, Evaluation, check_member};
use crate::error::{Error, Result};
use crate::schedule::{HparamSchedule, PlateauState};
use crate::step::{
    MEMBER_ACCUMULATE, MEMBER_DEFER, MEMBER_FIRST, MemberStep, StepRecord, StepSums,
    member_step_plan, steps_per_epoch,
};
pub use crate::step::{epoch_order, step_records, validation_split};

mod state;

use state::PartialEpoch;
pub use state::{Snapshot, TrainerState};

/// A member whose epoch's mean training loss exceeds this many times its first step's loss
/// has diverged even though the loss stayed finite (`--lr 1000` ends at 3.4e11): it is
/// stopped as a non-finite loss stops it. Cross-entropy starts near ln(C) (2.3 for ten
/// classes) and a run that learns never climbs a hundredfold above it.
pub const EXPLODED_LOSS_FACTOR: f64 = 100.0;

/// One epoch's results, as printed and as written to `--metrics` (one JSON object per line).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// 1-based, counted in the member's own run.
    pub epoch: usize,
    /// Learning rate of the epoch's first step.
    pub lr: f64,
    /// Mean loss per sample over the epoch's minibatches (weights changing as it goes).
    pub train_loss: f64,
    /// Fraction of training samples predicted correctly during the epoch.
    pub train_accuracy: f64,
    /// Test-set loss and accuracy (0 when the trainer skips the test set: sweeps).
    pub test_loss: f64,
    pub test_accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Wall time of the training part of the epoch (evaluation excluded), s, for all
    /// members together.
    pub epoch_seconds: f64,
    /// Training samples per second (per member).
    pub samples_per_second: f64,
}

impl std::fmt::Display for EpochReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>3}  lr {:.3e}  train loss {:.4} acc {:.2}%  test loss {:.4} acc {:.2}%",
            self.epoch,
            self.lr,
            self.train_loss,
            100.0 * self.train_accuracy,
            self.test_loss,
            100.0 * self.test_accuracy
        )?;
        if let (Some(l), Some(a)) = (self.val_loss, self.val_accuracy) {
            write!(f, "  val loss {l:.4} acc {:.2}%", 100.0 * a)?;
        }
        write!(
            f,
            "  {:.2} s  {:.0} samples/s",
            self.epoch_seconds, self.samples_per_second
        )
    }
}

/// Where a member stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MemberStatus {
    /// Trains in the next epoch.
    Training,
    /// Ran its epochs, or early stopping ended it.
    Done,
    /// Stopped from outside ([`Trainer::freeze`]): pruned, say.
    Frozen,
    /// Its training loss turned non-finite or exploded: the message says where.
    Diverged(String),
}

/// What one member did in an epoch.
#[derive(Debug)]
pub enum MemberOutcome {
    /// It trained the epoch and was evaluated.
    Trained(EpochReport),
    /// Its loss turned non-finite ([`Error::NonFiniteLoss`]) or exploded
    /// ([`Error::LossExploded`]) in this epoch; it is now frozen (after a non-finite loss
    /// with the parameters of its last finite step).
    Diverged(Error),
    /// It was not training.
    Idle,
}

impl MemberOutcome {
    /// The epoch's report; a divergence as its error.
    ///
    /// # Errors
    /// The divergence; [`Error::InvalidConfig`] for a member that did not train.
    pub fn into_report(self) -> Result<EpochReport> {
        match self {
            MemberOutcome::Trained(r) => Ok(r),
            MemberOutcome::Diverged(e) => Err(e),
            MemberOutcome::Idle => Err(Error::InvalidConfig {
                name: "member",
                value: "idle".into(),
                reason: "it did not train this epoch".into(),
            }),
        }
    }
}

/// One member's run state: all of it is saved in a [`TrainerState`] (serde), so a field
/// added here is saved and restored too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Member {
    cfg: RunConfig,
    status: MemberStatus,
    /// Trainer epoch (0-based) at which this member's run started.
    start_epoch: usize,
    /// Optimizer steps this member's run has taken.
    steps_taken: u64,
    plateau: Option<PlateauState>,
    hparams: Option<HparamSchedule>,
    #[serde(with = "crate::json_float")]
    best_val_loss: f64,
    epochs_since_best: usize,
    /// Mean loss of the run's first step, the yardstick of an exploded loss.
    #[serde(with = "crate::json_float::option")]
    first_loss: Option<f64>,
}

impl Member {
    fn new(cfg: RunConfig, start_epoch: usize) -> Member {
        Member {
            plateau: cfg.schedule.plateau_state(),
            cfg,
            status: MemberStatus::Training,
            start_epoch,
            steps_taken: 0,
            hparams: None,
            best_val_loss: f64::INFINITY,
            epochs_since_best: 0,
            first_loss: None,
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

/// Drives an [`Engine`] through epochs, with the settings its members were opened with.
/// See the module docs.
pub struct Trainer<'e> {
    engine: &'e mut dyn Engine,
    members: Vec<Member>,
    train_indices: Vec<u32>,
    /// Rows of the shared steps: the members' smallest minibatch size.
    micro_batch: usize,
    seed: u64,
    has_validation: bool,
    with_test: bool,
    epoch: usize,
    stop: Option<Arc<AtomicBool>>,
    /// The epoch `epoch` so far, when a stop ended it early (or a state restored it so).
    partial: Option<PartialEpoch>,
}

impl<'e> Trainer<'e> {
    /// A trainer for the members `engine` was opened for ([`Engine::setup`]), every one
    /// training from epoch 0 with its epochs, minibatch size, schedule and early stopping;
    /// the seed, split and micro-batch are the members' shared ones.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an invalid member configuration ([`validate`]).
    pub fn new(engine: &'e mut dyn Engine) -> Result<Trainer<'e>> {
        let setup = engine.setup();
        let shared = setup.shared();
        let members: Vec<Member> = setup
            .members
            .iter()
            .map(|m| Member::new(m.config.clone(), 0))
            .collect();
        for m in &members {
            validate(&m.cfg, shared.train_indices.len())?;
        }
        Ok(Trainer {
            train_indices: shared.train_indices.clone(),
            micro_batch: setup.micro_batch(),
            seed: shared.config.seed,
            has_validation: !shared.validation.is_empty(),
            with_test: true,
            epoch: 0,
            stop: None,
            partial: None,
            members,
            engine,
        })
    }

    /// Whether each epoch evaluates the test set (default true). Sweeps turn it off: they
    /// never look at the test set, and it saves K evaluations per epoch; the reports' test
    /// fields are then 0.
    pub fn set_evaluate_test(&mut self, on: bool) {
        self.with_test = on;
    }

    /// Makes the run stoppable: once `flag` is set (by a Ctrl-C handler, say), the epoch in
    /// progress stops at the next step boundary the engine allows (see
    /// [`Engine::train_epoch`]) and [`Trainer::run_epoch`] returns [`Error::Interrupted`],
    /// with the parameters those after the last finished step; with the flag cleared, the
    /// next [`Trainer::run_epoch`] runs the rest of that epoch.
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    /// Member `k` trains epoch `e` of its run with the base learning rate and weight decay
    /// of `schedule`'s epoch `e` (replaying a population-based-training schedule,
    /// [`crate::tune::pbt`]): before each epoch the schedule's lr replaces the base lr of
    /// its learning-rate schedule and its weight decay the SGD weight decay
    /// ([`Engine::set_sgd`]; the momentum buffer is kept). The member trains the schedule's
    /// epochs (as many as it lists).
    ///
    /// # Errors
    /// As [`check_member`], [`HparamSchedule::validate`] and
    /// [`HparamSchedule::check_schedule`].
    pub fn set_hparam_schedule(&mut self, k: usize, schedule: HparamSchedule) -> Result<()> {
        check_member(k, self.members.len())?;
        schedule.validate()?;
        let m = &mut self.members[k];
        HparamSchedule::check_schedule(&m.cfg.schedule)?;
        m.cfg.epochs = schedule.len();
        m.hparams = Some(schedule);
        Ok(())
    }

    /// Applies member `k`'s hparam schedule for its own epoch `epoch`, if it has one.
    fn apply_hparams(&mut self, k: usize, epoch: usize) -> Result<()> {
        let m = &mut self.members[k];
        let Some(s) = &m.hparams else {
            return Ok(());
        };
        let Some(h) = s.at(epoch) else {
            return Err(Error::InvalidConfig {
                name: "epoch",
                value: (epoch + 1).to_string(),
                reason: format!("the hparam schedule lists {} epochs", s.len()),
            });
        };
        m.cfg.schedule.base_lr = h.lr;
        if m.cfg.sgd.weight_decay != h.weight_decay {
            let sgd = crate::optim::SgdConfig {
                weight_decay: h.weight_decay,
                ..m.cfg.sgd.clone()
            };
            self.engine.set_sgd(k, &sgd)?;
            self.members[k].cfg.sgd = sgd;
        }
        Ok(())
    }

    /// The engine (for reading parameters between epochs).
    pub fn engine(&mut self) -> &mut dyn Engine {
        self.engine
    }

    /// Number of members K.
    pub fn members(&self) -> usize {
        self.members.len()
    }

    /// The trainer epoch the next [`Trainer::run_epoch`] runs (0-based).
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Member `k`'s status.
    pub fn status(&self, k: usize) -> &MemberStatus {
        &self.members[k].status
    }

    /// Member `k`'s current configuration (its epochs those of its hparam schedule, when
    /// it has one).
    pub fn config(&self, k: usize) -> &RunConfig {
        &self.members[k].cfg
    }

    /// Epochs member `k`'s current run has trained.
    pub fn epochs_trained(&self, k: usize) -> usize {
        self.epoch.saturating_sub(self.members[k].start_epoch)
    }

    /// Optimizer steps member `k`'s current run has taken, interrupted epochs included.
    pub fn steps_taken(&self, k: usize) -> u64 {
        self.members[k].steps_taken
    }

    /// True while some member trains.
    pub fn any_training(&self) -> bool {
        self.members
            .iter()
            .any(|m| m.status == MemberStatus::Training)
    }

    /// Shared steps per epoch: minibatches of the micro-batch (for a single run, its
    /// minibatches).
    pub fn steps_per_epoch(&self) -> usize {
        steps_per_epoch(self.train_indices.len(), self.micro_batch)
    }

    /// Member `k`'s own optimizer steps per epoch (minibatches of its size).
    pub fn member_steps_per_epoch(&self, k: usize) -> usize {
        steps_per_epoch(self.train_indices.len(), self.members[k].cfg.batch_size)
    }

    /// True when member `k`'s last epoch gave its best validation loss so far.
    pub fn last_was_best(&self, k: usize) -> bool {
        let m = &self.members[k];
        m.epochs_since_best == 0 && m.best_val_loss.is_finite()
    }

    /// True when early stopping ended member `k`'s run (its patience ran out).
    pub fn stopped_early(&self, k: usize) -> bool {
        let m = &self.members[k];
        m.cfg
            .early_stop_patience
            .is_some_and(|p| m.epochs_since_best >= p)
    }

    /// Stops member `k` from the next epoch on (its parameters stay).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range, or while a stop has left an
    /// epoch unfinished (members change between epochs; so for the three below).
    pub fn freeze(&mut self, k: usize) -> Result<()> {
        check_member(k, self.members.len())?;
        self.between_epochs()?;
        self.members[k].status = MemberStatus::Frozen;
        Ok(())
    }

    /// Starts a new run `cfg` in slot `k` from the next epoch: fresh parameters from its
    /// `init_seed()`, cleared momentum, its own epoch count and schedule from its start.
    /// Its epochs see the shuffles of the trainer's next epochs (epoch `e` of the
    /// population, not epoch 0 of a single run), so only members that start at epoch 0
    /// are bit-identical to single runs.
    ///
    /// # Errors
    /// As [`Trainer::freeze`] and [`Engine::replace_member`].
    pub fn restart(&mut self, k: usize, cfg: &RunConfig) -> Result<()> {
        check_member(k, self.members.len())?;
        self.between_epochs()?;
        validate(cfg, self.train_indices.len())?;
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
    /// As [`Trainer::freeze`], [`Engine::copy_member`] and [`Engine::set_sgd`].
    pub fn exploit(&mut self, from: usize, to: usize, cfg: RunConfig) -> Result<()> {
        check_member(from, self.members.len())?;
        check_member(to, self.members.len())?;
        self.between_epochs()?;
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
    /// As [`Trainer::freeze`] and [`Engine::set_sgd`].
    pub fn set_config(&mut self, k: usize, cfg: RunConfig) -> Result<()> {
        check_member(k, self.members.len())?;
        self.between_epochs()?;
        self.engine.set_sgd(k, &cfg.sgd)?;
        self.members[k].plateau = cfg.schedule.plateau_state();
        self.members[k].cfg = cfg;
        Ok(())
    }

    /// Refuses to change members while an epoch is interrupted: its remaining steps must
    /// run with the members it started with.
    fn between_epochs(&self) -> Result<()> {
        match &self.partial {
            None => Ok(()),
            Some(p) => Err(Error::InvalidConfig {
                name: "member change",
                value: format!("at epoch {}, step {}", self.epoch + 1, p.steps),
                reason:
                    "members change between epochs; run the rest of the interrupted epoch first"
                        .into(),
            }),
        }
    }

    /// The epoch's member-step table `[steps, K]` over the shared micro-steps `steps`: each
    /// training member's learning rate at its own step, the flags that sum its minibatch's
    /// micro-steps and update on the last, its first-step flag; the others frozen.
    fn member_steps(&self, steps: &[StepRecord], training: &[bool]) -> Vec<MemberStep> {
        let k = self.members.len();
        let n = self.train_indices.len();
        let mut table = vec![MemberStep::FROZEN; steps.len() * k];
        for (m, member) in self.members.iter().enumerate() {
            if !training[m] {
                continue;
            }
            let batch = member.cfg.batch_size;
            let spe = steps_per_epoch(n, batch);
            let own_epoch = self.epoch - member.start_epoch;
            for (s, st) in steps.iter().enumerate() {
                let p = member_step_plan(n, self.micro_batch, batch, s);
                let mut flags = 0;
                if member.steps_taken == 0 && p.step == 0 && !p.defer {
                    flags |= MEMBER_FIRST;
                }
                if p.accumulate {
                    flags |= MEMBER_ACCUMULATE;
                }
                if p.defer {
                    flags |= MEMBER_DEFER;
                }
                table[s * k + m] = MemberStep {
                    lr: member.lr_at(own_epoch, p.step, spe) as f32,
                    flags,
                    scale: st.batch as f32 / p.rows as f32,
                };
            }
        }
        table
    }

    /// Runs the next epoch for every training member and evaluates them. `progress` gets
    /// finished steps. Members that finish their epochs or stop early turn
    /// [`MemberStatus::Done`]; a non-finite or exploded loss turns a member
    /// [`MemberStatus::Diverged`].
    ///
    /// An epoch that a stop interrupted is not lost: the next call goes on with its
    /// remaining steps (the same members, learning rates and order) and reports the whole
    /// epoch, exactly as if it had not stopped; so does a trainer restored from a
    /// [`Trainer::snapshot`] taken after the stop ([`Trainer::restore`]).
    ///
    /// # Errors
    /// [`Error::Interrupted`] when the stop flag ended the epoch early; engine errors.
    pub fn run_epoch(&mut self, progress: &mut dyn FnMut(usize)) -> Result<Vec<MemberOutcome>> {
        let epoch = self.epoch;
        let k = self.members.len();
        let (training, done, mut sums) = match self.partial.take() {
            Some(p) => (p.training, p.steps, p.sums),
            None => {
                let training: Vec<bool> = self
                    .members
                    .iter()
                    .map(|m| m.status == MemberStatus::Training)
                    .collect();
                (training, 0, vec![Vec::new(); k])
            }
        };
        for m in (0..k).filter(|&m| training[m]) {
            let own = epoch - self.members[m].start_epoch;
            self.apply_hparams(m, own)?;
        }
        // A member whose loss turned non-finite before the epoch stopped stays frozen for
        // the rest of it, as the engine froze it (its parameters are its last finite ones).
        let stepping: Vec<bool> = (0..k)
            .map(|m| training[m] && sums[m].iter().all(|s| s[0].is_finite()))
            .collect();
        let order = epoch_order(&self.train_indices, self.seed, epoch);
        let all_steps = step_records(order.len(), self.micro_batch);
        let table = self.member_steps(&all_steps, &stepping);
        // The micro-steps still to run, re-indexed from 0: the index is a step's slot in the
        // engine's metrics and its row of the member-step table.
        let steps: Vec<StepRecord> = all_steps[done..]
            .iter()
            .enumerate()
            .map(|(i, s)| StepRecord {
                index: i as u32,
                ..*s
            })
            .collect();
        let interrupted = |step| Error::Interrupted {
            epoch: epoch + 1,
            step,
            steps: all_steps.len(),
        };
        let stop = self.stop.clone().unwrap_or_default();
        if stop.load(Ordering::Relaxed) {
            self.partial = Some(PartialEpoch {
                steps: done,
                training,
                sums,
            });
            return Err(interrupted(done));
        }
        let start = Instant::now();
        let ran_sums = self.engine.train_epoch(
            &order,
            &steps,
            &table[done * k..],
            &mut |s| progress(done + s),
            &stop,
        )?;
        let mut ran = ran_sums.first().map_or(0, Vec::len);
        for (all, new) in sums.iter_mut().zip(ran_sums) {
            all.extend(new);
        }
        // A stop inside a member's minibatch runs on to the next micro-step where every
        // member's minibatch ends (fewer micro-steps than the largest minibatch spans), so
        // an interrupted epoch, and a snapshot of it, never holds a half-summed gradient.
        let end = minibatch_boundary(&table, k, done + ran, all_steps.len());
        if end > done + ran {
            let from = done + ran;
            let rest: Vec<StepRecord> = all_steps[from..end]
                .iter()
                .enumerate()
                .map(|(i, s)| StepRecord {
                    index: i as u32,
                    ..*s
                })
                .collect();
            // Members whose loss turned non-finite stay frozen, as the engine froze them.
            let mut rest_table = table[from * k..end * k].to_vec();
            for (m, member_sums) in sums.iter().enumerate() {
                if member_sums.iter().any(|s| !s[0].is_finite()) {
                    for row in rest_table.chunks_mut(k) {
                        row[m] = MemberStep::FROZEN;
                    }
                }
            }
            let more = self.engine.train_epoch(
                &order,
                &rest,
                &rest_table,
                &mut |s| progress(from + s),
                &AtomicBool::new(false),
            )?;
            ran += more.first().map_or(0, Vec::len);
            for (all, new) in sums.iter_mut().zip(more) {
                all.extend(new);
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let (n_order, micro) = (order.len(), self.micro_batch);
        // Each member's own steps so far this epoch: its minibatches' sums and step records.
        let own: Vec<(Vec<StepSums>, Vec<StepRecord>)> = (0..k)
            .map(|m| own_steps(&sums[m], n_order, micro, self.members[m].cfg.batch_size))
            .collect();
        for (m, member) in self.members.iter_mut().enumerate() {
            if training[m] {
                let batch = member.cfg.batch_size;
                let updates = updates_in(done + ran, n_order, micro, batch)
                    - updates_in(done, n_order, micro, batch);
                if member.steps_taken == 0
                    && updates > 0
                    && let Some(first) = own[m].0.first()
                {
                    member.first_loss = Some(f64::from(first[0]) / f64::from(own[m].1[0].batch));
                }
                member.steps_taken += updates as u64;
            }
        }
        if done + ran < all_steps.len() {
            self.partial = Some(PartialEpoch {
                steps: done + ran,
                training,
                sums,
            });
            return Err(interrupted(done + ran));
        }
        // What this call trained, for its speed (a resumed epoch's time is its rest's).
        let trained: u32 = all_steps[done..].iter().map(|s| s.batch).sum();
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
            let own_epoch = epoch - member.start_epoch + 1;
            let lr = f64::from(table[m].lr);
            let train_loss = sums[m].iter().map(|s| f64::from(s[0])).sum::<f64>() / n;
            let diverged = non_finite(&own[m].0, &own[m].1, own_epoch)
                .or_else(|| exploded(train_loss, member.first_loss, own_epoch, lr));
            if let Some(err) = diverged {
                member.status = MemberStatus::Diverged(err.to_string());
                out.push(MemberOutcome::Diverged(err));
                continue;
            }
            let train_accuracy = sums[m].iter().map(|s| f64::from(s[1])).sum::<f64>() / n;
            let v = val.as_ref().map(|v| v[m]);
            if let Some(p) = &mut member.plateau {
                // ReduceLROnPlateau watches the validation loss, or the training loss
                // without a validation split; never the test set.
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
                samples_per_second: f64::from(trained) / seconds.max(1e-9),
            }));
        }
        self.epoch += 1;
        Ok(out)
    }

    /// Runs epochs until no member trains, calling `on_epoch` after each with the
    /// outcomes; returns each member's reports (its trained epochs, in order).
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`], and whatever `on_epoch` returns.
    pub fn fit(
        &mut self,
        on_epoch: &mut dyn FnMut(&mut Trainer<'_>, &[MemberOutcome]) -> Result<()>,
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

    /// [`Trainer::fit`] for a single run (K = 1): calls `on_epoch` with each epoch's
    /// report and returns them all; a divergence is the error.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the engine has more than one member (use
    /// [`Trainer::fit`]); [`Error::NonFiniteLoss`] and [`Error::LossExploded`] when the run
    /// diverged; as [`Trainer::run_epoch`], and whatever `on_epoch` returns.
    pub fn fit_single(
        &mut self,
        on_epoch: &mut dyn FnMut(&EpochReport) -> Result<()>,
    ) -> Result<Vec<EpochReport>> {
        if self.members.len() != 1 {
            return Err(Error::InvalidConfig {
                name: "members",
                value: self.members.len().to_string(),
                reason: "fit_single trains a population of one; use Trainer::fit".into(),
            });
        }
        let mut history = Vec::new();
        while self.any_training() {
            let outcome = self.run_epoch(&mut |_| {})?.remove(0);
            let report = outcome.into_report()?;
            on_epoch(&report)?;
            history.push(report);
        }
        Ok(history)
    }
}

/// Checks a configuration against the `n_train` samples it trains on, before any work.
///
/// # Errors
/// [`Error::InvalidConfig`] naming the value and its valid range.
pub fn validate(cfg: &RunConfig, n_train: usize) -> Result<()> {
    check_batch_size(cfg.batch_size, n_train)?;
    cfg.validate()
}

/// A member's own steps of an epoch of `n` samples in micro-steps of `micro` rows at its
/// minibatch size `batch`: its per-step sums (each minibatch's micro-steps summed in order;
/// the last one partial when the epoch was interrupted inside it) and its step records
/// ([`step_records`] at `batch`). At the micro-batch, the micro-steps themselves.
fn own_steps(
    sums: &[StepSums],
    n: usize,
    micro: usize,
    batch: usize,
) -> (Vec<StepSums>, Vec<StepRecord>) {
    let m = (batch / micro.max(1)).max(1);
    let own = sums
        .chunks(m)
        .map(|c| {
            c.iter()
                .fold([0.0f32; 2], |a, s| [a[0] + s[0], a[1] + s[1]])
        })
        .collect();
    (own, step_records(n, batch))
}

/// The first micro-step boundary at or after `from` (of `total`) where no member of the
/// member-step table `[steps, K]` defers its update: where every member's minibatch ends.
fn minibatch_boundary(table: &[MemberStep], k: usize, from: usize, total: usize) -> usize {
    (from..total)
        .find(|&e| e == 0 || table[(e - 1) * k..e * k].iter().all(|ms| !ms.defers()))
        .unwrap_or(total)
}

/// How many updates of a member of minibatch size `batch` the first `ran` micro-steps of an
/// epoch hold (its minibatches that ended within them).
fn updates_in(ran: usize, n: usize, micro: usize, batch: usize) -> usize {
    (0..ran)
        .filter(|&s| !member_step_plan(n, micro, batch, s).defer)
        .count()
}

/// The error a member's run reports for these sums of its own epoch `epoch` (1-based): the
/// first non-finite step and its last finite mean loss.
fn non_finite(sums: &[StepSums], steps: &[StepRecord], epoch: usize) -> Option<Error> {
    let bad = sums.iter().position(|s| !s[0].is_finite())?;
    let last_finite = match bad.checked_sub(1) {
        Some(p) => format_loss(sums[p][0] / steps[p].batch as f32),
        None => "none in this epoch".into(),
    };
    Some(Error::NonFiniteLoss {
        epoch,
        step: bad + 1,
        last_finite,
    })
}

/// The error of a finite loss that exploded: the epoch's mean `loss` over
/// [`EXPLODED_LOSS_FACTOR`] times the run's `first` step's mean loss.
fn exploded(loss: f64, first: Option<f64>, epoch: usize, lr: f64) -> Option<Error> {
    let first = first?;
    (loss > EXPLODED_LOSS_FACTOR * first.max(f64::MIN_POSITIVE)).then(|| Error::LossExploded {
        epoch,
        loss: format_loss(loss as f32),
        first: format_loss(first as f32),
        lr,
    })
}

fn format_loss(mean: f32) -> String {
    if mean.abs() < 1e6 {
        format!("{mean:.4}")
    } else {
        format!("{mean:.4e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_names_the_step_and_the_last_finite_loss() {
        let steps = step_records(40, 10);
        let sums = [
            [10.0, 0.0],
            [20.0, 0.0],
            [f32::INFINITY, 0.0],
            [f32::NAN, 0.0],
        ];
        let Some(Error::NonFiniteLoss {
            epoch,
            step,
            last_finite,
        }) = non_finite(&sums, &steps, 3)
        else {
            panic!("a non-finite sum is reported");
        };
        assert_eq!((epoch, step, last_finite.as_str()), (3, 3, "2.0000"));
        assert!(non_finite(&sums[..2], &steps, 1).is_none());
        let first = non_finite(&[[f32::NAN, 0.0]], &steps, 1).unwrap();
        assert!(first.to_string().contains("none in this epoch"), "{first}");
    }

    /// Issue 26 item 7: `train --lr 1000` ended at a finite train loss of 3.4e11 and 10%
    /// accuracy with exit 0 and no word; a loss 100x its start is a divergence now.
    #[test]
    fn a_finite_loss_a_hundredfold_above_its_start_is_a_divergence() {
        let e = exploded(3.4e11, Some(2.3), 1, 1000.0).expect("exploded");
        let text = e.to_string();
        for want in ["3.4000e11", "2.3000", "1.000e3", "--lr"] {
            assert!(text.contains(want), "{text} lacks {want}");
        }
        assert!(exploded(229.0, Some(2.3), 1, 0.1).is_none());
        assert!(exploded(231.0, Some(2.3), 1, 0.1).is_some());
        assert!(exploded(1e9, None, 1, 0.1).is_none());
    }
}
