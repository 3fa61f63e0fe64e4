//! Reading a located dataset: its four IDX files into [`Dataset`]s, with the checks that
//! make a bad file fail by name (types, ranks, counts, shapes), the class count `C` (given,
//! the named dataset's, or inferred and guarded against stray labels), and
//! [`load_or_download_with`], which locates, downloads if allowed, then loads.

use std::path::Path;

use super::datasets::{DatasetName, LabelLayout};
use super::download::download_dataset;
use super::idx::{IdxData, read_idx, read_idx_header};
use super::locate::{cache_dir_of, find_all_of, locate, locate_dataset};
use super::{DataError, Dataset, Mnist};

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
/// The files are `opts.dataset`'s ([`DatasetInfo::files`](super::DatasetInfo::files)),
/// or MNIST's [`FILE_NAMES`](super::FILE_NAMES). EMNIST images are transposed back to
/// upright (torchvision returns them as stored, so its EMNIST tensors are the transpose of
/// ours); QMNIST's labels are column 0 of their `[N, 8]` i32 file.
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
    // Every header is checked before any data is read or inflated: a file that claims
    // gigabytes, or is not the file it is named as, costs nothing.
    let limit =
        |split: usize| info.map(|i| (i.title, i.samples[split], ["training", "test"][split]));
    check_split_headers(&train_images, &train_labels, layout, limit(0))?;
    check_split_headers(&test_images, &test_labels, layout, limit(1))?;
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
    // An empty test set would report a loss and accuracy of 0 for every epoch.
    if test.n == 0 {
        return Err(DataError::Idx {
            path: test_images,
            reason: "the test set has no samples; every reported test loss and accuracy would be made up".into(),
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
        if classes == 1 {
            // One output: softmax is always 1, every prediction "correct", the loss 0.
            return Err(DataError::Idx {
                path: train_labels,
                reason: "every training label is 0, so the class count inferred from them is 1; \
                         a classifier needs at least 2 classes (check the label file, or give \
                         the class count with --classes)"
                    .into(),
            });
        }
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

/// [`locate`]s and loads the dataset, downloading it into
/// [`cache_dir`](super::cache_dir) first when it is found nowhere, `allow_download` is set
/// and no `explicit` directory was given.
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
/// `opts.dataset` (default MNIST) is searched for
/// ([`search_dirs_of`](super::search_dirs_of)) and downloaded into [`cache_dir_of`]
/// ([`download_dataset`]).
///
/// # Errors
/// As [`locate`] (including [`DataError::NotFound`] when downloading is not allowed),
/// [`download`](fn@super::download) and [`load_dir_with`].
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

/// The magic number of MNIST's image files: unsigned bytes, 3 dimensions.
const IMAGES_MAGIC: u32 = 0x0000_0803;

/// Checks one split's image and label headers before their data is read: the magic
/// numbers (images: unsigned bytes in 3 dimensions `[n, rows, cols]`; labels: integers in
/// 1 dimension, or 2 for QMNIST), the sample counts against each other and, for a named
/// dataset (`release`: its title, this split's sample count and the split's name),
/// against the release's.
///
/// # Errors
/// [`DataError::Idx`] naming the file and the wrong magic number or count;
/// [`DataError::CountMismatch`]; as [`read_idx_header`].
fn check_split_headers(
    images: &Path,
    labels: &Path,
    layout: LabelLayout,
    release: Option<(&str, usize, &str)>,
) -> Result<(), DataError> {
    let fail = |path: &Path, reason: String| DataError::Idx {
        path: path.to_path_buf(),
        reason,
    };
    let dims = |n: usize| {
        if n == 1 {
            "1 dimension".to_string()
        } else {
            format!("{n} dimensions")
        }
    };
    let img = read_idx_header(images)?;
    if img.magic() != IMAGES_MAGIC {
        let detail = if img.type_code != 0x08 {
            format!(
                "images must be unsigned bytes (0x08), file has {} (0x{:02X})",
                img.type_name(),
                img.type_code
            )
        } else {
            format!(
                "images must be 3-D [n, rows, cols], file has {} dimensions",
                img.dims.len()
            )
        };
        return Err(fail(
            images,
            format!(
                "wrong magic number 0x{:08X} ({}, {}): image files start with 0x{IMAGES_MAGIC:08X} (unsigned bytes, 3 dimensions); {detail}",
                img.magic(),
                img.type_name(),
                dims(img.dims.len())
            ),
        ));
    }
    let lab = read_idx_header(labels)?;
    let (want_dims, want_magic) = match layout {
        LabelLayout::Flat => (1, "0x00000801 (u8, 1 dimension [n])"),
        LabelLayout::Column0 => (
            2,
            "0x00000C02 (i32, 2 dimensions [n, 8], the class in column 0)",
        ),
    };
    let integer = matches!(lab.type_code, 0x08 | 0x09 | 0x0B | 0x0C);
    if !integer || lab.dims.len() != want_dims || lab.dims.get(1) == Some(&0) {
        let detail = if !integer {
            format!(
                "labels must be integers (u8 0x08, i8 0x09, i16 0x0B or i32 0x0C), file has {} (0x{:02X})",
                lab.type_name(),
                lab.type_code
            )
        } else if layout == LabelLayout::Flat {
            format!(
                "labels must be 1-D [n], file has {} dimensions {:?}",
                lab.dims.len(),
                lab.dims
            )
        } else {
            format!(
                "QMNIST labels must be 2-D [n, 8] with the class in column 0, file has {} dimensions {:?}",
                lab.dims.len(),
                lab.dims
            )
        };
        return Err(fail(
            labels,
            format!(
                "wrong magic number 0x{:08X} ({}, {}): label files start with {want_magic}; {detail}",
                lab.magic(),
                lab.type_name(),
                dims(lab.dims.len())
            ),
        ));
    }
    if img.dims[0] != lab.dims[0] {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            image_count: img.dims[0],
            labels: labels.to_path_buf(),
            label_count: lab.dims[0],
        });
    }
    if let Some((title, most, split)) = release.filter(|&(_, most, _)| img.dims[0] > most) {
        return Err(fail(
            images,
            format!(
                "the header claims {} samples, but {title}'s {split} set has {most}: not {title}'s file (refused from the header, before reading the data)",
                img.dims[0]
            ),
        ));
    }
    Ok(())
}

/// Reads one split's images and labels (as `i64`, unvalidated), whose headers
/// [`check_split_headers`] accepted (so their counts agree).
fn load_split(
    images_path: &Path,
    labels_path: &Path,
    layout: LabelLayout,
) -> Result<(Split, Vec<i64>), DataError> {
    let split = load_images(images_path)?;
    let labels = load_labels(labels_path, layout)?;
    if split.n != labels.len() {
        return Err(changed(labels_path));
    }
    Ok((split, labels))
}

/// A file whose data do not match the header [`check_split_headers`] passed (it changed
/// in between).
fn changed(path: &Path) -> DataError {
    DataError::Idx {
        path: path.to_path_buf(),
        reason: "changed while it was read (its header no longer matches)".into(),
    }
}

/// Reads an images file whose header [`check_split_headers`] accepted.
fn load_images(path: &Path) -> Result<Split, DataError> {
    let arr = read_idx(path)?;
    match (arr.data, arr.dims.as_slice()) {
        (IdxData::U8(images), &[n, rows, cols]) => Ok(Split {
            images,
            n,
            rows,
            cols,
        }),
        _ => Err(changed(path)),
    }
}

/// Reads a labels file whose header [`check_split_headers`] accepted, as `i64` (QMNIST's
/// column 0).
fn load_labels(path: &Path, layout: LabelLayout) -> Result<Vec<i64>, DataError> {
    let arr = read_idx(path)?;
    // Row stride: 1 for [n]; K for QMNIST's [n, K], whose class is column 0.
    let stride = match (layout, arr.dims.as_slice()) {
        (LabelLayout::Flat, [_]) => 1,
        (LabelLayout::Column0, &[_, k]) if k >= 1 => k,
        _ => return Err(changed(path)),
    };
    let column0 = |v: Vec<i64>| v.into_iter().step_by(stride).collect::<Vec<i64>>();
    Ok(column0(match arr.data {
        IdxData::U8(v) => v.into_iter().map(i64::from).collect(),
        IdxData::I8(v) => v.into_iter().map(i64::from).collect(),
        IdxData::I16(v) => v.into_iter().map(i64::from).collect(),
        IdxData::I32(v) => v.into_iter().map(i64::from).collect(),
        _ => return Err(changed(path)),
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

#[cfg(test)]
mod tests;
