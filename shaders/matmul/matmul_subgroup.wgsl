// `matmul_subgroup`: for CPU adapters with subgroups of 8 (lavapipe at 256 bits).
//
// Fragment: step.wgsl and matmul_common.wgsl are prepended (src/gpu/kernels/matmul.rs).
// Expects from them `params`, `bias`, `mask`, the overrides and the helper functions listed
// at the top of matmul_common.wgsl. Provides B, C and velocity (bindings 2, 5, 6) as vec4<f32>
// arrays, the overrides A_VEC4 and B_VEC4, `mask_k`, and the entry point. Expects from an
// operand fragment A's binding and the hooks `a_begin` and `load_a`: matmul_subgroup_a.wgsl
// (f32 values, prepended) or matmul_subgroup_gather.wgsl (the u8 pixels of a minibatch, the
// gather fusion; appended).
//
// On lavapipe every load from a storage buffer costs a scalar loop over the SIMD lanes,
// uniform address or not, while arithmetic runs on all 8 lanes at once. So this kernel
// spends as few load instructions as it can per FMA: a workgroup is one subgroup of 8
// lanes computing a 16-row x 32-column block of C; per step of four k, each lane makes
// two vec4 loads of op(A) (between them, the 8 lanes hold the block's 16 rows x 4 k) and
// four of op(B) (its own 4 columns x 4 k), and `subgroupBroadcast` hands every lane every
// row of A from registers. That is 6 loads per 256 FMAs, against 20 per 64 in
// `matmul_rows`.
//
// A and B are read as vec4 along their contiguous axis when it holds a multiple of 4
// elements and is not the minibatch (A_VEC4, B_VEC4, set by the host: see
// `MatmulVariant::supports` and `vec4_operands` in src/gpu/kernels/matmul.rs): K for A
// stored [M, K] and for B stored [N, K], M for A stored [K, M], N for B stored [K, N].
// Otherwise (a 10-class layer, a hidden size of 30) the same values are gathered element by
// element, which costs more loads but keeps the broadcasts. K past the edge reads as zeros.

override A_VEC4: bool = true;
override B_VEC4: bool = true;

// A (binding 1) and its loads, `a_begin` and `load_a`, come from an operand fragment (see
// the top of this file).
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>; // whole vec4s past the end
@group(0) @binding(5) var<storage, read_write> c: array<vec4<f32>>; // whole vec4s past M·N
@group(0) @binding(6) var<storage, read_write> velocity: array<vec4<f32>>; // SgdUpdate only

// Element i of B, for operands whose rows are not whole vec4s.
fn b_at(i: u32) -> f32 {
    return b[mem_b / 4u + i / 4u][i % 4u];
}

// Zero where k = k0 + t is past the edge.
fn mask_k(v: vec4<f32>, k0: u32, k: u32) -> vec4<f32> {
    return select(vec4<f32>(), v, vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(k));
}

// Rows of op(A) as gathered from four lanes: column r of the result is row r's values at
// k = 4q .. 4q+3.
fn a_rows(x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>) -> mat4x4<f32> {
    let g = mat4x4<f32>(x0, x1, x2, x3);
    if (TRANS_A) {
        return transpose(g); // lanes held one k each
    }
    return g; // lanes held one row each
}

// Column `col` of op(B) stored [N, K] at k = k0 .. k0+3, element by element.
fn b_column(col: u32, k0: u32, k: u32) -> vec4<f32> {
    let base = col * k;
    return mask_k(vec4<f32>(
        b_at(base + min(k0, k - 1u)),
        b_at(base + min(k0 + 1u, k - 1u)),
        b_at(base + min(k0 + 2u, k - 1u)),
        b_at(base + min(k0 + 3u, k - 1u)),
    ), k0, k);
}

