//! The command line as a user meets it: bad arguments exit with code 2 and a one-line
//! error before any work; bad data names the file and the problem; a saved model
//! evaluates to the accuracy training reported.

use std::path::Path;
use std::process::{Command, Output};

fn wgtrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn mnist_dir() -> String {
    std::env::var("MNIST_DIR").expect("set MNIST_DIR to the directory with the four MNIST files")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn assert_usage_error(args: &[&str], needle: &str) {
    let o = wgtrain(args);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{args:?} should exit 2; stderr: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: stderr lacks {needle:?}: {err}"
    );
    // Mesa's Wayland client prints an XDG_RUNTIME_DIR line on headless machines; not ours.
    let error_lines = err
        .lines()
        .filter(|l| l.starts_with("error") && !l.contains("XDG_RUNTIME_DIR"))
        .count();
    assert_eq!(error_lines, 1, "{args:?}: expected one error line: {err}");
}

#[test]
fn bad_arguments_exit_2_before_any_work() {
    assert_usage_error(&["train", "--batch-size", "0"], "--batch-size");
    assert_usage_error(&["train", "--epochs", "0"], "--epochs");
    assert_usage_error(&["train", "--lr", "nan"], "--lr");
    assert_usage_error(&["train", "--lr=-0.1"], "--lr");
    assert_usage_error(&["train", "--lr", "inf"], "--lr");
    assert_usage_error(&["train", "--weight-decay=-1e-4"], "--weight-decay");
    // A negative value as a separate word is the flag's value, not an unknown argument.
    assert_usage_error(&["train", "--lr", "-1"], "must be a finite number > 0");
    assert_usage_error(
        &["train", "--weight-decay", "-1e-4"],
        "must be a finite number >= 0",
    );
    assert_usage_error(&["train", "--hidden", "0"], "--hidden");
    assert_usage_error(&["train", "--hidden", "256,0"], "--hidden");
    assert_usage_error(&["train", "--lr-schedule", "warp"], "valid: constant");
    assert_usage_error(&["train", "--early-stop-patience", "3"], "--val-split");
}

/// Flags that only mean something on the GPU are refused with --device cpu rather than
/// ignored; a mistyped hidden size is refused by its parameter count, not an allocation
/// abort; a minibatch over the adapter's binding limit names the buffer, the bytes and the
/// limit, and exits 2 like any argument that does not fit.
#[test]
fn arguments_that_cannot_apply_or_cannot_fit_exit_2() {
    let dir = mnist_dir();
    assert_usage_error(
        &[
            "train",
            "--data",
            &dir,
            "--device",
            "cpu",
            "--kernels",
            "tiled",
        ],
        "applies to --device gpu only",
    );
    assert_usage_error(
        &["bench", "--data", &dir, "--device", "cpu", "--adapter", "x"],
        "applies to --device gpu only",
    );
    assert_usage_error(
        &["train", "--data", &dir, "--hidden", "1000000000"],
        "795000000010 parameters",
    );
    assert_usage_error(
        &["train", "--data", "/nonexistent/mnist", "--no-download"],
        "invalid data = /nonexistent/mnist: no such directory",
    );
    // Full-batch MNIST's input is 188,160,000 bytes: over lavapipe's 128 MiB binding limit.
    let gpu = wgtrain::gpu::Gpu::new(&Default::default()).expect("an adapter (lavapipe)");
    let limit = gpu.limits.max_storage_buffer_binding_size;
    if limit < 188_160_000 {
        assert_usage_error(
            &["train", "--data", &dir, "--batch-size", "60000"],
            &format!("needs 188160000 bytes, over this adapter's limit of {limit} bytes"),
        );
    } else {
        eprintln!("note: this adapter binds {limit} bytes; the full-batch refusal is not tested");
    }
}

