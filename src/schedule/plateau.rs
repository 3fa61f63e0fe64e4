//! PyTorch's `ReduceLROnPlateau`: its configuration ([`PlateauConfig`]) and the running
//! state driven by the validation metric ([`PlateauState`], serde for training states). It
//! has no closed form, so [`LrSchedule`](super::LrSchedule) only hands out a fresh state.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::error::{check, check_base_lr};
use super::{PlateauMode, ScheduleError, ThresholdMode};

/// Configuration of PyTorch's `ReduceLROnPlateau`; [`Default`] gives PyTorch's defaults
/// (`mode="min", factor=0.1, patience=10, threshold=1e-4, threshold_mode="rel", cooldown=0,
/// min_lr=0, eps=1e-8`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PlateauConfig {
    /// `mode`: minimise or maximise the metric.
    pub mode: PlateauMode,
    /// `factor`: `new_lr = lr * factor`; valid range (0, 1).
    pub factor: f64,
    /// `patience`: number of bad epochs tolerated; the lr is reduced when
    /// `num_bad_epochs > patience`.
    pub patience: usize,
    /// `threshold`: minimum significant improvement; `>= 0`, and `< 1` in `Rel` mode.
    pub threshold: f64,
    /// `threshold_mode`: relative or absolute improvement.
    pub threshold_mode: ThresholdMode,
    /// `cooldown`: epochs after a reduction during which bad epochs are not counted.
    pub cooldown: usize,
    /// `min_lr`: lower bound on the lr; `>= 0`.
    pub min_lr: f64,
    /// `eps`: a reduction smaller than or equal to `eps` is not applied; `>= 0`.
    pub eps: f64,
}

impl Default for PlateauConfig {
    fn default() -> Self {
        PlateauConfig {
            mode: PlateauMode::Min,
            factor: 0.1,
            patience: 10,
            threshold: 1e-4,
            threshold_mode: ThresholdMode::Rel,
            cooldown: 0,
            min_lr: 0.0,
            eps: 1e-8,
        }
    }
}

impl PlateauConfig {
    /// Check parameter ranges: `0 < factor < 1` (PyTorch only rejects `factor >= 1`),
    /// `threshold` finite and `>= 0` (and `< 1` in `Rel` mode, otherwise
    /// `best * (1 - threshold)` is meaningless), `min_lr` and `eps` finite and `>= 0`.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        const C: &str = "plateau";
        check(
            self.factor > 0.0 && self.factor < 1.0,
            C,
            "factor",
            self.factor,
            "0 < factor < 1",
        )?;
        check(
            self.threshold.is_finite() && self.threshold >= 0.0,
            C,
            "threshold",
            self.threshold,
            "a finite threshold >= 0",
        )?;
        if self.threshold_mode == ThresholdMode::Rel {
            check(
                self.threshold < 1.0,
                C,
                "threshold",
                self.threshold,
                "threshold < 1 with threshold_mode rel",
            )?;
        }
        check(
            self.min_lr.is_finite() && self.min_lr >= 0.0,
            C,
            "min_lr",
            self.min_lr,
            "a finite min_lr >= 0",
        )?;
        check(
            self.eps.is_finite() && self.eps >= 0.0,
            C,
            "eps",
            self.eps,
            "a finite eps >= 0",
        )
    }
}

impl fmt::Display for PlateauConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mode={}, factor={}, patience={}, threshold={}, threshold_mode={}, cooldown={}, \
             min_lr={}, eps={}",
            self.mode,
            self.factor,
            self.patience,
            self.threshold,
            self.threshold_mode,
            self.cooldown,
            self.min_lr,
            self.eps
        )
    }
}

