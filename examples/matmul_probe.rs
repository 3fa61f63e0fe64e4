//! Times every matmul variant (the 2-D tiled block shapes and its subgroup variant
//! included) on the MNIST training shapes (forward, weight gradient, input gradient) and at
//! 1024³ and prints GFLOP/s as a Markdown table, one row per shape, one column per variant
//! (`n/a` where the adapter does not run one; the subgroup variant's team width is printed
//! above the table):
//! `cargo run --release --example matmul_probe [BATCH] [--large] [--only NAME,...]`.
//! `--large` adds 4096³, the size GPU SGEMM results are usually quoted at (minutes per
//! variant on a software adapter); `--only tiled2d,subgroup` times only the variants whose
//! names start with one of those. A launch whose first (warm-up) run takes over a second is
//! reported from that run alone; faster ones take the best of three timed batches. Every
//! output is checked too (A = 0.5 and B = 0.25 everywhere, so each element of C is exactly
//! K / 8): a cell reads `WRONG` where a kernel computed anything else, e.g. one that
//! miscompiles on a new GPU. Where the adapter has `SHADER_F16`, an `f16` column times
//! `matmul_f16` (`--precision f16`) as the engine runs it: f16 A on the forward and square
//! shapes, f32 A (the gradient) on the backward ones, B always f16.

use std::time::Duration;

use wgtrain::gpu::kernels::matmul::f16::{self as matmul_f16, F16View, MatmulF16Buffers, OperandA};
use wgtrain::gpu::kernels::matmul::tiled2d_subgroup as matmul_tiled2d_subgroup;
use wgtrain::gpu::kernels::matmul::{
    self, BatchDim, Epilogue, MatmulLaunch, MatmulMembers, MatmulSpec, MatmulVariant,
};
use wgtrain::gpu::kernels::{self, Dispatch, StepRecord};
use wgtrain::gpu::{Gpu, GpuOptions, GpuTensor, Kernels, View};

/// A warm-up run longer than this is the measurement (a software adapter at 4096³).
const SLOW_RUN: Duration = Duration::from_secs(1);

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::new(&GpuOptions {
        shader_f16: true,
        ..GpuOptions::default()
    })?;
    let k = Kernels::new(&gpu)?;
    println!("{}", gpu.describe());
    match matmul_tiled2d_subgroup::team_width(&gpu) {
        Ok(w) => println!(
            "tiled2d-subgroup: teams of {w} lanes (subgroups of {}..{})",
            gpu.info.subgroup_min_size, gpu.info.subgroup_max_size
        ),
        Err(reason) => println!("tiled2d-subgroup: n/a ({reason})"),
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let large = args.iter().any(|a| a == "--large");
    let only: Vec<String> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let batch: usize = args
        .iter()
        .enumerate()
        .find(|(i, a)| !a.starts_with("--") && (*i == 0 || args[i - 1] != "--only"))
        .map_or(Ok(64), |(_, s)| s.parse())?;
    let variants: Vec<MatmulVariant> = MatmulVariant::ALL
        .into_iter()
        .filter(|v| only.is_empty() || only.iter().any(|o| v.to_string().starts_with(o)))
        .collect();
    // (name, m, n, k, trans_a, trans_b, trans_c)
    let shapes = [
        ("forward X·Wᵀ", batch, 256, 784, false, true, false),
        ("weight grad dZᵀ·X", 256, 784, batch, true, false, false),
        ("weight grad (Xᵀ·dZ)ᵀ", 784, 256, batch, true, false, true),
        ("input grad dZ·W", batch, 256, 10, false, false, false),
        ("square 1024", 1024, 1024, 1024, false, false, false),
        ("square 4096", 4096, 4096, 4096, false, false, false),
    ];
    let f16 = matmul_f16::f16_device_support(&gpu).is_ok()
        && (only.is_empty() || only.iter().any(|o| "f16".starts_with(o.as_str())));
    let mut header = "| shape | M×N×K |".to_string();
    let mut rule = "| --- | --- |".to_string();
    for v in &variants {
        header += &format!(" {v} |");
        rule += " ---: |";
    }
    if f16 {
        header += " f16 |";
        rule += " ---: |";
    }
    println!("GFLOP/s\n{header}\n{rule}");
    for (name, m, n, kk, ta, tb, tc) in shapes {
        if m == 4096 && !large {
            continue;
        }
        let a = GpuTensor::upload(&gpu, "a", &vec![0.5; m * kk], &[m * kk])?;
        let b = GpuTensor::upload(&gpu, "b", &vec![0.25; kk * n], &[kk * n])?;
        let c = GpuTensor::upload(&gpu, "c", &vec![0.0; m * n], &[m * n])?;
        let dummy = GpuTensor::upload(&gpu, "dummy", &[0.0; 4], &[4])?;
        let mut line = format!("| {name} | {m}×{n}×{kk} |");
        for &v in &variants {
            let spec = MatmulSpec {
                m,
                n,
                k: kk,
                trans_a: ta,
                trans_b: tb,
                trans_c: tc,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::None,
            };
            if v.supports(&gpu).is_err() {
                line += " n/a |";
                continue;
            }
            let launch = MatmulLaunch::new(spec, a.view(), b.view(), c.view(), dummy.view());
            let d = matmul::dispatch(&gpu, &k, v, "probe", launch)?;
            let seconds = time_launch(&gpu, &k, &d, m)?;
            let want = kk as f32 / 8.0;
            if c.read(&gpu)?.iter().any(|&v| v != want) {
                line += " WRONG |";
                continue;
            }
            line += &format!(" {:.2} |", 2.0 * (m * n * kk) as f64 / seconds / 1e9);
        }
        if f16 {
            // The engine's backward products (A stored transposed or N of 256 from K = 10)
            // read the f32 gradient as A.
            let a_f32 = name.starts_with("weight") || name.starts_with("input");
            let spec = MatmulSpec {
                m,
                n,
                k: kk,
                trans_a: ta,
                trans_b: tb,
                trans_c: tc,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::None,
            };
            line += &probe_f16(&gpu, &k, spec, &a, a_f32)?;
        }
        println!("{line}");
    }
    Ok(())
}

