// matmul: C[M, N] = op(A)[M, K] · op(B)[K, N], then an epilogue.
//
// Fragment: prepended, after step.wgsl and sgd_step.wgsl, to matmul.wgsl,
// matmul_subgroup.wgsl, matmul_tiled2d.wgsl and matmul_tiled2d_subgroup.wgsl. Expects from
// step.wgsl: `step` (its `batch` and `index`), from sgd_step.wgsl `sgd_step`. Provides: `struct MatmulParams` and
// `params` (binding 0), `bias` (binding 3), `mask` (binding 4), the overrides TRANS_A,
// TRANS_B, TRANS_C and EPILOGUE, and the functions `dims`, `k_chunk`, `accumulates`,
// `finishes`, `c_index`, `epilogue` and those of the SgdUpdate epilogue (`sgd_store`,
// `sgd_settings`, `sgd4`, `sgd_bias`). Expects from the kernel file after it: A, B, C and
// the momentum buffer `velocity` at bindings 1, 2, 5 and 6 (f32 or vec4<f32> elements, the
// kernel's choice), and `a_at`, `b_at`, `c_load`, `c_store`, `v_load`, `v_store` (element i
// of A, B, C, velocity; A and B with the member's offset).
//
// Storage is row-major. op(A) = A stored [M, K], or A stored [K, M] when TRANS_A.
// op(B) = B stored [K, N], or B stored [N, K] when TRANS_B. The transposes the MLP needs:
//   forward   Y  = X · Wᵀ          (TRANS_B)          epilogue bias (+ ReLU)
//   backward  dX = dY · W           (none)             epilogue ReLU mask of the forward output
//   weights   dW = dYᵀ · X          (TRANS_A)
// With TRANS_C, C is stored [N, M] (epilogue must be none).
// Epilogues (EPILOGUE): 0 none, 1 + bias[n], 2 max(0, · + bias[n]), 3 · ⊙ [mask[m, n] > 0],
// 4 SGD update of a layer's weights and bias (`sgd_store`, below; TRANS_C allowed).
// When `batch_dim` is 1 (2), M (K) is the minibatch size of the current step record, so
// the last partial minibatch reuses the same dispatch and buffers.
//
// Split K: on adapters whose shaders stop every loop after a fixed number of iterations
// (llvmpipe: 65,535 per invocation, all loops together), the host splits a long K into
// chunks run as consecutive dispatches, in order. A dispatch sums k in
// [k_begin, min(k_end, K)); the first chunk (k_begin = 0) stores its sum, each later one
// adds its own to what C holds, and the chunk that reaches K applies the epilogue. With
// one chunk (k_begin = 0, k_end = K) this is the plain kernel, bit for bit.
//
// Members: one dispatch computes `members` (K >= 1) independent products,
// member j's operands starting `stride_*` floats after member j - 1's (a stride of 0 shares
// the operand, e.g. the minibatch X of layer 0). The member is folded into the row-block
// index: a kernel of R rows per workgroup has ceil(params.m / R) row blocks per member (the
// capacity M, not the step's minibatch), and `member_block` splits the folded index into
// the member and its row block and sets the member's offsets (`mem_*`, floats, multiples
// of 4 for the vec4 kernels). With one member the offsets are 0 and every kernel is the
// plain one, bit for bit.
//
// `matmul.wgsl` holds the scalar-load kernels (register, tiled, rows) and
// `matmul_subgroup.wgsl` the vec4 one with subgroup broadcasts. All kernels take the same
// bind group.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch_dim: u32,
    k_begin: u32, // this dispatch's chunk of K: [k_begin, min(k_end, K))
    k_end: u32,
    members: u32,     // K: products in this dispatch (1 for a single run)
    sgd_bias_offset: u32, // EPILOGUE 4: element of C (past the member's offset) where the bias starts
    stride_a: u32,    // floats between consecutive members' operands (0: shared)
    stride_b: u32,
    stride_bias: u32,
    stride_mask: u32,
    stride_c: u32,
    sgd_hyper_offset: u32, // EPILOGUE 4: words of the SGD table before the members' settings
    sgd_steps_offset: u32, // EPILOGUE 4: words of the SGD table before the epoch's member steps
    sgd_sum_offset: u32,   // EPILOGUE 4: floats of `velocity` before the gradient sums
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;
// C is stored transposed, `[N, M]`: lets a weight gradient dW [O, I] be computed as
// (Xᵀ · dZ)ᵀ, putting the long I dimension on the rows a workgroup shares.
override TRANS_C: bool = false;

@group(0) @binding(0) var<uniform> params: MatmulParams;
// Bindings 1 (A), 2 (B) and 5 (C) are declared by each kernel file: f32 or vec4<f32>
// elements.
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;

// This invocation's member and its offsets into A, B, bias, mask and C, in floats (set by
// `member_block`).
var<private> mem_index: u32;
var<private> mem_a: u32;
var<private> mem_b: u32;
var<private> mem_bias: u32;
var<private> mem_mask: u32;
var<private> mem_c: u32;

