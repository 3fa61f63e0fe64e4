//! The profiler on a real adapter (lavapipe in CI; a missing adapter fails, never skips):
//! every dispatch of every profiled step is measured with a valid, non-zero timestamp pair,
//! the Chrome trace parses and holds one event per dispatch, the kernel times fit in the
//! wall time, the FLOP counts are the hand-computed MNIST ones, the engine's parameters
//! come back unchanged, and the CLI's `profile` / `train --profile` work end to end; the
//! roofline probe's kernels compute what they should, and `profile` and `bench` print its
//! fractions.

use crate::common;

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
        std::slice::from_ref(&cfg),
        data,
    )
    .expect("engine");
    let samples: Vec<u32> = (0..train_set.len() as u32).collect();
    let order = train::epoch_order(&samples, 3, 0);
    let records = train::step_records(samples.len(), BATCH);
    assert_eq!(records.len(), 11, "10 full minibatches and a partial one");
    let member_steps = common::member_steps(records.len(), 1, 0.05, true);
    let profiler = Profiler::new(gpu, mode).expect("profiler");
    let profile = profiler
        .profile_engine(
            &mut engine,
            &order,
            &records,
            &member_steps,
            &ProfileOptions {
                steps,
                warmup_steps: 2,
            },
        )
        .expect("profile");
    let restored = engine.params(0).expect("params") == params;
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
    Command::new(common::wgtrain_bin())
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

/// CPU reference of `roofline_fma` (shaders/roofline.wgsl): invocation `t`'s 8 vec4 chains
/// of `4 · iters` rounds `acc = fma(acc, a, b)` from their documented start values
/// `(t & 1023) + (4·j + c) / 32`, summed `acc0 + acc1 + ... + acc7`. WGSL lets `fma` round
/// once (`fused`, IEEE fma) or after the product and again after the sum.
fn fma_reference(t: u32, iters: u32, (a, b): (f32, f32), fused: bool) -> [f32; 4] {
    let mut sum = [0.0f32; 4];
    for j in 0..8u32 {
        for (c, s) in sum.iter_mut().enumerate() {
            let mut x = (t & 1023) as f32 + (4 * j + c as u32) as f32 / 32.0;
            for _ in 0..4 * iters {
                x = if fused { x.mul_add(a, b) } else { x * a + b };
            }
            *s = if j == 0 { x } else { *s + x };
        }
    }
    sum
}

/// Issue 27 item 3: the copy kernel of the roofline probe copies every bit of its `n4`
/// vec4s (negative zero, subnormals, infinities, ragged counts) and nothing past them.
#[test]
fn roofline_copy_copies_exactly_and_nothing_past_its_end() {
    use wgtrain::gpu::GpuTensor;
    use wgtrain::gpu::kernels::{self, StepRecord, roofline};
    let (gpu, kernels_) = common::gpu();
    // One vec4; 3 workgroups of invocations and a ragged tail; a grid-stride tail.
    for n4 in [1usize, 4 * 64 * 3 + 7, 20_001] {
        let mut src = common::uniform(n4 as u64, 4 * n4, -1e6, 1e6);
        src[0] = -0.0;
        if n4 > 1 {
            src[1] = 1e-40; // subnormal
            src[2] = f32::INFINITY;
            src[3] = f32::MIN_POSITIVE;
        }
        let src_t = GpuTensor::upload(gpu, "test.src", &src, &[4 * n4]).expect("src");
        // One vec4 more than the copy covers, poisoned: it must stay NaN.
        let dst_t = GpuTensor::poisoned(gpu, "test.dst", &[4 * n4 + 4]).expect("dst");
        let d = roofline::copy(gpu, kernels_, "test.copy", n4, src_t.view(), dst_t.view())
            .expect("copy dispatch");
        assert_eq!(
            d.bytes,
            32 * n4 as u64,
            "16 bytes read and 16 written per vec4"
        );
        assert_eq!(d.flops, 0);
        kernels::run(gpu, kernels_, &[d], StepRecord::default(), 1).expect("run");
        let got = dst_t.read(gpu).expect("read");
        for (i, (g, w)) in got.iter().zip(&src).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "n4 {n4}: element {i}: {g} vs {w}");
        }
        assert!(
            got[4 * n4..].iter().all(|v| v.is_nan()),
            "n4 {n4}: wrote past the end"
        );
    }
}

