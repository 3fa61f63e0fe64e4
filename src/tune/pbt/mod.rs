//! Population-based training (Jaderberg et al. 2017, "Population Based Training of Neural
//! Networks", arXiv:1711.09846): K members train at once ([`crate::train::Trainer`]); every
//! `interval` epochs the worst members copy a better member's weights (exploit) and
//! continue with perturbed hyperparameters (explore).
//!
//! - **Start**: K draws of learning rate, weight decay, momentum and minibatch size from the
//!   sweep's [`SearchSpace`], as random search draws them ([`initial_hparams`]); hidden
//!   sizes and epochs must be one value and the minibatch sizes a list of multiples of its
//!   smallest ([`fixed_settings`]): members share one minibatch stream (in micro-steps of
//!   the smallest minibatch, [`crate::step`]) and run the same epochs. Every member starts
//!   from the same weights (the sweep's seed, as every trial of a sweep does), so members
//!   differ only in their hyperparameters.
//! - **Exploit** (truncation selection, [`explore::rank`]): after epochs `E, 2E, ...`
//!   (not after the last), members are ranked by validation accuracy (diverged or idle
//!   members last, ties to the lower index). Each member of the bottom `ceil(K · quantile)`
//!   (at most `K / 2`) copies parameters and momentum buffer, on the device, from a
//!   uniformly drawn training member of the top as many ([`Trainer::exploit`]),
//!   and takes over its hyperparameters (minibatch size included) and schedule position:
//!   it goes on as a copy of that member, whatever the two minibatch sizes.
//! - **Explore** ([`explore::perturb`]): the copied learning rate and weight decay are each,
//!   independently, resampled from the space with probability `resample`, else multiplied
//!   by 0.8 or 1.25 (a fair coin); a weight decay of 0 stays 0 unless resampled. Momentum
//!   and minibatch size are copied unchanged: explore never changes a batch size (a factor
//!   of 0.8 or 1.25 is no batch size, and a member's minibatch must stay a multiple of the
//!   population's smallest); exploit spreads the better ones. Every draw comes from one
//!   ChaCha8 stream seeded with the sweep's seed: the same seed gives the same lineage.
//!
//! The run's [`PbtRecord`] holds every member's hyperparameters and metrics per epoch and
//! the lineage (one [`ExploitEvent`] per copy). The best member (highest validation
//! accuracy after the last epoch) has a hyperparameter schedule: per epoch, the lr and
//! weight decay its weights were trained with, following its lineage back through the
//! members it copied ([`PbtRecord::schedule_of`]). `wgtrain train --hparam-schedule FILE`
//! replays it from scratch ([`crate::schedule::HparamSchedule`]) at the best member's
//! minibatch size; with the sweep's seed, data, model and SGD flags on the CPU, the replay's
//! weights are bit for bit the best member's when its lineage kept the population's
//! smallest minibatch size, because a copy carries weights, momentum and step count, and
//! every member sees the minibatches a single run sees. A lineage at a larger minibatch
//! replays to the rounding of its gradient sums' order; one that crossed minibatch sizes
//! ([`BestMember::batch_sizes`] lists them) replays only approximately, at the last.

pub mod explore;
pub mod output;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::error::{Error, Result};
use crate::schedule::{EpochHparams, HparamSchedule};
use crate::train::{MemberOutcome, Trainer};
use crate::tune::space::{SearchSpace, Values};

pub use explore::Change;

/// Default members of a population (`--population` with `--search pbt`).
pub const DEFAULT_POPULATION: usize = 8;
/// Default epochs between exploit steps (`--pbt-interval`).
pub const DEFAULT_INTERVAL: usize = 2;
/// Default fraction of the population replaced at each exploit step (`--pbt-quantile`).
pub const DEFAULT_QUANTILE: f64 = 0.25;
/// Default probability of resampling a hyperparameter instead of perturbing it
/// (`--pbt-resample`).
pub const DEFAULT_RESAMPLE: f64 = 0.25;
/// The factors a perturbation multiplies by (Jaderberg et al. 2017, section 4.1).
pub const PERTURB_FACTORS: [f64; 2] = [0.8, 1.25];

/// How a PBT run exploits and explores.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PbtSettings {
    /// Epochs between exploit steps, >= 1.
    pub interval: usize,
    /// Fraction of the population in the top and in the bottom group, in (0, 0.5].
    pub quantile: f64,
    /// Probability of resampling a hyperparameter from the space, in [0, 1].
    pub resample: f64,
    /// Seeds the initial draws and the exploit/explore stream.
    pub seed: u64,
}

