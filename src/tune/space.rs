//! Search spaces and the trials drawn from them.
//!
//! Each hyperparameter takes a list of values (`0.01,0.1`, one value alone fixes it) or a
//! log-uniform range (`1e-3:1`). Hidden layer sizes take a list of architectures,
//! comma-separated, with the layers of one joined by `-` (`128,256,512-256`; `none` is
//! logistic regression).
//!
//! - **Random search** draws every hyperparameter independently for each trial: a list
//!   value uniformly, a range log-uniformly (integers rounded), from ChaCha8 seeded with
//!   the sweep's seed.
//! - **Grid search** runs the cartesian product of the lists, a range contributing
//!   `grid_points` log-spaced values (rounded to 4 significant digits). When a trial budget
//!   smaller than the grid is given, a seeded random selection of the grid runs.

use std::fmt;
use std::str::FromStr;

use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The values one hyperparameter may take.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// These values (one value fixes the hyperparameter).
    List(Vec<f64>),
    /// Log-uniform on `[lo, hi]`, `0 < lo < hi`.
    LogUniform {
        /// Lower bound, > 0.
        lo: f64,
        /// Upper bound, > `lo`.
        hi: f64,
    },
}

impl FromStr for Values {
    type Err = String;

    /// `a:b` is a log-uniform range, `a,b,c` a list, `a` a single value.
    fn from_str(s: &str) -> std::result::Result<Values, String> {
        let num = |p: &str| -> std::result::Result<f64, String> {
            let v: f64 = p
                .trim()
                .parse()
                .map_err(|e| format!("'{}': {e}", p.trim()))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(format!("'{}' is not finite", p.trim()))
            }
        };
        if let Some((lo, hi)) = s.split_once(':') {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if !(lo > 0.0 && hi > lo) {
                return Err(format!(
                    "range {lo}:{hi} must have 0 < low < high (it is log-uniform); use a list such as 0,1e-4 to include 0"
                ));
            }
            return Ok(Values::LogUniform { lo, hi });
        }
        let list = s
            .split(',')
            .map(num)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(Values::List(list))
    }
}

impl fmt::Display for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Values::List(v) => {
                let s: Vec<String> = v.iter().map(|x| x.to_string()).collect();
                f.write_str(&s.join(","))
            }
            Values::LogUniform { lo, hi } => write!(f, "{lo}:{hi} (log-uniform)"),
        }
    }
}

/// `x` rounded to `digits` significant digits.
pub fn round_significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let scale = 10f64.powi(digits - 1 - x.abs().log10().floor() as i32);
    (x * scale).round() / scale
}

impl Values {
    /// The grid values: the list, or `points` log-spaced values from `lo` to `hi` (the
    /// geometric mean for one point).
    pub fn grid(&self, points: usize) -> Vec<f64> {
        match self {
            Values::List(v) => v.clone(),
            Values::LogUniform { lo, hi } => {
                if points <= 1 {
                    return vec![round_significant((lo * hi).sqrt(), 4)];
                }
                (0..points)
                    .map(|i| {
                        let t = i as f64 / (points - 1) as f64;
                        round_significant(lo * (hi / lo).powf(t), 4)
                    })
                    .collect()
            }
        }
    }

    /// One random draw: a uniform choice from the list, or log-uniform on the range.
    pub fn sample(&self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            Values::List(v) => v[rng.random_range(0..v.len())],
            Values::LogUniform { lo, hi } => {
                let t: f64 = rng.random_range(0.0..=1.0);
                lo * (hi / lo).powf(t)
            }
        }
    }

    /// Every value the hyperparameter can take lies in `[lo, hi]` (for validation).
    fn bounds(&self) -> (f64, f64) {
        match self {
            Values::List(v) => v
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
                    (a.min(x), b.max(x))
                }),
            Values::LogUniform { lo, hi } => (*lo, *hi),
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Values::List(v) if v.is_empty())
    }

    /// Whether the hyperparameter can take one value only (a list of one value, repeated or
    /// not).
    pub fn is_single(&self) -> bool {
        matches!(self, Values::List(v) if v.iter().all(|&x| x == v[0]))
    }
}

