//! `wgtrain bench`: one training epoch per batch size on the GPU path and the CPU path,
//! side by side in one run (the machine is shared and noisy, so ratios matter more than
//! absolute times), plus the best matmul throughput of each path.

use std::time::Instant;

use anyhow::Result;
use clap::Args;
use serde::Serialize;

use wgtrain::cpu_engine::CpuEngine;
use wgtrain::engine::{Engine, RunData};
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::{BatchDim, Epilogue, MatmulSpec};
use wgtrain::gpu::kernels::matmul_f16;
use wgtrain::gpu::{Kernels, autotune};
use wgtrain::train;
use wgtrain::{Precision, RunConfig};

use super::bench_population;
use super::common::{
    DataArgs, DeviceArgs, DeviceKind, PrecisionArgs, check_device_args, check_precision_args,
    fusions, load_data, matmul_choice, open_gpu_for, usage,
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
    /// Print JSON (one object per row) instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Also time a population of K members (one epoch) against K single-model epochs,
    /// on each path and batch size.
    #[arg(long, value_name = "K")]
    pub population: Option<usize>,
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
}

/// Times one warm epoch (after one untimed epoch that compiles and warms everything).
fn time_epoch(engine: &mut dyn Engine, n: usize, batch: usize) -> Result<f64> {
    let order = train::epoch_order(&(0..n as u32).collect::<Vec<_>>(), 1, 0);
    let steps = train::step_records(n, batch, 1, |_| 0.01);
    engine.train_epoch(&order, &steps, &mut |_| {})?;
    let start = Instant::now();
    engine.train_epoch(&order, &steps, &mut |_| {})?;
    Ok(start.elapsed().as_secs_f64())
}

/// GFLOP/s of the CPU SGEMM on the first layer's forward shape `[B, I] · [I, O]`.
fn cpu_matmul_gflops(batch: usize, i: usize, o: usize) -> f64 {
    let a = vec![0.5f32; batch * i];
    let b = vec![0.25f32; i * o];
    let mut c = vec![0.0f32; batch * o];
    let reps = 20;
    let start = Instant::now();
    for _ in 0..reps {
        // SAFETY: the slices hold exactly the [batch, i], [i, o] and [batch, o] matrices.
        unsafe {
            matrixmultiply::sgemm(
                batch,
                i,
                o,
                1.0,
                a.as_ptr(),
                i as isize,
                1,
                b.as_ptr(),
                1,
                i as isize,
                0.0,
                c.as_mut_ptr(),
                o as isize,
                1,
            );
        }
    }
    2.0 * (batch * i * o * reps) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// Refuses what `bench` would silently ignore: GPU flags (`--precision f16`, `--kernels`,
/// `--fuse`, `--backend`, `--adapter`) with `--cpu-only`, which skips the GPU path, and
/// `--precision f16` with `--population` (populations keep their operands in f32).
fn check_bench_only_flags(a: &BenchArgs, precision: Precision) -> Result<()> {
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
    if let (Some(k), Precision::F16) = (a.population, precision) {
        return Err(usage(
            "population",
            k,
            "populations keep every operand in f32, so --precision f16 would time only the single runs; drop --population or use --precision f32",
        ));
    }
    Ok(())
}

/// Runs `wgtrain bench`.
pub fn bench_command(a: BenchArgs) -> Result<()> {
    if a.population == Some(0) {
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
    // `--device cpu` means the CPU path alone, like --cpu-only.
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
    };
    // Seed 1's initialisation, SGD lr 0.01 with weight decay 1e-4, pixels in [0, 1].
    let run = |batch_size| RunConfig {
        hidden: a.hidden.clone(),
        batch_size,
        ..RunConfig::default()
    };
    let gpu_run = |batch_size| RunConfig {
        precision,
        ..run(batch_size)
    };
    let spec = run(1).spec(train_set.features(), mnist.classes)?;
    let kernels = gpu.as_ref().map(Kernels::new).transpose()?;
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
            let mut engine = GpuEngine::new(g, k, choice, fusions(&a.device), &gpu_run(b), data)?;
            let secs = time_epoch(&mut engine, n, b)?;
            rows.push(Row {
                path: "gpu",
                batch_size: b,
                samples: n,
                precision: precision.name(),
                epoch_seconds: secs,
                samples_per_second: n as f64 / secs,
                dispatches_per_step: Some(engine.dispatches_per_step()),
                matmul_gflops: gflops,
            });
        }
        let mut engine = CpuEngine::new(&run(b), data)?;
        let secs = time_epoch(&mut engine, n, b)?;
        rows.push(Row {
            path: "cpu",
            batch_size: b,
            samples: n,
            precision: Precision::F32.name(),
            epoch_seconds: secs,
            samples_per_second: n as f64 / secs,
            dispatches_per_step: None,
            matmul_gflops: cpu_matmul_gflops(b, spec.sizes[0], spec.sizes[1]),
        });
    }
    let mut pop_rows = Vec::new();
    if let Some(k) = a.population {
        for &b in &batch_sizes {
            let configs = bench_population::population_configs(&run(b), k);
            let single = |e: &mut dyn Engine| time_epoch(e, n, b);
            if let (Some(g), Some(kern)) = (&gpu, &kernels) {
                let device = wgtrain::Device::Gpu {
                    gpu: g,
                    kernels: kern,
                    matmul: matmul_choice(&a.device),
                    fusions: fusions(&a.device),
                };
                pop_rows.push(bench_population::compare(
                    "gpu", device, &configs, data, n, &single,
                )?);
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
    say!("MLP {spec}, {n} samples per epoch, one warm epoch each{gpu_precision}");
    say!(
        "{:<5} {:>6} {:>10} {:>12} {:>14} {:>16} {:>10}",
        "path",
        "batch",
        "epoch s",
        "samples/s",
        "dispatches/step",
        "matmul GFLOP/s",
        "time/cpu"
    );
    for r in &rows {
        let cpu = rows
            .iter()
            .find(|c| c.path == "cpu" && c.batch_size == r.batch_size)
            .map_or(1.0, |c| c.epoch_seconds);
        say!(
            "{:<5} {:>6} {:>10.3} {:>12.0} {:>14} {:>16.2} {:>9.2}x",
            r.path,
            r.batch_size,
            r.epoch_seconds,
            r.samples_per_second,
            r.dispatches_per_step
                .map_or_else(|| "-".to_string(), |d| d.to_string()),
            r.matmul_gflops,
            r.epoch_seconds / cpu
        );
    }
    if !pop_rows.is_empty() {
        say!();
        bench_population::print_rows(&pop_rows);
    }
    Ok(())
}