impl PbtSettings {
    /// Checks the ranges.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting (by its flag) and its range.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, value: String, reason: &str| Error::InvalidConfig {
            name,
            value,
            reason: reason.into(),
        };
        if self.interval == 0 {
            return Err(bad("pbt-interval", "0".into(), "must be at least 1 epoch"));
        }
        if !(self.quantile > 0.0 && self.quantile <= 0.5) {
            return Err(bad(
                "pbt-quantile",
                self.quantile.to_string(),
                "must be in (0, 0.5]: the top and bottom groups may not overlap",
            ));
        }
        if !(0.0..=1.0).contains(&self.resample) {
            return Err(bad(
                "pbt-resample",
                self.resample.to_string(),
                "is a probability: must be in [0, 1]",
            ));
        }
        Ok(())
    }

    /// Members replaced at each exploit step in a population of `k`: `ceil(k · quantile)`,
    /// at most `k / 2` (as Ray Tune's `PopulationBasedTraining`).
    pub fn group_size(&self, k: usize) -> usize {
        ((k as f64 * self.quantile).ceil() as usize).min(k / 2)
    }
}

/// The hyperparameters PBT varies per member.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Hparams {
    /// Base learning rate of the member's schedule.
    pub lr: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// SGD momentum (drawn at the start, copied on exploit, never perturbed).
    pub momentum: f64,
    /// Minibatch size (drawn at the start, copied on exploit, never perturbed).
    pub batch_size: usize,
}

impl Hparams {
    /// The hyperparameters of `cfg`.
    pub fn of(cfg: &RunConfig) -> Hparams {
        Hparams {
            lr: cfg.schedule.base_lr,
            weight_decay: cfg.sgd.weight_decay,
            momentum: cfg.sgd.momentum,
            batch_size: cfg.batch_size,
        }
    }

    /// `cfg` with these hyperparameters.
    pub fn apply(&self, cfg: &RunConfig) -> RunConfig {
        let mut c = cfg.clone();
        c.schedule.base_lr = self.lr;
        c.sgd.weight_decay = self.weight_decay;
        c.sgd.momentum = self.momentum;
        c.batch_size = self.batch_size;
        c
    }
}

/// What every member shares, read off a search space: `(smallest minibatch size, hidden
/// sizes, epochs)`; the members' minibatch sizes are drawn from the space's list, each a
/// multiple of the smallest.
///
/// # Errors
/// [`Error::InvalidConfig`] when the space gives several values (or a range) for the
/// hidden sizes or the epochs, a range of minibatch sizes, or a minibatch size that is not
/// a multiple of the smallest, naming the flag and the fix.
pub fn fixed_settings(space: &SearchSpace) -> Result<(usize, Vec<usize>, usize)> {
    let one = |name: &'static str, v: &Values| match v {
        Values::List(l) if l.len() == 1 => Ok(l[0].round().max(1.0) as usize),
        _ => Err(Error::InvalidConfig {
            name,
            value: v.to_string(),
            reason: "PBT members run the same epochs: give one value (e.g. --epochs 10); \
                     PBT varies lr, weight decay, momentum and batch size"
                .into(),
        }),
    };
    let batches: Vec<usize> = match &space.batch_size {
        Values::List(l) => l.iter().map(|b| b.round().max(1.0) as usize).collect(),
        v => {
            return Err(Error::InvalidConfig {
                name: "batch-size",
                value: v.to_string(),
                reason: "PBT members share one minibatch stream in steps of the smallest \
                         batch size: give a list (e.g. --batch-size 32,64,128)"
                    .into(),
            });
        }
    };
    let batch = batches.iter().copied().min().unwrap_or(1);
    if let Some(b) = batches.iter().find(|b| !b.is_multiple_of(batch)) {
        return Err(Error::InvalidConfig {
            name: "batch-size",
            value: space.batch_size.to_string(),
            reason: format!(
                "{b} is not a multiple of the smallest, {batch}: PBT members share one \
                 minibatch stream in steps of the smallest batch size; give multiples of \
                 it (e.g. powers of two)"
            ),
        });
    }
    let epochs = one("epochs", &space.epochs)?;
    let hidden = match space.hidden.0.as_slice() {
        [h] => h.clone(),
        _ => {
            return Err(Error::InvalidConfig {
                name: "hidden",
                value: format!("{} architectures", space.hidden.0.len()),
                reason: "PBT copies weights between members, so they share one architecture: \
                         give one (e.g. --hidden 256)"
                    .into(),
            });
        }
    };
    Ok((batch, hidden, epochs))
}

