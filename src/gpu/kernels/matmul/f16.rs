//! Wrapper of `shaders/matmul/matmul_f16.wgsl`: `C[M, N] = op(A)[M, K] · op(B)[K, N]` plus an
//! epilogue, with f16 operands (A may be f32), f32 sums, and optionally an f16 copy of C.
//!
//! The product of `--precision f16` ([`crate::config::Precision::F16`]): the forward pass
//! multiplies f16 activations by an f16 copy of the weights and writes the next layer's f16
//! input in its epilogue; the backward products multiply the f32 gradient (A) by f16
//! activations or weights (B). Every product `f32(a)·f32(b)` is exact in f32 (11-bit
//! significands), and the sum is an f32 fma chain in order of k, so the only error beyond
//! the f32 kernels' is the operands' rounding to f16: a relative `2^-11` each (to nearest).
//!
//! Bindings: 0 params, 1 A `[·]` f16, 2 B `[·]` f16, 3 bias `[N]` f32, 4 mask `[M, N]` f32,
//! 5 C f32 (read-write), 6 A as f32 (when it is), 7 the f16 copy of C (read-write). The
//! f16 operands are bound whole, their element offsets passed in the params (an f16 view's
//! byte offset need not meet the 256-byte binding alignment); unused slots get small
//! dummies. Grid: `ceil(N / 256)` column blocks × `ceil(M / 16)` row blocks × members, the
//! row blocks folded into y and z past the per-dimension limit. Under an adapter loop cap K is split
//! into chunks, one launch each ([`k_chunks`]), as `matmul` does.

use super::super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use super::{Epilogue, K_CHUNK_ALIGN, MatmulMembers, MatmulSpec};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};

/// The WGSL source: the f16 directive, the step record, the kernel.
pub const SOURCE: &str = concat!(
    include_str!("../../../../shaders/f16.wgsl"),
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_f16.wgsl")
);

/// Bindings: 0 params, 1 A f16, 2 B f16, 3 bias, 4 mask, 5 C, 6 A f32, 7 C's f16 copy.
pub const BINDINGS: [wgpu::BindGroupLayoutEntry; 8] = [
    uniform_entry(0),
    storage_entry(1, true),
    storage_entry(2, true),
    storage_entry(3, true),
    storage_entry(4, true),
    storage_entry(5, false),
    storage_entry(6, true),
    storage_entry(7, false),
];

/// Storage buffers one launch binds (bindings 1-7).
pub const STORAGE_BUFFERS: u32 = 7;

/// The family: entry point `matmul_f16`; needs `SHADER_F16`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "matmul_f16",
    source: SOURCE,
    features: wgpu::Features::SHADER_F16,
    bindings: &BINDINGS,
};

/// Rows of C per workgroup (`ROWS` in the shader).
pub const ROWS: u64 = 16;
/// Columns of C per workgroup: 64 invocations × 4 columns (`LANES · COLS`).
pub const COLS: u64 = 256;

/// Mirrors `struct MatmulF16Params` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulF16Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch_dim: u32,
    pub k_begin: u32,
    pub k_end: u32,
    /// Element offset of A in its binding.
    pub a_offset: u32,
    /// Element offset of B in its binding.
    pub b_offset: u32,
    /// Members and their strides ([`MatmulMembers`]), in elements.
    pub members: u32,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_bias: u32,
    pub stride_mask: u32,
    pub stride_c: u32,
    pub _pad: [u32; 2],
}

/// `len` f16 elements of `buffer` from element `offset`.
#[derive(Clone, Copy, Debug)]
pub struct F16View<'a> {
    pub buffer: &'a wgpu::Buffer,
    /// Offset in f16 elements.
    pub offset: usize,
    /// Length in f16 elements.
    pub len: usize,
}

