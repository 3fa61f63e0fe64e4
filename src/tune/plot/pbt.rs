//! A PBT run's picture: every member's validation accuracy per epoch, in its own colour,
//! each member's line broken where an exploit step replaced it. A copy is drawn as a line
//! in the copied member's colour, from that member's point at the exploit epoch to the
//! replaced member's next point, and the legend names, per member, whom it copied and
//! when. A black cross marks each replaced member's last point before the copy. The
//! stretches after a copy (hollow markers) are drawn last: a copy follows its source
//! closely at first, and would otherwise vanish under it.

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::prelude::*;

use super::chart::{Chart, Legend, Marker, Series, draw_chart};
use super::{PALETTE, epoch_label, epoch_range, span};
use crate::error::{Error, Result};
use crate::figure::{Figure, save};
use crate::tune::pbt::PbtRecord;

struct PbtAccuracy<'a> {
    record: &'a PbtRecord,
}

/// Validation accuracy (%) of `member` after epoch `epoch`, when it trained then.
fn acc(record: &PbtRecord, member: usize, epoch: usize) -> Option<f64> {
    record
        .row(member, epoch)
        .map(crate::tune::pbt::MemberEpoch::score)
        .filter(|s| s.is_finite())
        .map(|s| 100.0 * s)
}

/// Member `m`'s colour.
fn color(m: usize) -> RGBColor {
    PALETTE[m % PALETTE.len()]
}

/// Copies named in one legend entry; more are counted.
const COPIES_NAMED: usize = 3;

/// Member `m`'s legend entry: `member 3`, or with the members it copied,
/// `member 3 (copied 5 after epoch 2, 0 after epoch 4)`.
fn member_label(record: &PbtRecord, m: usize) -> String {
    let copies: Vec<String> = record
        .lineage
        .iter()
        .filter(|ev| ev.member == m)
        .map(|ev| format!("{} after epoch {}", ev.from, ev.epoch))
        .collect();
    match copies.len() {
        0 => format!("member {m}"),
        n if n <= COPIES_NAMED => format!("member {m} (copied {})", copies.join(", ")),
        n => format!(
            "member {m} (copied {}, +{} more)",
            copies[..COPIES_NAMED].join(", "),
            n - COPIES_NAMED
        ),
    }
}

impl PbtAccuracy<'_> {
    /// The series in drawing order: each member's line up to its first copy (labelled),
    /// the copy lines, the stretches after a copy (on top), the crosses.
    fn series(&self) -> Vec<Series> {
        let r = self.record;
        let last = r.epochs_done();
        let mut originals = Vec::new();
        let mut after_copy = Vec::new();
        for m in 0..r.population {
            // Pieces of the line, cut after each epoch at which the member was replaced.
            let mut pieces: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
            for e in 1..=last {
                if let (Some(a), Some(p)) = (acc(r, m, e), pieces.last_mut()) {
                    p.push((e as f64, a));
                }
                if r.lineage.iter().any(|ev| ev.member == m && ev.epoch == e) {
                    pieces.push(Vec::new());
                }
            }
            for (i, points) in pieces.into_iter().enumerate() {
                if i == 0 {
                    originals.push(Series::line(member_label(r, m), points, color(m)));
                } else {
                    after_copy.push(Series {
                        label: None,
                        marker: Marker::Hollow,
                        ..Series::line(String::new(), points, color(m))
                    });
                }
            }
        }
        let mut copies = Vec::new();
        let mut replaced = Vec::new();
        for ev in &r.lineage {
            if let Some(a) = acc(r, ev.member, ev.epoch) {
                replaced.push((ev.epoch as f64, a));
            }
            if let (Some(a), Some(b)) = (acc(r, ev.from, ev.epoch), acc(r, ev.member, ev.epoch + 1))
            {
                copies.push(Series {
                    label: None,
                    points: vec![(ev.epoch as f64, a), ((ev.epoch + 1) as f64, b)],
                    color: color(ev.from),
                    line: 2,
                    alpha: 0.7,
                    marker: Marker::None,
                    pin: false,
                });
            }
        }
        let mut out = originals;
        if !r.lineage.is_empty() {
            // Legend entries only: what a copy line and a cross mean.
            out.push(Series {
                label: Some("copy: a line in the copied member's colour".into()),
                points: vec![],
                color: BLACK_ISH,
                line: 2,
                alpha: 0.7,
                marker: Marker::None,
                pin: false,
            });
        }
        out.extend(copies);
        out.extend(after_copy);
        if !r.lineage.is_empty() {
            out.push(Series {
                label: Some("replaced: its last epoch before the copy".into()),
                points: replaced,
                color: BLACK_ISH,
                line: 0,
                alpha: 1.0,
                marker: Marker::Cross,
                pin: true,
            });
        }
        out
    }
}

/// The colour of the legend's copy sample and of the crosses: no member's colour.
const BLACK_ISH: RGBColor = RGBColor(20, 20, 20);