/// The K members' starting hyperparameters: random search's draws ([`SearchSpace::random`]
/// with the same seed).
///
/// # Errors
/// As [`SearchSpace::validate`] and [`fixed_settings`].
pub fn initial_hparams(space: &SearchSpace, k: usize, seed: u64) -> Result<Vec<Hparams>> {
    space.validate()?;
    fixed_settings(space)?;
    Ok(space
        .random(k, seed)
        .into_iter()
        .map(|t| Hparams {
            lr: t.lr,
            weight_decay: t.weight_decay,
            momentum: t.momentum,
            batch_size: t.batch_size,
        })
        .collect())
}

/// What a member did in one epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EpochStatus {
    /// It trained and was evaluated.
    Trained,
    /// Its loss turned non-finite during the epoch; it is frozen until exploited.
    Diverged,
    /// It did not train (frozen after a divergence).
    Idle,
}

/// One member's hyperparameters and metrics in one epoch (a row of `pbt_members.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberEpoch {
    /// The member (slot) index.
    pub member: usize,
    /// 1-based epoch.
    pub epoch: usize,
    /// Base learning rate in use during the epoch.
    pub lr: f64,
    /// Weight decay in use during the epoch.
    pub weight_decay: f64,
    /// Momentum in use during the epoch.
    pub momentum: f64,
    /// Minibatch size in use during the epoch.
    pub batch_size: usize,
    /// What the member did.
    pub status: EpochStatus,
    /// Learning rate of the epoch's first step (the schedule's value).
    pub epoch_lr: Option<f64>,
    /// Mean training loss of the epoch.
    pub train_loss: Option<f64>,
    /// Training accuracy of the epoch.
    pub train_accuracy: Option<f64>,
    /// Validation loss after the epoch.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch (the ranking's score).
    pub val_accuracy: Option<f64>,
    /// Wall time of the population's epoch, s (shared by all members).
    pub epoch_seconds: Option<f64>,
}

impl MemberEpoch {
    /// The ranking score: validation accuracy of a trained epoch, else -inf.
    pub fn score(&self) -> f64 {
        match (self.status, self.val_accuracy) {
            (EpochStatus::Trained, Some(a)) if !a.is_nan() => a,
            _ => f64::NEG_INFINITY,
        }
    }
}

/// One exploit-and-explore step of one member (a row of `pbt_lineage.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExploitEvent {
    /// Epochs finished when it happened: the member trains epoch `epoch + 1` on.
    pub epoch: usize,
    /// The member that was replaced (bottom group).
    pub member: usize,
    /// The member it copied (top group).
    pub from: usize,
    /// The replaced member's validation accuracy after epoch `epoch`.
    pub member_val_accuracy: Option<f64>,
    /// The copied member's validation accuracy after epoch `epoch`.
    pub from_val_accuracy: Option<f64>,
    /// The replaced member's hyperparameters before.
    pub old: Hparams,
    /// The copied member's hyperparameters (explore starts from them).
    pub copied: Hparams,
    /// The member's hyperparameters from epoch `epoch + 1` on.
    pub new: Hparams,
    /// How the learning rate was explored.
    pub lr_change: Change,
    /// How the weight decay was explored.
    pub weight_decay_change: Change,
}

/// A stretch of epochs of the best member's lineage trained in one member slot.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ancestor {
    /// The member slot.
    pub member: usize,
    /// First epoch (1-based) of the stretch.
    pub first_epoch: usize,
    /// Last epoch (1-based) of the stretch.
    pub last_epoch: usize,
}

/// The best member and the schedule that replays it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestMember {
    /// The member with the highest validation accuracy after the last epoch (the lower
    /// index on a tie).
    pub member: usize,
    /// Its validation accuracy after the last epoch.
    pub val_accuracy: f64,
    /// Its validation loss after the last epoch.
    pub val_loss: Option<f64>,
    /// Its hyperparameters after the last exploit step.
    pub final_hparams: Hparams,
    /// Its lineage, oldest stretch first: whose slot trained which epochs of its weights.
    pub ancestry: Vec<Ancestor>,
    /// Per epoch, the lr and weight decay its weights were trained with.
    pub schedule: HparamSchedule,
    /// The minibatch sizes its lineage trained at, in order (one when it kept one).
    #[serde(default)]
    pub batch_sizes: Vec<usize>,
}

