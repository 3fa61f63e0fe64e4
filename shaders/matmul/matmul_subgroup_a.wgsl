// matmul_subgroup's operand A as f32 (or vec4<f32>) values in a buffer: every product but
// the gather-fused forward of layer 0 (matmul_subgroup_gather.wgsl).
//
// Fragment: prepended to matmul_subgroup.wgsl, after matmul_common.wgsl
// (src/gpu/kernels/matmul.rs). Expects `mem_a` and, from the kernel file, `mask_k`, TRANS_A
// and A_VEC4. Provides A (binding 1) and the
// kernel's two hooks: `a_begin` (nothing to do here) and `load_a`.

@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>; // whole vec4s past the end

// Element i of A, for operands whose rows are not whole vec4s.
fn a_at(i: u32) -> f32 {
    return a[mem_a / 4u + i / 4u][i % 4u];
}

// Whole vec4 `i4` of A (the member's offset included by the caller).
fn a_vec4(i4: u32) -> vec4<f32> {
    return a[i4];
}

// Called once per workgroup before the K loop (column block `col_block`); the pixel source
// sets up its rows here.
fn a_begin(col_block: u32, lane: u32, row0: u32, m: u32, k: u32) {}

// Lane `lane`'s load of op(A) for k = 4q .. 4q+3 and rows row0 + 8·half .. + 7. Either way,
// lanes 4h .. 4h+3 of the subgroup together hold rows 8·half + 4h .. + 3 at all four k.
fn load_a(q: u32, half: u32, lane: u32, row0: u32, m: u32, k: u32) -> vec4<f32> {
    if (TRANS_A) {
        // Stored [K, M]: rows r .. r+3 at k = 4q + lane % 4. Rows past the edge are clamped
        // (computed, never stored).
        let kk = 4u * q + (lane & 3u);
        let r = row0 + 8u * half + 4u * (lane >> 2u);
        let base = min(kk, k - 1u) * m;
        var v: vec4<f32>;
        if (A_VEC4) {
            v = a[mem_a / 4u + base / 4u + min(r / 4u, m / 4u - 1u)];
        } else {
            v = vec4<f32>(
                a_at(base + min(r, m - 1u)),
                a_at(base + min(r + 1u, m - 1u)),
                a_at(base + min(r + 2u, m - 1u)),
                a_at(base + min(r + 3u, m - 1u)),
            );
        }
        return select(vec4<f32>(), v, kk < k);
    }
    // Stored [M, K]: row + lane at k = 4q .. 4q+3.
    let row = min(row0 + 8u * half + lane, m - 1u);
    if (A_VEC4) {
        return a[mem_a / 4u + row * (k / 4u) + q];
    }
    let k0 = 4u * q;
    let base = row * k;
    return mask_k(vec4<f32>(
        a_at(base + min(k0, k - 1u)),
        a_at(base + min(k0 + 1u, k - 1u)),
        a_at(base + min(k0 + 2u, k - 1u)),
        a_at(base + min(k0 + 3u, k - 1u)),
    ), k0, k);
}
