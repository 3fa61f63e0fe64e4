// Scalar-load matmul kernels: matmul_register, matmul_tiled, matmul_rows.
//
// Fragment: step.wgsl and matmul_common.wgsl are prepended (src/gpu/kernels/matmul.rs).
// Expects from them `params`, `bias`, `mask`, the overrides and the helper functions listed
// at the top of matmul_common.wgsl. Provides A, B, C and velocity (bindings 1, 2, 5, 6) as f32 arrays,
// and the entry points.

@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read_write> velocity: array<f32>; // SgdUpdate only

// Index of op(A)[row, kk] in `a` (the member's offset included).
fn a_index(row: u32, kk: u32, m: u32, k: u32) -> u32 {
    if (TRANS_A) {
        return mem_a + kk * m + row;
    }
    return mem_a + row * k + kk;
}

// Index of op(B)[kk, col] in `b` (the member's offset included).
fn b_index(kk: u32, col: u32, n: u32, k: u32) -> u32 {
    if (TRANS_B) {
        return mem_b + col * k + kk;
    }
    return mem_b + kk * n + col;
}

// Elements of A and B (the member's offset included), of C and of velocity, for the
// SgdUpdate epilogue (matmul_common.wgsl).
fn a_at(i: u32) -> f32 {
    return a[mem_a + i];
}

fn b_at(i: u32) -> f32 {
    return b[mem_b + i];
}

fn c_load(i: u32) -> f32 {
    return c[i];
}

fn c_store(i: u32, v: f32) {
    c[i] = v;
}

fn v_load(i: u32) -> f32 {
    return velocity[i];
}

fn v_store(i: u32, v: f32) {
    velocity[i] = v;
}

// Stores the partial sum `v` of C[row, col] (index `i` of `c`): added to the earlier
// chunks' sum, then the epilogue once the chunk completes K (see matmul_common.wgsl). The
// SgdUpdate epilogue (one chunk only) stores the updated parameter instead.
fn store_c(i: u32, v: f32, row: u32, col: u32, n: u32, k: u32) {
    if (EPILOGUE == 4u) {
        sgd_store(i, v, row, col, true);
        return;
    }
    var s = v;
    if (accumulates()) {
        s = c[i] + v;
    }
    if (finishes(k)) {
        s = epilogue(s, row, col, n);
    }
    c[i] = s;
}

const RT: u32 = 4u; // register tile: RT x RT outputs per invocation

@compute @workgroup_size(16, 16)
fn matmul_register(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let d = dims();
    let m = d.x;
    let n = d.y;
    let k = d.z;
    // Row blocks (members' blocks one after another) fold into z past the 65,535-workgroup
    // limit of y.
    let blk = member_block(wid.z * nwg.y + wid.y, 16u * RT);
    if (blk == NO_BLOCK) {
        return;
    }
    let row0 = (blk * 16u + lid.y) * RT;
    let col0 = (wid.x * 16u + lid.x) * RT;
    let kc = k_chunk(k);
    if (row0 >= m || col0 >= n || kc.x >= kc.y) {
        return;
    }
    // Rows and columns past the edge are clamped onto the last valid one: the loads stay in
    // bounds without a branch per load, and the duplicated results are never stored.
    var ra: array<u32, 4>;
    var cb: array<u32, 4>;
    for (var i = 0u; i < RT; i++) {
        ra[i] = min(row0 + i, m - 1u);
        cb[i] = min(col0 + i, n - 1u);
    }
    var acc: array<f32, 16>;
    for (var kk = kc.x; kk < kc.y; kk++) {
        let a0 = a[a_index(ra[0], kk, m, k)];
        let a1 = a[a_index(ra[1], kk, m, k)];
        let a2 = a[a_index(ra[2], kk, m, k)];
        let a3 = a[a_index(ra[3], kk, m, k)];
        let b0 = b[b_index(kk, cb[0], n, k)];
        let b1 = b[b_index(kk, cb[1], n, k)];
        let b2 = b[b_index(kk, cb[2], n, k)];
        let b3 = b[b_index(kk, cb[3], n, k)];
        acc[0] = fma(a0, b0, acc[0]);
        acc[1] = fma(a0, b1, acc[1]);
        acc[2] = fma(a0, b2, acc[2]);
        acc[3] = fma(a0, b3, acc[3]);
        acc[4] = fma(a1, b0, acc[4]);
        acc[5] = fma(a1, b1, acc[5]);
        acc[6] = fma(a1, b2, acc[6]);
        acc[7] = fma(a1, b3, acc[7]);
        acc[8] = fma(a2, b0, acc[8]);
        acc[9] = fma(a2, b1, acc[9]);
        acc[10] = fma(a2, b2, acc[10]);
        acc[11] = fma(a2, b3, acc[11]);
        acc[12] = fma(a3, b0, acc[12]);
        acc[13] = fma(a3, b1, acc[13]);
        acc[14] = fma(a3, b2, acc[14]);
        acc[15] = fma(a3, b3, acc[15]);
    }
    for (var i = 0u; i < RT; i++) {
        let row = row0 + i;
        if (row < m) {
            for (var j = 0u; j < RT; j++) {
                let col = col0 + j;
                if (col < n) {
                    store_c(c_index(row, col, m, n), acc[i * RT + j], row, col, n, k);
                }
            }
        }
    }
}

const TILE: u32 = 64u; // outputs per workgroup side
const TK: u32 = 16u;   // K slice staged per iteration

var<workgroup> tile_a: array<f32, 1024>; // [TK][TILE]: op(A)ᵀ slice
var<workgroup> tile_b: array<f32, 1024>; // [TK][TILE]: op(B) slice