impl<'a> F16View<'a> {
    /// The whole buffer as `[size / 2]` f16 elements.
    pub fn whole(buffer: &'a wgpu::Buffer) -> Self {
        F16View {
            buffer,
            offset: 0,
            len: (buffer.size() / 2) as usize,
        }
    }
}

/// Operand A: f16 (activations, forward) or f32 (the gradient, backward).
#[derive(Clone, Copy, Debug)]
pub enum OperandA<'a> {
    F16(F16View<'a>),
    F32(View<'a>),
}

/// The buffers of one launch for `members` (strides in elements, f16 or f32 alike; C's f16
/// copy has C's stride). `bias` for the bias epilogues, `mask` for
/// [`Epilogue::ReluMask`]; `c16`, when given, receives `f16(C)` (from element 0, C's
/// layout); `dummy` is any small buffer this launch does not write, bound in the unused
/// read-only slots.
pub struct MatmulF16Buffers<'a> {
    pub members: MatmulMembers,
    pub a: OperandA<'a>,
    pub b: F16View<'a>,
    pub bias: Option<View<'a>>,
    pub mask: Option<View<'a>>,
    pub c: View<'a>,
    pub c16: Option<F16View<'a>>,
    pub dummy: View<'a>,
}

/// Whether `gpu` can build the f16 kernels; the reason when it cannot, naming the adapter,
/// what is missing and the fix ([`f16_support`]).
pub fn f16_device_support(gpu: &Gpu) -> std::result::Result<(), String> {
    f16_support(
        &gpu.info.name,
        gpu.adapter_features,
        gpu.features,
        gpu.limits.max_storage_buffers_per_shader_stage,
    )
}

/// The check of [`f16_device_support`] on plain values: the adapter `adapter` offering
/// `adapter_features`, a device created with `device_features` and
/// `max_storage_buffers` storage buffers per shader stage. Needs `SHADER_F16` on the device
/// and [`STORAGE_BUFFERS`] storage buffers.
pub fn f16_support(
    adapter: &str,
    adapter_features: wgpu::Features,
    device_features: wgpu::Features,
    max_storage_buffers: u32,
) -> std::result::Result<(), String> {
    let f16 = wgpu::Features::SHADER_F16;
    if !adapter_features.contains(f16) {
        return Err(format!(
            "--precision f16 needs the adapter feature wgpu::Features::SHADER_F16 (Vulkan shaderFloat16 with 16-bit storage buffers); the adapter \"{adapter}\" does not have it: use --precision f32, or an adapter that has it (`wgtrain devices` lists them; choose one with --adapter)"
        ));
    }
    if !device_features.contains(f16) {
        return Err(format!(
            "the adapter \"{adapter}\" has wgpu::Features::SHADER_F16, but this device was opened without it: open it with GpuOptions {{ shader_f16: true, .. }} (wgtrain's --precision f16 does), or use --precision f32"
        ));
    }
    if max_storage_buffers < STORAGE_BUFFERS {
        return Err(format!(
            "matmul_f16 binds {STORAGE_BUFFERS} storage buffers; the adapter \"{adapter}\" allows {max_storage_buffers} per shader stage: use --precision f32"
        ));
    }
    Ok(())
}

/// Loop iterations one invocation runs over a chunk of `len` values of K, counted as
/// llvmpipe counts them ([`crate::gpu::context::LLVMPIPE_LOOP_CAP`]): the K loop `len + 1`,
/// then 16 row stores of a 4-column loop, `5` passes each.
pub fn loop_passes(len: u64) -> u64 {
    len + 1 + 16 * 5
}

