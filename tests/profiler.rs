//! The profiler on a real adapter (lavapipe in CI; a missing adapter fails, never skips):
//! every dispatch of every profiled step is measured with a valid, non-zero timestamp pair,
//! the Chrome trace parses and holds one event per dispatch, the kernel times fit in the
//! wall time, the FLOP counts are the hand-computed MNIST ones, the engine's parameters
//! come back unchanged, and the CLI's `profile` / `train --profile` work end to end.

mod common;

use std::path::Path;
use std::process::Command;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;
use wgtrain::data::{Dataset, IdxArray, IdxData, encode_idx};
use wgtrain::engine::Engine;
use wgtrain::gpu::MatmulVariant;
use wgtrain::gpu::profiler::{InvalidDelta, Profile, ProfileOptions, Profiler, TimingMode};
use wgtrain::model::MlpSpec;
use wgtrain::{RunConfig, train};

const BATCH: usize = 64;
const HIDDEN: usize = 256;
const CLASSES: usize = 10;

/// `n` seeded 28x28 images with labels cycling through the classes.
fn synthetic(n: usize, seed: u64) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Dataset {
        images: (0..n * 784).map(|_| rng.random_range(0..=255u8)).collect(),
        labels: (0..n as u32).map(|i| i % CLASSES as u32).collect(),
        rows: 28,
        cols: 28,
    }
}

/// Profiles `steps` steps of a 784-256-10 MLP at batch 64 on a synthetic MNIST-shaped set
/// of 10 full minibatches plus a partial one (so the profiler must skip the partial one and
/// cycle through the others). Returns the profile and whether the parameters came back.
fn profile_mnist_shapes(mode: Option<TimingMode>, steps: usize) -> (Profile, bool) {
    let gpu = &common::gpu().0;
    let train_set = synthetic(10 * BATCH + 20, 1);
    let test_set = synthetic(100, 2);
    let spec = MlpSpec::new(784, &[HIDDEN], CLASSES).expect("spec");
    let params = spec.init(7);
    let cfg = RunConfig {
        hidden: vec![HIDDEN],
        batch_size: BATCH,
        seed: 7,
        ..RunConfig::default()
    };
    let matmul = MatmulVariant::default_for(gpu).into();
    let data = common::data(&train_set, &test_set);
    // Unfused (`Fusions::NONE`): the step of one launch per operation that the labels and
    // flop counts below describe.
    let (gpu, kernels) = common::gpu();
    let mut engine = wgtrain::gpu::engine::GpuEngine::new(
        gpu,
        kernels,
        matmul,
        wgtrain::gpu::Fusions::NONE,
        &cfg,
        data,
    )
    .expect("engine");
    let samples: Vec<u32> = (0..train_set.len() as u32).collect();
    let order = train::epoch_order(&samples, 3, 0);
    let records = train::step_records(samples.len(), BATCH, 0, |_| 0.05);
    assert_eq!(records.len(), 11, "10 full minibatches and a partial one");
    let profiler = Profiler::new(gpu, mode).expect("profiler");
    let profile = profiler
        .profile_engine(
            &mut engine,
            &order,
            &records,
            &ProfileOptions {
                steps,
                warmup_steps: 2,
            },
        )
        .expect("profile");
    let restored = engine.params().expect("params") == params;
    (profile, restored)
}

