//! `wgtrain train`: its flags ([`TrainArgs`]), the checks made before any work, the
//! training loop with its progress bar, metrics file, TensorBoard events, checkpoints,
//! learning curves and training state (`--state`, `--resume`: [`super::train_state`]),
//! and the locks on its outputs.

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use wgtrain::RunConfig;
use wgtrain::checkpoint::{self, WeightDtype};
use wgtrain::engine::{Engine, RunData};
use wgtrain::jsonl::JsonLinesWriter;
use wgtrain::lock::OutputLock;
use wgtrain::model::MlpSpec;
use wgtrain::output::OutputKind;
use wgtrain::schedule::HparamSchedule;
use wgtrain::tensorboard::{EventWriter, SessionStatus};
use wgtrain::train::{self, EpochReport, Trainer};
use wgtrain::tune::{EpochMetrics, plot};

use super::common::{
    DEFAULT_EPOCHS, DataArgs, DeviceArgs, DeviceKind, FailedOutputs, Flags, HyperArgs,
    PrecisionArgs, Recorded, bad_input, cause, check_data, check_outputs, check_outputs_spare_data,
    check_outputs_spare_inputs, check_sgd_options_apply, choice, device_path, explain_divergence,
    hidden_text, load_data, normalization, opt, positive_usize, resolve_device, run_config,
    schedule_flags, schedule_from, sgd_flags, sgd_from, tensorboard_hparams, unit_interval, usage,
    warn_momentum, with_subset,
};
use super::engines::Engines;
use super::train_state::{self, Resume, StateWriter};
use super::{interrupt, profile, save};

/// `wgtrain train`: the flags.
#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub hyper: HyperArgs,
    #[command(flatten)]
    pub precision: PrecisionArgs,
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
    /// Start from this checkpoint's weights (a wgtrain or PyTorch nn.Sequential
    /// safetensors file; fine-tuning, warm starts, comparing with PyTorch from the same
    /// weights) instead of the seed's initialisation; its shapes must be this run's model.
    /// The seed still orders the minibatches. The momentum buffer starts at zero.
    #[arg(long, value_name = "FILE.safetensors")]
    pub init: Option<PathBuf>,
    /// Save the initial weights (the seed's initialisation, or --init's) before the first
    /// epoch, e.g. to start PyTorch from the same weights.
    #[arg(long, value_name = "FILE.safetensors")]
    pub save_init: Option<PathBuf>,
    /// Element type of the tensors --save, --save-best and --save-init write (an
    /// interrupted run's --save too): f32 (torch.float32, 4 bytes per weight; default), f16 (torch.float16,
    /// 2 bytes; a weight beyond ±65504 is refused) or bf16 (torch.bfloat16, 2 bytes, f32's
    /// range); rounded to nearest even, as PyTorch's .half() and .bfloat16() round.
    #[arg(long, value_enum, value_name = "DTYPE")]
    pub save_dtype: Option<SaveDtype>,
    /// Fold the --normalize mean and std into the first layer of the weights --save,
    /// --save-best and --save-init write (W' = W / std, b' = b - (mean / std) * W·1), so
    /// that they take pixels in [0, 1]: PyTorch code without transforms.Normalize
    /// (ToTensor alone) then gets the trained accuracy. Needs --normalize.
    #[arg(long)]
    pub fold_normalize: bool,
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
    /// Train epoch e with the base lr and weight decay of this file's epoch e (JSON:
    /// {"epochs": [{"epoch": 1, "lr": 0.05, "weight_decay": 1e-4}, ...]}), e.g. a PBT
    /// sweep's pbt_best_schedule.json; the run trains the file's epochs. The momentum
    /// buffer is kept when the weight decay changes.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["lr", "weight_decay", "epochs"])]
    pub hparam_schedule: Option<PathBuf>,
    /// Write the training state (weights, momentum, learning-rate schedule and plateau
    /// state, epoch and step, the settings and every epoch's report) to this file when the
    /// run starts, after every epoch and when Ctrl-C or SIGTERM stops it (atomically: a
    /// kill -9 leaves the last one whole), for --resume.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Go on with the run whose training state this file holds (--state): give the run's
    /// flags again (other settings or data are refused, naming the flag). It goes on where
    /// the state was written (the step a Ctrl-C stopped at, or the last whole epoch after a
    /// kill) and ends with the weights and metrics of the uninterrupted run, writing the
    /// state on to this file (or to --state).
    #[arg(long, value_name = "FILE", conflicts_with = "save_init")]
    pub resume: Option<PathBuf>,
    /// Steps timed by --profile.
    #[arg(long, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..), default_value_t = 20, requires = "profile")]
    pub profile_steps: usize,
}

