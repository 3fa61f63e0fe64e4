//! Wrapper of `shaders/softmax_cross_entropy.wgsl`: per-row loss and correct flag,
//! `dlogits = (softmax - onehot) / B`, and the minibatch's loss sum and correct count, in
//! one single-workgroup launch (a fixed-order tree, no float atomics).
//!
//! Shapes: logits `[B, C]`, labels `[B]` u32, dlogits `[B, C]`, rows `[B, 2]`
//! (loss, correct), metrics `[4 + steps·2]`: a status header (word 0 is 1.0 once a step's
//! loss was not finite, word 1 that step's index as u32 bits), then Σ loss and Σ correct per
//! step. Bindings: 0 params, 1 logits, 2 labels, 3 dlogits, 4 rows, 5 metrics, 6 dbias.
//! Grid: 1 workgroup, or one per member of a population ([`dispatch_members`]).
//!
//! Fused bias gradient: given `dbias` (`[C]`, training only), the launch also writes the
//! last layer's bias gradient `db[c] = Σ_b dlogits[b, c]`, summed over the rows in order
//! 0..B as `column_sum` does (the same bits), which saves the step that `column_sum`
//! launch.

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::Result;
use crate::gpu::{Gpu, View};

/// The WGSL source.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/softmax_cross_entropy.wgsl")
);

/// Mirrors `struct SoftmaxCrossEntropyParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxCrossEntropyParams {
    /// C: classes.
    pub classes: u32,
    /// 0: do not write dlogits (evaluation).
    pub write_grad: u32,
    /// Members (population training): workgroups, one per member, and floats between
    /// members' logits (and dlogits), rows and metrics.
    pub members: u32,
    pub stride_logits: u32,
    pub stride_rows: u32,
    pub stride_metrics: u32,
    /// 1: also write `db = colsum(dlogits)` into dbias (with `write_grad`).
    pub write_bias: u32,
    /// Floats between members' dbias.
    pub stride_bias: u32,
}

/// The members of one softmax-cross-entropy launch (population training): `count`
/// workgroups, member j's logits and dlogits `logits` floats after member j - 1's, its rows
/// `rows` floats after, its metrics (status header and per-step sums) `metrics` floats
/// after, its fused bias gradient `bias` floats after; the labels are shared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LossMembers {
    pub count: usize,
    pub logits: usize,
    pub rows: usize,
    pub metrics: usize,
    pub bias: usize,
}

impl LossMembers {
    /// One member: the plain kernel.
    pub const ONE: LossMembers = LossMembers {
        count: 1,
        logits: 0,
        rows: 0,
        metrics: 0,
        bias: 0,
    };
}

/// The family: entry point `softmax_cross_entropy`, one pipeline per class count (the
/// override constant `CLASSES`: with a uniform loop bound, lavapipe leaks about 0.8 MB per
/// dispatch, docs/performance.md).
pub const FAMILY: KernelFamily = KernelFamily {
    name: "softmax_cross_entropy",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, true),
        storage_entry(3, false),
        storage_entry(4, false),
        storage_entry(5, false),
        storage_entry(6, false),
    ],
};

/// Buffers of one softmax-cross-entropy launch.
pub struct SoftmaxCrossEntropyBuffers<'a> {
    pub logits: View<'a>,
    pub labels: View<'a>,
    pub dlogits: View<'a>,
    pub rows: View<'a>,
    /// `[4 + steps·2]`: status header, then per-step sums.
    pub metrics: View<'a>,
    /// `[C]` (per member): the last layer's bias gradient `colsum(dlogits)`, written when
    /// given (training only; `None` leaves it to a `column_sum` launch).
    pub dbias: Option<View<'a>>,
}

/// f32 words before the per-step sums in a metrics buffer (the status header).
pub const METRICS_HEADER: usize = 4;