/// Everything a PBT run did (`pbt.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PbtRecord {
    /// The exploit/explore settings.
    pub settings: PbtSettings,
    /// Members K.
    pub population: usize,
    /// Epochs every member trains.
    pub epochs: usize,
    /// The smallest minibatch size of the space (the population's micro-batch); each
    /// member's own is in its [`Hparams`].
    pub batch_size: usize,
    /// Hidden sizes of every member.
    pub hidden: Vec<usize>,
    /// Each member's starting hyperparameters.
    pub initial: Vec<Hparams>,
    /// Every member's epochs, epoch by epoch (member order within an epoch).
    pub history: Vec<MemberEpoch>,
    /// Every exploit step, in order.
    pub lineage: Vec<ExploitEvent>,
    /// The best member once the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub best: Option<BestMember>,
}

impl PbtRecord {
    /// Member `member`'s row of epoch `epoch` (1-based).
    pub fn row(&self, member: usize, epoch: usize) -> Option<&MemberEpoch> {
        self.history
            .iter()
            .find(|r| r.member == member && r.epoch == epoch)
    }

    /// Epochs recorded so far.
    pub fn epochs_done(&self) -> usize {
        self.history.iter().map(|r| r.epoch).max().unwrap_or(0)
    }

    /// The member ranked best after the last recorded epoch: the highest validation
    /// accuracy of a trained epoch, the lower index on a tie; `None` when no member
    /// trained that epoch.
    pub fn best_member(&self) -> Option<usize> {
        let last = self.epochs_done();
        let scores: Vec<f64> = (0..self.population)
            .map(|m| {
                self.row(m, last)
                    .map_or(f64::NEG_INFINITY, MemberEpoch::score)
            })
            .collect();
        let order = explore::rank(&scores);
        order.first().copied().filter(|&m| scores[m].is_finite())
    }

    /// The lineage of `member`'s weights, oldest first, and the hyperparameters they were
    /// trained with per epoch: walking back from the last epoch, each epoch's lr and weight
    /// decay are those of the slot that trained the weights then; at an exploit step that
    /// replaced the slot, the walk moves to the member it copied.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when an epoch of the lineage has no row (a record not
    /// produced by [`Pbt`]).
    pub fn schedule_of(&self, member: usize) -> Result<(Vec<Ancestor>, HparamSchedule)> {
        let last = self.epochs_done();
        let mut cur = member;
        let mut epochs = Vec::with_capacity(last);
        let mut ancestry: Vec<Ancestor> = Vec::new();
        for e in (1..=last).rev() {
            let row = self.row(cur, e).ok_or_else(|| Error::InvalidConfig {
                name: "pbt record",
                value: format!("member {cur}, epoch {e}"),
                reason: "has no row: the record is incomplete".into(),
            })?;
            epochs.push(EpochHparams {
                epoch: e,
                lr: row.lr,
                weight_decay: row.weight_decay,
            });
            match ancestry.last_mut() {
                Some(a) if a.member == cur => a.first_epoch = e,
                _ => ancestry.push(Ancestor {
                    member: cur,
                    first_epoch: e,
                    last_epoch: e,
                }),
            }
            if let Some(ev) = self
                .lineage
                .iter()
                .find(|ev| ev.epoch == e - 1 && ev.member == cur)
            {
                cur = ev.from;
            }
        }
        epochs.reverse();
        ancestry.reverse();
        Ok((
            ancestry,
            HparamSchedule {
                source: Some(format!(
                    "population-based training: member {member}'s lineage"
                )),
                epochs,
            },
        ))
    }
}

/// What a PBT run in progress knows besides its trainer, at an epoch boundary (after the
/// epoch's exploit step): the record so far and the position of the exploit/explore random
/// stream. With the trainer's [`crate::train::Snapshot`] it is all a run needs to go on
/// ([`Pbt::progress`], [`Pbt::resume`]). Plain serde data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PbtProgress {
    /// The record so far (no best member yet).
    pub record: PbtRecord,
    /// The exploit/explore stream's word position ([`ChaCha8Rng::get_word_pos`]), in
    /// decimal: a u128 does not fit a JSON number.
    pub rng_word_pos: String,
}

