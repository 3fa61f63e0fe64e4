//! The CPU reference: every GPU kernel as plain loops, with the same shapes and the same
//! math, accumulated in f64. It is the specification the GPU kernels are tested against
//! and, through [`loss_and_gradients`], the oracle for finite-difference checks. It is
//! written for clarity, not speed; the fast CPU training path is [`crate::cpu_engine`].
//!
//! Dimension letters: `B` minibatch, `I` in features, `O` out features, `C` classes,
//! `M`, `N`, `K` the matmul sizes. Every matrix is row-major.

use crate::model::ParamLayout;
use crate::optim::SgdConfig;

/// `C [M, N] = op(A) · op(B)`, op(A) = A `[M, K]` or, with `trans_a`, A stored `[K, M]`;
/// op(B) = B `[K, N]` or, with `trans_b`, B stored `[N, K]`. f64 accumulation.
pub fn matmul(
    a: &[f32],
    b: &[f32],
    m: usize,
    n: usize,
    k: usize,
    trans_a: bool,
    trans_b: bool,
) -> Vec<f32> {
    assert!(
        a.len() >= m * k && b.len() >= k * n,
        "matmul operands shorter than {m}x{n}x{k}"
    );
    let mut c = vec![0.0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut acc = 0.0f64;
            for p in 0..k {
                let av = if trans_a { a[p * m + i] } else { a[i * k + p] };
                let bv = if trans_b { b[j * k + p] } else { b[p * n + j] };
                acc += f64::from(av) * f64::from(bv);
            }
            c[i * n + j] = acc as f32;
        }
    }
    c
}

/// `y [M, N] += bias [N]`, then `max(0, ·)` when `relu`.
pub fn bias_relu_forward(y: &mut [f32], bias: &[f32], n: usize, relu: bool) {
    for row in y.chunks_mut(n) {
        for (v, b) in row.iter_mut().zip(bias) {
            *v += b;
            if relu {
                *v = v.max(0.0);
            }
        }
    }
}

/// `dx = dy ⊙ [h > 0]`, all `[M, N]`.
pub fn relu_backward(dy: &[f32], h: &[f32]) -> Vec<f32> {
    dy.iter()
        .zip(h)
        .map(|(&d, &hv)| if hv > 0.0 { d } else { 0.0 })
        .collect()
}

/// `out [N] = Σ_m x [M, N]` (f64 accumulation).
pub fn column_sum(x: &[f32], m: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|j| (0..m).map(|i| f64::from(x[i * n + j])).sum::<f64>() as f32)
        .collect()
}

/// Output of [`softmax_cross_entropy`] for a minibatch of `B` rows and `C` classes.
#[derive(Clone, Debug, PartialEq)]
pub struct SoftmaxCrossEntropy {
    /// `[B]`: `logsumexp(logits[b]) - logits[b, y[b]]`; NaN for a label `>= C`.
    pub loss: Vec<f32>,
    /// `[B]`: `argmax(logits[b]) == y[b]` (first maximum, as `torch.argmax`).
    pub correct: Vec<bool>,
    /// `[B, C]`: `(softmax(logits[b]) - onehot(y[b])) / B`, the gradient of the mean loss.
    pub dlogits: Vec<f32>,
}

/// The float type the softmax-cross-entropy row math runs in ([`softmax_cross_entropy_row`]):
/// f64 in this reference, f32 in [`crate::cpu_engine`] (which matches the GPU kernel's
/// precision). Only what the row math needs.
pub trait RowFloat:
    Copy
    + From<f32>
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Div<Output = Self>
    + std::iter::Sum
{
    /// Not a number: the loss of a row whose label is `>= C`.
    const NAN: Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
}

