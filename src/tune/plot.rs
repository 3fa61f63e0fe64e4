//! Pictures, each written as PNG and SVG: learning curves of a run, the learning-rate
//! range test's loss curve, and a sweep's validation accuracy against the learning rate
//! and the curves of its top trials.
//!
//! Drawn with `plotters`: the bitmap backend for PNG, the SVG backend for SVG. Text is
//! laid out (and, in PNG, rasterised) with `ab_glyph` from DejaVu Sans compiled into the
//! binary (the `dejavu` crate): no fontconfig, freetype or system font is needed, so the
//! same pictures come out on a headless machine and in CI.

use std::ops::Range;
use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::error::{Error, Result};
use crate::figure::{FONT, Figure, err, save};
use crate::tune::EpochMetrics;
use crate::tune::lr_find::LrFindResult;
use crate::tune::space::hidden_label;
use crate::tune::sweep::{Trial, TrialStatus, leaderboard};

/// Tableau 10: distinguishable, and readable by most colour-blind readers.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

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

/// How one series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Marker {
    None,
    Filled,
    Hollow,
    Cross,
}

/// One series of a chart.
struct Series {
    label: Option<String>,
    points: Vec<(f64, f64)>,
    color: RGBColor,
    /// Stroke width of the connecting line; 0 draws no line.
    line: u32,
    /// Line opacity.
    alpha: f64,
    marker: Marker,
    /// Markers outside the y range sit on the nearest edge instead of being left out.
    pin: bool,
}

impl Series {
    fn line(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Series {
        Series {
            label: Some(label.into()),
            points,
            color,
            line: 2,
            alpha: 1.0,
            marker: Marker::Filled,
            pin: false,
        }
    }
}

/// A corner of the axes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Corner {
    UpperRight,
    LowerRight,
}

/// Where a chart's legend goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Legend {
    /// Inside the axes, in a corner.
    Inside(Corner),
    /// Right of the axes (never hides data).
    Right,
    /// Not drawn (a figure draws a shared one).
    Hidden,
}

/// A chart: axes, series and an optional legend.
struct Chart {
    title: String,
    x_desc: String,
    y_desc: String,
    series: Vec<Series>,
    /// Vertical marker lines: (x, label, color).
    vlines: Vec<(f64, String, RGBColor)>,
    legend: Legend,
    /// The x axis is logarithmic (lines are clipped in log space).
    log_x: bool,
}

