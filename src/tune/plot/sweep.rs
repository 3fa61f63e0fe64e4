//! A sweep's pictures: final validation accuracy against each hyperparameter it varied and
//! against a single run's epoch time per batch size ([`super::hyperparameters`]), and the
//! validation curves of the best trials.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Chart, Legend, Series, draw_chart, draw_legend_beside, legend_width};
use super::hyperparameters::{AccuracyAgainst, AccuracyAgainstTime, Param, varied};
use super::{PALETTE, epoch_label, epoch_range, sci, span};
use crate::error::{Error, Result};
use crate::figure::{FONT, Figure, err, save};
use crate::tune::EpochMetrics;
use crate::tune::space::hidden_label;
use crate::tune::sweep::{Trial, leaderboard};

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

/// Writes a sweep's pictures to `dir`: per hyperparameter the sweep varied, final
/// validation accuracy against it, the other varied ones by colour
/// (`sweep_lr_accuracy`, `sweep_wd_accuracy`, `sweep_batch_accuracy`,
/// `sweep_momentum_accuracy`; the learning rate's alone when none varies); pruned trials
/// hollow, diverged ones as crosses on the bottom edge; `sweep_time_accuracy` (accuracy
/// against a single run's epoch time per batch size) when two or more batch sizes carry
/// those times;
/// and `sweep_top_trials` (the validation curves of the `top` best trials of the
/// leaderboard). Each as `.png` and `.svg`. Returns the paths.
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
    let mut params = varied(trials);
    if params.is_empty() {
        params.push(Param::Lr);
    }
    let mut written = Vec::new();
    for param in params {
        written.extend(save(&AccuracyAgainst { trials, param }, dir, param.stem())?);
    }
    // The time picture answers the batch-size question: drawn when two or more batch
    // sizes carry a single run's epoch time.
    let mut timed: Vec<usize> = trials
        .iter()
        .filter(|t| t.single_run_epoch_seconds.is_some())
        .map(|t| t.config.batch_size)
        .collect();
    timed.sort_unstable();
    timed.dedup();
    if timed.len() > 1 {
        let figure = AccuracyAgainstTime { trials };
        written.extend(save(&figure, dir, "sweep_time_accuracy")?);
    }
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
