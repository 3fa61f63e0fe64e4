// sgd_update: one dispatch over the flat parameter buffer, torch.optim.SGD semantics.
//
//   g <- grad + wd * p                          (coupled weight decay, PyTorch default)
//   v <- g on the first step, else momentum * v + (1 - dampening) * g
//   g <- g + momentum * v if nesterov, else v   (only when momentum != 0)
//   p <- p - lr * g
// With `decoupled` (SGDW, Loshchilov & Hutter) the decay is p <- p - lr * wd * p instead of
// being added to the gradient. Elements inside a `no_decay` range (biases, with
// --no-decay-bias) get wd = 0. lr and the first-step flag come from the step record.
// Nothing changes once status[0] is set (a non-finite loss was seen; softmax_cross_entropy
// writes it into its metrics header, bound here as `status`).
//
// step.wgsl is prepended (the step record at group 1); this file uses `step.lr` and `step.first`, and
// declares everything of group 0 itself.

struct SgdUpdateParams {
    len: u32,
    ranges: u32,        // number of no_decay ranges
    nesterov: u32,
    decoupled: u32,
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: SgdUpdateParams;
// Read and written as vec4: on lavapipe every load or store instruction costs a loop over
// the SIMD lanes, so four elements per instruction cost about a quarter as much. The host
// binds whole vec4s (the buffers are padded); elements at or past `len` are written back
// unchanged.
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> velocity: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> no_decay: array<vec2<u32>>; // [start, end)
@group(0) @binding(5) var<storage, read> status: array<f32>; // the metrics header

const WG: u32 = 256u;

// vec4s per invocation: a workgroup updates WG * ITEMS consecutive vec4s, lane lid the
// ones at lid, lid + WG, ... (neighbouring lanes, neighbouring addresses). Fewer, fuller
// workgroups: on lavapipe each workgroup costs microseconds to schedule.
const ITEMS: u32 = 4u;

@compute @workgroup_size(256)
fn sgd_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    if (status[0] != 0.0) {
        return;
    }
    let base = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG * ITEMS + lid;
    for (var t = 0u; t < ITEMS; t++) {
        let i = base + t * WG;
        if (4u * i < params.len) {
            update(i);
        }
    }
}

// Updates elements 4i .. 4i+3.
fn update(i: u32) {
    let e = vec4<u32>(4u * i) + vec4<u32>(0u, 1u, 2u, 3u);
    var wd = vec4<f32>(params.weight_decay);
    for (var r = 0u; r < params.ranges; r++) {
        let range = no_decay[r];
        wd = select(wd, vec4<f32>(), e >= vec4<u32>(range.x) & e < vec4<u32>(range.y));
    }
    let lr = step.lr;
    let p0 = param[i];
    var p = p0;
    var g = grad[i];
    if (params.decoupled != 0u) {
        p = p - lr * wd * p;
    } else {
        g = g + wd * p;
    }
    let inside = e < vec4<u32>(params.len);
    if (params.momentum != 0.0) {
        var v = g;
        let v0 = velocity[i];
        if (step.first == 0u) {
            v = params.momentum * v0 + (1.0 - params.dampening) * g;
        }
        velocity[i] = select(v0, v, inside);
        if (params.nesterov != 0u) {
            g = g + params.momentum * v;
        } else {
            g = v;
        }
    }
    param[i] = select(p0, p - lr * g, inside);
}