/// Hidden layer architectures to choose from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenChoices(pub Vec<Vec<usize>>);

impl FromStr for HiddenChoices {
    type Err = String;

    /// `128,256,512-256,none`: choices separated by commas, layers of one by `-`.
    fn from_str(s: &str) -> std::result::Result<HiddenChoices, String> {
        s.split(',')
            .map(|c| {
                let c = c.trim();
                if c == "none" {
                    return Ok(vec![]);
                }
                c.split('-')
                    .map(|l| match l.trim().parse::<usize>() {
                        Ok(0) => Err(format!("hidden size '{l}' must be at least 1")),
                        Ok(v) => Ok(v),
                        Err(e) => Err(format!("hidden size '{l}': {e}")),
                    })
                    .collect()
            })
            .collect::<std::result::Result<_, _>>()
            .map(HiddenChoices)
    }
}

/// Hidden sizes as written in tables and file names: `512-256`, or `none`.
pub fn hidden_label(hidden: &[usize]) -> String {
    if hidden.is_empty() {
        return "none".into();
    }
    let s: Vec<String> = hidden.iter().map(|h| h.to_string()).collect();
    s.join("-")
}

/// How trials are drawn from a [`SearchSpace`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SearchMethod {
    /// The cartesian product of every hyperparameter's values.
    Grid,
    /// Independent seeded draws.
    Random,
}

/// The hyperparameters a sweep varies.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchSpace {
    /// Base learning rates.
    pub lr: Values,
    /// SGD weight decays.
    pub weight_decay: Values,
    /// Minibatch sizes (rounded to integers).
    pub batch_size: Values,
    /// SGD momentums.
    pub momentum: Values,
    /// Hidden layer architectures.
    pub hidden: HiddenChoices,
    /// Epochs per trial (rounded to integers).
    pub epochs: Values,
}

/// One trial's hyperparameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialConfig {
    /// Base learning rate (of the schedule).
    pub lr: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// Minibatch size B.
    pub batch_size: usize,
    /// SGD momentum.
    pub momentum: f64,
    /// Hidden layer sizes (empty: logistic regression).
    pub hidden: Vec<usize>,
    /// Epochs to train (fewer when pruned).
    pub epochs: usize,
}

impl fmt::Display for TrialConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wd = if self.weight_decay == 0.0 {
            "0".to_string()
        } else {
            format!("{:.1e}", self.weight_decay)
        };
        write!(
            f,
            "lr {:.3e}  wd {wd}  batch {}  momentum {}  hidden {}  epochs {}",
            self.lr,
            self.batch_size,
            self.momentum,
            hidden_label(&self.hidden),
            self.epochs
        )
    }
}

/// Trials a random search draws without `--trials`.
pub const DEFAULT_RANDOM_TRIALS: usize = 12;

fn to_count(x: f64) -> usize {
    x.round().max(1.0) as usize
}

impl SearchSpace {
    /// Whether every hyperparameter takes one value only: each trial of a random search
    /// would then be the same configuration.
    pub fn is_single_point(&self) -> bool {
        [
            &self.lr,
            &self.weight_decay,
            &self.batch_size,
            &self.momentum,
            &self.epochs,
        ]
        .iter()
        .all(|v| v.is_single())
            && self.hidden.0.iter().all(|h| *h == self.hidden.0[0])
    }

