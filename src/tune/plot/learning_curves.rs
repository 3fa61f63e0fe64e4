//! Learning curves: loss and accuracy per epoch side by side, under a title wrapped to the
//! canvas width, of one run ([`learning_curves`]) or of several runs in one picture
//! ([`compare_runs`]).

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Chart, Legend, Marker, Series, draw_chart, draw_legend_beside, legend_width};
use super::{PALETTE, epoch_label, epoch_range, span};
use crate::error::{Error, Result};
use crate::figure::{FONT, Figure, err, save};
use crate::tune::EpochMetrics;

/// Splits `title` into lines no wider than `max_width` pixels as `measure` reports them:
/// greedily at `, ` (the comma stays at the end of its line), then at spaces for a piece
/// that is still too wide. No character is dropped: the lines joined with the separators
/// they were split at give `title` back. A single word wider than `max_width` keeps a
/// line of its own.
fn wrap_title(title: &str, max_width: u32, measure: &dyn Fn(&str) -> u32) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let push = |piece: &str, sep: &str, lines: &mut Vec<String>, current: &mut String| {
        let candidate = format!("{current}{piece}");
        if current.is_empty() || measure(candidate.trim_end()) <= max_width {
            *current = candidate;
        } else {
            lines.push(current.trim_end().to_owned());
            *current = piece.to_owned();
        }
        current.push_str(sep);
    };
    let clauses: Vec<&str> = title.split(", ").collect();
    for (i, clause) in clauses.iter().enumerate() {
        let comma = if i + 1 < clauses.len() { "," } else { "" };
        let piece = format!("{clause}{comma}");
        if measure(&piece) <= max_width {
            push(&piece, " ", &mut lines, &mut current);
        } else {
            let words: Vec<&str> = piece.split(' ').collect();
            for w in words {
                push(w, " ", &mut lines, &mut current);
            }
        }
    }
    if !current.trim().is_empty() {
        lines.push(current.trim_end().to_owned());
    }
    lines
}

/// Draws `title` centred at the top of `root`, wrapped by [`wrap_title`] to the canvas
/// width less a 20 px margin on each side, and returns the area below it. (plotters'
/// `titled` draws one line, which a long title overflows at both ends.)
fn titled_wrapped<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    size: u32,
) -> std::result::Result<DrawingArea<DB, Shift>, String> {
    let font = (FONT, size).into_font();
    let (w, _) = root.dim_in_pixel();
    let measure = |s: &str| font.box_size(s).map_or(u32::MAX, |(bw, _)| bw);
    let lines = wrap_title(title, w.saturating_sub(40), &measure);
    let line_h = font.box_size("Mg").map_err(err)?.1 + 4;
    let style = TextStyle::from(font.clone()).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Center,
        plotters::style::text_anchor::VPos::Top,
    ));
    let pad = 5;
    for (i, line) in lines.iter().enumerate() {
        let y = pad + i as i32 * line_h as i32;
        root.draw_text(line, &style, (w as i32 / 2, y))
            .map_err(err)?;
    }
    let used = pad as u32 * 2 + line_h * lines.len() as u32;
    Ok(root.split_vertically(used).1)
}

struct LearningCurves<'a> {
    metrics: &'a [EpochMetrics],
    title: &'a str,
}

