//! `wgtrain plot`: learning curves from a `train --metrics` file, or a sweep's pictures
//! from its `--out` directory.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use wgtrain::output::OutputKind;
use wgtrain::tune::sweep::read_trials;
use wgtrain::tune::{self, plot};

use super::common::{bad_input, check_outputs, positive_usize};

/// `wgtrain plot`: pictures from a metrics file or a sweep directory.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// A `wgtrain train --metrics` file (JSON Lines), or a `wgtrain sweep --out` directory.
    pub input: PathBuf,
    /// Directory for the PNG and SVG files (created if missing; its parent must exist).
    #[arg(long, value_name = "DIR", default_value = "plots")]
    pub out: PathBuf,
    /// For a sweep: trials whose curves are drawn.
    #[arg(long, value_parser = positive_usize, default_value_t = 5)]
    pub top: usize,
}

/// Runs `wgtrain plot`.
pub fn plot_command(a: PlotArgs) -> Result<()> {
    check_outputs([(Some(a.out.as_path()), OutputKind::Dir)])?;
    // The input is read before anything is drawn: a missing or malformed file exits 2.
    let written = if a.input.is_dir() {
        let trials = read_trials(&a.input.join("trials.json"))
            .map_err(|e| bad_input(e).context("reading the sweep's trials"))?;
        plot::sweep_plots(&trials, a.top, &a.out)?
    } else {
        let file = tune::read_metrics_file(&a.input).map_err(|e| {
            // A sweep's trials.json given instead of its folder: say so, not "not an
            // epoch record".
            if read_trials(&a.input).is_ok_and(|t| !t.is_empty()) {
                let dir = match a.input.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
                    _ => ".".into(),
                };
                return bad_input(wgtrain::Error::Format {
                    path: a.input.clone(),
                    reason: format!(
                        "is a sweep's trials file, not a train --metrics file; pass the sweep's folder instead: wgtrain plot {dir}"
                    ),
                });
            }
            bad_input(e).context("reading the metrics file")
        })?;
        if let Some(n) = file.torn_line {
            note!(
                "warning: {}: line {n} is cut short (its run stopped while writing it, or the disk was full); plotting the {} whole epochs before it",
                a.input.display(),
                file.epochs.len()
            );
        }
        let metrics = file.epochs;
        let title = a.input.file_name().map_or("learning curves".into(), |n| {
            n.to_string_lossy().into_owned()
        });
        plot::learning_curves(&metrics, &title, &a.out, "learning_curves")?
    };
    for p in written {
        note!("wrote {}", p.display());
    }
    Ok(())
}
