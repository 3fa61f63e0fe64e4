//! Wrapper of `shaders/matmul*.wgsl`: `C[M, N] = op(A)[M, K] · op(B)[K, N]` plus an epilogue.
//!
//! Bindings: 0 params (uniform), 1 A, 2 B, 3 bias `[N]`, 4 mask `[M, N]`, 5 C (read-write;
//! A, B and C as whole vec4s for the subgroup kernel, A and B for the 2-D tiled one);
//! group 1 the step record. Grid: column blocks × row blocks (see [`MatmulVariant::blocks`]),
//! the row blocks folded into y and z past the per-dimension limit. Under an adapter loop
//! cap ([`Gpu::loop_cap`]) that one invocation's K loop would pass, K is split into chunks
//! ([`k_chunks`]), one launch each over the same grid ([`super::Dispatch::splits`]): the
//! first stores, the later ones add, and the last applies the epilogue.

use super::matmul_tiled2d_subgroup as sg_tiled;
use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};

/// The WGSL source of the scalar-load kernels (register, tiled, rows).
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/sgd_step.wgsl"),
    include_str!("../../../shaders/matmul_common.wgsl"),
    include_str!("../../../shaders/matmul.wgsl")
);

/// The WGSL source of `matmul_subgroup`, built only on devices with subgroups of
/// [`SUBGROUP_SIZE`].
pub const SUBGROUP_SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/sgd_step.wgsl"),
    include_str!("../../../shaders/matmul_common.wgsl"),
    include_str!("../../../shaders/matmul_subgroup_a.wgsl"),
    include_str!("../../../shaders/matmul_subgroup.wgsl")
);

/// The WGSL source of `matmul_tiled2d`, the register-tiled kernel for GPUs ([`Tile2d`]).
pub const TILED2D_SOURCE: &str = concat!(
    include_str!("../../../shaders/step.wgsl"),
    include_str!("../../../shaders/sgd_step.wgsl"),
    include_str!("../../../shaders/matmul_common.wgsl"),
    include_str!("../../../shaders/matmul_tiled2d_a.wgsl"),
    include_str!("../../../shaders/matmul_tiled2d.wgsl")
);

/// Bindings of every matmul family: 0 params, 1 A, 2 B, 3 bias, 4 mask, 5 C, 6 velocity
/// (the momentum buffer of [`Epilogue::SgdUpdate`]). The same list, so one bind group
/// serves every variant ([`KernelFamily::bindings`]).
pub const BINDINGS: [wgpu::BindGroupLayoutEntry; 7] = [
    uniform_entry(0),
    storage_entry(1, true),
    storage_entry(2, true),
    storage_entry(3, true),
    storage_entry(4, true),
    storage_entry(5, false),
    storage_entry(6, false),
];

/// The scalar-load family: `matmul_register`, `matmul_tiled`, `matmul_rows`.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "matmul",
    source: SOURCE,
    features: wgpu::Features::empty(),
    bindings: &BINDINGS,
};

/// The subgroup family, `matmul_subgroup`: built only on devices with subgroups of
/// [`SUBGROUP_SIZE`] ([`MatmulVariant::supports`]).
pub const SUBGROUP_FAMILY: KernelFamily = KernelFamily {
    name: "matmul_subgroup",
    source: SUBGROUP_SOURCE,
    features: wgpu::Features::SUBGROUP,
    bindings: &BINDINGS,
};

/// The 2-D register-tiled family, `matmul_tiled2d`: for GPUs; one entry point, its block
/// shape ([`Tile2d`]) set by override constants.
pub const TILED2D_FAMILY: KernelFamily = KernelFamily {
    name: "matmul_tiled2d",
    source: TILED2D_SOURCE,
    features: wgpu::Features::empty(),
    bindings: &BINDINGS,
};

/// Subgroup size `matmul_subgroup` is written for: its workgroup is one subgroup.
pub const SUBGROUP_SIZE: u32 = 8;

/// Output elements per workgroup side of the register and tiled kernels (16 invocations ×
/// 4 outputs).
pub const TILE: u64 = 64;

