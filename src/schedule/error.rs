//! [`ScheduleError`], the one error type of the schedule module, and the range check every
//! parameter goes through.

use std::fmt;

/// Errors from validating or evaluating a learning-rate schedule.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// A parameter is outside its valid range. `context` names the schedule (or `"warmup"`,
    /// `"lr"`), `param` the parameter, `expected` the valid range.
    #[error("invalid {context} parameter {param} = {value}: expected {expected}")]
    InvalidParameter {
        /// Schedule or component the parameter belongs to (e.g. `"cosine"`, `"warmup"`).
        context: &'static str,
        /// Parameter name as spelled in this module (mostly PyTorch's argument name).
        param: &'static str,
        /// The offending value, formatted.
        value: String,
        /// Human-readable description of the valid range.
        expected: &'static str,
    },
    /// `MultiStep` milestones must be strictly increasing
    /// (PyTorch `MultiStepLR` documents "Must be increasing").
    #[error(
        "invalid multistep parameter milestones: milestone[{index}] = {value} does not \
         follow {previous}; expected strictly increasing epoch indices"
    )]
    MilestonesNotIncreasing {
        /// Index of the offending milestone.
        index: usize,
        /// The milestone before it.
        previous: usize,
        /// The offending milestone (not greater than `previous`).
        value: usize,
    },
    /// `OneCycleLR` was asked for a step past `total_steps`. PyTorch raises
    /// `ValueError("Tried to step {step} times. The specified number of total steps is {total_steps}")`
    /// when `last_epoch > total_steps`.
    #[error(
        "onecycle schedule stepped past its end: step {step} > total_steps {total_steps} \
         (expected step <= total_steps)"
    )]
    PastTotalSteps {
        /// Requested global optimizer step (0-based).
        step: usize,
        /// Configured `total_steps`.
        total_steps: usize,
    },
    /// `ReduceLROnPlateau` has no closed form; use [`PlateauState`](super::PlateauState).
    #[error(
        "plateau (ReduceLROnPlateau) schedule has no closed form; drive a PlateauState with \
         the validation metric instead"
    )]
    StatefulSchedule,
    /// Warm-up (`warmup_epochs > 0`) is not supported with this schedule: `OneCycleLR` is
    /// stepped per optimizer step and has its own warm-up phase, and PyTorch's `SequentialLR`
    /// rejects `ReduceLROnPlateau`.
    #[error(
        "invalid warmup parameter warmup_epochs: warm-up is not supported with the {schedule} \
         schedule (expected warmup_epochs = 0)"
    )]
    WarmupUnsupported {
        /// Name of the schedule (`"onecycle"` or `"plateau"`).
        schedule: &'static str,
    },
    /// A name (schedule kind, anneal strategy, mode, ...) could not be parsed.
    #[error("unknown {what} '{name}' (valid: {valid})")]
    UnknownName {
        /// What was being parsed (e.g. `"lr schedule"`).
        what: &'static str,
        /// The input.
        name: String,
        /// Comma-separated list of valid names.
        valid: &'static str,
    },
}

/// `Ok` when `ok`, otherwise [`ScheduleError::InvalidParameter`] with the formatted `value`.
pub(super) fn check(
    ok: bool,
    context: &'static str,
    param: &'static str,
    value: impl fmt::Display,
    expected: &'static str,
) -> Result<(), ScheduleError> {
    if ok {
        Ok(())
    } else {
        Err(ScheduleError::InvalidParameter {
            context,
            param,
            value: value.to_string(),
            expected,
        })
    }
}

/// `base_lr` by the optimizer's one learning-rate rule ([`crate::optim::validate_lr`]:
/// finite and `> 0`), reported in the schedule's terms.
pub(super) fn check_base_lr(base_lr: f64) -> Result<(), ScheduleError> {
    check(
        crate::optim::validate_lr(base_lr).is_ok(),
        "lr",
        "base_lr",
        base_lr,
        "a finite lr > 0",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts the hand-written `Display` printed before `thiserror` took over; the CLI
    /// shows them as they are.
    #[test]
    fn messages_are_unchanged() {
        let cases = [
            (
                ScheduleError::InvalidParameter {
                    context: "cosine",
                    param: "t_max",
                    value: "0".into(),
                    expected: "an integer >= 1 (epochs)",
                },
                "invalid cosine parameter t_max = 0: expected an integer >= 1 (epochs)",
            ),
            (
                ScheduleError::MilestonesNotIncreasing {
                    index: 2,
                    previous: 5,
                    value: 5,
                },
                "invalid multistep parameter milestones: milestone[2] = 5 does not follow 5; \
                 expected strictly increasing epoch indices",
            ),
            (
                ScheduleError::PastTotalSteps {
                    step: 101,
                    total_steps: 100,
                },
                "onecycle schedule stepped past its end: step 101 > total_steps 100 \
                 (expected step <= total_steps)",
            ),
            (
                ScheduleError::StatefulSchedule,
                "plateau (ReduceLROnPlateau) schedule has no closed form; drive a PlateauState \
                 with the validation metric instead",
            ),
            (
                ScheduleError::WarmupUnsupported {
                    schedule: "onecycle",
                },
                "invalid warmup parameter warmup_epochs: warm-up is not supported with the \
                 onecycle schedule (expected warmup_epochs = 0)",
            ),
            (
                ScheduleError::UnknownName {
                    what: "lr schedule",
                    name: "warp".into(),
                    valid: "a, b",
                },
                "unknown lr schedule 'warp' (valid: a, b)",
            ),
        ];
        for (error, want) in cases {
            assert_eq!(error.to_string(), want);
        }
    }
}