impl Figure for LearningCurves<'_> {
    fn size(&self) -> (u32, u32) {
        (1200, 480)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let root = titled_wrapped(root, self.title, 22)?;
        let (left, right) = root.split_horizontally(600);
        let m = self.metrics;
        let epoch = |e: &EpochMetrics| e.epoch as f64;
        let has_val = m.iter().any(|e| e.val_loss.is_some());
        // The test set is drawn only for runs without a validation split: with one, the
        // validation set is what a reader should tune against.
        let has_test = !has_val && m.iter().any(|e| e.test_loss.is_some());
        let mut loss = vec![Series::line(
            "train",
            m.iter().map(|e| (epoch(e), e.train_loss)).collect(),
            PALETTE[0],
        )];
        let mut acc = vec![Series::line(
            "train",
            m.iter()
                .map(|e| (epoch(e), 100.0 * e.train_accuracy))
                .collect(),
            PALETTE[0],
        )];
        let mut extra = |name: &str,
                         color: RGBColor,
                         l: &dyn Fn(&EpochMetrics) -> Option<f64>,
                         a: &dyn Fn(&EpochMetrics) -> Option<f64>| {
            loss.push(Series::line(
                name,
                m.iter()
                    .filter_map(|e| l(e).map(|v| (epoch(e), v)))
                    .collect(),
                color,
            ));
            acc.push(Series::line(
                name,
                m.iter()
                    .filter_map(|e| a(e).map(|v| (epoch(e), 100.0 * v)))
                    .collect(),
                color,
            ));
        };
        if has_val {
            extra("validation", PALETTE[1], &|e| e.val_loss, &|e| {
                e.val_accuracy
            });
        }
        if has_test {
            extra("test", PALETTE[2], &|e| e.test_loss, &|e| e.test_accuracy);
        }
        let y_loss = span(
            loss.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..1.0,
        );
        let y_acc = span(
            acc.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..100.0,
        );
        let y_acc = y_acc.start.max(0.0)..y_acc.end.min(100.5);
        let x = epoch_range(m.iter().map(|e| e.epoch).max().unwrap_or(1));
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
            &chart(
                "loss",
                "mean cross-entropy",
                loss,
                Legend::Inside(SeriesLabelPosition::UpperRight),
            ),
            x.clone(),
            y_loss.start.max(0.0)..y_loss.end,
            &epoch_label,
        )?;
        draw_chart(
            &right,
            &chart(
                "accuracy",
                "accuracy (%)",
                acc,
                Legend::Inside(SeriesLabelPosition::LowerRight),
            ),
            x,
            y_acc,
            &epoch_label,
        )
    }
}

/// A held-out set's (loss, accuracy) of one epoch, if it was measured.
type HeldOut = fn(&EpochMetrics) -> Option<(f64, f64)>;

/// Several runs' learning curves in one picture: loss and accuracy per epoch side by
/// side, one colour per run, its training curve thin with hollow markers and its held-out
/// curve (validation, or test for a run without a validation split) bold, one legend for
/// both charts beside them.
struct RunComparison<'a> {
    runs: &'a [(String, Vec<EpochMetrics>)],
}

impl RunComparison<'_> {
    /// The (loss, accuracy %) series of every run, in the legend's order.
    fn series(&self) -> (Vec<Series>, Vec<Series>) {
        let (mut loss, mut acc) = (Vec::new(), Vec::new());
        for (i, (label, m)) in self.runs.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let epoch = |e: &EpochMetrics| e.epoch as f64;
            let thin = |name: String, points: Vec<(f64, f64)>| Series {
                line: 1,
                marker: Marker::Hollow,
                ..Series::line(name, points, color)
            };
            loss.push(thin(
                format!("{label}: train"),
                m.iter().map(|e| (epoch(e), e.train_loss)).collect(),
            ));
            acc.push(thin(
                format!("{label}: train"),
                m.iter()
                    .map(|e| (epoch(e), 100.0 * e.train_accuracy))
                    .collect(),
            ));
            let held: [(&str, HeldOut); 2] = [
                ("validation", |e| e.val_loss.zip(e.val_accuracy)),
                ("test", |e| e.test_loss.zip(e.test_accuracy)),
            ];
            let Some((name, pick)) = held
                .into_iter()
                .find(|(_, pick)| m.iter().any(|e| pick(e).is_some()))
            else {
                continue;
            };
            let points: Vec<(f64, f64, f64)> = m
                .iter()
                .filter_map(|e| pick(e).map(|(l, a)| (epoch(e), l, 100.0 * a)))
                .collect();
            let name = format!("{label}: {name}");
            loss.push(Series::line(
                name.clone(),
                points.iter().map(|p| (p.0, p.1)).collect(),
                color,
            ));
            acc.push(Series::line(
                name,
                points.iter().map(|p| (p.0, p.2)).collect(),
                color,
            ));
        }
        (loss, acc)
    }
}

