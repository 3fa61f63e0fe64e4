//! Criterion benchmarks: the first layer's forward matmul with every GPU variant and the
//! CPU SGEMM (GFLOP/s); every dispatch of a training step at batch 64 as the engine records
//! it (matmuls in GFLOP/s, the rest in GB/s); one training epoch at batch 64, 128 and 512
//! on both paths. Sizes shrink when the `CI` variable is set. The GPU is synchronised inside every timed iteration. Matmul
//! throughput is in FLOPs, so criterion's "Gelem/s" reads as GFLOP/s.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use wgtrain::cpu_engine::gemm;
use wgtrain::data::Dataset;
use wgtrain::engine::RunData;
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::engine::GpuEngine;
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, MatmulLaunch, MatmulSpec, MatmulVariant,
};
use wgtrain::gpu::kernels::{self, StepRecord};
use wgtrain::gpu::{Fusions, Gpu, GpuOptions, GpuTensor, Kernels};
use wgtrain::step::MemberStep;
use wgtrain::{Device, RunConfig, train};

fn ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Synthetic MNIST-shaped data (784 inputs, 10 classes), so the bench needs no files.
fn synthetic(n: usize) -> Dataset {
    let images = (0..n * 784)
        .map(|i| ((i * 2654435761usize) >> 13) as u8)
        .collect();
    let labels = (0..n).map(|i| (i % 10) as u32).collect();
    Dataset {
        images,
        labels,
        rows: 28,
        cols: 28,
    }
}

/// The 784-256-10 MLP at minibatch `batch`, otherwise the default run (seed 1).
fn config(batch: usize) -> RunConfig {
    RunConfig {
        batch_size: batch,
        ..RunConfig::default()
    }
}

/// The member-step table of one member over `steps` steps at lr 0.01, none the run's
/// first (what `step_records(n, batch, 1, |_| 0.01)` encoded before the table).
fn member_steps(steps: usize) -> Vec<MemberStep> {
    vec![
        MemberStep {
            lr: 0.01,
            flags: 0,
            scale: 1.0
        };
        steps
    ]
}

/// `data` as both the training and the test set, 10 classes.
fn both(data: &Dataset) -> RunData<'_> {
    RunData {
        train: data,
        test: data,
        classes: 10,
        micro_batch: None,
    }
}

fn matmuls(c: &mut Criterion, gpu: &Gpu, k: &Kernels) {
    let (b, i, o) = (64, 784, 256);
    let mut group = c.benchmark_group("matmul_64x784x256");
    group.throughput(Throughput::Elements((2 * b * i * o) as u64));
    let x = GpuTensor::upload(gpu, "x", &vec![0.5; b * i], &[b, i]).unwrap();
    let w = GpuTensor::upload(gpu, "w", &vec![0.25; o * i], &[o, i]).unwrap();
    let y = GpuTensor::upload(gpu, "y", &vec![0.0; b * o], &[b, o]).unwrap();
    let dummy = GpuTensor::upload(gpu, "dummy", &[0.0; 4], &[4]).unwrap();
    for variant in MatmulVariant::ALL {
        let spec = MatmulSpec {
            m: b,
            n: o,
            k: i,
            trans_a: false,
            trans_b: true,
            trans_c: false,
            epilogue: Epilogue::None,
            batch_dim: BatchDim::None,
        };
        if variant.supports(gpu).is_err() {
            continue; // subgroup kernel on an adapter without subgroups of 8
        }
        let launch = MatmulLaunch::new(spec, x.view(), w.view(), y.view(), dummy.view());
        let d = matmul::dispatch(gpu, k, variant, "bench", launch).unwrap();
        group.bench_function(BenchmarkId::new("gpu", variant), |bench| {
            bench.iter(|| {
                kernels::run(
                    gpu,
                    k,
                    std::slice::from_ref(&d),
                    StepRecord {
                        batch: b as u32,
                        ..Default::default()
                    },
                    1,
                )
                .unwrap()
            })
        });
    }
    let a = vec![0.5f32; b * i];
    let wv = vec![0.25f32; o * i];
    let mut cv = vec![0.0f32; b * o];
    group.bench_function("cpu_sgemm", |bench| {
        bench.iter(|| {
            gemm::batched(
                gemm::Shape { m: b, k: i, n: o },
                0..1,
                &a,
                gemm::Operand {
                    offset: 0,
                    rs: i,
                    cs: 1,
                    member: 0,
                },
                &wv,
                gemm::Operand {
                    offset: 0,
                    rs: 1,
                    cs: i,
                    member: 0,
                },
                &mut cv,
                gemm::Operand {
                    offset: 0,
                    rs: o,
                    cs: 1,
                    member: 0,
                },
            )
        })
    });
    group.finish();
}

