//! Wrapper of `shaders/softmax_cross_entropy.wgsl`: per-row loss and correct flag,
//! `dlogits = (softmax - onehot) / B`, and the minibatch's loss sum and correct count, in
//! one single-workgroup launch (a fixed-order tree, no float atomics).
//!
//! Shapes: logits `[B, C]`, labels `[B]` u32, dlogits `[B, C]`, rows `[B, 2]`
//! (loss, correct), metrics `[4 + steps·2]`: a status header (word 0 is 1.0 once a step's
//! loss was not finite, word 1 that step's index as u32 bits), then Σ loss and Σ correct per
//! step. Bindings: 0 params, 1 logits, 2 labels, 3 dlogits, 4 rows, 5 metrics, 6 dbias,
//! 7 hidden and 8 the output layer's weights and bias (both read only with the fused output
//! layer; 16-byte stand-ins otherwise).
//! Grid: one workgroup per member ([`LossMembers`]).
//!
//! Fused bias gradient: given `dbias` (`[C]`, training only), the launch also writes the
//! last layer's bias gradient `db[c] = Σ_b dlogits[b, c]`, summed over the rows in order
//! 0..B as `column_sum` does (the same bits), which saves the step that `column_sum`
//! launch.
//!
//! Fused output layer (`output` of [`dispatch`], training, every member): the launch
//! also computes the logits `[B, C] = H [B, hidden] · Wᵀ + bias` from the last hidden
//! activations and the output layer's parameters ([`OutputLayer`]), summed in the matmul
//! kernels' order (one fma chain over k ascending per output, then the bias: the same
//! bits), writes them to the logits buffer and goes on as above; the step needs no
//! forward matmul launch for the output layer. One workgroup then does all of that
//! layer's `2·B·hidden·C` flops, so the engine uses it only for small products
//! ([`FUSED_OUTPUT_MAX_MACS`]).

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
    /// Members (K >= 1): workgroups, one per member, and floats between
    /// members' logits (and dlogits), rows and metrics.
    pub members: u32,
    pub stride_logits: u32,
    pub stride_rows: u32,
    pub stride_metrics: u32,
    /// 1: also write `db = colsum(dlogits)` into dbias (with `write_grad`).
    pub write_bias: u32,
    /// Floats between members' dbias.
    pub stride_bias: u32,
    /// Fused output layer: the element of binding 8 (the output layer's weights `[C,
    /// hidden]` from element 0) where its bias `[C]` starts.
    pub bias_at: u32,
    /// Fused output layer: floats between members' hidden activations and between their
    /// output-layer parameters.
    pub stride_hidden: u32,
    pub stride_layer: u32,
    pub _pad: u32,
}

