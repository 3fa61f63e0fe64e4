// `matmul_tiled2d_subgroup`: the 2-D tiled kernel for GPUs with subgroups (32 lanes on
// NVIDIA, Apple, AMD RDNA in wave32), op(A) shared through subgroup shuffles instead of
// workgroup memory.
//
// Fragment: step.wgsl and matmul_common.wgsl are prepended (src/gpu/kernels/matmul.rs).
// Expects from them `params`, `bias`, `mask`, the overrides and the helper functions listed
// at the top of matmul_common.wgsl. Provides A and B (bindings 1, 2) as vec4<f32> arrays,
// C and velocity (bindings 5, 6) as f32 arrays, the accessors matmul_common.wgsl's
// SgdUpdate epilogue uses, the overrides SG_W, A_VEC4 and B_VEC4, and the entry point.
//
// Block: a workgroup of 256 invocations computes a 64 x 256 block of C, each invocation an
// 8 x 8 register tile as in matmul_tiled2d. The invocations are split into *teams* of SG_W
// lanes (SG_W: the adapter's smallest subgroup size, a power of two in 4..32, set by the
// host). A team owns 8 rows of the block and 8·SG_W columns: lane l the columns 4·l .. +3
// and 4·SG_W + 4·l .. +3 of the team's, so a team reads neighbouring vec4s of the B tile
// (no bank conflicts). 8 teams along M, 32 / SG_W along N.
//
// op(B) is staged as in matmul_tiled2d: 8-deep slices [BK][BN] in double-buffered
// workgroup memory (16 KiB), one barrier per slice, B loaded from global memory once per
// workgroup. op(A) never touches workgroup memory: per slice a team's 8 rows x 8 k are 16
// vec4s, which its lanes load straight into registers (lane l holds slots l, l + SG_W, ..),
// and each lane fetches the 8 values of a k it needs with `subgroupShuffle` from the lane
// that loaded them. The source lane of each shuffle is the same on every lane of the team
// (all lanes need the same rows), which AMD compilers turn into `v_readlane` to a scalar
// register. That saves the A tile's stores (transposing ones when A is stored [M, K]),
// half the workgroup memory of matmul_tiled2d-128x128, and the A half of each barrier's
// traffic.
//
// Correctness whatever subgroup size the driver picks. WGSL cannot ask for a subgroup
// size, and a driver may pick any power of two in [subgroup_min_size, subgroup_max_size]
// (uniform across a dispatch). So a team is not "a subgroup" but SG_W lanes aligned at a
// multiple of SG_W inside one: with SG_W the smallest size the driver may pick, every
// actual size S is a multiple of SG_W and a team never straddles two subgroups. A lane's
// team and place in it come from the subgroup builtins (`subgroup_id`,
// `subgroup_invocation_id`, `subgroup_size`), not from `local_invocation_index`, so no
// assumption is made about how the driver packs invocations into subgroups. That is a
// one-to-one map onto the 256 / SG_W teams x SG_W lanes exactly when every subgroup is
// full (num_subgroups · S = 256) and S is a multiple of SG_W; the kernel checks both. Where
// either fails (a driver that launches partial subgroups, or a size below SG_W), the
// workgroup takes the direct path instead: roles from `local_invocation_index`, every lane
// reading its own A values from global memory, no shuffles. Same values, same bits, slower.
// The check is uniform across the workgroup, and only the A path depends on it: the
// barriers are reached by every invocation either way.
//
// Determinism: each output element is one invocation's fma chain over k ascending from
// zero, as in every other matmul kernel; past the edge of K, op(A) reads +0 and op(B) -0
// (see matmul_tiled2d.wgsl), so the bits equal those of a loop that stops at K.

override A_VEC4: bool = false;
override B_VEC4: bool = false;
// Lanes per team: the adapter's smallest subgroup size (a power of two, 4 .. 32).
override SG_W: u32 = 32u;

const BM: u32 = 64u; // rows of C per workgroup
const BN: u32 = 256u; // columns of C per workgroup
const BK: u32 = 8u; // K slice staged per barrier
const THREADS: u32 = 256u;
const TILE_B_VEC4S: u32 = 1024u; // [2][BK][BN/4]
// Teams side by side along N, each 8·SG_W columns wide.
override TEAMS_N: u32 = 32u / SG_W;

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>; // whole vec4s past the end
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>; // whole vec4s past the end
@group(0) @binding(5) var<storage, read_write> c: array<f32>;
@group(0) @binding(6) var<storage, read_write> velocity: array<f32>; // SgdUpdate only