/// `--save-dtype`: the element type of saved checkpoints.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveDtype {
    F32,
    F16,
    Bf16,
}

impl From<SaveDtype> for WeightDtype {
    fn from(d: SaveDtype) -> Self {
        match d {
            SaveDtype::F32 => WeightDtype::F32,
            SaveDtype::F16 => WeightDtype::F16,
            SaveDtype::Bf16 => WeightDtype::Bf16,
        }
    }
}

/// Runs `wgtrain train`.
pub fn train_command(mut a: TrainArgs) -> Result<()> {
    let hparams = match &a.hparam_schedule {
        Some(p) => {
            let s = HparamSchedule::read(p)
                .map_err(|e| usage("hparam-schedule", p.display(), cause(&e)))?;
            // The engine opens with epoch 1's values; the trainer sets each epoch's.
            a.hyper.lr = s.epochs[0].lr;
            a.hyper.weight_decay = s.epochs[0].weight_decay;
            a.hyper.epochs = Some(s.len());
            Some(s)
        }
        None => None,
    };
    let h = &a.hyper;
    if a.early_stop_patience.is_some() && a.val_split == 0.0 {
        return Err(usage(
            "early-stop-patience",
            a.early_stop_patience.unwrap_or(0),
            "needs a validation split (--val-split 0.1)",
        ));
    }
    if a.save_best.is_some() && a.val_split == 0.0 {
        return Err(usage(
            "save-best",
            a.save_best
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            "needs a validation split (--val-split 0.1)",
        ));
    }
    if let (Some(d), None, None, None) = (a.save_dtype, &a.save, &a.save_best, &a.save_init) {
        return Err(usage(
            "save-dtype",
            WeightDtype::from(d),
            "applies to --save, --save-best and --save-init only, and this run saves no weights",
        ));
    }
    if a.fold_normalize {
        let refusal = if !a.data.normalize {
            Some(
                "applies to runs with --normalize only (without it the weights already take pixels in [0, 1])",
            )
        } else if a.save.is_none() && a.save_best.is_none() && a.save_init.is_none() {
            Some(
                "applies to --save, --save-best and --save-init only, and this run saves no weights",
            )
        } else {
            None
        };
        if let Some(why) = refusal {
            return Err(usage("fold-normalize", true, why));
        }
    }
    // Flags that need no data, and output paths, are checked before loading anything.
    // The state goes to --state, or back to the --resume file, which must exist.
    if let Some(p) = &a.resume {
        train_state::check_exists(p)?;
    }
    let state_out = a.state.clone().or_else(|| a.resume.clone());
    check_outputs([
        (a.metrics.as_deref(), OutputKind::File),
        (a.save.as_deref(), OutputKind::File),
        (a.save_best.as_deref(), OutputKind::File),
        (a.save_init.as_deref(), OutputKind::File),
        (state_out.as_deref(), OutputKind::File),
        (a.plot.as_deref(), OutputKind::Dir),
        (a.tensorboard.as_deref(), OutputKind::Dir),
    ])?;
    check_outputs_spare_inputs(
        [
            a.metrics.as_deref(),
            a.save.as_deref(),
            a.save_best.as_deref(),
            a.save_init.as_deref(),
        ],
        &[
            ("init", a.init.as_deref()),
            ("hparam-schedule", a.hparam_schedule.as_deref()),
            ("resume", a.resume.as_deref()),
        ],
    )?;
    check_outputs_spare_inputs(
        [state_out.as_deref()],
        &[
            ("init", a.init.as_deref()),
            ("hparam-schedule", a.hparam_schedule.as_deref()),
        ],
    )?;
    save::warn_torch_save_names([
        a.save.as_deref(),
        a.save_best.as_deref(),
        a.save_init.as_deref(),
    ]);
    // The header now (a malformed file fails at once); the tensors once the header is
    // known to be this run's model. A resumed run's weights are its state's.
    if let (Some(p), Some(_)) = (&a.init, &a.resume) {
        note!(
            "--init {}: not read; a resumed run goes on from the weights in its state",
            p.display()
        );
    }
    let init = match (&a.init, &a.resume) {
        (Some(p), None) => Some(
            checkpoint::read_header(p)
                .map_err(|e| bad_input(e).context("reading the initial weights (--init)"))?,
        ),
        _ => None,
    };
    warn_momentum(h.momentum);
    // The Ctrl-C handler before the locks: a Ctrl-C during start-up then stops the run at
    // its first step boundary, writing the outputs and releasing the locks, instead of
    // killing the process with its lock files left behind.
    interrupt::stop_flag();
    let locks = lock_train_outputs(&a, state_out.as_deref())?;
    if let Some(dir) = &a.tensorboard {
        wgtrain::lock::check_unheld(dir, &locks)?;
    }
    // Read under the lock: no other run rewrites it meanwhile.
    let resume = match &a.resume {
        Some(p) => {
            let r = train_state::read(p)?;
            r.check_flags(&flags_of(&a, hparams.as_ref()))?;
            Some(r)
        }
        None => None,
    };
    train_state::check_not_replacing(a.state.as_deref(), a.resume.as_deref())?;
    profile::check_train_flags(a.device.device, a.profile)?;
    let lr_schedule = schedule_from(h, 1)?;
    if hparams.is_some() {
        HparamSchedule::check_schedule(&lr_schedule)?;
    }
    sgd_from(h).validate()?;
    let decays: Vec<f64> = match &hparams {
        Some(s) => s.epochs.iter().map(|e| e.weight_decay).collect(),
        None => vec![h.weight_decay],
    };
    check_sgd_options_apply(&h.sgd, &[h.momentum], &decays, "this run's")?;
    // Where the data is, after the flags and before the adapter is opened: bad input is
    // found before any work.
    check_data(&a.data)?;
    // The device is chosen before the data loads: a wrong --adapter fails at once.
    let precision = a.precision.precision.to_lib();
    a.device = resolve_device(&a.device, precision, a.profile.then_some("--profile"))?;
    let device = device_path(&a.device);
    if let Some(r) = &resume {
        r.warn_device(device);
    }
    let mut engines = Engines::open_for(&a.device, precision)?;
    let mnist = with_subset(load_data(&a.data, a.quiet)?, a.train_subset, h.seed)?;
    if let Some(r) = &resume {
        r.check_data(&mnist)?;
    }
    check_outputs_spare_data(
        [
            a.metrics.as_deref(),
            a.save.as_deref(),
            a.save_best.as_deref(),
            a.save_init.as_deref(),
        ],
        &mnist,
    )?;
    if let (Some(ck), Some(p)) = (&init, &a.init) {
        check_init(p, ck, &mnist, &h.hidden.0, normalization(&a.data))?;
    }
    let (_, validation) = train::validation_split(mnist.train.len(), a.val_split, h.seed)?;
    if a.val_split > 0.0 && validation.is_empty() {
        return Err(usage(
            "val-split",
            a.val_split,
            format!(
                "holds out no sample of {} (use a larger fraction)",
                mnist.train.len()
            ),
        ));
    }
    let n_train = mnist.train.len() - validation.len();
    if h.batch_size > n_train {
        let held = if validation.is_empty() {
            String::new()
        } else {
            format!(", after holding out {} for validation", validation.len())
        };
        return Err(usage(
            "batch size",
            h.batch_size,
            format!("must be between 1 and the number of training samples ({n_train}{held})"),
        ));
    }
    let steps_per_epoch = n_train.div_ceil(h.batch_size);
    let cfg = RunConfig {
        early_stop_patience: a.early_stop_patience,
        precision: a.precision.precision.to_lib(),
        ..run_config(h, steps_per_epoch, normalization(&a.data), a.val_split)?
    };
    train::validate(&cfg, n_train)?;
    let data = RunData::from(&mnist);
    let init = match (&a.init, &resume) {
        (Some(p), None) => Some(
            checkpoint::load(p)
                .map_err(|e| bad_input(e).context("reading the initial weights (--init)"))?
                .params,
        ),
        _ => None,
    };
    let state = state_out.map(|p| {
        StateWriter::new(
            &p,
            Recorded::new(&flags_of(&a, hparams.as_ref()), &mnist),
            device,
        )
    });
    let run = Run {
        a: &a,
        hparams,
        resume,
        state,
    };
    if a.profile {
        engines.with_gpu(&cfg, data, |gpu, kernels, engine| {
            if let Some(p) = &init {
                engine.set_params(0, p)?;
            }
            profile::profile_before_training(gpu, kernels, engine, a.profile_steps)?;
            run_training(run, engine)
        })?;
        Ok(())
    } else {
        engines.with(&cfg, data, init.as_deref(), |engine| {
            run_training(run, engine)
        })
    }
}

