//! Population training: K members of one architecture trained at once, on the same
//! minibatches, each with its own learning-rate schedule, SGD settings and initialisation
//! seed. On the GPU every kernel of a step takes the member dimension, so a step is as many
//! dispatches for K members as for one; on the CPU the members run the CPU engine's stages
//! in lockstep on one gathered minibatch.
//!
//! Member k trains exactly as a single run of its [`RunConfig`] would (same data order,
//! same initial weights, same arithmetic), so a population is a faster way to run K
//! trials, not an approximation of them. What members must share is what shapes the
//! minibatch stream: hidden sizes, minibatch size, normalisation, `seed` (the data order
//! and validation split) and the validation fraction ([`PopulationSetup::new`] checks it).
//! Give members different weights with [`RunConfig::init_seed`]. Open one with
//! [`crate::open_population`].
//!
//! ```no_run
//! # fn main() -> wgtrain::Result<()> {
//! use wgtrain::population::PopulationTrainer;
//! use wgtrain::{Device, RunConfig, open_population};
//! let mnist = wgtrain::data::load_dir(std::path::Path::new("data/mnist"))?;
//! let configs = [0.01, 0.03, 0.1, 0.3]
//!     .map(|lr| RunConfig::builder().lr(lr).epochs(3).validation_split(0.1).build());
//! let configs = configs.into_iter().collect::<wgtrain::Result<Vec<_>>>()?;
//! let mut population = open_population(Device::Cpu, &configs, (&mnist).into())?;
//! let histories = PopulationTrainer::new(population.as_mut())?.fit(&mut |_, _| Ok(()))?;
//! for (cfg, history) in configs.iter().zip(&histories) {
//!     let last = history.last().expect("every member trains");
//!     println!("lr {}: val acc {:.2}%", cfg.schedule.base_lr, 100.0 * last.val_accuracy.unwrap());
//! }
//! # Ok(())
//! # }
//! ```

pub mod cpu;
pub mod trainer;

use std::sync::atomic::AtomicBool;

use crate::config::RunConfig;
use crate::engine::{EvalSet, Evaluation, RunData, RunSetup};
use crate::error::{Error, Result};
use crate::optim::SgdConfig;
use crate::step::{StepRecord, StepSums};

pub use trainer::{MemberOutcome, MemberStatus, PopulationTrainer};

/// [`MemberStep::flags`] bit: this is the member's first optimizer step since its
/// parameters were (re)initialised, so its momentum buffer starts as the gradient.
pub const MEMBER_FIRST: u32 = 1;
/// [`MemberStep::flags`] bit: the member is frozen (pruned, finished or diverged): its
/// parameters and momentum do not change this step.
pub const MEMBER_FROZEN: u32 = 2;

/// What one member's SGD update does in one step. An epoch's table is `[steps, K]`,
/// step-major (entry `s · K + k`); the GPU reads it from a storage buffer written once per
/// epoch, mirrored by `struct MemberStep` in the population shaders.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct MemberStep {
    /// Learning rate of this member in this step.
    pub lr: f32,
    /// [`MEMBER_FIRST`] | [`MEMBER_FROZEN`].
    pub flags: u32,
}

/// The runs of a population: one [`RunSetup`] per member, all on the same model and
/// minibatch stream.
#[derive(Clone, Debug)]
pub struct PopulationSetup {
    /// Member k's setup: its configuration, the shared model and split, its initial
    /// parameters (from its `init_seed()`).
    pub members: Vec<RunSetup>,
}

impl PopulationSetup {
    /// Checks that `configs` can share a minibatch stream and derives every member's setup.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty population, for a member whose hidden sizes,
    /// minibatch size, normalisation, seed or validation fraction differ from member 0's
    /// (naming both values), for a member with f16 precision (populations are f32), and as
    /// [`RunSetup::new`] for each member.
    pub fn new(configs: &[RunConfig], data: RunData<'_>) -> Result<PopulationSetup> {
        let Some(first) = configs.first() else {
            return Err(Error::InvalidConfig {
                name: "population",
                value: "0 members".into(),
                reason: "give at least one run configuration".into(),
            });
        };
        for (k, c) in configs.iter().enumerate().skip(1) {
            check_shared(first, c, k)?;
        }
        if let Some(k) = configs
            .iter()
            .position(|c| c.precision != crate::config::Precision::F32)
        {
            return Err(Error::InvalidConfig {
                name: "precision",
                value: format!("{} (member {k})", configs[k].precision),
                reason: "population training keeps every operand in f32; --precision f16 \
                         trains single runs (use --precision f32, or --population 1)"
                    .into(),
            });
        }
        let members = configs
            .iter()
            .map(|c| RunSetup::new(c, data))
            .collect::<Result<Vec<_>>>()?;
        Ok(PopulationSetup { members })
    }

    /// Number of members K.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True for an empty population (never, once built by [`PopulationSetup::new`]).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The setup every member shares the model, minibatch size and split of: member 0's.
    pub fn shared(&self) -> &RunSetup {
        &self.members[0]
    }

    /// Device memory one member adds, bytes: its parameters, gradients and momentum
    /// (`3 · P` floats) and its activations and their gradients for the largest minibatch
    /// (`2 · rows · (H_1 + ... + C)` floats, `rows` = max(B, the evaluation minibatch)),
    /// plus its per-row loss and correct flags. The data, the sample orders and the gathered
    /// minibatch `X [rows, I]` are shared and not counted.
    pub fn member_bytes(&self) -> u64 {
        let shared = self.shared();
        let rows = shared.config.batch_size.max(crate::engine::EVAL_BATCH) as u64;
        let p = shared.spec.layout().len as u64;
        let outputs: u64 = shared.spec.sizes[1..].iter().map(|&s| s as u64).sum();
        4 * (3 * p + 2 * rows * outputs + 2 * rows)
    }