impl RowFloat for f32 {
    const NAN: Self = f32::NAN;
    fn exp(self) -> Self {
        f32::exp(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
}

impl RowFloat for f64 {
    const NAN: Self = f64::NAN;
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
}

/// Softmax cross-entropy of one row of `C` logits, computed in `F` ([`RowFloat`]): what
/// [`softmax_cross_entropy_row`] returns and [`SoftmaxCrossEntropyRow::gradient`] reuses.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SoftmaxCrossEntropyRow<F> {
    /// The row's largest logit (the first, on ties).
    pub max: f32,
    /// `Σ_c exp(logit[c] - max)`, summed in class order.
    pub sum_exp: F,
    /// `(max - logit[label]) + ln sum_exp`; NaN for a label `>= C`.
    pub loss: F,
    /// `argmax(logits) == label`, the first maximum winning ties (as `torch.argmax`).
    pub correct: bool,
    /// The row's label as an index (may be `>= C`).
    pub label: usize,
}

/// Loss and correct flag of one row of `C` logits with label `label`, in `F`: f64 in the
/// reference ([`softmax_cross_entropy`]), f32 in the CPU engine. Numerically stable: the
/// row max is subtracted before `exp`, and the loss is summed as
/// `(max - logit[label]) + ln Σ exp(logit - max)`, the order that keeps `ln Σ` when every
/// logit shares a large offset (as in the GPU kernel).
pub fn softmax_cross_entropy_row<F: RowFloat>(
    row: &[f32],
    label: u32,
) -> SoftmaxCrossEntropyRow<F> {
    let (mut arg, mut max) = (0usize, row[0]);
    for (c, &v) in row.iter().enumerate().skip(1) {
        if v > max {
            max = v;
            arg = c;
        }
    }
    let sum_exp: F = row.iter().map(|&v| (F::from(v) - F::from(max)).exp()).sum();
    let label = label as usize;
    let loss = if label < row.len() {
        (F::from(max) - F::from(row[label])) + sum_exp.ln()
    } else {
        F::NAN
    };
    SoftmaxCrossEntropyRow {
        max,
        sum_exp,
        loss,
        correct: arg == label,
        label,
    }
}

impl<F: RowFloat> SoftmaxCrossEntropyRow<F> {
    /// Writes `dlogits[c] = scale(softmax(row)[c] - onehot(label)[c])` for every class `c`
    /// of `row` (the logits this was computed from). `scale` applies the mean reduction's
    /// `1 / B` and rounds to f32; each caller keeps its own rounding (the reference divides
    /// in f64, the CPU engine multiplies by an f32 `1 / B`).
    pub fn gradient(&self, row: &[f32], dlogits: &mut [f32], scale: impl Fn(F) -> f32) {
        for (c, (d, &v)) in dlogits.iter_mut().zip(row).enumerate() {
            let onehot = F::from(if c == self.label { 1.0 } else { 0.0 });
            *d = scale((F::from(v) - F::from(self.max)).exp() / self.sum_exp - onehot);
        }
    }
}

/// Softmax cross-entropy with PyTorch's `F.cross_entropy(reduction="mean")` gradient, row
/// by row ([`softmax_cross_entropy_row`]) in f64.
pub fn softmax_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> SoftmaxCrossEntropy {
    let batch = labels.len();
    let mut out = SoftmaxCrossEntropy {
        loss: Vec::with_capacity(batch),
        correct: Vec::with_capacity(batch),
        dlogits: vec![0.0; batch * classes],
    };
    for (b, &label) in labels.iter().enumerate() {
        let row = &logits[b * classes..(b + 1) * classes];
        let r = softmax_cross_entropy_row::<f64>(row, label);
        out.loss.push(r.loss as f32);
        out.correct.push(r.correct);
        r.gradient(row, &mut out.dlogits[b * classes..(b + 1) * classes], |d| {
            (d / batch as f64) as f32
        });
    }
    out
}

/// Gathers `batch` samples at `order[offset..]` from a u8 dataset `[N, I]`:
/// returns `x [B, I] = (pixel / 255 - mean) / std` and `y [B]`.
pub fn gather_normalize(
    pixels: &[u8],
    labels: &[u32],
    features: usize,
    order: &[u32],
    offset: usize,
    batch: usize,
    mean: f32,
    std: f32,
) -> (Vec<f32>, Vec<u32>) {
    let mut x = Vec::with_capacity(batch * features);
    let mut y = Vec::with_capacity(batch);
    for &s in &order[offset..offset + batch] {
        let s = s as usize;
        x.extend(
            pixels[s * features..(s + 1) * features]
                .iter()
                .map(|&p| (f32::from(p) / 255.0 - mean) / std),
        );
        y.push(labels[s]);
    }
    (x, y)
}

/// The constants of one `torch.optim.SGD` step, in f32 as every kernel computes them
/// (see `shaders/sgd_update.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep {
    /// Learning rate of this step.
    pub lr: f32,
    /// Momentum factor μ (0: plain SGD, no momentum buffer).
    pub momentum: f32,
    /// Dampening of the gradient in the momentum buffer.
    pub dampening: f32,
    /// Nesterov momentum: step along `g + μ·v` instead of `v`.
    pub nesterov: bool,
    /// SGDW: decay the parameter (`p *= 1 - lr·wd`) rather than the gradient.
    pub decoupled: bool,
    /// The run's first optimizer step: the momentum buffer starts as the gradient.
    pub first: bool,
}

impl SgdStep {
    /// The step of `cfg` with learning rate `lr`; `first` marks the run's first step.
    pub fn new(cfg: &SgdConfig, lr: f32, first: bool) -> SgdStep {
        SgdStep {
            lr,
            momentum: cfg.momentum as f32,
            dampening: cfg.dampening as f32,
            nesterov: cfg.nesterov,
            decoupled: cfg.decoupled_weight_decay,
            first,
        }
    }
}

