//! Member-stacked parameter buffers of the CPU engine. Each tensor of the model (layer l's
//! weight `[O, I]`, then its bias `[O]`) holds every member's copy, one after another:
//! layer l's weights are one `[K·O, I]` matrix and its biases one `[K·O]` vector. So layer
//! 0's forward product and weight gradient are one SGEMM over all members
//! ([`super::gemm::batched`]), a layer's biases line up with its outputs `[B, K·O]`, and the
//! SGD update walks each member's slice of each tensor. A member's flat vector in the
//! [`ParamLayout`] (what `Engine::params` returns, padding included) is gathered from and
//! scattered into these buffers.

use std::ops::Range;

use crate::model::ParamLayout;

/// One layer's place in a stacked buffer (offsets in floats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackedLayer {
    /// `I`.
    pub inputs: usize,
    /// `O`.
    pub outputs: usize,
    /// Offset of the weights `[K·O, I]` (member j's `[O, I]` at `weight + j·O·I`).
    pub weight: usize,
    /// Offset of the biases `[K·O]` (member j's `[O]` at `bias + j·O`).
    pub bias: usize,
}

/// One tensor of the model in a stacked buffer and in a member's flat vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tensor {
    /// Offset of member 0's copy in the stacked buffer; member j's at `start + j·len`.
    pub start: usize,
    /// Elements of one member's copy.
    pub len: usize,
    /// Offset in the flat [`ParamLayout`] vector.
    pub flat: usize,
    /// A bias (no weight decay under `--no-decay-bias`).
    pub bias: bool,
}

/// The layout of K members' parameters (or gradients, or momentum) stacked tensor by
/// tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stacked {
    /// Members K.
    pub members: usize,
    /// Per layer, first to last.
    pub layers: Vec<StackedLayer>,
    /// Every tensor, in buffer order.
    pub tensors: Vec<Tensor>,
    /// Length of a flat member vector ([`ParamLayout::len`], padding included).
    flat_len: usize,
    /// Length of the stacked buffer: K times the trainable parameters.
    pub len: usize,
}

impl Stacked {
    /// `members` copies of `layout`'s tensors.
    pub fn new(layout: &ParamLayout, members: usize) -> Stacked {
        let (mut layers, mut tensors, mut at) = (Vec::new(), Vec::new(), 0);
        let mut push = |len: usize, flat: usize, bias: bool| {
            tensors.push(Tensor {
                start: at,
                len,
                flat,
                bias,
            });
            at += members * len;
            at - members * len
        };
        for s in &layout.layers {
            let weight = push(s.outputs * s.inputs, s.weight, false);
            let bias = push(s.outputs, s.bias, true);
            layers.push(StackedLayer {
                inputs: s.inputs,
                outputs: s.outputs,
                weight,
                bias,
            });
        }
        Stacked {
            members,
            layers,
            tensors,
            flat_len: layout.len,
            len: at,
        }
    }

    /// Member `member`'s copy of `t`, as a range of the stacked buffer.
    pub fn range(&self, t: &Tensor, member: usize) -> Range<usize> {
        let start = t.start + member * t.len;
        start..start + t.len
    }

    /// Member `member`'s flat vector from the stacked buffer `buf` (padding zero).
    pub fn to_flat(&self, buf: &[f32], member: usize) -> Vec<f32> {
        let mut flat = vec![0.0; self.flat_len];
        for t in &self.tensors {
            flat[t.flat..t.flat + t.len].copy_from_slice(&buf[self.range(t, member)]);
        }
        flat
    }

    /// Writes member `member`'s flat vector `flat` into the stacked buffer `buf`.
    pub fn write_flat(&self, buf: &mut [f32], member: usize, flat: &[f32]) {
        for t in &self.tensors {
            buf[self.range(t, member)].copy_from_slice(&flat[t.flat..t.flat + t.len]);
        }
    }

    /// Copies member `from`'s tensors onto member `to`'s in `buf`.
    pub fn copy_member(&self, buf: &mut [f32], from: usize, to: usize) {
        for t in &self.tensors {
            let src = self.range(t, from);
            buf.copy_within(src, t.start + to * t.len);
        }
    }

    /// Sets every element of member `member`'s tensors in `buf` to `v`.
    pub fn fill_member(&self, buf: &mut [f32], member: usize, v: f32) {
        for t in &self.tensors {
            buf[self.range(t, member)].fill(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MlpSpec;

    #[test]
    fn members_round_trip_through_the_stacked_layout() {
        let layout = MlpSpec::new(5, &[3, 4], 2).unwrap().layout();
        let s = Stacked::new(&layout, 3);
        assert_eq!(s.len, 3 * layout.trainable());
        // Member j's flat vector: its index plus the position, padding zero.
        let flat = |j: usize| {
            let mut v = vec![0.0f32; layout.len];
            for (t, (a, b)) in layout
                .layers
                .iter()
                .flat_map(|l| [(l.weight, l.outputs * l.inputs), (l.bias, l.outputs)])
                .enumerate()
            {
                for (i, x) in v.iter_mut().enumerate().skip(a).take(b) {
                    *x = (100 * j + 10 * t + i) as f32;
                }
            }
            v
        };
        let mut buf = vec![f32::NAN; s.len];
        for j in 0..3 {
            s.write_flat(&mut buf, j, &flat(j));
        }
        assert!(buf.iter().all(|v| v.is_finite()), "every element written");
        for j in 0..3 {
            assert_eq!(s.to_flat(&buf, j), flat(j));
        }
        // Layer 0's weights are one [K·O, I] matrix: member 1's row 0 follows member 0's
        // last row.
        let l0 = s.layers[0];
        assert_eq!(buf[l0.weight + 3 * 5], flat(1)[layout.layers[0].weight]);
        s.copy_member(&mut buf, 2, 0);
        assert_eq!(s.to_flat(&buf, 0), flat(2));
        s.fill_member(&mut buf, 1, 0.0);
        assert!(s.to_flat(&buf, 1).iter().all(|&v| v == 0.0));
        assert_eq!(s.to_flat(&buf, 2), flat(2));
    }
}
