//! MNIST-style datasets: locating, downloading, verifying and loading the four IDX files.
//!
//! Input size and class count come from the files, not from constants, so any directory
//! in MNIST's layout loads. The named datasets of [`super::datasets`] (Fashion-MNIST,
//! KMNIST, EMNIST, QMNIST) add their own file names, packaging, checksums, class names and
//! storage quirks (EMNIST's transposed images, QMNIST's 2-D labels).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use md5::Md5;
use sha2::{Digest, Sha256};

use crate::data::DataError;
use crate::data::datasets::{Check, DatasetInfo, DatasetName, LabelLayout, Packaging};
use crate::data::idx::{IdxData, gunzip_if_gzip, gzip, is_gzip, read_idx};

/// Environment variable that replaces every dataset's download mirrors with one base URL
/// (ending in `/`), e.g. a local mirror, or an unreachable address to test offline errors.
pub const MIRROR_ENV: &str = "WGTRAIN_MIRROR";

/// The four standard file names (each may also exist with a `.gz` suffix), in the order
/// train images, train labels, test images, test labels.
pub const FILE_NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// SHA-256 of each decompressed file of the standard release, aligned with [`FILE_NAMES`].
const SHA256: [&str; 4] = super::datasets::MNIST_SHA256;

/// Download mirrors, tried in order; each serves `<file name>.gz`.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// The real files are about 10 MB; the cap only stops a misbehaving server filling memory.
const MAX_DOWNLOAD_BYTES: u64 = 256 << 20;
/// EMNIST's archive is 562 MB; it is streamed to disk, never held in memory.
const MAX_ARCHIVE_BYTES: u64 = 1 << 30;

/// One split of an MNIST-style dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Pixels, shape `[n, rows*cols]`, row-major, one byte per pixel (0..=255).
    pub images: Vec<u8>,
    /// Class labels, shape `[n]`, each `< classes` of the owning [`Mnist`].
    pub labels: Vec<u32>,
    /// Image height in pixels.
    pub rows: usize,
    /// Image width in pixels.
    pub cols: usize,
}

impl Dataset {
    /// Number of samples `n`.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when the split has no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Input size of one sample: `rows * cols`.
    pub fn features(&self) -> usize {
        self.rows * self.cols
    }

    /// Pixels of sample `i`, `rows*cols` bytes, row-major.
    ///
    /// # Panics
    /// If `i >= self.len()`.
    pub fn image(&self, i: usize) -> &[u8] {
        let f = self.features();
        &self.images[i * f..(i + 1) * f]
    }

    /// A copy of the first `n` samples (all of them when `n >= self.len()`).
    pub fn head(&self, n: usize) -> Dataset {
        let n = n.min(self.len());
        Dataset {
            images: self.images[..n * self.features()].to_vec(),
            labels: self.labels[..n].to_vec(),
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// A loaded dataset: both splits, the class count and the directory they came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Mnist {
    pub train: Dataset,
    pub test: Dataset,
    /// The class count `C`: given, the named dataset's, or the largest training label + 1.
    /// Every train and test label is below it.
    pub classes: usize,
    /// One name per class, `C` of them: the named dataset's (torchvision's `classes`,
    /// numbered past its end when `--classes` adds more), else `"0"`, `"1"`, ...
    pub class_names: Vec<String>,
    /// The named dataset, or `None` for a plain directory of MNIST-named IDX files.
    pub dataset: Option<DatasetName>,
    pub dir: PathBuf,
}

/// Share of the training samples under which an inferred class that the test set never
/// uses is refused as a probable stray label (0.1%: one stray label in MNIST is 0.0017%).
pub const RARE_CLASS_SHARE: f64 = 0.001;

/// Which dataset [`load_dir_with`] reads and how it decides the class count `C`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// A named dataset: its file names, label layout, image orientation and class count.
    /// `None`: MNIST's file names with the class count inferred (any IDX directory).
    pub dataset: Option<DatasetName>,
    /// The class count `C` (the CLI's `--classes`): every label must lie in `0..C`, and
    /// classes without samples are allowed. `None`: the named dataset's, else the largest
    /// training label plus one, refusing classes that look like stray labels (see
    /// [`load_dir_with`]).
    pub classes: Option<usize>,
}

/// Loads the four files from `dir` (each raw or `.gz`; raw is used when both exist), with
/// the class count inferred from the labels ([`LoadOptions::default`]).
///
/// # Errors
/// As [`load_dir_with`].
pub fn load_dir(dir: &Path) -> Result<Mnist, DataError> {
    load_dir_with(dir, &LoadOptions::default())
}

/// Loads the four files from `dir` (each raw or `.gz`; raw is used when both exist).
///
/// The files are `opts.dataset`'s ([`DatasetInfo::files`]), or MNIST's [`FILE_NAMES`].
/// EMNIST images are transposed back to upright (torchvision returns them as stored, so
/// its EMNIST tensors are the transpose of ours); QMNIST's labels are column 0 of their
/// `[N, 8]` i32 file.
///
/// The class count `C` is `opts.classes` when given, else the named dataset's (its
/// class names; EMNIST letters has 27, `N/A` at 0, as in torchvision); otherwise the
/// largest training label plus one, refused when a class below it has no training
/// sample, or when a class is absent from the test set and holds under
/// [`RARE_CLASS_SHARE`] of the training samples (one stray label would otherwise
/// silently add an output).
///
/// # Errors
/// - [`DataError::MissingFiles`] listing every name looked for and those missing;
/// - [`DataError::Io`] / [`DataError::Idx`] for unreadable or malformed files, images that
///   are not 3-D unsigned bytes, labels that are not 1-D integers (u8/i8/i16/i32), or an
///   empty training set;
/// - [`DataError::CountMismatch`] when a split's image and label counts differ;
/// - [`DataError::ShapeMismatch`] when train and test images differ in size;
/// - [`DataError::LabelOutOfRange`] for a negative label or a label `>= C`;
/// - [`DataError::EmptyClasses`] / [`DataError::RareClass`] (inferred `C` only) for a
///   class count that one corrupt label would decide.
pub fn load_dir_with(dir: &Path, opts: &LoadOptions) -> Result<Mnist, DataError> {
    let info = opts.dataset.map(DatasetName::info);
    let layout = info.map_or(LabelLayout::Flat, |i| i.labels);
    let [train_images, train_labels, test_images, test_labels] = find_all_of(dir, info)?;
    let (mut train, train_raw) = load_split(&train_images, &train_labels, layout)?;
    let (mut test, test_raw) = load_split(&test_images, &test_labels, layout)?;
    if info.is_some_and(|i| i.transposed) {
        train.transpose();
        test.transpose();
    }
    if [train.rows, train.cols] != [test.rows, test.cols] {
        return Err(DataError::ShapeMismatch {
            train: train_images,
            train_shape: [train.rows, train.cols],
            test: test_images,
            test_shape: [test.rows, test.cols],
        });
    }
    if train.n == 0 {
        return Err(DataError::Idx {
            path: train_images,
            reason: "the training set has no samples".into(),
        });
    }
    let (classes, origin) = match (opts.classes, info) {
        (Some(c), _) => (c, ClassOrigin::Given),
        (None, Some(i)) => (i.class_names.len(), ClassOrigin::Dataset(i.name)),
        // A negative maximum gives 0 classes, so check_labels reports the first label.
        (None, None) => (
            train_raw
                .iter()
                .max()
                .map_or(0, |&m| (m + 1).max(0) as usize),
            ClassOrigin::Inferred,
        ),
    };
    let train_labels_u32 = check_labels(&train_labels, &train_raw, classes, origin)?;
    let test_labels_u32 = check_labels(&test_labels, &test_raw, classes, origin)?;
    if origin == ClassOrigin::Inferred {
        check_every_class_present(&train_labels, &train_labels_u32, classes)?;
        check_rare_classes(
            (&train_labels, &train_labels_u32),
            (&test_labels, &test_labels_u32),
            classes,
        )?;
    }
    let named = info.map_or(&[][..], |i| i.class_names);
    let class_names = (0..classes)
        .map(|c| {
            named
                .get(c)
                .map_or_else(|| c.to_string(), |n| n.to_string())
        })
        .collect();
    Ok(Mnist {
        train: train.into_dataset(train_labels_u32),
        test: test.into_dataset(test_labels_u32),
        classes,
        class_names,
        dataset: opts.dataset,
        dir: dir.to_path_buf(),
    })
}

/// Where the class count came from, for the messages of [`DataError::LabelOutOfRange`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassOrigin {
    /// The largest training label + 1.
    Inferred,
    /// Given by the caller (`--classes`, [`LoadOptions::classes`]).
    Given,
    /// The named dataset's class count (`--dataset`).
    Dataset(&'static str),
}

impl std::fmt::Display for ClassOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ClassOrigin::Inferred => "the class count is the largest training label + 1",
            ClassOrigin::Given => {
                "the class count was given with --classes; fix that sample or raise --classes"
            }
            ClassOrigin::Dataset(name) => {
                return write!(
                    f,
                    "the class count of --dataset {name}; the file is not {name}'s, or pass \
                     --classes to override"
                );
            }
        })
    }
}

