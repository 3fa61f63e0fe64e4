//! [`Fusions`]: which of the training step's optional kernel fusions the GPU engine may
//! use. Each fusion replaces separate dispatches with work done inside a neighbouring
//! kernel; it is applied only where the adapter and the run's shapes allow it (the loop
//! cap, unsplit sums, the chosen matmul kernel), and otherwise the step keeps the unfused
//! dispatches. Fused and unfused steps compute the same values (bit-identical where the
//! arithmetic order is unchanged, else within 1e-6 relative); `--fuse none` exists for
//! side-by-side measurement and for the tests that compare the two.

/// The fusions the GPU engine may apply (`--fuse`); [`Default`] is [`Fusions::ALL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fusions {
    /// Layer 0's forward product reads the minibatch's u8 pixels through the sample order
    /// and normalises them in its operand loads: no `gather_normalize` launch.
    pub gather: bool,
    /// The output layer's forward product runs inside `softmax_cross_entropy` (small class
    /// counts): no separate matmul launch for the logits.
    pub output_layer: bool,
    /// Each weight-gradient product applies the SGD update (`torch.optim.SGD` semantics) to
    /// its weights and bias in its epilogue: no `column_sum` and no `sgd_update` launches.
    pub update: bool,
}

impl Fusions {
    /// Every fusion the adapter and shapes allow.
    pub const ALL: Fusions = Fusions {
        gather: true,
        output_layer: true,
        update: true,
    };
    /// None: the reference step, one launch per operation.
    pub const NONE: Fusions = Fusions {
        gather: false,
        output_layer: false,
        update: false,
    };
}

impl Default for Fusions {
    fn default() -> Self {
        Fusions::ALL
    }
}
