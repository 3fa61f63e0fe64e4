//! A sweep's pictures: final validation accuracy against the learning rate (one colour
//! per weight decay) and the validation curves of the best trials.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Chart, Legend, Marker, Series, draw_chart, draw_legend_beside, legend_width};
use super::{PALETTE, epoch_label, epoch_range, log_labels, sci, span};
use crate::error::{Error, Result};
use crate::figure::{FONT, Figure, err, save};
use crate::tune::EpochMetrics;
use crate::tune::space::hidden_label;
use crate::tune::sweep::{Trial, TrialStatus, leaderboard};

/// Groups trials by weight decay: one group per value when there are at most 6 values,
/// else one per decade. Returns (label, exact values?, trials) in increasing decay.
fn decay_groups(trials: &[Trial]) -> Vec<(String, bool, Vec<&Trial>)> {
    let mut values: Vec<f64> = trials.iter().map(|t| t.config.weight_decay).collect();
    values.sort_by(f64::total_cmp);
    values.dedup();
    if values.len() <= 6 {
        return values
            .iter()
            .map(|&v| {
                let label = if v == 0.0 {
                    "wd 0".to_string()
                } else {
                    format!("wd {v:e}")
                };
                let ts = trials
                    .iter()
                    .filter(|t| t.config.weight_decay == v)
                    .collect();
                (label, true, ts)
            })
            .collect();
    }
    let decade = |v: f64| {
        if v == 0.0 {
            i32::MIN
        } else {
            v.log10().floor() as i32
        }
    };
    let mut decades: Vec<i32> = values.iter().map(|&v| decade(v)).collect();
    decades.dedup();
    decades
        .into_iter()
        .map(|d| {
            let label = if d == i32::MIN {
                "wd 0".to_string()
            } else {
                format!("wd in [1e{d}, 1e{})", d + 1)
            };
            let ts = trials
                .iter()
                .filter(|t| decade(t.config.weight_decay) == d)
                .collect();
            (label, false, ts)
        })
        .collect()
}

struct SweepLrAccuracy<'a> {
    trials: &'a [Trial],
}

impl Figure for SweepLrAccuracy<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let t = self.trials;
        // The axis spans the completed trials (all trials when none completed); pruned and
        // diverged trials below it sit on its bottom edge.
        let complete = t.iter().any(|t| t.status == TrialStatus::Complete);
        let accs = t
            .iter()
            .filter(|t| !complete || t.status == TrialStatus::Complete)
            .filter_map(|t| t.val_accuracy)
            .map(|a| 100.0 * a);
        let y = span(accs, 0.15, 0.0..100.0);
        let y = y.start.max(0.0)..y.end.min(100.5);
        let lrs = || t.iter().map(|t| t.config.lr);
        let x_lo = lrs().fold(f64::INFINITY, f64::min);
        let x_hi = lrs().fold(f64::NEG_INFINITY, f64::max);
        let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo {
            (x_lo / 1.5, x_hi * 1.5)
        } else {
            (x_lo.min(1.0) / 3.0, x_lo.min(1.0) * 3.0)
        };
        let mut series = Vec::new();
        for (i, (label, exact, group)) in decay_groups(t).into_iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let mut complete: Vec<(f64, f64)> = group
                .iter()
                .filter(|t| t.status == TrialStatus::Complete)
                .filter_map(|t| t.val_accuracy.map(|a| (t.config.lr, 100.0 * a)))
                .collect();
            complete.sort_by(|a, b| a.0.total_cmp(&b.0));
            series.push(Series {
                label: Some(label),
                points: complete,
                color,
                line: if exact { 2 } else { 0 },
                alpha: 0.8,
                marker: Marker::Filled,
                pin: false,
            });
            let pruned: Vec<(f64, f64)> = group
                .iter()
                .filter(|t| t.status == TrialStatus::Pruned)
                .filter_map(|t| t.val_accuracy.map(|a| (t.config.lr, 100.0 * a)))
                .collect();
            series.push(Series {
                label: None,
                points: pruned,
                color,
                line: 0,
                alpha: 1.0,
                marker: Marker::Hollow,
                pin: true,
            });
            let diverged: Vec<(f64, f64)> = group
                .iter()
                .filter(|t| t.status == TrialStatus::Diverged)
                .map(|t| (t.config.lr, y.start))
                .collect();
            series.push(Series {
                label: None,
                points: diverged,
                color,
                line: 0,
                alpha: 1.0,
                marker: Marker::Cross,
                pin: true,
            });
        }
        let any = |s: TrialStatus| t.iter().any(|t| t.status == s);
        let gray = RGBColor(90, 90, 90);
        if any(TrialStatus::Pruned) {
            series.push(Series {
                label: Some("pruned (accuracy when stopped)".into()),
                points: vec![],
                color: gray,
                line: 0,
                alpha: 1.0,
                marker: Marker::Hollow,
                pin: false,
            });
        }
        if any(TrialStatus::Diverged) {
            series.push(Series {
                label: Some("diverged".into()),
                points: vec![],
                color: gray,
                line: 0,
                alpha: 1.0,
                marker: Marker::Cross,
                pin: false,
            });
        }
        let off_axis = t.iter().any(|t| {
            t.status == TrialStatus::Diverged || t.val_accuracy.is_some_and(|a| 100.0 * a < y.start)
        });
        if off_axis {
            series.push(Series {
                label: Some("(lower ones sit on the bottom edge)".into()),
                points: vec![],
                color: gray,
                line: 0,
                alpha: 1.0,
                marker: Marker::None,
                pin: false,
            });
        }
        let chart = Chart {
            title: "sweep: validation accuracy against learning rate".into(),
            x_desc: "learning rate (log scale)".into(),
            y_desc: "validation accuracy (%)".into(),
            series,
            vlines: vec![],
            legend: Legend::Right,
            log_x: true,
        };
        draw_chart(
            root,
            &chart,
            (x_lo..x_hi).log_scale(),
            y,
            &log_labels(x_lo, x_hi),
        )
    }
}