// Row kk of op(B) stored [K, N] at columns col .. col+3 (clamped), zero past the edge of k.
fn b_row(kk: u32, col: u32, n: u32, k: u32) -> vec4<f32> {
    var v: vec4<f32>;
    if (B_VEC4) {
        v = b[mem_b / 4u + min(kk, k - 1u) * (n / 4u) + min(col / 4u, n / 4u - 1u)];
    } else {
        let base = min(kk, k - 1u) * n;
        v = vec4<f32>(
            b_at(base + min(col, n - 1u)),
            b_at(base + min(col + 1u, n - 1u)),
            b_at(base + min(col + 2u, n - 1u)),
            b_at(base + min(col + 3u, n - 1u)),
        );
    }
    return select(vec4<f32>(), v, kk < k);
}

// op(B) at k = 4q .. 4q+3 for columns col .. col+3 (col a multiple of 4): column t of the
// result holds the four columns at k = 4q + t. Columns past the edge are clamped (computed,
// never stored); k past the edge are zeros.
fn load_b(q: u32, col: u32, n: u32, k: u32) -> mat4x4<f32> {
    let k0 = 4u * q;
    if (TRANS_B) {
        // Stored [N, K]: one vec4 along k per column.
        var g: mat4x4<f32>;
        if (B_VEC4) {
            let k4 = k / 4u;
            g = mat4x4<f32>(
                b[mem_b / 4u + min(col, n - 1u) * k4 + q],
                b[mem_b / 4u + min(col + 1u, n - 1u) * k4 + q],
                b[mem_b / 4u + min(col + 2u, n - 1u) * k4 + q],
                b[mem_b / 4u + min(col + 3u, n - 1u) * k4 + q],
            );
        } else {
            g = mat4x4<f32>(
                b_column(min(col, n - 1u), k0, k),
                b_column(min(col + 1u, n - 1u), k0, k),
                b_column(min(col + 2u, n - 1u), k0, k),
                b_column(min(col + 3u, n - 1u), k0, k),
            );
        }
        return transpose(g);
    }
    // Stored [K, N]: one vec4 along n per k.
    return mat4x4<f32>(
        b_row(k0, col, n, k),
        b_row(k0 + 1u, col, n, k),
        b_row(k0 + 2u, col, n, k),
        b_row(k0 + 3u, col, n, k),
    );
}

// acc + Σ_t a[t] · bk[t]: one row's four columns over four k.
fn fma_row(acc: vec4<f32>, a_row: vec4<f32>, bk: mat4x4<f32>) -> vec4<f32> {
    let s = fma(vec4<f32>(a_row.x), bk[0], acc);
    let t = fma(vec4<f32>(a_row.y), bk[1], s);
    let u = fma(vec4<f32>(a_row.z), bk[2], t);
    return fma(vec4<f32>(a_row.w), bk[3], u);
}

// The epilogue on one row's four columns; `bias4` holds the bias of those columns.
fn epilogue4(v: vec4<f32>, bias4: vec4<f32>, row: u32, col: u32, n: u32) -> vec4<f32> {
    switch EPILOGUE {
        case 1u: {
            return v + bias4;
        }
        case 2u: {
            return max(v + bias4, vec4<f32>());
        }
        case 3u: {
            return vec4<f32>(
                epilogue(v.x, row, col, n),
                epilogue(v.y, row, min(col + 1u, n - 1u), n),
                epilogue(v.z, row, min(col + 2u, n - 1u), n),
                epilogue(v.w, row, min(col + 3u, n - 1u), n),
            );
        }
        default: {
            return v;
        }
    }
}

// Element `i` of C, when it cannot be stored as part of a whole vec4.
fn store1(i: u32, v: f32) {
    c[i / 4u][i % 4u] = v;
}

// Element i of C and of velocity, for the SgdUpdate epilogue (matmul_common.wgsl).
fn c_load(i: u32) -> f32 {
    return c[i / 4u][i % 4u];
}

fn c_store(i: u32, v: f32) {
    store1(i, v);
}

fn v_load(i: u32) -> f32 {
    return velocity[i / 4u][i % 4u];
}

