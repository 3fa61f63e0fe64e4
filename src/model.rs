//! The MLP: layer sizes, where each layer's parameters sit in one flat buffer, and
//! PyTorch `nn.Linear` initialisation.
//!
//! Parameters live in one flat f32 buffer so that one SGD dispatch updates them all. Each
//! layer contributes `weight [O, I]` then `bias [O]` (PyTorch `nn.Linear` layout), each
//! starting on a multiple of [`PARAM_ALIGN`] floats (256 bytes) so it can be bound on its own
//! as a storage buffer range on any adapter. Padding is zero and stays zero.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use crate::data::Normalization;
use crate::error::{Error, Result};

/// Alignment of each parameter tensor in the flat buffer, in f32 elements (256 bytes, the
/// largest `min_storage_buffer_offset_alignment` WebGPU allows).
pub const PARAM_ALIGN: usize = 64;

/// An MLP `I -> H1 -> ... -> C` with ReLU between layers (`nn.Sequential(Linear, ReLU, ...,
/// Linear)`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MlpSpec {
    /// `[I, H1, ..., C]`.
    pub sizes: Vec<usize>,
}

/// Where one `nn.Linear` lives in the flat buffer (offsets in f32 elements).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerSlot {
    pub inputs: usize,
    pub outputs: usize,
    /// Offset of `weight [outputs, inputs]`.
    pub weight: usize,
    /// Offset of `bias [outputs]`.
    pub bias: usize,
}

/// The flat parameter buffer's layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    pub layers: Vec<LayerSlot>,
    /// Total length in f32 elements, padding included.
    pub len: usize,
}

impl ParamLayout {
    /// `[start, end)` ranges of every bias (for `--no-decay-bias`).
    pub fn bias_ranges(&self) -> Vec<(usize, usize)> {
        self.layers
            .iter()
            .map(|s| (s.bias, s.bias + s.outputs))
            .collect()
    }

    /// Number of trainable parameters (padding excluded).
    pub fn trainable(&self) -> usize {
        self.layers.iter().map(|s| s.outputs * (s.inputs + 1)).sum()
    }
}

/// The most parameters a model may have: 2^30, 4 GiB as f32 (the kernels index the flat
/// parameter buffer with 32-bit element indices, and three such buffers live on the device).
pub const MAX_PARAMETERS: usize = 1 << 30;

impl MlpSpec {
    /// `inputs -> hidden... -> classes`.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when any size is 0, or the model has more than
    /// [`MAX_PARAMETERS`] parameters.
    pub fn new(inputs: usize, hidden: &[usize], classes: usize) -> Result<MlpSpec> {
        let mut sizes = vec![inputs];
        sizes.extend_from_slice(hidden);
        sizes.push(classes);
        if let Some(pos) = sizes.iter().position(|&s| s == 0) {
            return Err(Error::InvalidConfig {
                name: if pos == 0 {
                    "input size"
                } else if pos == sizes.len() - 1 {
                    "class count"
                } else {
                    "hidden size"
                },
                value: "0".into(),
                reason: "every layer needs at least one unit".into(),
            });
        }
        // Checked before anything is allocated: a mistyped size must be an error, not an
        // out-of-memory abort. Saturating, so that absurd sizes cannot overflow the count.
        let count = sizes.windows(2).fold(0usize, |n, w| {
            n.saturating_add(w[0].saturating_mul(w[1]).saturating_add(w[1]))
        });
        if count > MAX_PARAMETERS {
            return Err(Error::InvalidConfig {
                name: "layer sizes",
                value: format!("{sizes:?}"),
                reason: format!(
                    "the model would have {count} parameters; at most {MAX_PARAMETERS} (4 GiB of f32) are supported"
                ),
            });
        }
        Ok(MlpSpec { sizes })
    }

    /// `I`.
    pub fn inputs(&self) -> usize {
        self.sizes[0]
    }

    /// `C`.
    pub fn classes(&self) -> usize {
        self.sizes[self.sizes.len() - 1]
    }

    /// The hidden sizes.
    pub fn hidden(&self) -> &[usize] {
        &self.sizes[1..self.sizes.len() - 1]
    }