/// Directories searched for the files, in order.
///
/// With `explicit`, only that directory. Otherwise, when `$MNIST_DIR` is set and non-empty,
/// only that directory (a set `MNIST_DIR` is never skipped). Otherwise `./data/mnist`, then
/// [`cache_dir`].
pub fn default_search_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    search_dirs(explicit, mnist_dir_env())
}

/// `$MNIST_DIR` when it is set and non-empty.
fn mnist_dir_env() -> Option<PathBuf> {
    std::env::var_os("MNIST_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// [`default_search_dirs`] with the value of `$MNIST_DIR` passed in.
fn search_dirs(explicit: Option<&Path>, env: Option<PathBuf>) -> Vec<PathBuf> {
    match explicit.map(Path::to_path_buf).or(env) {
        Some(dir) => vec![dir],
        None => vec![PathBuf::from("data").join("mnist"), cache_dir()],
    }
}

/// Where downloads go: `<user cache dir>/wgtrain/mnist` (e.g. `~/.cache/wgtrain/mnist`),
/// or under the system temp dir when the platform has no cache dir.
pub fn cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("wgtrain")
        .join("mnist")
}

/// Directories searched for a named dataset, in order: with `explicit`, only that
/// directory; otherwise (MNIST only) `$MNIST_DIR` if set and non-empty, then
/// `./data/<name>`, then [`cache_dir_of`].
pub fn search_dirs_of(name: DatasetName, explicit: Option<&Path>) -> Vec<PathBuf> {
    if name == DatasetName::Mnist {
        return default_search_dirs(explicit);
    }
    match explicit {
        Some(dir) => vec![dir.to_path_buf()],
        None => vec![
            PathBuf::from("data").join(name.as_str()),
            cache_dir_of(name),
        ],
    }
}

/// Where a named dataset is downloaded: `<user cache dir>/wgtrain/<cache folder>` (e.g.
/// `~/.cache/wgtrain/fashion-mnist`; the three EMNIST splits share `emnist`, their
/// archive's folder).
pub fn cache_dir_of(name: DatasetName) -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("wgtrain")
        .join(name.info().cache_folder)
}

/// The first of [`default_search_dirs`] that holds all four files (raw or `.gz`).
///
/// # Errors
/// With `explicit`, [`DataError::MissingFiles`] for it when it lacks files. With
/// `$MNIST_DIR` set (and no `explicit`): [`DataError::Io`] naming it when it is not a
/// directory, [`DataError::MissingFiles`] when it lacks files. Otherwise
/// [`DataError::NotFound`] listing the directories searched and how to fix it.
pub fn locate(explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    locate_in(explicit, None, mnist_dir_env())
}

/// The first of [`search_dirs_of`] that holds all four files of `name` (raw or `.gz`).
///
/// # Errors
/// As [`locate`] (`$MNIST_DIR` is read for MNIST only).
pub fn locate_dataset(name: DatasetName, explicit: Option<&Path>) -> Result<PathBuf, DataError> {
    let env = if name == DatasetName::Mnist {
        mnist_dir_env()
    } else {
        None
    };
    locate_in(explicit, Some(name), env)
}

/// [`locate`] for a plain directory (`None`: MNIST's names) or a named dataset, with the
/// value of `$MNIST_DIR` passed in.
fn locate_in(
    explicit: Option<&Path>,
    name: Option<DatasetName>,
    env: Option<PathBuf>,
) -> Result<PathBuf, DataError> {
    let info = name.map(DatasetName::info);
    if let Some(dir) = explicit {
        return find_all_of(dir, info).map(|_| dir.to_path_buf());
    }
    if let Some(dir) = env {
        // Regression (issue 10): a set but missing MNIST_DIR was skipped silently, and the
        // run fell through to a download that then advised setting MNIST_DIR.
        if !dir.is_dir() {
            let reason = format!(
                "MNIST_DIR={} is not a directory; set MNIST_DIR to the directory holding the \
                 four MNIST files (raw or .gz), or unset it",
                dir.display()
            );
            return Err(DataError::Io {
                path: dir,
                source: std::io::Error::new(std::io::ErrorKind::NotFound, reason),
            });
        }
        return find_all_of(&dir, info).map(|_| dir);
    }
    let searched = match name {
        Some(n) if n != DatasetName::Mnist => search_dirs_of(n, None),
        _ => search_dirs(None, None),
    };
    match searched.iter().find(|dir| find_all_of(dir, info).is_ok()) {
        Some(dir) => Ok(dir.clone()),
        None => Err(DataError::NotFound {
            dataset: name.unwrap_or(DatasetName::Mnist).info(),
            searched,
        }),
    }
}

/// Downloads the four files into `dir` (created if needed) as `<name>.gz`.
///
/// Each file is fetched from [`MIRRORS`] in order, gunzipped in memory and its SHA-256
/// checked before it is written (atomically: a temp file in `dir`, then a rename). Files
/// already present whose checksum matches are skipped; a bad `.gz` is replaced. With
/// `show_progress`, a byte progress bar per file is drawn on stderr.
///
/// # Errors
/// - [`DataError::Download`] when every mirror fails for a file;
/// - [`DataError::Checksum`] when a mirror serves wrong data, or when a raw file already
///   in `dir` has the wrong checksum (it shadows the `.gz`, so it is not silently kept);
/// - [`DataError::Io`] when `dir` or a file cannot be written.
pub fn download(dir: &Path, show_progress: bool) -> Result<(), DataError> {
    download_from(dir, &MIRRORS, show_progress)
}

/// Downloads the four files of `name` into `dir` (created if needed), as torchvision
/// publishes them, from its mirrors in order, or only from `$WGTRAIN_MIRROR`
/// ([`MIRROR_ENV`]) when that is set.
///
/// Files packaged one `.gz` each are checked before they are written (atomically): MNIST
/// by the SHA-256 of the decompressed data, the others by torchvision's MD5 of the `.gz`.
/// EMNIST's zip archive is streamed to `dir/gzip.zip`, its MD5 checked, and the split's
/// four `.gz` members extracted; the archive is kept so the other EMNIST splits need no
/// second download. Files already present are skipped when their checksum matches (for
/// EMNIST, whose members have no published checksum, when all four exist). A failed
/// download removes the directories it created.
///
/// # Errors
/// - [`DataError::Download`] when every mirror fails, naming the URL and how to get the
///   files by hand;
/// - [`DataError::Checksum`] when a mirror serves wrong data, or a raw MNIST file in `dir`
///   has the wrong checksum;
/// - [`DataError::Idx`] for an archive without the expected member;
/// - [`DataError::Io`] when `dir` or a file cannot be written.
pub fn download_dataset(
    name: DatasetName,
    dir: &Path,
    show_progress: bool,
) -> Result<(), DataError> {
    let env = std::env::var(MIRROR_ENV).ok().filter(|v| !v.is_empty());
    let mirrors: Vec<&str> = match (&env, name.info().packaging) {
        (Some(base), _) => vec![base.as_str()],
        (None, Packaging::GzFiles { mirrors, .. } | Packaging::Zip { mirrors, .. }) => {
            mirrors.to_vec()
        }
    };
    download_dataset_from(name, dir, &mirrors, show_progress)
}

/// Checks the SHA-256 of the four decompressed files in `dir` against the standard release.
///
/// # Errors
/// [`DataError::MissingFiles`], [`DataError::Io`], [`DataError::Idx`] (corrupt gzip) or
/// [`DataError::Checksum`] naming the first bad file.
pub fn verify_dir(dir: &Path) -> Result<(), DataError> {
    for (path, expected) in find_all(dir)?.iter().zip(SHA256) {
        let actual = file_sha256(path)?;
        if actual != expected {
            return Err(DataError::Checksum {
                file: path.display().to_string(),
                what: "SHA-256 of the decompressed data",
                expected: expected.into(),
                actual,
                dataset: "mnist",
            });
        }
    }
    Ok(())
}