    /// The setup of a new run in slot `member` (see [`PopulationEngine::replace_member`]):
    /// `cfg` checked against member 0, the shared model and split, initial parameters from
    /// `cfg.init_seed()`.
    ///
    /// # Errors
    /// As [`check_member`], [`check_shared`] and [`RunConfig::validate`].
    pub fn member_setup(&self, member: usize, cfg: &RunConfig) -> Result<RunSetup> {
        check_member(member, self.len())?;
        check_shared(&self.members[0].config, cfg, member)?;
        cfg.validate()?;
        let shared = self.shared();
        Ok(RunSetup {
            config: cfg.clone(),
            spec: shared.spec.clone(),
            train_indices: shared.train_indices.clone(),
            validation: shared.validation.clone(),
            init: shared.spec.init(cfg.init_seed()),
        })
    }
}

/// Checks that member `k`'s configuration `c` shares the minibatch stream of `first`.
///
/// # Errors
/// [`Error::InvalidConfig`] naming the first setting that differs.
pub fn check_shared(first: &RunConfig, c: &RunConfig, k: usize) -> Result<()> {
    let differs = |what: &str, a: String, b: String| {
        Err(Error::InvalidConfig {
            name: "population",
            value: format!("member {k}"),
            reason: format!(
                "its {what} ({b}) differs from member 0's ({a}): members share one minibatch \
                 stream, so group runs by hidden sizes, minibatch size, normalisation, seed \
                 and validation split"
            ),
        })
    };
    if c.hidden != first.hidden {
        return differs(
            "hidden sizes",
            format!("{:?}", first.hidden),
            format!("{:?}", c.hidden),
        );
    }
    if c.batch_size != first.batch_size {
        return differs(
            "minibatch size",
            first.batch_size.to_string(),
            c.batch_size.to_string(),
        );
    }
    if c.normalization != first.normalization {
        return differs(
            "normalisation",
            format!("{:?}", first.normalization),
            format!("{:?}", c.normalization),
        );
    }
    if c.seed != first.seed {
        return differs("seed", first.seed.to_string(), c.seed.to_string());
    }
    if c.validation_split != first.validation_split {
        return differs(
            "validation split",
            first.validation_split.to_string(),
            c.validation_split.to_string(),
        );
    }
    Ok(())
}

/// A device that trains and evaluates the K members of a population at once. The
/// counterpart of [`crate::engine::Engine`] for populations; [`PopulationTrainer`] drives it.
pub trait PopulationEngine {
    /// The population this engine was opened for. Member configurations change with
    /// [`PopulationEngine::replace_member`] and [`PopulationEngine::set_sgd`].
    fn setup(&self) -> &PopulationSetup;

    /// One line naming the device and the population, e.g. `gpu: llvmpipe (Cpu, Vulkan), 8 members`.
    fn describe(&self) -> String;

    /// Number of members K.
    fn members(&self) -> usize {
        self.setup().len()
    }

    /// Runs one epoch for every member: the minibatches `steps` over the training-sample
    /// `order` (shared), member k's update in step s as `member_steps[s · K + k]`
    /// (`[steps.len(), K]`), stopping at a step boundary once `stop` is set. Returns the
    /// per-step sums of each member, `[K][steps run]`, read back once at the end. A member
    /// whose loss turns non-finite stops updating from that step on (its parameters stay as
    /// after its last finite step, its later sums are NaN); the others go on. A frozen
    /// member's sums mean nothing (the CPU skips it and reports zeros; the GPU computes it
    /// on its unchanged parameters).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `member_steps` is not `steps.len() · K` long; device
    /// errors.
    fn train_epoch_until(
        &mut self,
        order: &[u32],
        steps: &[StepRecord],
        member_steps: &[MemberStep],
        progress: &mut dyn FnMut(usize),
        stop: &AtomicBool,
    ) -> Result<Vec<Vec<StepSums>>>;

    /// Evaluates every member's current parameters on a held-out set, `[K]`.
    ///
    /// # Errors
    /// Device errors.
    fn evaluate(&mut self, set: EvalSet) -> Result<Vec<Evaluation>>;

    /// Dispatches (GPU) or kernel calls (CPU) per training step, for all K members.
    fn dispatches_per_step(&self) -> usize;

    /// Member `member`'s flat parameters (layout of [`crate::model::ParamLayout`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member index out of range; device errors.
    fn params(&mut self, member: usize) -> Result<Vec<f32>>;

    /// Replaces member `member`'s parameters, clears its momentum and its non-finite flag.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range or parameters that do not fit
    /// the model; device errors.
    fn set_params(&mut self, member: usize, params: &[f32]) -> Result<()>;

    /// Copies parameters and momentum of member `from` onto member `to` on the device (the
    /// exploit step of population-based training), clearing `to`'s non-finite flag.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range; device errors.
    fn copy_member(&mut self, from: usize, to: usize) -> Result<()>;

    /// Gives member `member` new SGD settings from its next step on (PBT's explore step).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range or invalid settings.
    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()>;

    /// Starts a new run in slot `member`: configuration `cfg` (which must share the
    /// minibatch stream, [`check_shared`]), its initial parameters, cleared momentum and
    /// non-finite flag. The caller marks its first step [`MEMBER_FIRST`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`check_shared`] and [`RunConfig::validate`]; device errors.
    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()>;
}

/// Checks a member index against a population of `k`.
///
/// # Errors
/// [`Error::InvalidConfig`] naming the index and K.
pub fn check_member(member: usize, k: usize) -> Result<()> {
    if member < k {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            name: "member",
            value: member.to_string(),
            reason: format!("the population has {k} members (0..{k})"),
        })
    }
}
