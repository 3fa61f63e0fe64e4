//! The model, optimiser and schedule flags that `train` and `profile` take and `sweep`
//! builds per trial ([`HyperArgs`], [`ScheduleArgs`], [`SgdVariantArgs`]), and what they become: the
//! learning-rate schedule, the SGD settings and the TensorBoard hyperparameters; plus the
//! momentum >= 1 warning and its explanation of a diverged run.

use anyhow::Result;
use clap::Args;

use wgtrain::RunConfig;
use wgtrain::model::Normalization;
use wgtrain::optim::SgdConfig;
use wgtrain::schedule::{
    Anneal, LrSchedule, PlateauConfig, PlateauMode, Schedule, ScheduleKind, ThresholdMode,
};
use wgtrain::tensorboard::HParam;

use super::device::DeviceKind;
use super::errors::usage;
use super::parse::{
    HiddenSizes, hidden_sizes, one_non_negative_f64, one_positive_f64, one_positive_usize,
    positive_usize, unit_interval,
};

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
/// Default of `--step-size` (StepLR).
pub const DEFAULT_STEP_SIZE: usize = 30;
/// Default of `--gamma` (StepLR, MultiStepLR, ExponentialLR).
pub const DEFAULT_GAMMA: f64 = 0.1;
/// Default of `--eta-min` (CosineAnnealingLR).
pub const DEFAULT_ETA_MIN: f64 = 0.0;
/// Default of `--warmup-start-factor` (LinearLR's start_factor).
pub const DEFAULT_WARMUP_START_FACTOR: f64 = 1.0 / 3.0;

