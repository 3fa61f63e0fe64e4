//! Hyperparameter tuning: the learning-rate range test ([`lr_find`]), search spaces and
//! trial generation ([`space`]), median and successive-halving pruning ([`prune`]), sweeps
//! with a leaderboard and CSV/JSON output ([`sweep`]), sweeps run as populations
//! ([`population_sweep`]) whose members may differ in minibatch size, a single run's epoch
//! time per minibatch size ([`epoch_time`]), and pictures of all of it ([`plot`]).
//!
//! Tuning looks at a validation split held out of the training files, never at the test
//! set: a sweep's trainer never evaluates it ([`crate::train::Trainer::set_evaluate_test`]),
//! and the best trial's final parameters are evaluated on the test set once, at the end. Everything here works with any [`crate::engine::Engine`] (GPU or CPU).
//!
//! From the command line (`--device cpu` is the fast path on a machine without a GPU;
//! `--train-subset N` tunes on a seeded subset):
//!
//! ```text
//! wgtrain lr-find --device cpu --out lr-find            # lr_find.{png,svg,csv,json}
//! wgtrain sweep --device cpu --search grid --lr 1e-2:2 --grid-points 6 \
//!     --weight-decay 0,1e-5,1e-4,1e-3 --epochs 10 --out sweep
//! wgtrain train --device cpu --lr 0.69 --val-split 0.1 --metrics run.jsonl --plot run
//! wgtrain plot run.jsonl --out run                      # learning_curves.{png,svg}
//! wgtrain plot a.jsonl b.jsonl --out runs               # both runs in one picture
//! wgtrain plot sweep --out sweep                        # a sweep's pictures again
//! ```
//!
//! - **lr-find** ([`lr_find`]): fresh parameters, an exponential ramp from `--start-lr`
//!   to `--end-lr` over `--steps` minibatches, fastai's smoothed loss, stop at 4x the best
//!   smoothed loss; the suggestion is the steepest descent of the smoothed loss (the
//!   minimum-loss lr / 10 is printed too, and used when the curve never descends).
//! - **sweep** ([`sweep`], [`space`], [`prune`]): grid or seeded random search over lr,
//!   weight decay, batch size, momentum, hidden sizes and epochs; median pruning after a
//!   1-epoch warm-up, or successive halving (`--pruning halving`); trials run one at a
//!   time or K at a time as populations (`--population K`, [`population_sweep`]); one seed for every trial (subset, split, init, shuffles), so trials
//!   differ only in their hyperparameters and `wgtrain train` with a trial's flags and the
//!   same seed reproduces it exactly. `--out` gets `trials.json`, `trials.csv`,
//!   `leaderboard.csv`, `best.json` and the pictures.
//!
//! - **pbt** ([`pbt`]): `wgtrain sweep --search pbt --population K --pbt-interval E`,
//!   population-based training: K members train at once; every E epochs the worst copy a
//!   better member's weights and perturb lr and weight decay. The best member's schedule
//!   replays with `wgtrain train --hparam-schedule`.
//!
//! A trial is also just a process: `wgtrain train --val-split 0.1 --metrics FILE` writes
//! one JSON object per epoch, which is all a hyperparameter service needs. From Python,
//! the `wgtrain` package (`python/`) trains Optuna's trials K at a time as one population
//! in-process, reporting every epoch to the study's pruner (`wgtrain.optuna.optimize`;
//! `examples/optuna_sweep.py`).

pub mod epoch_time;
pub mod lr_find;
pub mod pbt;
pub mod plot;
pub mod population_sweep;
pub mod prune;
pub mod space;
pub mod sweep;

use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::train::EpochReport;

