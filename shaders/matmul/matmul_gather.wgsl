// The pixel source of the gather fusion: layer 0's forward product reads its operand A,
// the minibatch X [B, I], straight from the dataset's u8 pixels,
//   A[m, i] = (pixels[order[offset + m], i] / 255 - mean) / std,
// the arithmetic of gather_normalize.wgsl, so the values (and the product) are the same
// bits. The workgroups of column block 0 of member 0 also store what they load into X
// (layer 0's weight gradient reads it; with WRITE_X off, for evaluation, they do not) and the
// labels of their rows into y (the loss reads them), so that no gather_normalize launch is
// needed. The pixels are shared by the members (operand A's member stride is 0).
//
// Fragment: prepended, after step.wgsl and matmul_common.wgsl, to the kernel files
// followed by an operand fragment reading pixels (matmul_subgroup_gather.wgsl,
// matmul_tiled2d_gather.wgsl; src/gpu/kernels/matmul_gather.rs). Expects `step` (its
// `offset`). Provides the bindings 1 (pixels, packed four per u32 word), 6 (the epoch's
// sample order), 7 (labels), 8 (X, whole vec4s), 9 (y) and 10 (the normalisation), the
// override WRITE_X, and the functions `normalize4`, `word_pixels`, `pixel`, `sample_of` and
// `store_x4`.

struct GatherParams {
    mean: f32,
    std_dev: f32,
    _pad0: u32,
    _pad1: u32,
}

// Whether column block 0 stores the normalised values into X (training) or only uses them.
override WRITE_X: bool = true;

@group(0) @binding(1) var<storage, read> pixels: array<u32>; // [N, I] u8, four per word
// Binding 6 is the kernel file's `velocity` (its SgdUpdate epilogue; unused here).
@group(0) @binding(7) var<storage, read> order: array<u32>;  // [N] sample order
@group(0) @binding(8) var<storage, read> labels: array<u32>; // [N]
@group(0) @binding(9) var<storage, read_write> x: array<vec4<f32>>; // [B, I], whole vec4s
@group(0) @binding(10) var<storage, read_write> y: array<u32>; // [B]
@group(0) @binding(11) var<uniform> gather: GatherParams;

// gather_normalize.wgsl's `normalize`, term for term.
fn normalize4(v: vec4<u32>) -> vec4<f32> {
    return (vec4<f32>(v) / 255.0 - gather.mean) / gather.std_dev;
}

// The four pixels of one word, first byte first.
fn word_pixels(word: u32) -> vec4<u32> {
    return (vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
}

// The pixel at byte `byte` of the dataset.
fn pixel(byte: u32) -> u32 {
    return (pixels[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
}

// The dataset sample at row `row` of this step's minibatch.
fn sample_of(row: u32) -> u32 {
    return order[step.offset + row];
}

// Stores X[row, kk + j] = v[j] for the j with kk + j < kend, X stored [., k]: one vec4
// store when the four are a whole vec4 of X.
fn store_x4(row: u32, kk: u32, kend: u32, k: u32, v: vec4<f32>) {
    let i = row * k + kk;
    if (k % 4u == 0u && kk + 4u <= kend) {
        x[i / 4u] = v;
        return;
    }
    if (kk < kend) {
        x[i / 4u][i % 4u] = v.x;
    }
    if (kk + 1u < kend) {
        x[(i + 1u) / 4u][(i + 1u) % 4u] = v.y;
    }
    if (kk + 2u < kend) {
        x[(i + 2u) / 4u][(i + 2u) % 4u] = v.z;
    }
    if (kk + 3u < kend) {
        x[(i + 3u) / 4u][(i + 3u) % 4u] = v.w;
    }
}

// Element i of A stored [M, K] (K = params.k): the normalised pixel, as the kernels' `a_at`
// reads an f32 A. Read by matmul_common.wgsl's SgdUpdate epilogue, which a pixel launch
// never runs (it is a forward product), but every module defines it.
fn a_at(i: u32) -> f32 {
    let k = params.k;
    return normalize4(vec4<u32>(pixel(sample_of(i / k) * k + i % k))).x;
}

// Elements 4·i4 .. 4·i4 + 3 of A stored [M, K], K a multiple of 4 (A_VEC4): one pixel word.
fn a_vec4(i4: u32) -> vec4<f32> {
    let k = params.k;
    let r = 4u * i4 / k;
    return normalize4(word_pixels(pixels[(sample_of(r) * k + 4u * i4 - r * k) / 4u]));
}
