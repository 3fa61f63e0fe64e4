//! Dataset loading: the IDX file format and MNIST-style datasets.
//!
//! [`idx`] reads LeCun's IDX files (raw or gzip, sniffed by content); [`datasets`] is the
//! catalogue of named sets (MNIST, Fashion-MNIST, KMNIST, EMNIST balanced / letters /
//! digits, QMNIST) as torchvision defines them, and [`mnist`] MNIST's standard release
//! (file names, mirrors, checksums). The rest is split by concept, every public item
//! re-exported here: `locate.rs` finds the four files of a dataset, `download.rs` fetches
//! them, `checksum.rs` verifies them, `load.rs` reads them into the types of `dataset.rs`
//! ([`Dataset`], one split with images `[N, rows*cols]` of row-major bytes, and [`Mnist`],
//! both splits and the classes). Every failure is a [`DataError`] whose message names the
//! file and the problem and, where there is one, the fix.

mod checksum;
mod dataset;
pub mod datasets;
mod download;
pub mod idx;
mod load;
mod locate;
pub mod mnist;
#[cfg(test)]
mod test_util;

use std::fmt::Write as _;
use std::path::PathBuf;

pub use checksum::verify_dir;
pub use dataset::{Dataset, Mnist};
pub use datasets::{DatasetInfo, DatasetName, Normalization, pixel_stats};
pub use download::{MIRROR_ENV, download, download_dataset};
pub use idx::{IdxArray, IdxData, encode_idx, parse_idx, read_idx};
pub use load::{
    ClassOrigin, LoadOptions, RARE_CLASS_SHARE, load_dir, load_dir_with, load_or_download,
    load_or_download_with,
};
pub use locate::{
    cache_dir, cache_dir_of, default_search_dirs, locate, locate_dataset, search_dirs_of,
};
pub use mnist::{FILE_NAMES, MIRRORS};

/// Everything that can go wrong while finding, downloading, verifying or parsing data files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or directory could not be read, written or created (the OS error is the
    /// `source()`, printed after the path by `{:#}` in anyhow).
    #[error("cannot access {}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },

    /// A file is not a valid IDX file, or holds the wrong kind of array for its role.
    #[error("invalid IDX file {}: {reason}", path.display())]
    Idx { path: PathBuf, reason: String },

    /// A dataset directory lacks some of the files it must hold.
    #[error(
        "dataset directory {} is missing {}; looked for: {}. Download the files with \
         `wgtrain download {dataset} --dir {}` or point --data{} at a directory that holds them",
        dir.display(), missing.join(", "), looked_for.join(", "), dir.display(),
        if *dataset == "mnist" { " / MNIST_DIR" } else { "" }
    )]
    MissingFiles {
        dir: PathBuf,
        /// The dataset's command-line name (`mnist` for a plain directory).
        dataset: &'static str,
        /// Base names for which neither the raw nor the `.gz` file exists.
        missing: Vec<String>,
        /// Every file name that was tried, raw and `.gz`.
        looked_for: Vec<String>,
    },

    /// No searched directory holds a complete dataset.
    #[error("{}", not_found_message(dataset, searched))]
    NotFound {
        /// The dataset looked for.
        dataset: &'static DatasetInfo,
        searched: Vec<PathBuf>,
    },

    /// Some classes below the largest training label have no training sample: most likely
    /// one label is corrupt.
    #[error(
        "suspicious labels in {}: sample {index} has label {label}, so the class count would be {}, \
         but classes {} have no training sample. A label is probably corrupt; fix or remove that sample",
        path.display(), label + 1, format_classes(missing)
    )]
    EmptyClasses {
        path: PathBuf,
        /// Classes below the largest label without a single training sample.
        missing: Vec<usize>,
        /// Index of the first sample carrying the largest label.
        index: usize,
        label: u32,
    },

    /// A label is negative or not below the class count `C` (inferred from the training
    /// labels, or given with `--classes`).
    #[error(
        "label out of range in {}: sample {index} has label {label}, but labels must lie in \
         0..{classes} ({origin})",
        path.display()
    )]
    LabelOutOfRange {
        path: PathBuf,
        /// Index of the offending sample within its file.
        index: usize,
        label: i64,
        classes: usize,
        /// Where `classes` came from.
        origin: ClassOrigin,
    },

    /// An inferred class is absent from the test set and holds a tiny share of the
    /// training set (under [`RARE_CLASS_SHARE`]): most likely stray labels, which
    /// would silently add an output to the model.
    #[error(
        "suspicious class in {}: label {label} is on only {} of {total} training samples \
         (sample{} {}) and on no sample of {}, so the class count would be {classes}; \
         if the class is real pass --classes {classes}, otherwise fix or remove those samples",
        train.display(), indices.len(), if indices.len() == 1 { "" } else { "s" },
        format_list(indices, "samples"), test.display()
    )]
    RareClass {
        /// The training label file.
        train: PathBuf,
        /// The test label file.
        test: PathBuf,
        label: u32,
        /// Indices of the training samples carrying `label`.
        indices: Vec<usize>,
        /// Number of training samples.
        total: usize,
        /// The inferred class count.
        classes: usize,
    },

    /// An image file and its label file disagree on the number of samples.
    #[error(
        "sample count mismatch: {} has {image_count} images but {} has {label_count} labels; \
         the two files must come from the same split",
        images.display(), labels.display()
    )]
    CountMismatch {
        images: PathBuf,
        image_count: usize,
        labels: PathBuf,
        label_count: usize,
    },

    /// Training and test images have different sizes.
    #[error(
        "image size mismatch: {} holds {}x{} images but {} holds {}x{}; train and test \
         images must have the same size",
        train.display(), train_shape[0], train_shape[1], test.display(), test_shape[0], test_shape[1]
    )]
    ShapeMismatch {
        train: PathBuf,
        /// `[rows, cols]` of the training images.
        train_shape: [usize; 2],
        test: PathBuf,
        /// `[rows, cols]` of the test images.
        test_shape: [usize; 2],
    },

    /// Every mirror failed for a file.
    #[error("could not download {url}: {reason}. {hint}")]
    Download {
        url: String,
        reason: String,
        /// How to get the files by hand, e.g. "No network? Copy the four ... --data DIR".
        hint: String,
    },

    /// A file's checksum differs from the published one.
    #[error(
        "checksum mismatch for {file}: {what} is {actual}, expected {expected}; {}",
        checksum_fix(*kept, dataset)
    )]
    Checksum {
        /// Local path or URL of the data that failed.
        file: String,
        /// What was hashed, e.g. "SHA-256 of the decompressed data", "MD5 of the .gz file".
        what: &'static str,
        expected: String,
        actual: String,
        /// The dataset's command-line name.
        dataset: &'static str,
        /// The data is a file on disk (one already in the directory); false for a download,
        /// which was refused before anything was written.
        kept: bool,
    },

    /// An environment variable wgtrain reads has a value it cannot use.
    #[error("invalid {name} = {value}: {reason}; unset it to use the default")]
    InvalidEnv {
        name: &'static str,
        value: String,
        reason: String,
    },
}