/// A seeded subset of `n` samples of `ds`, kept in their original order (`--train-subset`).
/// The same seed gives the same subset; its stream differs from the validation split's and
/// the epoch shuffles', so the three do not correlate.
///
/// # Errors
/// [`Error::InvalidConfig`] when `n` is 0 or larger than the dataset.
pub fn subset(ds: &Dataset, n: usize, seed: u64) -> Result<Dataset> {
    if n == 0 || n > ds.len() {
        return Err(Error::InvalidConfig {
            name: "train subset",
            value: n.to_string(),
            reason: format!(
                "must be between 1 and the training set's {} samples",
                ds.len()
            ),
        });
    }
    let mut idx: Vec<usize> = (0..ds.len()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(u64::MAX - 1);
    idx.shuffle(&mut rng);
    idx.truncate(n);
    idx.sort_unstable();
    let f = ds.features();
    let mut images = Vec::with_capacity(n * f);
    for &i in &idx {
        images.extend_from_slice(ds.image(i));
    }
    Ok(Dataset {
        images,
        labels: idx.iter().map(|&i| ds.labels[i]).collect(),
        rows: ds.rows,
        cols: ds.cols,
    })
}

/// One epoch's metrics as tuning and plotting use them: the `--metrics` JSON Lines record
/// of `wgtrain train` (read back with [`read_metrics`]) and one epoch of a sweep trial.
/// Test metrics are absent in sweeps, which never look at the test set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    /// Learning rate of the epoch's first step.
    pub lr: f64,
    /// Mean training loss over the epoch's minibatches.
    pub train_loss: f64,
    /// Fraction of training samples predicted correctly during the epoch.
    pub train_accuracy: f64,
    /// Mean loss on the validation split (absent without one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_loss: Option<f64>,
    /// Accuracy on the validation split, in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_accuracy: Option<f64>,
    /// Mean loss on the test set (absent in sweeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_loss: Option<f64>,
    /// Accuracy on the test set, in [0, 1] (absent in sweeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Wall time of the epoch's training part, s.
    #[serde(default)]
    pub epoch_seconds: f64,
}

impl EpochMetrics {
    /// The metrics of a trainer's report; its test metrics only when `with_test`.
    pub fn from_report(r: &EpochReport, with_test: bool) -> EpochMetrics {
        EpochMetrics {
            epoch: r.epoch,
            lr: r.lr,
            train_loss: r.train_loss,
            train_accuracy: r.train_accuracy,
            val_loss: r.val_loss,
            val_accuracy: r.val_accuracy,
            test_loss: with_test.then_some(r.test_loss),
            test_accuracy: with_test.then_some(r.test_accuracy),
            epoch_seconds: r.epoch_seconds,
        }
    }
}

/// Reads a `--metrics` file (one JSON object per line; blank lines skipped).
///
/// # Errors
/// [`Error::Io`] for an unreadable file; [`Error::Format`] for a file that is not text (a
/// checkpoint, say) or a line that is not an epoch record (named by its line number), a
/// last line cut short included (see [`read_metrics_file`], which accepts one).
pub fn read_metrics(path: &Path) -> Result<Vec<EpochMetrics>> {
    let file = read_metrics_file(path)?;
    match file.torn_line {
        Some(n) => Err(Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "line {n}: not an epoch record: the line is cut short (no newline at its end)"
            ),
        }),
        None => Ok(file.epochs),
    }
}

/// A `--metrics` file read back by [`read_metrics_file`].
#[derive(Clone, Debug, PartialEq)]
pub struct MetricsFile {
    /// The epoch records of the whole lines, in order.
    pub epochs: Vec<EpochMetrics>,
    /// The number (1-based) of a last line that was cut short and left out, if any.
    pub torn_line: Option<usize>,
}

