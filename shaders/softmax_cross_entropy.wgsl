// softmax_cross_entropy: per-row loss, correct flag and dlogits in one pass, plus the
// minibatch's loss sum and correct count reduced in a fixed order (no float atomics).
//
//   loss[b]      = logsumexp(logits[b, :]) - logits[b, y[b]]      (row max subtracted first)
//   correct[b]   = argmax(logits[b, :]) == y[b]                   (first maximum, as torch.argmax)
//   dlogits[b,c] = (softmax(logits[b, :])[c] - [c == y[b]]) / B   (mean reduction, as PyTorch)
//   metrics[2 * step.index] = Σ_b loss[b], metrics[2 * step.index + 1] = Σ_b correct[b]
//
// One workgroup handles the whole minibatch: each invocation walks rows lid, lid + 256, ...
// and the partial sums meet in a tree. A label >= C gives a NaN loss, never a finite one.
// The first minibatch whose loss sum is not finite sets status[0] = 1 and status[1] = its
// step index; sgd_update then leaves the parameters alone, so they stay as they were
// after the last finite step.

struct SoftmaxParams {
    classes: u32,     // C
    write_grad: u32,  // 0 for evaluation: no dlogits
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    offset: u32,
    batch: u32,
    lr: f32,
    first: u32,
    index: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: SoftmaxParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<u32>;
@group(0) @binding(3) var<storage, read_write> dlogits: array<f32>;
@group(0) @binding(4) var<storage, read_write> rows: array<f32>;    // [B, 2]: loss, correct
@group(0) @binding(5) var<storage, read_write> metrics: array<f32>; // [steps, 2]
@group(0) @binding(6) var<storage, read_write> status: array<u32>;  // [2]
@group(1) @binding(0) var<uniform> step: Step;

const WG: u32 = 256u;
var<workgroup> part_loss: array<f32, 256>;
var<workgroup> part_correct: array<f32, 256>;

fn is_finite(v: f32) -> bool {
    // Bit test rather than `v == v`, which fast-math compilers may fold away.
    return (bitcast<u32>(v) & 0x7f800000u) != 0x7f800000u;
}

@compute @workgroup_size(256)
fn softmax_cross_entropy(@builtin(local_invocation_index) lid: u32) {
    let c_n = params.classes;
    let batch = step.batch;
    let inv_batch = 1.0 / f32(batch);
    var loss_sum = 0.0;
    var correct_sum = 0.0;
    for (var r = lid; r < batch; r += WG) {
        let base = r * c_n;
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
            loss = mx + log(sum) - logits[base + label];
        }
        let hit = select(0.0, 1.0, arg == label);
        rows[2u * r] = loss;
        rows[2u * r + 1u] = hit;
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
    part_loss[lid] = loss_sum;
    part_correct[lid] = correct_sum;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            part_loss[lid] += part_loss[lid + stride];
            part_correct[lid] += part_correct[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let total = part_loss[0];
        metrics[2u * step.index] = total;
        metrics[2u * step.index + 1u] = part_correct[0];
        if (!is_finite(total) && status[0] == 0u) {
            status[0] = 1u;
            status[1] = step.index;
        }
    }
}