/// Block shape of [`MatmulVariant::Tiled2d`]: rows × columns of C per workgroup. Each
/// invocation owns 8 × 8 outputs, so a workgroup has `rows/8 × cols/8` invocations; K is
/// staged 8 deep, double-buffered, in `2 · 8 · (rows + cols) · 4` bytes of workgroup memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tile2d {
    /// 64 × 64 outputs, 64 invocations, 8 KiB of workgroup memory: the most workgroups on
    /// the small MNIST products.
    T64x64,
    /// 128 × 64 outputs, 128 invocations, 12 KiB.
    T128x64,
    /// 128 × 128 outputs, 256 invocations, 16 KiB: the fewest loads per FMA, for large
    /// products (siboehm's kernel 9 shape).
    T128x128,
}

impl Tile2d {
    /// Every shape, smallest first.
    pub const ALL: [Tile2d; 3] = [Tile2d::T64x64, Tile2d::T128x64, Tile2d::T128x128];

    /// Rows of C per workgroup (`BM` in the shader).
    pub fn rows(self) -> u32 {
        match self {
            Tile2d::T64x64 => 64,
            Tile2d::T128x64 | Tile2d::T128x128 => 128,
        }
    }

    /// Columns of C per workgroup (`BN` in the shader).
    pub fn cols(self) -> u32 {
        match self {
            Tile2d::T64x64 | Tile2d::T128x64 => 64,
            Tile2d::T128x128 => 128,
        }
    }

    /// Invocations per workgroup: one per 8 × 8 outputs.
    pub fn invocations(self) -> u32 {
        self.rows() * self.cols() / 64
    }

    /// Workgroup memory, bytes: two 8-deep slices of op(A) and of op(B).
    pub fn workgroup_bytes(self) -> u32 {
        2 * 8 * (self.rows() + self.cols()) * 4
    }
}

/// Which matmul implementation to run. All compute the same thing from the same bind group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MatmulVariant {
    /// 4×4 outputs per invocation in registers, no workgroup memory, no barriers: for CPU
    /// adapters (lavapipe), where barriers are very slow.
    Register,
    /// 64×64 tiles staged through workgroup memory with barriers: for GPUs.
    Tiled,
    /// 16 rows per workgroup shared by all its invocations (uniform loads of A), 4
    /// columns 64 apart per invocation, no barriers: for CPU adapters.
    Rows,
    /// One subgroup of 8 per workgroup computing 16×32 outputs from vec4 loads, the rows of
    /// A shared by `subgroupBroadcast`: for CPU adapters with subgroups of 8 (lavapipe),
    /// where every load costs a loop over the lanes. Only on the devices
    /// [`MatmulVariant::supports`] accepts.
    Subgroup,
    /// Blocks of C per workgroup staged through double-buffered workgroup memory in 8-deep
    /// slices, 8 × 8 outputs per invocation in registers, vec4 loads where the operands
    /// allow ([`vec4_operands`]): for GPUs (siboehm's SGEMM kernel 9). Only on devices with
    /// the workgroup memory and size [`MatmulVariant::supports`] asks for.
    Tiled2d(Tile2d),
    /// The 2-D tiled kernel for GPUs with subgroups (`matmul_tiled2d_subgroup`): 64 × 256
    /// blocks of C, 8 × 8 outputs per invocation, op(B) in double-buffered workgroup
    /// memory, op(A) loaded by each team of subgroup lanes into registers and shared with
    /// `subgroupShuffle` (no workgroup memory or barrier for A). Its team width is the
    /// adapter's smallest subgroup size ([`sg_tiled::team_width`]), designed for 32; only
    /// on the devices [`sg_tiled::device_support`] accepts.
    Tiled2dSubgroup,
}

impl MatmulVariant {
    /// Every variant, for auto-selection and tests.
    pub const ALL: [MatmulVariant; 8] = [
        MatmulVariant::Register,
        MatmulVariant::Tiled,
        MatmulVariant::Rows,
        MatmulVariant::Subgroup,
        MatmulVariant::Tiled2d(Tile2d::T64x64),
        MatmulVariant::Tiled2d(Tile2d::T128x64),
        MatmulVariant::Tiled2d(Tile2d::T128x128),
        MatmulVariant::Tiled2dSubgroup,
    ];