/// A running PyTorch `ReduceLROnPlateau` for a single parameter group.
///
/// Call [`step`](Self::step) once per epoch with the validation metric (as
/// `scheduler.step(val_loss)` after the epoch); the returned lr is the one to use for the
/// next epoch. The first epoch trains with `base_lr`.
///
/// It serialises (serde) with `best` as [`crate::json_float`] writes it (`"inf"` before the
/// first improvement), so a training state can hold it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlateauState {
    cfg: PlateauConfig,
    lr: f64,
    #[serde(with = "crate::json_float")]
    best: f64,
    num_bad_epochs: usize,
    cooldown_counter: usize,
    last_epoch: usize,
}

impl PlateauState {
    /// `ReduceLROnPlateau(optimizer with lr=base_lr, **cfg)`: `best = mode_worse`
    /// (`+inf` for min, `-inf` for max), counters zero. Does not validate `cfg`;
    /// see [`try_new`](Self::try_new).
    pub fn new(cfg: PlateauConfig, base_lr: f64) -> Self {
        PlateauState {
            cfg,
            lr: base_lr,
            best: Self::mode_worse(cfg.mode),
            num_bad_epochs: 0,
            cooldown_counter: 0,
            last_epoch: 0,
        }
    }

    /// Like [`new`](Self::new) after [`PlateauConfig::validate`] and a check that `base_lr`
    /// is a valid learning rate ([`crate::optim::validate_lr`]: finite and `> 0`).
    pub fn try_new(cfg: PlateauConfig, base_lr: f64) -> Result<Self, ScheduleError> {
        cfg.validate()?;
        check_base_lr(base_lr)?;
        Ok(Self::new(cfg, base_lr))
    }

    fn mode_worse(mode: PlateauMode) -> f64 {
        match mode {
            PlateauMode::Min => f64::INFINITY,
            PlateauMode::Max => f64::NEG_INFINITY,
        }
    }

    /// `ReduceLROnPlateau._is_better(a, best)`:
    /// rel/min `a < best * (1 - threshold)`, abs/min `a < best - threshold`,
    /// rel/max `a > best * (threshold + 1)`, abs/max `a > best + threshold`.
    /// Any comparison with NaN is false, so a NaN metric is never an improvement.
    pub fn is_better(&self, a: f64, best: f64) -> bool {
        let t = self.cfg.threshold;
        match (self.cfg.mode, self.cfg.threshold_mode) {
            (PlateauMode::Min, ThresholdMode::Rel) => a < best * (1.0 - t),
            (PlateauMode::Min, ThresholdMode::Abs) => a < best - t,
            (PlateauMode::Max, ThresholdMode::Rel) => a > best * (t + 1.0),
            (PlateauMode::Max, ThresholdMode::Abs) => a > best + t,
        }
    }

    /// `ReduceLROnPlateau.step(metrics)`, line for line:
    ///
    /// ```text
    /// if is_better(current, best): best = current; num_bad_epochs = 0
    /// else: num_bad_epochs += 1
    /// if cooldown_counter > 0: cooldown_counter -= 1; num_bad_epochs = 0
    /// if num_bad_epochs > patience:
    ///     new_lr = max(old_lr * factor, min_lr); if old_lr - new_lr > eps: lr = new_lr
    ///     cooldown_counter = cooldown; num_bad_epochs = 0
    /// ```
    ///
    /// A NaN metric counts as a bad epoch (every comparison is false), as in PyTorch.
    /// Returns the new lr (to use for the next epoch).
    pub fn step(&mut self, metric: f64) -> f64 {
        self.last_epoch = self.last_epoch.saturating_add(1);
        if self.is_better(metric, self.best) {
            self.best = metric;
            self.num_bad_epochs = 0;
        } else {
            self.num_bad_epochs = self.num_bad_epochs.saturating_add(1);
        }
        if self.in_cooldown() {
            self.cooldown_counter -= 1;
            self.num_bad_epochs = 0; // ignore any bad epochs in cooldown
        }
        if self.num_bad_epochs > self.cfg.patience {
            self.reduce_lr();
            self.cooldown_counter = self.cfg.cooldown;
            self.num_bad_epochs = 0;
        }
        self.lr
    }

