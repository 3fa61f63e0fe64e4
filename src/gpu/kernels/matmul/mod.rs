//! The matmul family: `C[M, N] = op(A)[M, K] · op(B)[K, N]` for K >= 1 members in one
//! launch, with a prologue that reads A (f32 values, or the minibatch's pixels: [`gather`])
//! and an epilogue (none, bias, bias + ReLU, ReLU mask, or the SGD update of the layer
//! whose weight gradient C is: [`sgd`]). [`dispatch`] prepares every launch; the kernels
//! themselves are [`MatmulVariant`]s ([`variant`]; the GPU one with subgroup shuffles in
//! [`tiled2d_subgroup`]), and the f16 product of `--precision f16` is [`mod@f16`].
//!
//! Shaders (`shaders/matmul/`): `matmul_common.wgsl` (params, member offsets, split K,
//! epilogues) is prepended to each kernel file (`matmul.wgsl`: register, tiled, rows;
//! `matmul_subgroup.wgsl`, `matmul_tiled2d.wgsl`, `matmul_tiled2d_subgroup.wgsl`); the
//! subgroup and 2-D tiled kernels take A from an operand fragment, `*_a.wgsl` (f32) or
//! `matmul_gather.wgsl` + `*_gather.wgsl` (pixels).
//!
//! Bindings: 0 params (uniform), 1 A, 2 B, 3 bias `[N]`, 4 mask `[M, N]`, 5 C (read-write;
//! A, B and C as whole vec4s for the subgroup kernel, A and B for the 2-D tiled one), 6 the
//! momentum buffer (SGD epilogue); group 1 the step record. Grid: column blocks × row
//! blocks × members (see [`MatmulVariant::blocks`]), the row blocks folded into y and z past
//! the per-dimension limit. Under an adapter loop cap ([`Gpu::loop_cap`]) that one
//! invocation's K loop would pass, K is split into chunks ([`k_chunks`]), one launch each
//! over the same grid ([`super::Dispatch::splits`]): the first stores, the later ones add,
//! and the last applies the epilogue.

pub mod f16;
pub mod gather;
pub mod sgd;
pub mod tiled2d_subgroup;
pub mod variant;

use super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};

pub use gather::PixelSource;
pub use sgd::SgdOperands;
pub use variant::{
    K_CHUNK_ALIGN, MatmulVariant, SUBGROUP_SIZE, TILE, Tile2d, k_chunk_len,
    subgroup_device_support, tiled2d_device_support, vec4_operands,
};

use tiled2d_subgroup as sg_tiled;

/// The WGSL source of the scalar-load kernels (register, tiled, rows).
pub const SOURCE: &str = concat!(
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/sgd_step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_common.wgsl"),
    include_str!("../../../../shaders/matmul/matmul.wgsl")
);

/// The WGSL source of `matmul_subgroup`, built only on devices with subgroups of
/// [`SUBGROUP_SIZE`].
pub const SUBGROUP_SOURCE: &str = concat!(
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/sgd_step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_common.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_subgroup_a.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_subgroup.wgsl")
);

/// The WGSL source of `matmul_tiled2d`, the register-tiled kernel for GPUs ([`Tile2d`]).
pub const TILED2D_SOURCE: &str = concat!(
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/sgd_step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_common.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_tiled2d_a.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_tiled2d.wgsl")
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
    /// SGD step in place ([`sgd`]).
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

/// Mirrors `struct MatmulParams` in `shaders/matmul/matmul_common.wgsl`: the largest M, N, K, the
/// [`BatchDim`] as a number, the chunk of K one dispatch sums, `[k_begin, min(k_end,
/// K))` (the whole of K unless the adapter's loop cap splits it: [`k_chunk_len`]), the
/// members ([`MatmulMembers`]: their count and strides in floats), and for the SGD epilogue
/// where the bias starts in C, where the members' settings and steps start in the SGD
/// table and where the gradient sums start in the momentum binding ([`SgdOperands`]).
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
    pub sgd_bias_offset: u32,
    pub stride_a: u32,
    pub stride_b: u32,
    pub stride_bias: u32,
    pub stride_mask: u32,
    pub stride_c: u32,
    pub sgd_hyper_offset: u32,
    pub sgd_steps_offset: u32,
    pub sgd_sum_offset: u32,
}

