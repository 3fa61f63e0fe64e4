//! A sweep's answer per hyperparameter: one picture of final validation accuracy against
//! each hyperparameter the sweep varied (learning rate and weight decay on log axes, batch
//! size on a log2 axis, momentum on a linear one), the other varied hyperparameters by
//! colour (one line per combination when each takes few values), and one of accuracy
//! against a single run's epoch time, per batch size (the time side of the batch-size
//! answer).

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Chart, Legend, Marker, Series, draw_chart};
use super::{PALETTE, log_labels, sci, span};
use crate::figure::Figure;
use crate::tune::sweep::{Trial, TrialStatus};

/// A hyperparameter a sweep varies and a picture can put on its x axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Param {
    Lr,
    WeightDecay,
    BatchSize,
    Momentum,
}

/// Every [`Param`], in the order of their pictures.
pub(super) const PARAMS: [Param; 4] = [
    Param::Lr,
    Param::WeightDecay,
    Param::BatchSize,
    Param::Momentum,
];

/// Most distinct values a hyperparameter may take and still give each its own colour;
/// past it, values are binned (by decade; batch sizes by power of two; momentum by tenth).
const EXACT_VALUES: usize = 6;

impl Param {
    fn value(self, t: &Trial) -> f64 {
        match self {
            Param::Lr => t.config.lr,
            Param::WeightDecay => t.config.weight_decay,
            Param::BatchSize => t.config.batch_size as f64,
            Param::Momentum => t.config.momentum,
        }
    }

    /// The picture's file stem.
    pub fn stem(self) -> &'static str {
        match self {
            Param::Lr => "sweep_lr_accuracy",
            Param::WeightDecay => "sweep_wd_accuracy",
            Param::BatchSize => "sweep_batch_accuracy",
            Param::Momentum => "sweep_momentum_accuracy",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Param::Lr => "learning rate",
            Param::WeightDecay => "weight decay",
            Param::BatchSize => "batch size",
            Param::Momentum => "momentum",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Param::Lr => "lr",
            Param::WeightDecay => "wd",
            Param::BatchSize => "batch",
            Param::Momentum => "momentum",
        }
    }

    fn label(self, v: f64) -> String {
        match self {
            Param::Lr => sci(v, 2),
            Param::WeightDecay => sci(v, 0),
            Param::BatchSize => format!("{v:.0}"),
            Param::Momentum => format!("{v}"),
        }
    }

    /// The bin of value `v` when there are too many values for a colour each, and its
    /// label.
    fn bin(self, v: f64) -> (i64, String) {
        match self {
            Param::Lr | Param::WeightDecay if v > 0.0 => {
                let d = v.log10().floor() as i64;
                (d, format!("{} in [1e{d}, 1e{})", self.short(), d + 1))
            }
            Param::Lr | Param::WeightDecay => (i64::MIN, format!("{} 0", self.short())),
            Param::BatchSize => {
                let p = v.max(1.0).log2().floor() as i64;
                (p, format!("batch in [{}, {})", 1u64 << p, 1u64 << (p + 1)))
            }
            Param::Momentum => {
                let t = (v * 10.0).floor() as i64;
                (
                    t,
                    format!(
                        "momentum in [{:.1}, {:.1})",
                        t as f64 / 10.0,
                        (t + 1) as f64 / 10.0
                    ),
                )
            }
        }
    }
}

