//! The names a schedule is configured by on the command line: the schedule kind, the
//! one-cycle anneal strategy, the plateau modes, and the milestone list.
//!
//! Each enum's canonical name (`Display`) and accepted spellings come from `strum`
//! attributes; `FromStr` matches the input case-insensitively, ignoring `-`, `_` and spaces
//! (`multi-step`, `One_Cycle`), against those spellings.

use std::f64::consts::PI;
use std::str::FromStr;

use strum::{EnumMessage, VariantArray};

use super::ScheduleError;

/// The spelling `FromStr` compares: lower case, without `-`, `_` and spaces.
fn normalize_name(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | ' '))
        .flat_map(char::to_lowercase)
        .collect()
}

/// The variant of `T` one of whose `strum` spellings (`to_string` and `serialize`, all
/// written in normalized form) equals `s` normalized; otherwise
/// [`ScheduleError::UnknownName`] quoting `s` as given.
fn parse_name<T>(s: &str, what: &'static str, valid: &'static str) -> Result<T, ScheduleError>
where
    T: VariantArray + EnumMessage + Copy,
{
    let key = normalize_name(s);
    T::VARIANTS
        .iter()
        .copied()
        .find(|v| v.get_serializations().contains(&key.as_str()))
        .ok_or_else(|| ScheduleError::UnknownName {
            what,
            name: s.to_string(),
            valid,
        })
}

/// `OneCycleLR(anneal_strategy=...)`: how each phase interpolates between its start and end lr.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::Display,
    strum::EnumMessage,
    strum::VariantArray,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Anneal {
    /// `anneal_strategy="cos"` (PyTorch default):
    /// `end + (start - end) / 2 * (cos(pi * pct) + 1)`.
    #[default]
    #[strum(to_string = "cos", serialize = "cosine")]
    Cos,
    /// `anneal_strategy="linear"`: `(end - start) * pct + start`.
    #[strum(to_string = "linear")]
    Linear,
}

impl Anneal {
    /// The names [`FromStr`] lists in its error message.
    const VALID_NAMES: &'static str = "cos, linear";

    /// Interpolate from `start` (pct = 0) to `end` (pct = 1), exactly as
    /// `OneCycleLR._annealing_cos` / `_annealing_linear` (same operation order).
    pub fn interpolate(self, start: f64, end: f64, pct: f64) -> f64 {
        match self {
            Anneal::Cos => {
                let cos_out = (PI * pct).cos() + 1.0;
                end + (start - end) / 2.0 * cos_out
            }
            Anneal::Linear => (end - start) * pct + start,
        }
    }
}

impl FromStr for Anneal {
    type Err = ScheduleError;
    /// Parses `cos` (alias `cosine`) or `linear`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(s, "anneal strategy", Self::VALID_NAMES)
    }
}

/// `ReduceLROnPlateau(mode=...)`: whether the monitored metric should decrease or increase.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::Display,
    strum::EnumMessage,
    strum::VariantArray,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum PlateauMode {
    /// `mode="min"` (default): lr is reduced when the metric stops decreasing (e.g. a loss).
    #[default]
    #[strum(to_string = "min")]
    Min,
    /// `mode="max"`: lr is reduced when the metric stops increasing (e.g. accuracy).
    #[strum(to_string = "max")]
    Max,
}

impl PlateauMode {
    /// The names [`FromStr`] lists in its error message.
    const VALID_NAMES: &'static str = "min, max";
}

impl FromStr for PlateauMode {
    type Err = ScheduleError;
    /// Parses `min` or `max`, case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(s, "plateau mode", Self::VALID_NAMES)
    }
}

/// `ReduceLROnPlateau(threshold_mode=...)`: how `threshold` defines a significant improvement.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    strum::Display,
    strum::EnumMessage,
    strum::VariantArray,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum ThresholdMode {
    /// `threshold_mode="rel"` (default): better means `a < best * (1 - threshold)` (min) or
    /// `a > best * (threshold + 1)` (max).
    #[default]
    #[strum(to_string = "rel", serialize = "relative")]
    Rel,
    /// `threshold_mode="abs"`: better means `a < best - threshold` (min) or
    /// `a > best + threshold` (max).
    #[strum(to_string = "abs", serialize = "absolute")]
    Abs,
}

impl ThresholdMode {
    /// The names [`FromStr`] lists in its error message.
    const VALID_NAMES: &'static str = "rel, abs";
}

impl FromStr for ThresholdMode {
    type Err = ScheduleError;
    /// Parses `rel` or `abs` (aliases `relative`, `absolute`), case-insensitively.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(s, "threshold mode", Self::VALID_NAMES)
    }
}