/// Model and optimiser hyperparameters.
#[derive(Args, Debug, Clone)]
pub struct HyperArgs {
    /// Hidden layer sizes, comma-separated (e.g. 512,256; "none" for logistic regression).
    #[arg(long, value_parser = hidden_sizes, default_value = "256")]
    pub hidden: HiddenSizes,
    /// Epochs: full passes over the training set (default 10; the PyTorch MNIST example's
    /// --epochs).
    #[arg(long, value_parser = one_positive_usize)]
    pub epochs: Option<usize>,
    /// Samples per minibatch (DataLoader batch_size; the last minibatch of an epoch may be
    /// smaller, as drop_last=False).
    #[arg(long, value_parser = one_positive_usize, default_value_t = 64)]
    pub batch_size: usize,
    /// Learning rate (torch.optim.SGD lr; the base of the schedule). `--learning-rate` is
    /// an alias (clap's nearest-name tip pointed PyTorch users at an unrelated flag).
    #[arg(long, alias = "learning-rate", value_parser = one_positive_f64, default_value_t = 0.01, allow_hyphen_values = true)]
    pub lr: f64,
    /// L2 penalty added to the gradient, as torch.optim.SGD's weight_decay.
    #[arg(long, value_parser = one_non_negative_f64, default_value_t = 1e-4, allow_hyphen_values = true)]
    pub weight_decay: f64,
    /// Momentum factor (torch.optim.SGD momentum: v = momentum * v + g; 0: plain SGD).
    /// Values >= 1 are allowed, as in PyTorch, but make the velocity grow without bound.
    #[arg(long, value_parser = one_non_negative_f64, default_value_t = 0.0, allow_hyphen_values = true)]
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
    /// OneCycleLR anneal_strategy: how the learning rate moves between its phases, cos
    /// (cosine annealing) or linear (default cos).
    #[arg(long, value_name = "cos|linear")]
    pub anneal_strategy: Option<Anneal>,
    /// OneCycleLR three_phase=True: up to --max-lr, back down to the initial lr
    /// (max_lr / div_factor) symmetrically, then to the minimum (default: two phases, up
    /// then down to the minimum).
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "true|false")]
    pub three_phase: Option<bool>,
    /// OneCycleLR div_factor: the cycle starts at --max-lr / div_factor (default 25).
    #[arg(long)]
    pub div_factor: Option<f64>,
    /// OneCycleLR final_div_factor: the cycle ends at the initial lr / final_div_factor
    /// (default 1e4).
    #[arg(long)]
    pub final_div_factor: Option<f64>,
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
    /// ReduceLROnPlateau mode: min (default) reduces the learning rate when the watched
    /// metric stops falling. The plateau watches the validation loss (the training loss
    /// without --val-split), so max, for a metric that should rise, is refused.
    #[arg(long, value_name = "min|max")]
    pub plateau_mode: Option<PlateauMode>,
    /// ReduceLROnPlateau threshold: the least change of the loss that counts as an
    /// improvement, relative (a fraction of the best loss) or absolute per
    /// --plateau-threshold-mode (default 1e-4).
    #[arg(long)]
    pub plateau_threshold: Option<f64>,
    /// ReduceLROnPlateau threshold_mode: rel (improvement: loss < best * (1 - threshold);
    /// default) or abs (loss < best - threshold).
    #[arg(long, value_name = "rel|abs")]
    pub plateau_threshold_mode: Option<ThresholdMode>,
    /// ReduceLROnPlateau eps: a reduction smaller than this (in learning rate) is not
    /// applied (default 1e-8).
    #[arg(long)]
    pub plateau_eps: Option<f64>,
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
            opt("anneal-strategy", &self.anneal_strategy, &[OneCycle]),
            opt("three-phase", &self.three_phase, &[OneCycle]),
            opt("div-factor", &self.div_factor, &[OneCycle]),
            opt("final-div-factor", &self.final_div_factor, &[OneCycle]),
            opt("plateau-factor", &self.plateau_factor, &[Plateau]),
            opt("plateau-patience", &self.plateau_patience, &[Plateau]),
            opt("plateau-cooldown", &self.plateau_cooldown, &[Plateau]),
            opt("min-lr", &self.min_lr, &[Plateau]),
            opt("plateau-mode", &self.plateau_mode, &[Plateau]),
            opt("plateau-threshold", &self.plateau_threshold, &[Plateau]),
            opt(
                "plateau-threshold-mode",
                &self.plateau_threshold_mode,
                &[Plateau],
            ),
            opt("plateau-eps", &self.plateau_eps, &[Plateau]),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// `--t-max` without the flag: the epochs after the warmup (at least 1).
pub fn default_t_max(epochs: usize, warmup_epochs: usize) -> usize {
    epochs.saturating_sub(warmup_epochs).max(1)
}