/// Distinct values of `p` over `trials`, ascending.
fn values(trials: &[Trial], p: Param) -> Vec<f64> {
    let mut v: Vec<f64> = trials.iter().map(|t| p.value(t)).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// The hyperparameters that take more than one value over `trials`, in [`PARAMS`] order.
pub(super) fn varied(trials: &[Trial]) -> Vec<Param> {
    PARAMS
        .into_iter()
        .filter(|&p| values(trials, p).len() > 1)
        .collect()
}

/// The trials grouped by the other hyperparameters in `by` (each exact when it takes at
/// most [`EXACT_VALUES`] values, else binned): `(label, exact, trials)` per group, in
/// increasing order of the values.
fn groups<'t>(trials: &'t [Trial], by: &[Param]) -> Vec<(String, bool, Vec<&'t Trial>)> {
    let exact: Vec<bool> = by
        .iter()
        .map(|&p| values(trials, p).len() <= EXACT_VALUES)
        .collect();
    // Per trial its key (one integer-ordered part per parameter) and label.
    let key = |t: &Trial| -> (Vec<(i64, u64)>, String) {
        let mut k = Vec::new();
        let mut label = Vec::new();
        for (&p, &e) in by.iter().zip(&exact) {
            let v = p.value(t);
            if e {
                k.push((0, v.to_bits()));
                label.push(format!("{} {}", p.short(), p.label(v)));
            } else {
                let (b, l) = p.bin(v);
                k.push((b, 0));
                label.push(l);
            }
        }
        (k, label.join(", "))
    };
    // (key, label, trials) per group; a key holds one integer-ordered part per parameter.
    type Group<'t> = (Vec<(i64, u64)>, String, Vec<&'t Trial>);
    let mut out: Vec<Group> = Vec::new();
    for t in trials {
        let (k, label) = key(t);
        match out.iter_mut().find(|g| g.0 == k) {
            Some(g) => g.2.push(t),
            None => out.push((k, label, vec![t])),
        }
    }
    // Exact keys compare by value (non-negative floats order as their bits).
    out.sort_by(|a, b| a.0.cmp(&b.0));
    let all_exact = exact.iter().all(|&e| e);
    out.into_iter()
        .map(|(_, l, ts)| (l, all_exact, ts))
        .collect()
}

/// The x axis of a hyperparameter's picture.
enum Axis {
    /// Log scale over `lo..hi` (learning rate; weight decay, its 0 drawn at `zero`).
    Log { lo: f64, hi: f64, zero: Option<f64> },
    /// Linear over log2 of the value (batch size), `lo..hi` in log2 units.
    Log2 { lo: f64, hi: f64 },
    /// Linear (momentum).
    Linear { lo: f64, hi: f64 },
}

impl Axis {
    fn of(trials: &[Trial], p: Param) -> Axis {
        let v = values(trials, p);
        let (first, last) = (v[0], v[v.len() - 1]);
        match p {
            Param::Lr | Param::WeightDecay => {
                let positive: Vec<f64> = v.iter().copied().filter(|&x| x > 0.0).collect();
                let min = positive.first().copied().unwrap_or(1e-4);
                let max = positive.last().copied().unwrap_or(min);
                // A weight decay of 0 sits a decade below the smallest one, labelled 0.
                let zero = (first <= 0.0).then(|| 10f64.powf(min.log10().floor() - 1.0));
                let lo = zero.unwrap_or(min);
                let (lo, hi) = if max > lo {
                    (lo / 1.5, max * 1.5)
                } else {
                    (lo / 3.0, lo * 3.0)
                };
                Axis::Log { lo, hi, zero }
            }
            Param::BatchSize => Axis::Log2 {
                lo: first.max(1.0).log2() - 0.5,
                hi: last.max(1.0).log2() + 0.5,
            },
            Param::Momentum => {
                let pad = ((last - first) * 0.1).max(0.05);
                Axis::Linear {
                    lo: first - pad,
                    hi: last + pad,
                }
            }
        }
    }

    /// Where value `v` sits on the axis.
    fn x(&self, v: f64) -> f64 {
        match self {
            Axis::Log { zero: Some(z), .. } if v <= 0.0 => *z,
            Axis::Log { .. } | Axis::Linear { .. } => v,
            Axis::Log2 { .. } => v.max(1.0).log2(),
        }
    }