/// The checks every timing mode must pass.
fn check_profile(profile: &Profile, steps: usize) {
    let d = profile.dispatches.len();
    // The engine runs the unfused step (`Fusions::NONE`).
    assert_eq!(d, 9, "one hidden layer, unfused: 9 dispatches");
    // The last layer's bias gradient is the loss launch's (no train.layer1.bias_grad).
    let labels: Vec<&str> = profile
        .dispatches
        .iter()
        .map(|i| i.label.as_str())
        .collect();
    assert_eq!(
        labels,
        [
            "train.gather_normalize",
            "train.layer0.forward",
            "train.layer1.forward",
            "train.softmax_cross_entropy",
            "train.layer1.weight_grad",
            "train.layer1.input_grad",
            "train.layer0.weight_grad",
            "train.layer0.bias_grad",
            "sgd_update",
        ],
        "the step's launches, in order"
    );
    assert_eq!(profile.steps, steps);
    assert_eq!(
        profile.timings.len(),
        steps * d,
        "one measurement per dispatch"
    );
    for (i, t) in profile.timings.iter().enumerate() {
        assert_eq!((t.step, t.dispatch), (i / d, i % d), "step-major order");
        match t.duration_ns {
            Ok(ns) => assert!(ns > 0.0 && ns.is_finite(), "{i}: {ns} ns"),
            // Regression: timestamps read back as zero when the resolve and the copy share
            // one encoder on some drivers; every pass, not only the first, must be timed.
            Err(InvalidDelta::NotWritten { start, end }) => {
                panic!(
                    "{} ({:?}): measurement {i} (step {}, {}) read back as zero: start {start}, end {end}",
                    profile.mode, profile.adapter, t.step, profile.dispatches[t.dispatch].label
                )
            }
            Err(e) => panic!("{}: measurement {i} is invalid: {e}", profile.mode),
        }
    }
    let busy = profile.busy_ns();
    assert!(busy > 0.0);
    assert!(
        busy <= profile.wall_ns,
        "kernel times {busy} ns exceed the wall time {} ns",
        profile.wall_ns
    );
    let s = profile.summary();
    assert_eq!((s.invalid, s.measurements), (0, steps * d));
    assert!(s.gap_per_step_ms >= 0.0);
    assert!(s.busy_min_ms <= s.busy_median_ms && s.busy_median_ms <= s.busy_max_ms);
    let rows = profile.rows();
    assert_eq!(rows.len(), d);
    assert!(
        rows.windows(2).all(|w| w[0].total_ms >= w[1].total_ms),
        "sorted by total"
    );
    assert!(rows.iter().all(|r| r.calls == steps && r.invalid == 0));
    assert!(
        profile
            .notes
            .iter()
            .all(|n| !n.contains("not trustworthy") && !n.contains("zero")),
        "{:?}",
        profile.notes
    );

    // The trace: valid JSON, exactly one complete event per dispatch of the profiled steps.
    let text = serde_json::to_string(&profile.trace_json()).expect("serialise");
    let v: Value = serde_json::from_str(&text).expect("the trace parses as JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents array");
    let kernel_events: Vec<&Value> = events.iter().filter(|e| e["cat"] == "kernel").collect();
    assert_eq!(kernel_events.len(), steps * d);
    let mut kernel_us = 0.0;
    for (e, t) in kernel_events.iter().zip(&profile.timings) {
        assert_eq!(e["ph"], "X");
        let dur = e["dur"].as_f64().expect("dur");
        assert!(dur > 0.0, "{e}");
        assert!(e["ts"].as_f64().expect("ts") >= 0.0, "{e}");
        kernel_us += dur;
        let info = &profile.dispatches[t.dispatch];
        let name = e["name"].as_str().expect("name");
        assert!(
            name.contains(&info.kernel) && name.contains(&info.label),
            "{name}"
        );
        assert_eq!(e["args"]["shape"], info.shape.as_str());
        assert_eq!(e["args"]["step"], t.step);
    }
    assert!(kernel_us * 1e3 <= profile.wall_ns * (1.0 + 1e-9));
    let host: Vec<&Value> = events.iter().filter(|e| e["cat"] == "host").collect();
    assert!(!host.is_empty(), "host spans");
    assert!(
        host.iter().all(|e| e["tid"] != kernel_events[0]["tid"]),
        "own track"
    );
    assert!(
        host.iter()
            .all(|e| e["dur"].as_f64().is_some_and(|d| d >= 0.0))
    );
    assert_eq!(v["otherData"]["timing"], profile.mode.name());
}