/// The learning-rate schedule the flags describe.
///
/// # Errors
/// A usage error (exit 2) for an unknown schedule, a schedule option that the chosen
/// schedule does not read (`--gamma` with the constant schedule: it would do nothing),
/// `--warmup-start-factor` without `--warmup-epochs`, or values the schedule refuses.
pub fn schedule_from(h: &HyperArgs, steps_per_epoch: usize) -> Result<LrSchedule> {
    let s = &h.schedule;
    let epochs = h.epochs();
    let name = s.lr_schedule.as_deref().unwrap_or("constant");
    let kind: ScheduleKind = name
        .parse()
        .map_err(|e: wgtrain::schedule::ScheduleError| usage("lr schedule", name, e))?;
    // Regression (issue 10, item 11): `--gamma 0.5 --step-size 1` with the constant
    // schedule was accepted and did nothing.
    for (flag, value, kinds) in s.given() {
        if kinds.is_empty() && s.warmup_epochs == 0 {
            return Err(usage(
                flag,
                value,
                "applies to the warmup only: give --warmup-epochs N too, or drop it",
            ));
        }
        if !kinds.is_empty() && !kinds.contains(&kind) {
            let names: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            return Err(usage(
                flag,
                value,
                format!(
                    "applies to --lr-schedule {} only, and this run's schedule is {}, where it \
                     would do nothing; drop it or choose that schedule",
                    names.join(" or "),
                    kind.name()
                ),
            ));
        }
    }
    if s.warmup_epochs >= epochs && s.warmup_epochs > 0 {
        return Err(usage(
            "warmup-epochs",
            s.warmup_epochs,
            format!("must be fewer than the epochs ({epochs}), or the schedule never starts"),
        ));
    }
    let after_warmup = default_t_max(epochs, s.warmup_epochs);
    let gamma = s.gamma.unwrap_or(DEFAULT_GAMMA);
    let plateau = PlateauConfig::default();
    let schedule = match kind {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Step => Schedule::Step {
            step_size: s.step_size.unwrap_or(DEFAULT_STEP_SIZE),
            gamma,
        },
        ScheduleKind::MultiStep => {
            let m = s.milestones.as_deref().unwrap_or("");
            Schedule::MultiStep {
                milestones: wgtrain::schedule::parse_milestones(m).map_err(|e| {
                    // The parser's message repeats the value; say it once.
                    let prefix = format!("invalid milestones '{m}': ");
                    usage("milestones", m, e.strip_prefix(&prefix).unwrap_or(&e))
                })?,
                gamma,
            }
        }
        ScheduleKind::Exponential => Schedule::Exponential { gamma },
        ScheduleKind::Cosine => Schedule::Cosine {
            t_max: s.t_max.unwrap_or(after_warmup),
            eta_min: s.eta_min.unwrap_or(DEFAULT_ETA_MIN),
        },
        ScheduleKind::OneCycle => {
            match Schedule::one_cycle(s.max_lr.unwrap_or(h.lr), epochs * steps_per_epoch) {
                Schedule::OneCycle {
                    max_lr,
                    total_steps,
                    pct_start,
                    div_factor,
                    final_div_factor,
                    three_phase,
                    anneal,
                } => Schedule::OneCycle {
                    max_lr,
                    total_steps,
                    pct_start: s.pct_start.unwrap_or(pct_start),
                    div_factor: s.div_factor.unwrap_or(div_factor),
                    final_div_factor: s.final_div_factor.unwrap_or(final_div_factor),
                    three_phase: s.three_phase.unwrap_or(three_phase),
                    anneal: s.anneal_strategy.unwrap_or(anneal),
                },
                other => other,
            }
        }
        ScheduleKind::Plateau => {
            if let Some(mode @ PlateauMode::Max) = s.plateau_mode {
                return Err(usage(
                    "plateau-mode",
                    mode,
                    "is for a metric that should rise (an accuracy), and the plateau watches \
                     the validation loss (the training loss without --val-split), which should \
                     fall: max would cut the learning rate while the loss improves; use min",
                ));
            }
            Schedule::Plateau(PlateauConfig {
                mode: s.plateau_mode.unwrap_or(plateau.mode),
                factor: s.plateau_factor.unwrap_or(plateau.factor),
                patience: s.plateau_patience.unwrap_or(plateau.patience),
                threshold: s.plateau_threshold.unwrap_or(plateau.threshold),
                threshold_mode: s.plateau_threshold_mode.unwrap_or(plateau.threshold_mode),
                cooldown: s.plateau_cooldown.unwrap_or(plateau.cooldown),
                min_lr: s.min_lr.unwrap_or(plateau.min_lr),
                eps: s.plateau_eps.unwrap_or(plateau.eps),
            })
        }
    };
    let lr = LrSchedule::new(h.lr, schedule).with_warmup(
        s.warmup_epochs,
        s.warmup_start_factor.unwrap_or(DEFAULT_WARMUP_START_FACTOR),
    );
    lr.validate().map_err(|e| usage("lr schedule", &lr, e))?;
    check_decays_fire(s, &lr.schedule, epochs)?;
    Ok(lr)
}

