//! Wrapper of `shaders/column_sum.wgsl`: `out[n] = Σ_m x[m, n]`, the bias gradient
//! `db [O] = colsum(dY [B, O])`, summed in row order (deterministic).
//!
//! Bindings: 0 params, 1 x `[M, N]`, 2 out `[N]`. Grid: `ceil(N / 64)` workgroups. Under an
//! adapter loop cap ([`Gpu::loop_cap`]) shorter than M, the rows are split into chunks of
//! `cap - 1`, one dispatch each, summed in order ([`Dispatch::splits`]).

use super::{
    Dispatch, KernelFamily, Kernels, matmul::BatchDim, params_buffer, storage_entry, uniform_entry,
};
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
    /// This dispatch's chunk of rows, `[r_begin, min(r_end, M))`.
    pub r_begin: u32,
    pub r_end: u32,
    /// Members (K >= 1): sums in this launch, and floats between members'
    /// `x` and `out`.
    pub members: u32,
    pub stride_x: u32,
    pub stride_out: u32,
}

/// Loop iterations one invocation runs over a chunk of `rows` rows (the row loop and its
/// exit pass), as [`crate::gpu::context::LLVMPIPE_LOOP_CAP`] counts them.
pub fn loop_passes(rows: u64) -> u64 {
    rows + 1
}

/// The chunks of rows `[begin, end)` summed in order on `gpu`: one chunk `[0, m)` unless
/// the adapter's loop cap is shorter.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the cap leaves no row at all (a cap of 1).
pub fn row_chunks(gpu: &Gpu, label: &str, m: usize) -> Result<Vec<(usize, usize)>> {
    match gpu.loop_cap {
        Some(cap) if loop_passes(m as u64) > cap => {
            let len = cap.saturating_sub(1) as usize;
            if len == 0 {
                return Err(gpu.loop_cap_exceeded(
                    &format!("{label} (column_sum, one row)"),
                    loop_passes(1),
                    "raise the loop cap",
                ));
            }
            Ok((0..m).step_by(len).map(|b| (b, (b + len).min(m))).collect())
        }
        _ => Ok(vec![(0, m)]),
    }
}

/// The family: entry point `column_sum`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "column_sum",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, false),
    ],
};

/// Prepares one column-sum launch over `x [m, n]` for `members = (count, stride_x,
/// stride_out)` (`(1, 0, 0)` for one model): member j sums `x` from float `j · stride_x`
/// into `out` from float `j · stride_out`, all in one launch of `count · ceil(N / 64)`
/// workgroups. With `BatchDim::M`, M is the step's minibatch size.
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
    members: (usize, usize, usize),
    x: View<'_>,
    out: View<'_>,
) -> Result<Dispatch> {
    let (count, stride_x, stride_out) = members;
    let layout = kernels.bind_group_layout(gpu, &FAMILY);
    let mut bind_groups = Vec::new();
    for (r_begin, r_end) in row_chunks(gpu, label, m)? {
        let params = ColumnSumParams {
            m: m as u32,
            n: n as u32,
            batch_dim: batch_dim as u32,
            r_begin: r_begin as u32,
            r_end: r_end as u32,
            members: count as u32,
            stride_x: stride_x as u32,
            stride_out: stride_out as u32,
        };
        let ub = params_buffer(gpu, label, &params);
        bind_groups.push(gpu.bind_group(
            label,
            &layout,
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
        ));
    }
    let bind_group = bind_groups.remove(0);
    Ok(Dispatch {
        kernel: "column_sum",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "column_sum", &[]),
        bind_group,
        splits: bind_groups,
        grid: gpu.grid_1d(label, (n as u64).div_ceil(64) * count as u64)?,
        flops: (m * n * count) as u64,
        bytes: 4 * ((m * n + n) * count) as u64,
        shape: format!("M={m} N={n}"),
    })
}
