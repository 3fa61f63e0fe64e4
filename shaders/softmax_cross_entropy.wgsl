// softmax_cross_entropy: per-row loss, correct flag and dlogits in one pass, plus the
// minibatch's loss sum and correct count reduced in a fixed order (no float atomics).
//
//   loss[b]      = (max - logits[b, y[b]]) + log(Σ_c exp(logits[b, c] - max))
//                  (logsumexp - logit of the label, summed in this order: with every logit
//                  near 1e8, `max + log(sum)` would round log(sum) away in f32)
//   correct[b]   = argmax(logits[b, :]) == y[b]                   (first maximum, as torch.argmax)
//   dlogits[b,c] = (softmax(logits[b, :])[c] - [c == y[b]]) / B   (mean reduction, as PyTorch)
//   metrics[4 + 2 * step.index] = Σ_b loss[b], metrics[5 + 2 * step.index] = Σ_b correct[b]
//
// One workgroup handles the whole minibatch: each invocation walks rows lid, lid + 256, ...
// and the partial sums meet in a tree. A label >= C gives a NaN loss, never a finite one.
// The metrics buffer starts with a 4-word status header: the first minibatch whose loss
// sum is not finite sets word 0 to 1 and word 1 to its step index; sgd_update (which binds
// the header as its status) then leaves the parameters alone, so they stay as they were
// after the last finite step. Status and metrics share a binding because lavapipe leaks
// memory on every dispatch whose bind group has 7 entries (measured: docs/performance.md).
//
// Members (K >= 1): workgroup j (the grid folded as usual) does all of the
// above for member j, whose logits, dlogits, rows and metrics start `stride_*` floats
// after member j - 1's; the labels are shared. Each member has its own status header (the
// first 4 words of its metrics), so one member's non-finite loss stops only its own SGD.
// With one member the strides are unused and this is the plain kernel, bit for bit.
//
// Fused bias gradient (training, `write_bias` = 1): after dlogits is written (a storage
// barrier makes every invocation's rows visible to the workgroup), invocation c sums
// dlogits[:, c] over the rows 0, 1, ..., B - 1 in order into dbias[c] (member j's at
// `stride_bias` floats after member j - 1's): the last layer's db = colsum(dlogits), the
// same additions in the same order as column_sum.wgsl, so the same bits, one dispatch fewer.
//
// Fused output layer (`FUSED_OUTPUT`, training): the launch first computes the logits
// itself from the last hidden activations H [B, HIDDEN] (binding 7; member j's at
// `stride_hidden · j`) and the output layer's weights W [C, HIDDEN] and bias [C] (binding
// 8: W from element 0, the bias from `params.bias_at`; member j's at `stride_layer · j`),
// instead of a separate forward matmul launch:
//
//   logits[b, c] = (Σ_k H[b, k] · W[c, k]) + bias[c]
//
// summed as every matmul variant sums one output: one fma chain over k ascending from 0,
// then the bias added (the bias epilogue), so the logits have the matmul's bits. Work item
// i (invocation lid walks i = lid, lid + 256, ...) is the block of rows 4·(i / G) .. + 3
// and classes 4·(i % G) .. + 3, G = ceil(C / 4): sixteen fma chains side by side in four
// vec4 accumulators, reading H and W as vec4s along k when HIDDEN is a multiple of 4
// (`HIDDEN_VEC4`), else element by element. The logits are written to binding 1 (so the logits buffer holds them as after
// the matmul) and a storage barrier makes them visible to the row loop below, which then
// runs unchanged.
//
// step.wgsl is prepended (the step record at group 1); this file uses `step.batch` and `step.index`, and
// declares everything of group 0 itself.