fn v_store(i: u32, v: f32) {
    velocity[i / 4u][i % 4u] = v;
}

// The SgdUpdate epilogue on whole vec4 `i4` of C: four parameters with gradients `g`
// and weight decay `wd`, one `sgd_step` on all four (`sgd_settings` read, the update not
// skipped); in a micro-step that joins a running sum, the joined gradients stored as the
// sum (MEMBER_DEFER) or stepped with, as `sgd_apply`.
fn sgd_store4(i4: u32, g: vec4<f32>, wd: f32) {
    var gs = g;
    if (sgd_sums()) {
        let s = params.sgd_sum_offset / 4u + i4;
        var sum = vec4<f32>();
        if ((sgd_flags & MEMBER_ACCUMULATE) != 0u) {
            sum = velocity[s];
        }
        gs = sgd_join(g, sum);
        if (sgd_defers()) {
            velocity[s] = gs;
            return;
        }
    }
    var v0 = vec4<f32>();
    if (sgd_h.momentum != 0.0) {
        v0 = velocity[i4];
    }
    let s = sgd4(c[i4], gs, v0, wd);
    if (sgd_h.momentum != 0.0) {
        velocity[i4] = s.v;
    }
    c[i4] = s.p;
}

// dZ [K, O] at row `r`, outputs o0 .. o0+3 (clamped: the extra sums are never stored). dZ
// is op(B) with TRANS_C (stored [K, N]), else op(A)ᵀ (stored [K, M]).
fn dz_row4(r: u32, o0: u32, outputs: u32, k: u32) -> vec4<f32> {
    if (TRANS_C) {
        return b_row(r, o0, outputs, k);
    }
    if (A_VEC4) {
        return a_vec4(mem_a / 4u + r * (outputs / 4u) + min(o0 / 4u, outputs / 4u - 1u));
    }
    let base = r * outputs;
    return vec4<f32>(
        a_at(base + min(o0, outputs - 1u)),
        a_at(base + min(o0 + 1u, outputs - 1u)),
        a_at(base + min(o0 + 2u, outputs - 1u)),
        a_at(base + min(o0 + 3u, outputs - 1u)),
    );
}

// The biases of outputs o0 .. o0+3 (o0 a multiple of 4): their gradients summed over the
// minibatch, rows in order from 0 (per component column_sum's additions, the same bits),
// then one SGD step (`sgd_settings` read, the update not skipped).
fn sgd_bias4(o0: u32, outputs: u32, k: u32) {
    var db = vec4<f32>();
    for (var r = 0u; r < k; r++) {
        db += dz_row4(r, o0, outputs, k);
    }
    let j = sgd_bias_index(o0);
    let wd = sgd_bias_wd;
    if (j % 4u == 0u && o0 + 3u < outputs) {
        sgd_store4(j / 4u, db, wd);
        return;
    }
    for (var t = 0u; t < 4u; t++) {
        if (o0 + t < outputs) {
            sgd_apply(j + t, db[t], wd);
        }
    }
}

// Stores one row's four columns, skipping what lies past the edges: one vec4 store when C
// is row-major and the four columns are a whole vec4 of it. The partial sum `v` is added to
// the earlier chunks' sum, and the epilogue runs once the chunk completes K (see
// matmul_common.wgsl). The SgdUpdate epilogue (one chunk only) stores the updated
// parameters element by element instead, in either orientation of C.
fn store_row4(row: u32, col: u32, v: vec4<f32>, bias4: vec4<f32>, m: u32, n: u32, k: u32) {
    if (row >= m) {
        return;
    }
    if (EPILOGUE == 4u) {
        // Row-major W [O, I]: the four inputs of output `row` as one vec4 when whole.
        if (!TRANS_C && n % 4u == 0u && col < n) {
            if (sgd_settings()) {
                return;
            }
            sgd_store4((mem_c + row * n + col) / 4u, v, sgd_wd);
            return;
        }
        for (var j = 0u; j < 4u; j++) {
            if (col + j < n) {
                sgd_store(c_index(row, col + j, m, n), v[j], row, col + j, false);
            }
        }
        return;
    }
    let whole = !TRANS_C && n % 4u == 0u && col < n;
    var s = v;
    if (accumulates()) {
        if (whole) {
            s += c[(mem_c + row * n + col) / 4u];
        } else {
            for (var j = 0u; j < 4u; j++) {
                if (col + j < n) {
                    let i = c_index(row, col + j, m, n);
                    s[j] += c[i / 4u][i % 4u];
                }
            }
        }
    }
    if (finishes(k)) {
        s = epilogue4(s, bias4, row, col, n);
    }
    if (whole) {
        c[(mem_c + row * n + col) / 4u] = s;
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < n) {
            store1(c_index(row, col + j, m, n), s[j]);
        }
    }
}

