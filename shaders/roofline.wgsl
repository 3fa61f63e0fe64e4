// roofline: the two probe kernels behind the roofline peaks (src/gpu/roofline.rs): memory
// bandwidth from a copy, f32 throughput from chains of fmas. Neither is a training kernel.
//
// roofline_copy: dst[i] = src[i] for the `n4` vec4s of src. Invocation t of the grid's
// `threads` copies vec4s t, t + threads, t + 2·threads, ... (a grid-stride loop:
// neighbouring invocations touch neighbouring vec4s), so each invocation runs
// ceil(n4 / threads) loop passes, under an adapter's loop cap. vec4 loads and stores:
// lavapipe costs every storage access per instruction, not per byte.
//
// roofline_fma: invocation t runs 8 independent vec4 chains (32 f32 lanes) of 4·`iters`
// rounds acc = fma(acc, a, b) (4 per loop pass) and stores their sum, in the order
// acc0 + acc1 + ... + acc7, to dst[t]. Chain j lane c starts at f32(t & 1023) + (4·j + c)
// / 32, exact in f32, so a test can recompute every output on the CPU. `a` and `b` come from
// the uniform, so no compiler can fold the chains; 8 independent chains keep the FMA pipes
// busy. 4 rounds per pass: lavapipe keeps loop variables in memory and pays for each pass
// (measured: 1 round per pass 14-16 GFLOP/s, 2: 26-30, 4: 35-55, 8 or 16: 29-43).
//
// step.wgsl is prepended (the step record at group 1, unused here); this file declares
// everything of group 0 itself.

struct RooflineParams {
    n4: u32,      // roofline_copy: vec4s to copy
    threads: u32, // invocations that work: the copy's stride, the fma outputs
    iters: u32,   // roofline_fma: loop passes, 4 rounds of each chain each
    _pad0: u32,
    a: f32,       // roofline_fma: acc = fma(acc, a, b)
    b: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: RooflineParams;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;

fn invocation(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return ((wid.z * nwg.y + wid.y) * nwg.x + wid.x) * 64u + lid;
}

@compute @workgroup_size(64)
fn roofline_copy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = invocation(wid, nwg, lid);
    if (t >= params.threads) {
        return;
    }
    for (var i = t; i < params.n4; i += params.threads) {
        dst[i] = src[i];
    }
}

@compute @workgroup_size(64)
fn roofline_fma(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = invocation(wid, nwg, lid);
    if (t >= params.threads) {
        return;
    }
    let a = vec4<f32>(params.a);
    let b = vec4<f32>(params.b);
    let base = vec4<f32>(f32(t & 1023u));
    let lanes = vec4<f32>(0.0, 1.0, 2.0, 3.0) * 0.03125;
    var acc0 = base + lanes;
    var acc1 = base + lanes + 0.125;
    var acc2 = base + lanes + 0.25;
    var acc3 = base + lanes + 0.375;
    var acc4 = base + lanes + 0.5;
    var acc5 = base + lanes + 0.625;
    var acc6 = base + lanes + 0.75;
    var acc7 = base + lanes + 0.875;
    for (var r = 0u; r < params.iters; r++) {
        acc0 = fma(fma(fma(fma(acc0, a, b), a, b), a, b), a, b);
        acc1 = fma(fma(fma(fma(acc1, a, b), a, b), a, b), a, b);
        acc2 = fma(fma(fma(fma(acc2, a, b), a, b), a, b), a, b);
        acc3 = fma(fma(fma(fma(acc3, a, b), a, b), a, b), a, b);
        acc4 = fma(fma(fma(fma(acc4, a, b), a, b), a, b), a, b);
        acc5 = fma(fma(fma(fma(acc5, a, b), a, b), a, b), a, b);
        acc6 = fma(fma(fma(fma(acc6, a, b), a, b), a, b), a, b);
        acc7 = fma(fma(fma(fma(acc7, a, b), a, b), a, b), a, b);
    }
    dst[t] = acc0 + acc1 + acc2 + acc3 + acc4 + acc5 + acc6 + acc7;
}