/// The chunks `[begin, end)` K is summed in on `gpu`: one `[0, k)` without a loop cap or
/// when K fits under it, else chunks of the largest multiple of [`K_CHUNK_ALIGN`] that fits.
///
/// # Errors
/// [`Error::LimitExceeded`] when not even one aligned chunk fits the cap.
pub fn k_chunks(gpu: &Gpu, label: &str, k: usize) -> Result<Vec<(usize, usize)>> {
    let Some(cap) = gpu.loop_cap else {
        return Ok(vec![(0, k)]);
    };
    if loop_passes(k as u64) <= cap {
        return Ok(vec![(0, k)]);
    }
    let align = K_CHUNK_ALIGN as u64;
    let len = (cap.saturating_sub(loop_passes(0)) / align) * align;
    if len == 0 {
        return Err(gpu.loop_cap_exceeded(
            &format!("{label} (matmul_f16, a chunk of {K_CHUNK_ALIGN} of K)"),
            loop_passes(align),
            "raise the loop cap or use --precision f32",
        ));
    }
    let len = len as usize;
    Ok((0..k).step_by(len).map(|b| (b, (b + len).min(k))).collect())
}

fn check_len(label: &str, what: &str, have: usize, needed: usize) -> Result<()> {
    if have < needed {
        return Err(Error::InvalidConfig {
            name: "matmul_f16 operand",
            value: format!("{label} operand {what} of {have} elements"),
            reason: format!("needs at least {needed}"),
        });
    }
    Ok(())
}

/// The f16 view's extent within its buffer, checked.
fn check_f16_view(label: &str, what: &str, v: &F16View<'_>, needed: usize) -> Result<()> {
    check_len(label, what, v.len, needed)?;
    if (v.offset + v.len) as u64 * 2 > v.buffer.size() {
        return Err(Error::InvalidConfig {
            name: "matmul_f16 operand",
            value: format!(
                "{label} operand {what}: {} f16 at element {} of a {}-byte buffer",
                v.len,
                v.offset,
                v.buffer.size()
            ),
            reason: "the view must lie within its buffer".into(),
        });
    }
    Ok(())
}

