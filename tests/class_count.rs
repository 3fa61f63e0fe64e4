//! Issue 10, item 3: the class count. It used to be the largest label + 1, so one stray
//! label (one sample labelled 10 in a 10-class set, absent from the test set) silently
//! trained an 11-class model, and `eval` printed a meaningless accuracy for a checkpoint
//! with more outputs than the data has classes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use wgtrain::data::{self, ClassOrigin, DataError, IdxArray, IdxData, LoadOptions};

const NAMES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Writes a dataset of 1x1 images with these labels in the standard MNIST layout and
/// returns the paths of the train and test label files.
fn write_set(dir: &Path, train: &[u8], test: &[u8]) -> (PathBuf, PathBuf) {
    let images = |n: usize| IdxArray {
        dims: vec![n, 1, 1],
        data: IdxData::U8((0..n).map(|i| (i % 256) as u8).collect()),
    };
    let labels = |v: &[u8]| IdxArray {
        dims: vec![v.len()],
        data: IdxData::U8(v.to_vec()),
    };
    let arrays = [
        images(train.len()),
        labels(train),
        images(test.len()),
        labels(test),
    ];
    for (name, arr) in NAMES.iter().zip(&arrays) {
        std::fs::write(dir.join(name), data::encode_idx(arr)).unwrap();
    }
    (dir.join(NAMES[1]), dir.join(NAMES[3]))
}

/// 2000 training samples of classes 0..9, sample 1234 relabelled 10; 100 test samples of
/// classes 0..9. One stray sample is 0.05% of the training set, under the 0.1% threshold.
fn stray_label_set(dir: &Path) -> (PathBuf, PathBuf) {
    let mut train: Vec<u8> = (0..2000).map(|i| (i % 10) as u8).collect();
    train[1234] = 10;
    let test: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    write_set(dir, &train, &test)
}

fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("the binary runs")
}

#[track_caller]
fn assert_exit_2(args: &[&str], needles: &[&str]) {
    let o = wgtrain(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{args:?}: stderr {err}");
    for needle in needles {
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
    }
    let errors = err.lines().filter(|l| l.starts_with("error")).count();
    assert_eq!(errors, 1, "one error line: {err}");
}

/// Regression (issue 10.3): one sample labelled 10 in a 10-class set, absent from the test
/// set, made an 11-class model. Inference now refuses it, naming the file, the label and
/// the sample index, and suggesting --classes.
#[test]
fn regression_one_stray_label_absent_from_the_test_set_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (train_labels, test_labels) = stray_label_set(dir.path());
    let err = data::load_dir(dir.path()).unwrap_err();
    match &err {
        DataError::RareClass {
            train,
            test,
            label,
            indices,
            total,
            classes,
        } => {
            assert_eq!((train, test), (&train_labels, &test_labels));
            assert_eq!((*label, indices.as_slice()), (10, &[1234][..]));
            assert_eq!((*total, *classes), (2000, 11));
        }
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    for needle in [
        &train_labels.display().to_string(),
        &test_labels.display().to_string(),
        "label 10 is on only 1 of 2000 training samples (sample 1234)",
        "--classes 11",
        "fix or remove those samples",
    ] {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }
    assert!(err.is_bad_input());
}

/// The threshold is a share, and a class the test set uses is never refused: 3 of 2000
/// samples (0.15%) absent from the test set load, and so does 1 of 2000 present in it.
#[test]
fn rare_classes_above_the_share_or_in_the_test_set_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut train: Vec<u8> = (0..2000).map(|i| (i % 10) as u8).collect();
    train[7] = 10;
    train[8] = 10;
    train[9] = 10;
    let test: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    write_set(dir.path(), &train, &test);
    assert_eq!(data::load_dir(dir.path()).unwrap().classes, 11);

    let mut train: Vec<u8> = (0..2000).map(|i| (i % 10) as u8).collect();
    train[5] = 10;
    let mut test: Vec<u8> = (0..100).map(|i| (i % 10) as u8).collect();
    test[3] = 10;
    write_set(dir.path(), &train, &test);
    assert_eq!(data::load_dir(dir.path()).unwrap().classes, 11);
}