    /// The WGSL entry point.
    pub fn entry_point(self) -> &'static str {
        match self {
            MatmulVariant::Register => "matmul_register",
            MatmulVariant::Tiled => "matmul_tiled",
            MatmulVariant::Rows => "matmul_rows",
            MatmulVariant::Subgroup => "matmul_subgroup",
            MatmulVariant::Tiled2d(_) => "matmul_tiled2d",
            MatmulVariant::Tiled2dSubgroup => "matmul_tiled2d_subgroup",
        }
    }

    /// Workgroups along x (column blocks) and along the folded rows for a `[m, n]` output.
    pub fn blocks(self, m: usize, n: usize) -> (u64, u64) {
        match self {
            MatmulVariant::Register | MatmulVariant::Tiled => {
                ((n as u64).div_ceil(TILE), (m as u64).div_ceil(TILE))
            }
            MatmulVariant::Rows => ((n as u64).div_ceil(256), (m as u64).div_ceil(16)),
            MatmulVariant::Subgroup => ((n as u64).div_ceil(32), (m as u64).div_ceil(16)),
            MatmulVariant::Tiled2d(t) => (
                (n as u64).div_ceil(u64::from(t.cols())),
                (m as u64).div_ceil(u64::from(t.rows())),
            ),
            MatmulVariant::Tiled2dSubgroup => (
                (n as u64).div_ceil(u64::from(sg_tiled::BLOCK_COLS)),
                (m as u64).div_ceil(u64::from(sg_tiled::BLOCK_ROWS)),
            ),
        }
    }

    /// Whether this variant can run on `gpu`; the reason when it cannot.
    /// [`MatmulVariant::Subgroup`] needs subgroups of exactly [`SUBGROUP_SIZE`]
    /// ([`subgroup_device_support`]); [`MatmulVariant::Tiled2d`] needs its workgroup memory
    /// and workgroup size within the device's limits (the 128 × 128 block needs 16 KiB and
    /// 256 invocations, WebGPU's defaults). Every variant takes every shape; how fast the
    /// subgroup and 2-D tiled kernels run one depends on [`vec4_operands`].
    pub fn supports(self, gpu: &Gpu) -> std::result::Result<(), String> {
        match self {
            MatmulVariant::Subgroup => subgroup_device_support(gpu),
            MatmulVariant::Tiled2d(t) => tiled2d_device_support(gpu, t),
            MatmulVariant::Tiled2dSubgroup => sg_tiled::device_support(gpu),
            _ => Ok(()),
        }
    }

    /// The variants autotuning times on this adapter, most promising first so that slow
    /// ones are cut after one run. CPU adapters leave out the tiled kernel: its barriers
    /// make it 5-30x slower there (`docs/performance.md`), and timing it was a third of
    /// start-up. Adapters with subgroups of 8 also leave out the register kernel, which
    /// lost every MNIST shape to the subgroup kernel by 1.3-5x. `--kernels` still runs
    /// either. CPU adapters never time the 2-D tiled kernels either (barriers, and 64-256
    /// invocations per workgroup). GPUs time those first, smallest block first (the most
    /// workgroups on the small MNIST products), then the subgroup 2-D tiled kernel (skipped
    /// by autotune where [`MatmulVariant::supports`] refuses it: no `SUBGROUP`), then the
    /// older kernels.
    pub fn candidates(gpu: &Gpu) -> &'static [MatmulVariant] {
        use MatmulVariant::*;
        if gpu.has_subgroups_of(SUBGROUP_SIZE) {
            &[Subgroup, Rows]
        } else if gpu.is_cpu_adapter() {
            &[Rows, Register]
        } else {
            &[
                Tiled2d(Tile2d::T64x64),
                Tiled2d(Tile2d::T128x64),
                Tiled2d(Tile2d::T128x128),
                Tiled2dSubgroup,
                Tiled,
                Register,
                Rows,
                Subgroup,
            ]
        }
    }

    /// The variant an adapter of this type most likely runs fastest, the first of its
    /// [`MatmulVariant::candidates`]: the subgroup kernel on adapters with subgroups of 8
    /// (lavapipe), rows on other CPU adapters, the 64 × 64 2-D tiled kernel on GPUs.
    pub fn default_for(gpu: &Gpu) -> MatmulVariant {
        MatmulVariant::candidates(gpu)[0]
    }
}