/// [`locate`]s and loads the dataset, downloading it into [`cache_dir`] first when it is
/// found nowhere, `allow_download` is set and no `explicit` directory was given.
///
/// # Errors
/// As [`load_or_download_with`].
pub fn load_or_download(
    explicit: Option<&Path>,
    allow_download: bool,
    show_progress: bool,
) -> Result<Mnist, DataError> {
    load_or_download_with(
        explicit,
        &LoadOptions::default(),
        allow_download,
        show_progress,
    )
}

/// As [`load_or_download`], loading with `opts` ([`load_dir_with`]): without `explicit`,
/// `opts.dataset` (default MNIST) is searched for ([`search_dirs_of`]) and downloaded
/// into [`cache_dir_of`] ([`download_dataset`]).
///
/// # Errors
/// As [`locate`] (including [`DataError::NotFound`] when downloading is not allowed),
/// [`download`] and [`load_dir_with`].
pub fn load_or_download_with(
    explicit: Option<&Path>,
    opts: &LoadOptions,
    allow_download: bool,
    show_progress: bool,
) -> Result<Mnist, DataError> {
    let located = match opts.dataset {
        Some(name) => locate_dataset(name, explicit),
        None => locate(explicit),
    };
    match located {
        Ok(dir) => load_dir_with(&dir, opts),
        Err(DataError::NotFound { .. }) if allow_download && explicit.is_none() => {
            let name = opts.dataset.unwrap_or(DatasetName::Mnist);
            let dir = cache_dir_of(name);
            download_dataset(name, &dir, show_progress)?;
            eprintln!("{} downloaded to {}", name.info().title, dir.display());
            load_dir_with(&dir, opts)
        }
        Err(e) => Err(e),
    }
}

/// The file for `name` in `dir`: raw if it exists, else `.gz`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// Paths of the four files in [`FILE_NAMES`] order, or the error listing what is missing.
fn find_all(dir: &Path) -> Result<[PathBuf; 4], DataError> {
    find_all_of(dir, None)
}

/// Paths of the four files of `info` (MNIST's names for `None`), or the error listing
/// what is missing.
fn find_all_of(dir: &Path, info: Option<&'static DatasetInfo>) -> Result<[PathBuf; 4], DataError> {
    let names = info.map_or(FILE_NAMES, |i| i.files);
    let found = names.map(|name| find_file(dir, name));
    let missing: Vec<String> = names
        .iter()
        .zip(&found)
        .filter(|(_, path)| path.is_none())
        .map(|(name, _)| name.to_string())
        .collect();
    if !missing.is_empty() {
        return Err(DataError::MissingFiles {
            dir: dir.to_path_buf(),
            dataset: info.map_or("mnist", |i| i.name),
            missing,
            looked_for: names
                .iter()
                .flat_map(|name| [name.to_string(), format!("{name}.gz")])
                .collect(),
        });
    }
    Ok(found.map(|path| path.expect("no file is missing")))
}

/// Images of one split before the labels are validated against the class count.
struct Split {
    images: Vec<u8>,
    n: usize,
    rows: usize,
    cols: usize,
}

impl Split {
    /// Transposes every image (EMNIST stores them transposed): stored `[rows, cols]`
    /// becomes upright `[cols, rows]` with `upright[r][c] = stored[c][r]`.
    fn transpose(&mut self) {
        let (rows, cols) = (self.rows, self.cols);
        let f = rows * cols;
        let mut out = vec![0u8; self.images.len()];
        for (src, dst) in self.images.chunks_exact(f).zip(out.chunks_exact_mut(f)) {
            for r in 0..cols {
                for c in 0..rows {
                    dst[r * rows + c] = src[c * cols + r];
                }
            }
        }
        self.images = out;
        (self.rows, self.cols) = (cols, rows);
    }

