//! Kernel selection per shape: times the adapter's candidate matmul variants on each
//! matmul shape a run launches and keeps the fastest for that shape. A CPU adapter
//! (lavapipe) and a GPU want different kernels, and so do a 64x256x784 product and a
//! 64x10x256 one. This module owns the timings: a cache per device ([`Gpu::id`]) for the
//! life of the process, so engines built later in the same run (sweeps, evaluation) on the
//! same device do not time again. The kernel wrappers know nothing of it: they ask a
//! [`ChooseVariant`], which [`MatmulChoice`] implements.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use crate::error::Result;
use crate::gpu::kernels::matmul::{
    self, BatchDim, ChooseVariant, Epilogue, MatmulLaunch, MatmulSpec, MatmulVariant,
};
use crate::gpu::kernels::{self as k, Kernels, StepRecord};
use crate::gpu::{Gpu, GpuTensor};

/// Largest M timed by [`rank_variants`].
const PROBE_ROWS: usize = 256;
/// Largest K timed by [`rank_variants`].
const PROBE_K: usize = 1024;

/// Time of one variant on one shape.
#[derive(Clone, Copy, Debug)]
pub struct VariantTiming {
    pub variant: MatmulVariant,
    /// Best wall time of one launch, ms (host-timed around submit and wait).
    pub ms: f64,
    /// The rate that time gives on the probed shape (M and K capped), GFLOP/s.
    pub gflops: f64,
}

/// What identifies a matmul for tuning: M, N, K and the transposes of A, B and C.
pub type ShapeKey = (usize, usize, usize, bool, bool, bool);

/// Tuning results of every device of the process: ([`Gpu::id`], shape) -> variants,
/// fastest first. Device ids are never reused, so a result never reaches another device.
type TuningCache = HashMap<(u64, ShapeKey), Vec<VariantTiming>>;

static TUNING: LazyLock<Mutex<TuningCache>> = LazyLock::new(Mutex::default);

fn with_cache<T>(f: impl FnOnce(&mut TuningCache) -> T) -> T {
    f(&mut TUNING.lock().unwrap_or_else(|p| p.into_inner()))
}

/// Every shape timed so far on `gpu` with its ranking, sorted by shape.
pub fn results(gpu: &Gpu) -> Vec<(ShapeKey, Vec<VariantTiming>)> {
    let mut v: Vec<_> = with_cache(|c| {
        c.iter()
            .filter(|((id, _), _)| *id == gpu.id())
            .map(|((_, shape), t)| (*shape, t.clone()))
            .collect()
    });
    v.sort_by_key(|(shape, _)| *shape);
    v
}

/// Which matmul variant a launch uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatmulChoice {
    /// Time the adapter's candidates ([`MatmulVariant::candidates`]) on each shape at
    /// start-up and keep the fastest (`--kernels auto`).
    Auto,
    /// The same variant for every shape. On a device it does not run on
    /// ([`MatmulVariant::Subgroup`] without subgroups of 8, [`MatmulVariant::Tiled2d`]
    /// with less workgroup memory than its block needs, [`MatmulVariant::Tiled2dSubgroup`]
    /// without subgroups of 4 to 32: [`MatmulVariant::supports`]), the
    /// adapter's first candidate that does ([`MatmulVariant::candidates`]).
    Fixed(MatmulVariant),
}

impl From<MatmulVariant> for MatmulChoice {
    fn from(v: MatmulVariant) -> Self {
        MatmulChoice::Fixed(v)
    }
}

impl ChooseVariant for MatmulChoice {
    /// [`MatmulChoice::resolve`].
    fn choose(&self, gpu: &Gpu, kernels: &Kernels, spec: &MatmulSpec) -> Result<MatmulVariant> {
        self.resolve(gpu, kernels, spec)
    }
}

impl MatmulChoice {
    /// The variant for `spec`: fixed, or the fastest measured on that shape.
    ///
    /// # Errors
    /// Device errors while timing, or a shape over the adapter's limits.
    pub fn resolve(self, gpu: &Gpu, kernels: &Kernels, spec: &MatmulSpec) -> Result<MatmulVariant> {
        match self {
            MatmulChoice::Fixed(v) if v.supports(gpu).is_ok() => Ok(v),
            MatmulChoice::Fixed(_) => Ok(MatmulVariant::candidates(gpu)
                .iter()
                .copied()
                .find(|c| c.supports(gpu).is_ok())
                .unwrap_or(MatmulVariant::Register)),
            MatmulChoice::Auto => Ok(rank_variants(gpu, kernels, spec)?[0].variant),
        }
    }
}

