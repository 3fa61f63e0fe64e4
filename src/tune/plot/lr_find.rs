//! The learning-rate range test's picture: raw and smoothed loss against the learning
//! rate on a log axis, the suggested learning rates as dashed lines, and the minimum of
//! the smoothed loss as a dot that says it is no rate to train at.
//!
//! The marks follow fastai and PyTorch Lightning, whose users read this picture: the
//! suggestion is the steepest descent of the smoothed loss (Lightning's `suggestion()`,
//! `pytorch-lr-finder`'s), `minimum / 10` is fastai's `lr_min`, both computed on the
//! bias-corrected moving average (β = 0.98) those tools smooth with, so a user gets the
//! numbers their tool would print for the same curve. That average lags the loss (on the
//! README's 300-step run its minimum sits at 1.14, where the raw loss already spikes
//! above 2, about 3x past the raw valley), and the rules absorb the lag: the steepest
//! point comes before the minimum and the tenth of it is a wide margin (0.36 and 0.11 on
//! that run, both train well; a 10-epoch sweep's best was 0.69). Undoing the lag moves the
//! marks wrongly instead: a forward-backward (zero-lag) average lets the divergence's
//! spikes into the window from the right and put that run's minimum at 0.14, and shifting
//! each point back by the average's mean lag (49 steps, a decade there) put the steepest
//! point at 0.04. So the rates stay as fastai and Lightning compute them, and the picture
//! says what each mark is: the two to train at as dashed lines, the smoothed minimum as
//! a dot labelled as too high.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Chart, Legend, Marker, Series, draw_chart};
use super::{PALETTE, log_labels, span};
use crate::error::{Error, Result};
use crate::figure::{Figure, save};
use crate::tune::lr_find::LrFindResult;

struct LrFindCurve<'a> {
    result: &'a LrFindResult,
}

/// The dashed lines: the rates to train at, (lr, legend label, colour).
fn suggestion_lines(r: &LrFindResult) -> Vec<(f64, String, RGBColor)> {
    let mut vlines = Vec::new();
    if let Some(s) = r.steepest {
        vlines.push((
            s,
            format!("suggested: steepest descent, {s:.2e}"),
            PALETTE[3],
        ));
    }
    if let Some(s) = r.min_over_ten() {
        vlines.push((
            s,
            format!("minimum / 10 (fastai lr_min), {s:.2e}"),
            PALETTE[1],
        ));
    }
    vlines
}

/// The dot on the smoothed curve's minimum, labelled as what it is.
fn minimum_dot(r: &LrFindResult) -> Option<Series> {
    let (lr, l) = (r.min_loss_lr?, r.min_loss?);
    Some(Series {
        label: Some(format!(
            "smoothed minimum, {lr:.2e}: lags the loss, too high to train at"
        )),
        points: vec![(lr, l)],
        color: PALETTE[2],
        line: 0,
        alpha: 1.0,
        marker: Marker::Filled,
        pin: false,
    })
}

impl Figure for LrFindCurve<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let r = self.result;
        let p = &r.points;
        let best = r.min_loss.unwrap_or(1.0);
        // From the lowest loss up to the starting level (at least 1.5x, at most 4x the
        // minimum): the divergence runs off the top instead of flattening the curve.
        let first = p.first().map_or(best, |q| q.smoothed);
        let top = first.max(best * 1.5).min(best * 4.0);
        let low = p
            .iter()
            .flat_map(|q| [q.smoothed, q.loss])
            .fold(best, f64::min);
        let y = span([low, top].into_iter(), 0.05, 0.0..1.0);
        let x_lo = p.first().map_or(1e-5, |q| q.lr);
        let x_hi = p.last().map_or(10.0, |q| q.lr).max(x_lo * 10.0);
        let mut series = vec![
            Series {
                label: Some("loss (each minibatch)".into()),
                points: p.iter().map(|q| (q.lr, q.loss)).collect(),
                color: RGBColor(150, 150, 150),
                line: 1,
                alpha: 0.6,
                marker: Marker::None,
                pin: false,
            },
            Series {
                label: Some("smoothed loss (moving average)".into()),
                points: p.iter().map(|q| (q.lr, q.smoothed)).collect(),
                color: PALETTE[0],
                line: 3,
                alpha: 1.0,
                marker: Marker::None,
                pin: false,
            },
        ];
        series.extend(minimum_dot(r));
        let vlines = suggestion_lines(r);
        let chart = Chart {
            title: "learning-rate range test: train at a dashed line".into(),
            x_desc: "learning rate (log scale)".into(),
            y_desc: "training loss".into(),
            series,
            vlines,
            legend: Legend::Right,
            log_x: true,
        };
        draw_chart(
            root,
            &chart,
            (x_lo..x_hi).log_scale(),
            y.start.max(0.0)..y.end,
            &log_labels(x_lo, x_hi),
        )
    }
}

