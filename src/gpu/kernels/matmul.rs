//! Wrapper of `shaders/matmul.wgsl`: `C[M, N] = op(A)[M, K] · op(B)[K, N]` plus an epilogue.
//!
//! Bindings: 0 params (uniform), 1 A, 2 B, 3 bias `[N]`, 4 mask `[M, N]`, 5 C (read-write);
//! group 1 the step record. Grid: `ceil(N / 64)` × `ceil(M / 64)` workgroups of 16×16, the
//! row blocks folded into y and z past the per-dimension limit.

use super::{Dispatch, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::gpu::autotune::MatmulChoice;
use crate::gpu::{Gpu, View};

/// The WGSL source.
pub const SOURCE: &str = include_str!("../../../shaders/matmul.wgsl");

/// Output elements per workgroup side (16 invocations × 4 outputs), both variants.
pub const TILE: u64 = 64;

/// Which matmul implementation to run. Both compute the same thing with the same bindings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulVariant {
    /// 4×4 outputs per invocation in registers, no workgroup memory, no barriers: for CPU
    /// adapters (lavapipe), where barriers are very slow.
    Register,
    /// 64×64 tiles staged through workgroup memory with barriers: for GPUs.
    Tiled,
    /// 8 rows per workgroup shared by all its invocations (uniform loads of A), 4
    /// columns 64 apart per invocation, no barriers: for CPU adapters.
    Rows,
}

impl MatmulVariant {
    /// Both variants, for auto-selection and tests.
    pub const ALL: [MatmulVariant; 3] = [
        MatmulVariant::Register,
        MatmulVariant::Tiled,
        MatmulVariant::Rows,
    ];

    /// The WGSL entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            MatmulVariant::Register => "matmul_register",
            MatmulVariant::Tiled => "matmul_tiled",
            MatmulVariant::Rows => "matmul_rows",
        }
    }

    /// Workgroups along x (column blocks) and along the folded rows for a `[m, n]` output.
    pub fn blocks(self, m: usize, n: usize) -> (u64, u64) {
        match self {
            MatmulVariant::Register | MatmulVariant::Tiled => {
                ((n as u64).div_ceil(TILE), (m as u64).div_ceil(TILE))
            }
            MatmulVariant::Rows => ((n as u64).div_ceil(256), (m as u64).div_ceil(16)),
        }
    }

    /// The variant an adapter of this type most likely runs fastest.
    pub fn default_for(gpu: &Gpu) -> MatmulVariant {
        if gpu.is_cpu_adapter() {
            MatmulVariant::Register
        } else {
            MatmulVariant::Tiled
        }
    }
}

impl std::fmt::Display for MatmulVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MatmulVariant::Register => "register",
            MatmulVariant::Tiled => "tiled",
            MatmulVariant::Rows => "rows",
        })
    }
}

/// What happens to each output element before it is stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum Epilogue {
    /// `c`
    None = 0,
    /// `c + bias[n]`
    Bias = 1,
    /// `max(0, c + bias[n])`
    BiasRelu = 2,
    /// `c · [mask[m, n] > 0]`: ReLU backward through the forward output `mask`.
    ReluMask = 3,
}

/// Which dimension follows the step record's minibatch size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum BatchDim {
    /// Fixed shape.
    None = 0,
    /// M is the minibatch size (forward, input gradients).
    M = 1,
    /// K is the minibatch size (weight gradients).
    K = 2,
}

/// Shape and options of one matmul. `m`, `n`, `k` are the largest sizes (buffers and grid
/// are sized for them); with a `batch_dim`, the step record's minibatch size replaces it.
#[derive(Clone, Copy, Debug)]
pub struct MatmulSpec {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A is stored `[K, M]` instead of `[M, K]`.
    pub trans_a: bool,
    /// B is stored `[N, K]` instead of `[K, N]`.
    pub trans_b: bool,
    /// C is stored `[N, M]` instead of `[M, N]` (only with [`Epilogue::None`]).
    pub trans_c: bool,
    pub epilogue: Epilogue,
    pub batch_dim: BatchDim,
}

/// Mirrors `struct MatmulParams` in the shader.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch_dim: u32,
}

