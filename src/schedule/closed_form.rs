//! The closed forms: [`Schedule`], PyTorch's epoch-based schedulers and `OneCycleLR`
//! evaluated from `base_lr` and the step directly, with their parameter checks.

use std::f64::consts::PI;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::check;
use super::{Anneal, PlateauConfig, ScheduleError, ScheduleKind};

/// The main learning-rate schedule. Epoch counts (`step_size`, `milestones`, `t_max`) are
/// relative to the start of the main schedule, i.e. they exclude warm-up epochs (see
/// [`LrSchedule`](super::LrSchedule)).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub enum Schedule {
    /// No scheduler: `lr = base_lr` for every epoch.
    #[default]
    Constant,
    /// `StepLR(step_size, gamma)`: `lr = base_lr * gamma ** (t // step_size)`.
    Step {
        /// Period of decay in epochs; `> 0`.
        step_size: usize,
        /// Multiplicative decay; finite and `> 0` (PyTorch default 0.1).
        gamma: f64,
    },
    /// `MultiStepLR(milestones, gamma)`: `lr = base_lr * gamma ** bisect_right(milestones, t)`.
    MultiStep {
        /// Epoch indices, strictly increasing (may be empty: no decay).
        milestones: Vec<usize>,
        /// Multiplicative decay; finite and `> 0` (PyTorch default 0.1).
        gamma: f64,
    },
    /// `ExponentialLR(gamma)`: `lr = base_lr * gamma ** t`.
    Exponential {
        /// Multiplicative decay per epoch; finite and `> 0`.
        gamma: f64,
    },
    /// `CosineAnnealingLR(T_max, eta_min)`:
    /// `lr = eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2`.
    ///
    /// For `t > T_max` the same formula is evaluated, i.e. the cosine continues
    /// periodically (back up to `base_lr` at `t = 2 * T_max`, period `2 * T_max`), which is
    /// exactly what PyTorch's recursive `get_lr` produces when stepped past `T_max`
    /// (including its special case at `(t - 1 - T_max) % (2 * T_max) == 0`). Size `t_max`
    /// to the number of post-warm-up epochs to anneal once.
    Cosine {
        /// Half-period in epochs; `> 0`.
        t_max: usize,
        /// Minimum lr; finite and `>= 0` (PyTorch default 0).
        eta_min: f64,
    },
    /// `OneCycleLR(max_lr, total_steps, pct_start, anneal_strategy, div_factor,
    /// final_div_factor, three_phase)`, stepped once per optimizer step. `base_lr` is
    /// ignored (torch overwrites `initial_lr = max_lr / div_factor`). See
    /// [`Schedule::one_cycle_lr`].
    OneCycle {
        /// Peak lr; finite and `> 0`.
        max_lr: f64,
        /// Number of optimizer steps in the cycle (`epochs * steps_per_epoch`); `>= 1`.
        total_steps: usize,
        /// Fraction of the cycle spent increasing the lr; `0 < pct_start < 1`
        /// (PyTorch default 0.3).
        pct_start: f64,
        /// `initial_lr = max_lr / div_factor`; finite and `> 0` (PyTorch default 25).
        div_factor: f64,
        /// `min_lr = initial_lr / final_div_factor`; finite and `> 0` (default 1e4).
        final_div_factor: f64,
        /// Use the three-phase variant (up, back down to `initial_lr`, then to `min_lr`).
        three_phase: bool,
        /// Annealing strategy (PyTorch default `cos`).
        anneal: Anneal,
    },
    /// `ReduceLROnPlateau(**cfg)`: stateful, see [`PlateauState`](super::PlateauState).
    Plateau(PlateauConfig),
}

impl Schedule {
    /// `OneCycleLR(max_lr, total_steps)` with PyTorch's defaults: `pct_start=0.3`,
    /// `anneal_strategy="cos"`, `div_factor=25`, `final_div_factor=1e4`, `three_phase=False`.
    pub fn one_cycle(max_lr: f64, total_steps: usize) -> Self {
        Schedule::OneCycle {
            max_lr,
            total_steps,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase: false,
            anneal: Anneal::Cos,
        }
    }

