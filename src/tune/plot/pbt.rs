//! A PBT run's picture: every member's validation accuracy per epoch, each member's line
//! broken where an exploit step replaced it, a grey connector from the member it copied
//! (at the exploit epoch) to its next epoch, and a cross on each replaced member's last
//! point before the copy.

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

impl PbtAccuracy<'_> {
    fn series(&self) -> Vec<Series> {
        let r = self.record;
        let last = r.epochs_done();
        let mut out = Vec::new();
        for m in 0..r.population {
            let color = PALETTE[m % PALETTE.len()];
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
                out.push(Series {
                    label: (i == 0).then(|| format!("member {m}")),
                    ..Series::line(String::new(), points, color)
                });
            }
        }
        let grey = RGBColor(110, 110, 110);
        let mut replaced = Vec::new();
        for ev in &r.lineage {
            if let Some(a) = acc(r, ev.member, ev.epoch) {
                replaced.push((ev.epoch as f64, a));
            }
            if let (Some(a), Some(b)) = (acc(r, ev.from, ev.epoch), acc(r, ev.member, ev.epoch + 1))
            {
                out.push(Series {
                    label: None,
                    points: vec![(ev.epoch as f64, a), ((ev.epoch + 1) as f64, b)],
                    color: grey,
                    line: 1,
                    alpha: 0.8,
                    marker: Marker::None,
                    pin: false,
                });
            }
        }
        if !r.lineage.is_empty() {
            out.push(Series {
                label: Some("replaced (copies the grey line's start)".into()),
                points: replaced,
                color: grey,
                line: 0,
                alpha: 1.0,
                marker: Marker::Cross,
                pin: true,
            });
        }
        out
    }
}

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
