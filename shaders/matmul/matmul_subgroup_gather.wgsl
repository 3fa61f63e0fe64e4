// matmul_subgroup's operand A read from the u8 pixels of the minibatch (the gather fusion,
// matmul_gather.wgsl), for layer 0's forward product: A stored [M, K] (never TRANS_A; the
// host refuses it), M the minibatch.
//
// Fragment: appended after matmul_subgroup.wgsl (src/gpu/kernels/matmul_gather.rs).
// Expects from the files before it `mask_k`, A_VEC4 and what matmul_gather.wgsl provides.
// Provides the kernel's two hooks, `a_begin` and `load_a`, with the f32 fragment's
// (matmul_subgroup_a.wgsl) signatures and values.
//
// A lane's loads cover rows row0 + lane and row0 + 8 + lane at every k, so `a_begin` looks
// their samples up once (two loads of `order`), and each vec4 step costs one load of a
// pixel word where the f32 source loads one vec4: the same count of load instructions.
// Column block 0 of member 0 stores each loaded vec4 into X (WRITE_X) and its rows' labels
// into y (the members of a population share X and y).

// Byte index of pixel 0 of the lane's two rows (clamped onto the last row), the rows
// themselves (unclamped), and whether this workgroup stores X.
var<private> a_pix0: u32;
var<private> a_pix1: u32;
var<private> a_row0: u32;
var<private> a_row1: u32;
var<private> a_store: bool;

fn a_begin(col_block: u32, lane: u32, row0: u32, m: u32, k: u32) {
    a_row0 = row0 + lane;
    a_row1 = row0 + 8u + lane;
    let s0 = sample_of(min(a_row0, m - 1u));
    let s1 = sample_of(min(a_row1, m - 1u));
    a_pix0 = s0 * k;
    a_pix1 = s1 * k;
    // One workgroup per row block stores: column block 0 of member 0 (the members share X).
    let stores = col_block == 0u && mem_index == 0u;
    a_store = WRITE_X && stores;
    if (stores) {
        if (a_row0 < m) {
            y[a_row0] = labels[s0];
        }
        if (a_row1 < m) {
            y[a_row1] = labels[s1];
        }
    }
}

// op(A) at k = 4q .. 4q+3 for the lane's row of half `half` (see matmul_subgroup_a.wgsl),
// zero past K; stored into X by column block 0.
fn load_a(q: u32, half: u32, lane: u32, row0: u32, m: u32, k: u32) -> vec4<f32> {
    let base = select(a_pix0, a_pix1, half == 1u);
    let row = select(a_row0, a_row1, half == 1u);
    let store = a_store && row < m;
    if (A_VEC4) {
        // K is a multiple of 4: the four pixels are one word.
        let v = normalize4(word_pixels(pixels[base / 4u + q]));
        if (store) {
            x[row * (k / 4u) + q] = v;
        }
        return v;
    }
    let k0 = 4u * q;
    let v = mask_k(normalize4(vec4<u32>(
        pixel(base + min(k0, k - 1u)),
        pixel(base + min(k0 + 1u, k - 1u)),
        pixel(base + min(k0 + 2u, k - 1u)),
        pixel(base + min(k0 + 3u, k - 1u)),
    )), k0, k);
    if (store) {
        store_x4(row, k0, k, k, v);
    }
    return v;
}