/// Times each of this adapter's [`MatmulVariant::candidates`] that runs on it
/// ([`MatmulVariant::supports`]) on `spec`'s shape, M capped at 256 and K at 1024 (one warm-up, then the best of three runs; a variant already
/// 3x slower than the best after one run is not run again) and returns them fastest first.
/// Cached per device ([`results`]).
///
/// # Errors
/// Device errors, or a shape over the adapter's limits.
pub fn rank_variants(
    gpu: &Gpu,
    kernels: &Kernels,
    spec: &MatmulSpec,
) -> Result<Vec<VariantTiming>> {
    let shape = (
        spec.m,
        spec.n,
        spec.k,
        spec.trans_a,
        spec.trans_b,
        spec.trans_c,
    );
    let key = (gpu.id(), shape);
    if let Some(r) = with_cache(|c| c.get(&key).cloned()) {
        return Ok(r);
    }
    let probe = Probe::new(gpu, spec)?;
    let mut out: Vec<VariantTiming> = Vec::new();
    for &variant in MatmulVariant::candidates(gpu) {
        if variant.supports(gpu).is_err() {
            continue;
        }
        let best_so_far = out.iter().map(|t| t.ms).fold(f64::INFINITY, f64::min);
        out.push(probe.time(gpu, kernels, variant, best_so_far)?);
    }
    out.sort_by(|x, y| x.ms.total_cmp(&y.ms));
    with_cache(|c| c.insert(key, out.clone()));
    Ok(out)
}

/// Times one `variant` on `spec`'s shape as [`rank_variants`] does (M capped at 256, K at
/// 1024), whether or not it is one of the adapter's candidates; not cached.
///
/// # Errors
/// Device errors; [`crate::Error::InvalidConfig`] when the variant does not run on `gpu`.
pub fn time_variant(
    gpu: &Gpu,
    kernels: &Kernels,
    spec: &MatmulSpec,
    variant: MatmulVariant,
) -> Result<VariantTiming> {
    Probe::new(gpu, spec)?.time(gpu, kernels, variant, f64::INFINITY)
}

/// Operands of the probe shape: at most PROBE_ROWS rows and PROBE_K-long sums. The ranking
/// holds for larger sizes, and a full-batch 60000-row probe would cost minutes on a CPU
/// adapter. N stays: how it divides into a variant's column blocks decides which wins.
struct Probe {
    spec: MatmulSpec,
    a: GpuTensor,
    b: GpuTensor,
    c: GpuTensor,
    dummy: GpuTensor,
}

impl Probe {
    fn new(gpu: &Gpu, spec: &MatmulSpec) -> Result<Probe> {
        let (m, n, kk) = (spec.m.min(PROBE_ROWS), spec.n, spec.k.min(PROBE_K));
        Ok(Probe {
            spec: MatmulSpec {
                m,
                n,
                k: kk,
                epilogue: Epilogue::None,
                batch_dim: BatchDim::None,
                ..*spec
            },
            a: GpuTensor::upload(gpu, "tune.a", &vec![0.5; m * kk], &[m * kk])?,
            b: GpuTensor::upload(gpu, "tune.b", &vec![0.25; kk * n], &[kk * n])?,
            c: GpuTensor::upload(gpu, "tune.c", &vec![0.0; m * n], &[m * n])?,
            dummy: GpuTensor::upload(gpu, "tune.dummy", &[0.0; 4], &[4])?,
        })
    }

    /// One warm-up launch, then the best of three, stopping early once the best is over
    /// 3x `best_so_far`.
    fn time(
        &self,
        gpu: &Gpu,
        kernels: &Kernels,
        variant: MatmulVariant,
        best_so_far: f64,
    ) -> Result<VariantTiming> {
        let s = &self.spec;
        let launch = MatmulLaunch::new(
            *s,
            self.a.view(),
            self.b.view(),
            self.c.view(),
            self.dummy.view(),
        );
        let d = matmul::dispatch(gpu, kernels, variant, "tune", launch)?;
        let record = StepRecord {
            batch: s.m.max(s.k) as u32,
            ..Default::default()
        };
        let launch = std::slice::from_ref(&d);
        k::run(gpu, kernels, launch, record, 1)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            best = best.min(k::run(gpu, kernels, launch, record, 1)?.as_secs_f64() * 1e3);
            if best > 3.0 * best_so_far {
                break;
            }
        }
        Ok(VariantTiming {
            variant,
            ms: best,
            gflops: 2.0 * (s.m * s.n * s.k) as f64 / (best * 1e-3) / 1e9,
        })
    }
}