// C stored [N, M] (TRANS_C, no epilogue but SgdUpdate): rows r .. r+3 of each of the lane's
// columns are neighbours, so with M a multiple of 4 they go out as one vec4 per column
// (added to the earlier chunks' sum after the first chunk; SgdUpdate: updated as one vec4).
fn store_rows4_transposed(r: u32, col: u32, x0: vec4<f32>, x1: vec4<f32>, x2: vec4<f32>, x3: vec4<f32>, m: u32, n: u32) {
    if (r >= m) {
        return;
    }
    let t = transpose(mat4x4<f32>(x0, x1, x2, x3)); // t[j]: rows r .. r+3 of column col + j
    if (EPILOGUE == 4u) {
        // W [O, I] stored as C [N, M]: column col + j is output col + j, rows r .. r+3 its
        // inputs, whole vec4s of W.
        if (sgd_settings()) {
            return;
        }
        for (var j = 0u; j < 4u; j++) {
            if (col + j < n) {
                sgd_store4((mem_c + (col + j) * m + r) / 4u, t[j], sgd_wd);
            }
        }
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < n) {
            let i = (mem_c + (col + j) * m + r) / 4u;
            if (accumulates()) {
                c[i] = c[i] + t[j];
            } else {
                c[i] = t[j];
            }
        }
    }
}

