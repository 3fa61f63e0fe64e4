//! [`LrSchedule`]: a main [`Schedule`] behind an optional linear warm-up, the type the
//! trainer asks for each step's learning rate.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{check, check_base_lr};
use super::{PlateauState, Schedule, ScheduleError};

/// PyTorch's default `LinearLR(start_factor=1/3)`, used as the default warm-up start factor.
pub const DEFAULT_WARMUP_START_FACTOR: f64 = 1.0 / 3.0;

/// A main [`Schedule`] with optional linear warm-up, as PyTorch's
///
/// ```text
/// SequentialLR(optimizer,
///              schedulers=[LinearLR(optimizer, start_factor=warmup_start_factor,
///                                   end_factor=1.0, total_iters=warmup_epochs),
///                          main_schedule],
///              milestones=[warmup_epochs])
/// ```
///
/// * Epochs `e < warmup_epochs` use `LinearLR`'s closed form
///   `base_lr * (start_factor + (1 - start_factor) * e / warmup_epochs)`; note that, as in
///   torch, the last warm-up epoch is still below `base_lr` (`base_lr` is reached at epoch
///   `warmup_epochs`, where the main schedule starts).
/// * Epochs `e >= warmup_epochs` use the main schedule at `t = e - warmup_epochs`
///   (`SequentialLR` restarts it at `last_epoch = 0` on the milestone). So `Cosine`'s
///   `t_max`, `Step`'s `step_size` and `MultiStep`'s milestones count epochs **after**
///   warm-up: for a total of `E` epochs with one cosine decay use `t_max = E - warmup_epochs`.
/// * `Constant` after warm-up is `base_lr` (= `LinearLR` alone).
/// * Warm-up is rejected for `OneCycle` (per-step, has its own warm-up phase) and `Plateau`
///   (`SequentialLR` rejects `ReduceLROnPlateau`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    /// The optimizer's initial lr (`initial_lr`/`base_lrs` in torch); finite and `> 0`
    /// ([`crate::optim::validate_lr`]). Checked but otherwise ignored by `OneCycle`.
    pub base_lr: f64,
    /// The main schedule.
    pub schedule: Schedule,
    /// `LinearLR(total_iters=...)`; 0 disables warm-up.
    pub warmup_epochs: usize,
    /// `LinearLR(start_factor=...)`, in (0, 1]; only checked when `warmup_epochs > 0`.
    /// Default [`DEFAULT_WARMUP_START_FACTOR`] (PyTorch's 1/3).
    pub warmup_start_factor: f64,
}

impl LrSchedule {
    /// `schedule` with base lr `base_lr` and no warm-up.
    pub fn new(base_lr: f64, schedule: Schedule) -> Self {
        LrSchedule {
            base_lr,
            schedule,
            warmup_epochs: 0,
            warmup_start_factor: DEFAULT_WARMUP_START_FACTOR,
        }
    }

    /// Add a `LinearLR(start_factor, end_factor=1.0, total_iters=epochs)` warm-up.
    pub fn with_warmup(mut self, epochs: usize, start_factor: f64) -> Self {
        self.warmup_epochs = epochs;
        self.warmup_start_factor = start_factor;
        self
    }