/// A PBT run in progress: the search space explore resamples from, the settings, the
/// exploit/explore random stream and the record. Drive it with [`Pbt::run`] (or
/// [`Pbt::run_epochs`] and [`Pbt::finish`]), or epoch by epoch with
/// [`Trainer::run_epoch`], [`Pbt::record_epoch`] and [`Pbt::exploit_explore`].
pub struct Pbt {
    space: SearchSpace,
    settings: PbtSettings,
    rng: ChaCha8Rng,
    record: PbtRecord,
}

/// The ChaCha8 stream of exploit/explore draws (apart from the initial draws' stream 0).
const EXPLORE_STREAM: u64 = 0x0070_6274;

impl Pbt {
    /// A run over `configs` (the members' starting configurations, e.g. [`Hparams::apply`]
    /// of [`initial_hparams`]) exploring within `space`.
    ///
    /// # Errors
    /// As [`PbtSettings::validate`] and [`fixed_settings`]; [`Error::InvalidConfig`] for
    /// fewer than 2 members, or members whose hidden sizes or epochs differ from the
    /// space's single values or whose minibatch size is not a multiple of the space's
    /// smallest, or whose learning-rate schedule cannot take a per-epoch lr
    /// ([`HparamSchedule::check_schedule`]), or with early stopping.
    pub fn new(space: SearchSpace, settings: PbtSettings, configs: &[RunConfig]) -> Result<Pbt> {
        settings.validate()?;
        let (batch_size, hidden, epochs) = fixed_settings(&space)?;
        if configs.len() < 2 {
            return Err(Error::InvalidConfig {
                name: "population",
                value: configs.len().to_string(),
                reason: "PBT needs at least 2 members to copy between (e.g. --population 8)".into(),
            });
        }
        for (m, c) in configs.iter().enumerate() {
            if !c.batch_size.is_multiple_of(batch_size) || c.hidden != hidden || c.epochs != epochs
            {
                return Err(Error::InvalidConfig {
                    name: "population",
                    value: format!("member {m}"),
                    reason: format!(
                        "has batch {}, hidden {:?}, {} epochs; the space fixes batches \
                         that are multiples of {batch_size}, hidden {hidden:?}, {epochs} epochs",
                        c.batch_size, c.hidden, c.epochs
                    ),
                });
            }
            HparamSchedule::check_schedule(&c.schedule)?;
            if c.early_stop_patience.is_some() {
                return Err(Error::InvalidConfig {
                    name: "early stop patience",
                    value: format!("member {m}"),
                    reason: "PBT members run every epoch; exploit replaces weak members".into(),
                });
            }
        }
        let mut rng = ChaCha8Rng::seed_from_u64(settings.seed);
        rng.set_stream(EXPLORE_STREAM);
        Ok(Pbt {
            record: PbtRecord {
                settings,
                population: configs.len(),
                epochs,
                batch_size,
                hidden,
                initial: configs.iter().map(Hparams::of).collect(),
                history: Vec::new(),
                lineage: Vec::new(),
                best: None,
            },
            space,
            settings,
            rng,
        })
    }

    /// The record so far.
    pub fn record(&self) -> &PbtRecord {
        &self.record
    }

    /// The run's progress, to go on from with [`Pbt::resume`]: take it between epochs (or
    /// after a stop interrupted one, which it has not recorded yet), with the trainer's
    /// snapshot.
    pub fn progress(&self) -> PbtProgress {
        PbtProgress {
            record: self.record.clone(),
            rng_word_pos: self.rng.get_word_pos().to_string(),
        }
    }

