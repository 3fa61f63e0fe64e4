// matmul_f16: C[M, N] = op(A)[M, K] · op(B)[K, N] with f16 operands and f32 sums, then an
// epilogue; optionally also an f16 copy of C.
//
// Fragment: f16.wgsl (the `enable f16;` directive) and step.wgsl are prepended
// (src/gpu/kernels/matmul_f16.rs). Expects `step` (its `batch`). Self-contained otherwise:
// it shares the conventions of matmul_common.wgsl (storage, transposes, epilogues,
// batch_dim, split K), restated here, but none of its declarations.
//
// Storage is row-major. op(A) = A stored [M, K], or [K, M] when TRANS_A. op(B) = B stored
// [K, N], or [N, K] when TRANS_B. C is stored [M, N], or [N, M] when TRANS_C (epilogue
// none). A is f16 (binding 1, `a`) or, with A_F16 = false, f32 (binding 6, `a32`): the
// backward products multiply an f32 gradient by f16 weights or activations. B is always
// f16. `a_offset` and `b_offset` are element offsets into A and B (an f16 view's byte
// offset would break the 256-byte binding alignment). Every product is widened to f32
// and summed in f32 with fma, in order of k, as the f32 kernels do.
// Epilogues (EPILOGUE): 0 none, 1 + bias[n], 2 max(0, · + bias[n]), 3 · ⊙ [mask[m, n] > 0];
// bias and mask are f32. With WRITE_C16, the chunk that completes K also stores
// f16(clamp(C, ±65504)) into `c16` (binding 7, same layout as C): the forward product
// writes the next layer's f16 input in the same pass.
// When `batch_dim` is 1 (2), M (K) is the minibatch size of the current step record.
// Split K (loop-capped adapters): a dispatch sums k in [k_begin, min(k_end, K)); the first
// chunk stores, later ones add to C, and the chunk that reaches K applies the epilogue.
//
// Layout of the work (as matmul_rows, for CPU adapters): a workgroup owns ROWS = 16
// consecutive rows of C, so the loads of A are uniform across its 64 invocations; each
// invocation owns COLS = 4 columns 64 apart. No workgroup memory, no barriers. Rows and
// columns past the edge are clamped (computed, never stored). Row blocks fold into y and z
// past the 65,535-workgroup limit.
//
// Members: one dispatch computes `members` independent products, member j's operands
// `stride_*` elements after member j - 1's (stride 0 shares an operand); the member is
// folded into the row-block index (ceil(params.m / ROWS) row blocks each), as in
// matmul_common.wgsl. With one member every offset is 0: the plain kernel, bit for bit.

struct MatmulF16Params {
    m: u32,
    n: u32,
    k: u32,
    batch_dim: u32,
    k_begin: u32,
    k_end: u32,
    a_offset: u32, // elements
    b_offset: u32, // elements
    members: u32,  // K: products in this dispatch (1 for a single run)
    stride_a: u32, // elements between consecutive members' operands (0: shared)
    stride_b: u32,
    stride_bias: u32,
    stride_mask: u32,
    stride_c: u32, // C's and its f16 copy's
    _pad0: u32,
    _pad1: u32,
}

// This invocation's member's offsets, in elements (set in the entry point).
var<private> mem_a: u32;
var<private> mem_b: u32;
var<private> mem_bias: u32;
var<private> mem_mask: u32;
var<private> mem_c: u32;

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override TRANS_C: bool = false;
override EPILOGUE: u32 = 0u;
override A_F16: bool = true;
override WRITE_C16: bool = false;

@group(0) @binding(0) var<uniform> params: MatmulF16Params;
@group(0) @binding(1) var<storage, read> a: array<f16>;
@group(0) @binding(2) var<storage, read> b: array<f16>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read> a32: array<f32>;
@group(0) @binding(7) var<storage, read_write> c16: array<f16>;

const F16_MAX: f32 = 65504.0;

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

// op(A)[row, kk] as f32.
fn load_a(row: u32, kk: u32, m: u32, k: u32) -> f32 {
    var i = row * k + kk;
    if (TRANS_A) {
        i = kk * m + row;
    }
    if (A_F16) {
        return f32(a[params.a_offset + mem_a + i]);
    }
    return a32[params.a_offset + mem_a + i];
}

