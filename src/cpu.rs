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

/// Softmax cross-entropy with PyTorch's `F.cross_entropy(reduction="mean")` gradient.
/// Numerically stable: the row max is subtracted before `exp`, and the loss is summed as
/// `(max - logit[label]) + ln Σ exp(logit - max)`, the order that keeps `ln Σ` when every
/// logit shares a large offset (as in the GPU kernel and the CPU engine).
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
        let (mut arg, mut mx) = (0usize, row[0]);
        for (c, &v) in row.iter().enumerate().skip(1) {
            if v > mx {
                mx = v;
                arg = c;
            }
        }
        let sum: f64 = row
            .iter()
            .map(|&v| (f64::from(v) - f64::from(mx)).exp())
            .sum();
        let label = label as usize;
        let loss = if label < classes {
            (f64::from(mx) - f64::from(row[label])) + sum.ln()
        } else {
            f64::NAN
        };
        out.loss.push(loss as f32);
        out.correct.push(arg == label);
        for (c, &v) in row.iter().enumerate() {
            let p = (f64::from(v) - f64::from(mx)).exp() / sum;
            let onehot = if c == label { 1.0 } else { 0.0 };
            out.dlogits[b * classes + c] = ((p - onehot) / batch as f64) as f32;
        }
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

/// One `torch.optim.SGD` step over a flat parameter vector (see `shaders/sgd_update.wgsl`).
/// `first` marks the first step, when the momentum buffer is set to the gradient.
/// Elements inside a `no_decay` range `[start, end)` get no weight decay.
pub fn sgd_update(
    params: &mut [f32],
    grads: &[f32],
    velocity: &mut [f32],
    cfg: &SgdConfig,
    lr: f32,
    first: bool,
    no_decay: &[(usize, usize)],
) {
    let (momentum, dampening) = (cfg.momentum as f32, cfg.dampening as f32);
    for i in 0..params.len() {
        let wd = if no_decay.iter().any(|&(s, e)| i >= s && i < e) {
            0.0
        } else {
            cfg.weight_decay as f32
        };
        let mut p = params[i];
        let mut g = grads[i];
        if cfg.decoupled_weight_decay {
            p -= lr * wd * p;
        } else {
            g += wd * p;
        }
        if momentum != 0.0 {
            let v = if first {
                g
            } else {
                momentum * velocity[i] + (1.0 - dampening) * g
            };
            velocity[i] = v;
            g = if cfg.nesterov { g + momentum * v } else { v };
        }
        params[i] = p - lr * g;
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
