//! Tests of [`super`]: loading, the header checks, the class count and its guards.

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
