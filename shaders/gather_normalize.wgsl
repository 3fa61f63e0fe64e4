// gather_normalize: X[b, i] = (pixels[order[offset + b], i] / 255 - mean) / std, y[b] = label.
//
// The dataset stays resident on the GPU as packed u8 (four pixels per u32 word), so the
// MNIST training set costs 47 MB instead of 188 MB as f32. One invocation per four output
// elements: when a sample's pixels fill whole words (features % 4 == 0, as for MNIST), they
// are one sample's four pixels from one word, written as one vec4, so three memory
// instructions serve four elements (on lavapipe each costs a loop over the lanes). The grid
// folds into y past the 65,535-workgroup limit (flat id = (wg.z * nwg.y + wg.y) * nwg.x + wg.x).
//
// step.wgsl is prepended (the step record at group 1); this file uses `step.offset` and `step.batch`, and
// declares everything of group 0 itself.

struct GatherNormalizeParams {
    features: u32,   // I: pixels per sample
    mean: f32,
    std_dev: f32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: GatherNormalizeParams;
@group(0) @binding(1) var<storage, read> pixels: array<u32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read> order: array<u32>;
@group(0) @binding(4) var<storage, read_write> x: array<vec4<f32>>; // [B, I], whole vec4s
@group(0) @binding(5) var<storage, read_write> y: array<u32>;

const WG: u32 = 64u;

fn normalize(v: vec4<u32>) -> vec4<f32> {
    return (vec4<f32>(v) / 255.0 - params.mean) / params.std_dev;
}

fn pixel(sample: u32, f: u32) -> u32 {
    let byte = sample * params.features + f;
    return (pixels[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
}

@compute @workgroup_size(64)
fn gather_normalize(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let q = ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * WG + lid; // elements 4q .. 4q+3
    let total = step.batch * params.features;
    let i = 4u * q;
    if (i >= total) {
        return;
    }
    if (params.features % 4u == 0u) {
        let b = i / params.features;
        let f = i - b * params.features;
        let sample = order[step.offset + b];
        let word = pixels[(sample * params.features + f) >> 2u];
        let bytes = (vec4<u32>(word) >> vec4<u32>(0u, 8u, 16u, 24u)) & vec4<u32>(0xffu);
        x[q] = normalize(bytes);
        if (f == 0u) {
            y[b] = labels[sample];
        }
        return;
    }
    // Samples straddle words: element by element.
    for (var e = i; e < min(i + 4u, total); e++) {
        let b = e / params.features;
        let f = e - b * params.features;
        let sample = order[step.offset + b];
        x[q][e - i] = normalize(vec4<u32>(pixel(sample, f))).x;
        if (f == 0u) {
            y[b] = labels[sample];
        }
    }
}
