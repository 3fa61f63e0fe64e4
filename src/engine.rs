//! The [`Engine`] trait: what the trainer needs from a device (GPU or CPU) to run epochs,
//! evaluate and move parameters in and out; and [`RunSetup`], what every engine derives
//! from its [`RunConfig`] and data. Both engines run the same math; the trainer in
//! [`crate::train`] drives either one; [`crate::device::open`] opens either.

use std::sync::atomic::AtomicBool;

use crate::config::RunConfig;
use crate::data::{Dataset, Mnist};
use crate::error::{Error, Result};
use crate::model::MlpSpec;
use crate::optim::SgdConfig;
pub use crate::step::StepSums;
use crate::step::{StepRecord, validation_split};

/// Samples per evaluation minibatch of both engines (or the training minibatch, if larger).
pub const EVAL_BATCH: usize = 1000;

/// The data a run reads: the training set (validation samples are held out of it), the
/// test set, and the class count `C` (the model's outputs).
#[derive(Clone, Copy)]
pub struct RunData<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub classes: usize,
}

impl<'a> From<&'a Mnist> for RunData<'a> {
    fn from(m: &'a Mnist) -> Self {
        RunData {
            train: &m.train,
            test: &m.test,
            classes: m.classes,
        }
    }
}

/// What every engine derives from its configuration and data, once: the model, the
/// training/validation split and the initial parameters.
#[derive(Clone, Debug)]
pub struct RunSetup {
    /// The configuration the engine was opened with.
    pub config: RunConfig,
    /// The model: `[I, hidden..., C]`.
    pub spec: MlpSpec,
    /// Training-sample indices the epochs shuffle (all but the validation ones), ascending.
    pub train_indices: Vec<u32>,
    /// Training-sample indices held out for validation, ascending.
    pub validation: Vec<u32>,
    /// Initial flat parameters (layout of `spec.layout()`), from `config.init_seed()`.
    pub init: Vec<f32>,
}

impl RunSetup {
    /// Checks `cfg` against `data` and derives the run's model, split and parameters.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an invalid configuration ([`RunConfig::validate`]) or one
    /// that does not fit the data (a minibatch larger than the training samples left after
    /// the validation split).
    pub fn new(cfg: &RunConfig, data: RunData<'_>) -> Result<RunSetup> {
        cfg.validate()?;
        let spec = cfg.spec(data.train.features(), data.classes)?;
        let (train_indices, validation) =
            validation_split(data.train.len(), cfg.validation_split, cfg.seed)?;
        crate::config::check_batch_size(cfg.batch_size, train_indices.len())?;
        let init = spec.init(cfg.init_seed());
        Ok(RunSetup {
            config: cfg.clone(),
            spec,
            train_indices,
            validation,
            init,
        })
    }

    /// Checks that `params` fit this run's model.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming both lengths.
    pub fn check_params(&self, params: &[f32]) -> Result<()> {
        let want = self.spec.layout().len;
        if params.len() == want {
            Ok(())
        } else {
            Err(Error::InvalidConfig {
                name: "parameters",
                value: format!("{} floats", params.len()),
                reason: format!("the MLP {} has a flat buffer of {want}", self.spec),
            })
        }
    }
}

/// Which held-out set to evaluate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EvalSet {
    /// The test files.
    Test,
    /// The validation part held out of the training files.
    Validation,
}

/// Loss and accuracy over a set of samples.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Mean cross-entropy per sample.
    pub loss: f64,
    /// Fraction of samples whose argmax logit is the label, in [0, 1].
    pub accuracy: f64,
    /// Samples evaluated.
    pub samples: usize,
}

/// A device that trains and evaluates one MLP on one dataset.
pub trait Engine {
    /// The run this engine was opened for: its configuration, model and split.
    fn setup(&self) -> &RunSetup;

    /// One line naming the device, e.g. `gpu: llvmpipe (Cpu, Vulkan)` or `cpu: 2 threads`.
    fn describe(&self) -> String;