    fn desc(&self, p: Param) -> String {
        match self {
            Axis::Log { .. } => format!("{} (log scale)", p.name()),
            Axis::Log2 { .. } => format!("{} (log2 scale)", p.name()),
            Axis::Linear { .. } => p.name().to_string(),
        }
    }
}

/// Final validation accuracy against hyperparameter `param`, the other varied ones by
/// colour. Pruned trials are hollow (their accuracy when stopped), diverged ones crosses on
/// the bottom edge.
pub(super) struct AccuracyAgainst<'a> {
    pub trials: &'a [Trial],
    pub param: Param,
}

impl Figure for AccuracyAgainst<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let (t, p) = (self.trials, self.param);
        let y = accuracy_range(t);
        let axis = Axis::of(t, p);
        let others: Vec<Param> = varied(t).into_iter().filter(|&o| o != p).collect();
        let at = |t: &Trial| axis.x(p.value(t));
        let mut series = Vec::new();
        for (i, (label, exact, group)) in groups(t, &others).into_iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            let label = if others.is_empty() {
                "completed trials".to_string()
            } else {
                label
            };
            series.extend(status_series(&group, &at, y.start, color, label, exact));
        }
        series.extend(legend_notes(t, y.start));
        let chart = Chart {
            title: format!("sweep: validation accuracy against {}", p.name()),
            x_desc: axis.desc(p),
            y_desc: "validation accuracy (%)".into(),
            series,
            vlines: vec![],
            legend: Legend::Right,
            log_x: matches!(axis, Axis::Log { .. }),
        };
        match axis {
            Axis::Log { lo, hi, zero } => {
                let labels = log_labels(lo, hi);
                // Between the 0 and the decade above it the axis holds no value: no labels.
                let fmt = |v: &f64| match zero {
                    Some(z) if (v / z - 1.0).abs() < 1e-6 => "0".to_string(),
                    Some(z) if *v > z && *v < 10.0 * z * (1.0 - 1e-6) => String::new(),
                    _ => labels(v),
                };
                draw_chart(root, &chart, (lo..hi).log_scale(), y, &fmt)
            }
            Axis::Log2 { lo, hi } => {
                let fmt = |v: &f64| {
                    if (v - v.round()).abs() < 1e-9 {
                        format!("{:.0}", 2f64.powf(v.round()))
                    } else {
                        String::new()
                    }
                };
                draw_chart(root, &chart, lo..hi, y, &fmt)
            }
            Axis::Linear { lo, hi } => draw_chart(root, &chart, lo..hi, y, &|v| format!("{v:.2}")),
        }
    }
}

/// Final validation accuracy against the epoch time a single run at the trial's batch
/// size takes on the sweep's device ([`Trial::single_run_epoch_seconds`]), one colour per
/// batch size: the accuracy each batch size reaches and what an epoch of it costs.
pub(super) struct AccuracyAgainstTime<'a> {
    pub trials: &'a [Trial],
}