/// The flags of `a` that decide what the run computes, as typed, in `--help` order, for
/// `--state` to record and `--resume` to check (`hparams`: the `--hparam-schedule` file's
/// schedule, recorded by its values). The other flags are outputs, the device (recorded
/// apart, warned of), `--data` (the data's fingerprint is recorded) and `--init` (the
/// weights are the state's).
fn flags_of(a: &TrainArgs, hparams: Option<&HparamSchedule>) -> Flags {
    let h = &a.hyper;
    let schedule = hparams.map(|s| {
        let values: Vec<String> = s
            .epochs
            .iter()
            .map(|e| format!("{}:{}", e.lr, e.weight_decay))
            .collect();
        format!("lr:weight-decay per epoch {}", values.join(","))
    });
    let mut flags = Flags::from(vec![
        ("dataset", opt(&a.data.dataset)),
        ("normalize", a.data.normalize.to_string()),
        ("classes", opt(&a.data.classes)),
        ("train-subset", opt(&a.train_subset)),
        ("hidden", hidden_text(&h.hidden.0)),
    ]);
    // Recorded at its default when left out: `--epochs 10` is the same run.
    flags.push_or_default("epochs", h.epochs, DEFAULT_EPOCHS);
    flags.append(Flags::from(vec![
        ("batch-size", h.batch_size.to_string()),
        ("lr", h.lr.to_string()),
        ("weight-decay", h.weight_decay.to_string()),
        ("momentum", h.momentum.to_string()),
    ]));
    flags.append(Flags::from(sgd_flags(&h.sgd)));
    flags.push("seed", h.seed);
    flags.append(schedule_flags(&h.schedule, Some(h.epochs()), Some(h.lr)));
    flags.append(Flags::from(vec![
        ("precision", choice(a.precision.precision)),
        ("val-split", a.val_split.to_string()),
        ("early-stop-patience", opt(&a.early_stop_patience)),
        ("hparam-schedule", opt(&schedule)),
    ]));
    flags
}

