//! Pictures, each written as PNG and SVG: learning curves of a run (or of several runs in
//! one picture), the learning-rate range test's loss curve, a sweep's validation accuracy
//! against each hyperparameter it varied and against a single run's epoch time per batch
//! size, the curves of its top trials, and a PBT run's members with their exploit steps.
//!
//! Drawn with `plotters`: the bitmap backend for PNG, the SVG backend for SVG; legends
//! are plotters' series labels. Text is laid out (and, in PNG, rasterised) with
//! `ab_glyph` from DejaVu Sans compiled into the binary (the `dejavu` crate): no
//! fontconfig, freetype or system font is needed, so the same pictures come out on a
//! headless machine and in CI.
//!
//! This module holds what the pictures share (colours, axis ranges, tick labels); `chart`
//! draws one chart with its legend; one module per picture.

mod chart;
mod hyperparameters;
mod learning_curves;
mod lr_find;
mod pbt;
mod sweep;

use std::ops::Range;

use plotters::style::RGBColor;

pub use learning_curves::{compare_runs, learning_curves};
pub use lr_find::lr_find_curve;
pub use pbt::pbt_plot;
pub use sweep::sweep_plots;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_pads_and_falls_back() {
        assert_eq!(span([1.0, 3.0].into_iter(), 0.5, 0.0..1.0), 0.0..4.0);
        assert_eq!(span([f64::NAN].into_iter(), 0.1, 0.0..1.0), 0.0..1.0);
        let r = span([2.0].into_iter(), 0.0, 0.0..1.0);
        assert!(r.start < r.end);
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
