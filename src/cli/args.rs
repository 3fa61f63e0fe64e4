//! Every flag of every subcommand, with the PyTorch MNIST example's defaults.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Directory with the four MNIST IDX files (raw or .gz). Default: $MNIST_DIR, then
    /// ./data/mnist, then the user cache directory (downloaded there if missing).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Never download; fail with the list of directories searched instead.
    #[arg(long)]
    pub no_download: bool,
    /// Normalise pixels with MNIST's mean 0.1307 and std 0.3081 (default: scale to [0, 1]).
    #[arg(long)]
    pub normalize: bool,
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
    #[arg(long, value_parser = unit_interval, default_value_t = 0.0, allow_hyphen_values = true)]
    pub dampening: f64,
    #[arg(long)]
    pub nesterov: bool,
    /// SGDW: decay the weights by lr * weight_decay directly instead of adding it to the gradient.
    #[arg(long)]
    pub decoupled_weight_decay: bool,
    /// Exclude biases from weight decay (PyTorch's default decays every parameter).
    #[arg(long)]
    pub no_decay_bias: bool,
}

/// Model and optimiser hyperparameters.
#[derive(Args, Debug, Clone)]
pub struct HyperArgs {
    /// Hidden layer sizes, comma-separated (e.g. 512,256; "none" for logistic regression).
    #[arg(long, value_parser = hidden_sizes, default_value = "256")]
    pub hidden: HiddenSizes,
    #[arg(long, value_parser = positive_usize, default_value_t = 10)]
    pub epochs: usize,
    #[arg(long, value_parser = positive_usize, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate (the base of the schedule).
    #[arg(long, value_parser = positive_f64, default_value_t = 0.01, allow_hyphen_values = true)]
    pub lr: f64,
    /// L2 penalty added to the gradient, as torch.optim.SGD's weight_decay.
    #[arg(long, value_parser = non_negative_f64, default_value_t = 1e-4, allow_hyphen_values = true)]
    pub weight_decay: f64,
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

/// Learning-rate schedule flags (PyTorch lr_scheduler semantics).
#[derive(Args, Debug, Clone)]
pub struct ScheduleArgs {
    /// constant, step, multistep, exponential, cosine, onecycle or plateau.
    #[arg(long, default_value = "constant")]
    pub lr_schedule: String,
    /// StepLR: epochs between decays.
    #[arg(long, default_value_t = 30)]
    pub step_size: usize,
    /// Decay factor of step, multistep and exponential.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// MultiStepLR milestones, comma-separated epochs.
    #[arg(long, default_value = "")]
    pub milestones: String,
    /// CosineAnnealingLR T_max in epochs (default: the epochs after warmup).
    #[arg(long)]
    pub t_max: Option<usize>,
    #[arg(long, default_value_t = 0.0)]
    pub eta_min: f64,
    /// Linear warmup epochs before the schedule (LinearLR chained by SequentialLR).
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: usize,
    #[arg(long, default_value_t = 1.0 / 3.0)]
    pub warmup_start_factor: f64,
    /// OneCycleLR max_lr (default: --lr).
    #[arg(long)]
    pub max_lr: Option<f64>,
    #[arg(long, default_value_t = 0.3)]
    pub pct_start: f64,
    /// ReduceLROnPlateau factor.
    #[arg(long, default_value_t = 0.1)]
    pub plateau_factor: f64,
    /// ReduceLROnPlateau patience in epochs.
    #[arg(long, default_value_t = 10)]
    pub plateau_patience: usize,
    #[arg(long, default_value_t = 0)]
    pub plateau_cooldown: usize,
    #[arg(long, default_value_t = 0.0)]
    pub min_lr: f64,
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
    /// Write learning curves (learning_curves.png and .svg) to this directory after training.
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
    /// Dataset name (only mnist).
    #[arg(value_parser = ["mnist"])]
    pub dataset: String,
    /// Destination directory (default: the user cache directory).
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}
