//! Wrapper of `shaders/sgd_update.wgsl`: one launch updates the whole flat parameter
//! buffer with `torch.optim.SGD` semantics (coupled weight decay, momentum with dampening,
//! nesterov), or SGDW's decoupled decay.
//!
//! Bindings: 0 params, 1 parameters `[P]` (read-write), 2 gradients `[P]`, 3 momentum
//! buffer `[P]`, 4 no-decay ranges `[R]` of `[start, end)` (for `sgd_update_members`
//! followed by the members' settings and steps, [`SgdMembers`]), 5 status `[2]`. Grid:
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
    include_str!("../../../shaders/sgd_step.wgsl"),
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
    pub _pad0: u32,
    /// `sgd_update_members` only ([`SgdMembers`]).
    pub members: u32,
    pub stride: u32,
    pub hyper_offset: u32,
    pub steps_offset: u32,
    pub stride_status: u32,
    pub _pad1: [u32; 3],
}

/// Where `sgd_update_members` finds each member (population training): `count` parameter
/// vectors `stride` floats apart (a multiple of 4, at least P) in the parameter, gradient
/// and momentum buffers; in the table bound as `no_decay`, after the no-decay ranges, the
/// per-member settings ([`member_settings`], 8 words each) at word `hyper_offset` and the
/// epoch's `[steps, count]` [`crate::population::MemberStep`] table at word `steps_offset`;
/// member j's status word at float `j · stride_status` of `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgdMembers {
    pub count: usize,
    pub stride: usize,
    pub hyper_offset: usize,
    pub steps_offset: usize,
    pub stride_status: usize,
}

/// One member's settings as `sgd_update_members` reads them from its table: weight decay,
/// momentum and dampening as f32 bits, nesterov, decoupled decay, decay_bias, 2 unused.
pub fn member_settings(cfg: &SgdConfig) -> [u32; 8] {
    [
        (cfg.weight_decay as f32).to_bits(),
        (cfg.momentum as f32).to_bits(),
        (cfg.dampening as f32).to_bits(),
        u32::from(cfg.nesterov),
        u32::from(cfg.decoupled_weight_decay),
        u32::from(cfg.decay_bias),
        0,
        0,
    ]
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
        _pad0: 0,
        members: 1,
        stride: len.next_multiple_of(4) as u32,
        hyper_offset: 0,
        steps_offset: 0,
        stride_status: 0,
        _pad1: [0; 3],
    };
    let workgroups = (len as u64).div_ceil(256 * 4 * ITEMS);
    build(
        gpu,
        kernels,
        label,
        bufs,
        (len, workgroups),
        params,
        "sgd_update",
        len,
    )
}

/// The update of every member of a population ([`SgdMembers`]) in one launch over
/// `count · stride` floats, entry point `sgd_update_members`: member j with its own
/// settings, learning rate and flags, skipped when frozen or flagged non-finite. `ranges`
/// no-decay ranges (member-relative) open the table; members with `decay_bias` ignore them.
///
/// # Errors
/// As [`dispatch`].
pub fn dispatch_members(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SgdUpdateBuffers<'_>,
    len: usize,
    ranges: usize,
    members: SgdMembers,
) -> Result<Dispatch> {
    gpu.check_loop_passes(
        &format!("{label} (sgd_update over {ranges} no-decay ranges)"),
        ITEMS + 1 + ITEMS * (ranges as u64 + 1),
        "use fewer layers",
    )?;
    assert!(members.stride >= len && members.stride.is_multiple_of(4));
    let params = SgdUpdateParams {
        len: len as u32,
        ranges: ranges as u32,
        nesterov: 0,
        decoupled: 0,
        weight_decay: 0.0,
        momentum: 0.0,
        dampening: 0.0,
        _pad0: 0,
        members: members.count as u32,
        stride: members.stride as u32,
        hyper_offset: members.hyper_offset as u32,
        steps_offset: members.steps_offset as u32,
        stride_status: members.stride_status as u32,
        _pad1: [0; 3],
    };
    let total = members.count * members.stride;
    // Each member's vector starts a new workgroup (the shader reads its settings once).
    let per_member = (members.stride as u64 / 4).div_ceil(256 * ITEMS);
    let workgroups = members.count as u64 * per_member;
    let sizes = (total, workgroups);
    build(
        gpu,
        kernels,
        label,
        bufs,
        sizes,
        params,
        "sgd_update_members",
        len,
    )
}

/// The launch of `entry` over `total` floats of the parameter buffers (`len` per member)
/// in `workgroups` workgroups.
#[allow(clippy::too_many_arguments)]
fn build(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SgdUpdateBuffers<'_>,
    (total, workgroups): (usize, u64),
    params: SgdUpdateParams,
    entry: &'static str,
    len: usize,
) -> Result<Dispatch> {
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
                resource: bufs.params.vec4_binding("sgd parameters", total)?,
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: bufs.grads.vec4_binding("sgd gradients", total)?,
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: bufs.velocity.vec4_binding("sgd velocity", total)?,
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
        kernel: entry,
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, entry, &[]),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, workgroups)?,
        flops: 6 * total as u64,
        bytes: 4 * 5 * total as u64,
        shape: if total == len {
            format!("P={len}")
        } else {
            format!("{}x P={len}", total / params.stride as usize)
        },
    })
}