/// What `run_training` is given besides the engine: the flags, the hparam schedule, the
/// state to go on from and where to write the state.
struct Run<'a> {
    a: &'a TrainArgs,
    hparams: Option<HparamSchedule>,
    resume: Option<Resume>,
    state: Option<StateWriter>,
}

/// Refuses `--init` weights that are not this run's model (the inputs and classes of the
/// data, the `--hidden` sizes), naming both shapes and the flag that fixes it, or that
/// were trained on other inputs (another `--normalize`).
///
/// # Errors
/// A usage error (exit 2).
fn check_init(
    path: &Path,
    ck: &checkpoint::CheckpointHeader,
    mnist: &wgtrain::data::Mnist,
    hidden: &[usize],
    norm: wgtrain::model::Normalization,
) -> Result<()> {
    let spec = MlpSpec::new(mnist.train.features(), hidden, mnist.classes)?;
    if ck.spec != spec {
        let fix = if ck.spec.inputs() == spec.inputs() && ck.spec.classes() == spec.classes() {
            format!(
                "give --hidden {}, or a checkpoint of this model",
                hidden_text(ck.spec.hidden())
            )
        } else {
            "give a checkpoint trained on data of this shape".into()
        };
        return Err(usage(
            "init",
            path.display(),
            format!(
                "holds an MLP {} but this run trains an MLP {spec} ({} inputs, {} classes, --hidden {}); {fix}",
                ck.spec,
                spec.inputs(),
                spec.classes(),
                hidden_text(hidden)
            ),
        ));
    }
    if let Some(n) = ck.normalization.filter(|&n| n != norm) {
        let describe = |n: wgtrain::model::Normalization| {
            if n == wgtrain::model::Normalization::UNIT {
                "pixels scaled to [0, 1] (no --normalize)".to_string()
            } else {
                format!("inputs normalised with mean {} and std {}", n.mean, n.std)
            }
        };
        return Err(usage(
            "init",
            path.display(),
            format!(
                "was trained on {} but this run feeds {}; match --normalize (and --dataset) to the checkpoint",
                describe(n),
                describe(norm)
            ),
        ));
    }
    Ok(())
}