    fn into_dataset(self, labels: Vec<u32>) -> Dataset {
        Dataset {
            images: self.images,
            labels,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// Reads one split's images and labels (as `i64`, unvalidated) and checks their counts agree.
fn load_split(
    images_path: &Path,
    labels_path: &Path,
    layout: LabelLayout,
) -> Result<(Split, Vec<i64>), DataError> {
    let split = load_images(images_path)?;
    let labels = load_labels(labels_path, layout)?;
    if split.n != labels.len() {
        return Err(DataError::CountMismatch {
            images: images_path.to_path_buf(),
            image_count: split.n,
            labels: labels_path.to_path_buf(),
            label_count: labels.len(),
        });
    }
    Ok((split, labels))
}

fn load_images(path: &Path) -> Result<Split, DataError> {
    let arr = read_idx(path)?;
    let fail = |reason: String| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    };
    let IdxData::U8(images) = arr.data else {
        return Err(fail(format!(
            "images must be unsigned bytes (0x08), file has {} (0x{:02X})",
            arr.data.type_name(),
            arr.data.type_code()
        )));
    };
    let &[n, rows, cols] = arr.dims.as_slice() else {
        return Err(fail(format!(
            "images must be 3-D [n, rows, cols], file has {} dimensions {:?}",
            arr.dims.len(),
            arr.dims
        )));
    };
    Ok(Split {
        images,
        n,
        rows,
        cols,
    })
}

fn load_labels(path: &Path, layout: LabelLayout) -> Result<Vec<i64>, DataError> {
    let arr = read_idx(path)?;
    let fail = |reason: String| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    };
    // Row stride: 1 for [n]; K for QMNIST's [n, K], whose class is column 0.
    let stride = match (layout, arr.dims.as_slice()) {
        (LabelLayout::Flat, [_]) => 1,
        (LabelLayout::Column0, &[_, k]) if k >= 1 => k,
        (LabelLayout::Flat, dims) => {
            return Err(fail(format!(
                "labels must be 1-D [n], file has {} dimensions {dims:?}",
                dims.len()
            )));
        }
        (LabelLayout::Column0, dims) => {
            return Err(fail(format!(
                "QMNIST labels must be 2-D [n, 8] with the class in column 0, file has {} \
                 dimensions {dims:?}",
                dims.len()
            )));
        }
    };
    let column0 = |v: Vec<i64>| v.into_iter().step_by(stride).collect::<Vec<i64>>();
    Ok(column0(match arr.data {
        IdxData::U8(v) => v.into_iter().map(i64::from).collect(),
        IdxData::I8(v) => v.into_iter().map(i64::from).collect(),
        IdxData::I16(v) => v.into_iter().map(i64::from).collect(),
        IdxData::I32(v) => v.into_iter().map(i64::from).collect(),
        other => {
            return Err(fail(format!(
                "labels must be integers (u8 0x08, i8 0x09, i16 0x0B or i32 0x0C), \
                 file has {} (0x{:02X})",
                other.type_name(),
                other.type_code()
            )));
        }
    }))
}

/// The class count is the largest training label + 1, so one corrupt label (say 200 in
/// MNIST) would silently grow the model to 201 outputs. Every class below the count must
/// have a training sample; otherwise the largest label is reported as the likely culprit.
fn check_every_class_present(path: &Path, labels: &[u32], classes: usize) -> Result<(), DataError> {
    let mut seen = vec![false; classes];
    for &l in labels {
        seen[l as usize] = true;
    }
    let missing: Vec<usize> = (0..classes).filter(|&c| !seen[c]).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let max = classes - 1;
    let index = labels.iter().position(|&l| l as usize == max).unwrap_or(0);
    Err(DataError::EmptyClasses {
        path: path.to_path_buf(),
        missing,
        index,
        label: max as u32,
    })
}

/// Converts labels to `u32`, failing on the first one outside `0..classes`.
fn check_labels(
    path: &Path,
    labels: &[i64],
    classes: usize,
    origin: ClassOrigin,
) -> Result<Vec<u32>, DataError> {
    labels
        .iter()
        .enumerate()
        .map(|(index, &label)| match u32::try_from(label) {
            Ok(l) if (l as usize) < classes => Ok(l),
            _ => Err(DataError::LabelOutOfRange {
                path: path.to_path_buf(),
                index,
                label,
                classes,
                origin,
            }),
        })
        .collect()
}

/// Refuses an inferred class that the test set never uses and that holds under
/// [`RARE_CLASS_SHARE`] of the training samples: most likely stray labels.
fn check_rare_classes(
    (train_path, train): (&Path, &[u32]),
    (test_path, test): (&Path, &[u32]),
    classes: usize,
) -> Result<(), DataError> {
    let count = |labels: &[u32]| {
        let mut c = vec![0usize; classes];
        labels.iter().for_each(|&l| c[l as usize] += 1);
        c
    };
    let (train_counts, test_counts) = (count(train), count(test));
    let rare = (0..classes).find(|&c| {
        test_counts[c] == 0 && (train_counts[c] as f64) < RARE_CLASS_SHARE * train.len() as f64
    });
    let Some(label) = rare else {
        return Ok(());
    };
    let indices = train
        .iter()
        .enumerate()
        .filter(|&(_, &l)| l as usize == label)
        .map(|(i, _)| i)
        .collect();
    Err(DataError::RareClass {
        train: train_path.to_path_buf(),
        test: test_path.to_path_buf(),
        label: label as u32,
        indices,
        total: train.len(),
        classes,
    })
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

/// MD5 of a file's bytes as stored (torchvision's check of a downloaded `.gz`).
fn file_md5(path: &Path) -> Result<String, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(md5_hex(&bytes))
}

/// SHA-256 of a file's content after gunzipping it if it is gzip.
fn file_sha256(path: &Path) -> Result<String, DataError> {
    let bytes = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(sha256_hex(&gunzip_if_gzip(&bytes, path)?))
}

fn download_from(dir: &Path, mirrors: &[&str], show_progress: bool) -> Result<(), DataError> {
    download_dataset_from(DatasetName::Mnist, dir, mirrors, show_progress)
}

fn download_dataset_from(
    name: DatasetName,
    dir: &Path,
    mirrors: &[&str],
    show_progress: bool,
) -> Result<(), DataError> {
    // The directories this call creates, innermost first: removed again (while empty) when
    // the download fails, so a failed attempt leaves nothing behind.
    let created: Vec<PathBuf> = dir
        .ancestors()
        .take_while(|p| !p.as_os_str().is_empty() && !p.exists())
        .map(Path::to_path_buf)
        .collect();
    fs::create_dir_all(dir).map_err(|source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let info = name.info();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .build()
        .into();
    let result = match info.packaging {
        Packaging::GzFiles { checks, .. } => {
            fetch_all(&agent, dir, info, &checks, mirrors, show_progress)
        }
        Packaging::Zip {
            archive,
            md5,
            member_dir,
            ..
        } => fetch_archive(
            &agent,
            dir,
            info,
            (archive, md5, member_dir),
            mirrors,
            show_progress,
        ),
    };
    if result.is_err() {
        for d in &created {
            // Fails, harmlessly, on a directory that is not empty.
            let _ = fs::remove_dir(d);
        }
    }
    result
}

/// How to get the files of `info` without wgtrain's download, for [`DataError::Download`].
fn manual_hint(info: &DatasetInfo, mirrors: &[&str]) -> String {
    match info.packaging {
        _ if info.name == "mnist" => "No network? Copy the four MNIST files (raw or .gz) into a \
             directory and pass --data DIR or set MNIST_DIR=DIR"
            .into(),
        Packaging::GzFiles { .. } => format!(
            "No network? Copy the four {} files ({}, raw or .gz) into a directory and pass \
             --dataset {} --data DIR",
            info.title,
            info.files.join(", "),
            info.name
        ),
        Packaging::Zip {
            archive,
            member_dir,
            ..
        } => format!(
            "No network? Fetch {}{archive} by other means, unzip it and pass --dataset {} \
             --data DIR/{} (it holds {}.gz and the other files)",
            mirrors.first().copied().unwrap_or_default(),
            info.name,
            member_dir.trim_end_matches('/'),
            info.files[0]
        ),
    }
}

/// Fetches the four `.gz` files of `info` into the existing `dir` (see
/// [`download_dataset_from`]).
fn fetch_all(
    agent: &ureq::Agent,
    dir: &Path,
    info: &DatasetInfo,
    checks: &[Check; 4],
    mirrors: &[&str],
    show_progress: bool,
) -> Result<(), DataError> {
    for (name, &check) in info.files.into_iter().zip(checks) {
        if let Some(existing) = find_file(dir, name) {
            let raw = existing == dir.join(name);
            // An unreadable or corrupt .gz is simply fetched again.
            let actual = match check {
                Check::Sha256Raw(_) => file_sha256(&existing),
                // MD5 is published for the .gz only: a raw file cannot be checked.
                Check::Md5Gz(_) if raw => {
                    if show_progress {
                        eprintln!(
                            "{name}: already present (raw; its MD5 is unpublished, not checked)"
                        );
                    }
                    continue;
                }
                Check::Md5Gz(_) => file_md5(&existing),
            };
            let expected = check_hex(check);
            if actual.as_deref().is_ok_and(|a| a == expected) {
                if show_progress {
                    eprintln!("{name}: already present, checksum ok");
                }
                continue;
            }
            if raw {
                return Err(DataError::Checksum {
                    file: existing.display().to_string(),
                    what: check_what(check),
                    expected: expected.into(),
                    actual: actual?,
                    dataset: info.name,
                });
            }
        }
        let gz = fetch_verified(agent, info, mirrors, name, check, show_progress)?;
        write_atomically(&dir.join(format!("{name}.gz")), &gz)?;
    }
    Ok(())
}

fn check_hex(check: Check) -> &'static str {
    match check {
        Check::Sha256Raw(h) | Check::Md5Gz(h) => h,
    }
}

fn check_what(check: Check) -> &'static str {
    match check {
        Check::Sha256Raw(_) => "SHA-256 of the decompressed data",
        Check::Md5Gz(_) => "MD5 of the .gz file",
    }
}

/// Fetches `<mirror><name>.gz` from the first mirror that serves data passing `check`,
/// returning the bytes to store as `<name>.gz`.
fn fetch_verified(
    agent: &ureq::Agent,
    info: &DatasetInfo,
    mirrors: &[&str],
    name: &str,
    check: Check,
    show_progress: bool,
) -> Result<Vec<u8>, DataError> {
    let mut failures = Vec::new();
    let mut bad_checksum = None;
    let expected = check_hex(check);
    for mirror in mirrors {
        let url = format!("{mirror}{name}.gz");
        let body = match fetch(agent, &url, name, show_progress) {
            Ok(body) => body,
            Err(reason) => {
                failures.push((url, reason));
                continue;
            }
        };
        if let Check::Md5Gz(_) = check {
            let actual = md5_hex(&body);
            if actual == expected {
                return Ok(body);
            }
            bad_checksum = Some(DataError::Checksum {
                file: url,
                what: check_what(check),
                expected: expected.into(),
                actual,
                dataset: info.name,
            });
            continue;
        }
        let raw = match gunzip_if_gzip(&body, Path::new(&url)) {
            Ok(raw) => raw,
            Err(e) => {
                failures.push((url, e.to_string()));
                continue;
            }
        };
        let actual = sha256_hex(&raw);
        if actual != expected {
            bad_checksum = Some(DataError::Checksum {
                file: url,
                what: check_what(check),
                expected: expected.into(),
                actual,
                dataset: info.name,
            });
            continue;
        }
        // A server that sets Content-Encoding: gzip has the body decompressed by ureq.
        return Ok(if is_gzip(&body) { body } else { gzip(&raw) });
    }
    if let Some(err) = bad_checksum {
        return Err(err);
    }
    Err(download_error(failures, name, info, mirrors))
}

/// The [`DataError::Download`] for a file every mirror failed: the last URL and reason,
/// the earlier ones, and the way to get the files by hand.
fn download_error(
    mut failures: Vec<(String, String)>,
    name: &str,
    info: &DatasetInfo,
    mirrors: &[&str],
) -> DataError {
    let (url, reason) = failures
        .pop()
        .unwrap_or_else(|| (name.into(), "no mirrors".into()));
    let earlier: Vec<String> = failures.iter().map(|(u, r)| format!("{u}: {r}")).collect();
    let reason = if earlier.is_empty() {
        reason
    } else {
        format!("{reason} (also failed: {})", earlier.join("; "))
    };
    DataError::Download {
        url,
        reason,
        hint: manual_hint(info, mirrors),
    }
}

