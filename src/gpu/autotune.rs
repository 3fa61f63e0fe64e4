//! Start-up kernel selection: times every matmul variant on the run's real shapes (the
//! first layer's forward product and its weight gradient, which dominate an MLP step) and
//! keeps the fastest.

use crate::error::Result;
use crate::gpu::kernels::matmul::{self, BatchDim, Epilogue, MatmulSpec, MatmulVariant};
use crate::gpu::kernels::{self as k, Kernels, StepRecord};
use crate::gpu::{Gpu, GpuTensor};
use crate::model::MlpSpec;

/// Time of one variant on the probe shapes, ms per step of the two products.
#[derive(Clone, Copy, Debug)]
pub struct VariantTiming {
    pub variant: MatmulVariant,
    pub ms: f64,
}

/// Times each variant (one warm-up, then the best of three runs) and returns the fastest
/// first.
///
/// # Errors
/// Device errors, or a shape over the adapter's limits.
pub fn rank_matmul_variants(
    gpu: &Gpu,
    kernels: &Kernels,
    spec: &MlpSpec,
    batch: usize,
) -> Result<Vec<VariantTiming>> {
    let (i, o) = (spec.sizes[0], spec.sizes[1]);
    let x = GpuTensor::upload(gpu, "probe.x", &vec![0.5; batch * i], &[batch, i])?;
    let w = GpuTensor::upload(gpu, "probe.w", &vec![0.25; o * i], &[o, i])?;
    let bias = GpuTensor::upload(gpu, "probe.bias", &vec![0.0; o], &[o])?;
    let h = GpuTensor::upload(gpu, "probe.h", &vec![0.0; batch * o], &[batch, o])?;
    let dw = GpuTensor::upload(gpu, "probe.dw", &vec![0.0; o * i], &[o, i])?;
    let dummy = GpuTensor::upload(gpu, "probe.dummy", &[0.0; 4], &[4])?;
    let record = StepRecord {
        batch: batch as u32,
        ..Default::default()
    };
    let mut out = Vec::new();
    for variant in MatmulVariant::ALL {
        let fwd = matmul::dispatch(
            gpu,
            kernels,
            variant,
            "probe.forward",
            MatmulSpec {
                m: batch,
                n: o,
                k: i,
                trans_a: false,
                trans_b: true,
                epilogue: Epilogue::BiasRelu,
                batch_dim: BatchDim::M,
            },
            x.view(),
            w.view(),
            Some(bias.view()),
            None,
            h.view(),
            dummy.view(),
        )?;
        let grad = matmul::dispatch(
            gpu,
            kernels,
            variant,
            "probe.weight_grad",
            MatmulSpec {
                m: o,
                n: i,
                k: batch,
                trans_a: true,
                trans_b: false,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::K,
            },
            h.view(),
            x.view(),
            None,
            None,
            dw.view(),
            dummy.view(),
        )?;
        let launches = [fwd, grad];
        k::run(gpu, kernels, &launches, record, 1)?;
        let reps = 4;
        let best = (0..3)
            .map(|_| {
                k::run(gpu, kernels, &launches, record, reps)
                    .map(|d| d.as_secs_f64() * 1e3 / reps as f64)
            })
            .collect::<Result<Vec<f64>>>()?
            .into_iter()
            .fold(f64::INFINITY, f64::min);
        out.push(VariantTiming { variant, ms: best });
    }
    out.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    Ok(out)
}