@compute @workgroup_size(8)
fn matmul_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let d = dims();
    let m = d.x;
    let n = d.y;
    let k = d.z;
    // Row blocks (members' blocks one after another) fold into z past the 65,535-workgroup
    // limit of y.
    let blk = member_block(wid.z * nwg.y + wid.y, 16u);
    if (blk == NO_BLOCK) {
        return; // the whole workgroup
    }
    let row0 = blk * 16u;
    let col = wid.x * 32u + lane * 4u;
    let kc = k_chunk(k);
    if (row0 >= m || kc.x >= kc.y) {
        return; // the whole workgroup: row0 and the chunk are uniform
    }
    a_begin(wid.x, lane, row0, m, k);
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
    // Chunks start at a multiple of 4 (the host splits K at multiples of 16), so k_begin / 4
    // is the chunk's first vec4 step.
    let steps = (kc.y + 3u) / 4u;
    for (var q = kc.x / 4u; q < steps; q++) {
        let lo = load_a(q, 0u, lane, row0, m, k);
        let hi = load_a(q, 1u, lane, row0, m, k);
        let bk = load_b(q, col, n, k);
        var g = a_rows(subgroupBroadcast(lo, 0u), subgroupBroadcast(lo, 1u), subgroupBroadcast(lo, 2u), subgroupBroadcast(lo, 3u));
        acc0 = fma_row(acc0, g[0], bk);
        acc1 = fma_row(acc1, g[1], bk);
        acc2 = fma_row(acc2, g[2], bk);
        acc3 = fma_row(acc3, g[3], bk);
        g = a_rows(subgroupBroadcast(lo, 4u), subgroupBroadcast(lo, 5u), subgroupBroadcast(lo, 6u), subgroupBroadcast(lo, 7u));
        acc4 = fma_row(acc4, g[0], bk);
        acc5 = fma_row(acc5, g[1], bk);
        acc6 = fma_row(acc6, g[2], bk);
        acc7 = fma_row(acc7, g[3], bk);
        g = a_rows(subgroupBroadcast(hi, 0u), subgroupBroadcast(hi, 1u), subgroupBroadcast(hi, 2u), subgroupBroadcast(hi, 3u));
        acc8 = fma_row(acc8, g[0], bk);
        acc9 = fma_row(acc9, g[1], bk);
        acc10 = fma_row(acc10, g[2], bk);
        acc11 = fma_row(acc11, g[3], bk);
        g = a_rows(subgroupBroadcast(hi, 4u), subgroupBroadcast(hi, 5u), subgroupBroadcast(hi, 6u), subgroupBroadcast(hi, 7u));
        acc12 = fma_row(acc12, g[0], bk);
        acc13 = fma_row(acc13, g[1], bk);
        acc14 = fma_row(acc14, g[2], bk);
        acc15 = fma_row(acc15, g[3], bk);
    }
    // SgdUpdate: the biases, four outputs per lane, by the workgroups that hold input 0:
    // with TRANS_C the lane's own columns in the first row block; else lanes 0 .. 3 of the
    // first column block, the block's 16 rows (outputs) between them.
    if (EPILOGUE == 4u && !sgd_settings()) {
        if (TRANS_C) {
            if (row0 == 0u && col < n) {
                sgd_bias4(col, n, k);
            }
        } else if (wid.x == 0u && lane < 4u && row0 + 4u * lane < m) {
            sgd_bias4(row0 + 4u * lane, m, k);
        }
    }
    if (TRANS_C && m % 4u == 0u) {
        store_rows4_transposed(row0, col, acc0, acc1, acc2, acc3, m, n);
        store_rows4_transposed(row0 + 4u, col, acc4, acc5, acc6, acc7, m, n);
        store_rows4_transposed(row0 + 8u, col, acc8, acc9, acc10, acc11, m, n);
        store_rows4_transposed(row0 + 12u, col, acc12, acc13, acc14, acc15, m, n);
        return;
    }
    // The bias of the lane's four columns, loaded once for all 16 rows.
    var bias4 = vec4<f32>();
    if (EPILOGUE == 1u || EPILOGUE == 2u) {
        bias4 = vec4<f32>(bias[mem_bias + min(col, n - 1u)], bias[mem_bias + min(col + 1u, n - 1u)], bias[mem_bias + min(col + 2u, n - 1u)], bias[mem_bias + min(col + 3u, n - 1u)]);
    }
    store_row4(row0, col, acc0, bias4, m, n, k);
    store_row4(row0 + 1u, col, acc1, bias4, m, n, k);
    store_row4(row0 + 2u, col, acc2, bias4, m, n, k);
    store_row4(row0 + 3u, col, acc3, bias4, m, n, k);
    store_row4(row0 + 4u, col, acc4, bias4, m, n, k);
    store_row4(row0 + 5u, col, acc5, bias4, m, n, k);
    store_row4(row0 + 6u, col, acc6, bias4, m, n, k);
    store_row4(row0 + 7u, col, acc7, bias4, m, n, k);
    store_row4(row0 + 8u, col, acc8, bias4, m, n, k);
    store_row4(row0 + 9u, col, acc9, bias4, m, n, k);
    store_row4(row0 + 10u, col, acc10, bias4, m, n, k);
    store_row4(row0 + 11u, col, acc11, bias4, m, n, k);
    store_row4(row0 + 12u, col, acc12, bias4, m, n, k);
    store_row4(row0 + 13u, col, acc13, bias4, m, n, k);
    store_row4(row0 + 14u, col, acc14, bias4, m, n, k);
    store_row4(row0 + 15u, col, acc15, bias4, m, n, k);
}
