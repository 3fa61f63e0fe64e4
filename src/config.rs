//! [`RunConfig`]: the one description of a training run — model, minibatch size, optimiser,
//! learning-rate schedule, input normalisation, seed, validation split, epochs. An engine
//! is opened from it ([`crate::device::open`]) and keeps it; the trainer reads it back from
//! the engine, so no setting can be given twice or disagree.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{MlpSpec, Normalization};
use crate::optim::SgdConfig;
use crate::schedule::{LrSchedule, Schedule};

/// Everything that defines a training run. [`Default`] is the classic PyTorch MNIST
/// example's setting: one hidden layer of 256, minibatch 64, lr 0.01 (constant), weight
/// decay 1e-4, no momentum, 10 epochs, pixels in [0, 1] (no normalisation), seed 1, no
/// validation split. Build one with struct-update syntax
/// (`RunConfig { epochs: 1, ..RunConfig::default() }`) or [`RunConfig::builder`], which
/// checks it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// Hidden-layer widths `[H1, ...]`; the input width `I` and the class count `C` come
    /// from the data (see [`RunConfig::spec`]).
    pub hidden: Vec<usize>,
    /// Largest minibatch B (the last one of an epoch may be smaller, as PyTorch's
    /// `drop_last=False`).
    pub batch_size: usize,
    /// Epochs [`crate::train::Trainer::fit`] runs.
    pub epochs: usize,
    /// Base learning rate and its schedule (`torch.optim.lr_scheduler` semantics).
    pub schedule: LrSchedule,
    /// SGD settings (`torch.optim.SGD` semantics).
    pub sgd: SgdConfig,
    /// Input normalisation `(pixel / 255 - mean) / std`.
    pub normalization: Normalization,
    /// Seeds the epoch shuffles ([`crate::step::epoch_order`]), the validation split and,
    /// unless `init_seed` is set, the initialisation ([`MlpSpec::init`]).
    pub seed: u64,
    /// Seeds the initialisation instead of `seed`: members of a population
    /// ([`crate::engine`]) share `seed` (one data order) but may start from different
    /// weights.
    pub init_seed: Option<u64>,
    /// Fraction of the training samples held out for validation, in [0, 1)
    /// ([`crate::step::validation_split`]).
    pub validation_split: f64,
    /// Stop when the validation loss has not improved for this many epochs.
    pub early_stop_patience: Option<usize>,
    /// Storage precision of the GPU engine's matmul operands ([`Precision`]; default f32).
    pub precision: Precision,
}

/// Storage precision of the matmul operands. Master weights, gradients, momentum and
/// every sum stay f32 either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Precision {
    /// Everything f32 (the reference).
    #[default]
    F32,
    /// The GPU engine stores the matmul operands that are activations (`X`, `H_l`) and an
    /// f16 copy of the weights (refreshed after every SGD update) as IEEE binary16, and
    /// multiplies them with f32 accumulation (`matmul_f16`). Needs an adapter with
    /// `wgpu::Features::SHADER_F16`; the CPU engine refuses it.
    F16,
}

impl Precision {
    /// `"f32"` or `"f16"`, as the `--precision` flag spells it.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            hidden: vec![256],
            batch_size: 64,
            epochs: 10,
            schedule: LrSchedule::new(0.01, Schedule::Constant),
            sgd: SgdConfig::default(),
            normalization: Normalization::UNIT,
            seed: 1,
            init_seed: None,
            validation_split: 0.0,
            early_stop_patience: None,
            precision: Precision::F32,
        }
    }
}

impl RunConfig {
    /// A builder starting from [`RunConfig::default`].
    pub fn builder() -> RunConfigBuilder {
        RunConfigBuilder(RunConfig::default())
    }

    /// The model these settings train on data of `inputs` features and `classes` classes.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a zero width.
    pub fn spec(&self, inputs: usize, classes: usize) -> Result<MlpSpec> {
        MlpSpec::new(inputs, &self.hidden, classes)
    }

    /// The seed of the initial parameters: `init_seed`, else `seed`.
    pub fn init_seed(&self) -> u64 {
        self.init_seed.unwrap_or(self.seed)
    }

    /// Checks every setting that does not depend on the data: epochs and minibatch size at
    /// least 1, the learning rate and schedule, the SGD settings, a finite positive std,
    /// and a validation fraction in [0, 1).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the setting, its value and its valid range.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, value: String, reason: &str| Error::InvalidConfig {
            name,
            value,
            reason: reason.into(),
        };
        if self.epochs == 0 {
            return Err(bad("epochs", "0".into(), "must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(bad("batch size", "0".into(), "must be at least 1"));
        }
        if !(0.0..1.0).contains(&self.validation_split) {
            return Err(bad(
                "validation split",
                self.validation_split.to_string(),
                "must be in [0, 1)",
            ));
        }
        let n = self.normalization;
        if !(n.std.is_finite() && n.std > 0.0 && n.mean.is_finite()) {
            return Err(bad(
                "normalization",
                format!("mean {}, std {}", n.mean, n.std),
                "needs a finite mean and a finite std > 0",
            ));
        }
        crate::optim::validate_lr(self.schedule.base_lr)?;
        self.schedule.validate().map_err(|e| Error::InvalidConfig {
            name: "learning-rate schedule",
            value: self.schedule.to_string(),
            reason: e.to_string(),
        })?;
        self.sgd.validate()
    }
}

