//! Times every matmul variant on the MNIST training shapes (forward, weight gradient,
//! input gradient) and at 1024³ and prints GFLOP/s:
//! `cargo run --release --example matmul_probe [BATCH] [--large]`; `--large` adds 4096³, the
//! size GPU SGEMM results are usually quoted at (seconds per variant on a software adapter).

use wgtrain::gpu::kernels::matmul::{self, BatchDim, Epilogue, MatmulSpec, MatmulVariant};
use wgtrain::gpu::kernels::{self, StepRecord};
use wgtrain::gpu::{Gpu, GpuOptions, GpuTensor, Kernels};

fn main() -> anyhow::Result<()> {
    let gpu = Gpu::new(&GpuOptions::default())?;
    let k = Kernels::new(&gpu)?;
    println!("{}", gpu.describe());
    let args: Vec<String> = std::env::args().skip(1).collect();
    let large = args.iter().any(|a| a == "--large");
    let batch: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(Ok(64), |s| s.parse())?;
    // (name, m, n, k, trans_a, trans_b, trans_c)
    let shapes = [
        ("forward X·Wᵀ", batch, 256, 784, false, true, false),
        ("weight grad dZᵀ·X", 256, 784, batch, true, false, false),
        ("weight grad (Xᵀ·dZ)ᵀ", 784, 256, batch, true, false, true),
        ("input grad dZ·W", batch, 256, 10, false, false, false),
        ("square 1024", 1024, 1024, 1024, false, false, false),
        ("square 4096", 4096, 4096, 4096, false, false, false),
    ];
    for (name, m, n, kk, ta, tb, tc) in shapes {
        if m == 4096 && !large {
            continue;
        }
        let a = GpuTensor::upload(&gpu, "a", &vec![0.5; m * kk], &[m * kk])?;
        let b = GpuTensor::upload(&gpu, "b", &vec![0.25; kk * n], &[kk * n])?;
        let c = GpuTensor::upload(&gpu, "c", &vec![0.0; m * n], &[m * n])?;
        let dummy = GpuTensor::upload(&gpu, "dummy", &[0.0; 4], &[4])?;
        let mut line = format!("{name:<22} {m:>5}x{n:>5}x{kk:>5}");
        for v in MatmulVariant::ALL {
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
                line += &format!("  {v} n/a");
                continue;
            }
            let d = matmul::dispatch(
                &gpu,
                &k,
                v,
                "probe",
                spec,
                a.view(),
                b.view(),
                None,
                None,
                c.view(),
                dummy.view(),
            )?;
            let rec = StepRecord {
                batch: m as u32,
                ..Default::default()
            };
            kernels::run(&gpu, &k, std::slice::from_ref(&d), rec, 1)?;
            let reps = if m * n * kk > 100_000_000 { 2 } else { 10 };
            let best = (0..3)
                .map(|_| {
                    kernels::run(&gpu, &k, std::slice::from_ref(&d), rec, reps)
                        .map(|t| t.as_secs_f64() / reps as f64)
                })
                .collect::<Result<Vec<_>, _>>()?
                .into_iter()
                .fold(f64::INFINITY, f64::min);
            line += &format!(
                "  {v} {:6.2} GFLOP/s",
                2.0 * (m * n * kk) as f64 / best / 1e9
            );
        }
        println!("{line}");
    }
    Ok(())
}