impl Figure for AccuracyAgainstTime<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let timed: Vec<Trial> = self
            .trials
            .iter()
            .filter(|t| t.single_run_epoch_seconds.is_some())
            .cloned()
            .collect();
        let t = timed.as_slice();
        let y = accuracy_range(t);
        let secs = || t.iter().filter_map(|t| t.single_run_epoch_seconds);
        let x = span(secs(), 0.15, 0.0..1.0);
        let x = x.start.max(0.0)..x.end;
        let at = |t: &Trial| t.single_run_epoch_seconds.unwrap_or(f64::NAN);
        let mut series = Vec::new();
        for (i, b) in values(t, Param::BatchSize).into_iter().enumerate() {
            let group: Vec<&Trial> = t
                .iter()
                .filter(|t| t.config.batch_size as f64 == b)
                .collect();
            let s = group[0].single_run_epoch_seconds.unwrap_or(f64::NAN);
            let label = format!("batch {b:.0}: {} s per epoch", significant(s, 3));
            let color = PALETTE[i % PALETTE.len()];
            series.extend(status_series(&group, &at, y.start, color, label, false));
        }
        // The best trial of each batch size, joined: what each epoch of time buys.
        let mut best: Vec<(f64, f64)> = values(t, Param::BatchSize)
            .into_iter()
            .filter_map(|b| {
                t.iter()
                    .filter(|t| t.config.batch_size as f64 == b)
                    .filter(|t| t.status == TrialStatus::Complete)
                    .filter_map(|t| Some((at(t), 100.0 * t.val_accuracy?)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
            })
            .collect();
        best.sort_by(|a, b| a.0.total_cmp(&b.0));
        series.push(Series {
            label: Some("best trial per batch size".into()),
            points: best,
            color: RGBColor(60, 60, 60),
            line: 1,
            alpha: 0.6,
            marker: Marker::None,
            pin: false,
        });
        series.extend(legend_notes(t, y.start));
        let chart = Chart {
            title: "sweep: validation accuracy against a single run's epoch time".into(),
            x_desc: "epoch time of a single run at the trial's batch size (s, this device)".into(),
            y_desc: "validation accuracy (%)".into(),
            series,
            vlines: vec![],
            legend: Legend::Right,
            log_x: false,
        };
        // Tick labels with the decimals a tenth of the axis needs (0.13 and 0.18 s apart).
        let step = (x.end - x.start) / 10.0;
        let decimals = (-step.log10().floor()).clamp(0.0, 6.0) as usize;
        draw_chart(root, &chart, x, y, &|v| format!("{v:.decimals$}"))
    }
}

/// `v` with `digits` significant digits (0.1304 -> "0.130" for 3), at most 6 decimals.
fn significant(v: f64, digits: i32) -> String {
    let magnitude = if v == 0.0 || !v.is_finite() {
        0
    } else {
        v.abs().log10().floor() as i32
    };
    let decimals = (digits - 1 - magnitude).clamp(0, 6) as usize;
    format!("{v:.decimals$}")
}

/// The accuracy axis: the completed trials' span (all trials' when none completed);
/// lower ones sit on its bottom edge.
fn accuracy_range(t: &[Trial]) -> std::ops::Range<f64> {
    let complete = t.iter().any(|t| t.status == TrialStatus::Complete);
    let accs = t
        .iter()
        .filter(|t| !complete || t.status == TrialStatus::Complete)
        .filter_map(|t| t.val_accuracy)
        .map(|a| 100.0 * a);
    let y = span(accs, 0.15, 0.0..100.0);
    y.start.max(0.0)..y.end.min(100.5)
}

/// The series of one group of trials at x `at`: completed (filled, joined by a line when
/// `line`, in x order), pruned (hollow) and diverged (crosses on the bottom edge `floor`).
fn status_series(
    group: &[&Trial],
    at: &dyn Fn(&Trial) -> f64,
    floor: f64,
    color: RGBColor,
    label: String,
    line: bool,
) -> Vec<Series> {
    let points = |s: TrialStatus| -> Vec<(f64, f64)> {
        group
            .iter()
            .filter(|t| t.status == s)
            .filter_map(|t| match s {
                TrialStatus::Diverged => Some((at(t), floor)),
                _ => t.val_accuracy.map(|a| (at(t), 100.0 * a)),
            })
            .collect()
    };
    let mut complete = points(TrialStatus::Complete);
    complete.sort_by(|a, b| a.0.total_cmp(&b.0));
    let series = |points, marker, pin, label, line| Series {
        label,
        points,
        color,
        line,
        alpha: 0.8,
        marker,
        pin,
    };
    vec![
        series(
            complete,
            Marker::Filled,
            false,
            Some(label),
            if line { 2 } else { 0 },
        ),
        series(points(TrialStatus::Pruned), Marker::Hollow, true, None, 0),
        series(points(TrialStatus::Diverged), Marker::Cross, true, None, 0),
    ]
}