// Returned by `member_block` for a workgroup past the last member (folding pads the grid).
const NO_BLOCK: u32 = 0xffffffffu;

// Splits the folded row-block index `rb` of a kernel with `rows_per_block` rows of C per
// workgroup into the member and its row block (returned), setting the member's offsets;
// NO_BLOCK past the last member.
fn member_block(rb: u32, rows_per_block: u32) -> u32 {
    let per_member = (params.m + rows_per_block - 1u) / rows_per_block;
    let member = rb / per_member;
    if (member >= params.members) {
        return NO_BLOCK;
    }
    mem_index = member;
    mem_a = member * params.stride_a;
    mem_b = member * params.stride_b;
    mem_bias = member * params.stride_bias;
    mem_mask = member * params.stride_mask;
    mem_c = member * params.stride_c;
    return rb - member * per_member;
}

fn dims() -> vec3<u32> {
    var m = params.m;
    var k = params.k;
    if (params.batch_dim == 1u) {
        m = step.batch;
    } else if (params.batch_dim == 2u) {
        k = step.batch;
    }
    return vec3<u32>(m, params.n, k);
}

// This dispatch's chunk of K, `[x, y)`: empty when an earlier chunk already reached K.
fn k_chunk(k: u32) -> vec2<u32> {
    return vec2<u32>(params.k_begin, min(params.k_end, k));
}

// True when earlier chunks stored partial sums that this one adds to.
fn accumulates() -> bool {
    return params.k_begin > 0u;
}

// True when this chunk completes the sum: the epilogue runs here.
fn finishes(k: u32) -> bool {
    return params.k_end >= k;
}

// Index of C[row, col] in `c` (the member's offset included).
fn c_index(row: u32, col: u32, m: u32, n: u32) -> u32 {
    if (TRANS_C) {
        return mem_c + col * m + row;
    }
    return mem_c + row * n + col;
}

fn epilogue(v: f32, row: u32, col: u32, n: u32) -> f32 {
    switch EPILOGUE {
        case 1u: {
            return v + bias[mem_bias + col];
        }
        case 2u: {
            return max(v + bias[mem_bias + col], 0.0);
        }
        case 3u: {
            return select(0.0, v, mask[mem_mask + row * n + col] > 0.0);
        }
        default: {
            return v;
        }
    }
}


// EPILOGUE 4, SgdUpdate: C = op(A) · op(B) is the weight gradient dW [O, I] of one layer
// (TRANS_C: its transpose, the product computed as (Xᵀ · dZ)ᵀ), summed over one chunk of K
// (the host never splits K here) and never stored. The bindings change meaning:
//   3 (`bias`)   the training metrics: member j's status header at `stride_bias · j`;
//                status[0] != 0 (a non-finite loss was seen) leaves the member unchanged,
//                as in sgd_update;
//   4 (`mask`)   the SGD table of sgd_update.wgsl, shared by the members (stride 0): member
//                j's settings at word `sgd_hyper_offset + 8j` (weight decay, momentum,
//                dampening as f32 bits; nesterov, decoupled, decay_bias as u32) and the
//                epoch's member steps `[steps, members]` from word `sgd_steps_offset`
//                (3 words: learning rate and gradient scale as f32 bits around the flags,
//                sgd_step.wgsl's MEMBER_*), indexed by the step record's `index`;
//   5 (C)        the layer's parameters: W [O, I] stored as C, its bias b [O] from element
//                `sgd_bias_offset` on (member j's at `stride_c · j`);
//   6 (`velocity`, declared by the kernel file) the momentum buffer over the same range,
//                and `sgd_sum_offset` floats further on the members' gradient sums.
// The invocation that finishes W[o, i] applies `sgd_step` to it (the arithmetic of
// sgd_update.wgsl, bit for bit); the one that finishes W[o, 0] also sums the bias gradient
// db[o] = Σ_r dZ[r, o] over the minibatch, rows in order from 0 (column_sum's sum, the
// same bits), and applies `sgd_step` to b[o]. dZ is op(A)ᵀ (stored [K, O], A) or, with
// TRANS_C, op(B) (stored [K, O], B). A frozen member's parameters do not change.
// A member whose minibatch spans several micro-steps (MEMBER_ACCUMULATE / MEMBER_DEFER,
// src/step.rs) joins each element's gradient to its running sum (`sgd_sum`, as
// sgd_update.wgsl): with MEMBER_DEFER the joined gradient is stored as the sum and the
// parameter is left alone; otherwise the step uses it.
// The kernel file provides `v_load` and `v_store` (element i of the momentum buffer).

// The member's settings, step and status, read once per invocation by `sgd_settings`.
var<private> sgd_ready: bool;
var<private> sgd_skip: bool;
var<private> sgd_h: SgdHyper;
var<private> sgd_wd: f32;
var<private> sgd_bias_wd: f32;
var<private> sgd_lr: f32;
var<private> sgd_first: bool;
var<private> sgd_flags: u32;
var<private> sgd_scale: f32;

