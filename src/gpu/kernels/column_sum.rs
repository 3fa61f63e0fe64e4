//! Wrapper of `shaders/column_sum.wgsl`: `out[n] = Σ_m x[m, n]`, the bias gradient
//! `db [O] = colsum(dY [B, O])`, summed in row order (deterministic).
//!
//! Bindings: 0 params, 1 x `[M, N]`, 2 out `[N]`. Grid: `ceil(N / 64)` workgroups.

use super::{Dispatch, Kernels, matmul::BatchDim, params_buffer, storage_entry, uniform_entry};
use crate::error::Result;
use crate::gpu::{Gpu, View};

/// The WGSL source.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/column_sum.wgsl")
);

/// Mirrors `struct ColumnSumParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ColumnSumParams {
    pub m: u32,
    pub n: u32,
    pub batch_dim: u32,
    pub _pad: u32,
}

pub(crate) fn layout_entries() -> Vec<wgpu::BindGroupLayoutEntry> {
    vec![
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, false),
    ]
}

/// Prepares one column-sum launch over `x [m, n]`; with `BatchDim::M`, M is the step's
/// minibatch size.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the grid does not fit the adapter.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    m: usize,
    n: usize,
    batch_dim: BatchDim,
    x: View<'_>,
    out: View<'_>,
) -> Result<Dispatch> {
    let params = ColumnSumParams {
        m: m as u32,
        n: n as u32,
        batch_dim: batch_dim as u32,
        _pad: 0,
    };
    let ub = params_buffer(gpu, label, &params);
    let bind_group = gpu.bind_group(
        label,
        &kernels.column_sum.layout,
        &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ub.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: x.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: out.binding(),
            },
        ],
    );
    Ok(Dispatch {
        kernel: "column_sum",
        label: label.to_string(),
        pipeline: kernels.column_sum_pipeline.clone(),
        bind_group,
        grid: gpu.grid_1d(label, (n as u64).div_ceil(64))?,
        flops: (m * n) as u64,
        bytes: 4 * (m * n + n) as u64,
        shape: format!("M={m} N={n}"),
    })
}
