//! The learning-rate range test (L. Smith, "Cyclical Learning Rates for Training Neural
//! Networks", 2015; fastai's `lr_find`, `pytorch-lr-finder`): from fresh parameters, train
//! one minibatch per step while the learning rate grows exponentially from `start_lr` to
//! `end_lr`, record the loss, and stop once it diverges.
//!
//! - **Smoothing** as fastai: an exponential moving average with bias correction,
//!   `avg = β·avg + (1-β)·loss`, `smoothed = avg / (1 - β^(i+1))`, β = 0.98.
//! - **Divergence**: the smoothed loss above `diverge_factor` (4) times the best smoothed
//!   loss so far, or a non-finite loss. The engine runs `chunk` steps per call (its
//!   per-step losses come back once per call) and the check runs after each call, so at most
//!   `chunk - 1` steps run past the divergence.
//! - **Suggestion**: the learning rate where the smoothed loss falls fastest against
//!   log(lr) (steepest descent, `pytorch-lr-finder`'s suggestion), searched between the
//!   first tenth of the points (skipped: the average is still warming up) and the point of
//!   minimum loss. The minimum-loss learning rate divided by 10 (fastai's `lr_min`) is
//!   reported too, and is the suggestion when no descent is found.

use serde::Serialize;

use std::sync::atomic::AtomicBool;

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::step::{MEMBER_FIRST, MemberStep};
use crate::train::{epoch_order, step_records};

/// Settings of one range test.
#[derive(Clone, Debug, PartialEq)]
pub struct LrFindConfig {
    /// Learning rate of the first step.
    pub start_lr: f64,
    /// Learning rate of the last step.
    pub end_lr: f64,
    /// Steps from `start_lr` to `end_lr`.
    pub steps: usize,
    /// β of the loss's moving average, in [0, 1) (0 = no smoothing).
    pub smoothing: f64,
    /// Stop when the smoothed loss exceeds this many times the best one.
    pub diverge_factor: f64,
    /// Steps per engine call; the divergence check runs between calls.
    pub chunk: usize,
}

impl Default for LrFindConfig {
    /// 1e-5 to 10 over 100 steps of 64 samples, β = 0.98, divergence at 4x, chunks of 10.
    fn default() -> Self {
        LrFindConfig {
            start_lr: 1e-5,
            end_lr: 10.0,
            steps: 100,
            smoothing: 0.98,
            diverge_factor: 4.0,
            chunk: 10,
        }
    }
}

impl LrFindConfig {
    /// Learning rate of step `i` (0-based): `start · (end / start)^(i / (steps - 1))`.
    pub fn lr_at(&self, i: usize) -> f64 {
        let t = i as f64 / (self.steps.max(2) - 1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }

    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |name, value: String, reason: &str| {
            Err(Error::InvalidConfig {
                name,
                value,
                reason: reason.into(),
            })
        };
        if !(self.start_lr.is_finite() && self.start_lr > 0.0) {
            return bad("start lr", self.start_lr.to_string(), "must be > 0");
        }
        if !(self.end_lr.is_finite() && self.end_lr > self.start_lr) {
            return bad(
                "end lr",
                self.end_lr.to_string(),
                "must be finite and above the start lr",
            );
        }
        if self.steps < 2 {
            return bad("steps", self.steps.to_string(), "must be at least 2");
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return bad("smoothing", self.smoothing.to_string(), "must be in [0, 1)");
        }
        if !(self.diverge_factor.is_finite() && self.diverge_factor > 1.0) {
            return bad(
                "diverge factor",
                self.diverge_factor.to_string(),
                "must be finite and > 1",
            );
        }
        if self.chunk == 0 {
            return bad("chunk", "0".into(), "must be at least 1");
        }
        Ok(())
    }
}

/// What [`LossTracker::push`] concluded about the latest loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep going.
    Continue,
    /// The smoothed loss exceeds `diverge_factor` times the best one.
    Diverged,
    /// The loss is NaN or infinite.
    NonFinite,
}

/// Bias-corrected moving average of the loss and the divergence rule.
#[derive(Clone, Debug)]
pub struct LossTracker {
    beta: f64,
    factor: f64,
    avg: f64,
    count: i32,
    smoothed: f64,
    best: f64,
}

