//! Learning-rate schedules with the semantics of PyTorch's `torch.optim.lr_scheduler`.
//!
//! # Stepping convention
//!
//! PyTorch steps most schedulers once per *epoch* (`scheduler.step()` after each epoch's
//! optimizer steps); a freshly constructed scheduler has already taken its initial step,
//! so epoch `e` (0-based) trains with the scheduler's value at `last_epoch == e`.
//! [`OneCycle`](Schedule::OneCycle) is the exception: it is stepped after every *optimizer*
//! step, so global optimizer step `s` (0-based) uses its value at `last_epoch == s`.
//!
//! The trainer asks [`LrSchedule::lr_at`] "which lr is in use for global step
//! `s = epoch * steps_per_epoch + step_in_epoch`?". Epoch-based schedules ignore
//! `step_in_epoch` (the lr is constant within an epoch, exactly as in PyTorch).
//!
//! [`Schedule::Plateau`] (`ReduceLROnPlateau`) depends on the metric history, so it has no
//! closed form: drive a [`PlateauState`] with the validation metric after each epoch.
//!
//! # Closed forms vs. PyTorch's recursive forms
//!
//! PyTorch's `get_lr()` for `StepLR`, `MultiStepLR`, `ExponentialLR`, `CosineAnnealingLR`
//! and `LinearLR` is *recursive* (it multiplies the optimizer's current lr), while
//! `_get_closed_form_lr()` computes the value from `base_lr` directly. When a single
//! scheduler (or a `SequentialLR` chain) owns the optimizer's lr, both agree
//! mathematically; this module evaluates the closed forms, which agree with the values
//! torch actually produces up to floating-point rounding (the unit tests compare against
//! sequences recorded from torch 2.15 at 1e-12 relative tolerance).
//!
//! # Layout
//!
//! * [`LrSchedule`] (`lr_schedule.rs`): base lr, optional warm-up and the main schedule;
//!   what the trainer evaluates each step.
//! * [`Schedule`] (`closed_form.rs`): the closed forms and their parameter checks.
//! * [`PlateauConfig`], [`PlateauState`] (`plateau.rs`):
//!   `ReduceLROnPlateau`.
//! * [`ScheduleKind`], [`Anneal`], [`PlateauMode`], [`ThresholdMode`],
//!   [`parse_milestones`] (`names.rs`): the command-line spellings.
//! * [`ScheduleError`] (`error.rs`): every error above.
//! * [`HparamSchedule`] (`hparam_schedule.rs`): a base lr and a weight decay per epoch
//!   (population-based training's schedule, replayed by `wgtrain train --hparam-schedule`).

mod closed_form;
mod error;
mod hparam_schedule;
mod lr_schedule;
mod names;
mod plateau;
#[cfg(test)]
mod tests;

pub use closed_form::Schedule;
pub use error::ScheduleError;
pub use hparam_schedule::{EpochHparams, HparamSchedule};
pub use lr_schedule::{DEFAULT_WARMUP_START_FACTOR, LrSchedule};
pub use names::{Anneal, PlateauMode, ScheduleKind, ThresholdMode, parse_milestones};
pub use plateau::{PlateauConfig, PlateauState};