/// EMNIST: makes sure the archive is in `dir` (fetched and MD5-checked, or already there
/// with the right MD5), then extracts the split's four `.gz` members next to it.
fn fetch_archive(
    agent: &ureq::Agent,
    dir: &Path,
    info: &DatasetInfo,
    (archive, md5, member_dir): (&str, &str, &str),
    mirrors: &[&str],
    show_progress: bool,
) -> Result<(), DataError> {
    if info.files.iter().all(|f| find_file(dir, f).is_some()) {
        if show_progress {
            eprintln!(
                "{}: the four files are present (only the archive's MD5 is published; not re-checked)",
                info.name
            );
        }
        return Ok(());
    }
    let zip_path = dir.join(archive);
    let have_archive = zip_path.is_file() && file_md5(&zip_path).is_ok_and(|a| a == md5);
    if !have_archive {
        let tmp = dir.join(format!(".{archive}.part-{}", std::process::id()));
        let mut failures = Vec::new();
        let mut fetched = false;
        for mirror in mirrors {
            let url = format!("{mirror}{archive}");
            match fetch_to_file(agent, &url, &tmp, archive, show_progress) {
                Ok(actual) if actual == md5 => {
                    fs::rename(&tmp, &zip_path).map_err(|source| DataError::Io {
                        path: zip_path.clone(),
                        source,
                    })?;
                    fetched = true;
                    break;
                }
                Ok(actual) => {
                    let _ = fs::remove_file(&tmp);
                    return Err(DataError::Checksum {
                        file: url,
                        what: "MD5 of the archive",
                        expected: md5.into(),
                        actual,
                        dataset: info.name,
                    });
                }
                Err(reason) => {
                    let _ = fs::remove_file(&tmp);
                    failures.push((url, reason));
                }
            }
        }
        if !fetched {
            return Err(download_error(failures, archive, info, mirrors));
        }
    }
    extract_members(&zip_path, member_dir, &info.files, dir)
}

/// Copies `<member_dir><file>.gz` of the zip archive at `zip_path` to `dir/<file>.gz` for
/// each of `files` (atomically).
///
/// # Errors
/// [`DataError::Io`] for an unreadable archive or unwritable file, [`DataError::Idx`]
/// (naming the archive) for a corrupt archive or a missing member.
pub(crate) fn extract_members(
    zip_path: &Path,
    member_dir: &str,
    files: &[&str],
    dir: &Path,
) -> Result<(), DataError> {
    let bad = |reason: String| DataError::Idx {
        path: zip_path.to_path_buf(),
        reason,
    };
    let file = fs::File::open(zip_path).map_err(|source| DataError::Io {
        path: zip_path.to_path_buf(),
        source,
    })?;
    let mut zip =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a readable zip archive: {e}")))?;
    for f in files {
        let member = format!("{member_dir}{f}.gz");
        let mut entry = zip
            .by_name(&member)
            .map_err(|e| bad(format!("archive has no member {member}: {e}")))?;
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| bad(format!("cannot read member {member}: {e}")))?;
        write_atomically(&dir.join(format!("{f}.gz")), &bytes)?;
    }
    Ok(())
}

/// Streams `url` to `path`, returning the MD5 (hex) of what was written.
fn fetch_to_file(
    agent: &ureq::Agent,
    url: &str,
    path: &Path,
    name: &str,
    show_progress: bool,
) -> Result<String, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let bar = progress_bar(show_progress, response.body().content_length(), name);
    let mut reader = bar.wrap_read(response.body_mut().as_reader().take(MAX_ARCHIVE_BYTES));
    let result = (|| -> std::io::Result<String> {
        let mut file = fs::File::create(path)?;
        let mut hasher = Md5::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
        }
        file.sync_all()?;
        Ok(hex(&hasher.finalize()))
    })();
    match result {
        Ok(md5) => {
            bar.finish();
            Ok(md5)
        }
        Err(e) => {
            bar.abandon();
            Err(e.to_string())
        }
    }
}