    /// Runs one epoch: the minibatches given by `steps` over the training-sample `order`,
    /// stopping at a step boundary once `stop` is set (by a Ctrl-C handler, say).
    /// `progress` is called with the number of finished steps now and then. Returns the
    /// per-step sums of the steps that ran (`steps.len()` of them unless stopped), read back
    /// once at the end; the parameters are those after the last of them. The GPU engine
    /// stops after the command buffers already submitted (at most a few times 64 steps),
    /// the CPU engine after the step it is in.
    ///
    /// # Errors
    /// Device errors. A non-finite loss is not an error here: it shows in the sums and the
    /// trainer reports it (the GPU engine then leaves the parameters untouched).
    fn train_epoch_until(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<StepSums>>;

    /// [`Engine::train_epoch_until`] without a stop flag: the whole epoch.
    ///
    /// # Errors
    /// As [`Engine::train_epoch_until`].
    fn train_epoch(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        progress: &mut dyn FnMut(usize),
    ) -> Result<Vec<StepSums>> {
        self.train_epoch_until(order, steps, progress, &AtomicBool::new(false))
    }

    /// Evaluates the current parameters on a held-out set.
    fn evaluate(&mut self, set: EvalSet) -> Result<Evaluation>;

    /// The logits of every sample of a held-out set under the current parameters:
    /// `[N, C]` row-major f32, samples in the set's order (the test files' order; the
    /// validation indices' order). Per-class results ([`crate::metrics`]) are computed
    /// from them on the host, so the GPU and CPU paths are summarised by the same code.
    ///
    /// # Errors
    /// Device errors; [`Error::InvalidConfig`] from engines that cannot expose per-sample
    /// outputs (the default; both of wgtrain's engines can).
    fn logits(&mut self, set: EvalSet) -> Result<Vec<f32>> {
        let _ = set;
        Err(Error::InvalidConfig {
            name: "engine",
            value: self.describe(),
            reason: "does not expose per-sample logits (use the GPU or CPU engine)".into(),
        })
    }

    /// Dispatches (GPU) or kernel calls (CPU) per training step.
    fn dispatches_per_step(&self) -> usize;

    /// The flat parameter buffer (layout of [`crate::model::ParamLayout`]).
    fn params(&mut self) -> Result<Vec<f32>>;

    /// Replaces the parameters and clears the momentum buffer.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `params` do not fit the model
    /// ([`RunSetup::check_params`]); device errors.
    fn set_params(&mut self, params: &[f32]) -> Result<()>;

    /// Gives the run new SGD settings from its next step on, keeping the parameters and
    /// the momentum buffer (a per-epoch weight-decay schedule, [`crate::train::Trainer`]'s
    /// [`crate::schedule::HparamSchedule`]). `decay_bias` cannot change: the GPU engine
    /// lays out its no-decay ranges once.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for invalid settings ([`SgdConfig::validate`]), a changed
    /// `decay_bias`, or an engine that cannot change them (the default).
    fn set_sgd(&mut self, sgd: &SgdConfig) -> Result<()> {
        let _ = sgd;
        Err(Error::InvalidConfig {
            name: "engine",
            value: self.describe(),
            reason: "cannot change its SGD settings during a run (use the GPU or CPU engine)"
                .into(),
        })
    }
}

/// Checks new SGD settings for a running engine opened with `old` ([`Engine::set_sgd`]).
///
/// # Errors
/// As [`SgdConfig::validate`]; [`Error::InvalidConfig`] when `decay_bias` differs.
pub fn check_sgd_change(old: &SgdConfig, new: &SgdConfig) -> Result<()> {
    new.validate()?;
    if old.decay_bias != new.decay_bias {
        return Err(Error::InvalidConfig {
            name: "decay bias",
            value: new.decay_bias.to_string(),
            reason: format!(
                "the run was opened with decay_bias {}; it cannot change during a run",
                old.decay_bias
            ),
        });
    }
    Ok(())
}