    /// Layout of the flat parameter buffer.
    pub fn layout(&self) -> ParamLayout {
        let mut off = 0;
        let layers = self
            .sizes
            .windows(2)
            .map(|w| {
                let (inputs, outputs) = (w[0], w[1]);
                let weight = off;
                let bias = (weight + inputs * outputs).next_multiple_of(PARAM_ALIGN);
                off = (bias + outputs).next_multiple_of(PARAM_ALIGN);
                LayerSlot {
                    inputs,
                    outputs,
                    weight,
                    bias,
                }
            })
            .collect();
        ParamLayout { layers, len: off }
    }

    /// Floating-point operations of one training step per sample: forward `2·I·O` per
    /// layer, backward `2·I·O` for the weight gradient and `2·I·O` for the input gradient
    /// (not needed for the first layer).
    pub fn train_flops_per_sample(&self) -> u64 {
        self.sizes
            .windows(2)
            .enumerate()
            .map(|(l, w)| {
                let io = (w[0] * w[1]) as u64;
                if l == 0 { 4 * io } else { 6 * io }
            })
            .sum()
    }

    /// Fresh parameters, PyTorch `nn.Linear.reset_parameters`: weight and bias
    /// ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a = sqrt(5) reduces to this),
    /// drawn from ChaCha8 seeded with `seed`. Padding is zero.
    pub fn init(&self, seed: u64) -> Vec<f32> {
        let layout = self.layout();
        let mut params = vec![0.0f32; layout.len];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for s in &layout.layers {
            let bound = 1.0 / (s.inputs as f32).sqrt();
            for v in &mut params[s.weight..s.weight + s.inputs * s.outputs] {
                *v = rng.random_range(-bound..bound);
            }
            for v in &mut params[s.bias..s.bias + s.outputs] {
                *v = rng.random_range(-bound..bound);
            }
        }
        params
    }

    /// `params` (this layout) with the input normalisation `norm` folded into the first
    /// layer, so that the model takes inputs `x` in [0, 1] (pixels / 255) where `params`
    /// took `(x - mean) / std`: `W (x - mean) / std + b = W' x + b'` with `W' = W / std`
    /// and `b'_o = b_o - (mean / std) Σ_i W_oi`. Computed in f64 and rounded to f32 once
    /// per value; the other layers and the padding are copied.
    ///
    /// # Panics
    /// When `params` is not this layout's length (a caller bug).
    pub fn fold_input_normalization(&self, params: &[f32], norm: Normalization) -> Vec<f32> {
        let layout = self.layout();
        assert_eq!(params.len(), layout.len, "parameters of another layout");
        let mut folded = params.to_vec();
        let l0 = layout.layers[0];
        let (mean, std) = (f64::from(norm.mean), f64::from(norm.std));
        for o in 0..l0.outputs {
            let row = l0.weight + o * l0.inputs..l0.weight + (o + 1) * l0.inputs;
            let sum: f64 = params[row.clone()].iter().map(|&w| f64::from(w)).sum();
            for i in row {
                folded[i] = (f64::from(params[i]) / std) as f32;
            }
            let b = f64::from(params[l0.bias + o]);
            folded[l0.bias + o] = (b - mean / std * sum) as f32;
        }
        folded
    }
}

