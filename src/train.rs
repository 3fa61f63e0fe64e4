//! The epoch loop: seeded shuffling, minibatch step records (the last partial minibatch
//! included, as PyTorch's `drop_last=False`), the learning-rate schedule, evaluation after
//! every epoch, early stopping and the per-epoch report. Works with any [`Engine`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::Serialize;

use crate::config::{RunConfig, check_batch_size};
use crate::engine::{Engine, EvalSet, Evaluation};
use crate::error::{Error, Result};
use crate::schedule::{HparamSchedule, PlateauState};
use crate::step::StepSums;
pub use crate::step::{epoch_order, step_records, validation_split};

/// One epoch's results, as printed and as written to `--metrics` (one JSON object per line).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate of the epoch's first step.
    pub lr: f64,
    /// Mean loss per sample over the epoch's minibatches (weights changing as it goes).
    pub train_loss: f64,
    /// Fraction of training samples predicted correctly during the epoch.
    pub train_accuracy: f64,
    pub test_loss: f64,
    pub test_accuracy: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Wall time of the training part of the epoch (evaluation excluded), s.
    pub epoch_seconds: f64,
    /// Training samples per second.
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

/// Finds the first minibatch whose loss is not finite.
fn first_non_finite(sums: &[StepSums]) -> Option<(usize, Option<f32>)> {
    let bad = sums.iter().position(|s| !s[0].is_finite())?;
    let last = sums[..bad].last().map(|s| s[0]);
    Some((bad, last))
}

/// Drives an [`Engine`] through epochs, with the settings the engine was opened with.
pub struct Trainer<'e> {
    engine: &'e mut dyn Engine,
    cfg: RunConfig,
    train_indices: Vec<u32>,
    has_validation: bool,
    global_step: u64,
    plateau: Option<PlateauState>,
    best_val_loss: f64,
    epochs_since_best: usize,
    stop: Option<Arc<AtomicBool>>,
    hparams: Option<HparamSchedule>,
}

