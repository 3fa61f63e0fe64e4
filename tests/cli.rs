//! The command line as a user meets it: bad arguments exit with code 2 and a one-line
//! error before any work; bad data names the file and the problem; a saved model
//! evaluates to the accuracy training reported.

use std::path::Path;
use std::process::Command;

#[path = "common/cli.rs"]
mod cli_support;

use cli_support::*;

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
    // Regression: 1e-50 trained at lr 0 and 1e39 became infinity in f32.
    assert_usage_error(&["train", "--lr", "1e-50"], "within f32's range");
    assert_usage_error(&["train", "--weight-decay", "1e39"], "within f32's range");
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
/// Two outputs on one file: the later write silently replaced the earlier (metrics lines
/// overwritten by the checkpoint's bytes). Refused before any work, whatever the spelling.
#[test]
fn two_outputs_on_one_file_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("out.bin");
    let b = dir.path().join(".").join("out.bin");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--save",
        a.to_str().unwrap(),
        "--metrics",
        b.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("is also given as another output"), "{err}");
    assert!(!a.exists(), "nothing was written");
}

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
        "applies to --device gpu only; drop --adapter or use --device gpu",
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
            &[
                "train",
                "--device",
                "gpu",
                "--data",
                &dir,
                "--batch-size",
                "60000",
            ],
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
        .args([
            "train",
            "--device",
            "gpu",
            "--data",
            &dir,
            "--kernels",
            "subgroup",
        ])
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
            &[
                "train",
                "--device",
                "gpu",
                "--backend",
                "metal",
                "--epochs",
                "1",
            ],
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

/// A missing dataset file is a bad input found before the work: exit 2 (issue 10, item 13).
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
    assert_eq!(o.status.code(), Some(2), "{err}");
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
    // A malformed input file is found before the work starts: exit 2, like a bad argument.
    assert_eq!(o.status.code(), Some(2), "{err}");
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