#[test]
fn every_available_timing_mode_measures_every_dispatch_of_every_step() {
    let (gpu, _) = common::gpu();
    let best = TimingMode::best_for(gpu.features);
    let (auto, restored) = profile_mnist_shapes(None, 13);
    assert_eq!(auto.mode, best, "auto picks the best mode this adapter has");
    assert!(restored, "profiling leaves the parameters as they were");
    check_profile(&auto, 13);
    if best == TimingMode::PerDispatch {
        assert_eq!(
            auto.timestamp_period_ns,
            Some(f64::from(gpu.queue.get_timestamp_period()))
        );
    }
    for mode in [
        TimingMode::PerDispatch,
        TimingMode::PerPass,
        TimingMode::HostTimed,
    ] {
        if !gpu.features.contains(mode.required_features()) {
            assert!(
                Profiler::new(gpu, Some(mode)).is_err(),
                "{mode} must be refused"
            );
            continue;
        }
        let (p, _) = profile_mnist_shapes(Some(mode), 3);
        assert_eq!(p.mode, mode);
        check_profile(&p, 3);
        if mode.is_host_timed() {
            assert!(p.table().contains("host-timed"));
            assert!(p.timestamp_period_ns.is_none());
        }
    }
}

#[test]
fn lavapipe_has_per_dispatch_timestamps() {
    let (gpu, _) = common::gpu();
    if gpu.info.name.contains("llvmpipe") {
        assert_eq!(TimingMode::best_for(gpu.features), TimingMode::PerDispatch);
    }
}

#[test]
fn flop_counts_in_the_table_are_the_hand_computed_mnist_ones() {
    let (profile, _) = profile_mnist_shapes(None, 2);
    let rows = profile.rows();
    let flops = |label: &str| {
        rows.iter()
            .find(|r| r.label == label)
            .unwrap_or_else(|| panic!("no row {label}"))
            .flops_per_call
    };
    // 784-256-10 at batch 64: C[M, N] = A[M, K] · B[K, N] costs 2·M·N·K.
    assert_eq!(flops("train.layer0.forward"), 2 * 64 * 256 * 784);
    assert_eq!(flops("train.layer0.forward"), 25_690_112);
    assert_eq!(flops("train.layer1.forward"), 2 * 64 * 10 * 256); // 327,680
    assert_eq!(flops("train.layer1.weight_grad"), 2 * 10 * 256 * 64);
    assert_eq!(flops("train.layer1.input_grad"), 2 * 64 * 256 * 10);
    assert_eq!(flops("train.layer0.weight_grad"), 2 * 256 * 784 * 64);
    let table = profile.table();
    assert!(table.contains("25,690,112"), "{table}");
    assert!(table.contains("327,680"), "{table}");
    for r in rows.iter().filter(|r| r.kernel.starts_with("matmul")) {
        let want = r.flops_per_call as f64 / (r.mean_us * 1e3);
        match r.throughput {
            wgtrain::gpu::profiler::Throughput::GflopPerS(g) => {
                assert!(
                    (g - want).abs() <= 1e-9 * want,
                    "{}: {g} vs {want}",
                    r.label
                );
            }
            t => panic!("{}: matmuls are rated in GFLOP/s, got {t:?}", r.label),
        }
    }
    assert!(
        rows.iter()
            .filter(|r| !r.kernel.starts_with("matmul"))
            .all(|r| matches!(r.throughput, wgtrain::gpu::profiler::Throughput::GbPerS(_))),
        "other kernels are rated in GB/s"
    );
}

/// Writes a synthetic MNIST-shaped dataset as the four IDX files.
fn write_idx_dataset(dir: &Path, n_train: usize, n_test: usize) {
    let train_set = synthetic(n_train, 11);
    let test_set = synthetic(n_test, 12);
    let names = wgtrain::data::FILE_NAMES;
    for (set, (images, labels)) in [
        (&train_set, (names[0], names[1])),
        (&test_set, (names[2], names[3])),
    ] {
        let img = IdxArray {
            dims: vec![set.len(), 28, 28],
            data: IdxData::U8(set.images.clone()),
        };
        let lab = IdxArray {
            dims: vec![set.len()],
            data: IdxData::U8(set.labels.iter().map(|&l| l as u8).collect()),
        };
        std::fs::write(dir.join(images), encode_idx(&img)).expect("write images");
        std::fs::write(dir.join(labels), encode_idx(&lab)).expect("write labels");
    }
}