/// Splits a polyline into the pieces inside `lo <= y <= hi`, ending each piece where it
/// crosses the bound (interpolated linearly in y, and in x or log x).
fn clip_segments(points: &[(f64, f64)], lo: f64, hi: f64, log_x: bool) -> Vec<Vec<(f64, f64)>> {
    let inside = |y: f64| (lo..=hi).contains(&y);
    let cross = |a: (f64, f64), b: (f64, f64), bound: f64| {
        let t = (bound - a.1) / (b.1 - a.1);
        let x = if log_x {
            a.0 * (b.0 / a.0).powf(t)
        } else {
            a.0 + t * (b.0 - a.0)
        };
        (x, bound)
    };
    let mut out: Vec<Vec<(f64, f64)>> = Vec::new();
    let mut cur: Vec<(f64, f64)> = Vec::new();
    for (i, &p) in points.iter().enumerate() {
        let prev = i.checked_sub(1).map(|j| points[j]);
        match (prev, inside(p.1)) {
            (None, true) => cur.push(p),
            (None, false) => {}
            (Some(q), true) => {
                if !inside(q.1) {
                    let bound = if q.1 > hi { hi } else { lo };
                    cur.push(cross(q, p, bound));
                }
                cur.push(p);
            }
            (Some(q), false) => {
                if inside(q.1) {
                    let bound = if p.1 > hi { hi } else { lo };
                    cur.push(cross(q, p, bound));
                    out.push(std::mem::take(&mut cur));
                } else if (q.1 > hi && p.1 < lo) || (q.1 < lo && p.1 > hi) {
                    // Straight through the window: the part between the two bounds.
                    let (b1, b2) = if q.1 > hi { (hi, lo) } else { (lo, hi) };
                    out.push(vec![cross(q, p, b1), cross(q, p, b2)]);
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out.retain(|s| s.len() >= 2);
    out
}

/// The span of `values` (finite ones), padded by `pad` of its width; `fallback` if none.
fn span(values: impl Iterator<Item = f64>, pad: f64, fallback: Range<f64>) -> Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        return fallback;
    }
    if hi > lo {
        let w = hi - lo;
        return (lo - pad * w)..(hi + pad * w);
    }
    // One value: a window of +-10% around it.
    let w = 0.1 * lo.abs().max(1e-2);
    (lo - w)..(hi + w)
}

/// One legend line: a sample of the series' style and its label.
struct LegendEntry {
    label: String,
    color: RGBColor,
    /// Stroke width of the sample line; 0 draws none.
    line: u32,
    marker: Marker,
}

/// The legend of a chart: its labelled series, then its vertical lines.
fn legend_entries(chart: &Chart) -> Vec<LegendEntry> {
    let series = chart.series.iter().filter_map(|s| {
        s.label.as_ref().map(|l| LegendEntry {
            label: l.clone(),
            color: s.color,
            line: s.line,
            marker: s.marker,
        })
    });
    let vlines = chart.vlines.iter().map(|(_, l, c)| LegendEntry {
        label: l.clone(),
        color: *c,
        line: 2,
        marker: Marker::None,
    });
    series.chain(vlines).collect()
}

const LEGEND_ROW: i32 = 22;

/// Width in pixels of a legend box for `entries` (DejaVu Sans at 14 px: about 8 px a
/// character, plus the style sample and padding).
fn legend_width(entries: &[LegendEntry]) -> u32 {
    let chars = entries
        .iter()
        .map(|e| e.label.chars().count())
        .max()
        .unwrap_or(0);
    (chars as u32) * 8 + 56
}

/// Draws a legend box with its top-left corner at `at` on `area`.
fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    at: (i32, i32),
) -> std::result::Result<(), String> {
    if entries.is_empty() {
        return Ok(());
    }
    let (x, y) = at;
    let w = legend_width(entries) as i32;
    let h = LEGEND_ROW * entries.len() as i32 + 10;
    area.draw(&Rectangle::new(
        [(x, y), (x + w, y + h)],
        WHITE.mix(0.9).filled(),
    ))
    .map_err(err)?;
    area.draw(&Rectangle::new(
        [(x, y), (x + w, y + h)],
        RGBColor(160, 160, 160).stroke_width(1),
    ))
    .map_err(err)?;
    for (i, e) in entries.iter().enumerate() {
        let cy = y + 5 + LEGEND_ROW / 2 + LEGEND_ROW * i as i32;
        let color = e.color;
        // One element type for every style: the parts a style lacks are invisible.
        let hide = |on: bool, w: u32| {
            if on {
                color.stroke_width(w)
            } else {
                TRANSPARENT.stroke_width(0)
            }
        };
        let fill = if e.marker == Marker::Filled {
            color.filled()
        } else {
            hide(e.marker == Marker::Hollow, 2)
        };
        area.draw(
            &(EmptyElement::at((x + 22, cy))
                + PathElement::new(vec![(-13, 0), (13, 0)], hide(e.line > 0, e.line.max(1)))
                + Circle::new((0, 0), 4, fill)
                + Cross::new((0, 0), 4, hide(e.marker == Marker::Cross, 2))),
        )
        .map_err(err)?;
        area.draw(&Text::new(
            e.label.clone(),
            (x + 44, cy - 8),
            (FONT, 14).into_font(),
        ))
        .map_err(err)?;
    }
    Ok(())
}

/// Draws `chart` on `area` with the x coordinate `x` (linear or log) and y range `y`.
/// The legend goes to the right of the axes when `chart.legend` is [`Legend::Right`].
fn draw_chart<DB, XR>(
    area: &DrawingArea<DB, Shift>,
    chart: &Chart,
    x: XR,
    y: Range<f64>,
    x_fmt: &dyn Fn(&f64) -> String,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend,
    XR: AsRangedCoord<Value = f64>,
    XR::CoordDescType: ValueFormatter<f64>,
{
    let entries = legend_entries(chart);
    let (w, _) = area.dim_in_pixel();
    let (plot_area, legend_area) = match chart.legend {
        Legend::Right if !entries.is_empty() => {
            let lw = legend_width(&entries) + 16;
            let (p, l) = area.split_horizontally(w.saturating_sub(lw));
            (p, Some(l))
        }
        _ => (area.clone(), None),
    };
    let (y_lo, y_hi) = (y.start, y.end);
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(&chart.title, (FONT, 20))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(64)
        .build_cartesian_2d(x, y)
        .map_err(err)?;
    ctx.configure_mesh()
        .x_desc(chart.x_desc.as_str())
        .y_desc(chart.y_desc.as_str())
        .x_label_formatter(x_fmt)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 15))
        .light_line_style(RGBColor(235, 235, 235))
        .bold_line_style(RGBColor(205, 205, 205))
        .draw()
        .map_err(err)?;
    for (vx, _, color) in &chart.vlines {
        ctx.draw_series(DashedLineSeries::new(
            vec![(*vx, y_lo), (*vx, y_hi)],
            6,
            4,
            color.stroke_width(2),
        ))
        .map_err(err)?;
    }
    for s in &chart.series {
        let color = s.color;
        let finite: Vec<(f64, f64)> = s
            .points
            .iter()
            .copied()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if s.line > 0 {
            let line_style = color.mix(s.alpha).stroke_width(s.line);
            for seg in clip_segments(&finite, y_lo, y_hi, chart.log_x) {
                ctx.draw_series(LineSeries::new(seg, line_style))
                    .map_err(err)?;
            }
        }
        let pin = s.pin;
        let pts = finite
            .into_iter()
            .filter(|p| pin || (y_lo..=y_hi).contains(&p.1))
            .map(|(px, py)| (px, py.clamp(y_lo, y_hi)));
        match s.marker {
            Marker::None => {}
            Marker::Filled => {
                ctx.draw_series(pts.map(|p| Circle::new(p, 4, color.filled())))
                    .map_err(err)?;
            }
            Marker::Hollow => {
                ctx.draw_series(pts.map(|p| Circle::new(p, 4, color.stroke_width(2))))
                    .map_err(err)?;
            }
            Marker::Cross => {
                ctx.draw_series(pts.map(|p| Cross::new(p, 5, color.stroke_width(2))))
                    .map_err(err)?;
            }
        }
    }
    match (&chart.legend, legend_area) {
        (Legend::Right, Some(l)) => draw_legend(&l, &entries, (4, 44)),
        (Legend::Inside(corner), _) => {
            let plot = ctx.plotting_area().strip_coord_spec();
            let (pw, ph) = plot.dim_in_pixel();
            let (lw, lh) = (
                legend_width(&entries) as i32,
                LEGEND_ROW * entries.len() as i32 + 10,
            );
            let (right, bottom) = (pw as i32 - lw - 10, ph as i32 - lh - 10);
            let at = match corner {
                Corner::UpperRight => (right, 10),
                Corner::LowerRight => (right, bottom),
            };
            draw_legend(&plot, &entries, at)
        }
        _ => Ok(()),
    }
}

