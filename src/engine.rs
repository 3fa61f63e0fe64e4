//! The [`Engine`] trait: what the trainer needs from a device (GPU or CPU) to train K >= 1
//! members at once, evaluate them and move their parameters in and out; and
//! [`PopulationSetup`], what every engine derives from its members' [`RunConfig`]s and the
//! data. A single run is a population of one member: there is one trait, one trainer
//! ([`crate::train::Trainer`]) and one engine per device ([`crate::device::open`]).
//!
//! Members share one minibatch stream: the data, the sample order of each epoch and the
//! validation split (hence the model's shapes), stepped through in micro-steps of the
//! smallest minibatch size (the *micro-batch*, [`PopulationSetup::micro_batch`]); each
//! member's minibatch size is a multiple of it ([`crate::step`]: a member of `m` times
//! the micro-batch sums its gradient over `m` micro-steps and updates on the last). Each
//! has its own parameters, gradients, momentum and activations, its own SGD settings,
//! learning-rate schedule and initialisation seed. A member at the micro-batch trains
//! exactly as a population of one of its configuration would (same data order, same initial
//! weights, same arithmetic: tested bit for bit on both devices); a member of a larger
//! minibatch sees the same minibatches and differs from its single run only in the order its
//! gradient's rows are summed (tested within the bound that order allows). A population is
//! a faster way to run K trials, not an approximation of them.

use std::sync::atomic::AtomicBool;

use crate::config::{RunConfig, check_batch_size};
use crate::data::{Dataset, Mnist};
use crate::error::{Error, Result};
use crate::model::MlpSpec;
use crate::optim::SgdConfig;
pub use crate::step::StepSums;
use crate::step::{MemberStep, StepRecord, validation_split};

/// Samples per evaluation minibatch of both engines (or the training minibatch, if larger).
pub const EVAL_BATCH: usize = 1000;

/// The data a run reads: the training set (validation samples are held out of it), the
/// test set, and the class count `C` (the model's outputs); and the rows of its shared
/// steps when they are not the members' smallest minibatch.
#[derive(Clone, Copy)]
pub struct RunData<'a> {
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub classes: usize,
    /// The population's micro-batch, the samples of each shared step
    /// ([`PopulationSetup::micro_batch`]); `None`: the members' smallest minibatch size.
    /// Given where a population is reopened to go on from a snapshot whose members all
    /// moved to larger sizes than the one it stepped at (a sweep refilled every slot with a
    /// larger multiple; PBT copied larger sizes): stepping at the old size keeps each
    /// member's sums, and so its bits, those of the run it continues.
    pub micro_batch: Option<usize>,
}

impl<'a> From<&'a Mnist> for RunData<'a> {
    fn from(m: &'a Mnist) -> Self {
        RunData {
            train: &m.train,
            test: &m.test,
            classes: m.classes,
            micro_batch: None,
        }
    }
}

/// What every engine derives for one member from its configuration and the data, once:
/// the model, the training/validation split and the initial parameters.
#[derive(Clone, Debug)]
pub struct RunSetup {
    /// The member's configuration.
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
        check_batch_size(cfg.batch_size, train_indices.len())?;
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

/// The members of an engine: one [`RunSetup`] each, all on the same model and minibatch
/// stream. A single run is a population of one.
#[derive(Clone, Debug)]
pub struct PopulationSetup {
    /// Member k's setup: its configuration, the shared model and split, its initial
    /// parameters (from its `init_seed()`).
    pub members: Vec<RunSetup>,
    /// The micro-batch: rows of the shared steps, the smallest minibatch size the
    /// population was opened with (every member's is a multiple of it; buffers are sized
    /// for it).
    micro_batch: usize,
}

impl PopulationSetup {
    /// Checks that `configs` can share a minibatch stream and derives every member's setup.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for an empty population, for a member whose hidden sizes,
    /// normalisation, seed, validation fraction or precision differ from member 0's
    /// (naming both values, [`check_shared`]), whose minibatch size is not a multiple of the
    /// micro-batch (the smallest, or `data.micro_batch`; naming both, [`check_micro_batch`]),
    /// and as [`RunSetup::new`] for each member.
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
        let smallest = configs.iter().map(|c| c.batch_size).min().unwrap_or(1);
        let micro_batch = data.micro_batch.unwrap_or(smallest);
        for (k, c) in configs.iter().enumerate() {
            check_micro_batch(micro_batch, c, k)?;
        }
        let shared = RunSetup::new(first, data)?;
        let n_train = shared.train_indices.len();
        let mut members = vec![shared];
        for c in &configs[1..] {
            check_batch_size(c.batch_size, n_train)?;
            c.validate()?;
            members.push(member_of(&members[0], c));
        }
        Ok(PopulationSetup {
            members,
            micro_batch,
        })
    }

    /// The setup of member setups already checked to share a minibatch stream at
    /// `micro_batch` (e.g. those of several engines' populations).
    pub(crate) fn from_parts(members: Vec<RunSetup>, micro_batch: usize) -> PopulationSetup {
        PopulationSetup {
            members,
            micro_batch,
        }
    }