impl LossTracker {
    /// A tracker with moving-average β `beta` that calls divergence at `factor` x best.
    pub fn new(beta: f64, factor: f64) -> LossTracker {
        LossTracker {
            beta,
            factor,
            avg: 0.0,
            count: 0,
            smoothed: f64::NAN,
            best: f64::INFINITY,
        }
    }

    /// Adds one step's mean loss. A non-finite loss leaves the average as it was.
    pub fn push(&mut self, loss: f64) -> Verdict {
        if !loss.is_finite() {
            return Verdict::NonFinite;
        }
        self.count += 1;
        self.avg = self.beta * self.avg + (1.0 - self.beta) * loss;
        self.smoothed = self.avg / (1.0 - self.beta.powi(self.count));
        if self.smoothed > self.factor * self.best {
            return Verdict::Diverged;
        }
        self.best = self.best.min(self.smoothed);
        Verdict::Continue
    }

    /// The latest smoothed loss (NaN before the first finite loss).
    pub fn smoothed(&self) -> f64 {
        self.smoothed
    }

    /// The best smoothed loss so far.
    pub fn best(&self) -> f64 {
        self.best
    }
}

/// One step of the range test.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct LrPoint {
    /// 0-based.
    pub step: usize,
    /// The step's learning rate.
    pub lr: f64,
    /// The minibatch's mean loss.
    pub loss: f64,
    /// The moving average of the loss up to this step.
    pub smoothed: f64,
}

/// Why the range test stopped.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Stop {
    /// Every step ran.
    Completed,
    /// The smoothed loss diverged at `step` (recorded as the last point).
    Diverged {
        /// 0-based step.
        step: usize,
        /// Its learning rate.
        lr: f64,
    },
    /// The loss was not finite at `step` (not recorded).
    NonFinite {
        /// 0-based step.
        step: usize,
        /// Its learning rate.
        lr: f64,
    },
}

/// The curve and what it suggests.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LrFindResult {
    /// Every recorded step, in order (the diverging one last).
    pub points: Vec<LrPoint>,
    /// Why the test stopped.
    pub stop: Stop,
    /// Learning rate of the steepest descent of the smoothed loss, if the curve descends.
    pub steepest: Option<f64>,
    /// Learning rate of the minimum smoothed loss.
    pub min_loss_lr: Option<f64>,
    /// The minimum smoothed loss.
    pub min_loss: Option<f64>,
}

impl LrFindResult {
    /// Builds the result and its suggestions from the recorded points.
    pub fn from_points(points: Vec<LrPoint>, stop: Stop) -> LrFindResult {
        let min = argmin_smoothed(&points);
        LrFindResult {
            steepest: steepest_descent(&points).map(|i| points[i].lr),
            min_loss_lr: min.map(|i| points[i].lr),
            min_loss: min.map(|i| points[i].smoothed),
            points,
            stop,
        }
    }

    /// The suggested learning rate: the steepest descent, else the minimum-loss lr / 10.
    pub fn suggestion(&self) -> Option<f64> {
        self.steepest.or(self.min_over_ten())
    }

    /// The minimum-loss learning rate divided by 10 (fastai's `lr_min`).
    pub fn min_over_ten(&self) -> Option<f64> {
        self.min_loss_lr.map(|lr| lr / 10.0)
    }
}

fn argmin_smoothed(points: &[LrPoint]) -> Option<usize> {
    (0..points.len())
        .filter(|&i| points[i].smoothed.is_finite())
        .min_by(|&a, &b| points[a].smoothed.total_cmp(&points[b].smoothed))
}