/// Tick labels of a log axis from `lo` to `hi`: every power of ten, and 2x and 5x when
/// the axis spans less than two decades (crowded labels are left blank).
fn log_labels(lo: f64, hi: f64) -> impl Fn(&f64) -> String {
    let narrow = (hi / lo).log10() < 2.0;
    move |v: &f64| {
        let m = v / 10f64.powf(v.log10().floor());
        let near = |k: f64| (m - k).abs() < 1e-6 * k || (m - 10.0 * k).abs() < 1e-5;
        if near(1.0) || (narrow && (near(2.0) || near(5.0))) {
            format!("{v:.0e}")
        } else {
            String::new()
        }
    }
}

/// `0` for zero, else scientific with `digits` decimals (`1e-4`, `2.50e-1`).
fn sci(x: f64, digits: usize) -> String {
    if x == 0.0 {
        "0".into()
    } else {
        format!("{x:.digits$e}")
    }
}

fn epoch_label(v: &f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        String::new()
    }
}

fn epoch_range(n: usize) -> Range<f64> {
    0.8..(n.max(1) as f64 + 0.2)
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
                Legend::Inside(Corner::UpperRight),
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
                Legend::Inside(Corner::LowerRight),
            ),
            x,
            y_acc,
            &epoch_label,
        )
    }
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
        let entries: Vec<LegendEntry> = self
            .labels
            .iter()
            .enumerate()
            .map(|(i, l)| LegendEntry {
                label: l.clone(),
                color: PALETTE[i % PALETTE.len()],
                line: 2,
                marker: Marker::Filled,
            })
            .collect();
        let (w, _) = root.dim_in_pixel();
        let (panels, legend) = root.split_horizontally(w - legend_width(&entries) - 16);
        draw_legend(&legend, &entries, (4, 40))?;
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
        draw_chart(
            &right,
            &chart(
                "validation loss",
                "mean cross-entropy",
                loss,
                Legend::Hidden,
            ),
            epoch_range(epochs),
            y_loss.start.max(0.0)..y_loss.end,
            &epoch_label,
        )
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn span_pads_and_falls_back() {
        assert_eq!(span([1.0, 3.0].into_iter(), 0.5, 0.0..1.0), 0.0..4.0);
        assert_eq!(span([f64::NAN].into_iter(), 0.1, 0.0..1.0), 0.0..1.0);
        let r = span([2.0].into_iter(), 0.0, 0.0..1.0);
        assert!(r.start < r.end);
    }

    #[test]
    fn lines_are_cut_where_they_leave_the_window() {
        let pts = [(0.0, 0.5), (1.0, 1.5), (2.0, 0.5), (3.0, -1.0), (4.0, 2.0)];
        let segs = clip_segments(&pts, 0.0, 1.0, false);
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[0], [(0.0, 0.5), (0.5, 1.0)]);
        assert_eq!(segs[1], [(1.5, 1.0), (2.0, 0.5), (2.0 + 1.0 / 3.0, 0.0)]);
        assert_eq!(segs[2], [(3.0 + 1.0 / 3.0, 0.0), (3.0 + 2.0 / 3.0, 1.0)]);
        let log = clip_segments(&[(1.0, 0.0), (100.0, 2.0)], 0.0, 1.0, true);
        assert!((log[0][1].0 - 10.0).abs() < 1e-9);
    }

    #[test]
    fn log_axes_label_decades_and_more_when_narrow() {
        let wide = log_labels(1e-5, 10.0);
        assert_eq!(wide(&1e-3), "1e-3");
        assert_eq!(wide(&2e-3), "");
        let narrow = log_labels(0.05, 1.0);
        assert_eq!(narrow(&0.2), "2e-1");
        assert_eq!(narrow(&0.5), "5e-1");
        assert_eq!(narrow(&0.7), "");
        assert_eq!(narrow(&1.0), "1e0");
        assert_eq!(sci(0.0, 1), "0");
        assert_eq!(sci(1e-4, 1), "1.0e-4");
    }

    #[test]
    fn epoch_ticks_only_on_whole_epochs() {
        assert_eq!(epoch_label(&2.0), "2");
        assert_eq!(epoch_label(&2.5), "");
    }
}