/// The members of one matmul launch (K >= 1): `count` independent products
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
    pub(crate) fn needed(&self, stride: usize, len: usize) -> usize {
        (self.count - 1) * stride + len
    }

    /// The shape for traces and tables: `M=64 N=256 K=784`, `8x M=64 N=256 K=784` for 8
    /// members.
    pub(crate) fn shape(&self, m: usize, n: usize, k: usize) -> String {
        if self.count == 1 {
            format!("M={m} N={n} K={k}")
        } else {
            format!("{}x M={m} N={n} K={k}", self.count)
        }
    }
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

/// Where operand A of a launch comes from: its prologue.
pub enum OperandA<'a> {
    /// f32 values, `[M, K]` (or `[K, M]` with `trans_a`) per member.
    Values(View<'a>),
    /// The minibatch's u8 pixels read through the epoch's sample order and normalised on
    /// load (the gather prologue, [`gather`]): layer 0's forward product, shared by the
    /// members (the A stride must be 0).
    Pixels(PixelSource<'a>),
}

/// What a launch's epilogue reads besides C; it matches [`MatmulSpec::epilogue`].
pub enum EpilogueOperands<'a> {
    /// [`Epilogue::None`].
    None,
    /// [`Epilogue::Bias`] and [`Epilogue::BiasRelu`]: the bias `[N]` per member.
    Bias(View<'a>),
    /// [`Epilogue::ReluMask`]: the mask `[M, N]` per member (the forward output).
    Mask(View<'a>),
    /// [`Epilogue::SgdUpdate`]: the SGD step's operands ([`sgd`]).
    Sgd(SgdOperands<'a>),
}

/// Everything one matmul launch binds: the product `C = op(A) · op(B)` of `spec` for
/// `members`, the prologue that reads A and the operands of the epilogue. `dummy` is any
/// small buffer the launch does not write, bound where a slot is unused.
pub struct MatmulLaunch<'a> {
    pub spec: MatmulSpec,
    pub members: MatmulMembers,
    pub a: OperandA<'a>,
    pub b: View<'a>,
    pub c: View<'a>,
    pub epilogue: EpilogueOperands<'a>,
    pub dummy: View<'a>,
}

impl<'a> MatmulLaunch<'a> {
    /// One product of f32 operands with no epilogue operand (set [`MatmulLaunch::epilogue`]
    /// or use [`MatmulLaunch::with_epilogue`] for a bias or mask).
    pub fn new(spec: MatmulSpec, a: View<'a>, b: View<'a>, c: View<'a>, dummy: View<'a>) -> Self {
        MatmulLaunch {
            spec,
            members: MatmulMembers::ONE,
            a: OperandA::Values(a),
            b,
            c,
            epilogue: EpilogueOperands::None,
            dummy,
        }
    }

    /// This launch with the epilogue operands `epilogue`.
    pub fn with_epilogue(self, epilogue: EpilogueOperands<'a>) -> Self {
        MatmulLaunch { epilogue, ..self }
    }

    /// This launch for `members`.
    pub fn with_members(self, members: MatmulMembers) -> Self {
        MatmulLaunch { members, ..self }
    }
}

/// Prepares one matmul launch: every variant, every member count, both prologues (f32
/// values or pixels) and every epilogue go through here. The f16 kernel, whose operands
/// are f16, has its own launch ([`f16::dispatch`]).
///
/// # Errors
/// [`Error::LimitExceeded`] when the grid or a binding is over the adapter's limits, or
/// not even one chunk of K fits under its loop cap ([`k_chunks`]; the SGD epilogue and the
/// pixel prologue need one chunk: [`sgd::fits`], [`gather::supports`]);
/// [`Error::InvalidConfig`] when an operand is shorter than the shape needs, a member
/// stride is not a multiple of 4, or `variant` does not run on this device
/// ([`MatmulVariant::supports`]) or not with this prologue.
///
/// # Panics
/// When the epilogue operands do not match `spec.epilogue` (a caller's bug).
pub fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    launch: MatmulLaunch<'_>,
) -> Result<Dispatch> {
    let MatmulLaunch {
        spec,
        members: mm,
        a,
        b,
        c,
        epilogue,
        dummy,
    } = launch;
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
    let matches = matches!(
        (&epilogue, spec.epilogue),
        (EpilogueOperands::None, Epilogue::None)
            | (
                EpilogueOperands::Bias(_),
                Epilogue::Bias | Epilogue::BiasRelu
            )
            | (EpilogueOperands::Mask(_), Epilogue::ReluMask)
            | (EpilogueOperands::Sgd(_), Epilogue::SgdUpdate)
    );
    assert!(
        matches,
        "{label}: epilogue operands do not match {:?}",
        spec.epilogue
    );
    if let Err(reason) = variant.supports(gpu) {
        let (m, n, k) = (spec.m, spec.n, spec.k);
        return Err(Error::InvalidConfig {
            name: "matmul kernel",
            value: format!("{variant} for M={m} N={n} K={k}"),
            reason,
        });
    }
    match a {
        OperandA::Pixels(src) => {
            let EpilogueOperands::Bias(bias) = epilogue else {
                return Err(Error::InvalidConfig {
                    name: "gather prologue",
                    value: label.to_string(),
                    reason: "only a forward product with a bias epilogue reads pixels".into(),
                });
            };
            gather::dispatch(
                gpu, kernels, variant, label, spec, mm, src, b, bias, c, dummy,
            )
        }
        OperandA::Values(a) => {
            let ops = Operands {
                a,
                b,
                c,
                epilogue,
                dummy,
            };
            values(gpu, kernels, variant, label, spec, mm, ops)
        }
    }
}

/// The f32 operands of a launch whose A is values.
struct Operands<'a> {
    a: View<'a>,
    b: View<'a>,
    c: View<'a>,
    epilogue: EpilogueOperands<'a>,
    dummy: View<'a>,
}