/// `--kernels subgroup` where the adapter's subgroups are not 8 wide is refused, naming what
/// the adapter has: lavapipe at 512 bits (`LP_NATIVE_VECTOR_WIDTH=512`) has subgroups of 16.
#[test]
fn subgroup_kernel_on_an_adapter_without_subgroups_of_8_exits_2() {
    let gpu = wgtrain::gpu::Gpu::new(&Default::default()).expect("an adapter (lavapipe)");
    if !gpu.info.name.contains("llvmpipe") {
        eprintln!("note: not lavapipe; LP_NATIVE_VECTOR_WIDTH cannot change its subgroups");
        return;
    }
    let dir = mnist_dir();
    let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(["train", "--data", &dir, "--kernels", "subgroup"])
        .env("LP_NATIVE_VECTOR_WIDTH", "512")
        .output()
        .expect("the binary runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("has subgroups of 16..16"), "{err}");
    assert!(err.contains("--kernels auto"), "{err}");
}

/// A backend that has no adapter here names the adapters the other backends have; a
/// WGPU_BACKEND naming no backend is refused rather than searching nothing.
#[test]
fn backends_that_match_nothing_exit_2_with_what_exists() {
    if cfg!(target_os = "linux") {
        assert_usage_error(
            &["train", "--backend", "metal", "--epochs", "1"],
            "Adapters on other backends: \"llvmpipe",
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(["train", "--epochs", "1"])
        .env("WGPU_BACKEND", "foo")
        .output()
        .expect("the binary runs");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("invalid WGPU_BACKEND = foo: names no backend"),
        "{err}"
    );
}

#[test]
fn batch_larger_than_the_dataset_exits_2() {
    let dir = mnist_dir();
    assert_usage_error(
        &["train", "--data", &dir, "--batch-size", "60001"],
        "number of training samples (60000)",
    );
}

#[test]
fn unknown_adapter_exits_2_and_lists_the_adapters() {
    let dir = mnist_dir();
    assert_usage_error(
        &[
            "train",
            "--data",
            &dir,
            "--adapter",
            "no-such-gpu-xyz",
            "--epochs",
            "1",
        ],
        "Adapters available",
    );
}

#[test]
fn missing_data_lists_what_was_looked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let o = wgtrain(&[
        "train",
        "--data",
        tmp.path().to_str().unwrap(),
        "--no-download",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("t10k-labels-idx1-ubyte"),
        "{err}"
    );
}

#[test]
fn truncated_idx_file_names_the_file_and_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let src = mnist_dir();
    for f in [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ] {
        std::fs::copy(Path::new(&src).join(f), tmp.path().join(f)).unwrap();
    }
    // A raw labels file cut short replaces the gzipped one (raw is preferred when both exist).
    let mut raw = vec![0, 0, 8, 1, 0, 0, 0x27, 0x10];
    raw.extend(vec![1u8; 500]);
    std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte"), raw).unwrap();
    let o = wgtrain(&[
        "train",
        "--data",
        tmp.path().to_str().unwrap(),
        "--device",
        "cpu",
        "--epochs",
        "1",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("t10k-labels-idx1-ubyte") && err.contains("truncated"),
        "{err}"
    );
}

/// Train one CPU epoch, save, and evaluate the file on the GPU and the CPU: both report the
/// test accuracy the training run printed.
#[test]
fn saved_model_evaluates_to_the_reported_accuracy_on_both_devices() {
    let dir = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.safetensors");
    let metrics = tmp.path().join("m.jsonl");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &dir,
        "--epochs",
        "1",
        "--lr",
        "0.1",
        "--hidden",
        "64",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let line = std::fs::read_to_string(&metrics).unwrap();
    let v: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    for key in [
        "epoch",
        "lr",
        "train_loss",
        "train_accuracy",
        "test_loss",
        "test_accuracy",
        "epoch_seconds",
        "samples_per_second",
    ] {
        assert!(v.get(key).is_some(), "metrics lack {key}: {line}");
    }
    let acc = v["test_accuracy"].as_f64().unwrap();
    for device in ["gpu", "cpu"] {
        let o = wgtrain(&[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &dir,
            "--device",
            device,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let out = String::from_utf8_lossy(&o.stdout);
        let printed: f64 = out
            .split("accuracy ")
            .nth(1)
            .and_then(|s| s.trim().trim_end_matches('%').parse().ok())
            .expect("accuracy printed");
        assert!(
            (printed / 100.0 - acc).abs() < 1.5e-4,
            "{device}: eval {printed}% vs training {acc}"
        );
    }
}

/// Regression: a bad --save path used to fail only after the whole training run.
#[test]
fn unwritable_output_paths_fail_before_any_work() {
    let empty = tempfile::tempdir().unwrap();
    let data = empty.path().to_str().unwrap();
    // The data directory is empty: reaching the data would give a different error.
    assert_usage_error(
        &[
            "train",
            "--data",
            data,
            "--save",
            "/nonexistent/dir/m.safetensors",
        ],
        "does not exist",
    );
    assert_usage_error(
        &["train", "--data", data, "--save", "/dev/null"],
        "not a regular file",
    );
    assert_usage_error(
        &["profile", "--data", data, "--trace", "/nonexistent/t.json"],
        "does not exist",
    );
}

/// Regression: `bench --samples 0` panicked.
#[test]
fn bench_rejects_empty_epochs_and_zero_batches() {
    assert_usage_error(&["bench", "--samples", "0"], "samples");
    assert_usage_error(
        &["bench", "--batch-sizes", "64,0", "--device", "cpu"],
        "batch size",
    );
}

/// Regression: `--val-split 0.0001` on 2,000 samples held out nothing, and silently
/// disabled --save-best and early stopping.
#[test]
fn a_validation_split_that_holds_out_nothing_is_refused() {
    let dir = mnist_dir();
    assert_usage_error(
        &[
            "train",
            "--data",
            &dir,
            "--device",
            "cpu",
            "--train-subset",
            "2000",
            "--val-split",
            "0.0001",
        ],
        "holds out no sample",
    );
}

/// `eval` refuses a model with fewer outputs than the test labels need.
#[test]
fn eval_refuses_a_model_with_too_few_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.safetensors");
    let spec = wgtrain::model::MlpSpec::new(784, &[8], 5).unwrap();
    wgtrain::checkpoint::save(
        &model,
        &spec,
        &spec.init(1),
        wgtrain::model::Normalization::UNIT,
    )
    .unwrap();
    let dir = mnist_dir();
    assert_usage_error(
        &[
            "eval",
            "--model",
            model.to_str().unwrap(),
            "--data",
            &dir,
            "--device",
            "cpu",
        ],
        "has 5 outputs",
    );
}
