//! Every flag of every subcommand, with the PyTorch MNIST example's defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use wgtrain::schedule::ScheduleKind;

/// Train neural networks with WGSL compute shaders on any GPU (wgpu), or on the CPU.
#[derive(Parser, Debug)]
#[command(name = "wgtrain", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train an MLP on MNIST (or any directory of IDX files).
    Train(TrainArgs),
    /// Evaluate a saved model on the test set.
    Eval(EvalArgs),
    /// List every adapter with its type and the limits that matter here.
    Devices(DevicesArgs),
    /// Download a dataset and verify its checksums.
    Download(DownloadArgs),
    /// Learning-rate range test: ramp the lr exponentially, plot the loss, suggest an lr.
    LrFind(super::tune::LrFindArgs),
    /// Hyperparameter sweep (grid or random) on a validation split, with median pruning.
    Sweep(super::tune::SweepArgs),
    /// Learning curves from a --metrics file, or a sweep's pictures from its directory.
    Plot(super::tune::PlotArgs),
    /// Time every kernel of N training steps: per-kernel table, optional Chrome trace.
    Profile(super::profile::ProfileArgs),
    /// Time one epoch per batch size on the GPU and CPU paths side by side.
    Bench(super::bench::BenchArgs),
}

/// Which adapters to list.
#[derive(Args, Debug, Clone)]
pub struct DevicesArgs {
    /// Only this backend (default: every backend, GL included).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
}

/// Where to run.
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// gpu: WGSL kernels through wgpu; cpu: the SGEMM path (no GPU needed).
    #[arg(long, value_enum, default_value_t = DeviceKind::Gpu)]
    pub device: DeviceKind,
    /// Restrict the adapter search to one backend (default: all; `WGPU_BACKEND` is honoured).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Use the first adapter whose name contains this (case-insensitive; `WGPU_ADAPTER_NAME` is honoured).
    #[arg(long)]
    pub adapter: Option<String>,
    /// Matmul kernel (GPU only; default auto): auto times this adapter's candidates on
    /// each of the run's shapes and keeps the fastest (subgroup and rows with subgroups of
    /// 8, as on lavapipe; rows and register on other CPU adapters; all four on GPUs);
    /// subgroup needs an adapter with subgroups of exactly 8.
    #[arg(long, value_enum)]
    pub kernels: Option<KernelChoice>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Gpu,
    Cpu,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl Backend {
    pub fn to_wgpu(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelChoice {
    Auto,
    Tiled,
    Register,
    Rows,
    Subgroup,
}

/// Where the data is.
#[derive(Args, Debug, Clone)]
pub struct DataArgs {
    /// Directory with the four IDX files (raw or .gz): MNIST's names, or those of
    /// --dataset. Default: ./data/NAME, then the user cache directory (downloaded there
    /// if missing); for mnist $MNIST_DIR first.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// A named dataset (torchvision's files, class names and mean/std): mnist,
    /// fashion-mnist, kmnist, emnist-balanced, emnist-letters, emnist-digits or qmnist.
    /// Without it, --data takes any directory of MNIST-named IDX files.
    #[arg(long, value_name = "NAME", value_parser = dataset_name)]
    pub dataset: Option<wgtrain::data::DatasetName>,
    /// Never download; fail with the list of directories searched instead.
    #[arg(long)]
    pub no_download: bool,
    /// Normalise pixels with the dataset's mean and std (MNIST's 0.1307 and 0.3081 without
    /// --dataset), as transforms.Normalize (default: scale to [0, 1]).
    #[arg(long)]
    pub normalize: bool,
    /// Number of classes C (model outputs); every label must lie in 0..C. Default: the
    /// largest training label + 1, refusing a class that looks like a stray label.
    #[arg(long, value_name = "N", value_parser = class_count)]
    pub classes: Option<usize>,
}

pub(crate) fn dataset_name(s: &str) -> Result<wgtrain::data::DatasetName, String> {
    s.parse()
}

pub(crate) fn class_count(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0 | 1) => Err("must be at least 2 (a classifier needs two classes)".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

pub(crate) fn positive_usize(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// Hidden layer sizes, parsed from `512,256`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HiddenSizes(pub Vec<usize>);

pub(crate) fn hidden_sizes(s: &str) -> Result<HiddenSizes, String> {
    if s.trim() == "none" {
        return Ok(HiddenSizes(vec![]));
    }
    if s.trim().is_empty() {
        return Err("empty: give sizes such as 256 or 512,256, or none for no hidden layer".into());
    }
    s.split(',')
        .map(|p| positive_usize(p.trim()).map_err(|e| format!("hidden size '{p}': {e}")))
        .collect::<Result<_, _>>()
        .map(HiddenSizes)
}

pub(crate) fn positive_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number > 0".into())
    }
}

pub(crate) fn non_negative_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err("must be a finite number >= 0".into())
    }
}

