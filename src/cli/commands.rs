//! The subcommands.

use std::io::Write;

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use wgtrain::checkpoint;
use wgtrain::data::{self, Mnist};
use wgtrain::engine::{Engine, EvalSet};
use wgtrain::gpu::autotune::MatmulChoice;
use wgtrain::gpu::kernels::matmul;
use wgtrain::gpu::{self, Gpu, GpuOptions, MatmulVariant};
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::optim::SgdConfig;
use wgtrain::output::OutputKind;
use wgtrain::schedule::{LrSchedule, PlateauConfig, Schedule, ScheduleKind};
use wgtrain::train::{self, TrainConfig, Trainer};

use super::args::{
    Cli, Command, DataArgs, DeviceArgs, DeviceKind, DevicesArgs, EvalArgs, HyperArgs, KernelChoice,
    TrainArgs,
};
use super::bad_input;
use super::engines::{EngineSpec, Engines};
use wgtrain::tensorboard::{EventWriter, HParam, SessionStatus};

pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => train_command(a),
        Command::Eval(a) => eval_command(a),
        Command::Devices(a) => devices_command(a),
        Command::Profile(a) => super::profile::profile_command(a),
        Command::Bench(a) => super::bench::bench_command(a),
        Command::LrFind(a) => super::tune::lr_find_command(a),
        Command::Sweep(a) => super::tune::sweep_command(a),
        Command::Plot(a) => super::tune::plot_command(a),
        Command::Download(a) => download_command(a),
    }
}

/// Checks every output path of a command with the one rule
/// ([`wgtrain::output::check_output`]) before any work: its directory exists (parents are
/// never created) and is not `/`, and a file output is not a directory.
///
/// # Errors
/// [`wgtrain::Error::Output`] for the first bad path, marked as [`super::BadInput`]
/// (exit 2).
pub(crate) fn check_outputs<'a>(
    outputs: impl IntoIterator<Item = (Option<&'a std::path::Path>, OutputKind)>,
) -> Result<()> {
    for (path, kind) in outputs {
        if let Some(p) = path {
            wgtrain::output::check_output(p, kind).map_err(bad_input)?;
        }
    }
    Ok(())
}

pub(crate) fn usage(
    name: &'static str,
    value: impl ToString,
    reason: impl ToString,
) -> anyhow::Error {
    wgtrain::Error::InvalidConfig {
        name,
        value: value.to_string(),
        reason: reason.to_string(),
    }
    .into()
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
    let after_warmup = epochs.saturating_sub(s.warmup_epochs).max(1);
    let gamma = s.gamma.unwrap_or(0.1);
    let plateau = PlateauConfig::default();
    let schedule = match kind {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Step => Schedule::Step {
            step_size: s.step_size.unwrap_or(30),
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
            eta_min: s.eta_min.unwrap_or(0.0),
        },
        ScheduleKind::OneCycle => {
            let mut sch = Schedule::one_cycle(s.max_lr.unwrap_or(h.lr), epochs * steps_per_epoch);
            if let (Schedule::OneCycle { pct_start, .. }, Some(p)) = (&mut sch, s.pct_start) {
                *pct_start = p;
            }
            sch
        }
        ScheduleKind::Plateau => Schedule::Plateau(PlateauConfig {
            factor: s.plateau_factor.unwrap_or(plateau.factor),
            patience: s.plateau_patience.unwrap_or(plateau.patience),
            cooldown: s.plateau_cooldown.unwrap_or(plateau.cooldown),
            min_lr: s.min_lr.unwrap_or(plateau.min_lr),
            ..plateau
        }),
    };
    let lr = LrSchedule::new(h.lr, schedule)
        .with_warmup(s.warmup_epochs, s.warmup_start_factor.unwrap_or(1.0 / 3.0));
    lr.validate().map_err(|e| usage("lr schedule", &lr, e))?;
    Ok(lr)
}

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