    /// The micro-batch B0: the rows of every shared step (the last one of an epoch may be
    /// fewer): the smallest minibatch size the population was opened with, or the one its
    /// [`RunData::micro_batch`] named. A member of
    /// minibatch `m · B0` sums its gradient over `m` micro-steps ([`crate::step`]).
    pub fn micro_batch(&self) -> usize {
        self.micro_batch
    }

    /// Number of members K.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True for an empty population (never, once built by [`PopulationSetup::new`]).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The setup every member shares the model, seed and split of: member 0's (its
    /// minibatch size is its own: the shared steps are [`PopulationSetup::micro_batch`]).
    pub fn shared(&self) -> &RunSetup {
        &self.members[0]
    }

    /// Rows of the activation buffers: the larger of the minibatch and the evaluation
    /// minibatch (`EVAL_BATCH`, or fewer when both held-out sets are smaller).
    pub fn activation_rows(&self, test_samples: usize) -> usize {
        let s = self.shared();
        activation_rows(self.micro_batch, test_samples.max(s.validation.len()))
    }

    /// Device memory one member adds, bytes ([`member_bytes`] at this population's
    /// activation rows for `test_samples` test samples).
    pub fn member_bytes(&self, test_samples: usize) -> u64 {
        member_bytes(&self.shared().spec, self.activation_rows(test_samples))
    }

    /// The setup of a new run in slot `member` (see [`Engine::replace_member`]): `cfg`
    /// checked against member 0 and the micro-batch, the shared model and split, initial
    /// parameters from `cfg.init_seed()`.
    ///
    /// # Errors
    /// As [`check_member`], [`check_shared`], [`check_micro_batch`], [`check_batch_size`]
    /// and [`RunConfig::validate`].
    pub fn member_setup(&self, member: usize, cfg: &RunConfig) -> Result<RunSetup> {
        check_member(member, self.len())?;
        check_shared(&self.members[0].config, cfg, member)?;
        check_micro_batch(self.micro_batch, cfg, member)?;
        check_batch_size(cfg.batch_size, self.shared().train_indices.len())?;
        cfg.validate()?;
        Ok(member_of(self.shared(), cfg))
    }
}

/// The setup of `cfg` sharing `shared`'s model and split.
fn member_of(shared: &RunSetup, cfg: &RunConfig) -> RunSetup {
    RunSetup {
        config: cfg.clone(),
        spec: shared.spec.clone(),
        train_indices: shared.train_indices.clone(),
        validation: shared.validation.clone(),
        init: shared.spec.init(cfg.init_seed()),
    }
}

/// Rows of a run's activation buffers: the minibatch `batch`, or the evaluation minibatch
/// ([`EVAL_BATCH`], or `held_out` samples when the larger held-out set is smaller) when
/// that is larger.
pub fn activation_rows(batch: usize, held_out: usize) -> usize {
    batch.max(EVAL_BATCH.min(held_out))
}

/// Device memory one member of an MLP `spec` adds, bytes, with activation buffers of
/// `rows` rows ([`activation_rows`]), as f32: its parameters, gradients, momentum and
/// gradient sum (the running sum of a minibatch that spans several micro-steps) (`4 · P`, P
/// the padded flat layout's length) and its activations and their gradients (`2 · rows ·
/// (H_1 + ... + C)`), plus its per-row loss and correct flags (`2 · rows`). The data, the
/// sample orders and the gathered minibatch X `[rows, I]` are shared by the members and not
/// counted. The one formula for what a member costs: the engines allocate at most this
/// (the CPU engine allocates a gradient sum only for a member that needs one), and default
/// population sizes are computed from it.
pub fn member_bytes(spec: &MlpSpec, rows: usize) -> u64 {
    let rows = rows as u64;
    let p = spec.layout().len as u64;
    let outputs: u64 = spec.sizes[1..].iter().map(|&s| s as u64).sum();
    4 * (4 * p + 2 * rows * outputs + 2 * rows)
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
                 stream, so group runs by hidden sizes, normalisation, seed, validation split \
                 and precision"
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
    if c.precision != first.precision {
        return differs(
            "precision",
            first.precision.to_string(),
            c.precision.to_string(),
        );
    }
    Ok(())
}