struct TopCurves<'a> {
    trials: Vec<&'a Trial>,
    labels: Vec<String>,
}

impl Figure for TopCurves<'_> {
    fn size(&self) -> (u32, u32) {
        (1400, 520)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let title = format!("sweep: the top {} trials", self.trials.len());
        let root = root.titled(&title, (FONT, 22)).map_err(err)?;
        // One legend for both panels, in a column right of them: the loss chart's (its
        // series have the same labels and styles as the accuracy chart's).
        let labels: Vec<&str> = self.labels.iter().map(String::as_str).collect();
        let (w, _) = root.dim_in_pixel();
        let (panels, legend) = root.split_horizontally(w - legend_width(&labels)? - 16);
        let (pw, _) = panels.dim_in_pixel();
        let (left, right) = panels.split_horizontally(pw / 2);
        let curves = |f: &dyn Fn(&EpochMetrics) -> Option<f64>| -> Vec<Series> {
            self.trials
                .iter()
                .zip(&self.labels)
                .enumerate()
                .map(|(i, (t, label))| {
                    Series::line(
                        label.clone(),
                        t.history
                            .iter()
                            .filter_map(|m| f(m).map(|v| (m.epoch as f64, v)))
                            .collect(),
                        PALETTE[i % PALETTE.len()],
                    )
                })
                .collect()
        };
        let acc = curves(&|m| m.val_accuracy.map(|a| 100.0 * a));
        let loss = curves(&|m| m.val_loss);
        let epochs = self
            .trials
            .iter()
            .map(|t| t.history.len())
            .max()
            .unwrap_or(1);
        let y_acc = span(
            acc.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..100.0,
        );
        let y_loss = span(
            loss.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..1.0,
        );
        let chart = |title: &str, y_desc: &str, series, legend| Chart {
            title: title.into(),
            x_desc: "epoch".into(),
            y_desc: y_desc.into(),
            series,
            vlines: vec![],
            legend,
            log_x: false,
        };
        draw_chart(
            &left,
            &chart("validation accuracy", "accuracy (%)", acc, Legend::Hidden),
            epoch_range(epochs),
            y_acc.start.max(0.0)..y_acc.end.min(100.5),
            &epoch_label,
        )?;
        let loss = chart(
            "validation loss",
            "mean cross-entropy",
            loss,
            Legend::Hidden,
        );
        draw_chart(
            &right,
            &loss,
            epoch_range(epochs),
            y_loss.start.max(0.0)..y_loss.end,
            &epoch_label,
        )?;
        draw_legend_beside(&legend, &loss, 40)
    }
}

/// Legend labels naming each trial by the hyperparameters that vary across the sweep.
fn trial_labels(all: &[Trial], shown: &[&Trial]) -> Vec<String> {
    let varies = |f: &dyn Fn(&Trial) -> String| {
        let first = all.first().map(f);
        all.iter().any(|t| Some(f(t)) != first)
    };
    type Field<'f> = (&'static str, &'f dyn Fn(&Trial) -> String);
    let fields: [Field<'_>; 6] = [
        ("lr", &|t| sci(t.config.lr, 2)),
        ("wd", &|t| sci(t.config.weight_decay, 1)),
        ("b", &|t| t.config.batch_size.to_string()),
        ("m", &|t| t.config.momentum.to_string()),
        ("h", &|t| hidden_label(&t.config.hidden)),
        ("ep", &|t| t.config.epochs.to_string()),
    ];
    let used: Vec<_> = fields.iter().filter(|(_, f)| varies(*f)).collect();
    shown
        .iter()
        .map(|t| {
            let mut s = format!("#{}", t.id);
            for (name, f) in &used {
                s.push_str(&format!(" {name} {}", f(t)));
            }
            s
        })
        .collect()
}

/// Writes a sweep's pictures to `dir`: `sweep_lr_accuracy.{png,svg}` (final validation
/// accuracy against the learning rate, one colour per weight decay; pruned trials hollow,
/// diverged ones as crosses on the bottom edge) and `sweep_top_trials.{png,svg}` (the
/// validation curves of the `top` best trials of the leaderboard). Returns the paths.
///
/// # Errors
/// [`Error::InvalidConfig`] for a sweep without trials; [`Error::Io`] naming the file.
pub fn sweep_plots(trials: &[Trial], top: usize, dir: &Path) -> Result<Vec<PathBuf>> {
    if trials.is_empty() {
        return Err(Error::InvalidConfig {
            name: "sweep",
            value: "0 trials".into(),
            reason: "there is nothing to plot".into(),
        });
    }
    let mut written = save(&SweepLrAccuracy { trials }, dir, "sweep_lr_accuracy")?;
    let ranked: Vec<&Trial> = leaderboard(trials)
        .iter()
        .filter_map(|r| trials.iter().find(|t| t.id == r.trial))
        .filter(|t| !t.history.is_empty())
        .take(top.max(1))
        .collect();
    if !ranked.is_empty() {
        let labels = trial_labels(trials, &ranked);
        written.extend(save(
            &TopCurves {
                trials: ranked,
                labels,
            },
            dir,
            "sweep_top_trials",
        )?);
    }
    Ok(written)
}