fn run_training(run: Run<'_>, engine: &mut dyn Engine) -> Result<()> {
    let Run {
        a,
        hparams,
        resume,
        state,
    } = run;
    let setup = engine.setup().shared();
    let (cfg, spec) = (&setup.config, &setup.spec);
    let (cfg, spec, norm) = (cfg.clone(), spec.clone(), cfg.normalization);
    let how = save::SaveAs {
        dtype: a.save_dtype.map_or(WeightDtype::F32, WeightDtype::from),
        fold_normalization: a.fold_normalize,
    };
    let spec = &spec;
    // The GPU path launches kernels; the CPU path runs the same stages as function calls.
    let unit = match a.device.device {
        DeviceKind::Cpu => "stages",
        DeviceKind::Gpu | DeviceKind::Auto => "dispatches",
    };
    note!(
        "model: MLP {spec} ({} parameters), {} {unit} per step; {}",
        spec.layout().trainable(),
        engine.dispatches_per_step(),
        engine.describe()
    );
    note!(
        "training: {} epoch{}, batch {}, lr {}, weight decay {}, momentum {}, seed {}",
        cfg.epochs,
        if cfg.epochs == 1 { "" } else { "s" },
        cfg.batch_size,
        cfg.schedule,
        cfg.sgd.weight_decay,
        cfg.sgd.momentum,
        cfg.seed
    );
    if let (Some(p), None) = (&a.init, &resume) {
        note!("initial weights: {} (--init)", p.display());
    }
    if let Some(path) = &a.save_init {
        let params = engine.params(0)?;
        save::save_checkpoint(path, spec, &params, norm, how, &[])?;
        note!("saved the initial weights to {}", path.display());
    }
    // An output that fails during the run (a full disk) is dropped, said at once, and
    // reported at the end; the run goes on and writes the others.
    let mut failed = FailedOutputs::default();
    let epochs = cfg.epochs;
    let (cfg_momentum, cfg_lr, cfg_decay) =
        (cfg.sgd.momentum, cfg.schedule.base_lr, cfg.sgd.weight_decay);
    let title = format!(
        "MLP {spec}, lr {}, batch {}, weight decay {}",
        cfg.schedule, cfg.batch_size, cfg.sgd.weight_decay
    );
    let mut trainer = match &resume {
        Some(r) => Trainer::restore(engine, &r.snapshot)?,
        None => Trainer::new(engine)?,
    };
    trainer.set_stop_flag(interrupt::stop_flag());
    if let (Some(s), Some(p), None) = (hparams, &a.hparam_schedule, &resume) {
        note!(
            "hparam schedule: {} ({} epochs; lr {:.3e} to {:.3e}, weight decay {:.1e} to {:.1e})",
            p.display(),
            s.len(),
            s.epochs.iter().map(|e| e.lr).fold(f64::INFINITY, f64::min),
            s.epochs.iter().map(|e| e.lr).fold(0.0, f64::max),
            s.epochs
                .iter()
                .map(|e| e.weight_decay)
                .fold(f64::INFINITY, f64::min),
            s.epochs.iter().map(|e| e.weight_decay).fold(0.0, f64::max),
        );
        trainer.set_hparam_schedule(0, s)?;
    }
    // A resumed run starts with the finished epochs' reports and best weights of its state.
    let (mut reports, mut best): (Vec<EpochReport>, Option<(usize, Vec<f32>)>) = match resume {
        Some(r) => {
            say_resume(&r.path, &trainer, epochs, r.history.len());
            (r.history, r.best)
        }
        None => (Vec::new(), None),
    };
    let mut history: Vec<EpochMetrics> = reports
        .iter()
        .map(|r| EpochMetrics::from_report(r, true))
        .collect();
    let mut metrics = match &a.metrics {
        Some(p) => {
            let mut w = JsonLinesWriter::create(p)?;
            // A resumed run's file holds every epoch again, the earlier ones as written.
            for r in &reports {
                w.append(r).map_err(|e| {
                    anyhow::anyhow!("writing the metrics file {}: {e}", p.display())
                })?;
            }
            Some(w)
        }
        None => None,
    };
    let mut tb = match &a.tensorboard {
        Some(dir) => {
            let mut w = EventWriter::create(dir)?;
            w.session_start(&tensorboard_hparams(
                &a.hyper,
                a.device.device,
                a.data.normalize,
                a.val_split,
            ))?;
            Some(w)
        }
        None => None,
    };
    let mut save_best_ok = true;
    if let (Some(path), Some((epoch, params))) = (&a.save_best, &best) {
        // The best epoch before the resume: its weights are the state's.
        match save::save_checkpoint(path, spec, params, norm, how, &[]) {
            Ok(()) => note!(
                "saved the best model so far (epoch {epoch}, from the state) to {}",
                path.display()
            ),
            Err(e) => {
                failed.record(
                    e.context(format!("saving the best model to {}", path.display())),
                    true,
                );
                save_best_ok = false;
            }
        }
    }
    // A failed state write (a full disk) is warned of once and tried again at the next
    // write; the failure stands only if the last write failed. Whether the file holds a
    // whole state of this run: one written by it, or the --resume file it goes on from.
    let mut state_failing: Option<anyhow::Error> = None;
    let mut state_written = a.state.is_none() && a.resume.is_some();
    let mut write_state = |trainer: &mut Trainer<'_>,
                           reports: &[EpochReport],
                           best: Option<&(usize, Vec<f32>)>|
     -> Option<bool> {
        let w = state.as_ref()?;
        let written = trainer
            .snapshot()
            .and_then(|snap| w.write(&snap, reports, best));
        match written {
            Ok(()) => {
                if state_failing.take().is_some() {
                    note!(
                        "wrote the training state {} again (after {} epochs)",
                        w.path.display(),
                        reports.len()
                    );
                }
                state_written = true;
                Some(true)
            }
            Err(e) => {
                let held = if state_written {
                    "it holds the state written before"
                } else {
                    "no state was written yet"
                };
                let e = anyhow::Error::from(e).context(format!(
                    "writing the training state {} failed after {} epochs; {held}",
                    w.path.display(),
                    reports.len()
                ));
                if state_failing.is_none() {
                    note!("warning: {e:#}; the run goes on and tries again after the next epoch");
                }
                state_failing = Some(e);
                Some(false)
            }
        }
    };
    // The state a kill during the first epoch resumes from.
    write_state(&mut trainer, &reports, best.as_ref());
    let mut interrupted = None;
    let steps = trainer.steps_per_epoch() as u64;
    while trainer.any_training() {
        let epoch = trainer.epoch();
        let bar = if a.quiet {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(steps)
        };
        bar.set_style(
            ProgressStyle::with_template(
                "epoch {msg} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta}",
            )
            .map_err(|e| anyhow::anyhow!("progress bar template: {e}"))?
            .progress_chars("=> "),
        );
        bar.set_message(format!("{}/{}", epoch + 1, epochs));
        let result = trainer.run_epoch(&mut |done| bar.set_position(done as u64));
        bar.finish_and_clear();
        // One member: its outcome (a divergence is its error).
        let result = result.and_then(|mut o| o.remove(0).into_report());
        let report = match result {
            Ok(r) => r,
            Err(e @ wgtrain::Error::Interrupted { .. }) => {
                interrupted = Some(e);
                break;
            }
            Err(e) => {
                if let Some(w) = &mut tb {
                    // The run's own error is the one to report.
                    let _ = w.session_end(SessionStatus::Failure);
                }
                return Err(explain_divergence(e, cfg_momentum, cfg_lr, cfg_decay));
            }
        };
        say!("{report}");
        history.push(EpochMetrics::from_report(&report, true));
        reports.push(report.clone());
        if let (Some(w), Some(m)) = (&mut tb, history.last()) {
            if let Err(e) = w.epoch(m) {
                let e = anyhow::Error::from(e).context(format!(
                    "writing the TensorBoard events {} failed at epoch {}; they end before it",
                    w.path().display(),
                    report.epoch
                ));
                failed.record(e, true);
                tb = None;
            }
        }
        if let (Some(w), Some(p)) = (&mut metrics, &a.metrics) {
            if let Err(e) = w.append(&report) {
                let e = anyhow::anyhow!(
                    "writing the metrics file {} failed at epoch {}: {e}; it holds the {} epochs before, each a whole line",
                    p.display(),
                    report.epoch,
                    w.lines()
                );
                failed.record(e, true);
                metrics = None;
            }
        }
        if trainer.last_was_best(0) && (a.save_best.is_some() || state.is_some()) {
            let params = trainer.engine().params(0)?;
            if let (Some(path), true) = (&a.save_best, save_best_ok) {
                match save::save_checkpoint(path, spec, &params, norm, how, &[]) {
                    Ok(()) => {
                        if let Some(v) = report.val_loss {
                            note!(
                                "saved the best model so far (epoch {}, validation loss {v:.4}) to {}",
                                report.epoch,
                                path.display()
                            );
                        }
                    }
                    Err(e) => {
                        failed.record(
                            e.context(format!(
                                "saving the best model (epoch {}) to {} failed; it is not saved again",
                                report.epoch,
                                path.display()
                            )),
                            true,
                        );
                        save_best_ok = false;
                    }
                }
            }
            best = Some((report.epoch, params));
        }
        write_state(&mut trainer, &reports, best.as_ref());
        if trainer.stopped_early(0) {
            note!(
                "early stopping: the validation loss has not improved for {} epochs",
                a.early_stop_patience.unwrap_or(0)
            );
        }
    }
    // The state first (it loses nothing of the run), then the weights, then the rest,
    // each on its own.
    if let Some(e) = &interrupted {
        let saved = write_state(&mut trainer, &reports, best.as_ref());
        if let (Some(w), wgtrain::Error::Interrupted { epoch, step, steps }) = (&state, e) {
            if saved == Some(true) {
                note!(
                    "saved the training state to {} (epoch {epoch}, step {step} of {steps}); resume with: {}",
                    w.path.display(),
                    interrupt::resume_command(Some(&w.path))
                );
            } else if state_written {
                note!(
                    "{} holds the state written before; resume from it with: {}",
                    w.path.display(),
                    interrupt::resume_command(Some(&w.path))
                );
            }
        }
    }
    // Whether the state file holds the finished run: a failed --save can be written again
    // from it.
    let state_whole = state_written && state_failing.is_none();
    if let Some(e) = state_failing {
        failed.record(e, false);
    }
    if let Some(path) = &a.save {
        let saved = match &interrupted {
            Some(e) => interrupt::save_interrupted(path, spec, &mut trainer, norm, how, e),
            None => trainer
                .engine()
                .params(0)
                .map_err(anyhow::Error::from)
                .and_then(|params| save::save_checkpoint(path, spec, &params, norm, how, &[]))
                .map(|()| note!("saved {}", path.display())),
        };
        if let Err(e) = saved {
            let hint = match (&state, &interrupted) {
                (_, Some(_)) => String::new(),
                (Some(w), None) if state_whole => format!(
                    "; the trained state is in {}: `{}` writes the weights again",
                    w.path.display(),
                    interrupt::resume_command(Some(&w.path))
                ),
                _ => "; the trained weights are lost with this run: give --state FILE to keep \
                      the trained state, so that a failed save can be written again with \
                      --resume FILE"
                    .to_string(),
            };
            failed.record(
                anyhow::anyhow!("saving {}: {e:#}{hint}", path.display()),
                false,
            );
        }
    }
    if let Some(w) = &mut tb {
        // HParams has no "interrupted" status; an interrupted run did not finish.
        let status = match interrupted {
            Some(_) => SessionStatus::Failure,
            None => SessionStatus::Success,
        };
        match w.session_end(status) {
            Ok(()) => note!("wrote {}", w.path().display()),
            Err(e) => failed.record(anyhow::Error::from(e), false),
        }
    }
    if let Some(dir) = &a.plot {
        if interrupted.is_none() || !history.is_empty() {
            if let Err(e) = plot_run(&history, dir, &title) {
                failed.record(
                    e.context(format!("drawing the learning curves in {}", dir.display())),
                    false,
                );
            }
        }
    }
    match interrupted {
        Some(e) => {
            if let (Some(p), Some(w)) = (&a.metrics, &metrics) {
                note!("{}: {} finished epochs", p.display(), w.lines());
            }
            // The interruption is the error reported; a failed output is a warning.
            if let Err(f) = failed.into_result() {
                note!("warning: {f:#}");
            }
            Err(e.into())
        }
        None => failed.into_result(),
    }
}