pub fn load_data(d: &DataArgs, quiet: bool) -> Result<Mnist> {
    if let Some(dir) = d.data.as_deref().filter(|dir| !dir.is_dir()) {
        return Err(usage(
            "data",
            dir.display(),
            "no such directory; give the directory holding the four MNIST files",
        ));
    }
    let opts = data::LoadOptions {
        dataset: d.dataset,
        classes: d.classes,
    };
    // Finding and reading the files checks the user's input (exit 2 when it is bad); a
    // download, and the checksums it verifies, is work (exit 1 when it fails).
    let mnist = data::load_or_download_with(d.data.as_deref(), &opts, !d.no_download, !quiet)
        .map_err(|e| match e {
            data::DataError::Download { .. } | data::DataError::Checksum { .. } => {
                anyhow::Error::from(wgtrain::Error::from(e))
            }
            e => bad_input(e),
        })?;
    if !quiet {
        let name = d.dataset.map_or(String::new(), |n| format!("{n} "));
        eprintln!(
            "data: {name}{} ({} train, {} test, {}x{} inputs, {} classes)",
            mnist.dir.display(),
            mnist.train.len(),
            mnist.test.len(),
            mnist.train.rows,
            mnist.train.cols,
            mnist.classes
        );
    }
    Ok(mnist)
}

pub fn normalization(d: &DataArgs) -> Normalization {
    if d.normalize {
        dataset_normalization(d)
    } else {
        Normalization::UNIT
    }
}

/// The mean and std `--normalize` uses: the named dataset's, else MNIST's.
pub fn dataset_normalization(d: &DataArgs) -> Normalization {
    d.dataset
        .map_or(Normalization::MNIST, |n| n.info().normalization)
}

/// `wgtrain download NAME [--dir DIR]`.
fn download_command(a: super::args::DownloadArgs) -> Result<()> {
    if let Some(dir) = &a.dir {
        check_outputs([(Some(dir.as_path()), OutputKind::Dir)])?;
    }
    let dir = a.dir.unwrap_or_else(|| data::cache_dir_of(a.dataset));
    data::download_dataset(a.dataset, &dir, true).map_err(wgtrain::Error::from)?;
    let checked = match a.dataset.info().packaging {
        data::datasets::Packaging::GzFiles { .. } if a.dataset == data::DatasetName::Mnist => {
            "SHA-256 verified"
        }
        data::datasets::Packaging::GzFiles { .. } => "MD5 verified",
        data::datasets::Packaging::Zip { .. } => "archive MD5 verified",
    };
    eprintln!(
        "{} is in {} ({checked}); train with --dataset {} --data {}",
        a.dataset.info().title,
        dir.display(),
        a.dataset,
        dir.display()
    );
    Ok(())
}

/// Refuses GPU-only flags with `--device cpu`, where they would be silently ignored.
pub fn check_device_args(d: &DeviceArgs) -> Result<()> {
    if d.device != DeviceKind::Cpu {
        return Ok(());
    }
    let given = [
        (
            "kernels",
            d.kernels.map(|k| format!("{k:?}").to_lowercase()),
        ),
        (
            "backend",
            d.backend.map(|b| format!("{b:?}").to_lowercase()),
        ),
        ("adapter", d.adapter.clone()),
    ];
    for (flag, value) in given {
        if let Some(v) = value {
            return Err(usage(flag, v, "applies to --device gpu only"));
        }
    }
    Ok(())
}

pub fn open_gpu(d: &DeviceArgs) -> Result<Gpu> {
    let gpu = Gpu::new(&GpuOptions {
        backends: d.backend.map(|b| b.to_wgpu()),
        adapter_name: d.adapter.clone(),
    })?;
    eprintln!("{}", gpu.describe());
    if d.kernels == Some(KernelChoice::Subgroup) {
        if let Err(reason) = matmul::subgroup_device_support(&gpu) {
            return Err(usage(
                "kernels",
                "subgroup",
                format!("{reason}; use --kernels auto"),
            ));
        }
    }
    Ok(gpu)
}