/// What to do about a checksum mismatch: a file on disk is the user's to delete; a
/// download that failed its check left nothing behind, so there is nothing to delete.
fn checksum_fix(kept: bool, dataset: &str) -> String {
    if kept {
        format!(
            "the file is corrupt, truncated or not the standard release. Delete it and run `wgtrain download {dataset}` again"
        )
    } else {
        format!(
            "the server sent corrupt, truncated or non-standard data, and nothing was kept. Run `wgtrain download {dataset}` again later, or point {} at another mirror",
            download::MIRROR_ENV
        )
    }
}

fn not_found_message(dataset: &DatasetInfo, searched: &[PathBuf]) -> String {
    let mut msg = format!("{} files not found. Searched:", dataset.title);
    for dir in searched {
        let _ = write!(msg, "\n  {}", dir.display());
    }
    let (flag, env) = if dataset.name == "mnist" {
        (String::new(), " or `MNIST_DIR=DIR`")
    } else {
        (format!("--dataset {} ", dataset.name), "")
    };
    let _ = write!(
        msg,
        "\nEach directory must hold {} (raw or .gz).\n\
         Point at local files with `{flag}--data DIR`{env}, \
         or download them with `wgtrain download {} --dir DIR`.",
        dataset.files.join(", "),
        dataset.name
    );
    msg
}

impl DataError {
    /// True for data that is wrong before any work starts (labels that do not fit the class
    /// count, an unusable environment variable): the CLI exits with code 2 for these, as
    /// for bad arguments.
    pub fn is_bad_input(&self) -> bool {
        matches!(
            self,
            DataError::LabelOutOfRange { .. }
                | DataError::RareClass { .. }
                | DataError::EmptyClasses { .. }
                | DataError::InvalidEnv { .. }
        )
    }
}

/// `3, 4, 5` or, for long lists, `3, 4, 5, ... 199 (197 classes)`.
fn format_classes(c: &[usize]) -> String {
    format_list(c, "classes")
}

/// `3, 4, 5` or, for long lists, `3, 4, 5, ... 199 (197 <unit>)`.
fn format_list(c: &[usize], unit: &str) -> String {
    let head: Vec<String> = c.iter().take(5).map(|v| v.to_string()).collect();
    if c.len() <= 5 {
        head.join(", ")
    } else {
        format!(
            "{}, ... {} ({} {unit})",
            head.join(", "),
            c[c.len() - 1],
            c.len()
        )
    }
}
