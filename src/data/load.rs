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
mod tests {
    use super::*;
    use crate::data::idx::{IdxArray, gzip};
    use crate::data::mnist::FILE_NAMES;
    use crate::data::test_util::{
        assert_msg, i32_labels, images, labels, real_dir, s, write_all, write_named_gz, write_valid,
    };
    use std::fs;

    const TRAIN_COUNTS: [usize; 10] = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949];
    const TEST_COUNTS: [usize; 10] = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009];

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

    /// Regression (issue 25, item 11): an images file with a wrong magic number (here
    /// 0x0000080B: u8 in 11 dimensions, the "dimensions" being whatever bytes follow) was
    /// reported as a dimensions overflow. The magic number is checked first and named, as
    /// is a labels file given where images belong.
    #[test]
    fn regression_a_wrong_magic_number_is_named_not_an_overflow() {
        let dir = tempfile::tempdir().unwrap();
        let [img, lab, ..] = write_valid(dir.path());
        let mut bad = vec![0, 0, 0x08, 0x0B];
        bad.extend([0xFF; 44]);
        bad.extend([0; 100]);
        std::fs::write(&img, &bad).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert_msg(
            &err,
            &[
                &s(&img),
                "wrong magic number 0x0000080B (u8, 11 dimensions): image files start with 0x00000803",
            ],
        );
        assert!(!err.to_string().contains("overflow"), "{err}");
        std::fs::copy(&lab, &img).unwrap();
        assert_msg(
            &load_dir(dir.path()).unwrap_err(),
            &["wrong magic number 0x00000801 (u8, 1 dimension): image files start with 0x00000803"],
        );
    }

    /// Regression (issue 25, item 10): a few-MB gzip whose IDX header claimed 4.3 GB was
    /// inflated whole (4.2 GB of memory) before it was refused. The headers are read first:
    /// images whose count differs from their labels', or exceed the named dataset's, are
    /// refused from the headers (the tiny files here claim 4.3 GB of images).
    #[test]
    fn regression_headers_claiming_gigabytes_are_refused_before_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let [img, lab, ..] = write_valid(dir.path());
        let n = 5_500_000u32;
        let header = |dims: &[u32], code: u8| {
            let mut b = vec![0, 0, code, dims.len() as u8];
            dims.iter().for_each(|d| b.extend(d.to_be_bytes()));
            b
        };
        let mut bomb = header(&[n, 28, 28], 0x08);
        bomb.resize(bomb.len() + (1 << 20), 0);
        std::fs::write(&img, gzip(&bomb)).unwrap();
        let err = load_dir(dir.path()).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::CountMismatch {
                    image_count: 5_500_000,
                    label_count: 6,
                    ..
                }
            ),
            "{err:?}"
        );
        // With labels that agree, a named dataset's release size refuses it.
        let mut many = header(&[n], 0x08);
        many.resize(many.len() + 1000, 0);
        std::fs::write(&lab, gzip(&many)).unwrap();
        let err = load_dir_with(
            dir.path(),
            &LoadOptions {
                dataset: Some(DatasetName::FashionMnist),
                classes: None,
            },
        )
        .unwrap_err();
        assert_msg(
            &err,
            &[
                &s(&img),
                "the header claims 5500000 samples, but Fashion-MNIST's training set has 60000",
            ],
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

    /// Regression: an empty test set trained and reported "test loss 0.0000 acc 0.00%".
    #[test]
    fn regression_empty_test_set_refused() {
        let dir = tempfile::tempdir().unwrap();
        let [_, _, test_img, _] = write_all(
            dir.path(),
            [
                &images(2, 2, 2),
                &labels(&[0, 1]),
                &images(0, 2, 2),
                &labels(&[]),
            ],
        );
        assert_msg(
            &load_dir(dir.path()).unwrap_err(),
            &[&s(&test_img), "test set has no samples"],
        );
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
