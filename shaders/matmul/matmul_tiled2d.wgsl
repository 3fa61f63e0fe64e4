// `matmul_tiled2d`: for discrete GPUs, in the style of siboehm's SGEMM kernel 9.
//
// Fragment: step.wgsl and matmul_common.wgsl are prepended (src/gpu/kernels/matmul.rs).
// Expects from them `params`, `bias`, `mask`, the overrides and the helper functions listed
// at the top of matmul_common.wgsl. Provides B (binding 2) as a vec4<f32> array, C and
// velocity (bindings 5, 6) as f32 arrays, the overrides BM, BN, A_VEC4 and B_VEC4, and the
// entry point. Expects from an operand fragment A's binding and the hooks `a_begin` and
// `load_a`: matmul_tiled2d_a.wgsl (f32 values, prepended) or matmul_tiled2d_gather.wgsl (the
// u8 pixels of a minibatch, the gather fusion; appended).
//
// A workgroup computes a BM x BN block of C (BM, BN in {64, 128}, set by the host per
// `Tile2d`) with (BN/8) x (BM/8) invocations, each owning an 8 x 8 register tile: rows
// 4·ty .. +3 and BM/2 + 4·ty .. +3, columns 4·tx .. +3 and BN/2 + 4·tx .. +3 of the block,
// so that the invocations of a subgroup read neighbouring vec4s of the shared B tile
// (no bank conflicts) and the same vec4 of the shared A tile (a broadcast). K is walked in
// BK = 8 deep slices staged in workgroup memory as op(A)ᵀ [BK][BM] and op(B) [BK][BN], two
// buffers of each: while the invocations multiply slice s out of one buffer, they have
// already loaded slice s + 1 from global memory into registers, and store it into the other
// buffer afterwards, so one barrier per slice suffices and the loads' latency hides behind
// the 512 FMAs of the slice.
//
// Global loads are vec4 along each operand's contiguous axis when it holds a multiple of 4
// elements and is not the minibatch (A_VEC4, B_VEC4, set by the host: `vec4_operands` in
// src/gpu/kernels/matmul.rs), else four scalar loads into the same vec4.
//
// Determinism: each output element is one invocation's fma chain over k ascending from
// zero, as in every other matmul kernel. Past the edge of K, op(A) reads +0 and op(B)
// reads -0, so each extra term adds -0: the identity of IEEE addition, even on ±0. The
// chain, and so the bits, equal those of a loop that stops at K.

override BM: u32 = 64u; // rows of C per workgroup: 64 or 128
override BN: u32 = 64u; // columns of C per workgroup: 64 or 128
override A_VEC4: bool = false;
override B_VEC4: bool = false;

const BK: u32 = 8u; // K slice staged per barrier
override WG_X: u32 = BN / 8u;
override WG_Y: u32 = BM / 8u;
override THREADS: u32 = WG_X * WG_Y;
// vec4 loads of each operand per invocation per slice: BM·BK/4 / THREADS = 128 / BN for A.
override A_LOADS: u32 = 128u / BN;
override B_LOADS: u32 = 128u / BM;
// Two buffers of BK x BM (BK x BN) floats, as vec4s along M (N).
override TILE_A_VEC4S: u32 = BK * BM / 2u;
override TILE_B_VEC4S: u32 = BK * BN / 2u;

@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>; // whole vec4s past the end
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read_write> velocity: array<f32>; // SgdUpdate only

var<workgroup> tile_a: array<vec4<f32>, TILE_A_VEC4S>; // [2][BK][BM/4]: op(A)ᵀ slices
var<workgroup> tile_b: array<vec4<f32>, TILE_B_VEC4S>; // [2][BK][BN/4]: op(B) slices

fn b_at(i: u32) -> f32 {
    return b[mem_b / 4u + i / 4u][i % 4u];
}

// Slot `s` (0 .. 2·BN) of the op(B) slice at k0 .. k0+7, as `load_a`: stored [K, N]: k = k0
// + s / (BN/4), columns 4·(s % (BN/4)) .. +3; stored [N, K]: column s / 2, k = k0 + 4·(s %
// 2) .. +3. Zero past N; -0 past `kend` (see the top of this file).
fn load_b(s: u32, col0: u32, k0: u32, kend: u32, n: u32, k: u32) -> vec4<f32> {
    let past_k = vec4<f32>(-0.0);
    if (!TRANS_B) {
        let kk = k0 + s / (BN / 4u);
        let col = col0 + 4u * (s % (BN / 4u));
        if (kk >= kend) {
            return past_k;
        }
        if (col >= n) {
            return vec4<f32>();
        }
        let base = kk * n + col;
        if (B_VEC4) {
            return b[mem_b / 4u + base / 4u]; // N is a multiple of 4
        }
        let last = kk * n + n - 1u;
        return select(vec4<f32>(), vec4<f32>(
            b_at(base),
            b_at(min(base + 1u, last)),
            b_at(min(base + 2u, last)),
            b_at(min(base + 3u, last)),
        ), vec4<u32>(col) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(n));
    }
    let col = col0 + s / 2u;
    let kk = k0 + 4u * (s % 2u);
    if (kk >= kend) {
        return past_k;
    }
    if (col >= n) {
        return vec4<f32>();
    }
    let base = col * k + kk;
    if (B_VEC4) {
        return b[mem_b / 4u + base / 4u]; // K and the chunk's end are multiples of 4
    }
    let last = col * k + kend - 1u;
    return select(past_k, vec4<f32>(
        b_at(base),
        b_at(min(base + 1u, last)),
        b_at(min(base + 2u, last)),
        b_at(min(base + 3u, last)),
    ), vec4<u32>(kk) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(kend));
}