pub(crate) fn unit_interval(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("must be in [0, 1)".into())
    }
}

/// The torch.optim.SGD options that `train` and `sweep` share (sweeps search lr, weight
/// decay and momentum, not these).
#[derive(Args, Debug, Clone)]
pub struct SgdVariantArgs {
    /// Momentum dampening, in [0, 1) (torch.optim.SGD dampening: v = momentum * v +
    /// (1 - dampening) * g).
    #[arg(long, value_parser = unit_interval, default_value_t = 0.0, allow_hyphen_values = true)]
    pub dampening: f64,
    /// Nesterov momentum (torch.optim.SGD nesterov=True; needs --momentum > 0 and
    /// --dampening 0).
    #[arg(long)]
    pub nesterov: bool,
    /// SGDW: decay the weights by lr * weight_decay directly instead of adding it to the gradient.
    #[arg(long)]
    pub decoupled_weight_decay: bool,
    /// Exclude biases from weight decay (PyTorch's default decays every parameter).
    #[arg(long)]
    pub no_decay_bias: bool,
}

/// Default of `--epochs`.
pub const DEFAULT_EPOCHS: usize = 10;

/// Model and optimiser hyperparameters.
#[derive(Args, Debug, Clone)]
pub struct HyperArgs {
    /// Hidden layer sizes, comma-separated (e.g. 512,256; "none" for logistic regression).
    #[arg(long, value_parser = hidden_sizes, default_value = "256")]
    pub hidden: HiddenSizes,
    /// Epochs: full passes over the training set (default 10; the PyTorch MNIST example's
    /// --epochs).
    #[arg(long, value_parser = positive_usize)]
    pub epochs: Option<usize>,
    /// Samples per minibatch (DataLoader batch_size; the last minibatch of an epoch may be
    /// smaller, as drop_last=False).
    #[arg(long, value_parser = positive_usize, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate (torch.optim.SGD lr; the base of the schedule).
    #[arg(long, value_parser = positive_f64, default_value_t = 0.01, allow_hyphen_values = true)]
    pub lr: f64,
    /// L2 penalty added to the gradient, as torch.optim.SGD's weight_decay.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 1e-4, allow_hyphen_values = true)]
    pub weight_decay: f64,
    /// Momentum factor (torch.optim.SGD momentum: v = momentum * v + g; 0: plain SGD).
    /// Values >= 1 are allowed, as in PyTorch, but make the velocity grow without bound.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 0.0, allow_hyphen_values = true)]
    pub momentum: f64,
    #[command(flatten)]
    pub sgd: SgdVariantArgs,
    /// Seed of the initialisation, the shuffles and the validation split.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
}

impl HyperArgs {
    /// `--epochs`, or its default.
    pub fn epochs(&self) -> usize {
        self.epochs.unwrap_or(DEFAULT_EPOCHS)
    }
}

