//! Where the data is: the data flags ([`DataArgs`]), loading (or downloading) the dataset
//! they name, the `--normalize` statistics and the `--train-subset` of `train`, `lr-find`
//! and `sweep`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use wgtrain::data::{self, Mnist};
use wgtrain::model::Normalization;
use wgtrain::tune;

use super::errors::{bad_input, usage};
use super::parse::{class_count, dataset_name};

/// Where the data is.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Directory with the four IDX files (raw or .gz): MNIST's names, or those of
    /// --dataset. Default: ./data/NAME, then the user cache directory (downloaded there
    /// if missing); for mnist $MNIST_DIR first.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A named dataset (torchvision's files, class names and mean/std): mnist,
    /// fashion-mnist, kmnist, emnist-balanced, emnist-letters, emnist-digits or qmnist.
    /// Without it, --data takes any directory of MNIST-named IDX files.
    #[arg(long, value_name = "NAME", value_parser = dataset_name)]
    pub dataset: Option<wgtrain::data::DatasetName>,
    /// Never download; fail with the list of directories searched instead.
    #[arg(long)]
    pub no_download: bool,
    /// Normalise pixels with the dataset's mean and std (MNIST's 0.1307 and 0.3081 without
    /// --dataset), as transforms.Normalize (default: scale to [0, 1]).
    #[arg(long)]
    pub normalize: bool,
    /// Number of classes C (model outputs); every label must lie in 0..C. Default: the
    /// largest training label + 1, refusing a class that looks like a stray label.
    #[arg(long, value_name = "N", value_parser = class_count)]
    pub classes: Option<usize>,
}

/// Checks where the data is before any work (before the adapter is opened or anything is
/// read): a `--data` that does not exist or is not a directory, a directory (`--data` or a
/// set `$MNIST_DIR`) that lacks one of the four files, and, with `--no-download`, no
/// directory holding them. That nothing is found when a download is allowed is not an
/// error here: [`load_data`] downloads.
///
/// # Errors
/// Exit 2, naming the path and the fix.
pub fn check_data(d: &DataArgs) -> Result<()> {
    let title = d.dataset.unwrap_or(data::DatasetName::Mnist).info().title;
    if let Some(dir) = d.data.as_deref() {
        let problem = if !dir.exists() {
            Some("no such directory")
        } else if !dir.is_dir() {
            Some("is not a directory")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(usage(
                "data",
                dir.display(),
                format!(
                    "{problem}; give the directory holding the four {title} files (raw or .gz)"
                ),
            ));
        }
    }
    let located = match d.dataset {
        Some(name) => data::locate_dataset(name, d.data.as_deref()),
        None => data::locate(d.data.as_deref()),
    };
    match located {
        Ok(_) => Ok(()),
        Err(data::DataError::NotFound { .. }) if !d.no_download && d.data.is_none() => Ok(()),
        Err(e) => Err(bad_input(e)),
    }
}

/// Loads the dataset the flags name (downloading it unless `--no-download`) and, unless
/// `quiet`, prints a one-line summary on stderr.
///
/// # Errors
/// Exit 2 ([`super::errors::BadInput`] or a usage error) for a `--data` that is not a
/// directory and for missing, incomplete or malformed files ([`check_data`]); exit 1 for
/// a failed download or checksum.
pub fn load_data(d: &DataArgs, quiet: bool) -> Result<Mnist> {
    check_data(d)?;
    let opts = data::LoadOptions {
        dataset: d.dataset,
        classes: d.classes,
    };
    // Finding and reading the files checks the user's input (exit 2 when it is bad); a
    // download, and the checksums it verifies, is work (exit 1 when it fails).
    let mnist = data::load_or_download_with(d.data.as_deref(), &opts, !d.no_download, !quiet)
        .map_err(|e| match e {
            data::DataError::Download { .. } | data::DataError::Checksum { .. } => {
                anyhow::Error::from(wgtrain::Error::from(e))
            }
            e => bad_input(e),
        })?;
    if !quiet {
        let name = d.dataset.map_or(String::new(), |n| format!("{n} "));
        note!(
            "data: {name}{} ({} train, {} test, {}x{} inputs, {} classes)",
            mnist.dir.display(),
            mnist.train.len(),
            mnist.test.len(),
            mnist.train.rows,
            mnist.train.cols,
            mnist.classes
        );
    }
    Ok(mnist)
}

/// The input normalisation of a run: the dataset's mean and std with `--normalize`, else
/// pixels scaled to [0, 1].
pub fn normalization(d: &DataArgs) -> Normalization {
    if d.normalize {
        dataset_normalization(d)
    } else {
        Normalization::UNIT
    }
}

/// The mean and std `--normalize` uses: the named dataset's, else MNIST's.
pub fn dataset_normalization(d: &DataArgs) -> Normalization {
    d.dataset
        .map_or(Normalization::MNIST, |n| n.info().normalization)
}

/// Replaces the training set by a seeded subset of `n` samples (`--train-subset`), the
/// same for one seed in `train`, `lr-find` and `sweep`.
pub(crate) fn with_subset(mut mnist: Mnist, n: Option<usize>, seed: u64) -> Result<Mnist> {
    if let Some(n) = n {
        mnist.train = tune::subset(&mnist.train, n, seed)?;
        note!("training on a seeded subset of {n} training samples (--train-subset)");
    }
    Ok(mnist)
}