    /// `ReduceLROnPlateau._reduce_lr`; Python's `max(a, b)` returns `a` unless `b > a`.
    fn reduce_lr(&mut self) {
        let old_lr = self.lr;
        let scaled = old_lr * self.cfg.factor;
        let new_lr = if self.cfg.min_lr > scaled {
            self.cfg.min_lr
        } else {
            scaled
        };
        if old_lr - new_lr > self.cfg.eps {
            self.lr = new_lr;
        }
    }

    /// Current learning rate (the one to use for the next epoch).
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Best metric seen so far (`+inf`/`-inf` before the first improvement).
    pub fn best(&self) -> f64 {
        self.best
    }

    /// Consecutive epochs without significant improvement (outside cooldown).
    pub fn num_bad_epochs(&self) -> usize {
        self.num_bad_epochs
    }

    /// Remaining cooldown epochs.
    pub fn cooldown_counter(&self) -> usize {
        self.cooldown_counter
    }

    /// `in_cooldown`: `cooldown_counter > 0`.
    pub fn in_cooldown(&self) -> bool {
        self.cooldown_counter > 0
    }

    /// Number of `step` calls so far (PyTorch's `last_epoch`).
    pub fn last_epoch(&self) -> usize {
        self.last_epoch
    }

    /// The configuration.
    pub fn config(&self) -> &PlateauConfig {
        &self.cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::tests::{close, run_plateau};

    #[track_caller]
    fn assert_seq(got: &[f64], want: &[f64]) {
        assert_eq!(got.len(), want.len());
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                close(g, w),
                "index {i}: got {g:e}, want {w:e}; full {got:?}"
            );
        }
    }

    #[test]
    fn plateau_patience_reduction() {
        // min/rel, threshold 1e-4, patience 2, factor 0.1, base 0.1
        let cfg = PlateauConfig {
            patience: 2,
            ..PlateauConfig::default()
        };
        let m = [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85];
        // 1.0 < inf -> best 1.0            | lr 0.1
        // 0.9 < 1.0*0.9999 -> best 0.9     | 0.1
        // 0.95: bad 1                      | 0.1
        // 0.95: bad 2 (not > 2)            | 0.1
        // 0.95: bad 3 > 2 -> 0.01, bad 0   | 0.01
        // 0.8 better, best 0.8             | 0.01
        // 0.85 x3: bad 1, 2, 3 -> 0.001    | 0.01, 0.01, 0.001
        let want = [0.1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01, 0.001];
        assert_seq(&run_plateau(cfg, 0.1, &m), &want);
        let mut st = PlateauState::new(cfg, 0.1);
        assert_eq!(st.lr(), 0.1);
        assert_eq!(st.best(), f64::INFINITY);
        st.step(2.0);
        st.step(3.0);
        assert_eq!(
            (st.best(), st.num_bad_epochs(), st.last_epoch()),
            (2.0, 1, 2)
        );
    }

    #[test]
    fn plateau_cooldown() {
        // patience 1, cooldown 2, factor 0.5, constant metric 1.0, base 0.1
        let cfg = PlateauConfig {
            patience: 1,
            cooldown: 2,
            factor: 0.5,
            ..PlateauConfig::default()
        };
        // k0: best=1.0                          | 0.1
        // k1: bad 1                             | 0.1
        // k2: bad 2 > 1 -> 0.05, cooldown 2      | 0.05
        // k3: bad 1, in cooldown -> cd 1, bad 0  | 0.05
        // k4: bad 1, in cooldown -> cd 0, bad 0  | 0.05
        // k5: bad 1                             | 0.05
        // k6: bad 2 > 1 -> 0.025, cooldown 2     | 0.025
        // k7, k8 cooldown; k9 bad 1; k10 -> 0.0125
        let want = [
            0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.0125,
        ];
        assert_seq(&run_plateau(cfg, 0.1, &[1.0; 11]), &want);
        // without cooldown it reduces every second epoch
        let no_cd = PlateauConfig { cooldown: 0, ..cfg };
        let want = [0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.0125];
        assert_seq(&run_plateau(no_cd, 0.1, &[1.0; 7]), &want);
        // an improvement during cooldown still updates best
        let mut st = PlateauState::new(cfg, 0.1);
        for m in [1.0, 1.0, 1.0] {
            st.step(m);
        }
        assert!(st.in_cooldown());
        st.step(0.5);
        assert_eq!((st.best(), st.cooldown_counter()), (0.5, 1));
    }

    #[test]
    fn plateau_min_lr_and_eps() {
        // patience 0, factor 0.1, min_lr 1e-3: 0.1 -> 0.01 -> max(0.001, 1e-3) -> stays
        let cfg = PlateauConfig {
            patience: 0,
            min_lr: 1e-3,
            ..PlateauConfig::default()
        };
        let want = [0.1, 0.01, 0.001, 0.001, 0.001];
        assert_seq(&run_plateau(cfg, 0.1, &[1.0; 5]), &want);
        // min_lr between: 0.1 -> max(0.01, 0.05) = 0.05 -> max(0.005, 0.05): no change
        let cfg = PlateauConfig {
            patience: 0,
            min_lr: 0.05,
            ..PlateauConfig::default()
        };
        assert_seq(&run_plateau(cfg, 0.1, &[1.0; 4]), &[0.1, 0.05, 0.05, 0.05]);
        // eps: base 3e-8, factor 0.5, default eps 1e-8:
        // 3e-8 - 1.5e-8 = 1.5e-8 > 1e-8 -> applied; 1.5e-8 - 7.5e-9 = 7.5e-9 <= 1e-8 -> ignored
        let cfg = PlateauConfig {
            patience: 0,
            factor: 0.5,
            ..PlateauConfig::default()
        };
        assert_seq(
            &run_plateau(cfg, 3e-8, &[1.0; 4]),
            &[3e-8, 1.5e-8, 1.5e-8, 1.5e-8],
        );
        // eps = 1e-7, base 1e-7: 5e-8 reduction never applied
        let cfg = PlateauConfig {
            patience: 0,
            factor: 0.5,
            eps: 1e-7,
            ..PlateauConfig::default()
        };
        assert_seq(&run_plateau(cfg, 1e-7, &[1.0; 3]), &[1e-7; 3]);
    }

    #[test]
    fn plateau_mode_max_and_abs() {
        // max/rel, threshold 1e-4, patience 1, factor 0.2, base 0.01
        let cfg = PlateauConfig {
            mode: PlateauMode::Max,
            patience: 1,
            factor: 0.2,
            ..PlateauConfig::default()
        };
        // 0.5 > -inf: best 0.5                   | 0.01
        // 0.6 > 0.5*1.0001: best 0.6             | 0.01
        // 0.6 > 0.60006? no: bad 1               | 0.01
        // 0.60005 > 0.60006? no: bad 2 -> 0.002   | 0.002
        // 0.7 better                             | 0.002
        // 0.4, 0.4: bad 1, bad 2 -> 0.0004        | 0.002, 0.0004
        let m = [0.5, 0.6, 0.6, 0.60005, 0.7, 0.4, 0.4];
        let want = [0.01, 0.01, 0.01, 0.002, 0.002, 0.002, 0.0004];
        assert_seq(&run_plateau(cfg, 0.01, &m), &want);

        // min/abs, threshold 0.05, patience 1, factor 0.5, base 0.1
        let cfg = PlateauConfig {
            threshold_mode: ThresholdMode::Abs,
            threshold: 0.05,
            patience: 1,
            factor: 0.5,
            ..PlateauConfig::default()
        };
        // 1.0: best 1.0                       | 0.1
        // 0.97 < 0.95? no: bad 1              | 0.1
        // 0.90 < 0.95: best 0.9               | 0.1
        // 0.87 < 0.85? no: bad 1              | 0.1
        // 0.86: bad 2 -> 0.05                 | 0.05
        // 0.80 < 0.85: best 0.8               | 0.05
        let m = [1.0, 0.97, 0.90, 0.87, 0.86, 0.80];
        let want = [0.1, 0.1, 0.1, 0.1, 0.05, 0.05];
        assert_seq(&run_plateau(cfg, 0.1, &m), &want);

        // max/abs, threshold 0.05, patience 0, factor 0.5
        let cfg = PlateauConfig {
            mode: PlateauMode::Max,
            threshold_mode: ThresholdMode::Abs,
            threshold: 0.05,
            patience: 0,
            factor: 0.5,
            ..PlateauConfig::default()
        };
        // 1.0 best | 1.5 > 1.05 best | 1.52 > 1.55? no -> 0.05 | 1.7 > 1.55 best | 1.7 -> 0.025
        let m = [1.0, 1.5, 1.52, 1.7, 1.7];
        assert_seq(&run_plateau(cfg, 0.1, &m), &[0.1, 0.1, 0.05, 0.05, 0.025]);
    }

    #[test]
    fn plateau_nan_is_bad_epoch() {
        let cfg = PlateauConfig {
            patience: 1,
            factor: 0.5,
            ..PlateauConfig::default()
        };
        // 1.0 best | NaN bad 1 | NaN bad 2 -> 0.05 | 0.5 best | NaN bad 1 | NaN bad 2 -> 0.025
        let m = [1.0, f64::NAN, f64::NAN, 0.5, f64::NAN, f64::NAN];
        assert_seq(
            &run_plateau(cfg, 0.1, &m),
            &[0.1, 0.1, 0.05, 0.05, 0.05, 0.025],
        );
        // NaN never becomes best
        let mut st = PlateauState::new(cfg, 0.1);
        st.step(f64::NAN);
        assert_eq!(st.best(), f64::INFINITY);
    }

    /// A training state holds the plateau state as JSON (`best` starts at `+inf`): it comes
    /// back equal and steps on as the original does.
    #[test]
    fn plateau_state_round_trips_through_json() {
        let cfg = PlateauConfig {
            patience: 1,
            cooldown: 1,
            factor: 0.5,
            ..PlateauConfig::default()
        };
        let mut a = PlateauState::new(cfg, 0.1);
        let fresh: PlateauState =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(fresh, a);
        for m in [1.0, 1.0, 1.0, 0.9] {
            a.step(m);
        }
        let mut b: PlateauState =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(a, b);
        for m in [0.95, 0.95, 0.95, 0.95] {
            assert_eq!(a.step(m), b.step(m));
        }
    }

    /// The ranges [`PlateauConfig::validate`] checks, and the message naming the range.
    #[test]
    fn validation_errors() {
        let pl = |f: fn(&mut PlateauConfig)| {
            let mut c = PlateauConfig::default();
            f(&mut c);
            c.validate()
        };
        let param_of = |r: Result<(), ScheduleError>| match r {
            Err(ScheduleError::InvalidParameter { param, .. }) => param,
            other => panic!("{other:?}"),
        };
        assert!(pl(|_| {}).is_ok());
        assert_eq!(param_of(pl(|c| c.factor = 1.0)), "factor");
        assert_eq!(param_of(pl(|c| c.factor = 0.0)), "factor");
        assert_eq!(param_of(pl(|c| c.threshold = -1e-4)), "threshold");
        assert_eq!(param_of(pl(|c| c.threshold = 1.0)), "threshold");
        assert!(
            pl(|c| {
                c.threshold = 1.0;
                c.threshold_mode = ThresholdMode::Abs;
            })
            .is_ok()
        );
        assert_eq!(param_of(pl(|c| c.min_lr = -1.0)), "min_lr");
        assert_eq!(param_of(pl(|c| c.eps = f64::NAN)), "eps");
        assert!(PlateauState::try_new(PlateauConfig::default(), 0.0).is_err());
        let msg = pl(|c| c.factor = 2.0).unwrap_err().to_string();
        assert!(
            msg.contains("factor") && msg.contains("0 < factor < 1"),
            "{msg}"
        );
    }
}