/// Which operands `matmul_subgroup` and `matmul_tiled2d` read as vec4 (four elements per load) rather than
/// element by element: those whose contiguous axis holds a multiple of 4 elements and is
/// not the minibatch (whose size changes on the last step). The contiguous axis is K for A
/// stored `[M, K]` and for B stored `[N, K]`, M for A stored `[K, M]`, N for B stored
/// `[K, N]`. Returns `(a, b)`.
pub fn vec4_operands(spec: &MatmulSpec) -> (bool, bool) {
    let batch_m = spec.batch_dim == BatchDim::M;
    let batch_k = spec.batch_dim == BatchDim::K;
    let (a_len, a_batch) = if spec.trans_a {
        (spec.m, batch_m)
    } else {
        (spec.k, batch_k)
    };
    let (b_len, b_batch) = if spec.trans_b {
        (spec.k, batch_k)
    } else {
        (spec.n, false)
    };
    (
        a_len.is_multiple_of(4) && !a_batch,
        b_len.is_multiple_of(4) && !b_batch,
    )
}

/// Whether `gpu` can build `matmul_subgroup` at all; the reason when it cannot, naming the
/// adapter's subgroup sizes.
pub fn subgroup_device_support(gpu: &Gpu) -> std::result::Result<(), String> {
    if gpu.has_subgroups_of(SUBGROUP_SIZE) {
        return Ok(());
    }
    let has = if gpu.features.contains(wgpu::Features::SUBGROUP) {
        format!(
            "subgroups of {}..{}",
            gpu.info.subgroup_min_size, gpu.info.subgroup_max_size
        )
    } else {
        "no subgroup operations".to_string()
    };
    Err(format!(
        "the subgroup kernel needs an adapter whose subgroups hold exactly {SUBGROUP_SIZE} invocations; {} has {has}",
        gpu.info.name
    ))
}

/// Whether `gpu` can run `matmul_tiled2d` with block `tile`; the reason when it cannot,
/// naming the limit.
pub fn tiled2d_device_support(gpu: &Gpu, tile: Tile2d) -> std::result::Result<(), String> {
    let l = &gpu.limits;
    let needs = [
        (
            "max_compute_workgroup_storage_size",
            tile.workgroup_bytes(),
            l.max_compute_workgroup_storage_size,
        ),
        (
            "max_compute_invocations_per_workgroup",
            tile.invocations(),
            l.max_compute_invocations_per_workgroup,
        ),
        (
            "max_compute_workgroup_size_x",
            tile.cols() / 8,
            l.max_compute_workgroup_size_x,
        ),
        (
            "max_compute_workgroup_size_y",
            tile.rows() / 8,
            l.max_compute_workgroup_size_y,
        ),
    ];
    for (what, need, max) in needs {
        if max < need {
            return Err(format!(
                "the {}x{} 2-D tiled kernel needs {what} >= {need}; {} has {max}",
                tile.rows(),
                tile.cols(),
                gpu.info.name
            ));
        }
    }
    Ok(())
}

impl std::fmt::Display for MatmulVariant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MatmulVariant::Register => f.write_str("register"),
            MatmulVariant::Tiled => f.write_str("tiled"),
            MatmulVariant::Rows => f.write_str("rows"),
            MatmulVariant::Subgroup => f.write_str("subgroup"),
            MatmulVariant::Tiled2d(t) => write!(f, "tiled2d-{}x{}", t.rows(), t.cols()),
            MatmulVariant::Tiled2dSubgroup => f.write_str("tiled2d-subgroup"),
        }
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
    /// `c` is a layer's weight gradient, never stored: the layer's weights and bias get one
    /// SGD step in place ([`super::matmul_sgd`]).
    SgdUpdate = 4,
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

/// Shape and options of one matmul, `C[M, N] = op(A)[M, K] · op(B)[K, N]`. `m`, `n`, `k`
/// are the largest sizes (buffers and grid are sized for them); with a `batch_dim`, the
/// step record's minibatch size replaces M or K at run time.
#[derive(Clone, Copy, Debug)]
pub struct MatmulSpec {
    /// Rows of C and of op(A).
    pub m: usize,
    /// Columns of C and of op(B).
    pub n: usize,
    /// The summed dimension: columns of op(A), rows of op(B).
    pub k: usize,
    /// A is stored `[K, M]` instead of `[M, K]`.
    pub trans_a: bool,
    /// B is stored `[N, K]` instead of `[K, N]`.
    pub trans_b: bool,
    /// C is stored `[N, M]` instead of `[M, N]` (only with [`Epilogue::None`] and
    /// [`Epilogue::SgdUpdate`]).
    pub trans_c: bool,
    /// What happens to each output before it is stored.
    pub epilogue: Epilogue,
    /// Which dimension, if any, follows the step record's minibatch size.
    pub batch_dim: BatchDim,
}