/// Prepares one `matmul_f16` launch of `spec` on `bufs`.
///
/// # Errors
/// [`Error::InvalidConfig`] when the device lacks `SHADER_F16` or storage buffers
/// ([`f16_device_support`]: the message names the adapter and the fix), or an operand is
/// shorter than the shape needs, or `c16` does not start at element 0;
/// [`Error::LimitExceeded`] when the grid or a binding is over the adapter's limits, or no
/// chunk of K fits under its loop cap.
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    label: &str,
    spec: MatmulSpec,
    bufs: MatmulF16Buffers<'_>,
) -> Result<Dispatch> {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    assert!(
        !spec.trans_c || spec.epilogue == Epilogue::None,
        "a transposed C takes no epilogue"
    );
    assert_ne!(
        spec.epilogue,
        Epilogue::SgdUpdate,
        "matmul_f16 has no SGD epilogue"
    );
    if let Err(reason) = f16_device_support(gpu) {
        return Err(Error::InvalidConfig {
            name: "precision",
            value: "f16".into(),
            reason,
        });
    }
    let hint = "use a smaller --batch-size or smaller --hidden sizes";
    let mm = bufs.members;
    assert!(mm.count >= 1, "a matmul launch has at least one member");
    let (a_len, b_len, c_len) = (
        mm.needed(mm.a, m * k),
        mm.needed(mm.b, k * n),
        mm.needed(mm.c, m * n),
    );
    let (a_f16, a_offset, a_bytes) = match &bufs.a {
        OperandA::F16(v) => {
            check_f16_view(label, "A", v, a_len)?;
            (true, v.offset, v.buffer.size())
        }
        OperandA::F32(v) => {
            check_len(label, "A", v.len, a_len)?;
            (false, 0, v.len as u64 * 4)
        }
    };
    check_f16_view(label, "B", &bufs.b, b_len)?;
    check_len(label, "C", bufs.c.len, c_len)?;
    for (what, bytes) in [
        ("A", a_bytes),
        ("B", bufs.b.buffer.size()),
        ("C", bufs.c.len as u64 * 4),
    ] {
        gpu.check_binding(&format!("{label} operand {what}"), bytes, hint)?;
    }
    let bias = match spec.epilogue {
        Epilogue::Bias | Epilogue::BiasRelu => {
            let v = bufs.bias.expect("bias epilogue needs a bias view");
            check_len(label, "bias", v.len, mm.needed(mm.bias, n))?;
            v
        }
        _ => bufs.dummy,
    };
    let mask = match spec.epilogue {
        Epilogue::ReluMask => {
            let v = bufs.mask.expect("mask epilogue needs a mask view");
            check_len(label, "mask", v.len, mm.needed(mm.mask, m * n))?;
            v
        }
        _ => bufs.dummy,
    };
    // The unused write slot needs a buffer of its own: one bound read-only elsewhere in
    // the launch would conflict.
    let spare;
    let c16 = match &bufs.c16 {
        Some(v) => {
            check_f16_view(label, "C (f16 copy)", v, c_len)?;
            if v.offset != 0 {
                return Err(Error::InvalidConfig {
                    name: "matmul_f16 operand",
                    value: format!("{label} f16 copy of C at element {}", v.offset),
                    reason: "the f16 copy of C is written from element 0".into(),
                });
            }
            v.buffer
        }
        None => {
            spare = gpu.buffer(
                &format!("{label}.unused_c16"),
                16,
                wgpu::BufferUsages::STORAGE,
            );
            &spare
        }
    };
    let (a16_buffer, a32) = match &bufs.a {
        OperandA::F16(v) => (v.buffer, bufs.dummy),
        OperandA::F32(v) => (bufs.dummy.buffer, *v),
    };
    let layout = kernels.bind_group_layout(gpu, &FAMILY);
    let mut bind_groups = Vec::new();
    for (k_begin, k_end) in k_chunks(gpu, label, k)? {
        let params = MatmulF16Params {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            batch_dim: spec.batch_dim as u32,
            k_begin: k_begin as u32,
            k_end: k_end as u32,
            a_offset: a_offset as u32,
            b_offset: bufs.b.offset as u32,
            members: mm.count as u32,
            stride_a: mm.a as u32,
            stride_b: mm.b as u32,
            stride_bias: mm.bias as u32,
            stride_mask: mm.mask as u32,
            stride_c: mm.c as u32,
            _pad: [0; 2],
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
                super::super::whole(1, a16_buffer),
                super::super::whole(2, bufs.b.buffer),
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: bias.binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 4,
                    resource: mask.binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 5,
                    resource: bufs.c.binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 6,
                    resource: a32.binding(),
                },
                super::super::whole(7, c16),
            ],
        ));
    }
    let bind_group = bind_groups.remove(0);
    let x_blocks = (n as u64).div_ceil(COLS);
    let y_blocks = (m as u64).div_ceil(ROWS);
    let grid = gpu.grid_2d(label, x_blocks, y_blocks * mm.count as u64)?;
    let flag = |b: bool| f64::from(u8::from(b));
    let constants = [
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("TRANS_C", flag(spec.trans_c)),
        ("EPILOGUE", f64::from(spec.epilogue as u32)),
        ("A_F16", flag(a_f16)),
        ("WRITE_C16", flag(bufs.c16.is_some())),
    ];
    let a_elem = if a_f16 { 2 } else { 4 };
    let c16_bytes = if bufs.c16.is_some() { 2 * c_len } else { 0 };
    Ok(Dispatch {
        kernel: "matmul_f16",
        label: label.to_string(),
        pipeline: kernels.pipeline(gpu, &FAMILY, "matmul_f16", &constants),
        bind_group,
        splits: bind_groups,
        grid,
        flops: 2 * (m * n * k * mm.count) as u64,
        bytes: (a_elem * a_len + 2 * b_len + 4 * c_len + c16_bytes) as u64,
        shape: mm.shape(m, n, k),
    })
}