/// Issue 27 item 3: every output of the roofline probe's fma kernel is the CPU's fma chain
/// for that invocation, to the bit (all fused or all unfused), at the probe's own length and
/// past 1,024 invocations (the start values wrap), with a ragged last workgroup.
#[test]
fn roofline_fma_equals_the_cpu_fma_chain() {
    use wgtrain::gpu::GpuTensor;
    use wgtrain::gpu::kernels::{self, StepRecord, roofline};
    let (gpu, kernels_) = common::gpu();
    let ab = wgtrain::gpu::roofline::FMA_AB;
    let placeholder = GpuTensor::upload(gpu, "test.placeholder", &[0.0; 4], &[4]).expect("p");
    for (threads, iters) in [
        (64 * 3 + 5, wgtrain::gpu::roofline::fma_iters(gpu)),
        (1029, 50),
    ] {
        let dst = GpuTensor::poisoned(gpu, "test.fma", &[4 * threads + 4]).expect("dst");
        let d = roofline::fma(
            gpu,
            kernels_,
            "test.fma",
            threads,
            iters,
            ab,
            placeholder.view(),
            dst.view(),
        )
        .expect("fma dispatch");
        // 8 vec4 chains, 4 rounds per pass, 2 FLOP per lane and round.
        assert_eq!(d.flops, 8 * 4 * 4 * 2 * u64::from(iters) * threads as u64);
        kernels::run(gpu, kernels_, &[d], StepRecord::default(), 1).expect("run");
        let got = dst.read(gpu).expect("read");
        assert!(
            got[4 * threads..].iter().all(|v| v.is_nan()),
            "wrote past the end"
        );
        let fused: Vec<f32> = (0..threads as u32)
            .flat_map(|t| fma_reference(t, iters, ab, true))
            .collect();
        let unfused: Vec<f32> = (0..threads as u32)
            .flat_map(|t| fma_reference(t, iters, ab, false))
            .collect();
        if iters == wgtrain::gpu::roofline::fma_iters(gpu) {
            // At the probe's length the two roundings part (at 200 rounds they need not).
            assert!(fused != unfused, "the two roundings must be told apart");
        }
        let same = |want: &[f32]| {
            got[..4 * threads]
                .iter()
                .zip(want)
                .all(|(g, w)| g.to_bits() == w.to_bits())
        };
        let rounding = match (same(&fused), same(&unfused)) {
            (true, true) => "either way (the two agree here)",
            (true, false) => "fused",
            _ => "unfused",
        };
        eprintln!("{}: roofline_fma rounds {rounding}", gpu.info.name);
        if !(same(&fused) || same(&unfused)) {
            let i = (0..4 * threads)
                .find(|&i| got[i].to_bits() != fused[i].to_bits())
                .expect("a difference");
            panic!(
                "threads {threads}, iters {iters}: element {i} is {}, the fused chain gives {} and the unfused {}",
                got[i], fused[i], unfused[i]
            );
        }
    }
}

/// Issue 27 item 3: the probe returns positive, finite peaks measured with the profiler's
/// best clock, from a copy sized by the adapter's limits, and a second call on the same
/// device is the cached result.
#[test]
fn roofline_probe_gives_positive_finite_peaks_once_per_device() {
    use wgtrain::gpu::roofline;
    let (gpu, kernels) = common::gpu();
    let p = roofline::probe(gpu, kernels, None).expect("probe");
    for (what, v) in [("GFLOP/s", p.peaks.gflops), ("GB/s", p.peaks.gbps)] {
        assert!(v.is_finite() && v > 0.0, "{what}: {v}");
    }
    assert_eq!(p.mode, TimingMode::best_for(gpu.features));
    let buffer = roofline::copy_buffer_bytes(gpu);
    assert!(buffer >= 64 << 20 || buffer == gpu.limits.max_storage_buffer_binding_size / 16 * 16);
    assert_eq!(p.copy_bytes, 2 * buffer, "read and written");
    let per_workgroup = 64 * 256 * u64::from(roofline::fma_iters(gpu));
    assert_eq!(p.fma_flops % per_workgroup, 0, "{}", p.fma_flops);
    assert!(p.fma_flops >= roofline::FMA_START_WORKGROUPS * per_workgroup);
    assert_eq!(
        roofline::probe(gpu, kernels, None).expect("again"),
        p,
        "cached"
    );
    let text = p.to_string();
    assert!(text.starts_with("roofline probe: "), "{text}");
}

/// Issue 27 item 3: `wgtrain profile` prints the probe's peaks, each kernel's %FLOP, %BW,
/// arithmetic intensity and bound, and the step's fractions; the trace records the peaks.
#[test]
fn cli_profile_prints_each_kernels_and_the_steps_roofline_fractions() {
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
        "--steps",
        "3",
        "--trace",
        trace.to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("roofline probe: "), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let peaks = lines
        .iter()
        .find(|l| l.starts_with("roofline: peak "))
        .unwrap_or_else(|| panic!("no roofline line: {stdout}"));
    assert!(peaks.contains("GFLOP/s") && peaks.contains("GB/s") && peaks.contains("ridge point"));
    let header = lines
        .iter()
        .position(|l| l.starts_with("kernel"))
        .expect("a header");
    let cols: Vec<&str> = lines[header].split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 4..],
        ["%FLOP", "%BW", "FLOP/B", "bound"],
        "{stdout}"
    );
    let rows: Vec<&str> = lines[header + 1..]
        .iter()
        .take_while(|l| !l.starts_with("total"))
        .copied()
        .collect();
    assert!(!rows.is_empty(), "{stdout}");
    for row in rows {
        let w: Vec<&str> = row.split_whitespace().collect();
        let [flop, bw, intensity, bound] = w[w.len() - 4..] else {
            unreachable!("four cells")
        };
        assert!(flop.ends_with('%') && bw.ends_with('%'), "{row}");
        assert!(
            intensity.parse::<f64>().is_ok() || intensity == "inf",
            "{row}"
        );
        assert!(["memory", "compute"].contains(&bound), "{row}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("per step, roofline: ") && l.contains("-bound")),
        "{stdout}"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&trace).expect("trace"))
        .expect("the trace parses");
    let p = &v["otherData"]["roofline_peaks"];
    assert!(p["gflops"].as_f64().is_some_and(|g| g > 0.0), "{p}");
    assert!(p["gbps"].as_f64().is_some_and(|g| g > 0.0), "{p}");
}

