//! `train` as a newcomer meets it: which device it trains on without `--device`, the data
//! path checked before the adapter is opened, hints for a `sweep`-style list and a
//! `torch.save`-style file name, and `--fold-normalize`'s refusals.

use std::path::Path;

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::*;

/// Regression (issue 26, item 9): `--data README.md` said "no such directory", and the
/// data path was checked only after the adapter was opened, so a bad `--data` with a bad
/// `--adapter` reported the adapter. The data is now checked first and named as it is.
#[test]
fn a_data_path_that_is_a_file_is_refused_as_such_before_the_adapter() {
    let readme = Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
    let readme = readme.to_str().unwrap();
    assert_usage_error(
        &["train", "--device", "cpu", "--data", readme],
        &format!(
            "invalid data = {readme}: is not a directory; give the directory holding the four MNIST files"
        ),
    );
    assert_usage_error(
        &[
            "train",
            "--device",
            "gpu",
            "--adapter",
            "no-such-gpu-xyz",
            "--data",
            "/nonexistent/mnist",
        ],
        "invalid data = /nonexistent/mnist: no such directory",
    );
}

/// Issue 26, item 11: `train --lr 0.1,0.2` (a list, as `sweep` takes) says that lists
/// belong to `sweep`; `--save m.pt` warns that the file is safetensors, not a torch.save
/// pickle, and still saves it.
#[test]
fn train_hints_at_sweep_for_lists_and_warns_about_a_torch_save_name() {
    assert_usage_error(
        &["train", "--lr", "0.1,0.2"],
        "to try several, give the list or range to `wgtrain sweep`",
    );
    assert_usage_error(&["train", "--epochs", "1:3"], "`wgtrain sweep`");
    // A plain bad value keeps its own reason.
    assert_usage_error(&["train", "--lr", "abc"], "invalid float literal");
    let tmp = tempfile::tempdir().unwrap();
    let model = tmp.path().join("m.pt");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--train-subset",
        "256",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--quiet",
        "--save",
        model.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "warning: {} will be a safetensors file, not a torch.save pickle",
            model.display()
        )),
        "{err}"
    );
    assert!(
        wgtrain::checkpoint::load(&model).is_ok(),
        "the file is safetensors"
    );
}

/// Issue 26, item 14: without `--device`, `train` takes the GPU path only on a hardware
/// adapter; where every adapter is a software one (this repository's CI: lavapipe, 10-16x
/// slower than the CPU path) it trains on the CPU, saying so on one line, and never opens
/// the adapter. `--device gpu` still runs the GPU path on lavapipe, with no such line.
#[test]
fn train_without_device_takes_the_cpu_path_unless_there_is_a_hardware_gpu() {
    let adapters = wgtrain::gpu::candidate_adapters(&Default::default()).unwrap();
    let hardware = adapters
        .iter()
        .any(|a| !wgtrain::gpu::is_software_adapter(&a.info));
    let data = mnist_dir();
    let run = |device: &[&str]| {
        let mut args = vec![
            "train",
            "--data",
            &data,
            "--train-subset",
            "256",
            "--epochs",
            "1",
            "--hidden",
            "8",
            "--quiet",
        ];
        args.extend_from_slice(device);
        let o = wgtrain(&args);
        let err = stderr(&o);
        assert!(o.status.success(), "{args:?}: {err}");
        err
    };
    let err = run(&[]);
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("device: ")).collect();
    assert_eq!(lines.len(), 1, "one line says which device: {err}");
    if hardware {
        assert!(
            lines[0].starts_with("device: gpu (--device auto: a hardware GPU adapter, "),
            "{err}"
        );
        assert!(err.contains("dispatches per step"), "{err}");
    } else {
        assert!(
            lines[0].starts_with("device: cpu (--device auto: no hardware GPU adapter; "),
            "{err}"
        );
        assert!(err.contains("stages per step; cpu: "), "{err}");
        assert!(!err.contains("adapter: "), "no adapter was opened: {err}");
    }
    let err = run(&["--device", "gpu"]);
    assert!(!err.contains("device: "), "{err}");
    assert!(
        err.contains("adapter: ") && err.contains("dispatches per step"),
        "{err}"
    );
}

/// `--fold-normalize` folds `--normalize` into saved weights: without either it would do
/// nothing, and is refused.
#[test]
fn fold_normalize_without_normalize_or_a_save_exits_2() {
    assert_usage_error(
        &["train", "--fold-normalize", "--save", "m.safetensors"],
        "invalid fold-normalize = true: applies to runs with --normalize only",
    );
    assert_usage_error(
        &["train", "--fold-normalize", "--normalize"],
        "applies to --save, --save-best and --save-init only",
    );
}