/// Regression (a newcomer's report): the population rows of `bench --device cpu` gave 10
/// "dispatches" (the CPU engine's stage count) where the single-run rows give none; on the
/// CPU path they are `null` in JSON, `-` in the table, as the single-run rows are.
#[test]
fn bench_population_rows_on_the_cpu_have_no_dispatches() {
    let dir = mnist_dir();
    let env = [("XDG_RUNTIME_DIR", "/tmp")];
    let args = [
        "bench",
        "--data",
        &dir,
        "--device",
        "cpu",
        "--samples",
        "100",
        "--batch-sizes",
        "64",
        "--population",
        "2",
    ];
    let json: Vec<&str> = args.iter().copied().chain(["--json"]).collect();
    let o = wgtrain_env(&json, &env);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let pop: Vec<_> = rows.iter().filter(|r| r["members"] == 2).collect();
    assert_eq!(pop.len(), 1, "{rows:?}");
    assert!(pop[0]["dispatches_per_step"].is_null(), "{rows:?}");
    let o = wgtrain_env(&args, &env);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let row = table
        .lines()
        .find(|l| l.split_whitespace().take(3).eq(["cpu", "64", "2"]))
        .unwrap_or_else(|| panic!("no population row: {table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[cells.len() - 2], "-", "{row}");
}

/// Regression (a newcomer's report): `--learning-rate`, PyTorch's and Keras's word, was
/// refused with clap's tip pointing at `--halving-eta`. It is an alias of `--lr`.
#[test]
fn learning_rate_is_an_alias_of_lr() {
    let dir = mnist_dir();
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &dir,
        "--train-subset",
        "300",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--learning-rate",
        "0.05",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("lr constant (base_lr=0.05)"), "{err}");
    let o = wgtrain(&["sweep", "--learning-rate", "0.1:0.01", "--data", &dir]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0 < low < high"), "{}", stderr(&o));
}

/// Regression: `bench --samples 100` with the default batch sizes (64,128,512) failed the
/// whole bench on 128; a batch size larger than the epoch is now skipped with a note, and
/// only refused when every size is. The CPU rows have no dispatches: `-` in the table,
/// `null` in JSON.
#[test]
fn bench_skips_batch_sizes_larger_than_the_epoch() {
    let dir = mnist_dir();
    let env = [("XDG_RUNTIME_DIR", "/tmp")];
    let o = wgtrain_env(
        &[
            "bench",
            "--data",
            &dir,
            "--device",
            "cpu",
            "--samples",
            "100",
            "--json",
        ],
        &env,
    );
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("skipping batch size 128"), "{err}");
    assert!(err.contains("skipping batch size 512"), "{err}");
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["batch_size"], 64);
    assert_eq!(rows[0]["path"], "cpu");
    assert!(rows[0]["dispatches_per_step"].is_null(), "{rows:?}");
    let o = wgtrain_env(
        &[
            "bench",
            "--data",
            &dir,
            "--device",
            "cpu",
            "--samples",
            "100",
            "--batch-sizes",
            "64",
        ],
        &env,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    let row = out
        .lines()
        .find(|l| l.starts_with("cpu"))
        .expect("a cpu row");
    assert_eq!(row.split_whitespace().nth(4), Some("-"), "{out}");
    assert_usage_error(
        &[
            "bench",
            "--data",
            &dir,
            "--device",
            "cpu",
            "--samples",
            "100",
            "--batch-sizes",
            "128,512",
        ],
        "every batch size exceeds the samples per epoch (100)",
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

/// Regression: `--classes 4294967296` aborted with a 100 GB allocation (the class names
/// were built before any size check), and 1e9 ran for minutes.
#[test]
fn regression_a_huge_class_count_is_refused_up_front() {
    let dir = mnist_dir();
    assert_usage_error(
        &[
            "train",
            "--data",
            &dir,
            "--device",
            "cpu",
            "--classes",
            "4294967296",
        ],
        "must be at most 1000000",
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

/// Copies the four real MNIST files into `dir`.
/// Regression (issue 10, item 13): `--data` on an empty directory, `eval` with a
/// wrong-input-size model or a missing model file, and `plot` on a missing file exited 1
/// while their siblings exited 2. One rule, one table: 2 for bad arguments and bad input
/// files found before the work starts, 1 for failures during the work; always one error
/// line that names the problem.
#[test]
fn one_exit_code_rule_for_bad_arguments_bad_inputs_and_failures() {
    let mnist = mnist_dir();
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let p = |name: &str| t.join(name).to_str().unwrap().to_owned();
    std::fs::create_dir(t.join("empty")).unwrap();
    std::fs::create_dir(t.join("bad-labels")).unwrap();
    copy_mnist(&t.join("bad-labels"));
    // A raw labels file cut short shadows the gzipped one (raw is preferred).
    let mut raw = vec![0, 0, 8, 1, 0, 0, 0x27, 0x10];
    raw.extend(vec![1u8; 500]);
    std::fs::write(t.join("bad-labels/t10k-labels-idx1-ubyte"), raw).unwrap();
    write_model(&t.join("wrong-inputs.safetensors"), 100, 10);
    write_model(&t.join("five-outputs.safetensors"), 784, 5);
    std::fs::write(t.join("garbage.safetensors"), b"not safetensors").unwrap();
    std::fs::write(t.join("bad.jsonl"), "{\"epoch\": 1}\nnot json\n").unwrap();
    std::fs::create_dir(t.join("not-a-sweep")).unwrap();
    let (empty, bad_labels) = (p("empty"), p("bad-labels"));
    let small = [
        "--device",
        "cpu",
        "--quiet",
        "--train-subset",
        "1000",
        "--batch-size",
        "100",
        "--hidden",
        "16",
        "--epochs",
        "20",
    ];
    let with = |head: &[&str], tail: &[&str]| -> Vec<String> {
        head.iter()
            .chain(tail)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    /// argv, extra environment, expected exit code, a fragment of the error line.
    type Case<'a> = (Vec<String>, Vec<(&'a str, String)>, i32, &'a str);
    #[rustfmt::skip]
    let cases: Vec<Case> = vec![
        // Bad arguments.
        (with(&["train", "--batch-size", "0"], &[]), vec![], 2, "--batch-size"),
        (with(&["train", "--gamma", "0.5", "--step-size", "1"], &[]), vec![], 2, "applies to --lr-schedule"),
        (with(&["train", "--metrics", "/nonexistent/dir/m.jsonl"], &[]), vec![], 2, "does not exist"),
        (with(&["train", "--data", "/nonexistent/mnist"], &[]), vec![], 2, "no such directory"),
        // Bad input directories and files, found before the work starts.
        (with(&["train", "--device", "cpu", "--data", &empty, "--no-download"], &[]), vec![], 2, "is missing train-images-idx3-ubyte"),
        (with(&["train", "--device", "cpu", "--data", &bad_labels], &[]), vec![], 2, "truncated"),
        (with(&["train", "--device", "cpu", "--no-download"], &[]), vec![("MNIST_DIR", "/nonexistent".into())], 2, "MNIST_DIR=/nonexistent is not a directory"),
        (with(&["train", "--device", "cpu"], &[]), vec![("MNIST_DIR", empty.clone())], 2, "is missing train-images-idx3-ubyte"),
        (with(&["eval", "--device", "cpu", "--data", &mnist, "--model", &p("wrong-inputs.safetensors")], &[]), vec![], 2, "expects 100 inputs but the test images have 784"),
        (with(&["eval", "--device", "cpu", "--data", &mnist, "--model", &p("five-outputs.safetensors")], &[]), vec![], 2, "has 5 outputs"),
        (with(&["eval", "--device", "cpu", "--data", &mnist, "--model", &p("missing.safetensors")], &[]), vec![], 2, "reading the model (--model)"),
        (with(&["eval", "--device", "cpu", "--data", &mnist, "--model", &p("garbage.safetensors")], &[]), vec![], 2, "garbage.safetensors"),
        (with(&["plot", &p("missing.jsonl"), "--out", &p("plots")], &[]), vec![], 2, "reading the metrics file"),
        (with(&["plot", &p("bad.jsonl"), "--out", &p("plots")], &[]), vec![], 2, "not an epoch record"),
        (with(&["plot", &p("not-a-sweep"), "--out", &p("plots")], &[]), vec![], 2, "trials.json"),
        // Failures during the work.
        (with(&["train", "--data", &mnist, "--lr", "1e30"], &small), vec![], 1, "Lower the learning rate (--lr)"),
        (with(&["train", "--data", &mnist, "--momentum", "1.5"], &small), vec![], 1, "likely cause is --momentum 1.5"),
        // Regression: a huge weight decay was blamed on the learning rate alone.
        (with(&["train", "--data", &mnist, "--weight-decay", "1e30"], &small), vec![], 1, "likely cause is --weight-decay 1e30 with --lr 0.01"),
    ];
    for (args, env, code, needle) in &cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let o = wgtrain_env(&args, &env);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(*code), "{env:?} {args:?}: {err}");
        assert!(
            err.contains(needle),
            "{args:?}: stderr lacks {needle:?}: {err}"
        );
        assert_eq!(
            error_lines(&err),
            1,
            "{args:?}: expected one error line: {err}"
        );
    }
    assert!(!t.join("plots").exists(), "a refused plot wrote nothing");
}

/// Regression (issue 10, item 8): `--metrics` into a missing directory or onto a directory
/// failed only after the adapter, the data and autotuning (exit 1); `--plot` created
/// missing parents, even at the filesystem root, while `--save` refused. Every output flag
/// of every command now follows one rule, checked before any work (the data directory
/// here is empty and no adapter line is printed: neither was reached), exit 2.
#[test]
fn every_output_flag_follows_one_path_rule_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    std::fs::create_dir(t.join("empty")).unwrap();
    let data = t.join("empty").to_str().unwrap().to_owned();
    let missing = |name: &str| t.join("no/such").join(name).to_str().unwrap().to_owned();
    let dir = t.to_str().unwrap().to_owned();
    let root = "/wgtrain-output-rule-test";
    let val = ["--val-split", "0.1"];
    // (command and its other flags, the output flag, whether it names a file)
    let flags: [(&[&str], &str, bool); 11] = [
        (&["train"], "--metrics", true),
        (&["train"], "--save", true),
        (&["train", val[0], val[1]], "--save-best", true),
        (&["train"], "--plot", false),
        (&["profile"], "--trace", true),
        (&["sweep"], "--out", false),
        (&["sweep"], "--save-best", true),
        (&["lr-find"], "--out", false),
        (&["plot", "metrics.jsonl"], "--out", false),
        (&["download", "mnist"], "--dir", false),
        (&["train", "--device", "cpu"], "--metrics", true),
    ];
    for (cmd, flag, is_file) in flags {
        let mut cases = vec![
            (
                missing("out"),
                "does not exist (parent directories are never created)",
            ),
            (
                root.to_owned(),
                "refusing to write into the filesystem root",
            ),
        ];
        if is_file {
            cases.push((dir.clone(), "is a directory, not a regular file"));
        }
        for (path, needle) in cases {
            let mut args: Vec<&str> = cmd.to_vec();
            args.extend([flag, path.as_str()]);
            if cmd[0] != "download" && cmd[0] != "plot" {
                args.extend(["--data", &data, "--no-download"]);
            }
            let o = wgtrain(&args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains(needle),
                "{args:?}: stderr lacks {needle:?}: {err}"
            );
            assert!(
                err.contains(&format!("cannot write {path}")),
                "{args:?}: the error names the path: {err}"
            );
            assert!(
                !err.contains("adapter:"),
                "{args:?}: the adapter was opened: {err}"
            );
            assert_eq!(error_lines(&err), 1, "{args:?}: {err}");
        }
    }
    assert!(!Path::new(root).exists(), "nothing was created at the root");
    assert!(!t.join("no").exists(), "no parent directory was created");
}

/// Regression (issue 10, item 11): options that the run would ignore are refused: schedule
/// options without their schedule, --warmup-start-factor without warmup, and training-only
/// flags given to `profile` (as --kernels with --device cpu already was).
#[test]
fn options_that_would_do_nothing_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let cases: [(&[&str], &str); 9] = [
        (
            &["train", "--gamma", "0.5"],
            "invalid gamma = 0.5: applies to --lr-schedule step or multistep or exponential only, and this run's schedule is constant",
        ),
        (
            &["train", "--step-size", "1"],
            "invalid step-size = 1: applies to --lr-schedule step only",
        ),
        (
            &["train", "--milestones", "5,3"],
            "invalid milestones = 5,3: applies to --lr-schedule multistep only",
        ),
        (
            &["train", "--lr-schedule", "multistep", "--milestones", "5,3"],
            "3 does not follow 5",
        ),
        (
            &["train", "--lr-schedule", "step", "--eta-min", "0.001"],
            "invalid eta-min = 0.001: applies to --lr-schedule cosine only, and this run's schedule is step",
        ),
        (
            &["train", "--warmup-start-factor", "0.5"],
            "give --warmup-epochs N too",
        ),
        (
            &["profile", "--epochs", "3"],
            "invalid epochs = 3: applies to train only",
        ),
        (
            &["profile", "--lr-schedule", "cosine"],
            "invalid lr-schedule = cosine: applies to train only",
        ),
        (
            &["profile", "--warmup-epochs", "2"],
            "invalid warmup-epochs = 2: applies to train only",
        ),
    ];
    for (args, needle) in cases {
        let mut args = args.to_vec();
        args.extend(["--data", data, "--no-download"]);
        assert_usage_error(&args, needle);
    }
}

/// Regression (issue 25, item 9): `--dampening` with momentum 0, and `--no-decay-bias` or
/// `--decoupled-weight-decay` with weight decay 0, ran with no effect and no word (against
/// the rule for options a run would ignore), and a per-epoch key `--hparam-schedule` does
/// not read (`"momentum": 0.9`) was dropped silently. All are refused before any work; with
/// a momentum or decay for them to act on, they pass (the run goes on to the data).
#[test]
fn regression_sgd_options_and_schedule_keys_a_run_would_ignore_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().to_str().unwrap();
    let out = tmp.path().join("out");
    let schedule = tmp.path().join("s.json");
    std::fs::write(
        &schedule,
        r#"{"epochs": [{"epoch": 1, "lr": 0.1, "weight_decay": 1e-4, "momentum": 0.9}]}"#,
    )
    .unwrap();
    let grid = |extra: &[&str]| -> Vec<String> {
        let out = out.to_str().unwrap();
        [
            "sweep", "--search", "grid", "--lr", "0.01,0.1", "--out", out,
        ]
        .iter()
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
    };
    let train = |extra: &[&str]| -> Vec<String> {
        std::iter::once(&"train")
            .chain(extra)
            .map(|s| s.to_string())
            .collect()
    };
    let cases = [
        (
            train(&["--dampening", "0.5"]),
            "invalid dampening = 0.5: applies to momentum only (v = momentum * v + (1 - dampening) * g), and this run's momentum is 0",
        ),
        (
            train(&["--weight-decay", "0", "--no-decay-bias"]),
            "invalid no-decay-bias = true: changes how weight decay is applied, and this run's weight decay is 0",
        ),
        (
            train(&["--weight-decay", "0", "--decoupled-weight-decay"]),
            "invalid decoupled-weight-decay = true",
        ),
        (
            grid(&["--momentum", "0", "--dampening", "0.3"]),
            "every trial's momentum is 0",
        ),
        (
            grid(&["--weight-decay", "0", "--no-decay-bias"]),
            "every trial's weight decay is 0",
        ),
        (
            vec![
                "sweep".into(),
                "--search".into(),
                "pbt".into(),
                "--dampening".into(),
                "0.3".into(),
                "--out".into(),
                out.to_str().unwrap().into(),
            ],
            "every member's momentum is 0",
        ),
        (
            train(&["--hparam-schedule", schedule.to_str().unwrap()]),
            "unknown field `momentum`",
        ),
        // With something to act on, the options pass: the run stops at the (empty) data
        // directory.
        (
            train(&["--momentum", "0.9", "--dampening", "0.5"]),
            "is missing train-images-idx3-ubyte",
        ),
        (
            train(&["--weight-decay", "1e-4", "--no-decay-bias"]),
            "is missing train-images-idx3-ubyte",
        ),
        (
            grid(&["--momentum", "0,0.9", "--dampening", "0.3"]),
            "is missing train-images-idx3-ubyte",
        ),
        (
            grid(&["--weight-decay", "0,1e-4", "--no-decay-bias"]),
            "is missing train-images-idx3-ubyte",
        ),
    ];
    for (args, needle) in cases {
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.extend(["--device", "cpu", "--data", data, "--no-download"]);
        assert_usage_error(&args, needle);
    }
}