/// Refuses a decay that never happens within the run: a `--milestones` entry or a
/// `--step-size` (given or the default 30) at or past the main schedule's last epoch index
/// (`epochs - 1 - warmup`; the main schedule counts epochs after the warmup), where the
/// learning rate would silently stay as it was.
fn check_decays_fire(s: &ScheduleArgs, schedule: &Schedule, epochs: usize) -> Result<()> {
    let main_epochs = epochs.saturating_sub(s.warmup_epochs);
    let after_warmup = if s.warmup_epochs > 0 {
        format!(" after the {} warmup epochs", s.warmup_epochs)
    } else {
        String::new()
    };
    match schedule {
        Schedule::MultiStep { milestones, .. } => {
            if let Some(&m) = milestones.iter().find(|&&m| m >= main_epochs) {
                return Err(usage(
                    "milestones",
                    s.milestones.as_deref().unwrap_or(""),
                    format!(
                        "milestone {m} is never reached: the run has {main_epochs} epochs{after_warmup} (numbered 0 to {}), so the learning rate would never decay there; use milestones below {main_epochs} or raise --epochs above {}",
                        main_epochs - 1,
                        m + s.warmup_epochs
                    ),
                ));
            }
        }
        Schedule::Step { step_size, .. } if *step_size >= main_epochs => {
            let given = if s.step_size.is_some() {
                ""
            } else {
                " (the default)"
            };
            return Err(usage(
                "step-size",
                step_size,
                format!(
                    "step size {step_size}{given} is never reached: the run has {main_epochs} epochs{after_warmup}, so the learning rate would never decay; use a --step-size below {main_epochs} or raise --epochs above {}",
                    step_size + s.warmup_epochs
                ),
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Refuses the SGD options no run of the command would read (the README's rule for
/// options a run would ignore): `--dampening` when every run's momentum is 0 (it only
/// scales the momentum buffer's update), `--no-decay-bias` and `--decoupled-weight-decay`
/// when every run's weight decay is 0. `momenta` and `decays` are the values the command's
/// runs may take (one for `train`, every trial's for a sweep); `runs` names them in the
/// message ("this run's", "every trial's").
///
/// # Errors
/// A usage error (exit 2) naming the option and why it would do nothing.
pub fn check_sgd_options_apply(
    sgd: &SgdVariantArgs,
    momenta: &[f64],
    decays: &[f64],
    runs: &str,
) -> Result<()> {
    if sgd.dampening != 0.0 && momenta.iter().all(|&m| m == 0.0) {
        return Err(usage(
            "dampening",
            sgd.dampening,
            format!(
                "applies to momentum only (v = momentum * v + (1 - dampening) * g), and {runs} momentum is 0, where it would do nothing; drop --dampening or give a --momentum above 0"
            ),
        ));
    }
    if decays.iter().all(|&d| d == 0.0) {
        for (flag, given) in [
            ("no-decay-bias", sgd.no_decay_bias),
            ("decoupled-weight-decay", sgd.decoupled_weight_decay),
        ] {
            if given {
                return Err(usage(
                    flag,
                    "true",
                    format!(
                        "changes how weight decay is applied, and {runs} weight decay is 0, where it would do nothing; drop --{flag} or give a --weight-decay above 0"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The torch.optim.SGD settings the flags describe (not yet validated).
pub fn sgd_from(h: &HyperArgs) -> SgdConfig {
    SgdConfig {
        weight_decay: h.weight_decay,
        momentum: h.momentum,
        dampening: h.sgd.dampening,
        nesterov: h.sgd.nesterov,
        decoupled_weight_decay: h.sgd.decoupled_weight_decay,
        decay_bias: !h.sgd.no_decay_bias,
    }
}

/// The run the flags describe, for data whose epochs have `steps_per_epoch` minibatches:
/// model, minibatch, epochs, schedule, SGD, seed, `normalization` and `validation_split`
/// (early stopping off; a caller that offers it sets it).
///
/// # Errors
/// An invalid schedule (as [`schedule_from`]).
pub fn run_config(
    h: &HyperArgs,
    steps_per_epoch: usize,
    normalization: Normalization,
    validation_split: f64,
) -> Result<RunConfig> {
    Ok(RunConfig {
        hidden: h.hidden.0.clone(),
        batch_size: h.batch_size,
        epochs: h.epochs(),
        schedule: schedule_from(h, steps_per_epoch)?,
        sgd: sgd_from(h),
        normalization,
        seed: h.seed,
        init_seed: None,
        validation_split,
        early_stop_patience: None,
        precision: Default::default(),
    })
}

/// The hyperparameters a run records for TensorBoard's HParams dashboard: the model, the
/// optimiser (torch.optim.SGD's names), the schedule, the seed and the data options.
pub(crate) fn tensorboard_hparams(
    h: &HyperArgs,
    device: DeviceKind,
    normalize: bool,
    val_split: f64,
) -> Vec<(String, HParam)> {
    let hidden = if h.hidden.0.is_empty() {
        "none".to_string()
    } else {
        let sizes: Vec<String> = h.hidden.0.iter().map(usize::to_string).collect();
        sizes.join(",")
    };
    let n = |v: f64| HParam::Number(v);
    [
        ("hidden", HParam::Text(hidden)),
        ("epochs", n(h.epochs() as f64)),
        ("batch_size", n(h.batch_size as f64)),
        ("lr", n(h.lr)),
        (
            "lr_schedule",
            HParam::Text(
                h.schedule
                    .lr_schedule
                    .clone()
                    .unwrap_or_else(|| "constant".into()),
            ),
        ),
        ("warmup_epochs", n(h.schedule.warmup_epochs as f64)),
        ("weight_decay", n(h.weight_decay)),
        ("momentum", n(h.momentum)),
        ("dampening", n(h.sgd.dampening)),
        ("nesterov", HParam::Bool(h.sgd.nesterov)),
        (
            "decoupled_weight_decay",
            HParam::Bool(h.sgd.decoupled_weight_decay),
        ),
        ("decay_bias", HParam::Bool(!h.sgd.no_decay_bias)),
        ("seed", n(h.seed as f64)),
        ("normalize", HParam::Bool(normalize)),
        ("val_split", n(val_split)),
        ("device", HParam::Text(format!("{device:?}").to_lowercase())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Warns when `--momentum` is 1 or more: PyTorch allows it, but the velocity then never
/// decays (v = momentum * v + g grows without bound), so training usually diverges.
pub(crate) fn warn_momentum(momentum: f64) {
    if momentum >= 1.0 {
        note!(
            "warning: --momentum {momentum} is >= 1: the velocity never decays and training \
             usually diverges; use a momentum below 1 (e.g. 0.9)"
        );
    }
}

/// `x` as a user would type it: `1e30` rather than thirty-one digits, `0.01` as is.
fn short(x: f64) -> String {
    if x != 0.0 && !(1e-4..1e6).contains(&x.abs()) {
        format!("{x:e}")
    } else {
        x.to_string()
    }
}

/// Names momentum >= 1, or a weight decay that overshoots (`lr * weight_decay > 1`: the
/// decay step `w -= lr * weight_decay * w` flips and grows the weights; only for a weight
/// decay above 1, since a huge `--lr` with an ordinary decay is the learning rate's fault),
/// as the likely cause when the loss became non-finite, instead of only advising a lower learning rate;
/// other errors pass unchanged.
pub(crate) fn explain_divergence(
    e: wgtrain::Error,
    momentum: f64,
    lr: f64,
    weight_decay: f64,
) -> anyhow::Error {
    let what = match &e {
        wgtrain::Error::NonFiniteLoss {
            epoch,
            step,
            last_finite,
        } => format!(
            "the training loss became non-finite at epoch {epoch}, step {step} (last finite \
             minibatch loss: {last_finite}); the run was stopped."
        ),
        wgtrain::Error::LossExploded {
            epoch, loss, first, ..
        } => format!(
            "the training loss exploded at epoch {epoch} (its mean was {loss} against {first} \
             at the first step); the run was stopped."
        ),
        _ => return e.into(),
    };
    if momentum >= 1.0 {
        anyhow::anyhow!(
            "{what} The likely cause is --momentum {momentum}: at 1 or more the velocity \
             never decays (v = momentum * v + g). Use a momentum below 1 (e.g. 0.9), then \
             lower the learning rate (--lr) if it still diverges."
        )
    } else if lr * weight_decay > 1.0 && weight_decay > 1.0 {
        anyhow::anyhow!(
            "{what} The likely cause is --weight-decay {} with --lr {}: their product is {}, \
             above 1, so each decay step (w -= lr * weight_decay * w) overshoots zero and \
             blows the weights up. Lower --weight-decay (e.g. 1e-4) so that lr * \
             weight_decay is well below 1, or lower the learning rate (--lr).",
            short(weight_decay),
            short(lr),
            short(lr * weight_decay)
        )
    } else {
        e.into()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `train`'s model and optimiser flags alone.
    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        hyper: HyperArgs,
    }

    fn schedule(args: &[&str]) -> Result<LrSchedule> {
        let flags = Flags::try_parse_from(std::iter::once("train").chain(args.iter().copied()))?;
        schedule_from(&flags.hyper, 100)
    }

    /// Issue 26, item 12: OneCycleLR's anneal_strategy, three_phase, div_factor and
    /// final_div_factor, and ReduceLROnPlateau's threshold, threshold_mode and eps, had no
    /// flag. Each flag reaches the schedule under PyTorch's name; each is refused with
    /// another schedule, where it would do nothing.
    #[test]
    fn pytorch_schedule_settings_have_flags_that_reach_the_schedule() {
        let s = schedule(&[
            "--lr-schedule",
            "onecycle",
            "--epochs",
            "2",
            "--anneal-strategy",
            "linear",
            "--three-phase",
            "--div-factor",
            "10",
            "--final-div-factor",
            "100",
        ])
        .unwrap();
        assert_eq!(
            s.schedule,
            Schedule::OneCycle {
                max_lr: 0.01,
                total_steps: 200,
                pct_start: 0.3,
                div_factor: 10.0,
                final_div_factor: 100.0,
                three_phase: true,
                anneal: Anneal::Linear,
            }
        );
        // `--three-phase false` as a replayed command line writes it.
        let s = schedule(&["--lr-schedule", "onecycle", "--three-phase", "false"]).unwrap();
        assert!(matches!(
            s.schedule,
            Schedule::OneCycle {
                three_phase: false,
                ..
            }
        ));
        let s = schedule(&[
            "--lr-schedule",
            "plateau",
            "--plateau-mode",
            "min",
            "--plateau-threshold",
            "0.01",
            "--plateau-threshold-mode",
            "abs",
            "--plateau-eps",
            "1e-6",
        ])
        .unwrap();
        assert_eq!(
            s.schedule,
            Schedule::Plateau(PlateauConfig {
                threshold: 0.01,
                threshold_mode: ThresholdMode::Abs,
                eps: 1e-6,
                ..PlateauConfig::default()
            })
        );
        for (flag, value) in [
            ("--three-phase", "true"),
            ("--div-factor", "10"),
            ("--plateau-eps", "1e-6"),
            ("--plateau-threshold-mode", "abs"),
        ] {
            let e = schedule(&["--lr-schedule", "cosine", flag, value])
                .unwrap_err()
                .to_string();
            assert!(e.contains("applies to --lr-schedule"), "{flag}: {e}");
        }
        let e = schedule(&["--lr-schedule", "plateau", "--plateau-mode", "max"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("the plateau watches the validation loss"), "{e}");
        // Values the schedule refuses are refused here.
        assert!(schedule(&["--lr-schedule", "onecycle", "--div-factor", "0"]).is_err());
    }
}