// op(B)[kk, col] as f32.
fn load_b(kk: u32, col: u32, n: u32, k: u32) -> f32 {
    var i = kk * n + col;
    if (TRANS_B) {
        i = col * k + kk;
    }
    return f32(b[params.b_offset + mem_b + i]);
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

// Stores the partial sum `v` of C[row, col]: added to the earlier chunks' sum, then the
// epilogue (and the f16 copy) once the chunk completes K.
fn store_c(v: f32, row: u32, col: u32, m: u32, n: u32, k: u32) {
    var i = mem_c + row * n + col;
    if (TRANS_C) {
        i = mem_c + col * m + row;
    }
    var s = v;
    if (params.k_begin > 0u) {
        s = c[i] + v;
    }
    let finishes = params.k_end >= k;
    if (finishes) {
        s = epilogue(s, row, col, n);
    }
    c[i] = s;
    if (WRITE_C16 && finishes) {
        c16[i] = f16(clamp(s, -F16_MAX, F16_MAX));
    }
}

const ROWS: u32 = 16u;
const COLS: u32 = 4u;
const LANES: u32 = 64u;

// Stores one row's four columns (64 apart), skipping what lies past the edges.
fn store_row(row: u32, v: vec4<f32>, col_base: u32, m: u32, n: u32, k: u32) {
    if (row >= m) {
        return;
    }
    for (var j = 0u; j < COLS; j++) {
        let col = col_base + j * LANES;
        if (col < n) {
            store_c(v[j], row, col, m, n, k);
        }
    }
}

// Named accumulators rather than an array, so that no compiler spills them to indexed
// scratch memory, and no inner loop in the K loop (llvmpipe counts every loop pass
// against its per-invocation loop cap).
@compute @workgroup_size(64)
fn matmul_f16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let d = dims();
    let m = d.x;
    let n = d.y;
    let k = d.z;
    let per_member = (params.m + ROWS - 1u) / ROWS;
    let folded = wid.z * nwg.y + wid.y;
    let member = folded / per_member;
    if (member >= params.members) {
        return;
    }
    mem_a = member * params.stride_a;
    mem_b = member * params.stride_b;
    mem_bias = member * params.stride_bias;
    mem_mask = member * params.stride_mask;
    mem_c = member * params.stride_c;
    let row0 = (folded - member * per_member) * ROWS;
    let col_base = wid.x * LANES * COLS + lid;
    let k_stop = min(params.k_end, k);
    if (row0 >= m || wid.x * LANES * COLS >= n || params.k_begin >= k_stop) {
        return;
    }
    let last_row = m - 1u;
    let r0 = min(row0, last_row);
    let r1 = min(row0 + 1u, last_row);
    let r2 = min(row0 + 2u, last_row);
    let r3 = min(row0 + 3u, last_row);
    let r4 = min(row0 + 4u, last_row);
    let r5 = min(row0 + 5u, last_row);
    let r6 = min(row0 + 6u, last_row);
    let r7 = min(row0 + 7u, last_row);
    let r8 = min(row0 + 8u, last_row);
    let r9 = min(row0 + 9u, last_row);
    let r10 = min(row0 + 10u, last_row);
    let r11 = min(row0 + 11u, last_row);
    let r12 = min(row0 + 12u, last_row);
    let r13 = min(row0 + 13u, last_row);
    let r14 = min(row0 + 14u, last_row);
    let r15 = min(row0 + 15u, last_row);
    let c0 = min(col_base, n - 1u);
    let c1 = min(col_base + LANES, n - 1u);
    let c2 = min(col_base + 2u * LANES, n - 1u);
    let c3 = min(col_base + 3u * LANES, n - 1u);
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    var acc4 = vec4<f32>();
    var acc5 = vec4<f32>();
    var acc6 = vec4<f32>();
    var acc7 = vec4<f32>();
    var acc8 = vec4<f32>();
    var acc9 = vec4<f32>();
    var acc10 = vec4<f32>();
    var acc11 = vec4<f32>();
    var acc12 = vec4<f32>();
    var acc13 = vec4<f32>();
    var acc14 = vec4<f32>();
    var acc15 = vec4<f32>();
    for (var kk = params.k_begin; kk < k_stop; kk++) {
        let bv = vec4<f32>(
            load_b(kk, c0, n, k),
            load_b(kk, c1, n, k),
            load_b(kk, c2, n, k),
            load_b(kk, c3, n, k),
        );
        acc0 = fma(vec4<f32>(load_a(r0, kk, m, k)), bv, acc0);
        acc1 = fma(vec4<f32>(load_a(r1, kk, m, k)), bv, acc1);
        acc2 = fma(vec4<f32>(load_a(r2, kk, m, k)), bv, acc2);
        acc3 = fma(vec4<f32>(load_a(r3, kk, m, k)), bv, acc3);
        acc4 = fma(vec4<f32>(load_a(r4, kk, m, k)), bv, acc4);
        acc5 = fma(vec4<f32>(load_a(r5, kk, m, k)), bv, acc5);
        acc6 = fma(vec4<f32>(load_a(r6, kk, m, k)), bv, acc6);
        acc7 = fma(vec4<f32>(load_a(r7, kk, m, k)), bv, acc7);
        acc8 = fma(vec4<f32>(load_a(r8, kk, m, k)), bv, acc8);
        acc9 = fma(vec4<f32>(load_a(r9, kk, m, k)), bv, acc9);
        acc10 = fma(vec4<f32>(load_a(r10, kk, m, k)), bv, acc10);
        acc11 = fma(vec4<f32>(load_a(r11, kk, m, k)), bv, acc11);
        acc12 = fma(vec4<f32>(load_a(r12, kk, m, k)), bv, acc12);
        acc13 = fma(vec4<f32>(load_a(r13, kk, m, k)), bv, acc13);
        acc14 = fma(vec4<f32>(load_a(r14, kk, m, k)), bv, acc14);
        acc15 = fma(vec4<f32>(load_a(r15, kk, m, k)), bv, acc15);
    }
    store_row(row0, acc0, col_base, m, n, k);
    store_row(row0 + 1u, acc1, col_base, m, n, k);
    store_row(row0 + 2u, acc2, col_base, m, n, k);
    store_row(row0 + 3u, acc3, col_base, m, n, k);
    store_row(row0 + 4u, acc4, col_base, m, n, k);
    store_row(row0 + 5u, acc5, col_base, m, n, k);
    store_row(row0 + 6u, acc6, col_base, m, n, k);
    store_row(row0 + 7u, acc7, col_base, m, n, k);
    store_row(row0 + 8u, acc8, col_base, m, n, k);
    store_row(row0 + 9u, acc9, col_base, m, n, k);
    store_row(row0 + 10u, acc10, col_base, m, n, k);
    store_row(row0 + 11u, acc11, col_base, m, n, k);
    store_row(row0 + 12u, acc12, col_base, m, n, k);
    store_row(row0 + 13u, acc13, col_base, m, n, k);
    store_row(row0 + 14u, acc14, col_base, m, n, k);
    store_row(row0 + 15u, acc15, col_base, m, n, k);
}
