//! What a run records about its own settings so that a later `--resume` can refuse to go
//! on with other ones: the flags that decide what it computes, as typed (name without
//! dashes, value), and a fingerprint of its data. `sweep` keeps them in `--out/
//! settings.json`, `train` in its `--state` file; both compare them the same way and name
//! the first flag that differs with both values. The path a run trained on (CPU or GPU) is
//! kept too, and a resume on the other one is warned of ([`other_path_warning`]).

use std::collections::BTreeMap;

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use wgtrain::data::Mnist;

use super::{DeviceArgs, DeviceKind, ScheduleArgs, SgdVariantArgs};

/// A flag's value when it was not given.
pub(crate) const NOT_GIVEN: &str = "(not given)";

/// A run's recorded settings: the flags (name without dashes, value as typed) and the data.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
#[serde(deny_unknown_fields)]
pub(crate) struct Recorded {
    /// Every flag that decides what the run computes, given or at its default.
    pub flags: BTreeMap<String, String>,
    /// The data the run trained on ([`data_fingerprint`]).
    pub data: String,
    /// The path the run trained on last, `cpu` or `gpu` ([`device_path`]), where the record
    /// keeps it (a sweep's `settings.json`; a `train` state keeps it beside the record).
    /// `None` in a record of an older wgtrain, which did not write it (and then no resume
    /// is warned of).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

impl Recorded {
    /// The settings of `flags` on `mnist`.
    pub(crate) fn new(flags: Vec<(&'static str, String)>, mnist: &Mnist) -> Recorded {
        Recorded {
            flags: flags.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            data: data_fingerprint(mnist),
            device: None,
        }
    }

    /// These settings, recorded with the path the run trains on (`cpu` or `gpu`).
    pub(crate) fn on(self, device: &str) -> Recorded {
        Recorded {
            device: Some(device.to_string()),
            ..self
        }
    }
}

/// The path a resolved `--device` trains on, as a run records it: `cpu` or `gpu`.
pub(crate) fn device_path(d: &DeviceArgs) -> &'static str {
    match d.device {
        DeviceKind::Cpu => "cpu",
        DeviceKind::Gpu | DeviceKind::Auto => "gpu",
    }
}

/// The warning for `run` (`the run in s.state`, `the sweep in sw`), which trained on the
/// path `was` and goes on on the path `now` (`cpu` or `gpu`); `None` on the same path. It
/// goes on correctly, but its results equal an uninterrupted run's to rounding only: the
/// CPU and GPU paths agree to rounding, not bit for bit.
pub(crate) fn other_path_warning(run: &str, was: &str, now: &str) -> Option<String> {
    (was != now).then(|| {
        format!(
            "warning: {run} trained on the {was} path and goes on on the {now} path: its results will equal an uninterrupted run's to rounding, not bit for bit (--device {was} keeps them exact)"
        )
    })
}

/// A flag whose value differs from the recorded one.
#[derive(Debug, PartialEq)]
pub(crate) struct Difference {
    /// The flag, without dashes.
    pub flag: &'static str,
    /// Its recorded value.
    pub was: String,
    /// Its value now.
    pub now: String,
    /// How to give the recorded value: `resume with --lr 0.1`, `resume without --nesterov`.
    pub fix: String,
}

/// The first flag of `now` whose value is not the one `recorded` holds (a flag missing
/// there counts as [`NOT_GIVEN`]).
pub(crate) fn first_difference(
    recorded: &BTreeMap<String, String>,
    now: &[(&'static str, String)],
) -> Option<Difference> {
    now.iter().find_map(|(flag, value)| {
        let was = recorded.get(*flag).map_or(NOT_GIVEN, String::as_str);
        (was != value).then(|| Difference {
            flag,
            was: was.to_string(),
            now: value.clone(),
            fix: match was {
                NOT_GIVEN | "false" => format!("resume without --{flag}"),
                "true" => format!("resume with --{flag}"),
                v => format!("resume with --{flag} {v}"),
            },
        })
    })
}

/// What identifies the data: its counts, image size, class count and a CRC-32C of every
/// pixel and label (training set after `--train-subset`, then the test set).
pub(crate) fn data_fingerprint(mnist: &Mnist) -> String {
    let mut crc = 0u32;
    for set in [&mnist.train, &mnist.test] {
        crc = crc32c::crc32c_append(crc, &set.images);
        for label in &set.labels {
            crc = crc32c::crc32c_append(crc, &label.to_le_bytes());
        }
    }
    format!(
        "{} training and {} test samples of {}x{} pixels, {} classes, CRC-32C {crc:08x}",
        mnist.train.len(),
        mnist.test.len(),
        mnist.train.rows,
        mnist.train.cols,
        mnist.classes
    )
}

/// An optional flag as typed, or [`NOT_GIVEN`].
pub(crate) fn opt<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or(NOT_GIVEN.into(), T::to_string)
}

/// A `ValueEnum` flag as typed.
pub(crate) fn choice(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_string())
}

/// `--hidden` as typed: `512,256`, or `none`.
pub(crate) fn hidden_text(hidden: &[usize]) -> String {
    if hidden.is_empty() {
        return "none".into();
    }
    let h: Vec<String> = hidden.iter().map(usize::to_string).collect();
    h.join(",")
}

/// The SGD variant flags, in `--help` order.
pub(crate) fn sgd_flags(a: &SgdVariantArgs) -> Vec<(&'static str, String)> {
    vec![
        ("dampening", a.dampening.to_string()),
        ("nesterov", a.nesterov.to_string()),
        (
            "decoupled-weight-decay",
            a.decoupled_weight_decay.to_string(),
        ),
        ("no-decay-bias", a.no_decay_bias.to_string()),
    ]
}

/// The learning-rate schedule flags, in `--help` order.
pub(crate) fn schedule_flags(s: &ScheduleArgs) -> Vec<(&'static str, String)> {
    vec![
        ("lr-schedule", opt(&s.lr_schedule)),
        ("step-size", opt(&s.step_size)),
        ("gamma", opt(&s.gamma)),
        ("milestones", opt(&s.milestones)),
        ("t-max", opt(&s.t_max)),
        ("eta-min", opt(&s.eta_min)),
        ("warmup-epochs", s.warmup_epochs.to_string()),
        ("warmup-start-factor", opt(&s.warmup_start_factor)),
        ("max-lr", opt(&s.max_lr)),
        ("pct-start", opt(&s.pct_start)),
        ("plateau-factor", opt(&s.plateau_factor)),
        ("plateau-patience", opt(&s.plateau_patience)),
        ("plateau-cooldown", opt(&s.plateau_cooldown)),
        ("min-lr", opt(&s.min_lr)),
        ("anneal-strategy", opt(&s.anneal_strategy)),
        ("three-phase", opt(&s.three_phase)),
        ("div-factor", opt(&s.div_factor)),
        ("final-div-factor", opt(&s.final_div_factor)),
        ("plateau-mode", opt(&s.plateau_mode)),
        ("plateau-threshold", opt(&s.plateau_threshold)),
        ("plateau-threshold-mode", opt(&s.plateau_threshold_mode)),
        ("plateau-eps", opt(&s.plateau_eps)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_difference_names_the_flag_both_values_and_the_fix() {
        let recorded: BTreeMap<String, String> = [("lr", "0.1"), ("nesterov", "true")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let same = [("lr", "0.1".to_string()), ("nesterov", "true".to_string())];
        assert_eq!(first_difference(&recorded, &same), None);
        let d = first_difference(&recorded, &[("lr", "0.2".into())]).unwrap();
        assert_eq!(
            (d.flag, d.was.as_str(), d.now.as_str(), d.fix.as_str()),
            ("lr", "0.1", "0.2", "resume with --lr 0.1")
        );
        let d = first_difference(&recorded, &[("nesterov", "false".into())]).unwrap();
        assert_eq!(d.fix, "resume with --nesterov");
        let d = first_difference(&recorded, &[("gamma", "0.5".into())]).unwrap();
        assert_eq!(
            (d.was.as_str(), d.fix.as_str()),
            (NOT_GIVEN, "resume without --gamma")
        );
    }
}
