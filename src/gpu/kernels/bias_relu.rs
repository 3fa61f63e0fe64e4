//! Wrapper of `shaders/bias_relu.wgsl`: the unfused elementwise ops, the composed slow
//! version the fused matmul epilogues are tested against.
//!
//! `bias_relu_forward`: `y [M, N] = max(0, y + bias [N])` in place (or without the max);
//! `relu_backward`: `dx [M, N] = dy ⊙ [h > 0]`. Bindings: 0 params, 1 operand (bias or h),
//! 2 upstream (dy), 3 result. Grid: `ceil(M·N / 256)`, folded.

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::Result;
use crate::gpu::{Gpu, View};

/// The WGSL source.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/bias_relu.wgsl")
);

/// Mirrors `struct BiasReluParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BiasReluParams {
    pub m: u32,
    pub n: u32,
    pub relu: u32,
    pub _pad: u32,
}

/// The family: entry points `bias_relu_forward` and `relu_backward`. Test-only (the
/// engine fuses both into the matmul epilogues), so built only when a test launches it.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "bias_relu",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, true),
        storage_entry(3, false),
    ],
};

fn build(
    gpu: &Gpu,
    kernels: &Kernels,
    kernel: &'static str,
    label: &str,
    m: usize,
    n: usize,
    relu: bool,
    views: [View<'_>; 3],
) -> Result<Dispatch> {
    let params = BiasReluParams {
        m: m as u32,
        n: n as u32,
        relu: u32::from(relu),
        _pad: 0,
    };
    let ub = params_buffer(gpu, label, &params);
    let [operand, upstream, result] = views;
    let bind_group = gpu.bind_group(
        label,
        &kernels.bind_group_layout(gpu, &FAMILY),
        &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ub.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: operand.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: upstream.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: result.binding(),
            },
        ],
    );
    let mn = (m * n) as u64;
    Ok(Dispatch {
        kernel,
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, kernel, &[]),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, mn.div_ceil(256))?,
        flops: mn,
        bytes: 12 * mn,
        shape: format!("M={m} N={n}"),
    })
}

/// `y [m, n] = y + bias [n]`, then ReLU when `relu`. `dummy` fills the unused slot.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the grid does not fit the adapter.
#[allow(clippy::too_many_arguments)]
pub fn forward(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    m: usize,
    n: usize,
    relu: bool,
    bias: View<'_>,
    y: View<'_>,
    dummy: View<'_>,
) -> Result<Dispatch> {
    build(
        gpu,
        kernels,
        "bias_relu_forward",
        label,
        m,
        n,
        relu,
        [bias, dummy, y],
    )
}

/// `dx [m, n] = dy ⊙ [h > 0]`.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the grid does not fit the adapter.
#[allow(clippy::too_many_arguments)]
pub fn relu_backward(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    m: usize,
    n: usize,
    h: View<'_>,
    dy: View<'_>,
    dx: View<'_>,
) -> Result<Dispatch> {
    build(
        gpu,
        kernels,
        "relu_backward",
        label,
        m,
        n,
        false,
        [h, dy, dx],
    )
}