// Stores slot `s` of op(A) (as loaded by `load_a`) into buffer `buf` of `tile_a`, [BK][BM].
fn stage_a(buf: u32, s: u32, v: vec4<f32>) {
    let base = buf * (BK * BM / 4u);
    if (TRANS_A) {
        tile_a[base + s] = v; // [k][rows 4q .. 4q+3]: the layout of the tile
        return;
    }
    // One row at four k: transposed on the way in.
    let r = s / 2u;
    let kk = 4u * (s % 2u);
    let i = base + kk * (BM / 4u) + r / 4u;
    tile_a[i][r % 4u] = v.x;
    tile_a[i + BM / 4u][r % 4u] = v.y;
    tile_a[i + BM / 2u][r % 4u] = v.z;
    tile_a[i + 3u * BM / 4u][r % 4u] = v.w;
}

// Stores slot `s` of op(B) (as loaded by `load_b`) into buffer `buf` of `tile_b`, [BK][BN].
fn stage_b(buf: u32, s: u32, v: vec4<f32>) {
    let base = buf * (BK * BN / 4u);
    if (!TRANS_B) {
        tile_b[base + s] = v;
        return;
    }
    let col = s / 2u;
    let kk = 4u * (s % 2u);
    let i = base + kk * (BN / 4u) + col / 4u;
    tile_b[i][col % 4u] = v.x;
    tile_b[i + BN / 4u][col % 4u] = v.y;
    tile_b[i + BN / 2u][col % 4u] = v.z;
    tile_b[i + 3u * BN / 4u][col % 4u] = v.w;
}

// Element i of C and of velocity, for the SgdUpdate epilogue (matmul_common.wgsl).
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