    /// Validate `base_lr` (a learning rate by [`crate::optim::validate_lr`]'s rule), the
    /// warm-up (`0 < warmup_start_factor <= 1`, as torch's `LinearLR`; not combined with
    /// `OneCycle`/`Plateau`) and the main schedule ([`Schedule::validate`]). Call it once:
    /// [`lr_at`](Self::lr_at) trusts it and does not check again each step.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check_base_lr(self.base_lr)?;
        if self.warmup_epochs > 0 {
            match self.schedule {
                Schedule::OneCycle { .. } => {
                    return Err(ScheduleError::WarmupUnsupported {
                        schedule: "onecycle",
                    });
                }
                Schedule::Plateau(_) => {
                    return Err(ScheduleError::WarmupUnsupported {
                        schedule: "plateau",
                    });
                }
                _ => {}
            }
            check(
                self.warmup_start_factor > 0.0 && self.warmup_start_factor <= 1.0,
                "warmup",
                "warmup_start_factor",
                self.warmup_start_factor,
                "0 < warmup_start_factor <= 1",
            )?;
        }
        self.schedule.validate()
    }

    /// True when the schedule is stepped per optimizer step (`OneCycle`).
    pub fn is_per_step(&self) -> bool {
        self.schedule.is_per_step()
    }

    /// A fresh [`PlateauState`] for a `Plateau` schedule (`None` otherwise).
    pub fn plateau_state(&self) -> Option<PlateauState> {
        match &self.schedule {
            Schedule::Plateau(cfg) => Some(PlateauState::new(*cfg, self.base_lr)),
            _ => None,
        }
    }

    /// Global optimizer step `epoch * steps_per_epoch + step_in_epoch` (`None` on overflow).
    pub fn global_step(
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> Option<usize> {
        epoch
            .checked_mul(steps_per_epoch)?
            .checked_add(step_in_epoch)
    }

    /// The lr in use for optimizer step `step_in_epoch` of epoch `epoch` (both 0-based).
    ///
    /// Epoch-based schedules depend only on `epoch`; `OneCycle` uses the global step
    /// `epoch * steps_per_epoch + step_in_epoch` and returns
    /// [`ScheduleError::PastTotalSteps`] when it exceeds `total_steps` (the point where
    /// torch raises). `Plateau` returns [`ScheduleError::StatefulSchedule`].
    ///
    /// Does not validate: call [`validate`](Self::validate) once before the first step (the
    /// trainer does, in [`crate::train::validate`]). The value for an invalid configuration
    /// is unspecified (never a panic).
    pub fn try_lr_at(
        &self,
        epoch: usize,
        step_in_epoch: usize,
        steps_per_epoch: usize,
    ) -> Result<f64, ScheduleError> {
        if let Schedule::OneCycle { total_steps, .. } = self.schedule {
            let step = Self::global_step(epoch, step_in_epoch, steps_per_epoch).ok_or(
                ScheduleError::PastTotalSteps {
                    step: usize::MAX,
                    total_steps,
                },
            )?;
            return self.schedule.closed_form(self.base_lr, step);
        }
        if epoch < self.warmup_epochs {
            // LinearLR closed form (end_factor = 1):
            // base_lr * (start + (end - start) * min(total_iters, last_epoch) / total_iters)
            let sf = self.warmup_start_factor;
            let w = self.warmup_epochs as f64;
            return Ok(self.base_lr * (sf + (1.0 - sf) * epoch as f64 / w));
        }
        self.schedule
            .closed_form(self.base_lr, epoch - self.warmup_epochs)
    }

    /// Infallible [`try_lr_at`](Self::try_lr_at), for the trainer's per-step loop:
    /// * `OneCycle` past `total_steps` is clamped to the schedule's final lr
    ///   `max_lr / div_factor / final_div_factor` (torch would raise instead);
    /// * `Plateau` returns `base_lr` (its lr before any metric; use [`PlateauState`]).
    ///
    /// Like `try_lr_at`, trusts an earlier [`validate`](Self::validate) and does not check
    /// again.
    pub fn lr_at(&self, epoch: usize, step_in_epoch: usize, steps_per_epoch: usize) -> f64 {
        match self.try_lr_at(epoch, step_in_epoch, steps_per_epoch) {
            Ok(lr) => lr,
            Err(ScheduleError::PastTotalSteps { .. }) => {
                self.schedule.one_cycle_min_lr().unwrap_or(f64::NAN)
            }
            Err(ScheduleError::StatefulSchedule) => self.base_lr,
            // Evaluation returns no other error.
            Err(_) => f64::NAN,
        }
    }
}

impl fmt::Display for LrSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (base_lr={}", self.schedule, self.base_lr)?;
        if self.warmup_epochs > 0 {
            write!(
                f,
                ", warmup_epochs={}, warmup_start_factor={}",
                self.warmup_epochs, self.warmup_start_factor
            )?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::PlateauConfig;

    #[test]
    fn plateau_via_lr_schedule() {
        let s = LrSchedule::new(0.1, Schedule::Plateau(PlateauConfig::default()));
        assert_eq!(s.try_lr_at(0, 0, 1), Err(ScheduleError::StatefulSchedule));
        assert_eq!(s.lr_at(3, 0, 1), 0.1);
        let st = s.plateau_state().unwrap();
        assert_eq!(st.lr(), 0.1);
        assert!(
            LrSchedule::new(0.1, Schedule::Constant)
                .plateau_state()
                .is_none()
        );
    }

    /// Regression (issue 11): `lr_at` re-ran `validate` on every optimizer step. Evaluation
    /// now trusts the one `validate` at start-up, so an unvalidated invalid schedule is
    /// evaluated as given (here a negative base lr comes back as it is, not as NaN).
    #[test]
    fn evaluation_does_not_revalidate() {
        let s = LrSchedule::new(-0.1, Schedule::Constant);
        assert!(s.validate().is_err());
        assert_eq!(s.lr_at(0, 0, 1), -0.1);
    }

    /// `base_lr` follows the optimizer's learning-rate rule: finite and > 0.
    #[test]
    fn base_lr_is_a_learning_rate() {
        for bad in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let s = LrSchedule::new(bad, Schedule::Constant);
            assert!(crate::optim::validate_lr(bad).is_err());
            match s.validate() {
                Err(ScheduleError::InvalidParameter { param, .. }) => assert_eq!(param, "base_lr"),
                other => panic!("base_lr {bad}: {other:?}"),
            }
        }
        assert_eq!(
            LrSchedule::new(-0.1, Schedule::Constant)
                .validate()
                .unwrap_err()
                .to_string(),
            "invalid lr parameter base_lr = -0.1: expected a finite lr > 0"
        );
        assert!(LrSchedule::new(1e-9, Schedule::Constant).validate().is_ok());
    }

    #[test]
    fn display() {
        let s = LrSchedule::new(
            0.1,
            Schedule::Cosine {
                t_max: 10,
                eta_min: 0.0,
            },
        )
        .with_warmup(2, 0.5);
        assert_eq!(
            s.to_string(),
            "cosine(t_max=10, eta_min=0) (base_lr=0.1, warmup_epochs=2, warmup_start_factor=0.5)"
        );
    }
}