/// The matmul variant policy the flag names: fixed, or timed per shape (`auto`).
pub fn matmul_choice(d: &DeviceArgs) -> MatmulChoice {
    match d.kernels.unwrap_or(KernelChoice::Auto) {
        KernelChoice::Tiled => MatmulVariant::Tiled.into(),
        KernelChoice::Register => MatmulVariant::Register.into(),
        KernelChoice::Rows => MatmulVariant::Rows.into(),
        KernelChoice::Subgroup => MatmulVariant::Subgroup.into(),
        KernelChoice::Auto => MatmulChoice::Auto,
    }
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

fn train_command(a: TrainArgs) -> Result<()> {
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
    // Flags that need no data, and output paths, are checked before loading anything.
    check_outputs([
        (a.metrics.as_deref(), OutputKind::File),
        (a.save.as_deref(), OutputKind::File),
        (a.save_best.as_deref(), OutputKind::File),
        (a.plot.as_deref(), OutputKind::Dir),
        (a.tensorboard.as_deref(), OutputKind::Dir),
    ])?;
    warn_momentum(h.momentum);
    let _locks = super::interrupt::lock_train_outputs(&a)?;
    super::profile::check_train_flags(a.device.device, a.profile)?;
    schedule_from(h, 1)?;
    let sgd = sgd_from(h);
    sgd.validate()?;
    // The device is chosen before the data loads: a wrong --adapter fails at once.
    let mut engines = Engines::open(&a.device)?;
    let mnist = super::tune::with_subset(load_data(&a.data, a.quiet)?, a.train_subset, h.seed)?;
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
    let cfg = TrainConfig {
        epochs: h.epochs(),
        batch_size: h.batch_size,
        schedule: schedule_from(h, steps_per_epoch)?,
        sgd: sgd.clone(),
        seed: h.seed,
        validation: validation.clone(),
        early_stop_patience: a.early_stop_patience,
    };
    train::validate(&cfg, n_train)?;
    let spec = MlpSpec::new(mnist.train.features(), &h.hidden.0, mnist.classes)?;
    let params = spec.init(h.seed);
    let norm = normalization(&a.data);
    let s = EngineSpec {
        spec: &spec,
        params: &params,
        train: &mnist.train,
        validation: &validation,
        test: &mnist.test,
        batch_size: h.batch_size,
        sgd: &sgd,
        norm,
    };
    let n_total = mnist.train.len();
    if a.profile {
        engines.with_gpu(s, |gpu, engine| {
            super::profile::profile_before_training(gpu, engine, &cfg, n_total, a.profile_steps)?;
            run_training(&a, &spec, cfg.clone(), engine, n_total, norm)
        })?;
        Ok(())
    } else {
        engines.with(s, |engine| {
            run_training(&a, &spec, cfg.clone(), engine, n_total, norm)
        })
    }
}

fn run_training(
    a: &TrainArgs,
    spec: &MlpSpec,
    cfg: TrainConfig,
    engine: &mut dyn Engine,
    n_train: usize,
    norm: Normalization,
) -> Result<()> {
    // The GPU path launches kernels; the CPU path runs the same stages as function calls.
    let unit = match a.device.device {
        DeviceKind::Gpu => "dispatches",
        DeviceKind::Cpu => "stages",
    };
    eprintln!(
        "model: MLP {spec} ({} parameters), {} {unit} per step; {}",
        spec.layout().trainable(),
        engine.dispatches_per_step(),
        engine.describe()
    );
    eprintln!(
        "training: {} epoch{}, batch {}, lr {}, weight decay {}, momentum {}, seed {}",
        cfg.epochs,
        if cfg.epochs == 1 { "" } else { "s" },
        cfg.batch_size,
        cfg.schedule,
        cfg.sgd.weight_decay,
        cfg.sgd.momentum,
        cfg.seed
    );
    let mut metrics = match &a.metrics {
        Some(p) => Some(
            std::fs::File::create(p)
                .with_context(|| format!("creating the metrics file {}", p.display()))?,
        ),
        None => None,
    };
    let epochs = cfg.epochs;
    let cfg_momentum = cfg.sgd.momentum;
    let title = format!(
        "MLP {spec}, lr {}, batch {}, weight decay {}",
        cfg.schedule, cfg.batch_size, cfg.sgd.weight_decay
    );
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
    let mut history = Vec::new();
    let mut trainer = Trainer::new(engine, cfg, n_train)?;
    trainer.set_stop_flag(super::interrupt::stop_flag());
    let mut interrupted = None;
    let steps = trainer.steps_per_epoch() as u64;
    for epoch in 0..epochs {
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
        let result = trainer.run_epoch(epoch, &mut |done| bar.set_position(done as u64));
        bar.finish_and_clear();
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
                return Err(explain_divergence(e, cfg_momentum));
            }
        };
        println!("{report}");
        history.push(wgtrain::tune::EpochMetrics::from_report(&report, true));
        if let (Some(w), Some(m)) = (&mut tb, history.last()) {
            w.epoch(m)?;
        }
        if let Some(f) = &mut metrics {
            let path = a
                .metrics
                .as_deref()
                .unwrap_or(std::path::Path::new("metrics"));
            (|| -> std::io::Result<()> {
                serde_json::to_writer(&mut *f, &report)?;
                writeln!(f)?;
                f.flush()
            })()
            .with_context(|| format!("writing the metrics file {}", path.display()))?;
        }
        if let (Some(path), true) = (&a.save_best, trainer.last_was_best()) {
            checkpoint::save(path, spec, &trainer.engine().params()?, norm)?;
            if let Some(v) = report.val_loss {
                eprintln!(
                    "saved the best model so far (epoch {}, validation loss {v:.4}) to {}",
                    report.epoch,
                    path.display()
                );
            }
        }
        if trainer.should_stop() {
            eprintln!(
                "early stopping: the validation loss has not improved for {} epochs",
                a.early_stop_patience.unwrap_or(0)
            );
            break;
        }
    }
    if let Some(w) = &mut tb {
        // HParams has no "interrupted" status; an interrupted run did not finish.
        w.session_end(match interrupted {
            Some(_) => SessionStatus::Failure,
            None => SessionStatus::Success,
        })?;
        eprintln!("wrote {}", w.path().display());
    }
    if let Some(path) = &a.save {
        match &interrupted {
            Some(e) => super::interrupt::save_interrupted(path, spec, &mut trainer, norm, e)?,
            None => {
                checkpoint::save(path, spec, &trainer.engine().params()?, norm)?;
                eprintln!("saved {}", path.display());
            }
        }
    }
    if let Some(dir) = &a.plot {
        if interrupted.is_none() || !history.is_empty() {
            super::tune::plot_run(&history, dir, &title)?;
        }
    }
    match interrupted {
        Some(e) => {
            if let Some(p) = &a.metrics {
                eprintln!("{}: {} finished epochs", p.display(), history.len());
            }
            Err(e.into())
        }
        None => Ok(()),
    }
}