    /// The run [`Pbt::new`] starts from `space`, `settings` and `configs`, gone on to where
    /// `progress` was taken: the same record and random stream, so that with the trainer
    /// restored from the snapshot taken with it ([`Trainer::restore`]) the run ends as an
    /// uninterrupted one would.
    ///
    /// # Errors
    /// As [`Pbt::new`]; [`Error::InvalidConfig`] when `progress` is not a run of these
    /// settings, population, epochs, model and starting hyperparameters (naming what
    /// differs), already holds a best member, or its stream position does not read.
    pub fn resume(
        space: SearchSpace,
        settings: PbtSettings,
        configs: &[RunConfig],
        progress: PbtProgress,
    ) -> Result<Pbt> {
        let mut pbt = Pbt::new(space, settings, configs)?;
        let (was, now) = (&progress.record, &pbt.record);
        let bad = |what: &str, was: String, now: String| Error::InvalidConfig {
            name: "pbt state",
            value: what.to_string(),
            reason: format!("is {was} in the state but {now} in this run"),
        };
        if was.settings != now.settings {
            return Err(bad(
                "settings",
                format!("{:?}", was.settings),
                format!("{:?}", now.settings),
            ));
        }
        let shape = |r: &PbtRecord| (r.population, r.epochs, r.batch_size, r.hidden.clone());
        if shape(was) != shape(now) {
            return Err(bad(
                "(members, epochs, smallest batch, hidden)",
                format!("{:?}", shape(was)),
                format!("{:?}", shape(now)),
            ));
        }
        if was.initial != now.initial {
            return Err(bad(
                "the starting hyperparameters",
                format!("{:?}", was.initial),
                format!("{:?}", now.initial),
            ));
        }
        if was.best.is_some() {
            return Err(Error::InvalidConfig {
                name: "pbt state",
                value: "best".into(),
                reason: "holds a finished run (its best member is chosen)".into(),
            });
        }
        let pos: u128 = progress
            .rng_word_pos
            .parse()
            .map_err(|e| Error::InvalidConfig {
                name: "pbt state",
                value: progress.rng_word_pos.clone(),
                reason: format!("is not a random-stream position: {e}"),
            })?;
        pbt.rng.set_word_pos(pos);
        pbt.record = progress.record;
        Ok(pbt)
    }

    /// Records the epoch `trainer` just ran (its outcomes), with the hyperparameters each
    /// member trained it with; returns the new rows. Call it before
    /// [`Pbt::exploit_explore`].
    pub fn record_epoch(
        &mut self,
        trainer: &Trainer<'_>,
        outcomes: &[MemberOutcome],
    ) -> Vec<MemberEpoch> {
        let epoch = self.record.epochs_done() + 1;
        let rows: Vec<MemberEpoch> = outcomes
            .iter()
            .enumerate()
            .map(|(m, o)| {
                let h = Hparams::of(trainer.config(m));
                let mut row = MemberEpoch {
                    member: m,
                    epoch,
                    lr: h.lr,
                    weight_decay: h.weight_decay,
                    momentum: h.momentum,
                    batch_size: h.batch_size,
                    status: EpochStatus::Idle,
                    epoch_lr: None,
                    train_loss: None,
                    train_accuracy: None,
                    val_loss: None,
                    val_accuracy: None,
                    epoch_seconds: None,
                };
                match o {
                    MemberOutcome::Trained(r) => {
                        row.status = EpochStatus::Trained;
                        row.epoch_lr = Some(r.lr);
                        row.train_loss = Some(r.train_loss);
                        row.train_accuracy = Some(r.train_accuracy);
                        row.val_loss = r.val_loss;
                        row.val_accuracy = r.val_accuracy;
                        row.epoch_seconds = Some(r.epoch_seconds);
                    }
                    MemberOutcome::Diverged(_) => row.status = EpochStatus::Diverged,
                    MemberOutcome::Idle => {}
                }
                row
            })
            .collect();
        self.record.history.extend(rows.iter().cloned());
        rows
    }

    /// True when an exploit step follows the epochs recorded so far: every `interval`
    /// epochs, never after the last.
    pub fn exploit_due(&self) -> bool {
        let done = self.record.epochs_done();
        done > 0 && done.is_multiple_of(self.settings.interval) && done < self.record.epochs
    }

