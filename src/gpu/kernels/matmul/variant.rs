//! The matmul kernels ([`MatmulVariant`]): which exist, their workgroup shapes and grids,
//! which adapters run them, which candidates autotuning times where, and the loop passes
//! one invocation runs (for lavapipe's loop cap). The launch itself is [`super::dispatch`].

use super::tiled2d_subgroup as sg_tiled;
use super::{BatchDim, MatmulSpec};
use crate::gpu::Gpu;

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
