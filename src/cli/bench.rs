//! `wgtrain bench`: one training epoch per batch size on the GPU path and the CPU path,
//! side by side in one run (the machine is shared and noisy, so ratios matter more than
//! absolute times), plus the best matmul throughput of each path and, on the GPU, where
//! the epoch sits under the adapter's roofline ([`wgtrain::gpu::roofline`]). The GPU rows
//! need a GPU path: `--device gpu`, a GPU-only flag, or `--device auto` finding a hardware
//! adapter; otherwise the CPU rows alone. `--gpu-only` leaves out the CPU rows.

use std::time::Instant;

use anyhow::{Context, Result};
use clap::Args;
use serde::Serialize;

use wgtrain::cpu_engine::{CpuEngine, gemm};
use wgtrain::engine::{Engine, RunData};
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::f16 as matmul_f16;
use wgtrain::gpu::kernels::matmul::{BatchDim, Epilogue, MatmulSpec};
use wgtrain::gpu::{Kernels, autotune};
use wgtrain::roofline::{Bound, Peaks, percent, three_digits};
use wgtrain::train::Trainer;
use wgtrain::{Precision, RunConfig};

use super::bench_population;
use super::common::{
    DataArgs, DeviceArgs, DeviceKind, PrecisionArgs, check_data, check_device_args,
    check_precision_args, fusions, load_data, matmul_choice, open_gpu_for, resolve_device, usage,
};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// The GPU rows' precision; the CPU rows are always f32.
    #[command(flatten)]
    pub precision: PrecisionArgs,
    /// Batch sizes to time, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "64,128,512")]
    pub batch_sizes: Vec<usize>,
    /// Training samples per timed epoch (default: all; 6000 when the CI variable is set).
    #[arg(long)]
    pub samples: Option<usize>,
    /// Hidden sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "256")]
    pub hidden: Vec<usize>,
    /// Skip the GPU path.
    #[arg(long)]
    pub cpu_only: bool,
    /// Skip the CPU path: the GPU rows alone (a large `--population` costs minutes on the
    /// CPU). Chooses the GPU path under `--device auto`.
    #[arg(long, conflicts_with = "cpu_only")]
    pub gpu_only: bool,
    /// Print JSON (one object per row) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also time a population of K members (one epoch) against K single-model epochs,
    /// on each path and batch size; several K comma-separated (e.g. 1,8,32).
    #[arg(long, value_name = "K", value_delimiter = ',')]
    pub population: Vec<usize>,
}

/// One row of the comparison.
#[derive(Debug, Serialize)]
struct Row {
    path: &'static str,
    batch_size: usize,
    samples: usize,
    /// Storage precision of the matmul operands: `f32` or `f16` (`--precision`).
    precision: &'static str,
    /// Wall time of one warm epoch, s.
    epoch_seconds: f64,
    samples_per_second: f64,
    /// Compute dispatches per training step on the GPU path; `null` on the CPU path,
    /// which has none.
    dispatches_per_step: Option<usize>,
    /// Best matmul throughput on the first layer's forward shape, GFLOP/s.
    matmul_gflops: f64,
    /// FLOP of training on one sample ([`wgtrain::model::MlpSpec::train_flops_per_sample`]:
    /// the forward and backward matmuls), the same on both paths.
    flops_per_sample: u64,
    /// `flops_per_sample · samples` over the epoch's wall time, GFLOP/s.
    achieved_gflops: f64,
    #[serde(flatten)]
    roofline: RooflineFields,
}

/// Where a GPU epoch sits under the adapter's roofline; every field `null` on the CPU
/// path, which has no probe of its peaks and no byte counts (and on the GPU path when
/// the probe failed, with a warning).
#[derive(Debug, Default, Serialize)]
struct RooflineFields {
    /// The probe's peak f32 throughput, GFLOP/s.
    peak_gflops: Option<f64>,
    /// The probe's peak memory bandwidth, GB/s.
    peak_gbps: Option<f64>,
    /// Bytes the step's dispatches read and write per epoch (a full step's, times
    /// `samples / batch_size`) over the epoch's wall time, GB/s.
    achieved_gbps: Option<f64>,
    /// `achieved_gflops / peak_gflops`.
    flop_fraction: Option<f64>,
    /// `achieved_gbps / peak_gbps`.
    bandwidth_fraction: Option<f64>,
    /// The epoch's FLOP per byte.
    arithmetic_intensity: Option<f64>,
    /// `memory` below the ridge point (peak GFLOP/s / peak GB/s), else `compute`.
    bound: Option<Bound>,
    /// The least time the epoch's FLOP and bytes can take under the two roofs, s.
    roofline_epoch_seconds: Option<f64>,
}

