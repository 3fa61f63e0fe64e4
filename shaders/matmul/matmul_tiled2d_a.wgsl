// matmul_tiled2d's operand A as f32 values in a buffer, read as vec4s: every product but
// the gather-fused forward of layer 0 (matmul_tiled2d_gather.wgsl).
//
// Fragment: prepended to matmul_tiled2d.wgsl, after matmul_common.wgsl
// (src/gpu/kernels/matmul.rs). Expects `mem_a` and, from the kernel file, TRANS_A, A_VEC4
// and BM. Provides A (binding 1) and the
// kernel's two hooks: `a_begin` (nothing to do here) and `load_a`.

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>; // whole vec4s past the end

fn a_at(i: u32) -> f32 {
    return a[mem_a / 4u + i / 4u][i % 4u];
}

// Called once per workgroup before the first slice (column block `col_block`, invocation
// `t`); the pixel source sets up its rows here.
fn a_begin(col_block: u32, t: u32, row0: u32, m: u32, k: u32) {}

// Slot `s` (0 .. 2·BM) of the op(A) slice at k0 .. k0+7: four values along A's contiguous
// axis. Stored [K, M]: k = k0 + s / (BM/4), rows 4·(s % (BM/4)) .. +3. Stored [M, K]:
// row s / 2, k = k0 + 4·(s % 2) .. +3. Zero past M and past the chunk's end `kend`.
fn load_a(s: u32, row0: u32, k0: u32, kend: u32, m: u32, k: u32) -> vec4<f32> {
    if (TRANS_A) {
        let kk = k0 + s / (BM / 4u);
        let r = row0 + 4u * (s % (BM / 4u));
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