    /// The exploit-and-explore step after the last recorded epoch (see the module docs):
    /// ranks the members, copies a top member onto each bottom member on the device and
    /// gives it explored hyperparameters. Returns the events (empty when no member of the
    /// top group is training).
    ///
    /// # Errors
    /// As [`Trainer::exploit`]; [`Error::InvalidConfig`] for an explored learning
    /// rate that is not a valid one (a perturbation past f32's range).
    pub fn exploit_explore(&mut self, trainer: &mut Trainer<'_>) -> Result<Vec<ExploitEvent>> {
        let epoch = self.record.epochs_done();
        let k = self.record.population;
        let rows: Vec<Option<&MemberEpoch>> = (0..k).map(|m| self.record.row(m, epoch)).collect();
        let scores: Vec<f64> = rows
            .iter()
            .map(|r| r.map_or(f64::NEG_INFINITY, MemberEpoch::score))
            .collect();
        let n = self.settings.group_size(k);
        let order = explore::rank(&scores);
        let training = |m: usize| *trainer.status(m) == crate::train::MemberStatus::Training;
        let top: Vec<usize> = order[..n]
            .iter()
            .copied()
            .filter(|&m| training(m) && scores[m].is_finite())
            .collect();
        if top.is_empty() {
            return Ok(Vec::new());
        }
        let mut events = Vec::new();
        // Worst first.
        for &member in order[k - n..].iter().rev() {
            let from = top[rand::RngExt::random_range(&mut self.rng, 0..top.len())];
            let copied = Hparams::of(trainer.config(from));
            let (new, lr_change, weight_decay_change) =
                explore::perturb(&copied, &self.space, self.settings.resample, &mut self.rng);
            crate::optim::validate_lr(new.lr)?;
            let old = Hparams::of(trainer.config(member));
            let cfg = new.apply(trainer.config(from));
            trainer.exploit(from, member, cfg)?;
            events.push(ExploitEvent {
                epoch,
                member,
                from,
                member_val_accuracy: rows[member].and_then(|r| r.val_accuracy),
                from_val_accuracy: rows[from].and_then(|r| r.val_accuracy),
                old,
                copied,
                new,
                lr_change,
                weight_decay_change,
            });
        }
        self.record.lineage.extend(events.iter().cloned());
        Ok(events)
    }

    /// Runs every epoch: train, record, exploit and explore when due, then `on_epoch` with
    /// the trainer and the run (its record's last rows are the epoch's and the exploit
    /// steps that followed it). Then picks the best member and its schedule
    /// ([`PbtRecord::best`]) and returns the record.
    ///
    /// # Errors
    /// As [`Pbt::run_epochs`] and [`Pbt::finish`].
    pub fn run(
        mut self,
        trainer: &mut Trainer<'_>,
        on_epoch: &mut dyn FnMut(&mut Trainer<'_>, &Pbt) -> Result<()>,
    ) -> Result<PbtRecord> {
        self.run_epochs(trainer, on_epoch)?;
        self.finish(trainer)
    }

    /// The epochs of [`Pbt::run`], without picking the best member: on an error (a stop,
    /// [`Error::Interrupted`]) the run is still the caller's, for [`Pbt::progress`].
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`] and [`Pbt::exploit_explore`], and whatever
    /// `on_epoch` returns.
    pub fn run_epochs(
        &mut self,
        trainer: &mut Trainer<'_>,
        on_epoch: &mut dyn FnMut(&mut Trainer<'_>, &Pbt) -> Result<()>,
    ) -> Result<()> {
        while trainer.any_training() && self.record.epochs_done() < self.record.epochs {
            let outcomes = trainer.run_epoch(&mut |_| {})?;
            self.record_epoch(trainer, &outcomes);
            if self.exploit_due() {
                self.exploit_explore(trainer)?;
            }
            on_epoch(trainer, self)?;
        }
        Ok(())
    }

    /// Picks the best member after the last recorded epoch, its lineage and schedule, and
    /// returns the record.
    ///
    /// # Errors
    /// As [`PbtRecord::schedule_of`].
    pub fn finish(mut self, trainer: &Trainer<'_>) -> Result<PbtRecord> {
        if let Some(m) = self.record.best_member() {
            let last = self.record.epochs_done();
            let (ancestry, schedule) = self.record.schedule_of(m)?;
            let mut batch_sizes: Vec<usize> = ancestry
                .iter()
                .flat_map(|a| (a.first_epoch..=a.last_epoch).map(|e| (a.member, e)))
                .filter_map(|(member, e)| self.record.row(member, e).map(|r| r.batch_size))
                .collect();
            batch_sizes.dedup();
            let row = self.record.row(m, last);
            self.record.best = Some(BestMember {
                member: m,
                val_accuracy: row.map_or(f64::NAN, MemberEpoch::score),
                val_loss: row.and_then(|r| r.val_loss),
                final_hparams: Hparams::of(trainer.config(m)),
                ancestry,
                schedule,
                batch_sizes,
            });
        }
        Ok(self.record)
    }
}