/// Issue 27 item 3: `wgtrain bench --json` adds the epoch's roofline to each GPU row
/// (null on the CPU path, which has no probe) and keeps every earlier field. The model's
/// FLOP per sample is the hand-computed 818,176 of 784-256-10, and the fractions, bound and
/// least epoch time follow from the row's own rates and peaks.
#[test]
fn cli_bench_json_adds_the_epochs_roofline_fractions() {
    let dir = std::env::var("MNIST_DIR").expect("MNIST_DIR");
    let out = Command::new(common::wgtrain_bin())
        .args([
            "bench",
            // The GPU path (lavapipe) and the CPU path: --device auto takes the CPU alone
            // on a software adapter.
            "--device",
            "gpu",
            "--json",
            "--samples",
            "640",
            "--batch-sizes",
            "64",
            "--data",
            &dir,
        ])
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .expect("run wgtrain");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let row = |path: &str| rows.iter().find(|r| r["path"] == path).expect("a row");
    let f = |r: &Value, k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k}: {r}"));
    for r in [row("gpu"), row("cpu")] {
        for old in [
            "batch_size",
            "samples",
            "precision",
            "epoch_seconds",
            "samples_per_second",
            "dispatches_per_step",
            "matmul_gflops",
        ] {
            assert!(r.get(old).is_some(), "{old} is gone: {r}");
        }
        assert_eq!(r["flops_per_sample"], 818_176);
        let want = 818_176.0 * 640.0 / f(r, "epoch_seconds") / 1e9;
        assert!((f(r, "achieved_gflops") - want).abs() <= 1e-9 * want, "{r}");
    }
    let g = row("gpu");
    let (pf, pb) = (f(g, "peak_gflops"), f(g, "peak_gbps"));
    assert!(pf > 0.0 && pb > 0.0, "{g}");
    let (af, ab) = (f(g, "achieved_gflops"), f(g, "achieved_gbps"));
    assert!(
        (f(g, "flop_fraction") - af / pf).abs() <= 1e-9 * af / pf,
        "{g}"
    );
    assert!(
        (f(g, "bandwidth_fraction") - ab / pb).abs() <= 1e-9 * ab / pb,
        "{g}"
    );
    let intensity = af / ab;
    assert!(
        (f(g, "arithmetic_intensity") - intensity).abs() <= 1e-9 * intensity,
        "{g}"
    );
    let bound = if intensity >= pf / pb {
        "compute"
    } else {
        "memory"
    };
    assert_eq!(g["bound"], bound, "{g}");
    let secs = f(g, "epoch_seconds");
    let least = (af * secs / pf).max(ab * secs / pb);
    assert!(
        (f(g, "roofline_epoch_seconds") - least).abs() <= 1e-9 * least,
        "{g}"
    );
    let c = row("cpu");
    for k in [
        "peak_gflops",
        "peak_gbps",
        "achieved_gbps",
        "flop_fraction",
        "bandwidth_fraction",
        "arithmetic_intensity",
        "bound",
        "roofline_epoch_seconds",
    ] {
        assert!(c[k].is_null(), "{k} on the CPU path: {c}");
    }
}

/// `bench --gpu-only` (the device kit's benches, where a population of 256 on the CPU
/// would take minutes) prints the GPU rows and no CPU row, `--population` included, and
/// under `--device auto` takes the GPU path, saying why.
#[test]
fn cli_bench_gpu_only_prints_no_cpu_row() {
    let dir = std::env::var("MNIST_DIR").expect("MNIST_DIR");
    let out = Command::new(common::wgtrain_bin())
        .args([
            "bench",
            "--gpu-only",
            "--json",
            "--samples",
            "640",
            "--batch-sizes",
            "64",
            "--population",
            "2",
            "--data",
            &dir,
        ])
        .env("XDG_RUNTIME_DIR", "/tmp")
        .output()
        .expect("run wgtrain");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("device: gpu (--device auto: --gpu-only applies to the GPU path)"),
        "{stderr}"
    );
    let rows: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    // One epoch row and one population row, both on the GPU.
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r["path"] == "gpu"), "{rows:?}");
    assert_eq!(rows[0]["batch_size"], 64, "{}", rows[0]);
    assert_eq!(rows[1]["members"], 2, "{}", rows[1]);
}
