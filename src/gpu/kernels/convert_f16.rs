//! Wrapper of `shaders/convert_f16.wgsl`: `dst[i] = f16(clamp(src[i], ±65504))`, the f16
//! copy of an f32 buffer (the minibatch inputs `X` after `gather_normalize`, the weights
//! after `sgd_update`) for [`super::matmul::f16`].
//!
//! Bindings: 0 params, 1 src `[len]` f32, 2 dst `[len]` f16 (read-write). Grid:
//! `ceil(len / 256)` workgroups of 256, folded. With `row_len` > 0 only the step record's
//! minibatch rows (`batch · row_len` elements) are converted. Built only on devices with
//! `SHADER_F16` ([`super::matmul::f16::f16_device_support`], checked by the caller).

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};

/// The WGSL source: the f16 directive, the step record, the kernel.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/f16.wgsl"),
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/convert_f16.wgsl")
);

/// Mirrors `struct ConvertF16Params` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ConvertF16Params {
    /// Elements to convert at most.
    pub len: u32,
    /// Elements per minibatch row; 0: convert all `len` regardless of the step record.
    pub row_len: u32,
    pub _pad: [u32; 2],
}

/// The family: entry point `convert_f16`; needs `SHADER_F16`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "convert_f16",
    source: SOURCE,
    features: wgpu::Features::SHADER_F16,
    bindings: &[
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, false),
    ],
};

/// Prepares the conversion of the first `len` elements of `src` (f32) into the f16 buffer
/// `dst` (bound whole, from element 0): all of them, or with `row_len` > 0 only the step
/// record's `batch · row_len`.
///
/// # Errors
/// [`Error::InvalidConfig`] when `src` or `dst` is shorter than `len`;
/// [`Error::LimitExceeded`] when the grid does not fit.
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    src: View<'_>,
    dst: &wgpu::Buffer,
    len: usize,
    row_len: usize,
) -> Result<Dispatch> {
    if src.len < len || (dst.size() / 2) < len as u64 {
        return Err(Error::InvalidConfig {
            name: "convert_f16 operand",
            value: format!(
                "{label}: src of {} f32, dst of {} f16",
                src.len,
                dst.size() / 2
            ),
            reason: format!("both need at least {len} elements"),
        });
    }
    let params = ConvertF16Params {
        len: len as u32,
        row_len: row_len as u32,
        _pad: [0; 2],
    };
    let ub = params_buffer(gpu, label, &params);
    let layout = kernels.bind_group_layout(gpu, &FAMILY);
    let bind_group = gpu.bind_group(
        label,
        &layout,
        &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ub.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: src.binding(),
            },
            super::whole(2, dst),
        ],
    );
    Ok(Dispatch {
        kernel: "convert_f16",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "convert_f16", &[]),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_1d(label, (len as u64).div_ceil(256))?,
        flops: 0,
        bytes: 6 * len as u64,
        shape: format!("N={len}"),
    })
}