/// Mirrors `struct MatmulParams` in `shaders/matmul_common.wgsl`: the largest M, N, K, the
/// [`BatchDim`] as a number, the chunk of K one dispatch sums, `[k_begin, min(k_end,
/// K))` (the whole of K unless the adapter's loop cap splits it: [`k_chunk_len`]), and the
/// members of a population product ([`MatmulMembers`]: their count and strides in floats).
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub batch_dim: u32,
    pub k_begin: u32,
    pub k_end: u32,
    pub members: u32,
    pub _pad0: u32,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_bias: u32,
    pub stride_mask: u32,
    pub stride_c: u32,
    pub _pad1: [u32; 3],
}

/// The members of one matmul launch (population training): `count` independent products
/// `C_j = op(A_j) · op(B_j)` (plus the epilogue with `bias_j`, `mask_j`) in one dispatch,
/// operand j starting `stride` floats after operand j - 1 in its binding. A stride of 0
/// shares the operand (the minibatch X of layer 0). Strides are multiples of 4 (the vec4
/// kernels index whole vec4s). The members' row blocks follow one another along the
/// folded row axis of the grid, so a launch has `count` times the row blocks of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulMembers {
    /// Number of members (1: the plain product).
    pub count: usize,
    /// Floats between consecutive members' A.
    pub a: usize,
    /// Floats between consecutive members' B.
    pub b: usize,
    /// Floats between consecutive members' bias.
    pub bias: usize,
    /// Floats between consecutive members' mask.
    pub mask: usize,
    /// Floats between consecutive members' C.
    pub c: usize,
}

impl MatmulMembers {
    /// One product: the plain kernel.
    pub const ONE: MatmulMembers = MatmulMembers {
        count: 1,
        a: 0,
        b: 0,
        bias: 0,
        mask: 0,
        c: 0,
    };

    /// Floats operand `what` needs: the last member's `len` floats after its `stride`.
    fn needed(&self, stride: usize, len: usize) -> usize {
        (self.count - 1) * stride + len
    }
}

/// Chunks of K start at multiples of this: whole vec4 steps of the subgroup kernel, whole
/// 16-deep slices of the tiled one and 8-deep ones of the 2-D tiled one.
pub const K_CHUNK_ALIGN: usize = 16;

impl MatmulVariant {
    /// Loop iterations one invocation of this variant runs over a chunk of `len` values of
    /// K (a multiple of [`K_CHUNK_ALIGN`] or the whole of K), counted as llvmpipe counts
    /// them ([`crate::gpu::context::LLVMPIPE_LOOP_CAP`]): every loop of the shader,
    /// nested loops multiplied out, each loop one pass more than its trips (the exit), and
    /// none assumed unrolled by the driver. An upper bound, read off the WGSL:
    /// - register: K loop `len + 1`, clamp loop 5, store loops `5 + 4·5`;
    /// - tiled: per 16-deep slice `1 + 5 + 17 + 16·5 + 64·5 = 423`, exit 1, store 25;
    /// - rows: K loop `len + 1`, 16 row stores of `5`;
    /// - subgroup: vec4 loop `len/4 + 1`, 16 row stores of `5 + 5` (the second when adding
    ///   to an earlier chunk's sum);
    /// - tiled2d (every block shape): per 8-deep slice `1 + 9` (the slice loop and its k
    ///   loop), exit 1, 16 stores of four columns `16·5`;
    /// - tiled2d-subgroup: as tiled2d plus 1 per slice: llvmpipe also enters the k loop of
    ///   the path for A not taken (shuffles or direct loads) with no lane active, which
    ///   costs its exit test (measured: `ones_dot` stopped at 11 passes per slice).
    pub fn loop_passes(self, len: u64) -> u64 {
        match self {
            MatmulVariant::Register => len + 1 + 5 + 25,
            MatmulVariant::Tiled => 423 * len.div_ceil(16) + 1 + 25,
            MatmulVariant::Rows => len + 1 + 16 * 5,
            MatmulVariant::Subgroup => len.div_ceil(4) + 1 + 16 * 10,
            MatmulVariant::Tiled2d(_) => 10 * len.div_ceil(8) + 1 + 16 * 5,
            MatmulVariant::Tiled2dSubgroup => 11 * len.div_ceil(8) + 1 + 16 * 5,
        }
    }
}

