// column_sum: out[n] = Σ_m x[m, n], the bias gradient db = colsum(dY).
//
// One invocation per column walks the rows in order, so the sum is the same bits on every
// run (no atomics). When `batch_dim` is 1, M is the current minibatch size.
//
// Split rows: on adapters whose shaders stop every loop after a fixed number of iterations
// (llvmpipe: 65,535 per invocation), the host splits M into chunks run as consecutive
// dispatches, in order. A dispatch sums rows [r_begin, min(r_end, M)); the first chunk
// stores its sum, each later one adds its own to `out`. One chunk is the plain kernel.
//
// Members (population training): the grid holds `members` x ceil(N / 64) workgroups
// (folded), member j's column blocks after member j - 1's; member j reads x and writes out
// `stride_x` and `stride_out` floats after member j - 1. One member is the plain kernel.
//
// step.wgsl is prepended (the step record at group 1); this file uses `step.batch`, and
// declares everything of group 0 itself.

struct ColumnSumParams {
    m: u32,
    n: u32,
    batch_dim: u32,
    r_begin: u32, // this dispatch's chunk of rows: [r_begin, min(r_end, M))
    r_end: u32,
    members: u32,
    stride_x: u32,   // floats between members' x
    stride_out: u32, // floats between members' out
}

@group(0) @binding(0) var<uniform> params: ColumnSumParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn column_sum(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = params.n;
    let blocks = (n + 63u) / 64u;
    let flat = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let member = flat / blocks;
    let col = (flat - member * blocks) * 64u + lid;
    if (member >= params.members || col >= n) {
        return;
    }
    let mem_x = member * params.stride_x;
    let out_i = member * params.stride_out + col;
    let m = select(params.m, step.batch, params.batch_dim == 1u);
    let end = min(params.r_end, m);
    if (params.r_begin >= end) {
        return; // an earlier chunk reached M
    }
    var acc = 0.0;
    for (var r = params.r_begin; r < end; r++) {
        acc += x[mem_x + r * n + col];
    }
    if (params.r_begin > 0u) {
        acc = out[out_i] + acc;
    }
    out[out_i] = acc;
}