/// A byte progress bar on stderr (hidden unless `show`), prefixed with `name`.
fn progress_bar(show: bool, len: Option<u64>, name: &str) -> ProgressBar {
    let bar = match (show, len) {
        (false, _) => ProgressBar::hidden(),
        (true, Some(len)) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{prefix:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        (true, None) => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix:>24} {spinner} {bytes} {bytes_per_sec}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_prefix(name.to_string());
    bar
}

/// Reads a whole response body, drawing a byte progress bar when asked.
fn fetch(
    agent: &ureq::Agent,
    url: &str,
    name: &str,
    show_progress: bool,
) -> Result<Vec<u8>, String> {
    let mut response = agent.get(url).call().map_err(|e| e.to_string())?;
    let bar = progress_bar(show_progress, response.body().content_length(), name);
    let mut body = Vec::new();
    let read = bar
        .wrap_read(response.body_mut().as_reader().take(MAX_DOWNLOAD_BYTES))
        .read_to_end(&mut body);
    match read {
        Ok(_) => {
            bar.finish();
            Ok(body)
        }
        Err(e) => {
            bar.abandon();
            Err(e.to_string())
        }
    }
}

/// Writes via a temp file in the same directory and a rename, so an interrupted download
/// never leaves a partial file under the real name.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), DataError> {
    let file_name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{file_name}.part-{}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    result.map_err(|source| {
        let _ = fs::remove_file(&tmp);
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::idx::{IdxArray, encode_idx};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader};
    use std::net::TcpListener;

    const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

    /// The real MNIST directory; these tests need it and must not pass silently without it.
    fn real_dir() -> PathBuf {
        match std::env::var_os("MNIST_DIR") {
            Some(dir) if !dir.is_empty() => PathBuf::from(dir),
            _ => panic!(
                "set MNIST_DIR to a directory holding the four real MNIST files (raw or .gz) \
                 to run this test, e.g. MNIST_DIR=/work/shared/data/mnist cargo test"
            ),
        }
    }

    fn images(n: usize, rows: usize, cols: usize) -> IdxArray {
        IdxArray {
            dims: vec![n, rows, cols],
            data: IdxData::U8((0..n * rows * cols).map(|i| (i * 7 % 256) as u8).collect()),
        }
    }

    fn labels(values: &[u8]) -> IdxArray {
        IdxArray {
            dims: vec![values.len()],
            data: IdxData::U8(values.to_vec()),
        }
    }

    fn i32_labels(values: &[i32]) -> IdxArray {
        IdxArray {
            dims: vec![values.len()],
            data: IdxData::I32(values.to_vec()),
        }
    }

    fn write(dir: &Path, name: &str, arr: &IdxArray, gz: bool) -> PathBuf {
        let raw = encode_idx(arr);
        let (path, bytes) = if gz {
            (dir.join(format!("{name}.gz")), gzip(&raw))
        } else {
            (dir.join(name), raw)
        };
        fs::write(&path, bytes).unwrap();
        path
    }

    /// Writes the four files in [`FILE_NAMES`] order, alternating raw and gzip.
    fn write_all(dir: &Path, files: [&IdxArray; 4]) -> [PathBuf; 4] {
        std::array::from_fn(|i| write(dir, FILE_NAMES[i], files[i], i % 2 == 1))
    }

    /// A valid 6-train / 3-test dataset of 3x2 images with 4 classes.
    fn write_valid(dir: &Path) -> [PathBuf; 4] {
        write_all(
            dir,
            [
                &images(6, 3, 2),
                &labels(&[0, 1, 2, 3, 0, 1]),
                &images(3, 3, 2),
                &labels(&[3, 2, 0]),
            ],
        )
    }

    fn assert_msg(err: &DataError, phrases: &[&str]) {
        let msg = err.to_string();
        for phrase in phrases {
            assert!(msg.contains(phrase), "message lacks {phrase:?}: {msg}");
        }
    }

    fn s(path: &Path) -> String {
        path.display().to_string()
    }

    #[test]
    fn loads_synthetic_dir() {
        let dir = tempfile::tempdir().unwrap();
        write_valid(dir.path());
        let m = load_dir(dir.path()).unwrap();
        assert_eq!((m.classes, m.dir.as_path()), (4, dir.path()));
        assert_eq!(
            (
                m.train.len(),
                m.train.rows,
                m.train.cols,
                m.train.features()
            ),
            (6, 3, 2, 6)
        );
        assert_eq!((m.test.len(), m.test.features()), (3, 6));
        assert_eq!(m.train.labels, [0, 1, 2, 3, 0, 1]);
        assert_eq!(m.test.labels, [3, 2, 0]);
        let IdxData::U8(pixels) = images(6, 3, 2).data else {
            unreachable!()
        };
        assert_eq!(m.train.images, pixels);
        assert_eq!(m.train.image(1), &pixels[6..12]);
    }

    #[test]
    fn every_integer_label_type_loads() {
        let types = [
            IdxData::U8(vec![0, 1, 1]),
            IdxData::I8(vec![0, 1, 1]),
            IdxData::I16(vec![0, 1, 1]),
            IdxData::I32(vec![0, 1, 1]),
        ];
        for data in types {
            let dir = tempfile::tempdir().unwrap();
            let lab = IdxArray {
                dims: vec![3],
                data,
            };
            write_all(dir.path(), [&images(3, 2, 2), &lab, &images(3, 2, 2), &lab]);
            let m = load_dir(dir.path()).unwrap();
            assert_eq!((m.classes, m.train.labels.as_slice()), (2, &[0, 1, 1][..]));
        }
    }

    #[test]
    fn raw_file_preferred_over_gz() {
        let dir = tempfile::tempdir().unwrap();
        write_valid(dir.path());
        fs::write(dir.path().join("train-images-idx3-ubyte.gz"), b"garbage").unwrap();
        assert_eq!(load_dir(dir.path()).unwrap().train.len(), 6);
    }

    #[test]
    fn count_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let [img, lab, ..] = write_all(
            dir.path(),
            [
                &images(6, 3, 2),
                &labels(&[0, 1, 2, 3, 0]),
                &images(3, 3, 2),
                &labels(&[0, 1, 2]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(
            err,
            DataError::CountMismatch {
                image_count: 6,
                label_count: 5,
                ..
            }
        ));
        assert_msg(&err, &[&s(&img), &s(&lab), "6 images", "5 labels"]);
    }

    #[test]
    fn negative_label() {
        let dir = tempfile::tempdir().unwrap();
        let [_, lab, ..] = write_all(
            dir.path(),
            [
                &images(4, 2, 2),
                &i32_labels(&[0, 2, -1, 1]),
                &images(1, 2, 2),
                &i32_labels(&[0]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::LabelOutOfRange { path, index: 2, label: -1, classes: 3, .. } if *path == lab),
            "{err:?}"
        );
        assert_msg(&err, &[&s(&lab), "sample 2 has label -1", "0..3"]);
    }

    /// Regression: one training label of 200 in a 10-class set silently made a 201-class
    /// model. Classes without a training sample below the largest label are refused.
    #[test]
    fn regression_one_corrupt_train_label_is_refused_not_a_bigger_model() {
        let dir = tempfile::tempdir().unwrap();
        let [_, train_lab, ..] = write_all(
            dir.path(),
            [
                &images(4, 2, 2),
                &labels(&[0, 1, 200, 1]),
                &images(2, 2, 2),
                &labels(&[1, 0]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::EmptyClasses { path, index: 2, label: 200, missing } if *path == train_lab && missing.len() == 198),
            "{err:?}"
        );
        assert_msg(
            &err,
            &[
                &s(&train_lab),
                "sample 2 has label 200",
                "2, 3, 4, 5, 6, ... 199 (198 classes)",
            ],
        );
    }

    #[test]
    fn test_label_beyond_train_classes() {
        let dir = tempfile::tempdir().unwrap();
        let [.., test_lab] = write_all(
            dir.path(),
            [
                &images(3, 2, 2),
                &labels(&[0, 1, 2]),
                &images(3, 2, 2),
                &labels(&[2, 3, 0]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::LabelOutOfRange { path, index: 1, label: 3, classes: 3, .. } if *path == test_lab),
            "{err:?}"
        );
        assert_msg(&err, &[&s(&test_lab), "sample 1 has label 3"]);
    }

    #[test]
    fn missing_file_lists_names() {
        let dir = tempfile::tempdir().unwrap();
        let [.., test_lab] = write_valid(dir.path());
        fs::remove_file(test_lab).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        let DataError::MissingFiles {
            missing,
            looked_for,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(missing, &["t10k-labels-idx1-ubyte"]);
        assert_eq!(looked_for.len(), 8);
        let mut phrases = vec![s(dir.path()), "missing t10k-labels-idx1-ubyte".into()];
        phrases.extend(
            FILE_NAMES
                .iter()
                .flat_map(|n| [n.to_string(), format!("{n}.gz")]),
        );
        assert_msg(
            &err,
            &phrases.iter().map(String::as_str).collect::<Vec<_>>(),
        );
    }

    #[test]
    fn non_u8_images_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let float_images = IdxArray {
            dims: vec![2, 1, 1],
            data: IdxData::F32(vec![0.0, 1.0]),
        };
        let [img, ..] = write_all(
            dir.path(),
            [
                &float_images,
                &labels(&[0, 1]),
                &images(2, 1, 1),
                &labels(&[0, 1]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Idx { .. }), "{err:?}");
        assert_msg(
            &err,
            &[
                &s(&img),
                "images must be unsigned bytes (0x08), file has f32 (0x0D)",
            ],
        );
    }

    #[test]
    fn float_labels_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let float_labels = IdxArray {
            dims: vec![2],
            data: IdxData::F64(vec![0.0, 1.0]),
        };
        let [_, lab, ..] = write_all(
            dir.path(),
            [
                &images(2, 1, 1),
                &float_labels,
                &images(2, 1, 1),
                &labels(&[0, 1]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert_msg(
            &err,
            &[&s(&lab), "labels must be integers", "file has f64 (0x0E)"],
        );
    }

    #[test]
    fn wrong_rank_refused() {
        let dir = tempfile::tempdir().unwrap();
        let flat = IdxArray {
            dims: vec![2, 4],
            data: IdxData::U8(vec![0; 8]),
        };
        let [img, ..] = write_all(
            dir.path(),
            [&flat, &labels(&[0, 1]), &images(2, 2, 2), &labels(&[0, 1])],
        );
        assert_msg(
            &load_dir(dir.path()).unwrap_err(),
            &[&s(&img), "images must be 3-D"],
        );

        let [_, lab, ..] = write_all(
            dir.path(),
            [&images(2, 2, 2), &flat, &images(2, 2, 2), &labels(&[0, 1])],
        );
        assert_msg(
            &load_dir(dir.path()).unwrap_err(),
            &[&s(&lab), "labels must be 1-D"],
        );
    }

    #[test]
    fn train_test_shape_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let [train, _, test, _] = write_all(
            dir.path(),
            [
                &images(2, 3, 2),
                &labels(&[0, 1]),
                &images(2, 2, 3),
                &labels(&[0, 1]),
            ],
        );
        let err = load_dir(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::ShapeMismatch { .. }), "{err:?}");
        assert_msg(&err, &[&s(&train), &s(&test), "3x2", "2x3"]);
    }

    #[test]
    fn empty_training_set_refused() {
        let dir = tempfile::tempdir().unwrap();
        let [img, ..] = write_all(
            dir.path(),
            [
                &images(0, 2, 2),
                &labels(&[]),
                &images(1, 2, 2),
                &labels(&[0]),
            ],
        );
        assert_msg(
            &load_dir(dir.path()).unwrap_err(),
            &[&s(&img), "no samples"],
        );
    }

    #[test]
    fn locate_explicit_dir() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(Some(dir.path())).unwrap_err();
        assert!(matches!(&err, DataError::MissingFiles { missing, .. } if missing.len() == 4));
        write_valid(dir.path());
        assert_eq!(locate(Some(dir.path())).unwrap(), dir.path());
    }

    #[test]
    fn search_dirs_order() {
        let explicit = Path::new("/some/dir");
        assert_eq!(default_search_dirs(Some(explicit)), [explicit]);
        let env = PathBuf::from("/env/dir");
        assert_eq!(search_dirs(Some(explicit), Some(env.clone())), [explicit]);
        assert_eq!(search_dirs(None, Some(env.clone())), [env]);
        let tail = [PathBuf::from("data/mnist"), cache_dir()];
        assert_eq!(search_dirs(None, None), tail);
        assert!(cache_dir().ends_with("wgtrain/mnist"));
    }

    /// Regression (issue 10, item 12): `MNIST_DIR=/nonexistent` was skipped silently and
    /// the run fell through to a download. A set MNIST_DIR is the only directory searched.
    #[test]
    fn a_set_mnist_dir_that_is_missing_or_incomplete_is_an_error_naming_it() {
        let missing = PathBuf::from("/nonexistent/mnist");
        let err = locate_in(None, None, Some(missing.clone())).unwrap_err();
        assert!(
            matches!(&err, DataError::Io { path, .. } if *path == missing),
            "{err:?}"
        );
        let shown = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            shown.contains("MNIST_DIR=/nonexistent/mnist is not a directory"),
            "{shown}"
        );
        let empty = tempfile::tempdir().unwrap();
        let err = locate_in(None, None, Some(empty.path().to_path_buf())).unwrap_err();
        assert!(
            matches!(&err, DataError::MissingFiles { dir, missing, .. }
                if dir == empty.path() && missing.len() == 4),
            "{err:?}"
        );
        write_valid(empty.path());
        assert_eq!(
            locate_in(None, None, Some(empty.path().to_path_buf())).unwrap(),
            empty.path()
        );
    }

    #[test]
    fn not_found_message_explains_fix() {
        let err = DataError::NotFound {
            dataset: DatasetName::Mnist.info(),
            searched: vec![PathBuf::from("/a/mnist"), PathBuf::from("data/mnist")],
        };
        let phrases = [
            "/a/mnist",
            "data/mnist",
            "--data DIR",
            "MNIST_DIR=",
            "wgtrain download mnist",
        ];
        assert_msg(&err, &phrases);
        assert_msg(&err, &FILE_NAMES);
    }

    /// Serves `files` (URL path -> body) over HTTP on localhost; other paths get 404.
    fn serve(files: HashMap<String, Vec<u8>>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request = String::new();
                reader.read_line(&mut request).unwrap();
                let mut line = String::new();
                while reader.read_line(&mut line).unwrap() > 2 {
                    line.clear();
                }
                let path = request.split_whitespace().nth(1).unwrap_or_default();
                let (status, body) = match files.get(path) {
                    Some(body) => ("200 OK", body.as_slice()),
                    None => ("404 Not Found", &[][..]),
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream
                    .write_all(head.as_bytes())
                    .and_then(|()| stream.write_all(body));
            }
        });
        format!("http://{addr}")
    }

    /// A mirror URL on which nothing listens.
    fn dead_mirror() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        format!("http://{addr}/")
    }

    #[test]
    fn download_unreachable_mirrors() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dead_mirror(), dead_mirror());
        let err = download_from(dir.path(), &[&a, &b], false).unwrap_err();
        assert!(matches!(err, DataError::Download { .. }), "{err:?}");
        let first = format!("{a}train-images-idx3-ubyte.gz");
        let last = format!("{b}train-images-idx3-ubyte.gz");
        assert_msg(
            &err,
            &[&first, &last, "No network?", "--data DIR", "MNIST_DIR"],
        );
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );
    }

    #[test]
    fn download_rejects_wrong_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let fake = gzip(&encode_idx(&images(2, 2, 2)));
        let base = serve(HashMap::from([(
            "/m/train-images-idx3-ubyte.gz".into(),
            fake,
        )]));
        let mirror = format!("{base}/m/");
        let err = download_from(dir.path(), &[&mirror], false).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(
            &err,
            &["train-images-idx3-ubyte.gz", SHA256[0], "checksum mismatch"],
        );
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );
    }

    /// A failed download removes the directories it created (the user's cache stays clean);
    /// a directory that existed before is kept.
    #[test]
    fn failed_download_leaves_no_directories_behind() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cache").join("mnist");
        assert!(download_from(&dir, &[&dead_mirror()], false).is_err());
        assert!(!root.path().join("cache").exists());
        assert!(download_from(root.path(), &[&dead_mirror()], false).is_err());
        assert!(root.path().is_dir());
    }

    #[test]
    fn download_refuses_bad_raw_file() {
        let dir = tempfile::tempdir().unwrap();
        let [img, ..] = write_valid(dir.path());
        let err = download_from(dir.path(), &[&dead_mirror()], false).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(&err, &[&s(&img), "Delete it"]);
    }

    #[test]
    fn verify_dir_rejects_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let [img, ..] = write_valid(dir.path());
        let err = verify_dir(dir.path()).unwrap_err();
        assert!(matches!(err, DataError::Checksum { .. }), "{err:?}");
        assert_msg(&err, &[&s(&img), SHA256[0]]);
    }

    #[test]
    fn real_mnist_loads() {
        let m = load_dir(&real_dir()).unwrap();
        assert_eq!((m.train.len(), m.test.len()), (60000, 10000));
        assert_eq!(
            (m.train.rows, m.train.cols, m.train.features()),
            (28, 28, 784)
        );
        assert_eq!((m.test.rows, m.test.cols), (28, 28));
        assert_eq!(m.train.images.len(), 60000 * 784);
        assert_eq!(m.classes, 10);
        let counts = |d: &Dataset| {
            let mut c = [0usize; 10];
            d.labels.iter().for_each(|&l| c[l as usize] += 1);
            c
        };
        assert_eq!(counts(&m.train), TRAIN_COUNTS);
        assert_eq!(counts(&m.test), TEST_COUNTS);
    }

    #[test]
    fn real_mnist_checksums() {
        verify_dir(&real_dir()).unwrap();
    }

    #[test]
    fn real_mnist_located_explicitly() {
        let dir = real_dir();
        assert_eq!(locate(Some(&dir)).unwrap(), dir);
        let m = load_or_download(Some(&dir), false, false).unwrap();
        assert_eq!(m.dir, dir);
    }

    /// Serves the real gzipped files from a second mirror after a dead first one.
    #[test]
    fn real_mnist_download_from_local_mirror() {
        let src = real_dir();
        let files = FILE_NAMES
            .iter()
            .map(|name| {
                let path = find_file(&src, name).expect("real file present");
                let bytes = fs::read(path).unwrap();
                let gz = if is_gzip(&bytes) { bytes } else { gzip(&bytes) };
                (format!("/mnist/{name}.gz"), gz)
            })
            .collect();
        let good = format!("{}/mnist/", serve(files));
        let dir = tempfile::tempdir().unwrap();
        download_from(dir.path(), &[&dead_mirror(), &good], false).unwrap();
        verify_dir(dir.path()).unwrap();
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let mut want: Vec<_> = FILE_NAMES.iter().map(|n| format!("{n}.gz")).collect();
        want.sort();
        assert_eq!(names, want, "only the four .gz files, no temp files left");

        // Verified files are skipped: with only dead mirrors this still succeeds.
        download_from(dir.path(), &[&dead_mirror()], false).unwrap();
        // A corrupt .gz is replaced.
        fs::write(
            dir.path().join("t10k-labels-idx1-ubyte.gz"),
            b"\x1f\x8bjunk",
        )
        .unwrap();
        download_from(dir.path(), &[&good], false).unwrap();
        verify_dir(dir.path()).unwrap();
    }

    /// Writes `files` of a named dataset into `dir` as `<name>.gz`, in its real packaging.
    fn write_named_gz(dir: &Path, name: DatasetName, arrays: [&IdxArray; 4]) {
        for (f, arr) in name.info().files.iter().zip(arrays) {
            fs::write(dir.join(format!("{f}.gz")), gzip(&encode_idx(arr))).unwrap();
        }
    }

    /// `[n, rows, cols]` images whose pixel (i, r, c) is `i*100 + r*10 + c`.
    fn coded_images(n: usize, rows: usize, cols: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                (0..rows).flat_map(move |r| (0..cols).map(move |c| (i * 100 + r * 10 + c) as u8))
            })
            .collect()
    }

    /// Regression-style pin of EMNIST's packaging and orientation: a zip holding
    /// `gzip/<file>.gz` as NIST ships it, images stored transposed (stored[c][r]), letters
    /// labels 1..=26 with 27 classes and N/A at 0, as torchvision keeps them.
    #[test]
    fn emnist_letters_from_its_zip_of_gz_files_is_upright_with_27_classes() {
        use zip::write::SimpleFileOptions;
        let name = DatasetName::EmnistLetters;
        let (n, rows, cols) = (3, 2, 3); // upright images are 2 rows x 3 cols
        let upright = coded_images(n, rows, cols);
        // Stored transposed: [n, cols, rows] with stored[i][c][r] = upright[i][r][c].
        let mut stored = vec![0u8; upright.len()];
        for i in 0..n {
            for r in 0..rows {
                for c in 0..cols {
                    stored[i * 6 + c * rows + r] = upright[i * 6 + r * cols + c];
                }
            }
        }
        let imgs = IdxArray {
            dims: vec![n, cols, rows],
            data: IdxData::U8(stored),
        };
        let train_labels = labels(&[1, 26, 5]);
        let test_labels = labels(&[26, 1, 2]);
        let tmp = tempfile::tempdir().unwrap();
        let zip_path = tmp.path().join("gzip.zip");
        let mut zip = zip::ZipWriter::new(fs::File::create(&zip_path).unwrap());
        let arrays = [&imgs, &train_labels, &imgs, &test_labels];
        for (f, arr) in name.info().files.iter().zip(arrays) {
            zip.start_file(format!("gzip/{f}.gz"), SimpleFileOptions::default())
                .unwrap();
            zip.write_all(&gzip(&encode_idx(arr))).unwrap();
        }
        zip.finish().unwrap();

        let dir = tmp.path().join("emnist");
        fs::create_dir(&dir).unwrap();
        extract_members(&zip_path, "gzip/", &name.info().files, &dir).unwrap();
        let opts = LoadOptions {
            dataset: Some(name),
            classes: None,
        };
        let m = load_dir_with(&dir, &opts).unwrap();
        assert_eq!((m.train.rows, m.train.cols), (rows, cols));
        assert_eq!(m.train.images, upright);
        assert_eq!(m.train.image(1), &[100, 101, 102, 110, 111, 112]);
        assert_eq!(m.classes, 27);
        assert_eq!(
            (m.class_names[0].as_str(), m.class_names[26].as_str()),
            ("N/A", "z")
        );
        assert_eq!(m.train.labels, [1, 26, 5]);
        assert_eq!(m.dataset, Some(name));

        // A label of 27 does not fit torchvision's 27 classes: refused by file and index.
        fs::write(
            dir.join(format!("{}.gz", name.info().files[3])),
            gzip(&encode_idx(&labels(&[1, 27, 2]))),
        )
        .unwrap();
        let err = load_dir_with(&dir, &opts).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::LabelOutOfRange {
                    index: 1,
                    label: 27,
                    classes: 27,
                    ..
                }
            ),
            "{err:?}"
        );
        assert_msg(&err, &["sample 1 has label 27", "--dataset emnist-letters"]);

        // An archive without the split's members names the archive and the member.
        let err = extract_members(
            &zip_path,
            "gzip/",
            &DatasetName::EmnistDigits.info().files,
            &dir,
        )
        .unwrap_err();
        assert_msg(
            &err,
            &[
                &s(&zip_path),
                "no member gzip/emnist-digits-train-images-idx3-ubyte.gz",
            ],
        );
    }

    /// QMNIST's labels are `[n, 8]` i32 (`idx2-int`) with the class in column 0.
    #[test]
    fn qmnist_labels_are_column_0_of_2d_i32() {
        let name = DatasetName::Qmnist;
        let rows = |classes: &[i32]| IdxArray {
            dims: vec![classes.len(), 8],
            data: IdxData::I32(
                classes
                    .iter()
                    .enumerate()
                    .flat_map(|(i, &c)| [c, 4, 2000 + i as i32, 7, c + 100, 60000 + i as i32, 0, 0])
                    .collect(),
            ),
        };
        let dir = tempfile::tempdir().unwrap();
        write_named_gz(
            dir.path(),
            name,
            [
                &images(4, 2, 2),
                &rows(&[3, 9, 0, 9]),
                &images(2, 2, 2),
                &rows(&[1, 2]),
            ],
        );
        let opts = LoadOptions {
            dataset: Some(name),
            classes: None,
        };
        let m = load_dir_with(dir.path(), &opts).unwrap();
        assert_eq!(m.train.labels, [3, 9, 0, 9]);
        assert_eq!(m.test.labels, [1, 2]);
        assert_eq!((m.classes, m.class_names[9].as_str()), (10, "9 - nine"));
        // 1-D labels are not QMNIST's layout.
        write_named_gz(
            dir.path(),
            name,
            [
                &images(4, 2, 2),
                &labels(&[3, 9, 0, 9]),
                &images(2, 2, 2),
                &rows(&[1, 2]),
            ],
        );
        let err = load_dir_with(dir.path(), &opts).unwrap_err();
        assert_msg(
            &err,
            &[
                "qmnist-train-labels-idx2-int",
                "2-D [n, 8] with the class in column 0",
            ],
        );
    }

    /// Fashion-MNIST and KMNIST use MNIST's file names and packaging; their class names
    /// and statistics come from the catalogue.
    #[test]
    fn fashion_and_kmnist_load_with_their_class_names() {
        for (name, first) in [
            (DatasetName::FashionMnist, "T-shirt/top"),
            (DatasetName::Kmnist, "o"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            write_named_gz(
                dir.path(),
                name,
                [
                    &images(3, 2, 2),
                    &labels(&[0, 9, 4]),
                    &images(1, 2, 2),
                    &labels(&[9]),
                ],
            );
            let opts = LoadOptions {
                dataset: Some(name),
                classes: None,
            };
            let m = load_dir_with(dir.path(), &opts).unwrap();
            assert_eq!((m.classes, m.class_names[0].as_str()), (10, first));
            assert_eq!(locate_dataset(name, Some(dir.path())).unwrap(), dir.path());
        }
    }

    /// Offline, every named dataset fails with the URL it tried and how to get the files
    /// by hand, and leaves nothing behind.
    #[test]
    fn every_dataset_download_fails_clearly_offline() {
        for name in crate::data::datasets::ALL {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("cache").join(name.info().cache_folder);
            let dead = dead_mirror();
            let err = download_dataset_from(name, &dir, &[&dead], false).unwrap_err();
            assert!(matches!(err, DataError::Download { .. }), "{name}: {err:?}");
            let first = match name.info().packaging {
                Packaging::GzFiles { .. } => format!("{dead}{}.gz", name.info().files[0]),
                Packaging::Zip { archive, .. } => format!("{dead}{archive}"),
            };
            let flag = if name == DatasetName::Mnist {
                "MNIST_DIR".to_string()
            } else {
                format!("--dataset {name} --data DIR")
            };
            assert_msg(&err, &[&first, "No network?", &flag]);
            assert!(
                !root.path().join("cache").exists(),
                "{name}: nothing may be left"
            );
        }
    }

    /// A mirror serving other data is refused by torchvision's MD5 of the .gz.
    #[test]
    fn md5_checked_download_rejects_other_data() {
        let dir = tempfile::tempdir().unwrap();
        let fake = gzip(&encode_idx(&images(2, 2, 2)));
        let fake_md5 = md5_hex(&fake);
        let base = serve(HashMap::from([(
            "/f/train-images-idx3-ubyte.gz".into(),
            fake,
        )]));
        let mirror = format!("{base}/f/");
        let err = download_dataset_from(DatasetName::FashionMnist, dir.path(), &[&mirror], false)
            .unwrap_err();
        assert_msg(
            &err,
            &[
                "MD5 of the .gz file",
                &fake_md5,
                "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                "wgtrain download fashion-mnist",
            ],
        );
        assert!(
            fs::read_dir(dir.path()).unwrap().next().is_none(),
            "nothing may be written"
        );
    }

    /// Hand-checked: md5("") = d41d8cd98f00b204e9800998ecf8427e (RFC 1321 test suite).
    #[test]
    fn md5_of_empty_input() {
        assert_eq!(md5_hex(b""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    }

    /// The normalisation statistics are those of the training pixels: recomputed on the
    /// real MNIST training set they give the published 0.1307 and 0.3081.
    #[test]
    fn real_mnist_pixel_stats_match_the_published_values() {
        let m = load_dir(&real_dir()).unwrap();
        let s = crate::data::pixel_stats(&m.train);
        assert!((s.mean - 0.1307).abs() < 5e-5, "{s:?}");
        assert!((s.std - 0.3081).abs() < 5e-5, "{s:?}");
        // Named MNIST: torchvision's class names and a fixed class count.
        let opts = LoadOptions {
            dataset: Some(DatasetName::Mnist),
            classes: None,
        };
        let named = load_dir_with(&real_dir(), &opts).unwrap();
        assert_eq!(
            (named.classes, named.class_names[3].as_str()),
            (10, "3 - three")
        );
    }
}