/// The longest chunk of K (a multiple of [`K_CHUNK_ALIGN`]) one dispatch of `variant`
/// may sum under a loop cap of `cap` iterations per invocation ([`MatmulVariant::loop_passes`]);
/// `None` when not even one aligned chunk fits. On lavapipe (cap 65,535): register 65,504,
/// rows 65,440, subgroup 261,488, tiled 2,464, tiled2d 52,352, tiled2d-subgroup 47,600.
pub fn k_chunk_len(variant: MatmulVariant, cap: u64) -> Option<usize> {
    // loop_passes is increasing in len: binary search the largest aligned len that fits.
    let fits = |chunks: u64| variant.loop_passes(chunks * K_CHUNK_ALIGN as u64) <= cap;
    if !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1u64, cap.max(1));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) { lo = mid } else { hi = mid - 1 }
    }
    Some(lo as usize * K_CHUNK_ALIGN)
}

/// The chunks `[begin, end)` K is summed in, in order, on `gpu`: one chunk `[0, k)` when
/// the adapter has no loop cap or K fits under it.
///
/// # Errors
/// [`Error::LimitExceeded`] when the cap is too small for even one chunk of
/// [`K_CHUNK_ALIGN`] (only with a small override of [`Gpu::loop_cap`]).
pub fn k_chunks(
    gpu: &Gpu,
    variant: MatmulVariant,
    label: &str,
    k: usize,
) -> Result<Vec<(usize, usize)>> {
    let Some(cap) = gpu.loop_cap else {
        return Ok(vec![(0, k)]);
    };
    if variant.loop_passes(k as u64) <= cap {
        return Ok(vec![(0, k)]);
    }
    let Some(len) = k_chunk_len(variant, cap) else {
        return Err(gpu.loop_cap_exceeded(
            &format!("{label} ({variant} matmul, a chunk of {K_CHUNK_ALIGN} of K)"),
            variant.loop_passes(K_CHUNK_ALIGN as u64),
            "raise the loop cap or pick another --kernels variant",
        ));
    };
    Ok((0..k).step_by(len).map(|b| (b, (b + len).min(k))).collect())
}

/// The pipeline of `variant` for `spec`'s transposes and epilogue (and, for the subgroup
/// and 2-D tiled kernels, which operands they read as vec4: [`vec4_operands`]; for the
/// latter its block shape), as override constants.
fn pipeline(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    spec: &MatmulSpec,
) -> wgpu::ComputePipeline {
    let flag = |b: bool| f64::from(u8::from(b));
    let mut constants = vec![
        ("TRANS_A", flag(spec.trans_a)),
        ("TRANS_B", flag(spec.trans_b)),
        ("TRANS_C", flag(spec.trans_c)),
        ("EPILOGUE", f64::from(spec.epilogue as u32)),
    ];
    let family = match variant {
        MatmulVariant::Subgroup => {
            let (a_vec4, b_vec4) = vec4_operands(spec);
            constants.push(("A_VEC4", flag(a_vec4)));
            constants.push(("B_VEC4", flag(b_vec4)));
            &SUBGROUP_FAMILY
        }
        MatmulVariant::Tiled2d(t) => {
            let (a_vec4, b_vec4) = vec4_operands(spec);
            constants.push(("A_VEC4", flag(a_vec4)));
            constants.push(("B_VEC4", flag(b_vec4)));
            constants.push(("BM", f64::from(t.rows())));
            constants.push(("BN", f64::from(t.cols())));
            &TILED2D_FAMILY
        }
        MatmulVariant::Tiled2dSubgroup => {
            let (a_vec4, b_vec4) = vec4_operands(spec);
            constants.push(("A_VEC4", flag(a_vec4)));
            constants.push(("B_VEC4", flag(b_vec4)));
            let width = sg_tiled::team_width(gpu).expect("dispatch checked supports");
            constants.push(("SG_W", f64::from(width)));
            &sg_tiled::FAMILY
        }
        _ => &FAMILY,
    };
    kernels.pipeline(gpu, family, variant.entry_point(), &constants)
}

