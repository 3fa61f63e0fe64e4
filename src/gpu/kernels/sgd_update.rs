//! Wrapper of `shaders/sgd_update.wgsl`: one launch updates every member's flat parameter
//! buffer with `torch.optim.SGD` semantics (coupled weight decay, momentum with dampening,
//! nesterov), or SGDW's decoupled decay; and the layout of the **SGD table**, the one route
//! by which hyperparameters reach the kernels: this launch and the matmul SGD epilogue
//! (`matmul::sgd`) read the same words.
//!
//! The SGD table (u32 words, [`SgdTable`]): the no-decay ranges (every bias, `[start,
//! end)` pairs, member-relative), then 8 words of settings per member
//! ([`member_settings`]), then the epoch's member steps `[steps, K]`
//! ([`crate::step::MemberStep`]: learning rate, flags, gradient scale). Changing a member's
//! settings writes its 8 words; the member steps are written once per epoch.
//!
//! Bindings: 0 params, 1 parameters `[K, P_pad]` (read-write), 2 gradients, 3 momentum
//! buffer (same layout) followed by the members' gradient sums `[K, P_pad]` (the running
//! sum of a minibatch that spans several micro-steps, [`crate::step`]), 4 the SGD table, 5
//! the training metrics (member j's status word at `j · stride_status`). Grid: per member `ceil(P_pad / (256 · 4 · ITEMS))` workgroups,
//! folded; the parameter, gradient and momentum buffers are read as vec4 and must hold
//! whole vec4s (see [`View::vec4_binding`]).

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::Result;
use crate::gpu::{Gpu, View};
use crate::optim::SgdConfig;

/// vec4s per invocation (`ITEMS` in the shader): 16 elements.
pub const ITEMS: u64 = 4;

/// Words of one member's settings in the SGD table ([`member_settings`]).
pub const SETTINGS_WORDS: usize = 8;

/// Words of one member's step in the SGD table ([`crate::step::MemberStep`]).
pub const STEP_WORDS: usize = 3;

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
    pub members: u32,
    pub stride: u32,
    pub hyper_offset: u32,
    pub steps_offset: u32,
    pub stride_status: u32,
    pub sum_offset: u32,
}

/// Where the parts of an SGD table start, in u32 words, for `members` members and epochs of
/// up to `max_steps` steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SgdTable {
    /// Number of no-decay ranges at the head of the table (pairs of words).
    pub ranges: usize,
    /// K.
    pub members: usize,
    /// Most steps an epoch has (rows of the member-step table).
    pub max_steps: usize,
    /// First word of member 0's settings.
    pub hyper_offset: usize,
    /// First word of the member-step table.
    pub steps_offset: usize,
}

impl SgdTable {
    /// The layout for `ranges` no-decay ranges, `members` members and `max_steps` steps.
    pub fn new(ranges: usize, members: usize, max_steps: usize) -> SgdTable {
        let hyper_offset = 2 * ranges;
        SgdTable {
            ranges,
            members,
            max_steps,
            hyper_offset,
            steps_offset: hyper_offset + SETTINGS_WORDS * members,
        }
    }

    /// Words of the whole table.
    pub fn words(&self) -> usize {
        self.steps_offset + STEP_WORDS * self.members * self.max_steps
    }

    /// Word where member `member`'s settings start.
    pub fn settings_at(&self, member: usize) -> usize {
        self.hyper_offset + SETTINGS_WORDS * member
    }
}

/// One member's settings as the table holds them: weight decay, momentum and dampening
/// as f32 bits, nesterov, decoupled decay, decay_bias (0: the no-decay ranges apply), 2
/// unused.
pub fn member_settings(cfg: &SgdConfig) -> [u32; SETTINGS_WORDS] {
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

/// Buffers of one SGD launch: parameters, gradients and momentum `[K, stride]`, the SGD
/// table ([`SgdTable`]) and the training metrics (the members' status words).
pub struct SgdUpdateBuffers<'a> {
    pub params: View<'a>,
    pub grads: View<'a>,
    /// The momentum `[K, stride]`, then the gradient sums `[K, stride]`, which only member
    /// steps that sum ([`crate::step::MemberStep::sums`]) touch: a launch whose steps never
    /// sum may bind the momentum alone.
    pub velocity: View<'a>,
    pub table: View<'a>,
    pub status: View<'a>,
}

/// Prepares the update of `table.members` members of `len` parameters each, `stride`
/// floats apart (a multiple of 4, at least `len`), member j's status word `stride_status`
/// floats after member j - 1's.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when the grid does not fit the adapter, or the no-decay
/// ranges would run one invocation past the adapter's loop cap ([`Gpu::loop_cap`]).
///
/// # Panics
/// When `stride` is not a multiple of 4 at least `len` (a caller's bug).
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SgdUpdateBuffers<'_>,
    (len, stride): (usize, usize),
    table: &SgdTable,
    stride_status: usize,
) -> Result<Dispatch> {
    let ranges = table.ranges;
    // Loop passes per invocation: ITEMS + 1, and per item the no-decay ranges + 1.
    gpu.check_loop_passes(
        &format!("{label} (sgd_update over {ranges} no-decay ranges)"),
        ITEMS + 1 + ITEMS * (ranges as u64 + 1),
        "use fewer layers",
    )?;
    assert!(stride >= len && stride.is_multiple_of(4));
    let k = table.members;
    let params = SgdUpdateParams {
        len: len as u32,
        ranges: ranges as u32,
        members: k as u32,
        stride: stride as u32,
        hyper_offset: table.hyper_offset as u32,
        steps_offset: table.steps_offset as u32,
        stride_status: stride_status as u32,
        sum_offset: (k * stride) as u32,
    };
    let total = k * stride;
    // The momentum, and the gradient sums after it as far as the view reaches.
    let velocity_len = bufs.velocity.len.clamp(total, 2 * total) / 4 * 4;
    // Each member's vector starts a new workgroup (the shader reads its settings once).
    let per_member = (stride as u64 / 4).div_ceil(256 * ITEMS);
    let workgroups = k as u64 * per_member;
    let ub = params_buffer(gpu, label, &params);
    let bind_group = gpu.bind_group(
        label,
        &kernels.bind_group_layout(gpu, &FAMILY),
        &[
            (0, ub.as_entire_binding()),
            (1, bufs.params.vec4_binding("sgd parameters", total)?),
            (2, bufs.grads.vec4_binding("sgd gradients", total)?),
            (3, bufs.velocity.vec4_binding("sgd velocity", velocity_len)?),
            (4, bufs.table.binding()),
            (5, bufs.status.binding()),
        ]
        .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource }),
    );
    Ok(Dispatch {
        kernel: "sgd_update",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "sgd_update", &[]),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, workgroups)?,
        flops: 6 * (k * len) as u64,
        bytes: 4 * 5 * (k * len) as u64,
        shape: if k == 1 {
            format!("P={len}")
        } else {
            format!("{k}x P={len}")
        },
    })
}
