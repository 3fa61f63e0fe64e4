//! The family of `shaders/matmul/matmul_tiled2d_subgroup.wgsl` ([`MatmulVariant::Tiled2dSubgroup`]):
//! the 2-D tiled matmul for GPUs with subgroups, op(A) shared among the lanes of a
//! subgroup by `subgroupShuffle` rather than through workgroup memory. Its launches go
//! through [`super::dispatch`] like every variant (same bind group, member
//! strides, K chunks, transposes and epilogues); this module holds what is particular to
//! it: the source, its block shape, and which adapters run it with which team width.
//!
//! Team width: the shader splits its 256 invocations into teams of `SG_W` lanes that
//! share op(A) by shuffles. WGSL cannot ask for a subgroup size, and a driver may run any
//! power of two in `[subgroup_min_size, subgroup_max_size]`, so [`team_width`] is the
//! *smallest* size the adapter reports: every size the driver may pick is a multiple of it,
//! and a team (SG_W lanes aligned inside one subgroup) never straddles two subgroups. The
//! shader takes each lane's team from the subgroup builtins and checks that the subgroups
//! are full and a whole number of teams; where they are not, it reads op(A) from global
//! memory without shuffles (correct, slower). `shaders/matmul/matmul_tiled2d_subgroup.wgsl` gives
//! the argument in full; `tests/gpu/parity_subgroup_tiled.rs` runs widths 4, 8, 16 and 32 on
//! lavapipe's 8-lane subgroups, so both paths are tested.
//!
//! [`MatmulVariant::Tiled2dSubgroup`]: super::MatmulVariant::Tiled2dSubgroup

use super::super::KernelFamily;
use super::BINDINGS;
use crate::gpu::Gpu;

/// The WGSL source of `matmul_tiled2d_subgroup`.
pub const SOURCE: &str = concat!(
    include_str!("../../../../shaders/step.wgsl"),
    include_str!("../../../../shaders/sgd_step.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_common.wgsl"),
    include_str!("../../../../shaders/matmul/matmul_tiled2d_subgroup.wgsl")
);

/// The family: built only on devices with `SUBGROUP` ([`device_support`]). Same bindings
/// as the other matmul families, so their bind groups serve it.
pub const FAMILY: KernelFamily = KernelFamily {
    name: "matmul_tiled2d_subgroup",
    source: SOURCE,
    features: wgpu::Features::SUBGROUP,
    bindings: &BINDINGS,
};

/// Rows of C per workgroup: 8 teams of 8 rows.
pub const BLOCK_ROWS: u32 = 64;
/// Columns of C per workgroup: 8 per lane, whatever the team width.
pub const BLOCK_COLS: u32 = 256;
/// Invocations per workgroup (one 8 × 8 register tile each).
pub const INVOCATIONS: u32 = 256;
/// Workgroup memory, bytes: two 8-deep slices of op(B), `2 · 8 · 256 · 4`.
pub const WORKGROUP_BYTES: u32 = 2 * 8 * BLOCK_COLS * 4;
/// Widest team the shader lays out (8 columns per lane: 8 · 32 = [`BLOCK_COLS`]).
pub const MAX_TEAM_WIDTH: u32 = 32;

/// The team width (`SG_W`) the shader is specialised with on `gpu`: the adapter's
/// smallest subgroup size, so that every size its driver may pick is a multiple of it
/// (sizes are powers of two). 32 on NVIDIA, Apple and AMD RDNA; 8 on lavapipe.
///
/// # Errors
/// The reason the kernel does not run on `gpu` ([`device_support`]).
pub fn team_width(gpu: &Gpu) -> Result<u32, String> {
    device_support(gpu)?;
    Ok(gpu.info.subgroup_min_size)
}

/// Whether `gpu` runs `matmul_tiled2d_subgroup`; the reason when it does not: it needs
/// `SUBGROUP`, a smallest subgroup size that is a power of two from 4 to
/// [`MAX_TEAM_WIDTH`] (AMD GCN's 64 and Qualcomm's 64-128 are wider than its block lays
/// out), and [`WORKGROUP_BYTES`] and [`INVOCATIONS`] within the device's limits.
pub fn device_support(gpu: &Gpu) -> Result<(), String> {
    let name = &gpu.info.name;
    if !gpu.features.contains(wgpu::Features::SUBGROUP) {
        return Err(format!(
            "the subgroup 2-D tiled kernel needs subgroup operations; {name} has none"
        ));
    }
    let w = gpu.info.subgroup_min_size;
    if !w.is_power_of_two() || !(4..=MAX_TEAM_WIDTH).contains(&w) {
        return Err(format!(
            "the subgroup 2-D tiled kernel needs a smallest subgroup size that is a power of two from 4 to {MAX_TEAM_WIDTH}; {name} has {w}"
        ));
    }
    let l = &gpu.limits;
    let needs = [
        (
            "max_compute_workgroup_storage_size",
            WORKGROUP_BYTES,
            l.max_compute_workgroup_storage_size,
        ),
        (
            "max_compute_invocations_per_workgroup",
            INVOCATIONS,
            l.max_compute_invocations_per_workgroup,
        ),
        (
            "max_compute_workgroup_size_x",
            INVOCATIONS,
            l.max_compute_workgroup_size_x,
        ),
    ];
    for (what, need, max) in needs {
        if max < need {
            return Err(format!(
                "the subgroup 2-D tiled kernel needs {what} >= {need}; {name} has {max}"
            ));
        }
    }
    Ok(())
}