/// The binding of operand `v` (`len` elements): whole vec4s for `matmul_subgroup`, which
/// declares A, B and C as vec4 arrays, and for A and B (not C, `is_c`) of
/// `matmul_tiled2d`, which declares those two so.
fn operand<'a>(
    v: &View<'a>,
    variant: MatmulVariant,
    what: &str,
    len: usize,
    is_c: bool,
) -> Result<wgpu::BindingResource<'a>> {
    let vec4 = match variant {
        MatmulVariant::Subgroup => true,
        MatmulVariant::Tiled2d(_) | MatmulVariant::Tiled2dSubgroup => !is_c,
        _ => false,
    };
    if vec4 {
        v.vec4_binding(what, len)
    } else {
        Ok(v.binding())
    }
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
/// by this launch). [`Epilogue::SgdUpdate`] launches are prepared by
/// [`super::matmul_sgd::dispatch`].
///
/// # Errors
/// [`Error::LimitExceeded`] when the grid or a binding is over the adapter's limits, or
/// not even one chunk of K fits under its loop cap ([`k_chunks`]);
/// [`Error::InvalidConfig`] when an operand is shorter than the shape needs, or `variant`
/// does not run on this device ([`MatmulVariant::supports`]).
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
    dispatch_members(
        gpu,
        kernels,
        variant,
        label,
        spec,
        MatmulMembers::ONE,
        [a, b, c, dummy],
        bias,
        mask,
    )
}