var<workgroup> tile_b: array<vec4<f32>, TILE_B_VEC4S>; // op(B) slices

fn a_at(i: u32) -> f32 {
    return a[mem_a / 4u + i / 4u][i % 4u];
}

fn b_at(i: u32) -> f32 {
    return b[mem_b / 4u + i / 4u][i % 4u];
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

// Slot `s` (0 .. 16) of a team's op(A) slice, rows row0 .. +7 at k0 .. k0+7: four values
// along A's contiguous axis. Stored [K, M]: k = k0 + s / 2, rows 4·(s % 2) .. +3. Stored
// [M, K]: row s / 2, k = k0 + 4·(s % 2) .. +3. Zero past M and past the chunk's end `kend`.
fn load_a(s: u32, row0: u32, k0: u32, kend: u32, m: u32, k: u32) -> vec4<f32> {
    if (TRANS_A) {
        let kk = k0 + s / 2u;
        let r = row0 + 4u * (s % 2u);
        if (kk >= kend || r >= m) {
            return vec4<f32>();
        }
        let base = kk * m + r;
        if (A_VEC4) {
            return a[mem_a / 4u + base / 4u]; // M is a multiple of 4: rows r .. r+3 all exist
        }
        let last = kk * m + m - 1u;
        return select(vec4<f32>(), vec4<f32>(
            a_at(base),
            a_at(min(base + 1u, last)),
            a_at(min(base + 2u, last)),
            a_at(min(base + 3u, last)),
        ), vec4<u32>(r) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(m));
    }
    let r = row0 + s / 2u;
    let kk = k0 + 4u * (s % 2u);
    if (r >= m || kk >= kend) {
        return vec4<f32>();
    }
    let base = r * k + kk;
    if (A_VEC4) {
        return a[mem_a / 4u + base / 4u]; // K and the chunk's end are multiples of 4
    }
    let last = r * k + kend - 1u;
    return select(vec4<f32>(), vec4<f32>(
        a_at(base),
        a_at(min(base + 1u, last)),
        a_at(min(base + 2u, last)),
        a_at(min(base + 3u, last)),
    ), vec4<u32>(kk) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(kend));
}

// op(A) at row `r`, k `kk` read straight from A (the direct path): zero past M and `kend`.
fn a_direct(r: u32, kk: u32, kend: u32, m: u32, k: u32) -> f32 {
    if (r >= m || kk >= kend) {
        return 0.0;
    }
    if (TRANS_A) {
        return a_at(kk * m + r);
    }
    return a_at(r * k + kk);
}

// Slot `s` (0 .. 512) of the block's op(B) slice at k0 .. k0+7, as matmul_tiled2d's
// `load_b` with BN = 256: stored [K, N]: k = k0 + s / 64, columns 4·(s % 64) .. +3; stored
// [N, K]: column s / 2, k = k0 + 4·(s % 2) .. +3. Zero past N; -0 past `kend`.
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

// The team's op(A) value in slot `s`, component `e`, from the lane that loaded it: lane
// `s % SG_W` of the team (starting at subgroup lane `base`), its register `s / SG_W`
// (r0 .. r3). `s` and `e` are the same on every lane of the team.
fn team_a(s: u32, e: u32, base: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) -> f32 {
    let j = s / SG_W;
    var v = r0;
    if (j == 1u) {
        v = r1;
    } else if (j == 2u) {
        v = r2;
    } else if (j == 3u) {
        v = r3;
    }
    return subgroupShuffle(v[e], base + s % SG_W);
}

// Slot and component holding op(A) at team row `r`, slice depth `kk` (see `load_a`).
fn a_slot(r: u32, kk: u32) -> vec2<u32> {
    if (TRANS_A) {
        return vec2<u32>(2u * kk + r / 4u, r % 4u);
    }
    return vec2<u32>(2u * r + kk / 4u, kk % 4u);
}

// Rows 0 .. 3 (lo) and 4 .. 7 (hi) of the team at slice depth `kk`, shuffled from the team
// (written out: a loop would count against lavapipe's loop cap, `MatmulVariant::loop_passes`).
fn team_rows(kk: u32, base: u32, r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) -> mat2x4<f32> {
    let s0 = a_slot(0u, kk);
    let s1 = a_slot(1u, kk);
    let s2 = a_slot(2u, kk);
    let s3 = a_slot(3u, kk);
    let s4 = a_slot(4u, kk);
    let s5 = a_slot(5u, kk);
    let s6 = a_slot(6u, kk);
    let s7 = a_slot(7u, kk);
    return mat2x4<f32>(
        vec4<f32>(
            team_a(s0.x, s0.y, base, r0, r1, r2, r3),
            team_a(s1.x, s1.y, base, r0, r1, r2, r3),
            team_a(s2.x, s2.y, base, r0, r1, r2, r3),
            team_a(s3.x, s3.y, base, r0, r1, r2, r3),
        ),
        vec4<f32>(
            team_a(s4.x, s4.y, base, r0, r1, r2, r3),
            team_a(s5.x, s5.y, base, r0, r1, r2, r3),
            team_a(s6.x, s6.y, base, r0, r1, r2, r3),
            team_a(s7.x, s7.y, base, r0, r1, r2, r3),
        ),
    );
}

// This lane's slots of its team's op(A) slice at k0 .. k0+7 (lane, lane + SG_W, ... < 16),
// as the four registers `team_a` reads; zeros in the slots it does not hold.
fn lane_slots(lane: u32, trow: u32, k0: u32, kend: u32, m: u32, k: u32) -> mat4x4<f32> {
    var r: mat4x4<f32>;
    if (lane < 16u) {
        r[0] = load_a(lane, trow, k0, kend, m, k);
    }
    if (SG_W <= 8u) {
        r[1] = load_a(lane + SG_W, trow, k0, kend, m, k);
    }
    if (SG_W <= 4u) {
        r[2] = load_a(lane + 2u * SG_W, trow, k0, kend, m, k);
        r[3] = load_a(lane + 3u * SG_W, trow, k0, kend, m, k);
    }
    return r;
}

// One k of the 8 x 8 register tile: acc[2i + h] += a(row i) · b(columns h).
fn fma_tile(acc: ptr<function, array<vec4<f32>, 16>>, a_lo: vec4<f32>, a_hi: vec4<f32>, b_lo: vec4<f32>, b_hi: vec4<f32>) {
    (*acc)[0] = fma(vec4<f32>(a_lo.x), b_lo, (*acc)[0]);
    (*acc)[1] = fma(vec4<f32>(a_lo.x), b_hi, (*acc)[1]);
    (*acc)[2] = fma(vec4<f32>(a_lo.y), b_lo, (*acc)[2]);
    (*acc)[3] = fma(vec4<f32>(a_lo.y), b_hi, (*acc)[3]);
    (*acc)[4] = fma(vec4<f32>(a_lo.z), b_lo, (*acc)[4]);
    (*acc)[5] = fma(vec4<f32>(a_lo.z), b_hi, (*acc)[5]);
    (*acc)[6] = fma(vec4<f32>(a_lo.w), b_lo, (*acc)[6]);
    (*acc)[7] = fma(vec4<f32>(a_lo.w), b_hi, (*acc)[7]);
    (*acc)[8] = fma(vec4<f32>(a_hi.x), b_lo, (*acc)[8]);
    (*acc)[9] = fma(vec4<f32>(a_hi.x), b_hi, (*acc)[9]);
    (*acc)[10] = fma(vec4<f32>(a_hi.y), b_lo, (*acc)[10]);
    (*acc)[11] = fma(vec4<f32>(a_hi.y), b_hi, (*acc)[11]);
    (*acc)[12] = fma(vec4<f32>(a_hi.z), b_lo, (*acc)[12]);
    (*acc)[13] = fma(vec4<f32>(a_hi.z), b_hi, (*acc)[13]);
    (*acc)[14] = fma(vec4<f32>(a_hi.w), b_lo, (*acc)[14]);
    (*acc)[15] = fma(vec4<f32>(a_hi.w), b_hi, (*acc)[15]);
}

// Stores the partial sum `v` of C[row, col]: added to the earlier chunks' sum, then the
// epilogue once the chunk completes K (see matmul_common.wgsl). The SgdUpdate epilogue
// updates the parameter (and, for input 0, the bias) instead of storing.
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

@compute @workgroup_size(256)
fn matmul_tiled2d_subgroup(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lidx: u32,
    @builtin(subgroup_id) sg_id: u32,
    @builtin(num_subgroups) sg_count: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) sg_lane: u32,
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
    // Teams from the subgroup builtins when every subgroup is full and a whole number of
    // teams; else from the local index, and no shuffles (see the top of this file).
    let shuffles = sg_count * sg_size == THREADS && sg_size % SG_W == 0u;
    var team = lidx / SG_W;
    var lane = lidx % SG_W;
    if (shuffles) {
        team = sg_id * (sg_size / SG_W) + sg_lane / SG_W;
        lane = sg_lane % SG_W;
    }
    let base = sg_lane - lane; // the team's first lane in its subgroup (shuffles only)
    let trow = row0 + 8u * (team / TEAMS_N); // the team's first row of C
    let tcol = (team % TEAMS_N) * 2u * SG_W; // its first vec4 column in the B tile
    let t = lidx;
    let slices = (kc.y - kc.x + BK - 1u) / BK;

    // Slice 0 of B into buffer 0; two slots per invocation.
    var pb0 = load_b(t, col0, kc.x, kc.y, n, k);
    var pb1 = load_b(t + THREADS, col0, kc.x, kc.y, n, k);
    stage_b(0u, t, pb0);
    stage_b(0u, t + THREADS, pb1);
    workgroupBarrier();

    // The lane's op(A) slots of the current slice and, loaded a slice ahead, the next.
    var ra = mat4x4<f32>();
    if (shuffles) {
        ra = lane_slots(lane, trow, kc.x, kc.y, m, k);
    }
    var acc: array<vec4<f32>, 16>;
    for (var s = 0u; s < slices; s++) {
        let buf = s & 1u;
        let k0 = kc.x + s * BK;
        let more = s + 1u < slices;
        // Slice s + 1 into registers now; its latency hides behind this slice's FMAs.
        var next_a = mat4x4<f32>();
        if (more) {
            pb0 = load_b(t, col0, k0 + BK, kc.y, n, k);
            pb1 = load_b(t + THREADS, col0, k0 + BK, kc.y, n, k);
            if (shuffles) {
                next_a = lane_slots(lane, trow, k0 + BK, kc.y, m, k);
            }
        }
        let b_base = buf * (BK * BN / 4u) + tcol + lane;
        if (shuffles) {
            for (var kk = 0u; kk < BK; kk++) {
                let ar = team_rows(kk, base, ra[0], ra[1], ra[2], ra[3]);
                let b_lo = tile_b[b_base + kk * (BN / 4u)];
                let b_hi = tile_b[b_base + kk * (BN / 4u) + SG_W];
                fma_tile(&acc, ar[0], ar[1], b_lo, b_hi);
            }
            ra = next_a;
        } else {
            for (var kk = 0u; kk < BK; kk++) {
                let kg = k0 + kk;
                let a_lo = vec4<f32>(
                    a_direct(trow, kg, kc.y, m, k),
                    a_direct(trow + 1u, kg, kc.y, m, k),
                    a_direct(trow + 2u, kg, kc.y, m, k),
                    a_direct(trow + 3u, kg, kc.y, m, k),
                );
                let a_hi = vec4<f32>(
                    a_direct(trow + 4u, kg, kc.y, m, k),
                    a_direct(trow + 5u, kg, kc.y, m, k),
                    a_direct(trow + 6u, kg, kc.y, m, k),
                    a_direct(trow + 7u, kg, kc.y, m, k),
                );
                let b_lo = tile_b[b_base + kk * (BN / 4u)];
                let b_hi = tile_b[b_base + kk * (BN / 4u) + SG_W];
                fma_tile(&acc, a_lo, a_hi, b_lo, b_hi);
            }
        }
        // Everyone has finished reading buffer buf ^ 1 (slice s - 1) at the previous
        // barrier, so slice s + 1 may overwrite it; the barrier below publishes it.
        if (more) {
            stage_b(buf ^ 1u, t, pb0);
            stage_b(buf ^ 1u, t + THREADS, pb1);
        }
        workgroupBarrier();
    }

    let c_lo = col0 + 4u * (tcol + lane);
    let c_hi = c_lo + 4u * SG_W;
    store4(trow, c_lo, acc[0], m, n, k);
    store4(trow, c_hi, acc[1], m, n, k);
    store4(trow + 1u, c_lo, acc[2], m, n, k);
    store4(trow + 1u, c_hi, acc[3], m, n, k);
    store4(trow + 2u, c_lo, acc[4], m, n, k);
    store4(trow + 2u, c_hi, acc[5], m, n, k);
    store4(trow + 3u, c_lo, acc[6], m, n, k);
    store4(trow + 3u, c_hi, acc[7], m, n, k);
    store4(trow + 4u, c_lo, acc[8], m, n, k);
    store4(trow + 4u, c_hi, acc[9], m, n, k);
    store4(trow + 5u, c_lo, acc[10], m, n, k);
    store4(trow + 5u, c_hi, acc[11], m, n, k);
    store4(trow + 6u, c_lo, acc[12], m, n, k);
    store4(trow + 6u, c_hi, acc[13], m, n, k);
    store4(trow + 7u, c_lo, acc[14], m, n, k);
    store4(trow + 7u, c_hi, acc[15], m, n, k);
}
