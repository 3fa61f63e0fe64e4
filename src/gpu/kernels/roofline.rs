//! Wrapper of `shaders/roofline.wgsl`: the two probe kernels whose best times give an
//! adapter's roofline peaks ([`crate::gpu::roofline`]). Not training kernels.
//!
//! - `roofline_copy`: `dst[i] = src[i]` over `n4` vec4s, each invocation copying every
//!   `threads`-th vec4 from its own index on ([`COPY_VEC4S_PER_INVOCATION`] of them).
//!   Bytes: `2 · 16 · n4` (read + written), no FLOP.
//! - `roofline_fma`: invocation `t < threads` runs 8 independent vec4 chains of
//!   [`FMA_ROUNDS_PER_ITER`]` · iters` rounds `acc = fma(acc, a, b)`; chain `j` lane `c`
//!   starts at `f32(t & 1023) + (4·j + c) / 32` and `dst[t]` gets `acc0 + acc1 + ... +
//!   acc7`, summed in that order. FLOP: [`FMA_FLOPS_PER_ITER`] per loop pass per invocation
//!   (the final sum's 28 adds are not counted); bytes: the 16 written per invocation.
//!
//! Bindings: 0 params, 1 src `[n4]` vec4 (the fma kernel binds a 16-byte placeholder),
//! 2 dst `[n4]` vec4 (fma: `[threads]`). Grid: `ceil(threads / 64)` workgroups of 64,
//! folded past 65,535.

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::Result;
use crate::gpu::{Gpu, View};

/// The WGSL source.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/roofline.wgsl")
);

/// Invocations per workgroup of both kernels.
pub const WORKGROUP: u64 = 64;

/// vec4s each invocation of the copy moves: a few per invocation amortise its start, and
/// the loop stays far under any loop cap.
pub const COPY_VEC4S_PER_INVOCATION: u64 = 4;

/// Rounds of each fma chain per loop pass (`iters` counts passes).
pub const FMA_ROUNDS_PER_ITER: u32 = 4;

/// FLOP of one loop pass of the fma kernel in one invocation: 8 vec4 chains of
/// [`FMA_ROUNDS_PER_ITER`] fmas, 2 FLOP per lane.
pub const FMA_FLOPS_PER_ITER: u64 = 8 * 4 * FMA_ROUNDS_PER_ITER as u64 * 2;

/// Mirrors `struct RooflineParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub struct RooflineParams {
    /// Copy: vec4s to copy.
    pub n4: u32,
    /// Invocations that work: the copy's stride, the fma kernel's outputs.
    pub threads: u32,
    /// Fma: loop passes, [`FMA_ROUNDS_PER_ITER`] rounds of each chain each.
    pub iters: u32,
    pub _pad0: u32,
    /// Fma: `acc = fma(acc, a, b)`.
    pub a: f32,
    pub b: f32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// The family: entry points `roofline_copy` and `roofline_fma`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "roofline",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, false),
    ],
};

/// Loop iterations one invocation runs (the rounds and the exiting pass), as
/// [`crate::gpu::context::LLVMPIPE_LOOP_CAP`] counts them: the same for both kernels, with
/// `passes` the copy's vec4s per invocation or the fma kernel's `iters`.
pub fn loop_passes(passes: u64) -> u64 {
    passes + 1
}

/// The bind group of one launch: `params` in a uniform buffer of its own, `src`, `dst`.
fn bind_group(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    params: RooflineParams,
    src: wgpu::BindingResource<'_>,
    dst: wgpu::BindingResource<'_>,
) -> wgpu::BindGroup {
    let ub = params_buffer(gpu, label, &params);
    let layout = kernels.bind_group_layout(gpu, &FAMILY);
    gpu.bind_group(
        label,
        &layout,
        &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ub.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: src,
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: dst,
            },
        ],
    )
}

/// Prepares a copy of the first `n4` vec4s of `src` into `dst` (both at least `4 · n4`
/// floats, 16-byte aligned).
///
/// # Errors
/// [`crate::Error::InvalidConfig`] when a view is too short or misaligned;
/// [`crate::Error::LimitExceeded`] when the grid, or [`COPY_VEC4S_PER_INVOCATION`] loop
/// passes, do not fit the adapter.
pub fn copy(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    n4: usize,
    src: View<'_>,
    dst: View<'_>,
) -> Result<Dispatch> {
    let threads = (n4 as u64).div_ceil(COPY_VEC4S_PER_INVOCATION).max(1);
    gpu.check_loop_passes(
        &format!("{label} (roofline_copy)"),
        loop_passes(COPY_VEC4S_PER_INVOCATION),
        "raise the loop cap",
    )?;
    let params = RooflineParams {
        n4: u32::try_from(n4).map_err(|_| too_many(label, n4 as u64))?,
        threads: threads as u32,
        ..RooflineParams::default()
    };
    let bind_group = bind_group(
        gpu,
        kernels,
        label,
        params,
        src.vec4_binding("roofline_copy src", 4 * n4)?,
        dst.vec4_binding("roofline_copy dst", 4 * n4)?,
    );
    Ok(Dispatch {
        kernel: "roofline_copy",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "roofline_copy", &[]),
        bind_group,
        grid: gpu.grid_1d(label, threads.div_ceil(WORKGROUP))?,
        splits: Vec::new(),
        flops: 0,
        bytes: 2 * 16 * n4 as u64,
        shape: format!("n={} MiB", (16 * n4) >> 20),
    })
}

/// Prepares `threads` invocations of `iters` loop passes of fma rounds
/// (`acc = fma(acc, a, b)`, [`FMA_ROUNDS_PER_ITER`] per pass and chain), each
/// storing its vec4 sum to `dst[t]` (`dst`: at least `4 · threads` floats); `placeholder` is
/// any 16-byte aligned view of at least 4 floats other than `dst`, for the unused source
/// binding.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when `iters` rounds exceed the adapter's loop cap or the
/// grid does not fit; [`crate::Error::InvalidConfig`] when a view is too short.
#[allow(clippy::too_many_arguments)]
pub fn fma(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    threads: usize,
    iters: u32,
    (a, b): (f32, f32),
    placeholder: View<'_>,
    dst: View<'_>,
) -> Result<Dispatch> {
    gpu.check_loop_passes(
        &format!("{label} (roofline_fma)"),
        loop_passes(u64::from(iters)),
        "use fewer rounds",
    )?;
    let params = RooflineParams {
        threads: u32::try_from(threads).map_err(|_| too_many(label, threads as u64))?,
        iters,
        a,
        b,
        ..RooflineParams::default()
    };
    let bind_group = bind_group(
        gpu,
        kernels,
        label,
        params,
        placeholder.vec4_binding("roofline_fma placeholder", 4)?,
        dst.vec4_binding("roofline_fma dst", 4 * threads)?,
    );
    Ok(Dispatch {
        kernel: "roofline_fma",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "roofline_fma", &[]),
        bind_group,
        grid: gpu.grid_1d(label, (threads as u64).div_ceil(WORKGROUP))?,
        splits: Vec::new(),
        flops: FMA_FLOPS_PER_ITER * u64::from(iters) * threads as u64,
        bytes: 16 * threads as u64,
        shape: format!("threads={threads} iters={iters}"),
    })
}

fn too_many(label: &str, n: u64) -> crate::Error {
    crate::Error::LimitExceeded {
        what: format!("{label}: the roofline probe's 32-bit element count"),
        requested: n,
        max: u64::from(u32::MAX),
        unit: "elements",
        hint: "a smaller probe buffer".into(),
    }
}