/// Writes the range test's loss against the learning rate (log x; raw and smoothed loss,
/// the suggestions as dashed lines) to `dir/stem.png` and `dir/stem.svg`.
///
/// # Errors
/// [`Error::InvalidConfig`] for a curve of no points; [`Error::Io`] naming the file.
pub fn lr_find_curve(result: &LrFindResult, dir: &Path, stem: &str) -> Result<Vec<PathBuf>> {
    if result.points.is_empty() {
        return Err(Error::InvalidConfig {
            name: "lr-find curve",
            value: "0 points".into(),
            reason: "the loss was not finite from the first step: lower --start-lr".into(),
        });
    }
    save(&LrFindCurve { result }, dir, stem)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::lr_find::{LossTracker, LrFindConfig, LrPoint, Stop, Verdict};

    /// Issue 26, item 3: the picture labelled the smoothed curve's minimum "minimum loss"
    /// and offered it beside the suggestions, though the average lags the loss and the raw
    /// loss already rises there. A synthetic range test with a known answer: the loss is
    /// flat at 2.3, falls fastest at lr 0.1 (a logistic drop in ln lr), is lowest at 0.5
    /// and rises past it, so only rates below 0.5 can be trained at. The dashed lines (the
    /// rates to use) must lie there, and the smoothed minimum, which lags past 0.5, must
    /// say it is too high.
    #[test]
    fn lr_find_marks_rates_to_train_at_below_the_losss_minimum_and_labels_the_lagging_one() {
        let cfg = LrFindConfig {
            steps: 300,
            ..LrFindConfig::default()
        };
        let loss = |lr: f64| {
            let u = lr.ln();
            let drop = 1.3 / (1.0 + ((u - 0.1f64.ln()) / 0.7).exp());
            let rise = (u - 0.5f64.ln()).max(0.0);
            1.0 + drop + 2.0 * rise * rise
        };
        let mut tracker = LossTracker::new(cfg.smoothing, cfg.diverge_factor);
        let mut points = Vec::new();
        let mut stop = Stop::Completed;
        for i in 0..cfg.steps {
            let (lr, l) = (cfg.lr_at(i), loss(cfg.lr_at(i)));
            let verdict = tracker.push(l);
            points.push(LrPoint {
                step: i,
                lr,
                loss: l,
                smoothed: tracker.smoothed(),
            });
            if verdict == Verdict::Diverged {
                stop = Stop::Diverged { step: i, lr };
                break;
            }
        }
        let r = LrFindResult::from_points(points, stop);
        let lines = suggestion_lines(&r);
        assert_eq!(lines.len(), 2, "{lines:?}");
        for (lr, label, _) in &lines {
            assert!(*lr < 0.5, "{label}: {lr} is past the loss's minimum at 0.5");
            assert!(
                loss(*lr) < loss(lr / 2.0),
                "{label}: the loss still falls at {lr}"
            );
        }
        assert!(lines[0].1.starts_with("suggested"), "{:?}", lines[0]);
        let dot = minimum_dot(&r).unwrap();
        let (lr, _) = dot.points[0];
        assert!(
            lr > 0.5,
            "the average lags: its minimum {lr} is past the loss's"
        );
        let label = dot.label.unwrap();
        assert!(label.contains("too high to train at"), "{label}");
        assert!(!label.starts_with("minimum loss"), "{label}");
    }
}