impl<'e> Trainer<'e> {
    /// A trainer for the run `engine` was opened for ([`Engine::setup`]): its epochs,
    /// minibatch size, schedule, seed, validation split and early stopping.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`validate`] (the engine checked the same at opening, so
    /// this fails only for engines that did not).
    pub fn new(engine: &'e mut dyn Engine) -> Result<Trainer<'e>> {
        let setup = engine.setup();
        let cfg = setup.config.clone();
        let train_indices = setup.train_indices.clone();
        let has_validation = !setup.validation.is_empty();
        validate(&cfg, train_indices.len())?;
        let plateau = cfg.schedule.plateau_state();
        Ok(Trainer {
            engine,
            cfg,
            train_indices,
            has_validation,
            global_step: 0,
            plateau,
            best_val_loss: f64::INFINITY,
            epochs_since_best: 0,
            stop: None,
            hparams: None,
        })
    }

    /// Makes the run stoppable: once `flag` is set (by a Ctrl-C handler, say), the epoch in
    /// progress stops at the next step boundary the engine allows (see
    /// [`Engine::train_epoch_until`]) and [`Trainer::run_epoch`] returns
    /// [`Error::Interrupted`], with the parameters those after the last finished step.
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    /// Trains epoch `e` with the base learning rate and weight decay of `schedule`'s epoch
    /// `e` (replaying a population-based-training schedule, [`crate::tune::pbt`]): before
    /// each epoch the schedule's lr replaces the base lr of the run's learning-rate schedule
    /// and its weight decay the SGD weight decay ([`Engine::set_sgd`]; the momentum buffer
    /// is kept). The run trains the schedule's epochs (as many as it lists).
    ///
    /// # Errors
    /// As [`HparamSchedule::validate`] and [`HparamSchedule::check_schedule`].
    pub fn set_hparam_schedule(&mut self, schedule: HparamSchedule) -> Result<()> {
        schedule.validate()?;
        HparamSchedule::check_schedule(&self.cfg.schedule)?;
        self.cfg.epochs = schedule.len();
        self.hparams = Some(schedule);
        Ok(())
    }

    /// Applies epoch `epoch`'s entry of the hparam schedule, if any.
    fn apply_hparams(&mut self, epoch: usize) -> Result<()> {
        let Some(h) = self.hparams.as_ref().map(|s| s.at(epoch)) else {
            return Ok(());
        };
        let Some(h) = h else {
            return Err(Error::InvalidConfig {
                name: "epoch",
                value: (epoch + 1).to_string(),
                reason: format!(
                    "the hparam schedule lists {} epochs",
                    self.hparams.as_ref().map_or(0, HparamSchedule::len)
                ),
            });
        };
        self.cfg.schedule.base_lr = h.lr;
        if self.cfg.sgd.weight_decay != h.weight_decay {
            let sgd = crate::optim::SgdConfig {
                weight_decay: h.weight_decay,
                ..self.cfg.sgd.clone()
            };
            self.engine.set_sgd(&sgd)?;
            self.cfg.sgd = sgd;
        }
        Ok(())
    }

    /// Epochs [`Trainer::fit`] runs: the configuration's, or the hparam schedule's.
    pub fn epochs(&self) -> usize {
        self.cfg.epochs
    }

    /// Training steps finished since the start of the run, interrupted epochs included.
    pub fn global_step(&self) -> u64 {
        self.global_step
    }

    /// Number of minibatches per epoch.
    pub fn steps_per_epoch(&self) -> usize {
        self.train_indices.len().div_ceil(self.cfg.batch_size)
    }

    /// Learning rate of step `step` of epoch `epoch` (0-based).
    fn lr_at(&self, epoch: usize, step: usize) -> f64 {
        match &self.plateau {
            Some(p) => p.lr(),
            None => self.cfg.schedule.lr_at(epoch, step, self.steps_per_epoch()),
        }
    }

    /// Runs epoch `epoch` (0-based) and evaluates. `progress` gets finished steps.
    ///
    /// # Errors
    /// [`Error::NonFiniteLoss`] naming the epoch, step and last finite loss; engine errors.
    pub fn run_epoch(
        &mut self,
        epoch: usize,
        progress: &mut dyn FnMut(usize),
    ) -> Result<EpochReport> {
        self.apply_hparams(epoch)?;
        let order = epoch_order(&self.train_indices, self.cfg.seed, epoch);
        let steps = step_records(order.len(), self.cfg.batch_size, self.global_step, |i| {
            self.lr_at(epoch, i)
        });
        let interrupted = |step| Error::Interrupted {
            epoch: epoch + 1,
            step,
            steps: steps.len(),
        };
        if self
            .stop
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
        {
            return Err(interrupted(0));
        }
        let start = Instant::now();
        let sums = match &self.stop {
            Some(flag) => self
                .engine
                .train_epoch_until(&order, &steps, progress, flag)?,
            None => self.engine.train_epoch(&order, &steps, progress)?,
        };
        let seconds = start.elapsed().as_secs_f64();
        if let Some((step, last)) = first_non_finite(&sums) {
            let last_finite = match last {
                Some(l) => {
                    let mean = l / steps[step - 1].batch as f32;
                    if mean.abs() < 1e6 {
                        format!("{mean:.4}")
                    } else {
                        format!("{mean:.4e}")
                    }
                }
                None => "none in this epoch".into(),
            };
            return Err(Error::NonFiniteLoss {
                epoch: epoch + 1,
                step: step + 1,
                last_finite,
            });
        }
        self.global_step += sums.len() as u64;
        if sums.len() < steps.len() {
            return Err(interrupted(sums.len()));
        }
        let n = order.len() as f64;
        let train_loss = sums.iter().map(|s| f64::from(s[0])).sum::<f64>() / n;
        let train_accuracy = sums.iter().map(|s| f64::from(s[1])).sum::<f64>() / n;
        let test = self.engine.evaluate(EvalSet::Test)?;
        let val: Option<Evaluation> = if !self.has_validation {
            None
        } else {
            Some(self.engine.evaluate(EvalSet::Validation)?)
        };
        let lr = f64::from(steps[0].lr);
        if let Some(p) = &mut self.plateau {
            // ReduceLROnPlateau watches the validation loss, or the training loss without
            // a validation split; never the test set.
            p.step(val.map_or(train_loss, |v| v.loss));
        }
        if let Some(v) = val {
            if v.loss < self.best_val_loss {
                self.best_val_loss = v.loss;
                self.epochs_since_best = 0;
            } else {
                self.epochs_since_best += 1;
            }
        }
        Ok(EpochReport {
            epoch: epoch + 1,
            lr,
            train_loss,
            train_accuracy,
            test_loss: test.loss,
            test_accuracy: test.accuracy,
            val_loss: val.map(|v| v.loss),
            val_accuracy: val.map(|v| v.accuracy),
            epoch_seconds: seconds,
            samples_per_second: n / seconds.max(1e-9),
        })
    }

    /// True when early stopping's patience has run out.
    pub fn should_stop(&self) -> bool {
        self.cfg
            .early_stop_patience
            .is_some_and(|p| self.epochs_since_best >= p)
    }

    /// True when the last epoch gave the best validation loss so far.
    pub fn last_was_best(&self) -> bool {
        self.epochs_since_best == 0 && self.best_val_loss.is_finite()
    }

    /// The engine (for reading parameters between epochs).
    pub fn engine(&mut self) -> &mut dyn Engine {
        self.engine
    }

    /// Runs every epoch, calling `on_epoch` after each; stops early when patience runs out.
    ///
    /// # Errors
    /// As [`Trainer::run_epoch`], and whatever `on_epoch` returns.
    pub fn fit(
        &mut self,
        on_epoch: &mut dyn FnMut(&mut Trainer<'_>, &EpochReport) -> Result<()>,
    ) -> Result<Vec<EpochReport>> {
        let mut history = Vec::new();
        for epoch in 0..self.cfg.epochs {
            let report = self.run_epoch(epoch, &mut |_| {})?;
            on_epoch(self, &report)?;
            history.push(report);
            if self.should_stop() {
                break;
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_non_finite_names_the_step_and_the_last_finite_loss() {
        let sums = [
            [1.0, 0.0],
            [2.0, 0.0],
            [f32::INFINITY, 0.0],
            [f32::NAN, 0.0],
        ];
        assert_eq!(first_non_finite(&sums), Some((2, Some(2.0))));
        assert_eq!(first_non_finite(&sums[..2]), None);
        assert_eq!(first_non_finite(&[[f32::NAN, 0.0]]), Some((0, None)));
    }
}