/// The members of one softmax-cross-entropy launch (K >= 1): `count`
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
/// dispatch, docs/performance.md), and with the fused output layer one per hidden width
/// too (`FUSED_OUTPUT`, `HIDDEN`, `HIDDEN_VEC4`).
pub const FAMILY: KernelFamily = KernelFamily {
    name: "softmax_cross_entropy",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &[
        uniform_entry(0),
        // Written by the fused output layer.
        storage_entry(1, false),
        storage_entry(2, true),
        storage_entry(3, false),
        storage_entry(4, false),
        storage_entry(5, false),
        storage_entry(6, false),
        storage_entry(7, true),
        storage_entry(8, true),
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

/// The output layer a fused launch computes the logits of (see the module docs):
/// `logits [B, C] = hidden [B, width] · weightsᵀ + bias`, per member.
#[derive(Clone, Copy, Debug)]
pub struct OutputLayer<'a> {
    /// `[B, width]` (at least `max_batch` rows) per member, `stride_hidden` floats apart:
    /// the last hidden activations, 16-byte aligned.
    pub hidden: View<'a>,
    /// Floats between consecutive members' hidden activations (a multiple of 4).
    pub stride_hidden: usize,
    /// `weight [C, width]` from element 0 and `bias [C]` from element `bias_at`, as one
    /// range of the flat parameter buffer (`LayerSlot::weight` to past the bias), 16-byte
    /// aligned, per member, `stride_params` floats apart.
    pub params: View<'a>,
    /// Floats between consecutive members' parameters (a multiple of 4).
    pub stride_params: usize,
    /// Element of `params` where the bias starts.
    pub bias_at: usize,
    /// The hidden width (K of the product).
    pub width: usize,
}

/// Multiply-adds `B·hidden·C` up to which the engine fuses the output layer into this
/// launch: past it, one workgroup computing the whole layer costs more than the separate
/// matmul launch it saves (measured on lavapipe; reasoning for GPUs in
/// docs/performance.md).
pub const FUSED_OUTPUT_MAX_MACS: usize = 128 * 256 * 10;

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

/// Loop iterations the fused output layer (the `output` of [`dispatch`]) adds to
/// [`loop_passes`] for a hidden width of `width`: each invocation takes
/// `T = ceil(ceil(B / 4)·G / 256)` work items (blocks of 4 rows by 4 classes, `G =
/// ceil(C / 4)` class groups), each a k loop of `width/4 + 1` passes (whole vec4 rows) or
/// `width + 1`, and its own pass: `T·(k + 1) + 1`.
pub fn fused_output_loop_passes(max_batch: usize, classes: usize, width: usize) -> u64 {
    let blocks = (max_batch as u64).div_ceil(4) * (classes as u64).div_ceil(4);
    let items = blocks.div_ceil(256);
    let k = if width.is_multiple_of(4) {
        width as u64 / 4 + 1
    } else {
        width as u64 + 1
    };
    items * (k + 1) + 1
}

/// Whether a training launch over up to `max_batch` rows of `classes` logits may compute
/// the output layer too, from a hidden width of `width` (the `output` of [`dispatch`]): the
/// product is small (`B·width·C <= `[`FUSED_OUTPUT_MAX_MACS`]) and all the launch's loops,
/// with the fused bias gradient (`fused_bias`) or without, fit the adapter's loop cap
/// ([`Gpu::loop_cap`]).
pub fn fuses_output_layer(
    gpu: &Gpu,
    max_batch: usize,
    classes: usize,
    width: usize,
    fused_bias: bool,
) -> bool {
    let passes = loop_passes(max_batch, classes, fused_bias)
        + fused_output_loop_passes(max_batch, classes, width);
    max_batch * width * classes <= FUSED_OUTPUT_MAX_MACS
        && gpu.loop_cap.is_none_or(|cap| passes <= cap)
}

/// Whether a training launch over up to `max_batch` rows of `classes` logits takes the
/// last layer's bias gradient over (its loops fit the adapter's loop cap,
/// [`Gpu::loop_cap`]); otherwise that gradient stays a `column_sum` launch.
pub fn fuses_bias(gpu: &Gpu, max_batch: usize, classes: usize) -> bool {
    gpu.loop_cap
        .is_none_or(|cap| loop_passes(max_batch, classes, true) <= cap)
}

/// Prepares one launch for `members` ([`LossMembers::ONE`] for one model) over
/// minibatches of up to `max_batch` rows of `classes` logits, computing the logits first
/// from `output` when given (the fused output layer: callers check
/// [`fuses_output_layer`] first; this launch only refuses what cannot run).
///
/// # Errors
/// [`crate::Error::LimitExceeded`] when one invocation's loops ([`loop_passes`], plus
/// [`fused_output_loop_passes`] with `output`) would run past the adapter's loop cap
/// ([`Gpu::loop_cap`]; on lavapipe, B·C past about 5 million);
/// [`crate::Error::InvalidConfig`] when `output`'s views are shorter than the shapes and
/// members need, or not 16-byte aligned.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    bufs: SoftmaxCrossEntropyBuffers<'_>,
    max_batch: usize,
    classes: usize,
    write_grad: bool,
    members: LossMembers,
    output: Option<OutputLayer<'_>>,
) -> Result<Dispatch> {
    let width = output.map_or(0, |o| o.width);
    let fused_passes = output.map_or(0, |_| fused_output_loop_passes(max_batch, classes, width));
    gpu.check_loop_passes(
        &format!("{label} (softmax_cross_entropy over B={max_batch} rows of C={classes})"),
        loop_passes(max_batch, classes, write_grad && bufs.dbias.is_some()) + fused_passes,
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
        bias_at: output.map_or(0, |o| o.bias_at as u32),
        stride_hidden: output.map_or(0, |o| o.stride_hidden as u32),
        stride_layer: output.map_or(0, |o| o.stride_params as u32),
        _pad: 0,
    };
    let ub = params_buffer(gpu, label, &params);
    // Without a fused output layer bindings 7 and 8 are never read: one 16-byte stand-in.
    let no_output;
    let (hidden, layer) = match output {
        Some(o) => {
            let needed = |v: &View<'_>, what: &str, len: usize| {
                if v.len < len {
                    return Err(crate::Error::InvalidConfig {
                        name: "fused output layer operand",
                        value: format!("{what} of {} elements", v.len),
                        reason: format!("needs at least {len}"),
                    });
                }
                Ok(())
            };
            let k = members.count;
            let strides = [o.stride_hidden, o.stride_params];
            if k > 1 && strides.iter().any(|s| !s.is_multiple_of(4)) {
                return Err(crate::Error::InvalidConfig {
                    name: "fused output layer strides",
                    value: format!("{strides:?}"),
                    reason: "member strides must be multiples of 4 floats (vec4 loads)".into(),
                });
            }
            let hidden_len = (k - 1) * o.stride_hidden + max_batch * o.width;
            let layer_len = (k - 1) * o.stride_params + o.bias_at + classes;
            needed(&o.hidden, "hidden", hidden_len)?;
            needed(&o.params, "weights and bias", layer_len)?;
            needed(&o.params, "weights", classes * o.width)?;
            (
                o.hidden.vec4_binding("hidden", hidden_len)?,
                o.params.vec4_binding("weights and bias", layer_len)?,
            )
        }
        None => {
            no_output = gpu.buffer(
                &format!("{label}.output layer (unused)"),
                16,
                wgpu::BufferUsages::STORAGE,
            );
            (no_output.as_entire_binding(), no_output.as_entire_binding())
        }
    };
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
            wgpu::BindGroupEntry {
                binding: 7,
                resource: hidden,
            },
            wgpu::BindGroupEntry {
                binding: 8,
                resource: layer,
            },
        ],
    );
    let bc = (max_batch * classes * members.count) as u64;
    let mut constants = vec![("CLASSES", classes as f64)];
    let (mut flops, mut bytes) = (
        6 * bc,
        4 * (bc * if write_grad { 2 } else { 1 } + 3 * (max_batch * members.count) as u64),
    );
    let mut shape = format!("B={max_batch} C={classes}");
    if output.is_some() {
        // The unfused pipeline keeps its constants (and its key in the pipeline cache).
        constants.push(("FUSED_OUTPUT", 1.0));
        constants.push(("HIDDEN", width as f64));
        constants.push(("HIDDEN_VEC4", f64::from(u8::from(width.is_multiple_of(4)))));
        flops += 2 * bc * width as u64;
        bytes += 4 * ((max_batch + classes) * width + 2 * max_batch * classes) as u64;
        shape = format!("B={max_batch} C={classes} K={width}");
    }
    Ok(Dispatch {
        kernel: "softmax_cross_entropy",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "softmax_cross_entropy", &constants),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, members.count as u64)?,
        flops,
        bytes,
        shape,
    })
}