/// The name of a schedule, for command-line parsing (`--lr-schedule cosine`).
///
/// Aliases: PyTorch's class names (`StepLR`, `CosineAnnealingLR`, `ReduceLROnPlateau`, ...),
/// `none` for `constant` and `cos` for `cosine`.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    strum::Display,
    strum::IntoStaticStr,
    strum::EnumMessage,
    strum::VariantArray,
)]
pub enum ScheduleKind {
    /// [`Schedule::Constant`](super::Schedule::Constant).
    #[strum(to_string = "constant", serialize = "none")]
    Constant,
    /// [`Schedule::Step`](super::Schedule::Step) (`StepLR`).
    #[strum(to_string = "step", serialize = "steplr")]
    Step,
    /// [`Schedule::MultiStep`](super::Schedule::MultiStep) (`MultiStepLR`).
    #[strum(to_string = "multistep", serialize = "multisteplr")]
    MultiStep,
    /// [`Schedule::Exponential`](super::Schedule::Exponential) (`ExponentialLR`).
    #[strum(to_string = "exponential", serialize = "exponentiallr")]
    Exponential,
    /// [`Schedule::Cosine`](super::Schedule::Cosine) (`CosineAnnealingLR`).
    #[strum(
        to_string = "cosine",
        serialize = "cos",
        serialize = "cosineannealing",
        serialize = "cosineannealinglr"
    )]
    Cosine,
    /// [`Schedule::OneCycle`](super::Schedule::OneCycle) (`OneCycleLR`).
    #[strum(to_string = "onecycle", serialize = "onecyclelr")]
    OneCycle,
    /// [`Schedule::Plateau`](super::Schedule::Plateau) (`ReduceLROnPlateau`).
    #[strum(to_string = "plateau", serialize = "reducelronplateau")]
    Plateau,
}

impl ScheduleKind {
    /// Every kind, in the order listed in error messages.
    pub const ALL: [ScheduleKind; 7] = [
        ScheduleKind::Constant,
        ScheduleKind::Step,
        ScheduleKind::MultiStep,
        ScheduleKind::Exponential,
        ScheduleKind::Cosine,
        ScheduleKind::OneCycle,
        ScheduleKind::Plateau,
    ];

    /// The valid names accepted by [`FromStr`], as listed in its error message.
    pub const VALID_NAMES: &'static str =
        "constant, step, multistep, exponential, cosine, onecycle, plateau";

    /// Canonical lower-case name (what [`Display`](std::fmt::Display) prints and [`FromStr`]
    /// accepts).
    pub fn name(self) -> &'static str {
        self.into()
    }

    /// The PyTorch class this kind reproduces (`"-"` for `Constant`, which is no scheduler).
    pub const fn torch_class(self) -> &'static str {
        match self {
            ScheduleKind::Constant => "-",
            ScheduleKind::Step => "StepLR",
            ScheduleKind::MultiStep => "MultiStepLR",
            ScheduleKind::Exponential => "ExponentialLR",
            ScheduleKind::Cosine => "CosineAnnealingLR",
            ScheduleKind::OneCycle => "OneCycleLR",
            ScheduleKind::Plateau => "ReduceLROnPlateau",
        }
    }
}

impl FromStr for ScheduleKind {
    type Err = ScheduleError;
    /// Parses a canonical name (`constant, step, multistep, exponential, cosine, onecycle,
    /// plateau`), case-insensitively, ignoring `-`, `_` and spaces (so `multi-step`,
    /// `one_cycle` work). PyTorch class names (`StepLR`, `CosineAnnealingLR`,
    /// `ReduceLROnPlateau`, ...) and `none`/`cos` are accepted as aliases.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_name(s, "lr schedule", Self::VALID_NAMES)
    }
}