/// Reads a `--metrics` file, accepting a last line cut short (no newline after it, and not
/// a whole record: its run stopped while writing it, or an older wgtrain ran out of disk
/// there): it is left out and named in [`MetricsFile::torn_line`], so what the run wrote
/// before it is still read. Blank lines are skipped.
///
/// # Errors
/// [`Error::Io`] for an unreadable file, [`Error::Format`] for a file that is not text or
/// any other line that is not an epoch record (named by its line number).
pub fn read_metrics_file(path: &Path) -> Result<MetricsFile> {
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    // Not UTF-8: a binary file (a checkpoint, say), which no JSON line can be.
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "is not a --metrics file (JSON Lines of epoch records): line {line} is not text"
            ),
        }
    })?;
    let mut epochs = Vec::new();
    let mut torn_line = None;
    let lines: Vec<&str> = text.split_terminator('\n').collect();
    let unterminated = !text.is_empty() && !text.ends_with('\n');
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(m) => epochs.push(m),
            Err(_) if unterminated && i + 1 == lines.len() => torn_line = Some(i + 1),
            Err(e) => {
                return Err(Error::Format {
                    path: path.to_path_buf(),
                    reason: format!("line {}: not an epoch record: {e}", i + 1),
                });
            }
        }
    }
    Ok(MetricsFile { epochs, torn_line })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dataset(n: usize) -> Dataset {
        Dataset {
            images: (0..n * 4).map(|v| (v % 251) as u8).collect(),
            labels: (0..n as u32).collect(),
            rows: 2,
            cols: 2,
        }
    }

    /// Regression (issue 25, item 5): a metrics file whose last line was cut short (a disk
    /// that filled, a killed run) was refused whole by `plot`. The whole lines are read and
    /// the cut line named; a malformed line elsewhere is still refused, and `read_metrics`
    /// (strict) refuses the cut line.
    #[test]
    fn regression_a_metrics_file_cut_short_keeps_its_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        let whole = |epoch: usize| {
            serde_json::to_string(&EpochMetrics {
                epoch,
                lr: 0.1,
                train_loss: 0.5,
                train_accuracy: 0.9,
                val_loss: None,
                val_accuracy: None,
                test_loss: Some(0.4),
                test_accuracy: Some(0.91),
                epoch_seconds: 1.5,
            })
            .unwrap()
        };
        let text = format!("{}\n{}\n{}", whole(1), whole(2), &whole(3)[..20]);
        std::fs::write(&p, &text).unwrap();
        let f = read_metrics_file(&p).unwrap();
        assert_eq!(f.epochs.iter().map(|m| m.epoch).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(f.torn_line, Some(3));
        assert!(read_metrics(&p).unwrap_err().to_string().contains("line 3"));
        // A bad line that is not the last, or a last line with its newline, is an error.
        std::fs::write(&p, format!("{}\nnot json\n{}\n", whole(1), whole(2))).unwrap();
        assert!(
            read_metrics_file(&p)
                .unwrap_err()
                .to_string()
                .contains("line 2")
        );
        std::fs::write(&p, format!("{}\nnot json\n", whole(1))).unwrap();
        assert!(read_metrics_file(&p).is_err());
        std::fs::write(&p, format!("{}\n{}\n", whole(1), whole(2))).unwrap();
        let f = read_metrics_file(&p).unwrap();
        assert_eq!((f.epochs.len(), f.torn_line), (2, None));
    }

    #[test]
    fn subset_is_seeded_sorted_and_keeps_images_with_their_labels() {
        let ds = dataset(100);
        let a = subset(&ds, 10, 3).unwrap();
        assert_eq!(a, subset(&ds, 10, 3).unwrap());
        assert_ne!(a.labels, subset(&ds, 10, 4).unwrap().labels);
        assert!(a.labels.windows(2).all(|w| w[0] < w[1]));
        for (k, &l) in a.labels.iter().enumerate() {
            assert_eq!(a.image(k), ds.image(l as usize));
        }
        assert!(subset(&ds, 0, 1).is_err());
        assert!(subset(&ds, 101, 1).is_err());
        assert_eq!(subset(&ds, 100, 1).unwrap(), ds);
    }

    #[test]
    fn metrics_lines_parse_with_and_without_validation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.jsonl");
        std::fs::write(
            &p,
            concat!(
                r#"{"epoch":1,"lr":0.1,"train_loss":0.5,"train_accuracy":0.8,"test_loss":0.4,"test_accuracy":0.85,"epoch_seconds":1.0,"samples_per_second":10.0}"#,
                "\n\n",
                r#"{"epoch":2,"lr":0.1,"train_loss":0.3,"train_accuracy":0.9,"test_loss":0.3,"test_accuracy":0.9,"val_loss":0.35,"val_accuracy":0.88,"epoch_seconds":1.0,"samples_per_second":10.0}"#,
                "\n"
            ),
        )
        .unwrap();
        let m = read_metrics(&p).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].val_accuracy, None);
        assert_eq!(m[1].val_accuracy, Some(0.88));
        assert_eq!(m[1].test_accuracy, Some(0.9));
        std::fs::write(&p, "{\"epoch\": 1}\n").unwrap();
        let e = read_metrics(&p).unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        // Regression (issue 26, item 11): a binary file (a checkpoint) was refused with
        // "stream did not contain valid UTF-8".
        std::fs::write(&p, [0x40, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xfe, b'\n']).unwrap();
        let e = read_metrics(&p).unwrap_err();
        assert!(matches!(e, Error::Format { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("is not a --metrics file") && e.contains("line 1 is not text"),
            "{e}"
        );
    }
}