/// Loop iterations one invocation runs for minibatches of up to `max_batch` rows of
/// `classes` logits, as [`crate::gpu::context::LLVMPIPE_LOOP_CAP`] counts them: each of the
/// 256 invocations walks `T = ceil(B / 256)` rows, each through three class loops (argmax
/// `C`, sum `C + 1`, gradient `C + 1` passes) and its own loop pass: `T·(3C + 3) + 1`;
/// with the fused bias gradient (`fused_bias`), `ceil(C / 256)` column passes of `B + 1`
/// row passes each, and 1, more.
pub fn loop_passes(max_batch: usize, classes: usize, fused_bias: bool) -> u64 {
    let b = max_batch as u64;
    let plain = b.div_ceil(256) * (3 * classes as u64 + 3) + 1;
    if fused_bias {
        plain + (classes as u64).div_ceil(256) * (b + 1) + 1
    } else {
        plain
    }
}

/// Whether a training launch over up to `max_batch` rows of `classes` logits takes the
/// last layer's bias gradient over (its loops fit the adapter's loop cap,
/// [`Gpu::loop_cap`]); otherwise that gradient stays a `column_sum` launch.
pub fn fuses_bias(gpu: &Gpu, max_batch: usize, classes: usize) -> bool {
    gpu.loop_cap
        .is_none_or(|cap| loop_passes(max_batch, classes, true) <= cap)
}

/// Prepares one launch for minibatches of up to `max_batch` rows of `classes` logits.
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when one invocation's loops ([`loop_passes`]) would run
/// past the adapter's loop cap ([`Gpu::loop_cap`]; on lavapipe, B·C past about 5 million).
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SoftmaxCrossEntropyBuffers<'_>,
    max_batch: usize,
    classes: usize,
    write_grad: bool,
) -> Result<Dispatch> {
    dispatch_members(
        gpu,
        kernels,
        label,
        bufs,
        max_batch,
        classes,
        write_grad,
        LossMembers::ONE,
    )
}

/// [`dispatch`] for the members of a population ([`LossMembers`]), one workgroup each.
///
/// # Errors
/// As [`dispatch`].
#[allow(clippy::too_many_arguments)]
pub fn dispatch_members(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SoftmaxCrossEntropyBuffers<'_>,
    max_batch: usize,
    classes: usize,
    write_grad: bool,
    members: LossMembers,
) -> Result<Dispatch> {
    gpu.check_loop_passes(
        &format!("{label} (softmax_cross_entropy over B={max_batch} rows of C={classes})"),
        loop_passes(max_batch, classes, write_grad && bufs.dbias.is_some()),
        "use a smaller --batch-size",
    )?;
    let params = SoftmaxCrossEntropyParams {
        classes: classes as u32,
        write_grad: u32::from(write_grad),
        members: members.count as u32,
        stride_logits: members.logits as u32,
        stride_rows: members.rows as u32,
        stride_metrics: members.metrics as u32,
        write_bias: u32::from(write_grad && bufs.dbias.is_some()),
        stride_bias: members.bias as u32,
    };
    let ub = params_buffer(gpu, label, &params);
    // Without a fused bias gradient binding 6 is never written: a 4-byte stand-in.
    let unused;
    let dbias = match bufs.dbias {
        Some(v) => v.binding(),
        None => {
            unused = gpu.buffer(
                &format!("{label}.dbias (unused)"),
                4,
                wgpu::BufferUsages::STORAGE,
            );
            unused.as_entire_binding()
        }
    };
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
                resource: bufs.logits.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: bufs.labels.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 3,
                resource: bufs.dlogits.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 4,
                resource: bufs.rows.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 5,
                resource: bufs.metrics.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 6,
                resource: dbias,
            },
        ],
    );
    let bc = (max_batch * classes * members.count) as u64;
    Ok(Dispatch {
        kernel: "softmax_cross_entropy",
        label: label.to_string(),
        pipeline: kernels.pipeline(
            gpu,
            &FAMILY,
            "softmax_cross_entropy",
            &[("CLASSES", classes as f64)],
        ),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, members.count as u64)?,
        flops: 6 * bc,
        bytes: 4 * (bc * if write_grad { 2 } else { 1 } + 3 * (max_batch * members.count) as u64),
        shape: format!("B={max_batch} C={classes}"),
    })
}