/// Times `matmul_f16` on `spec`'s shape as autotuning times the f32 variants
/// (`crate::gpu::autotune::time_variant`: M capped at 256, K at 1024, no epilogue, one
/// warm-up launch, then the best of three, host-timed around submit and wait), A and B f16.
/// Returns `(ms, GFLOP/s)`. For `bench` and the matmul probe.
///
/// # Errors
/// As [`dispatch`]; device errors.
pub fn time_probe(gpu: &Gpu, kernels: &Kernels, spec: &MatmulSpec) -> Result<(f64, f64)> {
    let (m, n, k) = (spec.m.min(256), spec.n, spec.k.min(1024));
    let s = MatmulSpec {
        m,
        n,
        k,
        epilogue: Epilogue::None,
        batch_dim: super::BatchDim::None,
        ..*spec
    };
    let f16_buffer = |label: &str, len: usize, value: f32| -> Result<wgpu::Buffer> {
        let b = gpu.storage_buffer(label, len as u64 * 2, wgpu::BufferUsages::COPY_DST)?;
        let bits = half::f16::from_f32(value).to_le_bytes();
        let bytes: Vec<u8> = (0..len.next_multiple_of(2)).flat_map(|_| bits).collect();
        gpu.queue.write_buffer(&b, 0, &bytes);
        Ok(b)
    };
    let a = f16_buffer("probe.a16", m * k, 0.5)?;
    let b = f16_buffer("probe.b16", k * n, 0.25)?;
    let c = gpu.storage_buffer("probe.c", (m * n) as u64 * 4, wgpu::BufferUsages::empty())?;
    let dummy = gpu.storage_buffer("probe.dummy", 16, wgpu::BufferUsages::empty())?;
    let d = dispatch(
        gpu,
        kernels,
        "probe",
        s,
        MatmulF16Buffers {
            members: MatmulMembers::ONE,
            a: OperandA::F16(F16View::whole(&a)),
            b: F16View::whole(&b),
            bias: None,
            mask: None,
            c: View::whole(&c),
            c16: None,
            dummy: View::whole(&dummy),
        },
    )?;
    let record = super::super::StepRecord {
        batch: m.max(k) as u32,
        ..Default::default()
    };
    let launch = std::slice::from_ref(&d);
    super::super::run(gpu, kernels, launch, record, 1)?;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        best = best.min(super::super::run(gpu, kernels, launch, record, 1)?.as_secs_f64() * 1e3);
    }
    Ok((best, 2.0 * (m * n * k) as f64 / (best * 1e-3) / 1e9))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check names the adapter, the feature and the fix, for each way it can fail.
    #[test]
    fn f16_support_names_adapter_feature_and_fix() {
        let f16 = wgpu::Features::SHADER_F16;
        let none = wgpu::Features::empty();
        assert!(f16_support("gpu", f16, f16, 8).is_ok());
        let lacks = f16_support("SwiftShader", none, none, 8).unwrap_err();
        for want in ["SwiftShader", "SHADER_F16", "--precision f32"] {
            assert!(lacks.contains(want), "{lacks}");
        }
        let withheld = f16_support("llvmpipe", f16, none, 8).unwrap_err();
        for want in [
            "llvmpipe",
            "opened without",
            "shader_f16: true",
            "--precision f32",
        ] {
            assert!(withheld.contains(want), "{withheld}");
        }
        let small = f16_support("tiny", f16, f16, 6).unwrap_err();
        assert!(
            small.contains("7 storage buffers") && small.contains("6"),
            "{small}"
        );
    }

    /// Under llvmpipe's cap K splits into aligned chunks that cover it in order.
    #[test]
    fn loop_passes_and_chunks_fit_the_cap() {
        let cap = crate::gpu::context::LLVMPIPE_LOOP_CAP;
        let len = (cap - loop_passes(0)) / 16 * 16;
        assert!(loop_passes(len) <= cap && loop_passes(len + 16) > cap);
    }
}