impl Figure for RunComparison<'_> {
    fn size(&self) -> (u32, u32) {
        (1400, 520)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let names: Vec<&str> = self.runs.iter().map(|(l, _)| l.as_str()).collect();
        let title = format!(
            "learning curves of {} runs: {}",
            names.len(),
            names.join(", ")
        );
        let root = titled_wrapped(root, &title, 22)?;
        let (loss, acc) = self.series();
        let y_loss = span(
            loss.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..1.0,
        );
        let y_acc = span(
            acc.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..100.0,
        );
        let epochs = self
            .runs
            .iter()
            .flat_map(|(_, m)| m.iter().map(|e| e.epoch));
        let x = epoch_range(epochs.max().unwrap_or(1));
        let chart = |title: &str, y_desc: &str, series| Chart {
            title: title.into(),
            x_desc: "epoch".into(),
            y_desc: y_desc.into(),
            series,
            vlines: vec![],
            legend: Legend::Hidden,
            log_x: false,
        };
        let loss = chart("loss", "mean cross-entropy", loss);
        let acc = chart("accuracy", "accuracy (%)", acc);
        let labels: Vec<&str> = loss
            .series
            .iter()
            .filter_map(|s| s.label.as_deref())
            .collect();
        let (w, _) = root.dim_in_pixel();
        let (charts, column) =
            root.split_horizontally(w.saturating_sub(legend_width(&labels)? + 16));
        let (cw, _) = charts.dim_in_pixel();
        let (left, right) = charts.split_horizontally(cw / 2);
        draw_chart(
            &left,
            &loss,
            x.clone(),
            y_loss.start.max(0.0)..y_loss.end,
            &epoch_label,
        )?;
        draw_chart(
            &right,
            &acc,
            x,
            y_acc.start.max(0.0)..y_acc.end.min(100.5),
            &epoch_label,
        )?;
        draw_legend_beside(&column, &loss, 44)
    }
}

