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

use wgtrain::schedule::{PlateauConfig, Schedule, ScheduleKind};

use super::hyper::{
    DEFAULT_ETA_MIN, DEFAULT_GAMMA, DEFAULT_STEP_SIZE, DEFAULT_WARMUP_START_FACTOR, default_t_max,
};
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
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "read_path"
    )]
    pub device: Option<String>,
}

/// The paths a run records ([`device_path`]'s values).
const PATHS: [&str; 2] = ["cpu", "gpu"];

/// A recorded path, refused unless it is one [`device_path`] writes: a hand-edited
/// `"device": "tpu"` is a damaged record, not a path to warn of.
fn read_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let path = Option::<String>::deserialize(d)?;
    match path {
        Some(p) if !PATHS.contains(&p.as_str()) => Err(serde::de::Error::custom(format!(
            "device is {p:?}, not {}",
            PATHS.join(" or ")
        ))),
        _ => Ok(path),
    }
}

/// The flags a run records, in `--help` order, as (flag without dashes, value); and, for
/// each flag recorded at its default when it is left out, that default. Giving a default
/// explicitly (`--lr-schedule constant`) is then the same run as leaving it out, and a
/// record written before the defaults were ([`NOT_GIVEN`] for such a flag) reads as the
/// default ([`first_difference`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Flags {
    values: Vec<(&'static str, String)>,
    defaults: BTreeMap<&'static str, String>,
    /// For a flag recorded by a canonical name (`--lr-schedule cosine` for `cos`): the
    /// canonical name of a value, so that an older record's alias reads as it.
    canonical: BTreeMap<&'static str, fn(&str) -> Option<String>>,
}

impl Flags {
    /// `flag` with `value` as typed (or [`NOT_GIVEN`], see [`opt`]).
    pub(crate) fn push(&mut self, flag: &'static str, value: impl ToString) {
        self.values.push((flag, value.to_string()));
    }

    /// A flag that has a default: its value, or `default` when it is left out, recorded
    /// either way.
    pub(crate) fn push_or_default<T: ToString>(
        &mut self,
        flag: &'static str,
        given: Option<T>,
        default: T,
    ) {
        let default = default.to_string();
        self.values.push((
            flag,
            given.map_or_else(|| default.clone(), |v| v.to_string()),
        ));
        self.defaults.insert(flag, default);
    }

    /// Reads a record's value of `flag` through `canonical` (a value it does not know is
    /// read as it is), for a flag whose value is recorded by its canonical name.
    pub(crate) fn canonical(&mut self, flag: &'static str, canonical: fn(&str) -> Option<String>) {
        self.canonical.insert(flag, canonical);
    }

    /// Appends `other`'s flags (and defaults) after these.
    pub(crate) fn append(&mut self, other: Flags) {
        self.values.extend(other.values);
        self.defaults.extend(other.defaults);
        self.canonical.extend(other.canonical);
    }

