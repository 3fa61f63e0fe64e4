//! Wrapper of `shaders/gather_normalize.wgsl`: gathers a minibatch from the u8 dataset
//! resident on the GPU and normalises it.
//!
//! `x[b, i] = (pixels[order[offset + b], i] / 255 - mean) / std`, `y[b] = labels[order[offset + b]]`,
//! shapes `x [B, I]`, `y [B]`. Bindings: 0 params, 1 pixels (packed u8, 4 per u32),
//! 2 labels `[N]` u32, 3 order `[N]` u32, 4 x (whole vec4s), 5 y. Grid: `ceil(B·I / 256)`
//! workgroups of 64 (four elements per invocation), folded.

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry, whole};
use crate::error::Result;
use crate::gpu::Gpu;

/// Output elements per workgroup: 64 invocations of four elements each.
pub const ELEMENTS_PER_WORKGROUP: u64 = 256;

/// The WGSL source.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/gather_normalize.wgsl")
);

/// Mirrors `struct GatherNormalizeParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherNormalizeParams {
    /// I: values per sample.
    pub features: u32,
    pub mean: f32,
    pub std_dev: f32,
    pub _pad: u32,
}

/// The family: entry point `gather_normalize`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "gather_normalize",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, true),
        storage_entry(3, true),
        storage_entry(4, false),
        storage_entry(5, false),
    ],
};

/// Buffers of one gather launch.
pub struct GatherNormalizeBuffers<'a> {
    /// The dataset's pixels, `[N, I]` u8 packed four per u32 word.
    pub pixels: &'a wgpu::Buffer,
    /// `[N]` u32 labels.
    pub labels: &'a wgpu::Buffer,
    /// `[N]` u32 sample order of the epoch.
    pub order: &'a wgpu::Buffer,
    /// `[B_max, I]` f32 output.
    pub x: &'a wgpu::Buffer,
    /// `[B_max]` u32 output.
    pub y: &'a wgpu::Buffer,
}

/// Prepares one gather launch for minibatches of up to `max_batch` samples of `features` values.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the grid does not fit the adapter.
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: GatherNormalizeBuffers<'_>,
    features: usize,
    max_batch: usize,
    mean: f32,
    std: f32,
) -> Result<Dispatch> {
    let params = GatherNormalizeParams {
        features: features as u32,
        mean,
        std_dev: std,
        _pad: 0,
    };
    let ub = params_buffer(gpu, label, &params);
    let bind_group = gpu.bind_group(
        label,
        &kernels.bind_group_layout(gpu, &FAMILY),
        &[
            whole(0, &ub),
            whole(1, bufs.pixels),
            whole(2, bufs.labels),
            whole(3, bufs.order),
            whole(4, bufs.x),
            whole(5, bufs.y),
        ],
    );
    let elems = (max_batch * features) as u64;
    Ok(Dispatch {
        kernel: "gather_normalize",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "gather_normalize", &[]),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, elems.div_ceil(ELEMENTS_PER_WORKGROUP))?,
        flops: 0,
        bytes: elems * 5 + max_batch as u64 * 8,
        shape: format!("B={max_batch} I={features}"),
    })
}