/// Parse a comma-separated list of epoch milestones for
/// [`Schedule::MultiStep`](super::Schedule::MultiStep), e.g. `"30, 60,90"` → `[30, 60, 90]`.
///
/// An empty (or all-whitespace) string gives an empty list (a `MultiStepLR` with no
/// milestones never decays). Errors name the bad item; milestones must be strictly
/// increasing (as PyTorch's `MultiStepLR` documents).
pub fn parse_milestones(s: &str) -> Result<Vec<usize>, String> {
    if s.trim().is_empty() {
        return Ok(Vec::new());
    }
    let mut out: Vec<usize> = Vec::new();
    for (i, item) in s.split(',').enumerate() {
        let item = item.trim();
        let m: usize = item.parse().map_err(|_| {
            format!(
                "invalid milestone #{} '{item}' in '{s}': expected a non-negative integer epoch \
                 index (comma-separated, e.g. 30,60,90)",
                i + 1
            )
        })?;
        if let Some(&prev) = out.last()
            && m <= prev
        {
            return Err(format!(
                "invalid milestones '{s}': {m} does not follow {prev}; expected strictly \
                 increasing epoch indices"
            ));
        }
        out.push(m);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The canonical names joined, as the error messages list them.
    fn names<T: VariantArray + ToString>() -> String {
        T::VARIANTS
            .iter()
            .map(T::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Every spelling of `T`, for the checks below.
    fn spellings<T: VariantArray + EnumMessage>() -> Vec<&'static str> {
        T::VARIANTS
            .iter()
            .flat_map(|v| v.get_serializations().iter().copied())
            .collect()
    }

    /// The lists in the error messages are the variants, in order; every spelling is written
    /// normalized (or `FromStr` could never match it) and belongs to one variant only.
    #[test]
    fn name_tables_agree_with_the_variants() {
        assert_eq!(ScheduleKind::VALID_NAMES, names::<ScheduleKind>());
        assert_eq!(ScheduleKind::ALL.as_slice(), ScheduleKind::VARIANTS);
        assert_eq!(Anneal::VALID_NAMES, names::<Anneal>());
        assert_eq!(PlateauMode::VALID_NAMES, names::<PlateauMode>());
        assert_eq!(ThresholdMode::VALID_NAMES, names::<ThresholdMode>());
        for all in [
            spellings::<ScheduleKind>(),
            spellings::<Anneal>(),
            spellings::<PlateauMode>(),
            spellings::<ThresholdMode>(),
        ] {
            for s in &all {
                assert_eq!(normalize_name(s), *s);
                assert_eq!(all.iter().filter(|t| *t == s).count(), 1, "{s}");
            }
        }
    }

    #[test]
    fn parsing() {
        for k in ScheduleKind::ALL {
            assert_eq!(k.name().parse::<ScheduleKind>().unwrap(), k);
            assert_eq!(k.to_string(), k.name());
        }
        assert_eq!(
            "Multi-Step".parse::<ScheduleKind>().unwrap(),
            ScheduleKind::MultiStep
        );
        assert_eq!(
            "one_cycle".parse::<ScheduleKind>().unwrap(),
            ScheduleKind::OneCycle
        );
        assert_eq!(
            " One Cycle ".parse::<ScheduleKind>().unwrap(),
            ScheduleKind::OneCycle
        );
        assert_eq!(
            "CosineAnnealingLR".parse::<ScheduleKind>().unwrap(),
            ScheduleKind::Cosine
        );
        assert_eq!(
            "ReduceLROnPlateau".parse::<ScheduleKind>().unwrap(),
            ScheduleKind::Plateau
        );
        assert_eq!(
            "none".parse::<ScheduleKind>().unwrap(),
            ScheduleKind::Constant
        );
        let err = "linear".parse::<ScheduleKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown lr schedule 'linear' (valid: constant, step, multistep, exponential, \
             cosine, onecycle, plateau)"
        );
        // The message quotes the input as given, not normalized.
        let err = "Warp-Drive"
            .parse::<ScheduleKind>()
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("unknown lr schedule 'Warp-Drive' (valid: "),
            "{err}"
        );

        assert_eq!("cos".parse::<Anneal>().unwrap(), Anneal::Cos);
        assert_eq!("Cosine".parse::<Anneal>().unwrap(), Anneal::Cos);
        assert_eq!("Linear".parse::<Anneal>().unwrap(), Anneal::Linear);
        assert!("exp".parse::<Anneal>().is_err());
        assert_eq!("max".parse::<PlateauMode>().unwrap(), PlateauMode::Max);
        assert!("maximum".parse::<PlateauMode>().is_err());
        assert_eq!("abs".parse::<ThresholdMode>().unwrap(), ThresholdMode::Abs);
        assert_eq!(
            "Relative".parse::<ThresholdMode>().unwrap(),
            ThresholdMode::Rel
        );
        assert_eq!(
            "x".parse::<ThresholdMode>().unwrap_err().to_string(),
            "unknown threshold mode 'x' (valid: rel, abs)"
        );

        assert_eq!(parse_milestones("30,60, 90").unwrap(), vec![30, 60, 90]);
        assert_eq!(parse_milestones(" 5 ").unwrap(), vec![5]);
        assert_eq!(parse_milestones("").unwrap(), Vec::<usize>::new());
        let e = parse_milestones("2,x").unwrap_err();
        assert!(e.contains("'x'"), "{e}");
        assert!(parse_milestones("2,,5").is_err());
        assert!(parse_milestones("-1").is_err());
        let e = parse_milestones("5,5").unwrap_err();
        assert!(e.contains("strictly increasing"), "{e}");
    }

    #[test]
    fn display() {
        assert_eq!(Anneal::Cos.to_string(), "cos");
        assert_eq!(Anneal::Linear.to_string(), "linear");
        assert_eq!(PlateauMode::Max.to_string(), "max");
        assert_eq!(ThresholdMode::Abs.to_string(), "abs");
        assert_eq!(ScheduleKind::MultiStep.to_string(), "multistep");
        assert_eq!(ScheduleKind::Plateau.torch_class(), "ReduceLROnPlateau");
    }
}