fn eval_command(a: EvalArgs) -> Result<()> {
    check_outputs([(a.plot.as_deref(), OutputKind::Dir)])?;
    let ck = checkpoint::load(&a.model)
        .map_err(|e| bad_input(e).context("reading the model (--model)"))?;
    let mnist = load_data(&a.data, false)?;
    if ck.spec.inputs() != mnist.test.features() {
        return Err(usage(
            "model",
            a.model.display(),
            format!(
                "expects {} inputs but the test images have {} ({}x{}); give the data it was trained on",
                ck.spec.inputs(),
                mnist.test.features(),
                mnist.test.rows,
                mnist.test.cols
            ),
        ));
    }
    check_model_classes(&a.model, ck.spec.classes(), &mnist, a.data.classes)?;
    let norm = match (a.data.normalize, ck.normalization) {
        (true, Some(n)) if n != dataset_normalization(&a.data) => {
            return Err(usage(
                "normalize",
                "true",
                format!(
                    "the model was trained on inputs normalised with mean {} and std {}; drop --normalize",
                    n.mean, n.std
                ),
            ));
        }
        (true, _) => dataset_normalization(&a.data),
        (false, n) => n.unwrap_or(Normalization::UNIT),
    };
    let sgd = SgdConfig::default();
    let batch = a.batch_size.min(mnist.train.len());
    let s = EngineSpec {
        spec: &ck.spec,
        params: &ck.params,
        train: &mnist.train,
        validation: &[],
        test: &mnist.test,
        batch_size: batch,
        sgd: &sgd,
        norm,
    };
    let per_class = a.confusion || a.plot.is_some();
    let (eval, logits) = Engines::open(&a.device)?.with(s, |engine| {
        let eval = engine.evaluate(EvalSet::Test)?;
        let logits = if per_class {
            engine.logits(EvalSet::Test)?
        } else {
            Vec::new()
        };
        Ok((eval, logits))
    })?;
    println!(
        "{}: MLP {} on {} test samples: loss {:.4}, accuracy {:.2}%",
        a.model.display(),
        ck.spec,
        eval.samples,
        eval.loss,
        100.0 * eval.accuracy
    );
    if per_class {
        per_class_results(&a, &ck.spec, &mnist, &logits)?;
    }
    Ok(())
}

/// The class names to show: the dataset's when it has them, else the class indices.
fn dataset_class_names(data: &Mnist, classes: usize) -> Vec<String> {
    // The dataset's names (`--dataset`), else the class indices.
    wgtrain::metrics::class_names(Some(&data.class_names), classes)
}

