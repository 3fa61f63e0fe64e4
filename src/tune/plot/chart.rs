//! One chart on a drawing area: axes and grid, series (lines clipped to the y range,
//! markers, dashed vertical lines) and the legend, which plotters draws from the series'
//! labels (`ChartContext::configure_series_labels`).

use std::ops::Range;

use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::element::DashedPathElement;
use plotters::prelude::*;

use crate::figure::{FONT, err};

/// How one series is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Marker {
    None,
    Filled,
    Hollow,
    Cross,
}

/// One series of a chart.
pub(super) struct Series {
    /// Its legend entry; `None` leaves it out of the legend.
    pub label: Option<String>,
    pub points: Vec<(f64, f64)>,
    pub color: RGBColor,
    /// Stroke width of the connecting line; 0 draws no line.
    pub line: u32,
    /// Line opacity.
    pub alpha: f64,
    pub marker: Marker,
    /// Markers outside the y range sit on the nearest edge instead of being left out.
    pub pin: bool,
}

impl Series {
    /// A labelled line of width 2 with filled markers.
    pub fn line(label: impl Into<String>, points: Vec<(f64, f64)>, color: RGBColor) -> Series {
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

/// Where a chart's legend goes.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Legend {
    /// Inside the axes, at this position (of plotters' nine).
    Inside(SeriesLabelPosition),
    /// In a column right of the axes, cut from the chart's area (never hides data).
    Right,
    /// Not drawn by the chart (a figure may draw it with [`draw_legend_beside`]).
    Hidden,
}

/// A chart: axes, series and an optional legend.
pub(super) struct Chart {
    pub title: String,
    pub x_desc: String,
    pub y_desc: String,
    pub series: Vec<Series>,
    /// Vertical marker lines: (x, label, color).
    pub vlines: Vec<(f64, String, RGBColor)>,
    pub legend: Legend,
    /// The x axis is logarithmic (lines are clipped in log space).
    pub log_x: bool,
}

impl Chart {
    /// The legend's labels, in its order: the labelled series, then the vertical lines.
    fn legend_labels(&self) -> Vec<&str> {
        let series = self.series.iter().filter_map(|s| s.label.as_deref());
        let vlines = self.vlines.iter().map(|(_, l, _)| l.as_str());
        series.chain(vlines).collect()
    }
}

/// Legend text size, px.
const LEGEND_FONT: u32 = 14;
/// Width of the style sample left of each legend label, px.
const LEGEND_SAMPLE: u32 = 34;
/// Padding inside the legend box, px.
const LEGEND_MARGIN: u32 = 6;

/// Width in pixels of the legend box plotters draws for `labels` (by [`draw_legend`]):
/// the widest label in the legend font, the style sample and the padding.
pub(super) fn legend_width(labels: &[&str]) -> std::result::Result<u32, String> {
    let font = (FONT, LEGEND_FONT).into_font();
    let mut text = 0;
    for label in labels {
        text = text.max(font.box_size(label).map_err(err)?.0);
    }
    Ok(text + LEGEND_SAMPLE + 2 * LEGEND_MARGIN)
}

/// Draws the legend of `ctx`'s labelled series at `position` (relative to its plotting
/// area): a light box, drawn over the series.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    ctx: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    ctx.configure_series_labels()
        .position(position)
        .margin(LEGEND_MARGIN)
        .legend_area_size(LEGEND_SAMPLE)
        .label_font((FONT, LEGEND_FONT))
        .background_style(WHITE.mix(0.9))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(err)
}

/// Gives `ctx` one legend entry per labelled series of `chart`, then per vertical line:
/// an empty series (the series itself is drawn in several parts: the clipped pieces of
/// its line, then its markers) carrying the label and a sample of the style.
fn label_series<'a, DB, CT>(
    ctx: &mut ChartContext<'a, DB, CT>,
    chart: &Chart,
) -> std::result::Result<(), String>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    for s in &chart.series {
        let Some(label) = &s.label else { continue };
        let (color, line, marker) = (s.color, s.line, s.marker);
        ctx.draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                // One element type for every style: the parts a style lacks are invisible.
                let hide = |on: bool, w: u32| {
                    if on {
                        color.stroke_width(w)
                    } else {
                        TRANSPARENT.stroke_width(0)
                    }
                };
                let fill = if marker == Marker::Filled {
                    color.filled()
                } else {
                    hide(marker == Marker::Hollow, 2)
                };
                EmptyElement::at((x + 15, y))
                    + PathElement::new(vec![(-13, 0), (13, 0)], hide(line > 0, line.max(1)))
                    + Circle::new((0, 0), 4, fill)
                    + Cross::new((0, 0), 4, hide(marker == Marker::Cross, 2))
            });
    }
    for (_, label, color) in &chart.vlines {
        let color = *color;
        ctx.draw_series(std::iter::empty::<Circle<(f64, f64), u32>>())
            .map_err(err)?
            .label(label.as_str())
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x + 2, y), (x + 28, y)], 6, 4, color.stroke_width(2))
            });
    }
    Ok(())
}

/// Draws `chart`'s legend in `column`, an area beside its axes (at least
/// [`legend_width`] + 4 px wide), `top` px below the column's top. plotters clamps what a
/// chart draws to its plotting area, so a legend outside the axes needs a chart of its
/// own there: no axes, only the labelled entries.
pub(super) fn draw_legend_beside<DB: DrawingBackend>(
    column: &DrawingArea<DB, Shift>,
    chart: &Chart,
    top: i32,
) -> std::result::Result<(), String> {
    let mut ctx = ChartBuilder::on(column)
        .build_cartesian_2d(0.0..1.0, 0.0..1.0)
        .map_err(err)?;
    label_series(&mut ctx, chart)?;
    draw_legend(&mut ctx, SeriesLabelPosition::Coordinate(4, top))
}

/// Splits a polyline into the pieces inside `lo <= y <= hi`, ending each piece where it
/// crosses the bound (interpolated linearly in y, and in x or log x).
pub(super) fn clip_segments(
    points: &[(f64, f64)],
    lo: f64,
    hi: f64,
    log_x: bool,
) -> Vec<Vec<(f64, f64)>> {
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

/// Draws `chart` on `area` with the x coordinate `x` (linear or log) and y range `y`.
/// Each labelled series and vertical line gets a legend entry showing its style.
pub(super) fn draw_chart<DB, XR>(
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
    let labels = chart.legend_labels();
    let (plot_area, legend_column) = match chart.legend {
        Legend::Right if !labels.is_empty() => {
            let (w, _) = area.dim_in_pixel();
            let (p, l) = area.split_horizontally(w.saturating_sub(legend_width(&labels)? + 16));
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
    // The vertical lines go under the series.
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
    match (&chart.legend, legend_column) {
        (Legend::Inside(position), _) if !labels.is_empty() => {
            label_series(&mut ctx, chart)?;
            draw_legend(&mut ctx, position.clone())
        }
        (Legend::Right, Some(column)) => draw_legend_beside(&column, chart, 44),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
