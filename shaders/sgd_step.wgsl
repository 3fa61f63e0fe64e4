// sgd_step: torch.optim.SGD's arithmetic on four parameters, the one copy of it.
//
// Fragment: prepended to sgd_update.wgsl (the whole flat parameter buffer) and to the
// matmul kernels (their SgdUpdate epilogue, matmul_common.wgsl), so that the separate
// update and the update fused into a weight-gradient product run the same expressions and
// give the same bits. Provides `struct SgdHyper`, `struct SgdStep`, `sgd_step`, the
// member-step flags and `sgd_sum`; uses no binding.
//
//   g <- grad + wd * p                          (coupled weight decay, PyTorch default)
//   v <- g on the first step, else momentum * v + (1 - dampening) * g
//   g <- g + momentum * v if nesterov, else v   (only when momentum != 0)
//   p <- p - lr * g
// With `decoupled` (SGDW, Loshchilov & Hutter) the decay is p <- p - lr * wd * p instead of
// being added to the gradient.

// SGD settings (one run's, or one population member's).
struct SgdHyper {
    weight_decay: f32,
    momentum: f32,
    dampening: f32,
    nesterov: u32,
    decoupled: u32,
}

// New parameters and momentum buffer.
struct SgdStep {
    p: vec4<f32>,
    v: vec4<f32>,
}

// Member-step flags (MemberStep in src/step.rs).
const MEMBER_FIRST: u32 = 1u;
const MEMBER_FROZEN: u32 = 2u;
const MEMBER_ACCUMULATE: u32 = 4u; // add the running sum of the minibatch's earlier micro-steps
const MEMBER_DEFER: u32 = 8u;      // the minibatch goes on: keep the sum, no update

// A micro-step's gradient `g` (a mean over its rows) joined to the running sum of its member
// minibatch (MEMBER_ACCUMULATE or MEMBER_DEFER set; src/step.rs): `g · scale`, `scale` its
// rows over the minibatch's, plus `sum` (the earlier micro-steps') when `accumulate`.
// cpu::grad_sum_element is the host's copy.
fn sgd_sum(g: vec4<f32>, sum: vec4<f32>, scale: f32, accumulate: bool) -> vec4<f32> {
    let s = g * scale;
    if (accumulate) {
        return sum + s;
    }
    return s;
}

// One step for parameters `p0` with gradients `g0`, momentum buffer `v0` (read only when
// momentum != 0 and not `first`), weight decay `wd` per element and learning rate `lr`.
// `v` of the result is meaningful only when momentum != 0.
fn sgd_step(p0: vec4<f32>, g0: vec4<f32>, v0: vec4<f32>, wd: vec4<f32>, lr: f32, first: bool, h: SgdHyper) -> SgdStep {
    var p = p0;
    var g = g0;
    if (h.decoupled != 0u) {
        p = p - lr * wd * p;
    } else {
        g = g + wd * p;
    }
    var v = v0;
    if (h.momentum != 0.0) {
        v = g;
        if (!first) {
            v = h.momentum * v0 + (1.0 - h.dampening) * g;
        }
        if (h.nesterov != 0u) {
            g = g + h.momentum * v;
        } else {
            g = v;
        }
    }
    return SgdStep(p - lr * g, v);
}
