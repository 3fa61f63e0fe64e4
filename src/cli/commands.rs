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
use wgtrain::schedule::{LrSchedule, PlateauConfig, Schedule, ScheduleKind};
use wgtrain::train::{self, TrainConfig, Trainer};

use super::args::{
    Cli, Command, DataArgs, DeviceArgs, DeviceKind, DevicesArgs, EvalArgs, HyperArgs, KernelChoice,
    TrainArgs,
};
use super::engines::{EngineSpec, Engines};

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
        Command::Download(a) => {
            let dir = a.dir.unwrap_or_else(data::cache_dir);
            data::download(&dir, true)?;
            eprintln!("MNIST is in {} (checksums verified)", dir.display());
            Ok(())
        }
    }
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
pub fn schedule_from(h: &HyperArgs, steps_per_epoch: usize) -> Result<LrSchedule> {
    let s = &h.schedule;
    let kind: ScheduleKind = s
        .lr_schedule
        .parse()
        .map_err(|e: wgtrain::schedule::ScheduleError| usage("lr schedule", &s.lr_schedule, e))?;
    if s.warmup_epochs >= h.epochs && s.warmup_epochs > 0 {
        return Err(usage(
            "warmup-epochs",
            s.warmup_epochs,
            format!(
                "must be fewer than the epochs ({}), or the schedule never starts",
                h.epochs
            ),
        ));
    }
    let after_warmup = h.epochs.saturating_sub(s.warmup_epochs).max(1);
    let schedule = match kind {
        ScheduleKind::Constant => Schedule::Constant,
        ScheduleKind::Step => Schedule::Step {
            step_size: s.step_size,
            gamma: s.gamma,
        },
        ScheduleKind::MultiStep => Schedule::MultiStep {
            milestones: wgtrain::schedule::parse_milestones(&s.milestones)
                .map_err(|e| usage("milestones", &s.milestones, e))?,
            gamma: s.gamma,
        },
        ScheduleKind::Exponential => Schedule::Exponential { gamma: s.gamma },
        ScheduleKind::Cosine => Schedule::Cosine {
            t_max: s.t_max.unwrap_or(after_warmup),
            eta_min: s.eta_min,
        },
        ScheduleKind::OneCycle => {
            let mut sch = Schedule::one_cycle(s.max_lr.unwrap_or(h.lr), h.epochs * steps_per_epoch);
            if let Schedule::OneCycle { pct_start, .. } = &mut sch {
                *pct_start = s.pct_start;
            }
            sch
        }
        ScheduleKind::Plateau => Schedule::Plateau(PlateauConfig {
            factor: s.plateau_factor,
            patience: s.plateau_patience,
            cooldown: s.plateau_cooldown,
            min_lr: s.min_lr,
            ..PlateauConfig::default()
        }),
    };
    let lr = LrSchedule::new(h.lr, schedule).with_warmup(s.warmup_epochs, s.warmup_start_factor);
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
    let mnist = data::load_or_download(d.data.as_deref(), !d.no_download, !quiet)?;
    if !quiet {
        eprintln!(
            "data: {} ({} train, {} test, {}x{} inputs, {} classes)",
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
        Normalization::MNIST
    } else {
        Normalization::UNIT
    }
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
    for p in [&a.save, &a.save_best].into_iter().flatten() {
        wgtrain::output::ensure_writable_file(p)?;
    }
    if let Some(dir) = &a.plot {
        wgtrain::output::ensure_writable_dir(dir)?;
    }
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
        epochs: h.epochs,
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
    let title = format!(
        "MLP {spec}, lr {}, batch {}, weight decay {}",
        cfg.schedule, cfg.batch_size, cfg.sgd.weight_decay
    );
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
            Err(e @ wgtrain::Error::Interrupted { .. }) => {
                interrupted = Some(e);
                break;
            }
            r => r?,
        };
        println!("{report}");
        history.push(wgtrain::tune::EpochMetrics::from_report(&report, true));
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
    let ck = checkpoint::load(&a.model)?;
    let mnist = load_data(&a.data, false)?;
    if ck.spec.inputs() != mnist.test.features() {
        anyhow::bail!(
            "{} expects {} inputs but the test images have {}",
            a.model.display(),
            ck.spec.inputs(),
            mnist.test.features()
        );
    }
    let max_label = mnist.test.labels.iter().max().map_or(0, |&l| l as usize);
    if max_label >= ck.spec.classes() {
        return Err(usage(
            "model",
            a.model.display(),
            format!(
                "has {} outputs but the test labels go up to {max_label}",
                ck.spec.classes()
            ),
        ));
    }
    let norm = match (a.data.normalize, ck.normalization) {
        (true, Some(n)) if n != Normalization::MNIST => {
            return Err(usage(
                "normalize",
                "true",
                format!(
                    "the model was trained on inputs normalised with mean {} and std {}; drop --normalize",
                    n.mean, n.std
                ),
            ));
        }
        (true, _) => Normalization::MNIST,
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
    let eval = Engines::open(&a.device)?.with(s, |engine| Ok(engine.evaluate(EvalSet::Test)?))?;
    println!(
        "{}: MLP {} on {} test samples: loss {:.4}, accuracy {:.2}%",
        a.model.display(),
        ck.spec,
        eval.samples,
        eval.loss,
        100.0 * eval.accuracy
    );
    Ok(())
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