/// Says where a resumed run goes on: `resuming run.state: 2 of 10 epochs done, epoch 3
/// from step 504 of 938`.
fn say_resume(path: &Path, trainer: &Trainer<'_>, epochs: usize, done: usize) {
    let state = trainer.state();
    let step = state.epoch_steps_done();
    let from = if !trainer.any_training() {
        "; the run had finished: writing its outputs".to_string()
    } else if step > 0 {
        format!(
            ", epoch {} from step {step} of {}",
            done + 1,
            trainer.steps_per_epoch()
        )
    } else {
        format!(", epoch {} from its start", done + 1)
    };
    note!(
        "resuming {}: {done} of {epochs} epochs done{from}",
        path.display()
    );
}

/// Locks `train`'s output paths (`--save`, `--save-best`, `--save-init`, `--metrics`,
/// `--plot`, and `state`: where the training state goes) before any work, so a second run
/// writing one of them (or resuming the same state) is refused (exit 2) instead of
/// truncating the first run's metrics. The locks are held until the returned guards drop.
///
/// # Errors
/// [`wgtrain::Error::Locked`] naming the path and the other run's PID; the up-front
/// checks of [`wgtrain::output::ensure_writable_file`].
fn lock_train_outputs(a: &TrainArgs, state: Option<&Path>) -> Result<Vec<OutputLock>> {
    if let Some(p) = &a.metrics {
        wgtrain::output::ensure_writable_file(p)?;
    }
    // A directory output is locked inside it (`DIR/.wgtrain.lock`), so it must exist before
    // locking; otherwise a first run would lock `DIR.lock` and a second `DIR/.wgtrain.lock`.
    if let Some(dir) = &a.plot {
        wgtrain::output::ensure_writable_dir(dir)?;
    }
    let paths = [&a.save, &a.save_best, &a.save_init, &a.metrics, &a.plot];
    Ok(wgtrain::lock::lock_all(
        paths
            .into_iter()
            .flatten()
            .map(|p| p.as_path())
            .chain(state),
    )?)
}