/// Regression: `--lr-schedule multistep --milestones M` with M >= --epochs (and `step`
/// with `--step-size` >= --epochs) never decayed the learning rate, silently. Refused,
/// naming the milestone (or step size) and the epoch count; the main schedule counts the
/// epochs after the warmup.
#[test]
fn decays_that_never_fire_within_the_epochs_are_refused() {
    let ms = ["train", "--lr-schedule", "multistep", "--epochs", "10"];
    let with = |extra: &[&'static str]| [&ms[..], extra].concat();
    assert_usage_error(
        &with(&["--milestones", "3,10"]),
        "milestone 10 is never reached: the run has 10 epochs",
    );
    assert_usage_error(
        &with(&["--milestones", "7", "--warmup-epochs", "3"]),
        "milestone 7 is never reached: the run has 7 epochs after the 3 warmup epochs",
    );
    assert_usage_error(
        &[
            "train",
            "--lr-schedule",
            "step",
            "--step-size",
            "5",
            "--epochs",
            "5",
        ],
        "step size 5 is never reached: the run has 5 epochs",
    );
    assert_usage_error(
        &["train", "--lr-schedule", "step"],
        "step size 30 (the default) is never reached: the run has 10 epochs",
    );
}

/// The positive side of the schedule checks: `--lr-schedule step --gamma 0.5 --step-size 1`
/// halves the learning rate every epoch (StepLR: lr = 0.01 * 0.5^epoch), and momentum >= 1
/// is allowed (as in PyTorch) with a warning.
#[test]
fn schedule_options_with_their_schedule_take_effect() {
    let tmp = tempfile::tempdir().unwrap();
    let metrics = tmp.path().join("m.jsonl");
    let o = wgtrain(&[
        "train",
        "--device",
        "cpu",
        "--data",
        &mnist_dir(),
        "--quiet",
        "--train-subset",
        "500",
        "--hidden",
        "8",
        "--epochs",
        "3",
        "--lr",
        "0.01",
        "--lr-schedule",
        "step",
        "--gamma",
        "0.5",
        "--step-size",
        "1",
        "--momentum",
        "1",
        "--metrics",
        metrics.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("warning: --momentum 1 is >= 1: the velocity never decays"),
        "{err}"
    );
    let lrs: Vec<f64> = std::fs::read_to_string(&metrics)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["lr"]
                .as_f64()
                .unwrap()
        })
        .collect();
    let want = [0.01, 0.005, 0.0025];
    assert_eq!(lrs.len(), 3, "{lrs:?}");
    for (got, want) in lrs.iter().zip(want) {
        // The metrics record the learning rate the f32 kernels used.
        assert!((got - want).abs() <= 1e-6 * want, "{lrs:?}");
    }
}