/// Index of the most negative slope of the smoothed loss against ln(lr) (central
/// differences inside, one-sided at the ends, as `numpy.gradient`), among the points from
/// `len / 10` up to the minimum. `None` when that range is empty or nowhere descends.
pub fn steepest_descent(points: &[LrPoint]) -> Option<usize> {
    let n = points.len();
    let imin = argmin_smoothed(points)?;
    let first = n / 10;
    if n < 3 || imin <= first {
        return None;
    }
    let x = |i: usize| points[i].lr.ln();
    let y = |i: usize| points[i].smoothed;
    let slope = |i: usize| {
        let (a, b) = if i == 0 {
            (0, 1)
        } else if i == n - 1 {
            (n - 2, n - 1)
        } else {
            (i - 1, i + 1)
        };
        (y(b) - y(a)) / (x(b) - x(a))
    };
    (first..=imin)
        .map(|i| (i, slope(i)))
        .filter(|(_, s)| s.is_finite() && *s < 0.0)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(i, _)| i)
}

/// Runs the range test on member 0 of `engine` (other members, if any, take the same
/// steps) from its run's initial parameters (momentum cleared),
/// over its run's training samples in minibatches of its run's size, shuffled with its
/// run's seed ([`Engine::setup`]). `progress` gets the number of finished steps after each
/// chunk. The engine's parameters are left as the test left them: reset them before
/// training.
///
/// # Errors
/// [`Error::InvalidConfig`] for bad settings; engine errors.
pub fn lr_find(
    engine: &mut dyn Engine,
    cfg: &LrFindConfig,
    progress: &mut dyn FnMut(usize),
) -> Result<LrFindResult> {
    cfg.validate()?;
    let setup = engine.setup().shared();
    let (train, seed, b) = (
        setup.train_indices.clone(),
        setup.config.seed,
        setup.config.batch_size,
    );
    let init = setup.init.clone();
    let k = engine.members();
    engine.set_params(0, &init)?;
    let never = AtomicBool::new(false);
    let train = &train;
    // Full minibatches only: every point of the curve averages the same number of samples.
    let per_epoch = train.len() / b;
    let mut tracker = LossTracker::new(cfg.smoothing, cfg.diverge_factor);
    let mut points = Vec::with_capacity(cfg.steps);
    let mut order = Vec::new();
    let mut epoch = usize::MAX;
    let mut step = 0;
    while step < cfg.steps {
        let (e, pos) = (step / per_epoch, step % per_epoch);
        if e != epoch {
            order = epoch_order(train, seed, e);
            epoch = e;
        }
        let n = cfg.chunk.min(cfg.steps - step).min(per_epoch - pos);
        let records = step_records(n * b, b);
        // Every member steps at the ramp's learning rate; member 0's loss is the curve.
        let member_steps: Vec<MemberStep> = (0..n)
            .flat_map(|i| {
                let flags = if step + i == 0 { MEMBER_FIRST } else { 0 };
                let ms = MemberStep::plain(cfg.lr_at(step + i) as f32, flags);
                std::iter::repeat_n(ms, k)
            })
            .collect();
        let chunk = &order[pos * b..(pos + n) * b];
        let sums = engine.train_epoch(chunk, &records, &member_steps, &mut |_| {}, &never)?;
        for (i, s) in sums[0].iter().enumerate() {
            let (at, lr) = (step + i, cfg.lr_at(step + i));
            let loss = f64::from(s[0]) / b as f64;
            let verdict = tracker.push(loss);
            if verdict == Verdict::NonFinite {
                return Ok(LrFindResult::from_points(
                    points,
                    Stop::NonFinite { step: at, lr },
                ));
            }
            points.push(LrPoint {
                step: at,
                lr,
                loss,
                smoothed: tracker.smoothed(),
            });
            if verdict == Verdict::Diverged {
                return Ok(LrFindResult::from_points(
                    points,
                    Stop::Diverged { step: at, lr },
                ));
            }
        }
        step += n;
        progress(step);
    }
    Ok(LrFindResult::from_points(points, Stop::Completed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ramp_is_exponential_from_start_to_end() {
        let cfg = LrFindConfig {
            start_lr: 1e-4,
            end_lr: 1.0,
            steps: 5,
            ..LrFindConfig::default()
        };
        let lrs: Vec<f64> = (0..5).map(|i| cfg.lr_at(i)).collect();
        for (got, want) in lrs.iter().zip([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) {
            assert!((got - want).abs() <= 1e-12 + 1e-9 * want, "{got} vs {want}");
        }
    }

    #[test]
    fn smoothing_is_fastais_bias_corrected_average() {
        let mut t = LossTracker::new(0.5, 4.0);
        t.push(2.0);
        // avg = 1.0, corrected by 1 - 0.5 = 0.5: the first smoothed value is the loss itself.
        assert!((t.smoothed() - 2.0).abs() < 1e-12);
        t.push(1.0);
        // avg = 0.5 * 1.0 + 0.5 * 1.0 = 1.0; / (1 - 0.25) = 4/3.
        assert!((t.smoothed() - 4.0 / 3.0).abs() < 1e-12);
        assert!((t.best() - 4.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn divergence_is_called_past_four_times_the_best_smoothed_loss() {
        // No smoothing: the rule sees the raw losses.
        let mut t = LossTracker::new(0.0, 4.0);
        assert_eq!(t.push(2.0), Verdict::Continue);
        assert_eq!(t.push(0.5), Verdict::Continue);
        assert_eq!(
            t.push(2.0),
            Verdict::Continue,
            "exactly 4x best is not over"
        );
        assert_eq!(t.push(2.01), Verdict::Diverged);
        assert_eq!(t.push(f64::NAN), Verdict::NonFinite);
        assert_eq!(t.push(f64::INFINITY), Verdict::NonFinite);
        // With smoothing, one outlier does not stop the test but a sustained rise does.
        let mut t = LossTracker::new(0.9, 4.0);
        for _ in 0..20 {
            assert_eq!(t.push(1.0), Verdict::Continue);
        }
        assert_eq!(t.push(20.0), Verdict::Continue);
        let mut verdict = Verdict::Continue;
        for _ in 0..30 {
            verdict = t.push(20.0);
            if verdict != Verdict::Continue {
                break;
            }
        }
        assert_eq!(verdict, Verdict::Diverged);
    }

    fn curve(losses: &[f64]) -> Vec<LrPoint> {
        let cfg = LrFindConfig {
            steps: losses.len(),
            ..LrFindConfig::default()
        };
        losses
            .iter()
            .enumerate()
            .map(|(i, &l)| LrPoint {
                step: i,
                lr: cfg.lr_at(i),
                loss: l,
                smoothed: l,
            })
            .collect()
    }

    #[test]
    fn steepest_descent_finds_the_fastest_drop_before_the_minimum() {
        // Flat, then a steep drop around index 12, a slow descent, a minimum at 16, then up.
        let mut l = vec![2.3; 10];
        l.extend([2.2, 2.0, 1.2, 0.6, 0.5, 0.45, 0.4, 0.8, 3.0, 9.0]);
        let points = curve(&l);
        let i = steepest_descent(&points).unwrap();
        assert!((11..=13).contains(&i), "{i}");
        let r = LrFindResult::from_points(points.clone(), Stop::Completed);
        assert_eq!(r.suggestion(), Some(points[i].lr));
        assert_eq!(r.min_loss_lr, Some(points[16].lr));
        assert!((r.min_over_ten().unwrap() - points[16].lr / 10.0).abs() < 1e-15);
    }

    #[test]
    fn a_rising_curve_falls_back_to_min_over_ten() {
        let points = curve(&[1.0, 1.1, 1.2, 1.5, 2.0]);
        assert_eq!(steepest_descent(&points), None);
        let r = LrFindResult::from_points(points.clone(), Stop::Completed);
        assert_eq!(r.suggestion(), Some(points[0].lr / 10.0));
        assert_eq!(
            LrFindResult::from_points(vec![], Stop::Completed).suggestion(),
            None
        );
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = LrFindConfig::default();
        assert!(ok.validate().is_ok());
        for bad in [
            LrFindConfig {
                start_lr: 0.0,
                ..ok.clone()
            },
            LrFindConfig {
                end_lr: 1e-6,
                ..ok.clone()
            },
            LrFindConfig {
                steps: 1,
                ..ok.clone()
            },
            LrFindConfig {
                smoothing: 1.0,
                ..ok.clone()
            },
            LrFindConfig {
                diverge_factor: 1.0,
                ..ok.clone()
            },
            LrFindConfig {
                chunk: 0,
                ..ok.clone()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }
}