// Stores the partial sum `v` of C[row, col]: added to the earlier chunks' sum, then the
// epilogue once the chunk completes K (see matmul_common.wgsl). The SgdUpdate epilogue
// (one chunk only) stores the updated parameter instead.
fn store_c(row: u32, col: u32, v: f32, m: u32, n: u32, k: u32) {
    let i = c_index(row, col, m, n);
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

// Stores C[row, col .. col+3], skipping what lies past the edges.
fn store4(row: u32, col: u32, v: vec4<f32>, m: u32, n: u32, k: u32) {
    if (row >= m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (col + j < n) {
            store_c(row, col + j, v[j], m, n, k);
        }
    }
}

@compute @workgroup_size(WG_X, WG_Y)
fn matmul_tiled2d(
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
    let blk = member_block(wid.z * nwg.y + wid.y, BM);
    if (blk == NO_BLOCK) {
        return; // the whole workgroup, before any barrier
    }
    let row0 = blk * BM;
    let col0 = wid.x * BN;
    let kc = k_chunk(k);
    // Whole workgroups past the edge leave together, so the barriers below stay uniform.
    if (row0 >= m || col0 >= n || kc.x >= kc.y) {
        return;
    }
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * WG_X + tx;
    a_begin(wid.x, t, row0, m, k);
    let slices = (kc.y - kc.x + BK - 1u) / BK;

    // Slice 0 into buffer 0.
    var pa0 = load_a(t, row0, kc.x, kc.y, m, k);
    var pa1 = vec4<f32>();
    if (A_LOADS > 1u) {
        pa1 = load_a(t + THREADS, row0, kc.x, kc.y, m, k);
    }
    var pb0 = load_b(t, col0, kc.x, kc.y, n, k);
    var pb1 = vec4<f32>();
    if (B_LOADS > 1u) {
        pb1 = load_b(t + THREADS, col0, kc.x, kc.y, n, k);
    }
    stage_a(0u, t, pa0);
    if (A_LOADS > 1u) {
        stage_a(0u, t + THREADS, pa1);
    }
    stage_b(0u, t, pb0);
    if (B_LOADS > 1u) {
        stage_b(0u, t + THREADS, pb1);
    }
    workgroupBarrier();

    // acc<2i + h>: row i of the register tile (rows 4·ty + i, then BM/2 + 4·ty + i - 4),
    // columns 4·tx .. +3 (h = 0) and BN/2 + 4·tx .. +3 (h = 1).
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
    for (var s = 0u; s < slices; s++) {
        let buf = s & 1u;
        let more = s + 1u < slices;
        // Slice s + 1 into registers now; its latency hides behind this slice's FMAs.
        if (more) {
            let k0 = kc.x + (s + 1u) * BK;
            pa0 = load_a(t, row0, k0, kc.y, m, k);
            if (A_LOADS > 1u) {
                pa1 = load_a(t + THREADS, row0, k0, kc.y, m, k);
            }
            pb0 = load_b(t, col0, k0, kc.y, n, k);
            if (B_LOADS > 1u) {
                pb1 = load_b(t + THREADS, col0, k0, kc.y, n, k);
            }
        }
        let a_base = buf * (BK * BM / 4u) + ty;
        let b_base = buf * (BK * BN / 4u) + tx;
        for (var kk = 0u; kk < BK; kk++) {
            let a_lo = tile_a[a_base + kk * (BM / 4u)];
            let a_hi = tile_a[a_base + kk * (BM / 4u) + BM / 8u];
            let b_lo = tile_b[b_base + kk * (BN / 4u)];
            let b_hi = tile_b[b_base + kk * (BN / 4u) + BN / 8u];
            acc0 = fma(vec4<f32>(a_lo.x), b_lo, acc0);
            acc1 = fma(vec4<f32>(a_lo.x), b_hi, acc1);
            acc2 = fma(vec4<f32>(a_lo.y), b_lo, acc2);
            acc3 = fma(vec4<f32>(a_lo.y), b_hi, acc3);
            acc4 = fma(vec4<f32>(a_lo.z), b_lo, acc4);
            acc5 = fma(vec4<f32>(a_lo.z), b_hi, acc5);
            acc6 = fma(vec4<f32>(a_lo.w), b_lo, acc6);
            acc7 = fma(vec4<f32>(a_lo.w), b_hi, acc7);
            acc8 = fma(vec4<f32>(a_hi.x), b_lo, acc8);
            acc9 = fma(vec4<f32>(a_hi.x), b_hi, acc9);
            acc10 = fma(vec4<f32>(a_hi.y), b_lo, acc10);
            acc11 = fma(vec4<f32>(a_hi.y), b_hi, acc11);
            acc12 = fma(vec4<f32>(a_hi.z), b_lo, acc12);
            acc13 = fma(vec4<f32>(a_hi.z), b_hi, acc13);
            acc14 = fma(vec4<f32>(a_hi.w), b_lo, acc14);
            acc15 = fma(vec4<f32>(a_hi.w), b_hi, acc15);
        }
        // Everyone has finished reading buffer buf ^ 1 (slice s - 1) at the previous
        // barrier, so slice s + 1 may overwrite it; the barrier below publishes it.
        if (more) {
            stage_a(buf ^ 1u, t, pa0);
            if (A_LOADS > 1u) {
                stage_a(buf ^ 1u, t + THREADS, pa1);
            }
            stage_b(buf ^ 1u, t, pb0);
            if (B_LOADS > 1u) {
                stage_b(buf ^ 1u, t + THREADS, pb1);
            }
        }
        workgroupBarrier();
    }

    let r_lo = row0 + 4u * ty;
    let r_hi = row0 + BM / 2u + 4u * ty;
    let c_lo = col0 + 4u * tx;
    let c_hi = col0 + BN / 2u + 4u * tx;
    store4(r_lo, c_lo, acc0, m, n, k);
    store4(r_lo, c_hi, acc1, m, n, k);
    store4(r_lo + 1u, c_lo, acc2, m, n, k);
    store4(r_lo + 1u, c_hi, acc3, m, n, k);
    store4(r_lo + 2u, c_lo, acc4, m, n, k);
    store4(r_lo + 2u, c_hi, acc5, m, n, k);
    store4(r_lo + 3u, c_lo, acc6, m, n, k);
    store4(r_lo + 3u, c_hi, acc7, m, n, k);
    store4(r_hi, c_lo, acc8, m, n, k);
    store4(r_hi, c_hi, acc9, m, n, k);
    store4(r_hi + 1u, c_lo, acc10, m, n, k);
    store4(r_hi + 1u, c_hi, acc11, m, n, k);
    store4(r_hi + 2u, c_lo, acc12, m, n, k);
    store4(r_hi + 2u, c_hi, acc13, m, n, k);
    store4(r_hi + 3u, c_lo, acc14, m, n, k);
    store4(r_hi + 3u, c_hi, acc15, m, n, k);
}