/// Every dispatch of one training step of the 784-256-10 MLP at batch 64, as the engine
/// records it (kernels chosen by autotuning): matmuls in GFLOP/s (criterion's "Gelem/s"),
/// the rest in GB/s (bytes read + written).
fn step_kernels(c: &mut Criterion, gpu: &Gpu, k: &Kernels) {
    let batch = 64;
    let data = synthetic(if ci() { 1024 } else { 60_000 });
    // The concrete engine: its launches are what is timed.
    let engine = GpuEngine::new(
        gpu,
        k,
        MatmulChoice::Auto,
        Fusions::ALL,
        &[config(batch)],
        both(&data),
    )
    .unwrap();
    let order: Vec<u32> = (0..data.labels.len() as u32).collect();
    let steps = train::step_records(order.len(), batch);
    engine
        .upload_epoch(&order, &steps, &member_steps(steps.len()))
        .unwrap();
    let record = steps[0];
    let mut group = c.benchmark_group("step_kernels_784_256_10_b64");
    for d in engine.train_step_dispatches() {
        group.throughput(if d.kernel.starts_with("matmul") {
            Throughput::Elements(d.flops)
        } else {
            Throughput::Bytes(d.bytes)
        });
        let name = format!("{} {}", d.label.trim_start_matches("train."), d.kernel);
        group.bench_function(name, |bench| {
            bench.iter(|| kernels::run(gpu, k, std::slice::from_ref(d), record, 1).unwrap())
        });
    }
    group.finish();
}

fn epochs(c: &mut Criterion, gpu: &Gpu, k: &Kernels) {
    let n = if ci() { 1024 } else { 60_000 };
    let data = synthetic(n);
    let mut group = c.benchmark_group("epoch_784_256_10");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(n as u64));
    let order: Vec<u32> = (0..n as u32).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    for batch in [64, 128, 512] {
        let steps = train::step_records(n, batch);
        let table = member_steps(steps.len());
        // The GPU as training opens it (kernels chosen by autotuning), and the CPU.
        let gpu_device = Device::Gpu {
            gpu,
            kernels: k,
            matmul: MatmulChoice::Auto,
            fusions: Fusions::ALL,
        };
        for (name, device) in [("gpu", gpu_device), ("cpu", Device::Cpu)] {
            let mut e = wgtrain::open(device, &[config(batch)], both(&data)).unwrap();
            group.bench_function(BenchmarkId::new(name, batch), |bench| {
                bench.iter(|| {
                    e.train_epoch(&order, &steps, &table, &mut |_| {}, &stop)
                        .unwrap()
                })
            });
        }
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let gpu =
        Gpu::new(&GpuOptions::default()).expect("an adapter (apt-get install mesa-vulkan-drivers)");
    let k = Kernels::new(&gpu).unwrap();
    matmuls(c, &gpu, &k);
    step_kernels(c, &gpu, &k);
    epochs(c, &gpu, &k);
}

criterion_group! {
    name = training;
    // No HTML plots: they need system fonts, which headless CI machines lack.
    config = Criterion::default().without_plots();
    targets = benches
}
criterion_main!(training);