/// Checks that member `k`'s minibatch size is a multiple of the population's micro-batch
/// `micro` (its smallest minibatch size), so that its minibatches are whole runs of
/// micro-steps.
///
/// # Errors
/// [`Error::InvalidConfig`] naming both sizes and the fix.
pub fn check_micro_batch(micro: usize, c: &RunConfig, k: usize) -> Result<()> {
    if micro > 0 && c.batch_size >= micro && c.batch_size.is_multiple_of(micro) {
        return Ok(());
    }
    Err(Error::InvalidConfig {
        name: "population",
        value: format!("member {k}"),
        reason: format!(
            "its minibatch size {} is not a multiple of the population's smallest, {micro}: \
             members step through the shared sample order {micro} samples at a time and a \
             member sums whole steps; use minibatch sizes that are multiples of the smallest \
             (powers of two, say) or train the others in another population",
            c.batch_size
        ),
    })
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

/// Checks that an epoch's member-step table is `[steps, K]`.
///
/// # Errors
/// [`Error::InvalidConfig`] naming both lengths.
pub fn check_table(len: usize, steps: usize, k: usize) -> Result<()> {
    if len == steps * k {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            name: "member steps",
            value: format!("{len} entries"),
            reason: format!("an epoch of {steps} steps for {k} members needs {steps} x {k}"),
        })
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

/// A device that trains and evaluates the K >= 1 members of a population at once (a single
/// run is K = 1). [`crate::train::Trainer`] drives it.
pub trait Engine {
    /// The members this engine was opened for. Member configurations change with
    /// [`Engine::replace_member`] and [`Engine::set_sgd`].
    fn setup(&self) -> &PopulationSetup;

    /// One line naming the device, e.g. `gpu: llvmpipe (Cpu, Vulkan)` or `cpu: 2 threads`
    /// (and the member count when K > 1).
    fn describe(&self) -> String;

    /// Number of members K.
    fn members(&self) -> usize {
        self.setup().len()
    }

    /// Runs one epoch for every member: the minibatches `steps` over the training-sample
    /// `order` (shared), member k's update in step s as `member_steps[s · K + k]`
    /// (`[steps.len(), K]`), stopping at a step boundary once `stop` is set (by a Ctrl-C
    /// handler, say). `progress` is called with the number of finished steps now and then.
    /// Returns the per-step sums of each member, `[K][steps run]`, read back once at the
    /// end. A member whose loss turns non-finite stops updating from that step on (its
    /// parameters stay as after its last finite step, its later sums are NaN); the others go
    /// on. A frozen member's sums mean nothing (the CPU skips it and reports zeros; the GPU
    /// computes it on its unchanged parameters). The GPU engine stops after the command
    /// buffers already submitted (at most a few times 64 steps), the CPU engine after the
    /// step it is in.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `member_steps` is not `steps.len() · K` long or a
    /// minibatch does not fit the engine; device errors.
    fn train_epoch(
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

    /// The logits of every sample of a held-out set under member `member`'s current
    /// parameters: `[N, C]` row-major f32, samples in the set's order (the test files'
    /// order; the validation indices' order). Per-class results ([`crate::metrics`]) are
    /// computed from them on the host, so the GPU and CPU paths are summarised by the same
    /// code.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range; device errors.
    fn logits(&mut self, member: usize, set: EvalSet) -> Result<Vec<f32>>;

    /// Dispatches (GPU) or kernel calls (CPU) per training step, for all K members.
    fn dispatches_per_step(&self) -> usize;

    /// Member `member`'s flat parameters (layout of [`crate::model::ParamLayout`]).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member index out of range; device errors.
    fn params(&mut self, member: usize) -> Result<Vec<f32>>;

    /// Member `member`'s momentum buffer (the layout of its parameters; zeros before its
    /// first step or without momentum).
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member index out of range; device errors.
    fn momentum(&mut self, member: usize) -> Result<Vec<f32>>;

    /// Replaces member `member`'s parameters and momentum buffer (`None`: cleared), and
    /// clears its non-finite flag.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range or buffers that do not fit the
    /// model ([`RunSetup::check_params`]); device errors.
    fn set_state(&mut self, member: usize, params: &[f32], momentum: Option<&[f32]>) -> Result<()>;

    /// Replaces member `member`'s parameters, clears its momentum and its non-finite flag.
    ///
    /// # Errors
    /// As [`Engine::set_state`].
    fn set_params(&mut self, member: usize, params: &[f32]) -> Result<()> {
        self.set_state(member, params, None)
    }

    /// Copies parameters and momentum of member `from` onto member `to` on the device (the
    /// exploit step of population-based training), clearing `to`'s non-finite flag.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range; device errors.
    fn copy_member(&mut self, from: usize, to: usize) -> Result<()>;

    /// Gives member `member` new SGD settings from its next step on, keeping its
    /// parameters and momentum buffer (PBT's explore step, a per-epoch weight-decay
    /// schedule). Writes the member's settings; nothing is rebuilt.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for a member out of range or invalid settings
    /// ([`SgdConfig::validate`]).
    fn set_sgd(&mut self, member: usize, sgd: &SgdConfig) -> Result<()>;

    /// Starts a new run in slot `member`: configuration `cfg` (which must share the
    /// minibatch stream, [`check_shared`]), its initial parameters, cleared momentum and
    /// non-finite flag. The caller marks its first step [`crate::step::MEMBER_FIRST`].
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] as [`check_shared`] and [`RunConfig::validate`]; device errors.
    fn replace_member(&mut self, member: usize, cfg: &RunConfig) -> Result<()>;
}
