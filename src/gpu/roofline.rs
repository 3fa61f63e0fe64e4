//! The roofline probe: measures an adapter's peak memory bandwidth (GB/s of
//! `roofline_copy`, a vec4 copy between two buffers far larger than any cache) and peak
//! f32 throughput (GFLOP/s of `roofline_fma`, independent fma chains), for the
//! [`crate::roofline`] fractions that `wgtrain profile` and `wgtrain bench` print.
//!
//! Timed with the profiler's clock ([`Profiler`]: GPU timestamps where the adapter has
//! them, else the host clock around a submit-and-wait), best of [`REPEATS`] launches (the
//! first, with its page faults and cold caches, is one of them). The fma kernel's grid grows from [`FMA_START_WORKGROUPS`] until one launch
//! takes [`FMA_TARGET_NS`], so the probe is short on lavapipe and on a large GPU alike and
//! the ~30 us a lavapipe dispatch costs stays under 1% of what is timed; every
//! invocation's rounds stay under the adapter's loop cap ([`Gpu::loop_cap`]).
//!
//! Results are cached per device ([`Gpu::id`]) and timing mode for the life of the process,
//! as the matmul timings of [`crate::gpu::autotune`] are.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::kernels::roofline::{self as k, WORKGROUP};
use crate::gpu::kernels::{Dispatch, Kernels, STEP_STRIDE, StepRecord};
use crate::gpu::profiler::{ProfileOptions, Profiler, TimingMode};
use crate::gpu::{Gpu, View};
use crate::roofline::Peaks;

/// Bytes of each of the copy's two buffers on a GPU: 256 MiB, five times an H100's 50 MB
/// of L2; less where the adapter's storage binding or buffer limit is smaller.
pub const COPY_BYTES: u64 = 256 << 20;

/// Bytes of each copy buffer on a CPU adapter (lavapipe): 64 MiB, twice this machine's
/// 32 MiB L3. A software adapter pays per storage instruction, not per byte (lavapipe
/// copied 2 to 128 MiB at the same 0.66-0.74 GB/s), so a larger copy only takes longer.
pub const COPY_BYTES_CPU_ADAPTER: u64 = 64 << 20;

/// Loop passes of each fma invocation ([`k::FMA_ROUNDS_PER_ITER`] rounds per chain each):
/// long enough that the chains, not the invocation's start and store, are what is timed,
/// and far under lavapipe's loop cap.
pub const FMA_ITERS: u32 = 4096;

/// One fma launch is grown until it takes this long (ns) on the probe's clock.
pub const FMA_TARGET_NS: f64 = 10e6;

/// Workgroups of 64 of the first fma launch (about 1 GFLOP at [`FMA_ITERS`]: 20-30 ms on
/// lavapipe, so it needs no second size there).
pub const FMA_START_WORKGROUPS: u64 = 16;

/// The largest fma launch, in workgroups (4M invocations, 64 MiB of outputs).
pub const FMA_MAX_WORKGROUPS: u64 = 1 << 16;

/// Timed launches of each kernel; the best counts.
pub const REPEATS: usize = 3;

/// The fma chain's `a` and `b`: `acc = fma(acc, a, b)` drifts slowly towards
/// `b / (1 - a) = 64`, so values stay finite and each output depends on its start.
pub const FMA_AB: (f32, f32) = (1.0 - 1.0 / 65_536.0, 1.0 / 1024.0);

/// What the probe measured on one device.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct RooflineProbe {
    /// The two roofs.
    pub peaks: Peaks,
    /// The clock they were measured with.
    pub mode: TimingMode,
    /// Bytes one copy moves (read plus written).
    pub copy_bytes: u64,
    /// FLOP of the timed fma launch.
    pub fma_flops: u64,
    /// Host wall time the probe took, s (pipelines, buffers, every launch).
    pub seconds: f64,
}

impl std::fmt::Display for RooflineProbe {
    /// `roofline probe: 85.3 GFLOP/s (fma, 4.29 GFLOP per launch), 9.87 GB/s (copy of
    /// 128 MiB), per-dispatch timing, best of 3, 0.31 s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::roofline::three_digits;
        write!(
            f,
            "roofline probe: {} GFLOP/s (fma, {} GFLOP per launch), {} GB/s (copy of {} MiB), {} timing, best of {REPEATS}, {:.2} s",
            three_digits(self.peaks.gflops),
            three_digits(self.fma_flops as f64 / 1e9),
            three_digits(self.peaks.gbps),
            (self.copy_bytes / 2) >> 20,
            self.mode,
            self.seconds
        )
    }
}

type ProbeCache = HashMap<(u64, TimingMode), RooflineProbe>;

static PROBES: LazyLock<Mutex<ProbeCache>> = LazyLock::new(Mutex::default);

fn with_cache<T>(f: impl FnOnce(&mut ProbeCache) -> T) -> T {
    f(&mut PROBES.lock().unwrap_or_else(|p| p.into_inner()))
}

/// The bytes of each copy buffer on `gpu`: [`COPY_BYTES`] ([`COPY_BYTES_CPU_ADAPTER`] on
/// a CPU adapter), or the largest multiple of 16 bytes the buffer and storage binding
/// limits allow.
pub fn copy_buffer_bytes(gpu: &Gpu) -> u64 {
    let want = if gpu.is_cpu_adapter() {
        COPY_BYTES_CPU_ADAPTER
    } else {
        COPY_BYTES
    };
    want.min(gpu.limits.max_storage_buffer_binding_size)
        .min(gpu.limits.max_buffer_size)
        / 16
        * 16
}