/// The `f16` cell of a shape: `matmul_f16` with A = 0.5 (f16, or the f32 tensor `a32`),
/// B = 0.25 in f16, checked like the others.
fn probe_f16(
    gpu: &Gpu,
    k: &Kernels,
    spec: MatmulSpec,
    a32: &GpuTensor,
    a_f32: bool,
) -> anyhow::Result<String> {
    let (m, n, kk) = (spec.m, spec.n, spec.k);
    let f16_tensor = |label: &str, len: usize, value: f32| -> anyhow::Result<wgpu::Buffer> {
        let buf = gpu.storage_buffer(label, len as u64 * 2, wgpu::BufferUsages::COPY_DST)?;
        let bits = half::f16::from_f32(value).to_le_bytes();
        let bytes: Vec<u8> = (0..len.next_multiple_of(2)).flat_map(|_| bits).collect();
        gpu.queue.write_buffer(&buf, 0, &bytes);
        Ok(buf)
    };
    let a16 = f16_tensor("a16", m * kk, 0.5)?;
    let b16 = f16_tensor("b16", kk * n, 0.25)?;
    let c = GpuTensor::upload(gpu, "c", &vec![0.0; m * n], &[m * n])?;
    let dummy = GpuTensor::upload(gpu, "dummy", &[0.0; 4], &[4])?;
    let d = matmul_f16::dispatch(
        gpu,
        k,
        "probe.f16",
        spec,
        MatmulF16Buffers {
            members: MatmulMembers::ONE,
            a: if a_f32 {
                OperandA::F32(a32.view())
            } else {
                OperandA::F16(F16View::whole(&a16))
            },
            b: F16View::whole(&b16),
            bias: None,
            mask: None,
            c: c.view(),
            c16: None,
            dummy: View::whole(&dummy.buffer),
        },
    )?;
    let seconds = time_launch(gpu, k, &d, m)?;
    if c.read(gpu)?.iter().any(|&v| v != kk as f32 / 8.0) {
        return Ok(" WRONG |".into());
    }
    Ok(format!(
        " {:.2} |",
        2.0 * (m * n * kk) as f64 / seconds / 1e9
    ))
}

/// Seconds per launch of `d`: the warm-up run when it is slow ([`SLOW_RUN`]), else the best
/// of three batches of 10 launches (2 past 10⁸ multiply-adds).
fn time_launch(gpu: &Gpu, k: &Kernels, d: &Dispatch, m: usize) -> anyhow::Result<f64> {
    let rec = StepRecord {
        batch: m as u32,
        ..Default::default()
    };
    let launch = std::slice::from_ref(d);
    let warm = kernels::run(gpu, k, launch, rec, 1)?;
    if warm > SLOW_RUN {
        return Ok(warm.as_secs_f64());
    }
    let reps = if d.flops > 200_000_000 { 2 } else { 10 };
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(kernels::run(gpu, k, launch, rec, reps)?.as_secs_f64() / reps as f64);
    }
    Ok(best)
}
