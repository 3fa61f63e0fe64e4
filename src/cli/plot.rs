//! `wgtrain plot`: learning curves from one or more `train --metrics` files (several in one
//! picture, labelled by their file names), or a sweep's pictures from its `--out`
//! directory.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::Args;

use wgtrain::output::OutputKind;
use wgtrain::tune::sweep::read_trials;
use wgtrain::tune::{self, EpochMetrics, plot};

use super::common::{bad_input, check_outputs, positive_usize, usage};

/// `wgtrain plot`: pictures from metrics files or a sweep directory.
#[derive(Args, Debug, Clone)]
pub struct PlotArgs {
    /// One or more `wgtrain train --metrics` files (JSON Lines; several are drawn in one
    /// picture, each labelled by its file name), or one `wgtrain sweep --out` directory.
    #[arg(required = true, num_args = 1.., value_name = "INPUT")]
    pub inputs: Vec<PathBuf>,
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
    // The inputs are read before anything is drawn: a missing or malformed file exits 2.
    let written = match a.inputs.as_slice() {
        [dir] if dir.is_dir() => {
            let trials = read_trials(&dir.join("trials.json"))
                .map_err(|e| bad_input(e).context("reading the sweep's trials"))?;
            plot::sweep_plots(&trials, a.top, &a.out)?
        }
        [file] => {
            let metrics = read_metrics_file(file)?;
            let title = file.file_name().map_or("learning curves".into(), |n| {
                n.to_string_lossy().into_owned()
            });
            plot::learning_curves(&metrics, &title, &a.out, "learning_curves")?
        }
        files => {
            if let Some(dir) = files.iter().find(|f| f.is_dir()) {
                return Err(usage(
                    "input",
                    dir.display(),
                    "is a folder: plot takes one sweep folder alone, or one or more train --metrics files",
                ));
            }
            let labels = run_labels(files);
            let mut runs = Vec::with_capacity(files.len());
            for (label, file) in labels.into_iter().zip(files) {
                runs.push((label, read_metrics_file(file)?));
            }
            plot::compare_runs(&runs, &a.out, "learning_curves")?
        }
    };
    for p in written {
        note!("wrote {}", p.display());
    }
    Ok(())
}

/// Reads a `train --metrics` file, or refuses it (exit 2) saying what it is instead when
/// that is known: a sweep's `trials.json`, a checkpoint. A last line cut short (its run
/// stopped while writing it, or the disk was full) is left out with a warning.
fn read_metrics_file(path: &Path) -> Result<Vec<EpochMetrics>> {
    let file = tune::read_metrics_file(path).map_err(|e| {
        let format = |reason: String| {
            bad_input(wgtrain::Error::Format {
                path: path.to_path_buf(),
                reason,
            })
        };
        // A sweep's trials.json given instead of its folder: say so, not "not an epoch
        // record".
        if read_trials(path).is_ok_and(|t| !t.is_empty()) {
            let dir = match path.parent() {
                Some(d) if !d.as_os_str().is_empty() => d.display().to_string(),
                _ => ".".into(),
            };
            return format(format!(
                "is a sweep's trials file, not a train --metrics file; pass the sweep's folder instead: wgtrain plot {dir}"
            ));
        }
        if wgtrain::checkpoint::load(path).is_ok() {
            return format(
                "is a checkpoint (safetensors), not a train --metrics file or a sweep folder; \
                 plot draws the JSON Lines file of `wgtrain train --metrics FILE` or a sweep's \
                 --out folder (`wgtrain eval --model FILE` evaluates a checkpoint)"
                    .into(),
            );
        }
        bad_input(e).context("reading the metrics file")
    })?;
    if let Some(n) = file.torn_line {
        note!(
            "warning: {}: line {n} is cut short (its run stopped while writing it, or the disk was full); plotting the {} whole epochs before it",
            path.display(),
            file.epochs.len()
        );
    }
    Ok(file.epochs)
}

/// The legend labels of several metrics files: their file names without the extension
/// (`runs/a.jsonl` gives `a`); where two files share a name, their paths without the
/// extension (`lr0.1/m`, `lr0.3/m`), and where two paths are the same, a count after the
/// second (`m (2)`).
fn run_labels(files: &[PathBuf]) -> Vec<String> {
    let stem = |p: &PathBuf| {
        p.file_stem().map_or_else(
            || p.display().to_string(),
            |s| s.to_string_lossy().into_owned(),
        )
    };
    let stems: Vec<String> = files.iter().map(stem).collect();
    let unique = |v: &[String]| v.iter().enumerate().all(|(i, s)| !v[..i].contains(s));
    let mut labels = if unique(&stems) {
        stems
    } else {
        files
            .iter()
            .map(|p| p.with_extension("").display().to_string())
            .collect()
    };
    for i in 1..labels.len() {
        let seen = labels[..i].iter().filter(|l| **l == labels[i]).count();
        if seen > 0 {
            labels[i] = format!("{} ({})", labels[i], seen + 1);
        }
    }
    labels
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_labels_are_file_names_made_unique_by_their_paths() {
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(run_labels(&p(&["runs/a.jsonl", "b.jsonl"])), ["a", "b"]);
        assert_eq!(
            run_labels(&p(&["lr0.1/m.jsonl", "lr0.3/m.jsonl"])),
            ["lr0.1/m", "lr0.3/m"]
        );
        assert_eq!(run_labels(&p(&["m.jsonl", "m.jsonl"])), ["m", "m (2)"]);
    }
}