    /// The kind (name) of this schedule.
    pub fn kind(&self) -> ScheduleKind {
        match self {
            Schedule::Constant => ScheduleKind::Constant,
            Schedule::Step { .. } => ScheduleKind::Step,
            Schedule::MultiStep { .. } => ScheduleKind::MultiStep,
            Schedule::Exponential { .. } => ScheduleKind::Exponential,
            Schedule::Cosine { .. } => ScheduleKind::Cosine,
            Schedule::OneCycle { .. } => ScheduleKind::OneCycle,
            Schedule::Plateau(_) => ScheduleKind::Plateau,
        }
    }

    /// True for schedules stepped per optimizer step (`OneCycle`); false for per-epoch ones.
    pub fn is_per_step(&self) -> bool {
        matches!(self, Schedule::OneCycle { .. })
    }

    /// True for schedules whose lr depends on observed metrics (`Plateau`).
    pub fn is_stateful(&self) -> bool {
        matches!(self, Schedule::Plateau(_))
    }

    /// Check every parameter's range (see each variant's field docs). For `OneCycle` this
    /// also rejects configurations where PyTorch would divide by zero or whose phases are
    /// out of order: `pct_start * total_steps - 1` must not be `0` (torch raises
    /// `ZeroDivisionError` at step 0), and with `three_phase` the phase end steps
    /// `pct_start*total_steps - 1 < 2*pct_start*total_steps - 2 < total_steps - 1` must be
    /// strictly increasing (i.e. `1 < pct_start * total_steps < (total_steps + 1) / 2`).
    pub fn validate(&self) -> Result<(), ScheduleError> {
        let gamma_ok = |g: f64| g.is_finite() && g > 0.0;
        match self {
            Schedule::Constant => Ok(()),
            Schedule::Step { step_size, gamma } => {
                check(
                    *step_size > 0,
                    "step",
                    "step_size",
                    step_size,
                    "an integer >= 1",
                )?;
                check(
                    gamma_ok(*gamma),
                    "step",
                    "gamma",
                    gamma,
                    "a finite gamma > 0",
                )
            }
            Schedule::MultiStep { milestones, gamma } => {
                check(
                    gamma_ok(*gamma),
                    "multistep",
                    "gamma",
                    gamma,
                    "a finite gamma > 0",
                )?;
                for (i, w) in milestones.windows(2).enumerate() {
                    if w[1] <= w[0] {
                        return Err(ScheduleError::MilestonesNotIncreasing {
                            index: i + 1,
                            previous: w[0],
                            value: w[1],
                        });
                    }
                }
                Ok(())
            }
            Schedule::Exponential { gamma } => check(
                gamma_ok(*gamma),
                "exponential",
                "gamma",
                gamma,
                "a finite gamma > 0",
            ),
            Schedule::Cosine { t_max, eta_min } => {
                check(
                    *t_max > 0,
                    "cosine",
                    "t_max",
                    t_max,
                    "an integer >= 1 (epochs)",
                )?;
                check(
                    eta_min.is_finite() && *eta_min >= 0.0,
                    "cosine",
                    "eta_min",
                    eta_min,
                    "a finite eta_min >= 0",
                )
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                anneal: _,
            } => {
                const C: &str = "onecycle";
                check(
                    max_lr.is_finite() && *max_lr > 0.0,
                    C,
                    "max_lr",
                    max_lr,
                    "a finite max_lr > 0",
                )?;
                check(
                    *total_steps > 0,
                    C,
                    "total_steps",
                    total_steps,
                    "an integer >= 1",
                )?;
                check(
                    *pct_start > 0.0 && *pct_start < 1.0,
                    C,
                    "pct_start",
                    pct_start,
                    "0 < pct_start < 1",
                )?;
                check(
                    div_factor.is_finite() && *div_factor > 0.0,
                    C,
                    "div_factor",
                    div_factor,
                    "a finite div_factor > 0",
                )?;
                check(
                    final_div_factor.is_finite() && *final_div_factor > 0.0,
                    C,
                    "final_div_factor",
                    final_div_factor,
                    "a finite final_div_factor > 0",
                )?;
                let ends = one_cycle_phase_ends(*total_steps, *pct_start, *three_phase);
                let value = || format!("{pct_start} (total_steps {total_steps})");
                if ends[0] == 0.0 {
                    return Err(ScheduleError::InvalidParameter {
                        context: C,
                        param: "pct_start",
                        value: value(),
                        expected: "pct_start * total_steps != 1 (a zero-length warm-up phase; \
                                   torch raises ZeroDivisionError)",
                    });
                }
                let n = if *three_phase { 3 } else { 2 };
                if ends[..n].windows(2).any(|w| w[0] >= w[1]) {
                    return Err(ScheduleError::InvalidParameter {
                        context: C,
                        param: "pct_start",
                        value: value(),
                        expected: "strictly increasing phase end steps; three_phase needs \
                                   1 < pct_start * total_steps < (total_steps + 1) / 2",
                    });
                }
                Ok(())
            }
            Schedule::Plateau(cfg) => cfg.validate(),
        }
    }