impl Figure for PbtAccuracy<'_> {
    fn size(&self) -> (u32, u32) {
        (1100, 560)
    }

    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> std::result::Result<(), String> {
        let r = self.record;
        let series = self.series();
        let y = span(
            series.iter().flat_map(|s| s.points.iter().map(|p| p.1)),
            0.08,
            0.0..100.0,
        );
        let chart = Chart {
            title: format!(
                "PBT: {} members, exploit every {} (bottom {:.0}%)",
                r.population,
                match r.settings.interval {
                    1 => "epoch".to_string(),
                    n => format!("{n} epochs"),
                },
                100.0 * r.settings.quantile
            ),
            x_desc: "epoch".into(),
            y_desc: "validation accuracy (%)".into(),
            series,
            vlines: vec![],
            legend: Legend::Right,
            log_x: false,
        };
        draw_chart(
            root,
            &chart,
            epoch_range(r.epochs_done()),
            y.start.max(0.0)..y.end.min(100.5),
            &epoch_label,
        )
    }
}

/// Writes `pbt_val_accuracy.{png,svg}` into `dir` (see the module docs). Returns the paths.
///
/// # Errors
/// [`Error::InvalidConfig`] for a record without epochs; [`Error::Io`] naming the file.
pub fn pbt_plot(record: &PbtRecord, dir: &Path) -> Result<Vec<PathBuf>> {
    if record.epochs_done() == 0 {
        return Err(Error::InvalidConfig {
            name: "pbt",
            value: "0 epochs".into(),
            reason: "there is nothing to plot".into(),
        });
    }
    save(&PbtAccuracy { record }, dir, "pbt_val_accuracy")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::pbt::{Change, EpochStatus, ExploitEvent, Hparams, MemberEpoch, PbtSettings};

    fn record() -> PbtRecord {
        let h = Hparams {
            lr: 0.1,
            weight_decay: 0.0,
            momentum: 0.0,
            batch_size: 64,
        };
        let history = (1..=4)
            .flat_map(|e| (0..8).map(move |m| (m, e)))
            .map(|(m, e)| MemberEpoch {
                member: m,
                epoch: e,
                lr: 0.1,
                weight_decay: 0.0,
                momentum: 0.0,
                batch_size: 64,
                status: EpochStatus::Trained,
                epoch_lr: Some(0.1),
                train_loss: Some(0.5),
                train_accuracy: Some(0.8),
                val_loss: Some(0.5),
                val_accuracy: Some(0.80 + 0.01 * m as f64 + 0.001 * e as f64),
                epoch_seconds: Some(1.0),
            })
            .collect();
        let event = |epoch, member, from| ExploitEvent {
            epoch,
            member,
            from,
            member_val_accuracy: None,
            from_val_accuracy: None,
            old: h,
            copied: h,
            new: h,
            lr_change: Change::Up,
            weight_decay_change: Change::Down,
        };
        PbtRecord {
            settings: PbtSettings {
                interval: 2,
                quantile: 0.25,
                resample: 0.25,
                seed: 1,
            },
            population: 8,
            epochs: 4,
            batch_size: 64,
            hidden: vec![32],
            initial: vec![h; 8],
            history,
            // Member 0 copies 7 after epoch 2; member 1 copies 6.
            lineage: vec![event(2, 0, 7), event(2, 1, 6)],
            best: None,
        }
    }

    /// Regression (issue 26, item 4): every copy was a thin grey line, the grey of member
    /// 7, the legend did not say who copied whom, and a replaced member's line vanished
    /// under its source's. Now a copy line has the copied member's colour, the legend
    /// names the copies, and the stretches after a copy are drawn on top.
    #[test]
    fn pbt_copies_are_coloured_by_source_named_in_the_legend_and_drawn_on_top() {
        let r = record();
        let series = PbtAccuracy { record: &r }.series();
        // The copy lines: unlabelled, two points, from (2, source's accuracy).
        let copies: Vec<&Series> = series
            .iter()
            .filter(|s| s.label.is_none() && s.marker == Marker::None)
            .collect();
        assert_eq!(copies.len(), 2);
        for (line, from) in copies.iter().zip([7, 6]) {
            assert_eq!(line.color, PALETTE[from], "the copy from member {from}");
            let want = 100.0 * (0.80 + 0.01 * from as f64 + 0.002);
            assert!((line.points[0].1 - want).abs() < 1e-9);
        }
        let label = |m: usize| {
            series
                .iter()
                .find(|s| {
                    s.label
                        .as_deref()
                        .is_some_and(|l| l.starts_with(&format!("member {m}")))
                })
                .and_then(|s| s.label.clone())
                .unwrap()
        };
        assert_eq!(label(0), "member 0 (copied 7 after epoch 2)");
        assert_eq!(label(1), "member 1 (copied 6 after epoch 2)");
        assert_eq!(label(2), "member 2");
        // The stretches after a copy come after every member's first line (drawn over
        // it), in the member's colour with hollow markers.
        let last_original = series
            .iter()
            .rposition(|s| s.label.as_deref().is_some_and(|l| l.starts_with("member")))
            .unwrap();
        let after: Vec<(usize, &Series)> = series
            .iter()
            .enumerate()
            .filter(|(_, s)| s.marker == Marker::Hollow)
            .collect();
        assert_eq!(after.len(), 2);
        for ((i, s), m) in after.iter().zip([0, 1]) {
            assert!(*i > last_original);
            assert_eq!(s.color, PALETTE[m]);
            assert_eq!(s.points.len(), 2, "epochs 3 and 4");
        }
        // No member's colour marks the crosses.
        let crosses = series.iter().find(|s| s.marker == Marker::Cross).unwrap();
        assert!(!PALETTE.contains(&crosses.color));
        assert_eq!(crosses.points.len(), 2);
    }
}