/// Learning-rate schedule flags (PyTorch lr_scheduler semantics). Each option is `None`
/// when not given, so that an option of another schedule is refused instead of ignored.
#[derive(Args, Debug, Clone, Default)]
pub struct ScheduleArgs {
    /// Learning-rate schedule: constant, step, multistep, exponential, cosine, onecycle or
    /// plateau (default constant).
    #[arg(long)]
    pub lr_schedule: Option<String>,
    /// StepLR step_size: epochs between two decays by --gamma (default 30).
    #[arg(long, value_parser = positive_usize)]
    pub step_size: Option<usize>,
    /// Decay factor gamma of step (StepLR), multistep (MultiStepLR) and exponential
    /// (ExponentialLR, applied every epoch) (default 0.1).
    #[arg(long)]
    pub gamma: Option<f64>,
    /// MultiStepLR milestones: comma-separated, strictly increasing epoch indices at which
    /// the learning rate is multiplied by --gamma (e.g. 30,60,90).
    #[arg(long)]
    pub milestones: Option<String>,
    /// CosineAnnealingLR T_max in epochs (default: the epochs after warmup).
    #[arg(long, value_parser = positive_usize)]
    pub t_max: Option<usize>,
    /// CosineAnnealingLR eta_min: the lowest learning rate, reached after T_max epochs
    /// (default 0).
    #[arg(long)]
    pub eta_min: Option<f64>,
    /// Epochs of linear warmup before the schedule (LinearLR chained by SequentialLR;
    /// default 0: none).
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: usize,
    /// LinearLR start_factor: the first warmup epoch trains at --lr times this, rising
    /// linearly to --lr (default 1/3; needs --warmup-epochs).
    #[arg(long)]
    pub warmup_start_factor: Option<f64>,
    /// OneCycleLR max_lr: the peak learning rate (default: --lr).
    #[arg(long)]
    pub max_lr: Option<f64>,
    /// OneCycleLR pct_start: the fraction of all steps spent raising the learning rate to
    /// --max-lr (default 0.3).
    #[arg(long)]
    pub pct_start: Option<f64>,
    /// ReduceLROnPlateau factor: the learning rate is multiplied by this on a plateau
    /// (default 0.1).
    #[arg(long)]
    pub plateau_factor: Option<f64>,
    /// ReduceLROnPlateau patience: epochs without improvement of the validation loss (the
    /// training loss without --val-split) before a reduction (default 10).
    #[arg(long)]
    pub plateau_patience: Option<usize>,
    /// ReduceLROnPlateau cooldown: epochs after a reduction before bad epochs count again
    /// (default 0).
    #[arg(long)]
    pub plateau_cooldown: Option<usize>,
    /// ReduceLROnPlateau min_lr: the learning rate is never reduced below this (default 0).
    #[arg(long)]
    pub min_lr: Option<f64>,
}