/// The loop passes of each fma invocation on `gpu`: [`FMA_ITERS`], fewer under a shorter
/// loop cap.
pub fn fma_iters(gpu: &Gpu) -> u32 {
    match gpu.loop_cap {
        Some(cap) => u64::from(FMA_ITERS).min(cap.saturating_sub(1)) as u32,
        None => FMA_ITERS,
    }
}

/// Measures `gpu`'s peaks with the clock `mode` (`None`: the best the adapter has, as
/// [`Profiler::new`] chooses), or returns this device's earlier result for that clock.
///
/// # Errors
/// As [`Profiler::new`] for `mode`; [`Error::LimitExceeded`] when a probe buffer does not
/// fit or the loop cap leaves no round; [`Error::Gpu`] on device errors, or when no launch
/// gave a valid time.
pub fn probe(gpu: &Gpu, kernels: &Kernels, mode: Option<TimingMode>) -> Result<RooflineProbe> {
    let profiler = Profiler::new(gpu, mode)?;
    let key = (gpu.id(), profiler.mode());
    if let Some(p) = with_cache(|c| c.get(&key).copied()) {
        return Ok(p);
    }
    let started = Instant::now();
    let steps = gpu.buffer(
        "roofline.steps",
        STEP_STRIDE,
        wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    );
    gpu.queue
        .write_buffer(&steps, 0, bytemuck::bytes_of(&StepRecord::default()));
    let steps = kernels.steps_bind_group(gpu, &steps);

    let bytes = copy_buffer_bytes(gpu);
    let hint = "the roofline probe's copy buffer is sized from the adapter's limits; this adapter reports inconsistent ones";
    let src = gpu.storage_buffer_hinted(
        "roofline.copy.src",
        bytes,
        wgpu::BufferUsages::empty(),
        hint,
    )?;
    let dst = gpu.storage_buffer_hinted(
        "roofline.copy.dst",
        bytes,
        wgpu::BufferUsages::empty(),
        hint,
    )?;
    let copy = k::copy(
        gpu,
        kernels,
        "roofline.copy",
        (bytes / 16) as usize,
        View::whole(&src),
        View::whole(&dst),
    )?;
    // No separate warm-up: the first launch (page faults, caches) is one of the repeats,
    // and only the best counts.
    let copy_ns = best_ns(&profiler, &copy, &steps, 0, REPEATS)?;
    let copy_bytes = copy.bytes;
    // The launch holds the buffers: free both before the fma launches.
    drop((copy, src, dst));

    let iters = fma_iters(gpu);
    let placeholder =
        gpu.storage_buffer("roofline.fma.placeholder", 16, wgpu::BufferUsages::empty())?;
    let mut workgroups = FMA_START_WORKGROUPS;
    let (fma, fma_ns) = loop {
        let threads = (workgroups * WORKGROUP) as usize;
        let out = gpu.storage_buffer(
            "roofline.fma.out",
            16 * threads as u64,
            wgpu::BufferUsages::empty(),
        )?;
        let d = k::fma(
            gpu,
            kernels,
            "roofline.fma",
            threads,
            iters,
            FMA_AB,
            View::whole(&placeholder),
            View::whole(&out),
        )?;
        // One launch sizes the next; the one that reaches the target is the first of the
        // repeats.
        let ns = best_ns(&profiler, &d, &steps, 0, 1)?;
        if ns >= FMA_TARGET_NS || workgroups >= FMA_MAX_WORKGROUPS {
            let best = ns.min(best_ns(&profiler, &d, &steps, 0, REPEATS - 1)?);
            break (d, best);
        }
        let grow = (FMA_TARGET_NS / ns).ceil().clamp(2.0, 64.0) as u64;
        workgroups = (workgroups * grow).min(FMA_MAX_WORKGROUPS);
    };
    let result = RooflineProbe {
        peaks: Peaks {
            gflops: fma.flops as f64 / fma_ns,
            gbps: copy_bytes as f64 / copy_ns,
        },
        mode: profiler.mode(),
        copy_bytes,
        fma_flops: fma.flops,
        seconds: started.elapsed().as_secs_f64(),
    };
    with_cache(|c| c.insert(key, result));
    Ok(result)
}

/// The best of `repeats` timed launches of `d` after `warmup` untimed ones, ns.
fn best_ns(
    profiler: &Profiler<'_>,
    d: &Dispatch,
    steps: &wgpu::BindGroup,
    warmup: usize,
    repeats: usize,
) -> Result<f64> {
    let profile = profiler.run(
        std::slice::from_ref(d),
        steps,
        1,
        &ProfileOptions {
            steps: repeats,
            warmup_steps: warmup,
        },
    )?;
    profile
        .timings
        .iter()
        .filter_map(|t| t.duration_ns.ok())
        .min_by(f64::total_cmp)
        .ok_or_else(|| Error::Gpu {
            context: format!("the roofline probe ({})", d.kernel),
            message: format!(
                "none of {repeats} launches gave a valid time ({} timing); try --timing host",
                profiler.mode()
            ),
        })
}
