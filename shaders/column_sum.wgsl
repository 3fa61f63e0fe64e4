// column_sum: out[n] = Σ_m x[m, n], the bias gradient db = colsum(dY).
//
// One invocation per column walks the rows in order, so the sum is the same bits on every
// run (no atomics). When `batch_dim` is 1, M is the current minibatch size.

struct ColumnSumParams {
    m: u32,
    n: u32,
    batch_dim: u32,
    _pad: u32,
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
    let col = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 64u + lid;
    let n = params.n;
    if (col >= n) {
        return;
    }
    let m = select(params.m, step.batch, params.batch_dim == 1u);
    var acc = 0.0;
    for (var r = 0u; r < m; r++) {
        acc += x[r * n + col];
    }
    out[col] = acc;
}
