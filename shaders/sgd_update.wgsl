// sgd_update: one dispatch over the members' flat parameter buffers, torch.optim.SGD
// semantics (the arithmetic is `sgd_step`, sgd_step.wgsl, shared with the matmul SgdUpdate
// epilogue, which reads the same SGD table).
//
// The buffers hold `members` (K >= 1) parameter vectors of `stride` floats each (`[K,
// P_pad]`, P_pad a multiple of 4), and each member has its own settings and step, from the
// SGD table (binding 4, u32 words): the no-decay ranges first (`ranges` [start, end) pairs,
// member-relative: every bias), then 8 words per member at `hyper_offset` (weight_decay,
// momentum, dampening as f32 bits, nesterov, decoupled, decay_bias, 2 unused), then from
// `steps_offset` the epoch's `[steps, members]` member steps (3 words: lr as f32 bits,
// flags (sgd_step.wgsl's MEMBER_*), the gradient's scale as f32 bits), indexed by the step
// record's `index`. Elements inside a no-decay range get wd = 0 unless the member decays its
// biases (decay_bias). A member is skipped when frozen or when its own status word
// (`status[member · stride_status]`, the head of its metrics: set by softmax_cross_entropy
// after a non-finite loss) is set, so its parameters stay as after its last finite step.
//
// Micro-steps (src/step.rs): a member whose minibatch spans several micro-steps joins each
// one's gradient to its running sum (`sgd_sum`), which lives in the velocity binding from
// float `sum_offset` on (the momentum buffer `[K, P_pad]`, then the gradient sums `[K,
// P_pad]`): with MEMBER_DEFER the joined gradient is stored there and nothing else changes;
// otherwise the update uses it. A plain step (neither flag) reads no sum.
//
// step.wgsl and sgd_step.wgsl are prepended (the step record at group 1; `SgdHyper`,
// `sgd_step`); this file uses `step.index`, and declares everything of group 0 itself.

struct SgdUpdateParams {
    len: u32,           // P: parameters per member
    ranges: u32,        // number of no-decay ranges (pairs at the start of `table`)
    members: u32,       // K
    stride: u32,        // floats between members' parameters (P_pad)
    hyper_offset: u32,  // words of `table` before the per-member settings
    steps_offset: u32,  // words of `table` before the member-step table
    stride_status: u32, // floats between members' status words
    sum_offset: u32,    // floats of `velocity` before the gradient sums (a multiple of 4)
}

@group(0) @binding(0) var<uniform> params: SgdUpdateParams;
// Read and written as vec4: on lavapipe every load or store instruction costs a loop over
// the SIMD lanes, so four elements per instruction cost about a quarter as much. The host
// binds whole vec4s (the buffers are padded); elements at or past `len` are written back
// unchanged.
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> velocity: array<vec4<f32>>; // momentum, then sums
// The SGD table: the no-decay ranges as [start, end) pairs, the per-member settings and
// the member-step table (see the top of this file).
@group(0) @binding(4) var<storage, read> table: array<u32>;
@group(0) @binding(5) var<storage, read> status: array<f32>; // the metrics header(s)

const WG: u32 = 256u;

// vec4s per invocation: a workgroup updates WG * ITEMS consecutive vec4s, lane lid the
// ones at lid, lid + WG, ... (neighbouring lanes, neighbouring addresses). Fewer, fuller
// workgroups: on lavapipe each workgroup costs microseconds to schedule.
const ITEMS: u32 = 4u;

// One member's SGD settings and its step's flags and gradient scale.
struct Hyper {
    sgd: SgdHyper,
    ranges: u32, // no-decay ranges applied (0 with decay_bias)
    flags: u32,
    scale: f32,
}

// A workgroup updates WG * ITEMS consecutive vec4s of one member (each member's vector
// starts a new workgroup), so the member, its status, step and settings are the same for
// the whole workgroup: read once per invocation, and a frozen or diverged member's
// workgroups leave at once.
@compute @workgroup_size(256)
fn sgd_update(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let per_member = params.stride / 4u; // vec4s per member
    let blocks = (per_member + WG * ITEMS - 1u) / (WG * ITEMS); // workgroups per member
    let wg = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    let member = wg / blocks;
    if (member >= params.members || status[member * params.stride_status] != 0.0) {
        return;
    }
    let ms = params.steps_offset + 3u * (step.index * params.members + member);
    let flags = table[ms + 1u];
    if ((flags & MEMBER_FROZEN) != 0u) {
        return;
    }
    let hs = params.hyper_offset + 8u * member;
    var ranges = params.ranges;
    if (table[hs + 5u] != 0u) {
        ranges = 0u;
    }
    let h = Hyper(SgdHyper(bitcast<f32>(table[hs]), bitcast<f32>(table[hs + 1u]), bitcast<f32>(table[hs + 2u]), table[hs + 3u], table[hs + 4u]), ranges, flags, bitcast<f32>(table[ms + 2u]));
    let lr = bitcast<f32>(table[ms]);
    let first = (flags & MEMBER_FIRST) != 0u;
    let base = (wg - member * blocks) * WG * ITEMS + lid; // the member's own vec4 index
    for (var t = 0u; t < ITEMS; t++) {
        let i = base + t * WG;
        if (4u * i < params.len) {
            update(member * per_member + i, 4u * i, h, lr, first);
        }
    }
}

// Updates vec4 `i` of the buffers: elements `e0` .. `e0 + 3` of one parameter vector (or,
// when the member defers its update, stores their joined gradient as its running sum).
fn update(i: u32, e0: u32, h: Hyper, lr: f32, first: bool) {
    var g = grad[i];
    if ((h.flags & (MEMBER_ACCUMULATE | MEMBER_DEFER)) != 0u) {
        let s = params.sum_offset / 4u + i;
        var sum = vec4<f32>();
        let accumulate = (h.flags & MEMBER_ACCUMULATE) != 0u;
        if (accumulate) {
            sum = velocity[s];
        }
        g = sgd_sum(g, sum, h.scale, accumulate);
        if ((h.flags & MEMBER_DEFER) != 0u) {
            velocity[s] = g;
            return;
        }
    }
    let e = vec4<u32>(e0) + vec4<u32>(0u, 1u, 2u, 3u);
    var wd = vec4<f32>(h.sgd.weight_decay);
    for (var r = 0u; r < h.ranges; r++) {
        let range = vec2<u32>(table[2u * r], table[2u * r + 1u]);
        wd = select(wd, vec4<f32>(), e >= vec4<u32>(range.x) & e < vec4<u32>(range.y));
    }
    let p0 = param[i];
    var v0 = vec4<f32>();
    if (h.sgd.momentum != 0.0) {
        v0 = velocity[i];
    }
    let s = sgd_step(p0, g, v0, wd, lr, first, h.sgd);
    let inside = e < vec4<u32>(params.len);
    if (h.sgd.momentum != 0.0) {
        velocity[i] = select(v0, s.v, inside);
    }
    param[i] = select(p0, s.p, inside);
}