/// `eval --confusion` and `eval --plot`: the confusion matrix of the test set from the
/// engine's logits, printed and drawn, and the most confidently misclassified images.
fn per_class_results(a: &EvalArgs, spec: &MlpSpec, data: &Mnist, logits: &[f32]) -> Result<()> {
    use wgtrain::metrics::{self, Confusion};
    let classes = spec.classes();
    let predictions = metrics::predict(logits, classes);
    let predicted: Vec<usize> = predictions.iter().map(|p| p.class).collect();
    let confusion = Confusion::new(classes, &data.test.labels, &predicted);
    let names = dataset_class_names(data, classes);
    if a.confusion {
        println!(
            "confusion matrix of the {} test samples (rows: true class, columns: predicted class; accuracy per true class):",
            confusion.samples()
        );
        print!("{}", confusion.table(&names));
    }
    if let Some(dir) = &a.plot {
        // Checked before the work; created here (its last component only).
        wgtrain::output::ensure_writable_dir(dir)?;
        let model = a.model.file_name().map_or_else(
            || a.model.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let title = format!("Confusion matrix: MLP {spec} ({model}), test set");
        let mut written =
            metrics::plot::confusion_heatmap(&confusion, &names, &title, dir, "confusion")?;
        let mistakes =
            metrics::most_confident_mistakes(&data.test.labels, &predictions, a.mistakes);
        let errors = confusion.samples() - confusion.correct();
        let title = format!(
            "The {} most confident of {errors} misclassified test images: MLP {spec} ({model})",
            mistakes.len()
        );
        written.extend(metrics::plot::mistakes_grid(
            &mistakes, &data.test, &names, &title, dir, "mistakes",
        )?);
        for p in written {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(())
}

/// Warns when `--momentum` is 1 or more: PyTorch allows it, but the velocity then never
/// decays (v = momentum * v + g grows without bound), so training usually diverges.
pub(crate) fn warn_momentum(momentum: f64) {
    if momentum >= 1.0 {
        eprintln!(
            "warning: --momentum {momentum} is >= 1: the velocity never decays and training \
             usually diverges; use a momentum below 1 (e.g. 0.9)"
        );
    }
}

/// Names momentum >= 1 as the likely cause when the loss became non-finite, instead of
/// only advising a lower learning rate; other errors pass unchanged.
pub(crate) fn explain_divergence(e: wgtrain::Error, momentum: f64) -> anyhow::Error {
    match e {
        wgtrain::Error::NonFiniteLoss {
            epoch,
            step,
            last_finite,
        } if momentum >= 1.0 => anyhow::anyhow!(
            "the training loss became non-finite at epoch {epoch}, step {step} (last finite \
             minibatch loss: {last_finite}); the run was stopped. The likely cause is \
             --momentum {momentum}: at 1 or more the velocity never decays \
             (v = momentum * v + g). Use a momentum below 1 (e.g. 0.9), then lower the \
             learning rate (--lr) if it still diverges."
        ),
        e => e.into(),
    }
}

/// Refuses a checkpoint whose output count differs from the data's class count: its
/// accuracy would be silently meaningless (a 20-output model on 10-class MNIST).
fn check_model_classes(
    model: &std::path::Path,
    outputs: usize,
    mnist: &Mnist,
    given: Option<usize>,
) -> Result<()> {
    if outputs == mnist.classes {
        return Ok(());
    }
    let source = match given {
        Some(_) => "given with --classes",
        None => "the largest training label + 1",
    };
    Err(usage(
        "model",
        model.display(),
        format!(
            "has {outputs} outputs but the data in {} has {} classes ({source}); evaluate it \
             on the data it was trained on, or pass --classes {outputs} if the data has \
             {outputs} classes",
            mnist.dir.display(),
            mnist.classes
        ),
    ))
}

fn devices_command(d: DevicesArgs) -> Result<()> {
    let adapters = gpu::list_adapters(Some(
        d.backend.map_or(wgpu::Backends::all(), |b| b.to_wgpu()),
    ));
    if adapters.is_empty() {
        anyhow::bail!(
            "no GPU adapter found. On headless Linux: apt-get install -y mesa-vulkan-drivers libvulkan1 (the lavapipe software adapter); or use --device cpu"
        );
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("[{i}] {a}");
    }
    Ok(())
}
