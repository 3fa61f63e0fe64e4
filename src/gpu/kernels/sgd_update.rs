//! Wrapper of `shaders/sgd_update.wgsl`: one launch updates the whole flat parameter
//! buffer with `torch.optim.SGD` semantics (coupled weight decay, momentum with dampening,
//! nesterov), or SGDW's decoupled decay.
//!
//! Bindings: 0 params, 1 parameters `[P]` (read-write), 2 gradients `[P]`, 3 momentum
//! buffer `[P]`, 4 no-decay ranges `[R]` of `[start, end)`, 5 status `[2]`. Grid:
//! `ceil(P / (256 · 4 · ITEMS))` workgroups, folded; the parameter, gradient and momentum
//! buffers are read as vec4 and must hold whole vec4s past `P` (see [`View::vec4_binding`]).

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::Result;
use crate::gpu::{Gpu, View};
use crate::optim::SgdConfig;

/// vec4s per invocation (`ITEMS` in the shader): 16 elements.
pub const ITEMS: u64 = 4;

/// The WGSL source.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/sgd_update.wgsl")
);

/// Mirrors `struct SgdUpdateParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SgdUpdateParams {
    pub len: u32,
    pub ranges: u32,
    pub nesterov: u32,
    pub decoupled: u32,
    pub weight_decay: f32,
    pub momentum: f32,
    pub dampening: f32,
    pub _pad: u32,
}

/// The family: entry point `sgd_update`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "sgd_update",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        storage_entry(1, false),
        storage_entry(2, true),
        storage_entry(3, false),
        storage_entry(4, true),
        storage_entry(5, true),
    ],
};

/// Buffers of one SGD launch. `no_decay` holds `ranges` pairs of u32 `[start, end)`
/// (at least one pair, unused when `ranges` is 0).
pub struct SgdUpdateBuffers<'a> {
    pub params: View<'a>,
    pub grads: View<'a>,
    pub velocity: View<'a>,
    pub no_decay: View<'a>,
    pub status: View<'a>,
}

/// Prepares the update of `len` parameters.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the grid does not fit the adapter, or the no-decay
/// ranges would run one invocation past the adapter's loop cap ([`Gpu::loop_cap`]).
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SgdUpdateBuffers<'_>,
    len: usize,
    ranges: usize,
    cfg: &SgdConfig,
) -> Result<Dispatch> {
    // Loop passes per invocation: ITEMS + 1, and per item the no-decay ranges + 1.
    gpu.check_loop_passes(
        &format!("{label} (sgd_update over {ranges} no-decay ranges)"),
        ITEMS + 1 + ITEMS * (ranges as u64 + 1),
        "use fewer layers or drop --no-decay-bias",
    )?;
    let params = SgdUpdateParams {
        len: len as u32,
        ranges: ranges as u32,
        nesterov: u32::from(cfg.nesterov),
        decoupled: u32::from(cfg.decoupled_weight_decay),
        weight_decay: cfg.weight_decay as f32,
        momentum: cfg.momentum as f32,
        dampening: cfg.dampening as f32,
        _pad: 0,
    };
    let ub = params_buffer(gpu, label, &params);
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
                resource: bufs.params.vec4_binding("sgd parameters", len)?,
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: bufs.grads.vec4_binding("sgd gradients", len)?,
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: bufs.velocity.vec4_binding("sgd velocity", len)?,
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: bufs.no_decay.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 5,
                resource: bufs.status.binding(),
            },
        ],
    );
    Ok(Dispatch {
        kernel: "sgd_update",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "sgd_update", &[]),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, (len as u64).div_ceil(256 * 4 * ITEMS))?,
        flops: 6 * len as u64,
        bytes: 4 * 5 * len as u64,
        shape: format!("P={len}"),
    })
}