    /// Checks every value's range: lr > 0, weight decay >= 0, batch size >= 1, momentum in
    /// [0, 1), epochs >= 1, no empty list.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the hyperparameter.
    pub fn validate(&self) -> Result<()> {
        let check = |name: &'static str, v: &Values, ok: &dyn Fn(f64, f64) -> bool, why: &str| {
            let (lo, hi) = v.bounds();
            if v.is_empty() || !ok(lo, hi) {
                return Err(Error::InvalidConfig {
                    name,
                    value: v.to_string(),
                    reason: why.into(),
                });
            }
            Ok(())
        };
        check("lr", &self.lr, &|lo, _| lo > 0.0, "must be > 0")?;
        check(
            "weight decay",
            &self.weight_decay,
            &|lo, _| lo >= 0.0,
            "must be >= 0",
        )?;
        check(
            "batch size",
            &self.batch_size,
            &|lo, _| lo >= 1.0,
            "must be >= 1",
        )?;
        check(
            "momentum",
            &self.momentum,
            &|lo, hi| lo >= 0.0 && hi < 1.0,
            "must be in [0, 1)",
        )?;
        check("epochs", &self.epochs, &|lo, _| lo >= 1.0, "must be >= 1")?;
        if self.hidden.0.is_empty() {
            return Err(Error::InvalidConfig {
                name: "hidden",
                value: String::new(),
                reason: "give at least one architecture".into(),
            });
        }
        Ok(())
    }

    /// Every grid point, lr varying fastest (then weight decay, momentum, batch size,
    /// epochs, hidden sizes).
    pub fn grid(&self, points: usize) -> Vec<TrialConfig> {
        let mut out = Vec::new();
        for hidden in &self.hidden.0 {
            for epochs in dedup_counts(self.epochs.grid(points)) {
                for batch_size in dedup_counts(self.batch_size.grid(points)) {
                    for &momentum in &self.momentum.grid(points) {
                        for &weight_decay in &self.weight_decay.grid(points) {
                            for &lr in &self.lr.grid(points) {
                                out.push(TrialConfig {
                                    lr,
                                    weight_decay,
                                    batch_size,
                                    momentum,
                                    hidden: hidden.clone(),
                                    epochs,
                                });
                            }
                        }
                    }
                }
            }
        }
        out
    }

    /// `trials` independent seeded draws.
    pub fn random(&self, trials: usize, seed: u64) -> Vec<TrialConfig> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..trials)
            .map(|_| TrialConfig {
                lr: self.lr.sample(&mut rng),
                weight_decay: self.weight_decay.sample(&mut rng),
                batch_size: to_count(self.batch_size.sample(&mut rng)),
                momentum: self.momentum.sample(&mut rng),
                hidden: self.hidden.0[rng.random_range(0..self.hidden.0.len())].clone(),
                epochs: to_count(self.epochs.sample(&mut rng)),
            })
            .collect()
    }

    /// The trials of a sweep: random search draws `trials` (default 12); grid search runs
    /// the whole grid, or a seeded selection of `trials` of its points (in grid order) when
    /// that is fewer.
    pub fn trials(
        &self,
        method: SearchMethod,
        trials: Option<usize>,
        grid_points: usize,
        seed: u64,
    ) -> Vec<TrialConfig> {
        match method {
            SearchMethod::Random => self.random(trials.unwrap_or(DEFAULT_RANDOM_TRIALS), seed),
            SearchMethod::Grid => {
                let grid = self.grid(grid_points);
                match trials {
                    Some(n) if n < grid.len() => {
                        let mut idx: Vec<usize> = (0..grid.len()).collect();
                        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
                        idx.truncate(n);
                        idx.sort_unstable();
                        idx.into_iter().map(|i| grid[i].clone()).collect()
                    }
                    _ => grid,
                }
            }
        }
    }
}