struct SoftmaxCrossEntropyParams {
    classes: u32,     // C (the pipeline constant CLASSES is what the loops use)
    write_grad: u32,  // 0 for evaluation: no dlogits
    members: u32,     // workgroups that compute (1 outside population training)
    stride_logits: u32, // floats between members' logits (and dlogits)
    stride_rows: u32,   // floats between members' rows
    stride_metrics: u32, // floats between members' metrics (each with its status header)
    write_bias: u32,  // 1: also db = colsum(dlogits) into dbias (needs write_grad)
    stride_bias: u32, // floats between members' dbias
    bias_at: u32,     // FUSED_OUTPUT: element of binding 8 where the output layer's bias starts
    stride_hidden: u32, // FUSED_OUTPUT: floats between members' H (a multiple of 4)
    stride_layer: u32,  // FUSED_OUTPUT: floats between members' output-layer parameters (a multiple of 4)
    _pad0: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxCrossEntropyParams;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>; // written with FUSED_OUTPUT
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;    // [B, 2]: loss, correct
@group(0) @binding(5) var<storage, read_write> metrics: array<f32>; // [4 + steps * 2]
@group(0) @binding(6) var<storage, read_write> dbias: array<f32>;   // [C] per member
@group(0) @binding(7) var<storage, read> hidden: array<vec4<f32>>; // FUSED_OUTPUT: H [B, HIDDEN]
@group(0) @binding(8) var<storage, read> layer: array<vec4<f32>>;  // FUSED_OUTPUT: W [C, HIDDEN], bias

const WG: u32 = 256u;

// C, fixed per pipeline: class loops with a constant bound (lavapipe leaks memory on every
// dispatch of this kernel when the bound is a uniform; docs/performance.md).
override CLASSES: u32 = 10u;
// The fused output layer (see the top): on or off, H's row width, and whether rows of H and
// W are whole vec4s (HIDDEN % 4 == 0; set by the host).
override FUSED_OUTPUT: bool = false;
override HIDDEN: u32 = 4u;
override HIDDEN_VEC4: bool = true;
var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_correct: array<f32, 256>;

fn is_finite(v: f32) -> bool {
    // Bit test rather than `v == v`, which fast-math compilers may fold away.
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

// One level of the fixed-order tree: invocation i adds in i + stride.
fn reduce_step(lid: u32, stride: u32) {
    if (lid < stride) {
        part_loss[lid] += part_loss[lid + stride];
        part_correct[lid] += part_correct[lid + stride];
    }
}

// The workgroup's member's offsets into H and binding 8, in vec4s (set before use).
var<private> mem_h4: u32;
var<private> mem_w4: u32;

// Element i of the member's H or binding 8, for rows that are not whole vec4s.
fn h_at(i: u32) -> f32 {
    return hidden[mem_h4 + i / 4u][i % 4u];
}

fn layer_at(i: u32) -> f32 {
    return layer[mem_w4 + i / 4u][i % 4u];
}

// The row of H to read for row r of a block: rows past the minibatch are clamped (their
// logits are computed, never stored).
fn h_row(r: u32, batch: u32) -> u32 {
    return min(r, batch - 1u);
}

// Classes c0 .. c0 + 3 of one row: per class one fma chain over k = 4q .. 4q + 3, in order.
fn fma_k4(acc: vec4<f32>, h: vec4<f32>, w: mat4x4<f32>) -> vec4<f32> {
    let s = fma(vec4<f32>(h.x), w[0], acc);
    let t = fma(vec4<f32>(h.y), w[1], s);
    let u = fma(vec4<f32>(h.z), w[2], t);
    return fma(vec4<f32>(h.w), w[3], u);
}

// logits[r0 + j, c0 .. c0 + 3] for j = 0 .. 3 (column j of the result; classes past C
// clamped to C - 1 and rows past the minibatch to its last row: computed, never stored).
// Per output one fma chain over k = 0, 1, ..., HIDDEN - 1 from zero, then + bias, as the
// matmul kernels sum one output. A block of 4 rows x 4 classes loads 8 vec4s per 4 k for
// 64 fmas (lavapipe pays per load instruction).
fn output_block(r0: u32, c0: u32, batch: u32) -> mat4x4<f32> {
    let c_last = CLASSES - 1u;
    let c1 = min(c0 + 1u, c_last);
    let c2 = min(c0 + 2u, c_last);
    let c3 = min(c0 + 3u, c_last);
    let r1 = h_row(r0 + 1u, batch);
    let r2 = h_row(r0 + 2u, batch);
    let r3 = h_row(r0 + 3u, batch);
    var acc0 = vec4<f32>();
    var acc1 = vec4<f32>();
    var acc2 = vec4<f32>();
    var acc3 = vec4<f32>();
    if (HIDDEN_VEC4) {
        let k4 = HIDDEN / 4u;
        for (var q = 0u; q < k4; q++) {
            // Column t: the four classes' weights at k = 4q + t.
            let w = transpose(mat4x4<f32>(
                layer[mem_w4 + c0 * k4 + q],
                layer[mem_w4 + c1 * k4 + q],
                layer[mem_w4 + c2 * k4 + q],
                layer[mem_w4 + c3 * k4 + q],
            ));
            acc0 = fma_k4(acc0, hidden[mem_h4 + r0 * k4 + q], w);
            acc1 = fma_k4(acc1, hidden[mem_h4 + r1 * k4 + q], w);
            acc2 = fma_k4(acc2, hidden[mem_h4 + r2 * k4 + q], w);
            acc3 = fma_k4(acc3, hidden[mem_h4 + r3 * k4 + q], w);
        }
    } else {
        for (var k = 0u; k < HIDDEN; k++) {
            let w = vec4<f32>(
                layer_at(c0 * HIDDEN + k),
                layer_at(c1 * HIDDEN + k),
                layer_at(c2 * HIDDEN + k),
                layer_at(c3 * HIDDEN + k),
            );
            acc0 = fma(vec4<f32>(h_at(r0 * HIDDEN + k)), w, acc0);
            acc1 = fma(vec4<f32>(h_at(r1 * HIDDEN + k)), w, acc1);
            acc2 = fma(vec4<f32>(h_at(r2 * HIDDEN + k)), w, acc2);
            acc3 = fma(vec4<f32>(h_at(r3 * HIDDEN + k)), w, acc3);
        }
    }
    let b = params.bias_at;
    let bias = vec4<f32>(layer_at(b + c0), layer_at(b + c1), layer_at(b + c2), layer_at(b + c3));
    return mat4x4<f32>(acc0 + bias, acc1 + bias, acc2 + bias, acc3 + bias);
}

// Stores classes c0 .. c0 + 3 (those below C) of one row from `v`.
fn store_logits4(at: u32, c0: u32, v: vec4<f32>) {
    logits[at] = v.x;
    if (c0 + 1u < CLASSES) {
        logits[at + 1u] = v.y;
    }
    if (c0 + 2u < CLASSES) {
        logits[at + 2u] = v.z;
    }
    if (c0 + 3u < CLASSES) {
        logits[at + 3u] = v.w;
    }
}

@compute @workgroup_size(256)
fn softmax_cross_entropy(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let member = (wid.z * nwg.y + wid.y) * nwg.x + wid.x;
    if (member >= params.members) {
        return; // the whole workgroup, before any barrier
    }
    let mem_logits = member * params.stride_logits;
    let mem_rows = member * params.stride_rows;
    let mem_metrics = member * params.stride_metrics;
    let c_n = CLASSES;
    let batch = step.batch;
    let inv_batch = 1.0 / f32(batch);
    if (FUSED_OUTPUT) {
        mem_h4 = member * params.stride_hidden / 4u;
        mem_w4 = member * params.stride_layer / 4u;
        // Work item i: rows 4·(i / G) .. + 3, classes 4·(i % G) .. + 3.
        let groups = (c_n + 3u) / 4u;
        for (var i = lid; i < ((batch + 3u) / 4u) * groups; i += WG) {
            let r0 = (i / groups) * 4u;
            let c0 = (i % groups) * 4u;
            let v = output_block(r0, c0, batch);
            let at = mem_logits + r0 * c_n + c0;
            store_logits4(at, c0, v[0]);
            if (r0 + 1u < batch) {
                store_logits4(at + c_n, c0, v[1]);
            }
            if (r0 + 2u < batch) {
                store_logits4(at + 2u * c_n, c0, v[2]);
            }
            if (r0 + 3u < batch) {
                store_logits4(at + 3u * c_n, c0, v[3]);
            }
        }
        // Every row's logits visible to the invocation that takes the row below.
        storageBarrier();
    }
    var loss_sum = 0.0;
    var correct_sum = 0.0;
    for (var r = lid; r < batch; r += WG) {
        let base = mem_logits + r * c_n;
        var mx = logits[base];
        var arg = 0u;
        for (var c = 1u; c < c_n; c++) {
            let v = logits[base + c];
            if (v > mx) {
                mx = v;
                arg = c;
            }
        }
        var sum = 0.0;
        for (var c = 0u; c < c_n; c++) {
            sum += exp(logits[base + c] - mx);
        }
        let label = labels[r];
        var loss = bitcast<f32>(0x7fc00000u);
        if (label < c_n) {
            loss = (mx - logits[base + label]) + log(sum);
        }
        let hit = select(0.0, 1.0, arg == label);
        rows[mem_rows + 2u * r] = loss;
        rows[mem_rows + 2u * r + 1u] = hit;
        loss_sum += loss;
        correct_sum += hit;
        if (params.write_grad != 0u) {
            let inv_sum = 1.0 / sum;
            for (var c = 0u; c < c_n; c++) {
                let p = exp(logits[base + c] - mx) * inv_sum;
                dlogits[base + c] = (p - select(0.0, 1.0, c == label)) * inv_batch;
            }
        }
    }
    // dlogits of every row visible to the whole workgroup (for the fused bias gradient).
    storageBarrier();
    part_loss[lid] = loss_sum;
    part_correct[lid] = correct_sum;
    // The tree is unrolled: lavapipe leaks memory on every dispatch of a shader whose
    // barrier sits inside a loop (about 0.8 MB per dispatch, measured; see
    // docs/performance.md), and unrolled barriers cost nothing elsewhere.
    workgroupBarrier();
    reduce_step(lid, 128u);
    workgroupBarrier();
    reduce_step(lid, 64u);
    workgroupBarrier();
    reduce_step(lid, 32u);
    workgroupBarrier();
    reduce_step(lid, 16u);
    workgroupBarrier();
    reduce_step(lid, 8u);
    workgroupBarrier();
    reduce_step(lid, 4u);
    workgroupBarrier();
    reduce_step(lid, 2u);
    workgroupBarrier();
    reduce_step(lid, 1u);
    workgroupBarrier();
    if (lid == 0u) {
        let total = part_loss[0];
        metrics[mem_metrics + 4u + 2u * step.index] = total;
        metrics[mem_metrics + 5u + 2u * step.index] = part_correct[0];
        if (!is_finite(total) && metrics[mem_metrics] == 0.0) {
            metrics[mem_metrics] = 1.0;
            metrics[mem_metrics + 1u] = bitcast<f32>(step.index);
        }
    }
    if (params.write_grad != 0u && params.write_bias != 0u) {
        let mem_bias = member * params.stride_bias;
        for (var c = lid; c < c_n; c += WG) {
            var acc = 0.0;
            for (var r = 0u; r < batch; r++) {
                acc += dlogits[mem_logits + r * c_n + c];
            }
            dbias[mem_bias + c] = acc;
        }
    }
}