/// Legend entries for the marker styles in use (pruned, diverged) and for trials drawn on
/// the bottom edge.
fn legend_notes(t: &[Trial], floor: f64) -> Vec<Series> {
    let gray = RGBColor(90, 90, 90);
    let note = |label: &str, marker| Series {
        label: Some(label.into()),
        points: vec![],
        color: gray,
        line: 0,
        alpha: 1.0,
        marker,
        pin: false,
    };
    let any = |s: TrialStatus| t.iter().any(|t| t.status == s);
    let mut out = Vec::new();
    if any(TrialStatus::Pruned) {
        out.push(note("pruned (accuracy when stopped)", Marker::Hollow));
    }
    if any(TrialStatus::Diverged) {
        out.push(note("diverged", Marker::Cross));
    }
    let off_axis = t.iter().any(|t| {
        t.status == TrialStatus::Diverged || t.val_accuracy.is_some_and(|a| 100.0 * a < floor)
    });
    if off_axis {
        out.push(note("(lower ones sit on the bottom edge)", Marker::None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::space::TrialConfig;

    #[test]
    fn epoch_times_keep_three_significant_digits() {
        // A newcomer's batch 64 and 128 both read "0.13 s per epoch" at two decimals.
        assert_eq!(significant(0.1304, 3), "0.130");
        assert_eq!(significant(0.1349, 3), "0.135");
        assert_eq!(significant(2.414, 3), "2.41");
        assert_eq!(significant(31.6, 3), "31.6");
        assert_eq!(significant(1234.0, 3), "1234");
        assert_eq!(significant(0.0, 3), "0.00");
    }

    fn trial(id: usize, lr: f64, wd: f64, batch: usize) -> Trial {
        Trial::finished(
            id,
            TrialConfig {
                lr,
                weight_decay: wd,
                batch_size: batch,
                momentum: 0.0,
                hidden: vec![32],
                epochs: 1,
            },
            TrialStatus::Complete,
            Vec::new(),
            1.0,
            None,
        )
    }

    /// Issue 23: a batch-size sweep was drawn against the lr (vertical segments) and a
    /// weight-decay-only sweep put every point at one x. Each varied hyperparameter now
    /// gets its own axis, the others colour the points.
    #[test]
    fn each_varied_hyperparameter_gets_a_picture_and_the_others_colour_it() {
        let t: Vec<Trial> = [
            (0.1, 0.0, 32),
            (0.1, 1e-4, 32),
            (0.1, 0.0, 128),
            (0.1, 1e-4, 128),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(lr, wd, b))| trial(i, lr, wd, b))
        .collect();
        assert_eq!(varied(&t), [Param::WeightDecay, Param::BatchSize]);
        let g = groups(&t, &[Param::BatchSize]);
        let labels: Vec<&str> = g.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(labels, ["batch 32", "batch 128"]);
        assert!(g.iter().all(|g| g.1 && g.2.len() == 2));
        // Weight decay 0 sits a decade below the smallest positive one; batch sizes on log2.
        let wd = Axis::of(&t, Param::WeightDecay);
        assert!((wd.x(0.0) - 1e-5).abs() < 1e-12);
        assert_eq!(wd.x(1e-4), 1e-4);
        let b = Axis::of(&t, Param::BatchSize);
        assert_eq!((b.x(32.0), b.x(128.0)), (5.0, 7.0));
        // Many values are binned: seven learning rates over two decades.
        let many: Vec<Trial> = (0..7)
            .map(|i| trial(i, 10f64.powf(-2.0 + i as f64 / 3.0), 0.0, 64))
            .collect();
        let g = groups(&many, &[Param::Lr]);
        let labels: Vec<&str> = g.iter().map(|g| g.0.as_str()).collect();
        assert_eq!(
            labels,
            [
                "lr in [1e-2, 1e-1)",
                "lr in [1e-1, 1e0)",
                "lr in [1e0, 1e1)"
            ]
        );
        assert!(g.iter().all(|g| !g.1));
    }
}