/// Checks that a minibatch of `batch_size` fits `n_train` training samples.
///
/// # Errors
/// [`Error::InvalidConfig`] for 0 or more than `n_train`.
pub fn check_batch_size(batch_size: usize, n_train: usize) -> Result<()> {
    if batch_size == 0 || batch_size > n_train {
        return Err(Error::InvalidConfig {
            name: "batch size",
            value: batch_size.to_string(),
            reason: format!("must be between 1 and the number of training samples ({n_train})"),
        });
    }
    Ok(())
}

/// Builds a checked [`RunConfig`]: `RunConfig::builder().lr(0.1).epochs(1).build()?`.
#[derive(Clone, Debug)]
pub struct RunConfigBuilder(RunConfig);

impl RunConfigBuilder {
    /// Hidden-layer widths (default `[256]`).
    pub fn hidden(mut self, widths: &[usize]) -> Self {
        self.0.hidden = widths.to_vec();
        self
    }
    /// Largest minibatch B (default 64).
    pub fn batch_size(mut self, b: usize) -> Self {
        self.0.batch_size = b;
        self
    }
    /// Epochs (default 10).
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.0.epochs = epochs;
        self
    }
    /// A constant learning rate (default 0.01); keeps a schedule set before.
    pub fn lr(mut self, lr: f64) -> Self {
        self.0.schedule.base_lr = lr;
        self
    }
    /// The learning rate and its schedule.
    pub fn schedule(mut self, schedule: LrSchedule) -> Self {
        self.0.schedule = schedule;
        self
    }
    /// SGD settings (default: weight decay 1e-4, no momentum).
    pub fn sgd(mut self, sgd: SgdConfig) -> Self {
        self.0.sgd = sgd;
        self
    }
    /// Weight decay (default 1e-4).
    pub fn weight_decay(mut self, wd: f64) -> Self {
        self.0.sgd.weight_decay = wd;
        self
    }
    /// Momentum μ (default 0).
    pub fn momentum(mut self, momentum: f64) -> Self {
        self.0.sgd.momentum = momentum;
        self
    }
    /// Input normalisation (default [`Normalization::UNIT`]).
    pub fn normalization(mut self, n: Normalization) -> Self {
        self.0.normalization = n;
        self
    }
    /// Seed of initialisation, shuffles and validation split (default 1).
    pub fn seed(mut self, seed: u64) -> Self {
        self.0.seed = seed;
        self
    }
    /// Seed of the initialisation alone (default: `seed`).
    pub fn init_seed(mut self, seed: u64) -> Self {
        self.0.init_seed = Some(seed);
        self
    }
    /// Fraction held out for validation (default 0).
    pub fn validation_split(mut self, fraction: f64) -> Self {
        self.0.validation_split = fraction;
        self
    }
    /// Storage precision of the matmul operands (default [`Precision::F32`]).
    pub fn precision(mut self, precision: Precision) -> Self {
        self.0.precision = precision;
        self
    }
    /// Early-stopping patience in epochs (default none).
    pub fn early_stop_patience(mut self, epochs: usize) -> Self {
        self.0.early_stop_patience = Some(epochs);
        self
    }

    /// The configuration, checked by [`RunConfig::validate`].
    ///
    /// # Errors
    /// As [`RunConfig::validate`].
    pub fn build(self) -> Result<RunConfig> {
        self.0.validate()?;
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_pytorch_mnist_example() {
        let c = RunConfig::default();
        assert_eq!(c.batch_size, 64);
        assert_eq!(c.schedule.base_lr, 0.01);
        assert_eq!(c.sgd.weight_decay, 1e-4);
        assert_eq!(c.sgd.momentum, 0.0);
        assert_eq!(c.epochs, 10);
        c.validate().unwrap();
    }

    #[test]
    fn builder_sets_and_checks() {
        let c = RunConfig::builder()
            .lr(0.1)
            .momentum(0.9)
            .batch_size(32)
            .build()
            .unwrap();
        assert_eq!(
            (c.schedule.base_lr, c.sgd.momentum, c.batch_size),
            (0.1, 0.9, 32)
        );
        for bad in [
            RunConfig::builder().batch_size(0),
            RunConfig::builder().epochs(0),
            RunConfig::builder().lr(-1.0),
            RunConfig::builder().momentum(f64::NAN),
            RunConfig::builder().validation_split(1.0),
        ] {
            assert!(matches!(bad.build(), Err(Error::InvalidConfig { .. })));
        }
    }
}