/// Writes several runs' learning curves in one picture: loss and accuracy per epoch side
/// by side, one colour per run, its training curve thin with hollow markers and its
/// held-out curve (validation, or test without a validation split) bold, one legend
/// beside both charts. `runs` are (legend label, the run's epochs), e.g. from `--metrics`
/// files; to `dir/stem.png` and `dir/stem.svg`. Returns the paths.
///
/// # Errors
/// [`Error::InvalidConfig`] for no runs or a run without epochs (named by its label);
/// [`Error::Io`] naming the file.
pub fn compare_runs(
    runs: &[(String, Vec<EpochMetrics>)],
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>> {
    if let Some((label, _)) = runs.iter().find(|(_, m)| m.is_empty()) {
        return Err(Error::InvalidConfig {
            name: "metrics",
            value: label.clone(),
            reason: "has no epochs: there is nothing to plot".into(),
        });
    }
    if runs.is_empty() {
        return Err(Error::InvalidConfig {
            name: "metrics",
            value: "0 runs".into(),
            reason: "there is nothing to plot".into(),
        });
    }
    save(&RunComparison { runs }, dir, stem)
}

/// Writes the learning curves of a run (loss and accuracy per epoch; training and
/// validation, or training and test for a run without a validation split) to
/// `dir/stem.png` and `dir/stem.svg`. Returns the paths.
///
/// # Errors
/// [`Error::InvalidConfig`] for no epochs; [`Error::Io`] naming the file.
pub fn learning_curves(
    metrics: &[EpochMetrics],
    title: &str,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>> {
    if metrics.is_empty() {
        return Err(Error::InvalidConfig {
            name: "metrics",
            value: "0 epochs".into(),
            reason: "there is nothing to plot".into(),
        });
    }
    save(&LearningCurves { metrics, title }, dir, stem)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(e: usize, train: f64, val: Option<f64>, test: Option<f64>) -> EpochMetrics {
        EpochMetrics {
            epoch: e,
            lr: 0.1,
            train_loss: train,
            train_accuracy: 1.0 - train / 4.0,
            val_loss: val,
            val_accuracy: val.map(|v| 1.0 - v / 4.0),
            test_loss: test,
            test_accuracy: test.map(|v| 1.0 - v / 4.0),
            epoch_seconds: 1.0,
        }
    }

    /// Issue 26, item 5: several runs in one picture, one colour per run, its training
    /// curve and its held-out curve (validation when it has one, else test) labelled with
    /// the run's name.
    #[test]
    fn several_runs_share_one_picture_with_a_colour_and_legend_entries_per_run() {
        let runs = vec![
            (
                "a".to_string(),
                vec![
                    epoch(1, 0.8, Some(0.7), Some(0.6)),
                    epoch(2, 0.4, Some(0.5), None),
                ],
            ),
            ("b".to_string(), vec![epoch(1, 0.9, None, Some(0.65))]),
        ];
        let (loss, acc) = RunComparison { runs: &runs }.series();
        let labels: Vec<&str> = loss.iter().filter_map(|s| s.label.as_deref()).collect();
        assert_eq!(labels, ["a: train", "a: validation", "b: train", "b: test"]);
        assert_eq!(loss[0].color, loss[1].color);
        assert_ne!(loss[0].color, loss[2].color);
        assert_eq!(loss[1].points, [(1.0, 0.7), (2.0, 0.5)]);
        assert_eq!(loss[3].points, [(1.0, 0.65)]);
        assert!((acc[3].points[0].1 - 100.0 * (1.0 - 0.65 / 4.0)).abs() < 1e-9);
        let dir = tempfile::tempdir().unwrap();
        let written = compare_runs(&runs, dir.path(), "runs").unwrap();
        let svg = std::fs::read_to_string(&written[1]).unwrap();
        for label in labels {
            assert!(svg.contains(label), "the SVG lacks {label:?}");
        }
        let empty = vec![("c".to_string(), vec![])];
        let e = compare_runs(&empty, dir.path(), "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c") && e.contains("no epochs"), "{e}");
    }

    /// Regression (issue 10, item 14): a long learning-curve title was drawn on one line
    /// and clipped at both ends, losing the model name. It now wraps to the canvas width.
    #[test]
    fn a_long_learning_curve_title_wraps_within_the_canvas_and_keeps_the_model_name() {
        crate::figure::register_font();
        let title = "MLP 784-512-256-128-10, lr onecycle (max_lr=0.5, total_steps=93800, \
                     pct_start=0.3, div_factor=25, final_div_factor=10000, anneal cos) after \
                     2 warmup epochs from factor 0.3333, batch 64, weight decay 0.0001";
        let font = (FONT, 22).into_font();
        let measure = |s: &str| font.box_size(s).unwrap().0;
        assert!(measure(title) > 1160, "the title must overflow one line");
        let lines = wrap_title(title, 1160, &measure);
        assert!(lines.len() >= 2, "{lines:?}");
        assert!(lines[0].starts_with("MLP 784-512-256-128-10,"), "{lines:?}");
        for l in &lines {
            assert!(measure(l) <= 1160, "{l:?} is {} px wide", measure(l));
        }
        assert_eq!(lines.join(" "), title, "no character is lost");
        // A short title stays on one line; one word wider than the limit keeps its own line.
        assert_eq!(wrap_title("MLP 784-10", 1160, &measure), ["MLP 784-10"]);
        assert_eq!(
            wrap_title("abc, def", 1, &|s: &str| s.len() as u32),
            ["abc,", "def"]
        );
        // The figure draws with the wrapped title.
        let dir = tempfile::tempdir().unwrap();
        let metrics = [EpochMetrics {
            epoch: 1,
            train_loss: 0.5,
            lr: 0.5,
            train_accuracy: 0.9,
            val_loss: None,
            val_accuracy: None,
            test_loss: Some(0.4),
            test_accuracy: Some(0.91),
            epoch_seconds: 1.0,
        }];
        let written = learning_curves(&metrics, title, dir.path(), "lc").unwrap();
        assert_eq!(written.len(), 2);
        if let Some(keep) = std::env::var_os("WGTRAIN_KEEP_PLOT") {
            std::fs::copy(&written[0], keep).unwrap();
        }
    }
}