fn dedup_counts(v: Vec<f64>) -> Vec<usize> {
    let mut out: Vec<usize> = Vec::new();
    for c in v.into_iter().map(to_count) {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> SearchSpace {
        SearchSpace {
            lr: "1e-3:1".parse().unwrap(),
            weight_decay: "0,1e-4".parse().unwrap(),
            batch_size: "64".parse().unwrap(),
            momentum: "0,0.9".parse().unwrap(),
            hidden: "128,512-256".parse().unwrap(),
            epochs: "2".parse().unwrap(),
        }
    }

    #[test]
    fn values_parse_lists_ranges_and_refuse_bad_ranges() {
        assert_eq!("0.01,0.1".parse(), Ok(Values::List(vec![0.01, 0.1])));
        assert_eq!("3".parse(), Ok(Values::List(vec![3.0])));
        assert_eq!(
            "1e-3:1".parse(),
            Ok(Values::LogUniform { lo: 1e-3, hi: 1.0 })
        );
        assert!("0:1".parse::<Values>().is_err());
        assert!("1:0.1".parse::<Values>().is_err());
        assert!("a,b".parse::<Values>().is_err());
        assert!("nan".parse::<Values>().is_err());
        assert_eq!(
            "128,512-256,none".parse(),
            Ok(HiddenChoices(vec![vec![128], vec![512, 256], vec![]]))
        );
        assert!("128,0".parse::<HiddenChoices>().is_err());
        assert_eq!(hidden_label(&[512, 256]), "512-256");
        assert_eq!(hidden_label(&[]), "none");
    }

    #[test]
    fn grid_is_the_product_with_log_spaced_ranges() {
        let g = space().grid(4);
        assert_eq!(g.len(), 4 * 2 * 2 * 2);
        let lrs: Vec<f64> = g.iter().take(4).map(|t| t.lr).collect();
        assert_eq!(lrs, [0.001, 0.01, 0.1, 1.0]);
        assert_eq!(g[4].weight_decay, 1e-4);
        assert_eq!(g.last().unwrap().hidden, [512, 256]);
        assert_eq!(Values::LogUniform { lo: 1e-2, hi: 1.0 }.grid(1), [0.1]);
    }

    #[test]
    fn random_draws_are_seeded_and_inside_the_space() {
        let s = space();
        let a = s.random(50, 7);
        assert_eq!(a, s.random(50, 7));
        assert_ne!(a, s.random(50, 8));
        assert!(a.iter().all(|t| (1e-3..=1.0).contains(&t.lr)));
        assert!(a.iter().all(|t| [0.0, 1e-4].contains(&t.weight_decay)));
        assert!(a.iter().any(|t| t.lr < 0.03) && a.iter().any(|t| t.lr > 0.03));
        // Log-uniform: about half the draws below the geometric mean.
        let below = a.iter().filter(|t| t.lr < 0.0316).count();
        assert!((15..=35).contains(&below), "{below}");
        assert!(a.iter().any(|t| t.hidden == [128]) && a.iter().any(|t| t.hidden.len() == 2));
    }

    #[test]
    fn a_grid_with_a_smaller_budget_is_a_seeded_selection_of_the_grid() {
        let s = space();
        let all = s.grid(3);
        let some = s.trials(SearchMethod::Grid, Some(5), 3, 1);
        assert_eq!(some.len(), 5);
        assert!(some.iter().all(|t| all.contains(t)));
        assert_eq!(some, s.trials(SearchMethod::Grid, Some(5), 3, 1));
        assert_eq!(s.trials(SearchMethod::Grid, Some(1000), 3, 1), all);
        assert_eq!(s.trials(SearchMethod::Random, None, 3, 1).len(), 12);
    }

    #[test]
    fn validation_names_the_bad_hyperparameter() {
        assert!(space().validate().is_ok());
        let mut s = space();
        s.momentum = Values::List(vec![1.0]);
        assert!(s.validate().unwrap_err().to_string().contains("momentum"));
        let mut s = space();
        s.weight_decay = Values::List(vec![-1.0]);
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("weight decay")
        );
        let mut s = space();
        s.hidden = HiddenChoices(vec![]);
        assert!(s.validate().is_err());
    }

    #[test]
    fn rounding_keeps_significant_digits() {
        assert_eq!(round_significant(0.009_999_999_9, 4), 0.01);
        assert_eq!(round_significant(123_456.0, 2), 120_000.0);
        assert_eq!(round_significant(0.0, 3), 0.0);
    }
}