    /// Closed-form lr of an epoch-based schedule at `t` epochs after its start (PyTorch's
    /// `_get_closed_form_lr` with `last_epoch = t`). `OneCycle` is evaluated at optimizer
    /// step `t`. Does not validate.
    pub(super) fn closed_form(&self, base_lr: f64, t: usize) -> Result<f64, ScheduleError> {
        Ok(match self {
            Schedule::Constant => base_lr,
            // base_lr * gamma ** (last_epoch // step_size); Python's float ** int is pow().
            Schedule::Step { step_size, gamma } => match t.checked_div(*step_size) {
                Some(k) => base_lr * gamma.powf(k as f64),
                None => f64::NAN,
            },
            // base_lr * gamma ** bisect_right(sorted(milestones), last_epoch)
            Schedule::MultiStep { milestones, gamma } => {
                let k = milestones.partition_point(|&m| m <= t);
                base_lr * gamma.powf(k as f64)
            }
            // base_lr * gamma ** last_epoch
            Schedule::Exponential { gamma } => base_lr * gamma.powf(t as f64),
            // eta_min + (base_lr - eta_min) * (1 + cos(pi * last_epoch / T_max)) / 2
            Schedule::Cosine { t_max, eta_min } => {
                eta_min + (base_lr - eta_min) * (1.0 + (PI * t as f64 / *t_max as f64).cos()) / 2.0
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                anneal,
            } => Self::one_cycle_lr(
                *max_lr,
                *total_steps,
                *pct_start,
                *div_factor,
                *final_div_factor,
                *three_phase,
                *anneal,
                t,
            )?,
            Schedule::Plateau(_) => return Err(ScheduleError::StatefulSchedule),
        })
    }