impl ScheduleArgs {
    /// The schedule options given on the command line, each with its flag name, its value
    /// and the schedules it applies to (empty: it needs --warmup-epochs instead).
    pub fn given(&self) -> Vec<(&'static str, String, &'static [ScheduleKind])> {
        use ScheduleKind::*;
        fn opt<T: ToString>(
            flag: &'static str,
            v: &Option<T>,
            kinds: &'static [ScheduleKind],
        ) -> Option<(&'static str, String, &'static [ScheduleKind])> {
            v.as_ref().map(|v| (flag, v.to_string(), kinds))
        }
        [
            opt("step-size", &self.step_size, &[Step]),
            opt("gamma", &self.gamma, &[Step, MultiStep, Exponential]),
            opt("milestones", &self.milestones, &[MultiStep]),
            opt("t-max", &self.t_max, &[Cosine]),
            opt("eta-min", &self.eta_min, &[Cosine]),
            opt("warmup-start-factor", &self.warmup_start_factor, &[]),
            opt("max-lr", &self.max_lr, &[OneCycle]),
            opt("pct-start", &self.pct_start, &[OneCycle]),
            opt("plateau-factor", &self.plateau_factor, &[Plateau]),
            opt("plateau-patience", &self.plateau_patience, &[Plateau]),
            opt("plateau-cooldown", &self.plateau_cooldown, &[Plateau]),
            opt("min-lr", &self.min_lr, &[Plateau]),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub hyper: HyperArgs,
    /// Hold out this fraction of the training set for validation (tuning and early stopping
    /// look at it; the test set is only reported).
    #[arg(long, value_parser = unit_interval, default_value_t = 0.0)]
    pub val_split: f64,
    /// Stop when the validation loss has not improved for this many epochs (needs --val-split).
    #[arg(long, value_parser = positive_usize)]
    pub early_stop_patience: Option<usize>,
    /// Write one JSON object per epoch to this file (JSON Lines).
    #[arg(long, value_name = "FILE")]
    pub metrics: Option<PathBuf>,
    /// Save the final weights (safetensors, PyTorch nn.Sequential names).
    #[arg(long, value_name = "FILE.safetensors")]
    pub save: Option<PathBuf>,
    /// Save the weights of the epoch with the best validation loss (needs --val-split).
    #[arg(long, value_name = "FILE.safetensors")]
    pub save_best: Option<PathBuf>,
    /// Write learning curves (learning_curves.png and .svg) to this directory after training
    /// (created if missing; its parent must exist).
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Train on a seeded subset of this many training samples (before --val-split).
    #[arg(long, value_parser = positive_usize)]
    pub train_subset: Option<usize>,
    /// Write TensorBoard event files to this run folder: per-epoch losses, accuracies,
    /// learning rate and epoch seconds, and the hyperparameters (HParams dashboard).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// No progress bar and no data summary line.
    #[arg(long)]
    pub quiet: bool,
    /// Before training, time every kernel of --profile-steps steps and print the table
    /// (GPU only; the parameters are restored, so training is unchanged).
    #[arg(long)]
    pub profile: bool,
    /// Steps timed by --profile.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), default_value_t = 20, requires = "profile")]
    pub profile_steps: usize,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// A checkpoint written by `wgtrain train --save`.
    #[arg(long, value_name = "FILE.safetensors")]
    pub model: PathBuf,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Test samples per evaluation minibatch (only speed and memory depend on it).
    #[arg(long, value_parser = positive_usize, default_value_t = 1000)]
    pub batch_size: usize,
    /// Print the confusion matrix (rows: true class, columns: predicted class) with each
    /// class's sample count and accuracy.
    #[arg(long)]
    pub confusion: bool,
    /// Draw the confusion matrix as a heat map (confusion.png and .svg) and the most
    /// confidently misclassified test images (mistakes.png and .svg) in this directory.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Images in mistakes.png (the most confident errors first, 8 per row).
    #[arg(long, value_parser = positive_usize, default_value_t = 32, requires = "plot")]
    pub mistakes: usize,
}

#[derive(Args, Debug, Clone)]
pub struct DownloadArgs {
    /// Dataset name: mnist, fashion-mnist, kmnist, emnist-balanced, emnist-letters,
    /// emnist-digits or qmnist. $WGTRAIN_MIRROR (a base URL ending in /) replaces the mirrors.
    #[arg(value_parser = dataset_name)]
    pub dataset: wgtrain::data::DatasetName,
    /// Destination directory (default: the user cache directory, e.g.
    /// ~/.cache/wgtrain/fashion-mnist; the EMNIST splits share ~/.cache/wgtrain/emnist); a given
    /// one is created if missing, and its parent must exist.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every flag and positional of `cmd` and of its subcommands, as (command path, argument).
    fn arguments(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Arg)>) {
        for a in cmd.get_arguments() {
            out.push((path.to_owned(), a.clone()));
        }
        for sub in cmd.get_subcommands() {
            arguments(sub, &format!("{path} {}", sub.get_name()), out);
        }
    }

    /// Regression (issue 10, item 14): `--epochs`, `--batch-size`, `--momentum`,
    /// `--dampening`, `--nesterov`, `--eta-min`, `--warmup-start-factor`, `--pct-start`,
    /// `--plateau-cooldown` and `--min-lr` had no help text. Every argument of every
    /// subcommand now says what it does.
    #[test]
    fn every_flag_of_every_subcommand_has_a_help_text() {
        let mut cmd = Cli::command();
        cmd.build();
        let mut args = Vec::new();
        arguments(&cmd, "wgtrain", &mut args);
        assert!(args.len() > 100, "only {} arguments found", args.len());
        let missing: Vec<String> = args
            .iter()
            .filter(|(_, a)| a.get_help().is_none_or(|h| h.to_string().trim().is_empty()))
            .map(|(path, a)| format!("{path} {}", a.get_id()))
            .collect();
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    /// The flags with a PyTorch counterpart name it, and those with a unit state it.
    #[test]
    fn flag_help_names_the_pytorch_counterpart_and_the_unit() {
        let cmd = Cli::command();
        let train = cmd.find_subcommand("train").expect("train");
        let cases = [
            ("epochs", "full passes over the training set"),
            ("batch_size", "DataLoader batch_size"),
            ("momentum", "torch.optim.SGD momentum"),
            ("dampening", "torch.optim.SGD dampening"),
            ("nesterov", "torch.optim.SGD nesterov=True"),
            ("eta_min", "CosineAnnealingLR eta_min"),
            ("warmup_start_factor", "LinearLR start_factor"),
            ("pct_start", "OneCycleLR pct_start"),
            ("plateau_cooldown", "ReduceLROnPlateau cooldown: epochs"),
            ("min_lr", "ReduceLROnPlateau min_lr"),
            ("step_size", "StepLR step_size: epochs"),
            ("t_max", "T_max in epochs"),
        ];
        for (id, want) in cases {
            let arg = train
                .get_arguments()
                .find(|a| a.get_id() == id)
                .unwrap_or_else(|| panic!("train has no {id}"));
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains(want), "--{id}: {help:?} lacks {want:?}");
        }
    }
}
