//! The learning-rate range test's picture: raw and smoothed loss against the learning
//! rate on a log axis, with the suggested learning rates as dashed lines.

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
                label: Some("loss".into()),
                points: p.iter().map(|q| (q.lr, q.loss)).collect(),
                color: RGBColor(150, 150, 150),
                line: 1,
                alpha: 0.6,
                marker: Marker::None,
                pin: false,
            },
            Series {
                label: Some("smoothed loss".into()),
                points: p.iter().map(|q| (q.lr, q.smoothed)).collect(),
                color: PALETTE[0],
                line: 3,
                alpha: 1.0,
                marker: Marker::None,
                pin: false,
            },
        ];
        if let (Some(lr), Some(l)) = (r.min_loss_lr, r.min_loss) {
            series.push(Series {
                label: Some(format!("minimum loss at {lr:.2e}")),
                points: vec![(lr, l)],
                color: PALETTE[2],
                line: 0,
                alpha: 1.0,
                marker: Marker::Filled,
                pin: false,
            });
        }
        let mut vlines = Vec::new();
        if let Some(s) = r.steepest {
            vlines.push((s, format!("steepest descent: {s:.2e}"), PALETTE[3]));
        }
        if let Some(s) = r.min_over_ten() {
            vlines.push((s, format!("minimum / 10: {s:.2e}"), PALETTE[1]));
        }
        let chart = Chart {
            title: "learning-rate range test".into(),
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