@compute @workgroup_size(16, 16)
fn matmul_tiled(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let d = dims();
    let m = d.x;
    let n = d.y;
    let k = d.z;
    let blk = member_block(wid.z * nwg.y + wid.y, TILE);
    if (blk == NO_BLOCK) {
        return;
    }
    let tile_row = blk * TILE;
    let tile_col = wid.x * TILE;
    let kc = k_chunk(k);
    // Whole workgroups past the edge leave together, so the barriers below stay uniform.
    if (tile_row >= m || tile_col >= n || kc.x >= kc.y) {
        return;
    }
    let t = lid.y * 16u + lid.x;
    var acc: array<f32, 16>;
    for (var k0 = kc.x; k0 < kc.y; k0 += TK) {
        // 256 invocations load 1024 elements of each tile, zero-filling past the edges.
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            let kk = idx / TILE;
            let mn = idx % TILE;
            let gk = k0 + kk;
            let gr = tile_row + mn;
            let gc = tile_col + mn;
            var va = 0.0;
            if (gk < kc.y && gr < m) {
                va = a[a_index(gr, gk, m, k)];
            }
            var vb = 0.0;
            if (gk < kc.y && gc < n) {
                vb = b[b_index(gk, gc, n, k)];
            }
            tile_a[kk * TILE + mn] = va;
            tile_b[kk * TILE + mn] = vb;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            for (var i = 0u; i < 4u; i++) {
                let av = tile_a[kk * TILE + lid.y * 4u + i];
                for (var j = 0u; j < 4u; j++) {
                    acc[i * 4u + j] = fma(av, tile_b[kk * TILE + lid.x * 4u + j], acc[i * 4u + j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = tile_row + lid.y * 4u + i;
        if (row < m) {
            for (var j = 0u; j < 4u; j++) {
                let col = tile_col + lid.x * 4u + j;
                if (col < n) {
                    store_c(c_index(row, col, m, n), acc[i * 4u + j], row, col, n, k);
                }
            }
        }
    }
}

// `matmul_rows`: for CPU adapters. A workgroup owns ROWS consecutive rows of C, so every
// load of A has the same address in all invocations (uniform: one scalar load and a
// broadcast on lavapipe, which runs invocations as SIMD lanes), and each of its 64
// invocations owns COLS columns 64 apart, so the loads of B across the lanes are
// neighbours. ROWS x COLS = 32 accumulators per invocation, no workgroup memory, no
// barriers. Rows past the edge are clamped (computed, never stored), as in matmul_register.
const ROWS: u32 = 16u;
const COLS: u32 = 4u;
const LANES: u32 = 64u;

// Row i's accumulator holds its COLS = 4 columns; named variables rather than an array, so
// that no compiler can spill the accumulators to indexed scratch memory.
@compute @workgroup_size(64)
fn matmul_rows(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let d = dims();
    let m = d.x;
    let n = d.y;
    let k = d.z;
    let blk = member_block(wid.z * nwg.y + wid.y, ROWS);
    if (blk == NO_BLOCK) {
        return;
    }
    let row0 = blk * ROWS;
    let col_base = wid.x * LANES * COLS + lid;
    let kc = k_chunk(k);
    if (row0 >= m || wid.x * LANES * COLS >= n || kc.x >= kc.y) {
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
    for (var kk = kc.x; kk < kc.y; kk++) {
        let bv = vec4<f32>(
            b[b_index(kk, c0, n, k)],
            b[b_index(kk, c1, n, k)],
            b[b_index(kk, c2, n, k)],
            b[b_index(kk, c3, n, k)],
        );
        acc0 = fma(vec4<f32>(a[a_index(r0, kk, m, k)]), bv, acc0);
        acc1 = fma(vec4<f32>(a[a_index(r1, kk, m, k)]), bv, acc1);
        acc2 = fma(vec4<f32>(a[a_index(r2, kk, m, k)]), bv, acc2);
        acc3 = fma(vec4<f32>(a[a_index(r3, kk, m, k)]), bv, acc3);
        acc4 = fma(vec4<f32>(a[a_index(r4, kk, m, k)]), bv, acc4);
        acc5 = fma(vec4<f32>(a[a_index(r5, kk, m, k)]), bv, acc5);
        acc6 = fma(vec4<f32>(a[a_index(r6, kk, m, k)]), bv, acc6);
        acc7 = fma(vec4<f32>(a[a_index(r7, kk, m, k)]), bv, acc7);
        acc8 = fma(vec4<f32>(a[a_index(r8, kk, m, k)]), bv, acc8);
        acc9 = fma(vec4<f32>(a[a_index(r9, kk, m, k)]), bv, acc9);
        acc10 = fma(vec4<f32>(a[a_index(r10, kk, m, k)]), bv, acc10);
        acc11 = fma(vec4<f32>(a[a_index(r11, kk, m, k)]), bv, acc11);
        acc12 = fma(vec4<f32>(a[a_index(r12, kk, m, k)]), bv, acc12);
        acc13 = fma(vec4<f32>(a[a_index(r13, kk, m, k)]), bv, acc13);
        acc14 = fma(vec4<f32>(a[a_index(r14, kk, m, k)]), bv, acc14);
        acc15 = fma(vec4<f32>(a[a_index(r15, kk, m, k)]), bv, acc15);
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

// Stores one row's four columns (64 apart), skipping what lies past the edges.
fn store_row(row: u32, v: vec4<f32>, col_base: u32, m: u32, n: u32, k: u32) {
    if (row >= m) {
        return;
    }
    for (var j = 0u; j < COLS; j++) {
        let col = col_base + j * LANES;
        if (col < n) {
            store_c(c_index(row, col, m, n), v[j], row, col, n, k);
        }
    }
}
