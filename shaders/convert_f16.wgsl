// convert_f16: dst[i] = f16(clamp(src[i], -65504, 65504)), an f32 buffer's f16 copy.
//
// Fragment: f16.wgsl and step.wgsl are prepended (src/gpu/kernels/convert_f16.rs). Expects
// `step` (its `batch`). The copy saturates at f16's largest finite value, ±65504, rather
// than leaving an out-of-range value to the implementation (WGSL makes it indeterminate).
// Rounding: WGSL lets the conversion round to either neighbour (on lavapipe: to nearest).
//
// With `row_len` > 0 the buffer holds rows of `row_len` elements and only the current
// minibatch's rows are copied: `min(len, step.batch * row_len)` elements; with 0, all `len`.

struct ConvertF16Params {
    len: u32,
    row_len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: ConvertF16Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f16>;

const F16_MAX: f32 = 65504.0;

@compute @workgroup_size(256)
fn convert_f16(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    var n = params.len;
    if (params.row_len > 0u) {
        n = min(n, step.batch * params.row_len);
    }
    let i = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 256u + lid;
    if (i >= n) {
        return;
    }
    dst[i] = f16(clamp(src[i], -F16_MAX, F16_MAX));
}