impl std::fmt::Display for MlpSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s: Vec<String> = self.sizes.iter().map(|v| v.to_string()).collect();
        f.write_str(&s.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding mean 0.5 and std 0.25 into `W = [1, 2], b = 3`: `W' = W / 0.25 = [4, 8]`,
    /// `b' = 3 - (0.5 / 0.25)(1 + 2) = -3` (all exact in f32); the output layer is kept.
    #[test]
    fn folding_the_normalisation_divides_the_first_weights_and_shifts_the_bias() {
        let spec = MlpSpec::new(2, &[1], 2).unwrap();
        let l = spec.layout();
        let mut params = vec![0.0; l.len];
        params[l.layers[0].weight..l.layers[0].weight + 2].copy_from_slice(&[1.0, 2.0]);
        params[l.layers[0].bias] = 3.0;
        params[l.layers[1].weight..l.layers[1].weight + 2].copy_from_slice(&[5.0, 6.0]);
        params[l.layers[1].bias] = 7.0;
        let norm = Normalization {
            mean: 0.5,
            std: 0.25,
        };
        let folded = spec.fold_input_normalization(&params, norm);
        let mut want = params.clone();
        want[l.layers[0].weight..l.layers[0].weight + 2].copy_from_slice(&[4.0, 8.0]);
        want[l.layers[0].bias] = -3.0;
        assert_eq!(folded, want);
        // A pixel x in [0, 1] then gives what (x - 0.5) / 0.25 gave: 1·(x-.5)/.25 +
        // 2·(y-.5)/.25 + 3 = 4x + 8y - 3.
    }

    #[test]
    fn layout_aligns_every_tensor_and_keeps_pytorch_shapes() {
        let spec = MlpSpec::new(784, &[256], 10).unwrap();
        let l = spec.layout();
        assert_eq!(
            l.layers[0],
            LayerSlot {
                inputs: 784,
                outputs: 256,
                weight: 0,
                bias: 200_704
            }
        );
        assert_eq!(l.layers[1].weight, 200_704 + 256);
        assert_eq!(l.layers[1].bias, (200_960 + 2560usize).next_multiple_of(64));
        assert!(
            l.layers
                .iter()
                .all(|s| s.weight % PARAM_ALIGN == 0 && s.bias % PARAM_ALIGN == 0)
        );
        assert_eq!(l.trainable(), 784 * 256 + 256 + 256 * 10 + 10);
    }

    #[test]
    fn init_follows_nn_linear_bounds_and_is_seeded() {
        let spec = MlpSpec::new(100, &[7], 3).unwrap();
        let a = spec.init(1);
        assert_eq!(a, spec.init(1));
        assert_ne!(a, spec.init(2));
        let l = spec.layout();
        let w0 = &a[l.layers[0].weight..l.layers[0].weight + 700];
        assert!(w0.iter().all(|v| v.abs() < 0.1));
        // Uniform on (-0.1, 0.1): the max magnitude of 700 draws is close to the bound.
        assert!(w0.iter().fold(0.0f32, |m, v| m.max(v.abs())) > 0.09);
        let w1 = &a[l.layers[1].weight..l.layers[1].weight + 21];
        assert!(w1.iter().all(|v| v.abs() < 1.0 / 7f32.sqrt()));
        // Padding stays zero.
        assert!(
            a[l.layers[0].weight + 700..l.layers[0].bias]
                .iter()
                .all(|&v| v == 0.0)
        );
    }

    #[test]
    fn zero_sizes_are_refused() {
        assert!(MlpSpec::new(784, &[0], 10).is_err());
        assert!(MlpSpec::new(784, &[], 0).is_err());
    }

    /// A mistyped hidden size is refused by its parameter count before anything is
    /// allocated (it once aborted on a 3 TB allocation); the largest allowed model passes.
    #[test]
    fn oversized_models_are_refused_before_allocation() {
        match MlpSpec::new(784, &[1_000_000_000], 10) {
            Err(Error::InvalidConfig { reason, .. }) => {
                assert!(reason.contains("795000000010 parameters"), "{reason}")
            }
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
        assert!(MlpSpec::new(usize::MAX, &[usize::MAX], 10).is_err());
        // 1 -> h -> 1 has 3h + 1 parameters: exactly 2^30 at h = (2^30 - 1) / 3.
        let h = ((1 << 30) - 1) / 3;
        assert!(MlpSpec::new(1, &[h], 1).is_ok());
        assert!(MlpSpec::new(1, &[h + 1], 1).is_err());
    }

    #[test]
    fn training_flops_of_784_256_10_are_0_82_mflop_per_sample() {
        // Forward 2·784·256 + 2·256·10; weight gradients the same again; the input gradient
        // of the output layer 2·256·10 (none for the first layer's input).
        let spec = MlpSpec::new(784, &[256], 10).unwrap();
        assert_eq!(
            spec.train_flops_per_sample(),
            2 * (2 * 784 * 256 + 2 * 256 * 10) + 2 * 256 * 10
        );
        assert_eq!(spec.train_flops_per_sample(), 818_176);
        // An MNIST epoch: 60,000 samples, 49.09 GFLOP.
        assert_eq!(spec.train_flops_per_sample() * 60_000, 49_090_560_000);
        // Two hidden layers: 784-32-16-10, the middle layer's input gradient counts.
        let deep = MlpSpec::new(784, &[32, 16], 10).unwrap();
        assert_eq!(
            deep.train_flops_per_sample(),
            4 * 784 * 32 + 6 * 32 * 16 + 6 * 16 * 10
        );
    }
}