    /// PyTorch `OneCycleLR.get_lr()` at `last_epoch = step` (one parameter group):
    ///
    /// ```text
    /// initial_lr = max_lr / div_factor;  min_lr = initial_lr / final_div_factor
    /// phases (end_step, start_lr -> end_lr):
    ///   two-phase:   (pct_start*T - 1, initial -> max), (T - 1, max -> min)
    ///   three-phase: (pct_start*T - 1, initial -> max), (2*pct_start*T - 2, max -> initial),
    ///                (T - 1, initial -> min)
    /// start_step = 0; for each phase: if step <= end_step or it is the last phase:
    ///     pct = (step - start_step) / (end_step - start_step); lr = anneal(start, end, pct)
    /// else start_step = end_step
    /// ```
    ///
    /// `step == total_steps` is allowed, as in torch (which only raises when
    /// `last_epoch > total_steps`); it extrapolates the last phase with `pct > 1`.
    /// `step > total_steps` returns [`ScheduleError::PastTotalSteps`]. Does not validate.
    #[allow(clippy::too_many_arguments)]
    pub fn one_cycle_lr(
        max_lr: f64,
        total_steps: usize,
        pct_start: f64,
        div_factor: f64,
        final_div_factor: f64,
        three_phase: bool,
        anneal: Anneal,
        step: usize,
    ) -> Result<f64, ScheduleError> {
        if step > total_steps {
            return Err(ScheduleError::PastTotalSteps { step, total_steps });
        }
        let initial_lr = max_lr / div_factor;
        let min_lr = initial_lr / final_div_factor;
        let ends = one_cycle_phase_ends(total_steps, pct_start, three_phase);
        let phases: &[(f64, f64, f64)] = if three_phase {
            &[
                (ends[0], initial_lr, max_lr),
                (ends[1], max_lr, initial_lr),
                (ends[2], initial_lr, min_lr),
            ]
        } else {
            &[(ends[0], initial_lr, max_lr), (ends[1], max_lr, min_lr)]
        };
        let s = step as f64;
        let mut start_step = 0.0;
        for (i, &(end_step, start_lr, end_lr)) in phases.iter().enumerate() {
            if s <= end_step || i == phases.len() - 1 {
                let pct = (s - start_step) / (end_step - start_step);
                return Ok(anneal.interpolate(start_lr, end_lr, pct));
            }
            start_step = end_step;
        }
        // `phases` is non-empty and its last element always returns above.
        Ok(min_lr)
    }

    /// `OneCycleLR`'s final lr `max_lr / div_factor / final_div_factor` (`None` for other
    /// schedules).
    pub fn one_cycle_min_lr(&self) -> Option<f64> {
        match self {
            Schedule::OneCycle {
                max_lr,
                div_factor,
                final_div_factor,
                ..
            } => Some(max_lr / div_factor / final_div_factor),
            _ => None,
        }
    }
}

/// `OneCycleLR._schedule_phases[*]["end_step"]`, computed with torch's operation order
/// (`float(pct_start * T) - 1`, `float(2 * pct_start * T) - 2`, `T - 1`). Two-phase uses
/// the first two entries (`[pct_start*T - 1, T - 1, unused]`).
fn one_cycle_phase_ends(total_steps: usize, pct_start: f64, three_phase: bool) -> [f64; 3] {
    let t = total_steps as f64;
    let last = t - 1.0;
    if three_phase {
        [pct_start * t - 1.0, 2.0 * pct_start * t - 2.0, last]
    } else {
        [pct_start * t - 1.0, last, last]
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Constant => f.write_str("constant"),
            Schedule::Step { step_size, gamma } => {
                write!(f, "step(step_size={step_size}, gamma={gamma})")
            }
            Schedule::MultiStep { milestones, gamma } => {
                write!(f, "multistep(milestones={milestones:?}, gamma={gamma})")
            }
            Schedule::Exponential { gamma } => write!(f, "exponential(gamma={gamma})"),
            Schedule::Cosine { t_max, eta_min } => {
                write!(f, "cosine(t_max={t_max}, eta_min={eta_min})")
            }
            Schedule::OneCycle {
                max_lr,
                total_steps,
                pct_start,
                div_factor,
                final_div_factor,
                three_phase,
                anneal,
            } => write!(
                f,
                "onecycle(max_lr={max_lr}, total_steps={total_steps}, pct_start={pct_start}, \
                 div_factor={div_factor}, final_div_factor={final_div_factor}, \
                 three_phase={three_phase}, anneal={anneal})"
            ),
            Schedule::Plateau(cfg) => write!(f, "plateau({cfg})"),
        }
    }
}