/// Regression: `--fuse all,none` ran with every fusion, `bench --cpu-only --precision
/// f16` timed f32 CPU epochs, and `bench --population 2 --precision f16` timed an f32
/// population under a header saying f16: each silently ignored a value it was given.
/// Since issue 22 populations train in f16, so the last is no longer refused: it times an
/// f16 population (tests/gpu/precision_f16.rs checks its row).
#[test]
fn contradictory_fuse_lists_and_bench_flags_it_would_ignore_exit_2() {
    assert_usage_error(&["train", "--fuse", "all,none"], "`all` stands alone");
    assert_usage_error(
        &["train", "--fuse", "none", "--fuse", "gather"],
        "`none` stands alone",
    );
    assert_usage_error(
        &["bench", "--cpu-only", "--precision", "f16"],
        "drop --precision f16 or --cpu-only",
    );
    assert_usage_error(&["bench", "--cpu-only", "--fuse", "none"], "--fuse");
}

/// `bench --gpu-only` skips the CPU path: with `--device cpu` (the CPU path alone) or
/// `--cpu-only` nothing would be left to time.
#[test]
fn bench_gpu_only_with_the_cpu_path_alone_exits_2() {
    assert_usage_error(
        &["bench", "--gpu-only", "--device", "cpu"],
        "drop --gpu-only or --device cpu",
    );
    assert_usage_error(&["bench", "--gpu-only", "--cpu-only"], "--cpu-only");
}
