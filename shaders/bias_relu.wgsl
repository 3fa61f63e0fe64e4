// bias_relu: the unfused elementwise ops, kept as separate kernels so the fused matmul
// epilogues can be tested against a composed slow version.
//   bias_relu_forward: y[m, n] = max(0, y[m, n] + bias[n])   (in place; relu = 0: no max)
//   relu_backward:     dx[m, n] = dy[m, n] * [h[m, n] > 0]
//
// step.wgsl is prepended (the step record at group 1; unused here); this file declares
// everything of group 0 itself.

struct BiasReluParams {
    m: u32,
    n: u32,
    relu: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: BiasReluParams;
@group(0) @binding(1) var<storage, read> operand: array<f32>;  // bias [N] or h [M, N]
@group(0) @binding(2) var<storage, read> upstream: array<f32>;   // dy [M, N] (relu_backward)
@group(0) @binding(3) var<storage, read_write> result: array<f32>;

const WG: u32 = 256u;

fn flat_id(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid;
}

@compute @workgroup_size(256)
fn bias_relu_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_id(wid, nwg, lid);
    if (i >= params.m * params.n) {
        return;
    }
    let v = result[i] + operand[i % params.n];
    result[i] = select(v, max(v, 0.0), params.relu != 0u);
}

@compute @workgroup_size(256)
fn relu_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let i = flat_id(wid, nwg, lid);
    if (i >= params.m * params.n) {
        return;
    }
    result[i] = select(0.0, upstream[i], operand[i] > 0.0);
}
