// matmul: C[M, N] = op(A)[M, K] · op(B)[K, N], then an epilogue.
//
// Fragment: prepended, after step.wgsl, to matmul.wgsl and to matmul_subgroup.wgsl.
// Expects from step.wgsl: `step` (its `batch`). Provides: `struct MatmulParams` and
// `params` (binding 0), `bias` (binding 3), `mask` (binding 4), the overrides TRANS_A,
// TRANS_B, TRANS_C and EPILOGUE, and the functions `dims`, `k_chunk`, `accumulates`,
// `finishes`, `c_index` and `epilogue`. Expects from the kernel file after it: A, B and C at
// bindings 1, 2 and 5 (f32 or vec4<f32> elements, the kernel's choice).
//
// Storage is row-major. op(A) = A stored [M, K], or A stored [K, M] when TRANS_A.
// op(B) = B stored [K, N], or B stored [N, K] when TRANS_B. The transposes the MLP needs:
//   forward   Y  = X · Wᵀ          (TRANS_B)          epilogue bias (+ ReLU)
//   backward  dX = dY · W           (none)             epilogue ReLU mask of the forward output
//   weights   dW = dYᵀ · X          (TRANS_A)
// With TRANS_C, C is stored [N, M] (epilogue must be none).
// Epilogues (EPILOGUE): 0 none, 1 + bias[n], 2 max(0, · + bias[n]), 3 · ⊙ [mask[m, n] > 0].
// When `batch_dim` is 1 (2), M (K) is the minibatch size of the current step record, so
// the last partial minibatch reuses the same dispatch and buffers.
//
// Split K: on adapters whose shaders stop every loop after a fixed number of iterations
// (llvmpipe: 65,535 per invocation, all loops together), the host splits a long K into
// chunks run as consecutive dispatches, in order. A dispatch sums k in
// [k_begin, min(k_end, K)); the first chunk (k_begin = 0) stores its sum, each later one
// adds its own to what C holds, and the chunk that reaches K applies the epilogue. With
// one chunk (k_begin = 0, k_end = K) this is the plain kernel, bit for bit.
//
// `matmul.wgsl` holds the scalar-load kernels (register, tiled, rows) and
// `matmul_subgroup.wgsl` the vec4 one with subgroup broadcasts. All kernels take the same
// bind group.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    batch_dim: u32,
    k_begin: u32, // this dispatch's chunk of K: [k_begin, min(k_end, K))
    k_end: u32,
    _pad0: u32,
    _pad1: u32,
}

override TRANS_A: bool = false;
override TRANS_B: bool = false;
override EPILOGUE: u32 = 0u;
// C is stored transposed, `[N, M]`: lets a weight gradient dW [O, I] be computed as
// (Xᵀ · dZ)ᵀ, putting the long I dimension on the rows a workgroup shares.
override TRANS_C: bool = false;

@group(0) @binding(0) var<uniform> params: MatmulParams;
// Bindings 1 (A), 2 (B) and 5 (C) are declared by each kernel file: f32 or vec4<f32>
// elements.
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> mask: array<f32>;

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

// This dispatch's chunk of K, `[x, y)`: empty when an earlier chunk already reached K.
fn k_chunk(k: u32) -> vec2<u32> {
    return vec2<u32>(params.k_begin, min(params.k_end, k));
}

// True when earlier chunks stored partial sums that this one adds to.
fn accumulates() -> bool {
    return params.k_begin > 0u;
}

// True when this chunk completes the sum: the epilogue runs here.
fn finishes(k: u32) -> bool {
    return params.k_end >= k;
}

// Index of C[row, col] in `c`.
fn c_index(row: u32, col: u32, m: u32, n: u32) -> u32 {
    if (TRANS_C) {
        return col * m + row;
    }
    return row * n + col;
}

fn epilogue(v: f32, row: u32, col: u32, n: u32) -> f32 {
    switch EPILOGUE {
        case 1u: {
            return v + bias[col];
        }
        case 2u: {
            return max(v + bias[col], 0.0);
        }
        case 3u: {
            return select(0.0, v, mask[row * n + col] > 0.0);
        }
        default: {
            return v;
        }
    }
}

