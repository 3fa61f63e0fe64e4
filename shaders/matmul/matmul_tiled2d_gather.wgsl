// matmul_tiled2d's operand A read from the u8 pixels of the minibatch (the gather fusion,
// matmul_gather.wgsl), for layer 0's forward product: A stored [M, K] (never TRANS_A; the
// host refuses it), M the minibatch.
//
// Fragment: appended after matmul_tiled2d.wgsl (src/gpu/kernels/matmul_gather.rs). Expects
// from the files before it A_VEC4, BM and what matmul_gather.wgsl provides (every block
// shape has at least BM invocations). Provides the kernel's two hooks, `a_begin` and
// `load_a`, with the f32 fragment's (matmul_tiled2d_a.wgsl) signatures and values.
//
// Each slot's row is looked up in `order` at every slice: one more load, from cache on a
// GPU, for the pixel word that replaces the vec4 of f32.

var<private> a_store: bool;

fn a_begin(col_block: u32, t: u32, row0: u32, m: u32, k: u32) {
    // Column block 0 of member 0 stores X and y (the members share them).
    let stores = col_block == 0u && mem_index == 0u;
    a_store = WRITE_X && stores;
    if (stores && t < BM && row0 + t < m) {
        y[row0 + t] = labels[sample_of(row0 + t)];
    }
}

// Slot `s` of the op(A) slice at k0 .. k0+7: row row0 + s / 2, k = k0 + 4·(s % 2) .. +3,
// zero past M and past the chunk's end `kend` (see matmul_tiled2d_a.wgsl); stored into X
// by column block 0.
fn load_a(s: u32, row0: u32, k0: u32, kend: u32, m: u32, k: u32) -> vec4<f32> {
    let r = row0 + s / 2u;
    let kk = k0 + 4u * (s % 2u);
    if (r >= m || kk >= kend) {
        return vec4<f32>();
    }
    let base = sample_of(r) * k + kk;
    var v: vec4<f32>;
    if (A_VEC4) {
        v = normalize4(word_pixels(pixels[base / 4u])); // K and kk are multiples of 4
    } else {
        let last = base - kk + kend - 1u;
        v = select(vec4<f32>(), normalize4(vec4<u32>(
            pixel(base),
            pixel(min(base + 1u, last)),
            pixel(min(base + 2u, last)),
            pixel(min(base + 3u, last)),
        )), vec4<u32>(kk) + vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(kend));
    }
    if (a_store) {
        store_x4(r, kk, kend, k, v);
    }
    return v;
}