/// Writes the learning curves of a finished `wgtrain train` run (`--plot DIR`).
pub(crate) fn plot_run(history: &[EpochMetrics], dir: &Path, title: &str) -> Result<()> {
    for p in plot::learning_curves(history, title, dir, "learning_curves")? {
        note!("wrote {}", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// The flags of `train` that [`flags_of`] leaves out, on purpose: the device (recorded
    /// apart and warned of, since both paths compute the same run to rounding), `--data`
    /// (its fingerprint is recorded), `--init` (a resumed run's weights are its state's)
    /// and the outputs.
    const NOT_RECORDED: &[&str] = &[
        "device",
        "backend",
        "adapter",
        "kernels",
        "fuse",
        "data",
        "no_download",
        "metrics",
        "save",
        "save_best",
        "init",
        "save_init",
        "save_dtype",
        "fold_normalize",
        "plot",
        "tensorboard",
        "quiet",
        "profile",
        "profile_steps",
        "state",
        "resume",
    ];

    /// A flag added to `train` must be recorded in its state (so `--resume` refuses
    /// another value) or left out on purpose: every argument is in one list or the other.
    #[test]
    fn every_train_flag_is_recorded_in_the_state_or_left_out_on_purpose() {
        let cmd = super::super::Cli::command();
        let train = cmd.find_subcommand("train").expect("train");
        let a = <TrainArgs as clap::FromArgMatches>::from_arg_matches(
            &train.clone().get_matches_from(["train"]),
        )
        .unwrap();
        let recorded: Vec<String> = flags_of(&a, None)
            .values()
            .iter()
            .map(|(f, _)| f.replace('-', "_"))
            .collect();
        for arg in train.get_arguments() {
            let id = arg.get_id().as_str();
            if id == "help" || id == "version" {
                continue;
            }
            let r = recorded.iter().any(|f| f == id);
            let n = NOT_RECORDED.contains(&id);
            assert!(r != n, "--{id}: recorded {r}, left out {n}");
        }
    }

    /// `--save-dtype` names each choice's PyTorch dtype and size, and maps to the
    /// checkpoint dtype of the same name.
    #[test]
    fn save_dtype_help_names_the_pytorch_dtypes() {
        let cmd = super::super::Cli::command();
        let train = cmd.find_subcommand("train").expect("train");
        let arg = train
            .get_arguments()
            .find(|a| a.get_id() == "save_dtype")
            .expect("train has --save-dtype");
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        for want in [
            "torch.float32",
            "torch.float16",
            "torch.bfloat16",
            "bytes per weight",
            "65504",
        ] {
            assert!(help.contains(want), "{help:?} lacks {want:?}");
        }
        for (d, name) in [
            (SaveDtype::F32, "f32"),
            (SaveDtype::F16, "f16"),
            (SaveDtype::Bf16, "bf16"),
        ] {
            assert_eq!(d.to_possible_value().unwrap().get_name(), name);
            assert_eq!(WeightDtype::from(d).to_string(), name);
        }
    }
}