    /// The flags and their values, in order.
    pub(crate) fn values(&self) -> &[(&'static str, String)] {
        &self.values
    }

    /// What a record's value of `flag` stands for: a [`NOT_GIVEN`] (or a flag missing from
    /// an older record) is the flag's default where it has one, and a value is read by its
    /// canonical name where the flag has one.
    fn read(&self, flag: &str, recorded: Option<&String>) -> String {
        match recorded.map(String::as_str) {
            None | Some(NOT_GIVEN) => self
                .defaults
                .get(flag)
                .map_or(NOT_GIVEN, String::as_str)
                .to_string(),
            Some(v) => self
                .canonical
                .get(flag)
                .and_then(|c| c(v))
                .unwrap_or_else(|| v.to_string()),
        }
    }
}

impl From<Vec<(&'static str, String)>> for Flags {
    fn from(values: Vec<(&'static str, String)>) -> Flags {
        Flags {
            values,
            ..Flags::default()
        }
    }
}

impl Recorded {
    /// The settings of `flags` on `mnist`.
    pub(crate) fn new(flags: &Flags, mnist: &Mnist) -> Recorded {
        Recorded {
            flags: flags
                .values()
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
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
/// there counts as [`NOT_GIVEN`], and a [`NOT_GIVEN`] as the flag's default where `now`
/// records one: see [`Flags`]).
pub(crate) fn first_difference(
    recorded: &BTreeMap<String, String>,
    now: &Flags,
) -> Option<Difference> {
    now.values().iter().find_map(|(flag, value)| {
        let was = now.read(flag, recorded.get(*flag));
        (was != *value).then(|| Difference {
            flag,
            was: was.clone(),
            now: value.clone(),
            fix: match was.as_str() {
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

/// The learning-rate schedule flags, in `--help` order, each at the value the schedule
/// runs with: `--lr-schedule` by its canonical name (`constant` when left out), and an
/// option the chosen schedule reads at its default when left out (`--gamma 0.1` for
/// `step`), so that giving a default is the same run as leaving it out. An option the
/// schedule does not read is refused when given, and recorded as [`NOT_GIVEN`]. The two
/// defaults that follow from the run, `--t-max` (the epochs after the warmup) and `--max-lr`
/// (`--lr`), are recorded only when the run has one `epochs` and one `lr` (a `train` run);
/// in a sweep, whose trials differ in them, they are recorded as given.
pub(crate) fn schedule_flags(s: &ScheduleArgs, epochs: Option<usize>, lr: Option<f64>) -> Flags {
    use ScheduleKind::{Cosine, Exponential, MultiStep, OneCycle, Plateau, Step};
    let given = s.lr_schedule.as_deref();
    let kind: Option<ScheduleKind> = given.map_or(Some(ScheduleKind::Constant), |n| n.parse().ok());
    let mut f = Flags::default();
    // An unknown name is recorded as typed (it is refused with the schedule's check).
    match (given, kind) {
        (Some(n), None) => f.push("lr-schedule", n),
        _ => f.push_or_default(
            "lr-schedule",
            kind.map(ScheduleKind::name),
            ScheduleKind::Constant.name(),
        ),
    }
    // An older record holds the name as typed (`cos`, `StepLR`).
    f.canonical("lr-schedule", |n| {
        n.parse::<ScheduleKind>().ok().map(|k| k.name().to_string())
    });
    let reads = |kinds: &[ScheduleKind]| kind.is_some_and(|k| kinds.contains(&k));
    // An option at its default where the schedule reads it and the default is known.
    fn option<T: ToString>(
        f: &mut Flags,
        flag: &'static str,
        given: Option<T>,
        default: Option<T>,
    ) {
        match default {
            Some(d) => f.push_or_default(flag, given, d),
            None => f.push(flag, opt(&given)),
        }
    }
    let cycle = match Schedule::one_cycle(1.0, 1) {
        Schedule::OneCycle {
            pct_start,
            div_factor,
            final_div_factor,
            three_phase,
            anneal,
            ..
        } => Some((pct_start, div_factor, final_div_factor, three_phase, anneal))
            .filter(|_| reads(&[OneCycle])),
        _ => None,
    };
    let plateau = Some(PlateauConfig::default()).filter(|_| reads(&[Plateau]));
    let p = plateau.as_ref();
    option(
        &mut f,
        "step-size",
        s.step_size,
        reads(&[Step]).then_some(DEFAULT_STEP_SIZE),
    );
    option(
        &mut f,
        "gamma",
        s.gamma,
        reads(&[Step, MultiStep, Exponential]).then_some(DEFAULT_GAMMA),
    );
    f.push("milestones", opt(&s.milestones));
    let t_max = epochs
        .filter(|_| reads(&[Cosine]))
        .map(|e| default_t_max(e, s.warmup_epochs));
    option(&mut f, "t-max", s.t_max, t_max);
    option(
        &mut f,
        "eta-min",
        s.eta_min,
        reads(&[Cosine]).then_some(DEFAULT_ETA_MIN),
    );
    f.push("warmup-epochs", s.warmup_epochs);
    option(
        &mut f,
        "warmup-start-factor",
        s.warmup_start_factor,
        (s.warmup_epochs > 0).then_some(DEFAULT_WARMUP_START_FACTOR),
    );
    option(
        &mut f,
        "max-lr",
        s.max_lr,
        lr.filter(|_| reads(&[OneCycle])),
    );
    option(&mut f, "pct-start", s.pct_start, cycle.map(|c| c.0));
    option(
        &mut f,
        "plateau-factor",
        s.plateau_factor,
        p.map(|p| p.factor),
    );
    option(
        &mut f,
        "plateau-patience",
        s.plateau_patience,
        p.map(|p| p.patience),
    );
    option(
        &mut f,
        "plateau-cooldown",
        s.plateau_cooldown,
        p.map(|p| p.cooldown),
    );
    option(&mut f, "min-lr", s.min_lr, p.map(|p| p.min_lr));
    option(
        &mut f,
        "anneal-strategy",
        s.anneal_strategy,
        cycle.map(|c| c.4),
    );
    option(&mut f, "three-phase", s.three_phase, cycle.map(|c| c.3));
    option(&mut f, "div-factor", s.div_factor, cycle.map(|c| c.1));
    option(
        &mut f,
        "final-div-factor",
        s.final_div_factor,
        cycle.map(|c| c.2),
    );
    option(&mut f, "plateau-mode", s.plateau_mode, p.map(|p| p.mode));
    option(
        &mut f,
        "plateau-threshold",
        s.plateau_threshold,
        p.map(|p| p.threshold),
    );
    option(
        &mut f,
        "plateau-threshold-mode",
        s.plateau_threshold_mode,
        p.map(|p| p.threshold_mode),
    );
    option(&mut f, "plateau-eps", s.plateau_eps, p.map(|p| p.eps));
    f
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
        let now = |flags: &[(&'static str, &str)]| {
            Flags::from(
                flags
                    .iter()
                    .map(|(f, v)| (*f, v.to_string()))
                    .collect::<Vec<_>>(),
            )
        };
        let same = now(&[("lr", "0.1"), ("nesterov", "true")]);
        assert_eq!(first_difference(&recorded, &same), None);
        let d = first_difference(&recorded, &now(&[("lr", "0.2")])).unwrap();
        assert_eq!(
            (d.flag, d.was.as_str(), d.now.as_str(), d.fix.as_str()),
            ("lr", "0.1", "0.2", "resume with --lr 0.1")
        );
        let d = first_difference(&recorded, &now(&[("nesterov", "false")])).unwrap();
        assert_eq!(d.fix, "resume with --nesterov");
        let d = first_difference(&recorded, &now(&[("gamma", "0.5")])).unwrap();
        assert_eq!(
            (d.was.as_str(), d.fix.as_str()),
            (NOT_GIVEN, "resume without --gamma")
        );
    }

    /// A flag recorded at its default: an older record's "(not given)", or a record
    /// without the flag, reads as the default (the run left it out, so it ran with it).
    #[test]
    fn a_record_without_a_default_reads_as_the_default() {
        let recorded: BTreeMap<String, String> = [("lr-schedule", NOT_GIVEN)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut now = Flags::default();
        now.push_or_default("lr-schedule", Some("constant"), "constant");
        now.push_or_default("epochs", None, 10);
        assert_eq!(first_difference(&recorded, &now), None);
        let mut other = Flags::default();
        other.push_or_default("lr-schedule", Some("step"), "constant");
        let d = first_difference(&recorded, &other).unwrap();
        assert_eq!(
            (d.was.as_str(), d.now.as_str(), d.fix.as_str()),
            ("constant", "step", "resume with --lr-schedule constant")
        );
    }

    /// Every schedule option the chosen schedule reads is recorded at its value: left out
    /// or given at its default, the same; one the schedule does not read, as not given.
    #[test]
    fn schedule_defaults_are_recorded_as_given() {
        let omitted = ScheduleArgs {
            lr_schedule: Some("plateau".into()),
            ..ScheduleArgs::default()
        };
        let given = ScheduleArgs {
            lr_schedule: Some("ReduceLROnPlateau".into()),
            plateau_patience: Some(10),
            plateau_factor: Some(0.1),
            plateau_eps: Some(1e-8),
            ..ScheduleArgs::default()
        };
        let (a, b) = (
            schedule_flags(&omitted, Some(3), Some(0.1)),
            schedule_flags(&given, Some(3), Some(0.1)),
        );
        assert_eq!(a.values(), b.values());
        let value = |f: &Flags, flag: &str| {
            f.values()
                .iter()
                .find(|(k, _)| *k == flag)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(value(&a, "lr-schedule"), "plateau");
        assert_eq!(value(&a, "plateau-patience"), "10");
        assert_eq!(value(&a, "gamma"), NOT_GIVEN);
        let constant = schedule_flags(&ScheduleArgs::default(), Some(3), Some(0.1));
        let none = ScheduleArgs {
            lr_schedule: Some("none".into()),
            ..ScheduleArgs::default()
        };
        assert_eq!(
            constant.values(),
            schedule_flags(&none, Some(3), Some(0.1)).values()
        );
        let cosine = ScheduleArgs {
            lr_schedule: Some("cosine".into()),
            warmup_epochs: 1,
            ..ScheduleArgs::default()
        };
        let f = schedule_flags(&cosine, Some(5), None);
        assert_eq!(
            (value(&f, "t-max"), value(&f, "warmup-start-factor")),
            ("4".into(), (1.0f64 / 3.0).to_string())
        );
        // An older record: the schedule's name as typed (an alias), its defaults not given.
        let mut older: BTreeMap<String, String> = f
            .values()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        older.insert("lr-schedule".into(), "CosineAnnealingLR".into());
        older.insert("t-max".into(), NOT_GIVEN.into());
        older.remove("eta-min");
        assert_eq!(first_difference(&older, &f), None);
        older.insert("t-max".into(), "3".into());
        let d = first_difference(&older, &f).unwrap();
        assert_eq!(
            (d.flag, d.was.as_str(), d.now.as_str()),
            ("t-max", "3", "4")
        );
    }
}