impl RooflineFields {
    /// `flops` FLOP and `bytes` bytes in `seconds` against `peaks`.
    fn new(peaks: Peaks, flops: f64, bytes: f64, seconds: f64) -> RooflineFields {
        let a = peaks.attainment(flops, bytes, seconds);
        RooflineFields {
            peak_gflops: Some(peaks.gflops),
            peak_gbps: Some(peaks.gbps),
            achieved_gbps: a.map(|a| a.gbps),
            flop_fraction: a.map(|a| a.flop_fraction),
            bandwidth_fraction: a.map(|a| a.bandwidth_fraction),
            arithmetic_intensity: a.map(|a| a.intensity),
            bound: a.map(|a| a.bound),
            roofline_epoch_seconds: Some(peaks.best_seconds(flops, bytes)),
        }
    }
}

/// Times one warm epoch of every member of `engine` through the trainer (after one untimed
/// epoch that compiles and warms everything): the training part, evaluation excluded.
fn time_epoch(engine: &mut dyn Engine) -> Result<f64> {
    let mut trainer = Trainer::new(engine)?;
    trainer.set_evaluate_test(false);
    trainer.run_epoch(&mut |_| {})?;
    let mut outcomes = trainer.run_epoch(&mut |_| {})?.into_iter();
    Ok(outcomes
        .next()
        .context("the engine has a member")?
        .into_report()?
        .epoch_seconds)
}

