//! The gather prologue of the matmul kernels ([`super::OperandA::Pixels`]): layer 0's
//! forward product `C[M, N] = A[M, K] · Bᵀ` (B stored `[N, K]`, bias or bias + ReLU
//! epilogue, M the minibatch) whose operand A is read straight from the dataset's u8 pixels
//! through the epoch's sample order,
//! `A[m, i] = (pixels[order[offset + m], i] / 255 - mean) / std`
//! (`shaders/matmul/matmul_gather.wgsl`): the `gather_normalize` launch is not needed. The
//! workgroups of column block 0 of member 0 also store the normalised values into X `[B,
//! I]` (for layer 0's weight gradient; not when evaluating) and the labels of their rows
//! into y `[B]` (for the loss); the members share the pixels, X and y. The values are those
//! of `gather_normalize` (the same arithmetic) and the product's those of the f32 prologue
//! on them: bit for bit.
//!
//! Only [`MatmulVariant::Subgroup`] (lavapipe) and [`MatmulVariant::Tiled2d`] (GPUs) read
//! pixels: their shaders take operand A from a fragment (`matmul_subgroup_a.wgsl`, f32 values,
//! or `matmul_subgroup_gather.wgsl`, pixels; likewise for tiled2d), and this module builds
//! them with the pixel one (families `matmul_subgroup_gather`, `matmul_tiled2d_gather`, named
//! after that fragment; the entry points keep the kernels' names). [`supports`] says when a product can run so; the engine keeps the
//! unfused launches otherwise.
//!
//! Bindings: 0 params (uniform [`MatmulParams`]), 1 pixels (packed u8, four per u32 word),
//! 2 B, 3 bias `[N]`, 4 mask (unused: the dummy), 5 C, 6 velocity (the kernels' SgdUpdate
//! epilogue's; unused here: 16 bytes), 7 order `[N_data]` u32, 8 labels `[N_data]` u32, 9 X
//! `[B, K]` (whole vec4s), 10 y `[B]` u32, 11 the normalisation (uniform
//! [`GatherParams`]); group 1 the step record (its `offset` and `batch`). Grid: as
//! [`MatmulVariant::blocks`].

use super::super::{Dispatch, KernelFamily, Kernels, params_buffer, storage_entry, uniform_entry};
use super::{
    BatchDim, Epilogue, MatmulMembers, MatmulParams, MatmulSpec, MatmulVariant, k_chunks,
    vec4_operands,
};
use crate::error::{Error, Result};
use crate::gpu::{Gpu, View};

/// `matmul_subgroup` with operand A read from pixels.
pub const SUBGROUP_SOURCE: &str = concat!(
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/sgd_step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_common.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_gather.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_subgroup.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_subgroup_gather.wgsl")
);

/// `matmul_tiled2d` with operand A read from pixels.
pub const TILED2D_SOURCE: &str = concat!(
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/sgd_step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_common.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_gather.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_tiled2d.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_tiled2d_gather.wgsl")
);

/// Storage buffers one launch binds: pixels, B, bias, mask, C, velocity, order, labels, X,
/// y.
pub const STORAGE_BINDINGS: u32 = 10;

/// Bindings of both families (see the module docs).
pub const BINDINGS: [wgpu::BindGroupLayoutEntry; 12] = [
    uniform_entry(0),
    storage_entry(1, true),
    storage_entry(2, true),
    storage_entry(3, true),
    storage_entry(4, true),
    storage_entry(5, false),
    storage_entry(6, false),
    storage_entry(7, true),
    storage_entry(8, true),
    storage_entry(9, false),
    storage_entry(10, false),
    uniform_entry(11),
];

/// The subgroup kernel reading pixels (entry point `matmul_subgroup`).
pub const SUBGROUP_FAMILY: KernelFamily = KernelFamily {
    name: "matmul_subgroup_gather",
    source: SUBGROUP_SOURCE,
    features: wgpu::Features::SUBGROUP,
    bindings: &BINDINGS,
};

/// The 2-D tiled kernel reading pixels (entry point `matmul_tiled2d`).
pub const TILED2D_FAMILY: KernelFamily = KernelFamily {
    name: "matmul_tiled2d_gather",
    source: TILED2D_SOURCE,
    features: wgpu::Features::empty(),
    bindings: &BINDINGS,
};

/// Mirrors `struct GatherParams` in `shaders/matmul/matmul_gather.wgsl`: the normalisation
/// `(pixel / 255 - mean) / std_dev`.
#[repr(C)]
#[derive(Clone, Copy, Debug, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GatherParams {
    pub mean: f32,
    pub std_dev: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Where operand A comes from, and where the launch stores X and y.