fn wgtrain(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wgtrain"))
        .args(args)
        .output()
        .expect("run wgtrain")
}

#[test]
fn cli_profile_prints_the_table_and_writes_a_chrome_trace() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_idx_dataset(tmp.path(), 200, 50);
    let data = tmp.path().to_str().expect("utf-8 path");
    let trace = tmp.path().join("trace.json");
    let out = wgtrain(&[
        "profile",
        "--data",
        data,
        "--no-download",
        "--hidden",
        "32",
        "--batch-size",
        "16",
        "--kernels",
        "register",
        "--steps",
        "4",
        "--warmup-steps",
        "1",
        "--fuse",
        "none",
        "--trace",
        trace.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("kernel") && stdout.contains("train.layer0.forward"),
        "{stdout}"
    );
    assert!(stdout.contains("per step"), "{stdout}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&trace).expect("trace written"))
        .expect("the trace parses");
    let kernels = v["traceEvents"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["cat"] == "kernel" && e["ph"] == "X")
        .count();
    assert_eq!(kernels, 4 * 9, "4 steps of 9 dispatches (--fuse none)");

    let out = wgtrain(&[
        "profile",
        "--data",
        data,
        "--no-download",
        "--hidden",
        "32",
        "--batch-size",
        "16",
        "--kernels",
        "register",
        "--steps",
        "2",
        "--host-timing",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("[host-timed]"), "{stdout}");

    // Usage errors exit with 2 before any work.
    for args in [
        &["profile", "--device", "cpu", "--data", data][..],
        &["profile", "--data", data, "--steps", "0"][..],
        &[
            "profile",
            "--data",
            data,
            "--host-timing",
            "--timing",
            "per-pass",
        ][..],
        &["train", "--data", data, "--profile-steps", "5"][..],
        &["train", "--device", "cpu", "--data", data, "--profile"][..],
    ] {
        let out = wgtrain(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `train --profile` prints the table first and then trains exactly as without it: the
/// profiled steps' updates are undone. Without the flag nothing of the profiler runs.
#[test]
fn train_with_profile_prints_the_table_and_trains_identically() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write_idx_dataset(tmp.path(), 200, 50);
    let data = tmp.path().to_str().expect("utf-8 path");
    let run = |profile: bool| {
        let metrics = tmp.path().join(format!("metrics-{profile}.jsonl"));
        let mut args = vec![
            "train",
            "--device",
            "gpu",
            "--data",
            data,
            "--no-download",
            "--hidden",
            "32",
            "--batch-size",
            "16",
            "--kernels",
            "register",
            "--epochs",
            "2",
            "--momentum",
            "0.9",
            "--quiet",
            "--metrics",
            metrics.to_str().expect("utf-8 path"),
        ];
        if profile {
            args.extend(["--profile", "--profile-steps", "3"]);
        }
        let out = wgtrain(&args);
        let stdout = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let losses: Vec<(f64, f64)> = std::fs::read_to_string(&metrics)
            .expect("metrics")
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).expect("json line");
                (
                    v["train_loss"].as_f64().expect("train_loss"),
                    v["test_loss"].as_f64().expect("test_loss"),
                )
            })
            .collect();
        (stdout, losses)
    };
    let (plain_out, plain) = run(false);
    let (profiled_out, profiled) = run(true);
    assert!(!plain_out.contains("per step"), "{plain_out}");
    assert!(
        profiled_out.contains("train.layer0.forward"),
        "{profiled_out}"
    );
    assert!(profiled_out.contains("per step"), "{profiled_out}");
    assert_eq!(plain.len(), 2);
    assert_eq!(
        plain, profiled,
        "profiling before training must not change the training"
    );
}