/// GFLOP/s of the CPU engine's product ([`gemm::batched`], every core) on the first
/// layer's forward shape `[B, I] · [I, O]`.
fn cpu_matmul_gflops(batch: usize, i: usize, o: usize) -> f64 {
    let a = vec![0.5f32; batch * i];
    let b = vec![0.25f32; i * o];
    let mut c = vec![0.0f32; batch * o];
    let reps = 20;
    let start = Instant::now();
    for _ in 0..reps {
        gemm::batched(
            gemm::Shape {
                m: batch,
                k: i,
                n: o,
            },
            0..1,
            &a,
            gemm::Operand {
                offset: 0,
                rs: i,
                cs: 1,
                member: 0,
            },
            &b,
            gemm::Operand {
                offset: 0,
                rs: 1,
                cs: i,
                member: 0,
            },
            &mut c,
            gemm::Operand {
                offset: 0,
                rs: o,
                cs: 1,
                member: 0,
            },
        );
    }
    2.0 * (batch * i * o * reps) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Refuses what `bench` would silently ignore: GPU flags (`--precision f16`, `--kernels`,
/// `--fuse`, `--backend`, `--adapter`) with `--cpu-only`, which skips the GPU path.
fn check_bench_only_flags(a: &BenchArgs, precision: Precision) -> Result<()> {
    if a.gpu_only && a.device.device == DeviceKind::Cpu {
        return Err(usage(
            "gpu-only",
            true,
            "skips the CPU path, the only one --device cpu runs; drop --gpu-only or --device cpu",
        ));
    }
    if a.cpu_only {
        let d = &a.device;
        let gpu_flags = [
            ("--precision f16", precision == Precision::F16),
            ("--kernels", d.kernels.is_some()),
            ("--fuse", !d.fuse.is_empty()),
            ("--backend", d.backend.is_some()),
            ("--adapter", d.adapter.is_some()),
        ];
        if let Some((flag, _)) = gpu_flags.iter().find(|f| f.1) {
            return Err(usage(
                "cpu-only",
                true,
                format!("skips the GPU path, which {flag} configures; drop {flag} or --cpu-only"),
            ));
        }
    }
    Ok(())
}

/// Runs `wgtrain bench`.
pub fn bench_command(mut a: BenchArgs) -> Result<()> {
    if a.population.contains(&0) {
        return Err(usage("population", 0, "must be at least 1 member"));
    }
    if a.samples == Some(0) {
        return Err(usage("samples", 0, "must be at least 1"));
    }
    if let Some(&b) = a.batch_sizes.iter().find(|&&b| b == 0) {
        return Err(usage("batch size", b, "must be at least 1"));
    }
    check_device_args(&a.device)?;
    let precision = a.precision.precision.to_lib();
    check_precision_args(&a.device, precision)?;
    check_bench_only_flags(&a, precision)?;
    check_data(&a.data)?;
    if !a.cpu_only {
        a.device = resolve_device(&a.device, precision, a.gpu_only.then_some("--gpu-only"))?;
    }
    // `--device cpu` (or auto choosing the CPU) means the CPU path alone, like --cpu-only.
    let cpu_only = a.cpu_only || a.device.device == DeviceKind::Cpu;
    let gpu = if cpu_only {
        None
    } else {
        Some(open_gpu_for(&a.device, precision)?)
    };
    let mnist = load_data(&a.data, true)?;
    let n = a
        .samples
        .unwrap_or(if std::env::var_os("CI").is_some() {
            6000
        } else {
            mnist.train.len()
        })
        .min(mnist.train.len());
    // A batch size larger than the epoch cannot be timed: skip it (with a note) and time
    // the others; only when none is left is that an error.
    let batch_sizes: Vec<usize> = a.batch_sizes.iter().copied().filter(|&b| b <= n).collect();
    if batch_sizes.is_empty() {
        let sizes = a
            .batch_sizes
            .iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(",");
        return Err(usage(
            "batch-sizes",
            sizes,
            format!(
                "every batch size exceeds the samples per epoch ({n}); pass a batch size of at most {n} or raise --samples"
            ),
        ));
    }
    for &b in a.batch_sizes.iter().filter(|&&b| b > n) {
        note!("note: skipping batch size {b}: it exceeds the {n} samples per epoch");
    }
    let train_set = mnist.train.head(n);
    let test = mnist.test.head(1000);
    let data = RunData {
        train: &train_set,
        test: &test,
        classes: mnist.classes,
        micro_batch: None,
    };
    // Seed 1's initialisation, SGD lr 0.01 with weight decay 1e-4, pixels in [0, 1]; two
    // epochs: one to warm up, one timed.
    let run = |batch_size| RunConfig {
        hidden: a.hidden.clone(),
        batch_size,
        epochs: 2,
        ..RunConfig::default()
    };
    let gpu_run = |batch_size| RunConfig {
        precision,
        ..run(batch_size)
    };
    let spec = run(1).spec(train_set.features(), mnist.classes)?;
    let kernels = gpu.as_ref().map(Kernels::new).transpose()?;
    let peaks = match (&gpu, &kernels) {
        (Some(g), Some(k)) => super::profile::probe_roofline(g, k, None),
        _ => None,
    };
    let epoch_flops = (spec.train_flops_per_sample() * n as u64) as f64;
    let mut rows = Vec::new();
    for &b in &batch_sizes {
        if let (Some(g), Some(k)) = (&gpu, &kernels) {
            // The first layer's forward product, the largest of a step (timed at up to 256 rows).
            let forward = MatmulSpec {
                m: b,
                n: spec.sizes[1],
                k: spec.sizes[0],
                trans_a: false,
                trans_b: true,
                trans_c: false,
                epilogue: Epilogue::BiasRelu,
                batch_dim: BatchDim::M,
            };
            // The kernel this run uses on that shape, timed alone.
            let choice = matmul_choice(&a.device);
            let gflops = match (precision, choice) {
                (Precision::F16, _) => matmul_f16::time_probe(g, k, &forward)?.1,
                (_, MatmulChoice::Auto) => autotune::rank_variants(g, k, &forward)?[0].gflops,
                (_, fixed) => {
                    autotune::time_variant(g, k, &forward, fixed.resolve(g, k, &forward)?)?.gflops
                }
            };
            let cfgs = [gpu_run(b)];
            let mut engine = GpuEngine::new(g, k, choice, fusions(&a.device), &cfgs, data)?;
            let step_bytes: u64 = engine.train_step_dispatches().iter().map(|d| d.bytes).sum();
            let secs = time_epoch(&mut engine)?;
            rows.push(Row {
                path: "gpu",
                batch_size: b,
                samples: n,
                precision: precision.name(),
                epoch_seconds: secs,
                samples_per_second: n as f64 / secs,
                dispatches_per_step: Some(engine.dispatches_per_step()),
                matmul_gflops: gflops,
                flops_per_sample: spec.train_flops_per_sample(),
                achieved_gflops: epoch_flops / secs / 1e9,
                roofline: peaks.map_or_else(RooflineFields::default, |p| {
                    let epoch_bytes = step_bytes as f64 * n as f64 / b as f64;
                    RooflineFields::new(p, epoch_flops, epoch_bytes, secs)
                }),
            });
        }
        if a.gpu_only {
            continue;
        }
        let mut engine = CpuEngine::new(&[run(b)], data)?;
        let secs = time_epoch(&mut engine)?;
        rows.push(Row {
            path: "cpu",
            batch_size: b,
            samples: n,
            precision: Precision::F32.name(),
            epoch_seconds: secs,
            samples_per_second: n as f64 / secs,
            dispatches_per_step: None,
            matmul_gflops: cpu_matmul_gflops(b, spec.sizes[0], spec.sizes[1]),
            flops_per_sample: spec.train_flops_per_sample(),
            achieved_gflops: epoch_flops / secs / 1e9,
            roofline: RooflineFields::default(),
        });
    }
    let mut pop_rows = Vec::new();
    for &b in &batch_sizes {
        for &k in &a.population {
            let configs = bench_population::population_configs(&run(b), k);
            let single = |e: &mut dyn Engine| time_epoch(e);
            if let (Some(g), Some(kern)) = (&gpu, &kernels) {
                let device = wgtrain::Device::Gpu {
                    gpu: g,
                    kernels: kern,
                    matmul: matmul_choice(&a.device),
                    fusions: fusions(&a.device),
                };
                // The GPU's members in the run's precision (f16 populations too).
                let gpu_configs = bench_population::population_configs(&gpu_run(b), k);
                pop_rows.push(bench_population::compare(
                    "gpu",
                    device,
                    &gpu_configs,
                    data,
                    n,
                    &single,
                )?);
            }
            if a.gpu_only {
                continue;
            }
            pop_rows.push(bench_population::compare(
                "cpu",
                wgtrain::Device::Cpu,
                &configs,
                data,
                n,
                &single,
            )?);
        }
    }
    if a.json {
        for r in &rows {
            say!("{}", serde_json::to_string(r)?);
        }
        for r in &pop_rows {
            say!("{}", serde_json::to_string(r)?);
        }
        return Ok(());
    }
    let gpu_precision = match precision {
        Precision::F32 => String::new(),
        p => format!(", GPU matmul operands {p}"),
    };
    say!(
        "MLP {spec}, {n} samples per epoch, one warm epoch each{gpu_precision}; {} FLOP per sample, {} GFLOP per epoch",
        spec.train_flops_per_sample(),
        three_digits(epoch_flops / 1e9)
    );
    if let Some(p) = &peaks {
        say!("GPU roofline: peak {p}");
    }
    say!(
        "{:<5} {:>6} {:>10} {:>12} {:>14} {:>16} {:>10} {:>8} {:>7} {:>8} {:>7} {:>7} {:<7} {:>8}",
        "path",
        "batch",
        "epoch s",
        "samples/s",
        "dispatches/step",
        "matmul GFLOP/s",
        "time/cpu",
        "GFLOP/s",
        "%FLOP",
        "GB/s",
        "%BW",
        "FLOP/B",
        "bound",
        "roof s"
    );
    for r in &rows {
        let cpu = rows
            .iter()
            .find(|c| c.path == "cpu" && c.batch_size == r.batch_size)
            .map_or(1.0, |c| c.epoch_seconds);
        let f = &r.roofline;
        let cell = |v: Option<String>| v.unwrap_or_else(|| "-".into());
        say!(
            "{:<5} {:>6} {:>10.3} {:>12.0} {:>14} {:>16.2} {:>9.2}x {:>8} {:>7} {:>8} {:>7} {:>7} {:<7} {:>8}",
            r.path,
            r.batch_size,
            r.epoch_seconds,
            r.samples_per_second,
            r.dispatches_per_step
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
            r.matmul_gflops,
            r.epoch_seconds / cpu,
            three_digits(r.achieved_gflops),
            cell(f.flop_fraction.map(percent)),
            cell(f.achieved_gbps.map(three_digits)),
            cell(f.bandwidth_fraction.map(percent)),
            cell(f.arithmetic_intensity.map(three_digits)),
            cell(f.bound.map(|b| b.to_string())),
            cell(f.roofline_epoch_seconds.map(|s| format!("{s:.4}"))),
        );
    }
    if peaks.is_some() {
        say!(
            "GFLOP/s: the model's FLOP per epoch over its wall time (both paths); %FLOP, %BW: of the GPU roofline's peaks, GB/s from the bytes the step's dispatches read and write; roof s: the least time the epoch's FLOP and bytes take under the two roofs"
        );
    }
    if !pop_rows.is_empty() {
        say!();
        bench_population::print_rows(&pop_rows);
    }
    Ok(())
}