/// [`dispatch`] for the `members` of a population ([`MatmulMembers`]): one launch computes
/// every member's product. `operands` are A, B, C and the dummy, each view holding every
/// member's operand. Every variant takes the member axis.
///
/// # Errors
/// As [`dispatch`]; [`Error::InvalidConfig`] for a stride that is not a multiple of 4.
#[allow(clippy::too_many_arguments)]
pub fn dispatch_members(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    members: MatmulMembers,
    operands: [View<'_>; 4],
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
) -> Result<Dispatch> {
    dispatch_velocity(
        gpu, kernels, variant, label, spec, members, operands, bias, mask, None,
    )
}

/// [`dispatch_members`] with the momentum buffer `velocity` bound (binding 6), which
/// [`Epilogue::SgdUpdate`] needs ([`super::matmul_sgd`]); without one, binding 6 gets a
/// buffer of its own that nothing reads.
#[allow(clippy::too_many_arguments)]
pub(crate) fn dispatch_velocity(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    members: MatmulMembers,
    operands: [View<'_>; 4],
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
    velocity: Option<View<'_>>,
) -> Result<Dispatch> {
    let [a, b, c, dummy] = operands;
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let mm = members;
    assert!(mm.count >= 1, "a matmul launch has at least one member");
    let strides = [mm.a, mm.b, mm.bias, mm.mask, mm.c];
    if mm.count > 1 && strides.iter().any(|s| !s.is_multiple_of(4)) {
        return Err(Error::InvalidConfig {
            name: "matmul member strides",
            value: format!("{strides:?}"),
            reason: "member strides must be multiples of 4 floats (vec4 loads)".into(),
        });
    }
    assert!(
        !spec.trans_c || matches!(spec.epilogue, Epilogue::None | Epilogue::SgdUpdate),
        "a transposed C takes no epilogue but the SGD update"
    );
    if let Err(reason) = variant.supports(gpu) {
        return Err(Error::InvalidConfig {
            name: "matmul kernel",
            value: format!("{variant} for M={m} N={n} K={k}"),
            reason,
        });
    }
    let (a_len, b_len, mut c_len) = (
        mm.needed(mm.a, m * k),
        mm.needed(mm.b, k * n),
        mm.needed(mm.c, m * n),
    );
    if spec.epilogue == Epilogue::SgdUpdate {
        c_len = c.len; // the layer's weights and its bias after them
    }
    check_len("A", &a, a_len)?;
    check_len("B", &b, b_len)?;
    check_len("C", &c, c_len)?;
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
            check_len("bias", &v, mm.needed(mm.bias, n))?;
            v
        }
        // The status header and the SGD record (checked by `matmul_sgd::dispatch`).
        Epilogue::SgdUpdate => bias.expect("the SGD epilogue needs the status header"),
        _ => dummy,
    };
    let mask = match spec.epilogue {
        Epilogue::SgdUpdate => mask.expect("the SGD epilogue needs its SGD record"),
        Epilogue::ReluMask => {
            let v = mask.expect("mask epilogue needs a mask view");
            check_len("mask", &v, mm.needed(mm.mask, m * n))?;
            v
        }
        _ => dummy,
    };
    // One bind group per chunk of K (one in all unless the adapter's loop cap splits K),
    // recorded in order: the first stores, the later ones add (shaders/matmul_common.wgsl).
    let layout = kernels.bind_group_layout(gpu, &FAMILY);
    let unused;
    let velocity = match velocity {
        // As C: vec4 elements for the subgroup kernel.
        Some(v) => operand(&v, variant, &format!("{label} velocity"), v.len, true)?,
        None => {
            unused = gpu.buffer(
                &format!("{label} unused velocity"),
                16,
                wgpu::BufferUsages::STORAGE,
            );
            unused.as_entire_binding()
        }
    };
    let mut bind_groups = Vec::new();
    for (k_begin, k_end) in k_chunks(gpu, variant, label, k)? {
        let params = MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            batch_dim: spec.batch_dim as u32,
            k_begin: k_begin as u32,
            k_end: k_end as u32,
            members: mm.count as u32,
            _pad0: 0,
            stride_a: mm.a as u32,
            stride_b: mm.b as u32,
            stride_bias: mm.bias as u32,
            stride_mask: mm.mask as u32,
            stride_c: mm.c as u32,
            _pad1: [0; 3],
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
                    resource: operand(&a, variant, &format!("{label} operand A"), a_len, false)?,
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: operand(&b, variant, &format!("{label} operand B"), b_len, false)?,
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
                    resource: operand(&c, variant, &format!("{label} operand C"), c_len, true)?,
                },
                wgpu::BindGroupEntry {
                    binding: 6,
                    resource: velocity.clone(),
                },
            ],
        ));
    }
    let bind_group = bind_groups.remove(0);
    let (x_blocks, y_blocks) = variant.blocks(m, n);
    let grid = gpu.grid_2d(label, x_blocks, y_blocks * mm.count as u64)?;
    Ok(Dispatch {
        kernel: variant.entry_point(),
        label: label.to_string(),
        pipeline: pipeline(gpu, kernels, variant, &spec),
        bind_group,
        splits: bind_groups,
        grid,
        flops: 2 * (m * n * k * mm.count) as u64,
        bytes: 4 * (a_len + b_len + c_len) as u64,
        shape: if mm.count == 1 {
            format!("M={m} N={n} K={k}")
        } else {
            format!("{}x M={m} N={n} K={k}", mm.count)
        },
    })
}

/// How a launch picks its matmul variant for a shape. The wrappers only ask; how a choice
/// decides (a fixed variant, or timing the candidates: `MatmulChoice` in
/// `crate::gpu::autotune`, which implements this) is not theirs to know.
pub trait ChooseVariant {
    /// The variant to run `spec` with on `gpu`.
    ///
    /// # Errors
    /// Device errors while measuring, or a shape over the adapter's limits.
    fn choose(&self, gpu: &Gpu, kernels: &Kernels, spec: &MatmulSpec) -> Result<MatmulVariant>;
}

/// [`dispatch`] with the variant `choice` picks for `spec` ([`ChooseVariant`]; the engine
/// passes autotuning's `MatmulChoice`).
///
/// # Errors
/// As [`dispatch`], plus device errors while timing.
pub fn dispatch_with(
    gpu: &Gpu,
    kernels: &Kernels,
    choice: impl ChooseVariant,
    label: &str,
    spec: MatmulSpec,
    a: View<'_>,
    b: View<'_>,
    bias: Option<View<'_>>,
    mask: Option<View<'_>>,
    c: View<'_>,
    dummy: View<'_>,
) -> Result<Dispatch> {
    let variant = choice.choose(gpu, kernels, &spec)?;
    dispatch(
        gpu, kernels, variant, label, spec, a, b, bias, mask, c, dummy,
    )
}
