//! Issue 14, item 1: every named dataset end to end through the command line, on small
//! files written in its real layout (MNIST-named `.gz` files; EMNIST's split files as its
//! archive's `gzip/` folder holds them, images transposed; QMNIST's `[n, 8]` i32 labels),
//! and every download failing clearly offline (`WGTRAIN_MIRROR` at a closed local port).

use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};

use flate2::Compression;
use flate2::write::GzEncoder;
use wgtrain::data::datasets::{ALL, LabelLayout, Packaging};
use wgtrain::data::{DatasetName, IdxArray, IdxData, encode_idx};

fn wgtrain(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes 40 train / 12 test 4x4 images of `name` as `<file>.gz`, labels cycling through
/// the dataset's classes (from 1 for EMNIST letters, whose class 0 is N/A), in the label
/// layout the dataset uses.
fn write_dataset(dir: &Path, name: DatasetName) {
    let info = name.info();
    let classes = info.class_names.len() as i32;
    let first = if name == DatasetName::EmnistLetters {
        1
    } else {
        0
    };
    let label_of = |i: usize| first + (i as i32 % (classes - first));
    let images = |n: usize| IdxArray {
        dims: vec![n, 4, 4],
        data: IdxData::U8((0..n * 16).map(|i| (i * 37 % 256) as u8).collect()),
    };
    let labels = |n: usize| match info.labels {
        LabelLayout::Flat => IdxArray {
            dims: vec![n],
            data: IdxData::U8((0..n).map(|i| label_of(i) as u8).collect()),
        },
        LabelLayout::Column0 => IdxArray {
            dims: vec![n, 8],
            data: IdxData::I32(
                (0..n)
                    .flat_map(|i| [label_of(i), 0, i as i32, 0, 0, 0, 0, 0])
                    .collect(),
            ),
        },
    };
    let arrays = [images(40), labels(40), images(12), labels(12)];
    for (file, arr) in info.files.iter().zip(&arrays) {
        std::fs::write(dir.join(format!("{file}.gz")), gzip(&encode_idx(arr))).unwrap();
    }
}

/// A base URL on which nothing listens.
fn dead_mirror() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}

/// Each name trains one epoch on the CPU path from its own files, with its class count
/// (EMNIST letters: 27, N/A at 0, as torchvision) and its normalisation.
#[test]
fn every_dataset_trains_end_to_end_on_files_in_its_real_layout() {
    for name in ALL {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), name);
        let d = dir.path().to_str().unwrap();
        let args = [
            "train",
            "--dataset",
            name.as_str(),
            "--data",
            d,
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--hidden",
            "8",
            "--normalize",
        ];
        let o = wgtrain(&args, &[]);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{name}: {err}");
        let classes = name.info().class_names.len();
        let line = format!("data: {name} {d} (40 train, 12 test, 4x4 inputs, {classes} classes)");
        assert!(err.contains(&line), "{name}: stderr lacks {line:?}: {err}");
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("epoch   1"), "{name}: {out}");
    }
}

/// Without network, `wgtrain download NAME` exits 1 with one error line naming the URL it
/// tried and how to get the files by hand.
#[test]
fn every_download_fails_clearly_offline() {
    for name in ALL {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("out");
        let dead = dead_mirror();
        let o = wgtrain(
            &["download", name.as_str(), "--dir", dest.to_str().unwrap()],
            &[("WGTRAIN_MIRROR", &dead)],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{name}: {err}");
        let url = match name.info().packaging {
            Packaging::GzFiles { .. } => format!("{dead}{}.gz", name.info().files[0]),
            Packaging::Zip { archive, .. } => format!("{dead}{archive}"),
        };
        let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(lines.len(), 1, "{name}: {err}");
        for needle in [
            format!("error: could not download {url}"),
            "No network?".into(),
        ] {
            assert!(
                lines[0].contains(&needle),
                "{name}: lacks {needle:?}: {err}"
            );
        }
        assert!(!dest.exists(), "{name}: a failed download leaves no folder");
    }
}

/// The download deadline (issue 25, item 10) is set by `WGTRAIN_DOWNLOAD_TIMEOUT`: a value
/// that is not a positive number of seconds is refused before anything is fetched or
/// created (exit 2, one line naming the variable).
#[test]
fn a_bad_download_deadline_is_refused_before_any_download() {
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    for bad in ["abc", "0", "-5"] {
        let o = wgtrain(
            &["download", "mnist", "--dir", dest.to_str().unwrap()],
            &[
                ("WGTRAIN_DOWNLOAD_TIMEOUT", bad),
                ("WGTRAIN_MIRROR", &dead_mirror()),
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {err}");
        assert!(
            err.contains(&format!(
                "error: invalid WGTRAIN_DOWNLOAD_TIMEOUT = {bad}: must be a positive number of seconds"
            )),
            "{err}"
        );
        assert!(!dest.exists());
    }
}

/// An unknown name is refused by clap (exit 2) with the valid names; a named dataset
/// found nowhere names the folders searched and the download command.
#[test]
fn unknown_or_missing_datasets_say_what_to_do() {
    let o = wgtrain(&["train", "--dataset", "cifar10"], &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("valid: mnist, fashion-mnist, kmnist"), "{err}");

    let tmp = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args([
            "train",
            "--dataset",
            "kmnist",
            "--no-download",
            "--device",
            "cpu",
        ])
        .current_dir(tmp.path())
        .env("XDG_CACHE_HOME", tmp.path().join("cache"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    for needle in [
        "Kuzushiji-MNIST files not found",
        "data/kmnist",
        "cache/wgtrain/kmnist",
        "--dataset kmnist --data DIR",
        "wgtrain download kmnist --dir DIR",
    ] {
        assert!(err.contains(needle), "lacks {needle:?}: {err}");
    }
}