pub struct PixelSource<'a> {
    /// The dataset's pixels, `[N_data, K]` u8 packed four per u32 word.
    pub pixels: &'a wgpu::Buffer,
    /// `[N_data]` u32 labels.
    pub labels: &'a wgpu::Buffer,
    /// `[N_data]` u32 sample order; the minibatch is `order[offset .. offset + batch]` of
    /// the step record.
    pub order: &'a wgpu::Buffer,
    /// `[M, K]` f32 output: the normalised minibatch, written when `write_x`.
    pub x: View<'a>,
    /// `[M]` u32 output: the minibatch's labels, always written.
    pub y: View<'a>,
    /// Normalisation mean and standard deviation (of pixels scaled to [0, 1]).
    pub mean: f32,
    pub std: f32,
    /// Store X (training: layer 0's weight gradient reads it) or not (evaluation).
    pub write_x: bool,
}

/// Whether `variant` can run `spec` with operand A read from pixels on `gpu`; the reason
/// when it cannot. Needs: the subgroup or a 2-D tiled kernel the device runs
/// ([`MatmulVariant::supports`]); a forward product (A stored `[M, K]` with M the
/// minibatch, B stored `[N, K]`, C not transposed); K summed in one launch under the
/// adapter's loop cap ([`k_chunks`]); [`STORAGE_BINDINGS`] storage buffers per shader.
pub fn supports(
    gpu: &Gpu,
    variant: MatmulVariant,
    spec: &MatmulSpec,
) -> std::result::Result<(), String> {
    if !matches!(variant, MatmulVariant::Subgroup | MatmulVariant::Tiled2d(_)) {
        return Err(format!(
            "the {variant} matmul kernel does not read pixels (only subgroup and tiled2d do)"
        ));
    }
    variant.supports(gpu)?;
    if spec.trans_a || !spec.trans_b || spec.trans_c || spec.batch_dim != BatchDim::M {
        return Err("only a forward product X · Wᵀ over the minibatch reads pixels".into());
    }
    let max = gpu.limits.max_storage_buffers_per_shader_stage;
    if max < STORAGE_BINDINGS {
        return Err(format!(
            "reading pixels binds {STORAGE_BINDINGS} storage buffers; {} allows {max}",
            gpu.info.name
        ));
    }
    match k_chunks(gpu, variant, "layer0.forward", spec.k) {
        Ok(chunks) if chunks.len() == 1 => Ok(()),
        Ok(chunks) => Err(format!(
            "K = {} is summed in {} launches under the loop cap; reading pixels needs one",
            spec.k,
            chunks.len()
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Prepares the launch of [`super::dispatch`] whose A is pixels: `C = A · Bᵀ` plus
/// `spec`'s epilogue for `mm` members (A shared: its stride must be 0), A read from `src`
/// (which also receives X and y, once, from member 0). `b` is B `[N, K]`, `bias` `[N]` per
/// member, `dummy` any small buffer this launch does not write.
///
/// # Errors
/// [`Error::InvalidConfig`] when [`supports`] refuses, the epilogue is not a bias one, A's
/// member stride is not 0, or an operand is shorter than the shape needs;
/// [`Error::LimitExceeded`] when a grid or binding is over the adapter's limits.
pub(super) fn dispatch(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    label: &str,
    spec: MatmulSpec,
    mm: MatmulMembers,
    src: PixelSource<'_>,
    b: View<'_>,
    bias: View<'_>,
    c: View<'_>,
    dummy: View<'_>,
) -> Result<Dispatch> {
    let (m, n, k) = (spec.m, spec.n, spec.k);
    let refuse = |reason: String| Error::InvalidConfig {
        name: "gather fusion",
        value: format!("{variant} for M={m} N={n} K={k}"),
        reason,
    };
    supports(gpu, variant, &spec).map_err(refuse)?;
    if !matches!(spec.epilogue, Epilogue::Bias | Epilogue::BiasRelu) {
        return Err(refuse("the forward product has a bias epilogue".into()));
    }
    if mm.a != 0 {
        return Err(refuse(
            "the members share the pixels (A's stride is 0)".into(),
        ));
    }
    for (what, v, need) in [
        ("B", &b, mm.needed(mm.b, n * k)),
        ("bias", &bias, mm.needed(mm.bias, n)),
        ("C", &c, mm.needed(mm.c, m * n)),
        ("X", &src.x, m * k),
        ("y", &src.y, m),
    ] {
        if v.len < need {
            return Err(refuse(format!(
                "{what} holds {} elements, needs {need}",
                v.len
            )));
        }
        gpu.check_binding(
            &format!("{label} operand {what}"),
            v.len as u64 * 4,
            "use a smaller --batch-size or smaller --hidden sizes",
        )?;
    }
    let params = MatmulParams {
        m: m as u32,
        n: n as u32,
        k: k as u32,
        batch_dim: BatchDim::M as u32,
        k_begin: 0,
        k_end: k as u32,
        members: mm.count as u32,
        sgd_bias_offset: 0,
        stride_a: 0,
        stride_b: mm.b as u32,
        stride_bias: mm.bias as u32,
        stride_mask: 0,
        stride_c: mm.c as u32,
        sgd_hyper_offset: 0,
        sgd_steps_offset: 0,
        sgd_sum_offset: 0,
    };
    let norm = GatherParams {
        mean: src.mean,
        std_dev: src.std,
        _pad0: 0,
        _pad1: 0,
    };
    let (ub, nb) = (
        params_buffer(gpu, label, &params),
        params_buffer(gpu, label, &norm),
    );
    let family = match variant {
        MatmulVariant::Subgroup => &SUBGROUP_FAMILY,
        _ => &TILED2D_FAMILY,
    };
    // The subgroup kernel declares C as vec4s, the 2-D tiled one as f32.
    let c_binding = match variant {
        MatmulVariant::Subgroup => {
            c.vec4_binding(&format!("{label} operand C"), mm.needed(mm.c, m * n))?
        }
        _ => c.binding(),
    };
    let velocity = gpu.buffer(
        &format!("{label} unused velocity"),
        16,
        wgpu::BufferUsages::STORAGE,
    );
    let entries = [
        (0, ub.as_entire_binding()),
        (1, src.pixels.as_entire_binding()),
        (
            2,
            b.vec4_binding(&format!("{label} operand B"), mm.needed(mm.b, n * k))?,
        ),
        (3, bias.binding()),
        (4, dummy.binding()),
        (5, c_binding),
        (6, velocity.as_entire_binding()),
        (7, src.order.as_entire_binding()),
        (8, src.labels.as_entire_binding()),
        (9, src.x.vec4_binding(&format!("{label} X"), m * k)?),
        (10, src.y.binding()),
        (11, nb.as_entire_binding()),
    ]
    .map(|(binding, resource)| wgpu::BindGroupEntry { binding, resource });
    let bind_group = gpu.bind_group(label, &kernels.bind_group_layout(gpu, family), &entries);
    let (x_blocks, y_blocks) = variant.blocks(m, n);
    Ok(Dispatch {
        kernel: match variant {
            MatmulVariant::Subgroup => "matmul_subgroup_gather",
            _ => "matmul_tiled2d_gather",
        },
        label: label.to_string(),
        pipeline: pipeline(gpu, kernels, variant, &spec, src.write_x),
        bind_group,
        splits: Vec::new(),
        grid: gpu.grid_2d(label, x_blocks, y_blocks * mm.count as u64)?,
        flops: 2 * (m * n * k * mm.count) as u64,
        // Pixels, B and C, and X and y when stored.
        bytes: (m * k + 4 * mm.count * (n * k + m * n)) as u64
            + if src.write_x {
                4 * (m * k + m) as u64
            } else {
                4 * m as u64
            },
        shape: mm.shape(m, n, k),
    })
}

/// The pipeline: `matmul::pipeline`'s override constants for this spec, plus `WRITE_X`.
fn pipeline(
    gpu: &Gpu,
    kernels: &Kernels,
    variant: MatmulVariant,
    spec: &MatmulSpec,
    write_x: bool,
) -> wgpu::ComputePipeline {
    let flag = |b: bool| f64::from(u8::from(b));
    let (a_vec4, b_vec4) = vec4_operands(spec);
    let mut constants = vec![
        ("TRANS_A", flag(false)),
        ("TRANS_B", flag(true)),
        ("TRANS_C", flag(false)),
        ("EPILOGUE", f64::from(spec.epilogue as u32)),
        ("A_VEC4", flag(a_vec4)),
        ("B_VEC4", flag(b_vec4)),
        ("WRITE_X", flag(write_x)),
    ];
    let family = match variant {
        MatmulVariant::Tiled2d(t) => {
            constants.push(("BM", f64::from(t.rows())));
            constants.push(("BN", f64::from(t.cols())));
            &TILED2D_FAMILY
        }
        _ => &SUBGROUP_FAMILY,
    };
    kernels.pipeline(gpu, family, variant.entry_point(), &constants)
}