// Reads the member's settings and step on the invocation's first SgdUpdate store; true
// when its update is skipped (frozen, or a non-finite loss was flagged).
fn sgd_settings() -> bool {
    if (!sgd_ready) {
        let hs = params.sgd_hyper_offset + 8u * mem_index;
        let ms = params.sgd_steps_offset + 3u * (step.index * params.members + mem_index);
        let flags = bitcast<u32>(mask[ms + 1u]);
        sgd_h = SgdHyper(mask[hs], mask[hs + 1u], mask[hs + 2u], bitcast<u32>(mask[hs + 3u]), bitcast<u32>(mask[hs + 4u]));
        sgd_wd = mask[hs];
        sgd_bias_wd = select(0.0, sgd_wd, bitcast<u32>(mask[hs + 5u]) != 0u);
        sgd_lr = mask[ms];
        sgd_first = (flags & MEMBER_FIRST) != 0u;
        sgd_flags = flags;
        sgd_scale = mask[ms + 2u];
        sgd_skip = bias[mem_bias] != 0.0 || (flags & MEMBER_FROZEN) != 0u;
        sgd_ready = true;
    }
    return sgd_skip;
}

// Whether this micro-step joins the member's running gradient sum.
fn sgd_sums() -> bool {
    return (sgd_flags & (MEMBER_ACCUMULATE | MEMBER_DEFER)) != 0u;
}

// Whether the member defers its update (the sum is stored, the parameters left alone).
fn sgd_defers() -> bool {
    return (sgd_flags & MEMBER_DEFER) != 0u;
}

// Four gradients `g` of elements `sum` .. `sum + 3` of the running sums joined to them
// (`sgd_sum`; `sum` read only with MEMBER_ACCUMULATE). The caller checked `sgd_sums`.
fn sgd_join(g: vec4<f32>, sum: vec4<f32>) -> vec4<f32> {
    return sgd_sum(g, sum, sgd_scale, (sgd_flags & MEMBER_ACCUMULATE) != 0u);
}

// One SGD step of four parameters `p0` with gradients `g`, momentum `v0` and weight decay
// `wd` (`sgd_settings` read).
fn sgd4(p0: vec4<f32>, g: vec4<f32>, v0: vec4<f32>, wd: f32) -> SgdStep {
    return sgd_step(p0, g, v0, vec4<f32>(wd), sgd_lr, sgd_first, sgd_h);
}

// The bias's element `o` in C.
fn sgd_bias_index(o: u32) -> u32 {
    return mem_c + params.sgd_bias_offset + o;
}

// Element `i` of C and of the momentum buffer (parameter value `p0`) after one SGD step
// with gradient `g` and weight decay `wd`; returns the new parameter.
fn sgd_element(i: u32, p0: f32, g: f32, wd: f32) -> f32 {
    var v0 = 0.0;
    if (sgd_h.momentum != 0.0) {
        v0 = v_load(i);
    }
    let s = sgd4(vec4<f32>(p0), vec4<f32>(g), vec4<f32>(v0), wd);
    if (sgd_h.momentum != 0.0) {
        v_store(i, s.v.x);
    }
    return s.p.x;
}

// The SgdUpdate epilogue for element `i` of C with gradient `g` and weight decay `wd`
// (`sgd_settings` read, the update not skipped): one SGD step, or, in a micro-step that
// joins a running sum, the joined gradient stored as the sum (MEMBER_DEFER) or stepped with.
fn sgd_apply(i: u32, g: f32, wd: f32) {
    var gs = g;
    if (sgd_sums()) {
        let s = params.sgd_sum_offset + i;
        var sum = 0.0;
        if ((sgd_flags & MEMBER_ACCUMULATE) != 0u) {
            sum = v_load(s);
        }
        gs = sgd_join(vec4<f32>(g), vec4<f32>(sum)).x;
        if (sgd_defers()) {
            v_store(s, gs);
            return;
        }
    }
    c_store(i, sgd_element(i, c_load(i), gs, wd));
}

// Sums the bias gradient of output `o` over the minibatch (rows in order, as column_sum)
// and updates b[o] (`sgd_settings` read, the update not skipped).
fn sgd_bias(o: u32) {
    let d = dims();
    let outputs = select(d.x, d.y, TRANS_C);
    var db = 0.0;
    for (var r = 0u; r < d.z; r++) {
        if (TRANS_C) {
            db += b_at(r * outputs + o);
        } else {
            db += a_at(r * outputs + o);
        }
    }
    sgd_apply(sgd_bias_index(o), db, sgd_bias_wd);
}

// The SgdUpdate epilogue for C[row, col] (index `i` of C) whose gradient `g` this
// invocation just summed: updates W there and, with `bias` and for input 0, the bias of
// its output (the subgroup kernel updates its biases four at a time instead).
fn sgd_store(i: u32, g: f32, row: u32, col: u32, bias: bool) {
    if (sgd_settings()) {
        return; // a non-finite loss: no update this step or after
    }
    sgd_apply(i, g, sgd_wd);
    if (bias && select(col, row, TRANS_C) == 0u) {
        sgd_bias(select(row, col, TRANS_C));
    }
}