/// The launch of [`dispatch`] with A read from f32 values: the bind group per chunk of K
/// (bindings 3, 4, 5 and 6 per the epilogue: bias or status, mask or SGD table, C or the
/// layer's parameters, the momentum buffer or a stand-in) and the grid.
fn values(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    mm: MatmulMembers,
    ops: Operands<'_>,
) -> Result<Dispatch> {
    let Operands {
        a,
        b,
        c,
        epilogue,
        dummy,
    } = ops;
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let (a_len, b_len) = (mm.needed(mm.a, m * k), mm.needed(mm.b, k * n));
    let mut c_len = mm.needed(mm.c, m * n);
    // Bindings 3 and 4, the SGD settings in the params, and the momentum buffer.
    let mut sgd_words = [0u32; 4];
    let (mut stride_bias, mut stride_mask) = (mm.bias, mm.mask);
    let (bias, mask, velocity) = match &epilogue {
        EpilogueOperands::None => (dummy, dummy, None),
        EpilogueOperands::Bias(v) => {
            check_len("bias", v, mm.needed(mm.bias, n))?;
            (*v, dummy, None)
        }
        EpilogueOperands::Mask(v) => {
            check_len("mask", v, mm.needed(mm.mask, m * n))?;
            (dummy, *v, None)
        }
        EpilogueOperands::Sgd(s) => {
            sgd::check(gpu, variant, label, &spec, mm, &c, s)?;
            c_len = c.len; // the layer's weights and its bias after them, per member
            sgd_words = [
                s.bias_offset as u32,
                s.hyper_offset as u32,
                s.steps_offset as u32,
                s.sum_offset as u32,
            ];
            stride_bias = s.status_stride;
            stride_mask = 0;
            (s.status, s.table, Some(s.velocity))
        }
    };
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
    // One bind group per chunk of K (one in all unless the adapter's loop cap splits K),
    // recorded in order: the first stores, the later ones add (matmul_common.wgsl).
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
            sgd_bias_offset: sgd_words[0],
            stride_a: mm.a as u32,
            stride_b: mm.b as u32,
            stride_bias: stride_bias as u32,
            stride_mask: stride_mask as u32,
            stride_c: mm.c as u32,
            sgd_hyper_offset: sgd_words[1],
            sgd_steps_offset: sgd_words[2],
            sgd_sum_offset: sgd_words[3],
        };
        let ub = params_buffer(gpu, label, &params);
        let entries = [
            (0, ub.as_entire_binding()),
            (
                1,
                operand(&a, variant, &format!("{label} operand A"), a_len, false)?,
            ),
            (
                2,
                operand(&b, variant, &format!("{label} operand B"), b_len, false)?,
            ),
            (3, bias.binding()),
            (4, mask.binding()),
            (
                5,
                operand(&c, variant, &format!("{label} operand C"), c_len, true)?,
            ),
            (6, velocity.clone()),
        ]
        .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource });
        bind_groups.push(gpu.bind_group(label, &layout, &entries));
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
        shape: mm.shape(m, n, k),
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