/// With the class count given, a label at or above it is refused naming the file and the
/// sample index; classes without samples are allowed.
#[test]
fn classes_given_refuse_labels_beyond_them_by_file_and_index() {
    let dir = tempfile::tempdir().unwrap();
    let (train_labels, _) = stray_label_set(dir.path());
    let opts = LoadOptions {
        classes: Some(10),
        ..LoadOptions::default()
    };
    let err = data::load_dir_with(dir.path(), &opts).unwrap_err();
    assert!(
        matches!(
            &err,
            DataError::LabelOutOfRange { path, index: 1234, label: 10, classes: 10, origin: ClassOrigin::Given }
                if *path == train_labels
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    for needle in [
        &train_labels.display().to_string(),
        "sample 1234 has label 10",
        "0..10",
        "--classes",
    ] {
        assert!(msg.contains(needle), "message lacks {needle:?}: {msg}");
    }

    let opts = LoadOptions {
        classes: Some(12),
        ..LoadOptions::default()
    };
    let m = data::load_dir_with(dir.path(), &opts).unwrap();
    assert_eq!(m.classes, 12);
    assert_eq!(m.train.labels[1234], 10);
}

/// The CLI: the stray label exits 2 before training; --classes 10 exits 2 naming the index;
/// --classes 11 trains.
#[test]
fn train_refuses_a_stray_label_and_takes_classes() {
    let dir = tempfile::tempdir().unwrap();
    let (train_labels, _) = stray_label_set(dir.path());
    let d = dir.path().to_str().unwrap();
    let base = [
        "train", "--data", d, "--device", "cpu", "--epochs", "1", "--quiet",
    ];
    let train_file = train_labels.display().to_string();
    assert_exit_2(
        &base,
        &[&train_file, "label 10", "sample 1234", "--classes 11"],
    );
    let mut with_10 = base.to_vec();
    with_10.extend(["--classes", "10"]);
    assert_exit_2(&with_10, &[&train_file, "sample 1234 has label 10"]);
    let mut with_11 = base.to_vec();
    with_11.extend(["--classes", "11"]);
    let o = wgtrain(&with_11);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_exit_2(&["train", "--classes", "1"], &["--classes", "at least 2"]);
}

/// Regression (issue 10.3): a 20-output checkpoint on 10-class data printed 4.21% and
/// exited 0. `eval` now refuses any output count other than the data's classes, exit 2.
#[test]
fn regression_eval_refuses_a_checkpoint_whose_outputs_differ_from_the_classes() {
    let dir = tempfile::tempdir().unwrap();
    let train: Vec<u8> = (0..200).map(|i| (i % 10) as u8).collect();
    let test: Vec<u8> = (0..50).map(|i| (i % 10) as u8).collect();
    write_set(dir.path(), &train, &test);
    let model = dir.path().join("m.safetensors");
    let spec = wgtrain::model::MlpSpec::new(1, &[], 20).unwrap();
    let norm = wgtrain::model::Normalization::UNIT;
    wgtrain::checkpoint::save(&model, &spec, &spec.init(1), norm).unwrap();
    let (m, d) = (model.to_str().unwrap(), dir.path().to_str().unwrap());
    let args = ["eval", "--model", m, "--data", d, "--device", "cpu"];
    assert_exit_2(&args, &["has 20 outputs", "has 10 classes", "--classes 20"]);
    // With the class count given as 20, the user says the data has 20 classes: it runs.
    let mut given = args.to_vec();
    given.extend(["--classes", "20"]);
    let o = wgtrain(&given);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Regression: a set whose labels are all 0 inferred one class, and one output trains to a
/// "100%" accuracy at loss 0. Refused, naming the file and the fix.
#[test]
fn labels_that_are_all_zero_are_refused_not_trained_to_100_percent() {
    let dir = tempfile::tempdir().unwrap();
    write_set(dir.path(), &[0; 50], &[0; 10]);
    let msg = data::load_dir(dir.path()).unwrap_err().to_string();
    assert!(
        msg.contains("every training label is 0") && msg.contains("--classes"),
        "{msg}"
    );
}