pub(crate) fn layout_entries() -> Vec<wgpu::BindGroupLayoutEntry> {
    vec![
        uniform_entry(0),
        storage_entry(1, true),
        storage_entry(2, true),
        storage_entry(3, true),
        storage_entry(4, true),
        storage_entry(5, false),
    ]
}

fn check_len(what: &str, view: &View<'_>, needed: usize) -> Result<()> {
    if view.len < needed {
        return Err(Error::InvalidConfig {
            name: "matmul operand",
            value: format!("{what} of {} elements", view.len),
            reason: format!("needs at least {needed}"),
        });
    }
    Ok(())
}

/// Prepares one matmul launch. `bias` must be given for the bias epilogues and `mask` for
/// [`Epilogue::ReluMask`]; unused slots are bound to `dummy` (any small buffer not written
/// by this launch).
///
/// # Errors
/// [`Error::LimitExceeded`] when the grid or a binding is over the adapter's limits;
/// [`Error::InvalidConfig`] when an operand is shorter than the shape needs.
#[allow(clippy::too_many_arguments)]
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    a: View<'_>,
    b: View<'_>,
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
    c: View<'_>,
    dummy: View<'_>,
) -> Result<Dispatch> {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    assert!(
        !spec.trans_c || spec.epilogue == Epilogue::None,
        "a transposed C takes no epilogue"
    );
    check_len("A", &a, m * k)?;
    check_len("B", &b, k * n)?;
    check_len("C", &c, m * n)?;
    for (what, v) in [("A", &a), ("B", &b), ("C", &c)] {
        gpu.check_binding(
            &format!("{label} operand {what}"),
            v.len as u64 * 4,
            "use a smaller --batch-size or smaller --hidden sizes",
        )?;
    }
    let bias = match spec.epilogue {
        Epilogue::Bias | Epilogue::BiasRelu => {
            let v = bias.expect("bias epilogue needs a bias view");
            check_len("bias", &v, n)?;
            v
        }
        _ => dummy,
    };
    let mask = match spec.epilogue {
        Epilogue::ReluMask => {
            let v = mask.expect("mask epilogue needs a mask view");
            check_len("mask", &v, m * n)?;
            v
        }
        _ => dummy,
    };
    let params = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        batch_dim: spec.batch_dim as u32,
    };
    let ub = params_buffer(gpu, label, &params);
    let bind_group = gpu.bind_group(
        label,
        &kernels.matmul.layout,
        &[
            wgpu::BindGroupEntry {
                binding: 0,
                resource: ub.as_entire_binding(),
            },
            wgpu::BindGroupEntry {
                binding: 1,
                resource: a.binding(),
            },
            wgpu::BindGroupEntry {
                binding: 2,
                resource: b.binding(),
            },
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
                resource: c.binding(),
            },
        ],
    );
    let (x_blocks, y_blocks) = variant.blocks(m, n);
    let grid = gpu.grid_2d(label, x_blocks, y_blocks)?;
    Ok(Dispatch {
        kernel: variant.entry_point(),
        label: label.to_string(),
        pipeline: kernels.matmul_pipeline(
            gpu,
            variant,
            spec.trans_a,
            spec.trans_b,
            spec.trans_c,
            spec.epilogue,
        ),
        bind_group,
        grid,
        flops: 2 * (m * n * k) as u64,
        bytes: 4 * (m * k + k * n + m * n) as u64,
        shape: format!("M={m} N={n} K={k}"),
    })
}

/// [`dispatch`] with the variant given by `choice`: fixed, or the fastest measured on this
/// shape (see [`crate::gpu::autotune`]).
///
/// # Errors
/// As [`dispatch`], plus device errors while timing.
pub fn dispatch_with(
    gpu: &Gpu,
    kernels: &Kernels,
    choice: MatmulChoice,
    label: &str,
    spec: MatmulSpec,
    a: View<'_>,
    b: View<'_>,
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
    c: View<'_>,
    dummy: View<'_>,
) -> Result<Dispatch> {
    let variant = choice.resolve(gpu, kernels, &spec)?;
    dispatch(
        gpu, kernels, variant, label, spec, a, b, bias, mask, c, dummy,
    )
}