/// One `torch.optim.SGD` step of one parameter `param` with gradient `grad`, momentum
/// buffer `velocity` (untouched without momentum) and weight decay `weight_decay`:
/// `g = grad + wd·p` (coupled) or `p = p - lr·wd·p` (decoupled, SGDW);
/// `v = g` on the first step, else `μ·v + (1 - dampening)·g`; the update is `g + μ·v`
/// with nesterov, else `v` (just `g` without momentum); `p = p - lr·update`.
#[inline]
pub fn sgd_update_element(
    step: &SgdStep,
    param: &mut f32,
    grad: f32,
    velocity: &mut f32,
    weight_decay: f32,
) {
    let (lr, mu) = (step.lr, step.momentum);
    let mut p = *param;
    let mut g = grad;
    if step.decoupled {
        p -= lr * weight_decay * p;
    } else {
        g += weight_decay * p;
    }
    if mu != 0.0 {
        let v = if step.first {
            g
        } else {
            mu * *velocity + (1.0 - step.dampening) * g
        };
        *velocity = v;
        g = if step.nesterov { g + mu * v } else { v };
    }
    *param = p - lr * g;
}

/// A micro-step's gradient element `grad` (a mean over its rows) joined to the running sum
/// of its member minibatch: `grad · scale` (`scale` = its rows over the minibatch's), plus
/// `sum` when `accumulate` (the minibatch's earlier micro-steps). The arithmetic of
/// `sgd_sum` in `shaders/sgd_step.wgsl` (see [`crate::step::MemberStep`]).
#[inline]
pub fn grad_sum_element(grad: f32, sum: f32, scale: f32, accumulate: bool) -> f32 {
    let g = grad * scale;
    if accumulate { sum + g } else { g }
}

/// One `torch.optim.SGD` step over a flat parameter vector ([`sgd_update_element`] per
/// element). `first` marks the first step, when the momentum buffer is set to the
/// gradient. Elements inside a `no_decay` range `[start, end)` get no weight decay.
pub fn sgd_update(
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    cfg: &SgdConfig,
    lr: f32,
    first: bool,
    no_decay: &[(usize, usize)],
) {
    let step = SgdStep::new(cfg, lr, first);
    for i in 0..params.len() {
        let wd = if no_decay.iter().any(|&(s, e)| i >= s && i < e) {
            0.0
        } else {
            cfg.weight_decay as f32
        };
        sgd_update_element(&step, &mut params[i], grads[i], &mut velocity[i], wd);
    }
}

/// Activations of one forward pass: `inputs[l]` is layer l's input `[B, I_l]`;
/// the last entry of `outputs` is the logits `[B, C]`.
pub struct Forward {
    pub inputs: Vec<Vec<f32>>,
    pub logits: Vec<f32>,
}

/// Forward pass of the MLP described by `layout` on `x [B, I]` (ReLU between layers).
pub fn forward(layout: &ParamLayout, params: &[f32], x: &[f32], batch: usize) -> Forward {
    let mut inputs = vec![x.to_vec()];
    let last = layout.layers.len() - 1;
    for (l, s) in layout.layers.iter().enumerate() {
        let w = &params[s.weight..s.weight + s.outputs * s.inputs];
        let mut y = matmul(&inputs[l], w, batch, s.outputs, s.inputs, false, true);
        bias_relu_forward(
            &mut y,
            &params[s.bias..s.bias + s.outputs],
            s.outputs,
            l < last,
        );
        inputs.push(y);
    }
    let logits = inputs.pop().unwrap_or_default();
    Forward { inputs, logits }
}

/// Mean loss, correct count and the gradient of the mean loss with respect to every
/// parameter (flat, same layout as `params`; padding stays zero).
pub fn loss_and_gradients(
    layout: &ParamLayout,
    params: &[f32],
    x: &[f32],
    y: &[u32],
) -> (f64, usize, Vec<f32>) {
    let batch = y.len();
    let fwd = forward(layout, params, x, batch);
    let classes = layout.layers.last().map_or(0, |s| s.outputs);
    let sce = softmax_cross_entropy(&fwd.logits, y, classes);
    let mut grads = vec![0.0f32; layout.len];
    let mut dz = sce.dlogits;
    for (l, s) in layout.layers.iter().enumerate().rev() {
        let input = &fwd.inputs[l];
        let dw = matmul(&dz, input, s.outputs, s.inputs, batch, true, false);
        grads[s.weight..s.weight + dw.len()].copy_from_slice(&dw);
        let db = column_sum(&dz, batch, s.outputs);
        grads[s.bias..s.bias + db.len()].copy_from_slice(&db);
        if l > 0 {
            let w = &params[s.weight..s.weight + s.outputs * s.inputs];
            let dh = matmul(&dz, w, batch, s.inputs, s.outputs, false, false);
            dz = relu_backward(&dh, input);
        }
    }
    let loss = sce.loss.iter().map(|&v| f64::from(v)).sum::<f64>() / batch as f64;
    let correct = sce.correct.iter().filter(|&&c| c).count();
    (loss, correct, grads)
}
