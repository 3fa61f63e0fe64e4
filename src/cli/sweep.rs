//! `wgtrain sweep`: a hyperparameter search (grid or random) on a validation split, with
//! median or successive-halving pruning, trials one at a time or as populations
//! (`--population K`, [`population`]), TensorBoard runs per trial and `--resume`. The work
//! is done by [`wgtrain::tune::sweep`] and [`wgtrain::tune::population_sweep`]; this layer
//! parses flags, loads data, builds engines and prints.

mod population;
pub(super) mod settings;
pub(super) mod state;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};

use wgtrain::checkpoint;
use wgtrain::engine::{EvalSet, RunData};
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::output::OutputKind;
use wgtrain::tensorboard::{EventWriter, HParam, SessionStatus};
use wgtrain::train;
use wgtrain::tune::plot;
use wgtrain::tune::population_sweep::PopulationSnapshot;
use wgtrain::tune::prune::{HalvingPruner, MedianPruner, Pruner};
use wgtrain::tune::space::{HiddenChoices, SearchMethod, SearchSpace, TrialConfig, Values};
use wgtrain::tune::sweep::{
    BestTrial, Sweep, TrialStatus, format_leaderboard, leaderboard, read_trials, write_outputs,
};

use super::common::{
    DataArgs, DeviceArgs, FailedOutputs, HiddenSizes, HyperArgs, ScheduleArgs, SgdVariantArgs,
    cause, check_outputs, check_outputs_spare_data, check_outputs_spare_inputs,
    check_sgd_options_apply, device_path, load_data, normalization, positive_usize, resolve_device,
    run_config, schedule_from, sgd_from, tensorboard_hparams, unit_interval, usage, with_subset,
};
use super::engines::Engines;
use super::interrupt;
use super::sweep_configs;

/// Search methods of `wgtrain sweep`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchChoice {
    /// Independent seeded draws (--trials, default 12).
    Random,
    /// The cartesian product (ranges contribute --grid-points values).
    Grid,
    /// Population-based training (Jaderberg et al. 2017): --population members from random
    /// draws; every --pbt-interval epochs the worst copy the best and perturb lr and
    /// weight decay. Writes pbt.json, pbt_members.csv, pbt_lineage.csv and the best
    /// member's schedule for `wgtrain train --hparam-schedule`.
    Pbt,
}

/// Pruning rules of `wgtrain sweep`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruningChoice {
    /// Stop a trial whose validation accuracy is below the median of the completed trials
    /// at the same epoch.
    Median,
    /// Successive halving (ASHA): at rung epochs r, r·eta, r·eta², ... keep the top 1/eta
    /// of the trials that reached the rung.
    Halving,
    /// Run every trial to the end.
    None,
}

/// `wgtrain sweep`: hyperparameter search on a validation split.
#[derive(Args, Debug, Clone)]
pub struct SweepArgs {
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(flatten)]
    pub data: DataArgs,
    /// Learning rates: a log-uniform range (1e-3:1) or a list (0.01,0.1). `--learning-rate`
    /// is an alias.
    #[arg(long, alias = "learning-rate", default_value = "1e-3:1")]
    pub lr: Values,
    /// Weight decays: a log-uniform range or a list (0,1e-4 includes 0).
    #[arg(long, default_value = "1e-4")]
    pub weight_decay: Values,
    /// Batch sizes: a list (32,64,128) or a log-uniform range (rounded).
    #[arg(long, default_value = "64")]
    pub batch_size: Values,
    /// Momentums: a list (0,0.9) or a log-uniform range.
    #[arg(long, default_value = "0")]
    pub momentum: Values,
    /// Hidden layer architectures: comma-separated, layers joined by '-' (128,512-256,none).
    #[arg(long, default_value = "256")]
    pub hidden: HiddenChoices,
    /// Epochs per trial: a list or a log-uniform range (rounded).
    #[arg(long, default_value = "3")]
    pub epochs: Values,
    /// How trials are chosen: random draws from the ranges and lists, the full grid, or
    /// population-based training.
    #[arg(long, value_enum, default_value_t = SearchChoice::Random)]
    pub search: SearchChoice,
    /// Trials to run: random search draws this many (default 12); grid search runs a seeded
    /// selection of this many grid points when the grid is larger (default: all).
    #[arg(long, value_parser = positive_usize)]
    pub trials: Option<usize>,
    /// Run exactly the trials listed in this JSON file, in its order (trial i is entry i),
    /// instead of drawing them: `[{"lr": 0.05, "weight_decay": 1e-4, "batch_size": 64,
    /// "momentum": 0.9, "hidden": [256], "epochs": 3}, ...]`. A field an entry leaves out
    /// takes its flag's value (--lr, --epochs, ...), which must then be one value.
    #[arg(long, value_name = "FILE.json", conflicts_with_all = ["search", "trials", "grid_points"])]
    pub configs: Option<PathBuf>,
    /// Values a log-uniform range contributes to a grid.
    #[arg(long, value_parser = positive_usize, default_value_t = 4)]
    pub grid_points: usize,
    /// Fraction of the training set held out for validation: trials are ranked on it.
    #[arg(long, value_parser = unit_interval, default_value_t = 0.1)]
    pub val_split: f64,
    /// Use a seeded subset of this many training samples (before the validation split).
    #[arg(long, value_parser = positive_usize)]
    pub train_subset: Option<usize>,
    /// Stop unpromising trials early: the median rule (as Optuna's MedianPruner),
    /// successive halving (as Optuna's SuccessiveHalvingPruner), or never.
    #[arg(long, value_enum, default_value_t = PruningChoice::Median)]
    pub pruning: PruningChoice,
    /// Epochs during which no trial is pruned (--pruning median only; default 1).
    #[arg(long)]
    pub prune_warmup: Option<usize>,
    /// Median pruning: completed trials needed at an epoch before pruning there. Halving:
    /// trials that reached a rung (the judged one included) before pruning there
    /// (default 3).
    #[arg(long, value_parser = positive_usize)]
    pub prune_min_trials: Option<usize>,
    /// Successive halving: the reduction factor eta (rungs eta times apart, the top 1/eta
    /// of a rung go on; --pruning halving only; default 3).
    #[arg(long, value_parser = halving_eta)]
    pub halving_eta: Option<usize>,
    /// Successive halving: the first rung, epochs (r) (--pruning halving only; default 1).
    #[arg(long, value_parser = positive_usize)]
    pub halving_min_epochs: Option<usize>,
    /// Train up to K trials at once as one population (trials sharing batch size, hidden
    /// sizes and epochs): 1 runs them one at a time. Default: as many as fit the device's
    /// memory, at most 16 on a GPU; 8 on the CPU (members in parallel on all cores). With
    /// --search pbt: the population (default 8).
    #[arg(long, value_name = "K", value_parser = population_size)]
    pub population: Option<usize>,
    #[command(flatten)]
    pub sgd: SgdVariantArgs,
    /// Seeds the search, every trial's initialisation and shuffles, the validation split
    /// and --train-subset (one seed for all trials: they differ only in hyperparameters).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub schedule: ScheduleArgs,
    /// Directory for trials.json, trials.csv, leaderboard.csv, best.json and the plots
    /// (created if missing; its parent must exist).
    #[arg(long, value_name = "DIR", default_value = "sweep")]
    pub out: PathBuf,
    /// Trials whose curves are drawn in sweep_top_trials.png.
    #[arg(long, value_parser = positive_usize, default_value_t = 5)]
    pub top: usize,
    /// Save the best trial's final weights (safetensors).
    #[arg(long, value_name = "FILE.safetensors")]
    pub save_best: Option<PathBuf>,
    /// One line per trial (its settings and outcome) instead of one per epoch, no progress
    /// bar and no data summary; the leaderboard and the best trial are still printed.
    #[arg(long)]
    pub quiet: bool,
    /// Write TensorBoard event files, one run folder per trial (DIR/trial-000, ...): the
    /// trial's per-epoch scalars and its hyperparameters (HParams dashboard).
    #[arg(long, value_name = "DIR")]
    pub tensorboard: Option<PathBuf>,
    /// Go on with the interrupted run of the same sweep in --out (same flags and data, as
    /// --out/settings.json records them): its finished trials (trials.json,
    /// best_trial.safetensors) are not rerun, and the running ones go on where they were
    /// (--out/state.safetensors). With --search pbt: go on from the state written after
    /// every epoch and on Ctrl-C or SIGTERM; the run ends with the outputs of an
    /// uninterrupted one.
    #[arg(long, conflicts_with = "overwrite")]
    pub resume: bool,
    /// Replace the sweep that --out already holds (its files are removed once this run's
    /// data has loaded); without it (or --resume), a sweep into a folder holding one is
    /// refused.
    #[arg(long)]
    pub overwrite: bool,
    /// --search pbt: epochs between exploit steps (default 2).
    #[arg(long, value_parser = positive_usize)]
    pub pbt_interval: Option<usize>,
    /// --search pbt: fraction of the population replaced at each exploit step, and of the
    /// top it copies from, in (0, 0.5] (default 0.25).
    #[arg(long)]
    pub pbt_quantile: Option<f64>,
    /// --search pbt: probability that explore resamples lr (and, apart, weight decay)
    /// from the space instead of multiplying it by 0.8 or 1.25 (default 0.25).
    #[arg(long)]
    pub pbt_resample: Option<f64>,
}

/// `--prune-warmup` without the flag.
pub(super) const DEFAULT_PRUNE_WARMUP: usize = 1;
/// `--prune-min-trials` without the flag.
pub(super) const DEFAULT_PRUNE_MIN_TRIALS: usize = 3;
/// `--halving-eta` without the flag.
pub(super) const DEFAULT_HALVING_ETA: usize = 3;
/// `--halving-min-epochs` without the flag.
pub(super) const DEFAULT_HALVING_MIN_EPOCHS: usize = 1;

/// The pruning flags that were given, as (flag, value), in the order of `--help`.
pub(super) fn pruning_flags_given(a: &SweepArgs) -> Vec<(&'static str, usize)> {
    [
        ("prune-warmup", a.prune_warmup),
        ("prune-min-trials", a.prune_min_trials),
        ("halving-eta", a.halving_eta),
        ("halving-min-epochs", a.halving_min_epochs),
    ]
    .into_iter()
    .filter_map(|(flag, v)| v.map(|v| (flag, v)))
    .collect()
}

/// The pruner `--pruning` and its flags choose, with the defaults of the flags left out.
/// Refuses a flag the chosen rule does not read (it would be silently ignored):
/// `--halving-*` without `--pruning halving`, `--prune-warmup` without `--pruning median`,
/// any pruning flag with `--pruning none`.
fn pruner_from(a: &SweepArgs) -> Result<Option<Pruner>> {
    let reads: &[&str] = match a.pruning {
        PruningChoice::Median => &["prune-warmup", "prune-min-trials"],
        PruningChoice::Halving => &["prune-min-trials", "halving-eta", "halving-min-epochs"],
        PruningChoice::None => &[],
    };
    let rule = match a.pruning {
        PruningChoice::Median => "median",
        PruningChoice::Halving => "halving",
        PruningChoice::None => "none",
    };
    if let Some((flag, v)) = pruning_flags_given(a)
        .into_iter()
        .find(|(f, _)| !reads.contains(f))
    {
        let wants = match flag {
            "prune-warmup" => "--pruning median",
            "prune-min-trials" => "--pruning median or halving",
            _ => "--pruning halving",
        };
        return Err(usage(
            flag,
            v,
            format!(
                "applies to {wants} only, and --pruning is {rule}; drop --{flag} or use {wants}"
            ),
        ));
    }
    let min_trials = a.prune_min_trials.unwrap_or(DEFAULT_PRUNE_MIN_TRIALS);
    Ok(match a.pruning {
        PruningChoice::Median => Some(Pruner::Median(MedianPruner {
            warmup_epochs: a.prune_warmup.unwrap_or(DEFAULT_PRUNE_WARMUP),
            min_trials,
        })),
        PruningChoice::Halving => Some(Pruner::Halving(HalvingPruner {
            min_epochs: a.halving_min_epochs.unwrap_or(DEFAULT_HALVING_MIN_EPOCHS),
            eta: a.halving_eta.unwrap_or(DEFAULT_HALVING_ETA),
            min_trials,
        })),
        PruningChoice::None => None,
    })
}

/// `--halving-eta`: at least 2.
fn halving_eta(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0 | 1) => {
            Err("must be at least 2 (rungs eta times apart, 1/eta of a rung go on)".into())
        }
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

/// `--population`: at least 1.
fn population_size(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err(
            "must be at least 1: a population trains K >= 1 trials at once (1 runs them one at \
             a time; leave the flag out for as many as fit the device)"
                .into(),
        ),
        Ok(v) => Ok(v),
        Err(e) => Err(e.to_string()),
    }
}

impl SweepArgs {
    /// The flags of `wgtrain train` that run trial `t`.
    fn hyper(&self, t: &TrialConfig) -> HyperArgs {
        HyperArgs {
            hidden: HiddenSizes(t.hidden.clone()),
            epochs: Some(t.epochs),
            batch_size: t.batch_size,
            lr: t.lr,
            weight_decay: t.weight_decay,
            momentum: t.momentum,
            sgd: self.sgd.clone(),
            seed: self.seed,
            schedule: self.schedule.clone(),
        }
    }
}

/// Runs `command` (a sweep, or PBT) on `a`; when it fails and `--out` is a folder it
/// created and left empty (the arguments or the data were refused after the folder was
/// made for its lock), removes the folder, so that a refused sweep leaves nothing behind.
///
/// # Errors
/// `command`'s.
pub fn tidy_new_out(a: SweepArgs, command: fn(SweepArgs) -> Result<()>) -> Result<()> {
    let out = a.out.clone();
    let created = std::fs::symlink_metadata(&out).is_err();
    let result = command(a);
    if result.is_err() && created {
        // Removes only an empty folder: anything the run wrote keeps it.
        let _ = std::fs::remove_dir(&out);
    }
    result
}

/// Runs `wgtrain sweep`.
pub fn sweep_command(mut a: SweepArgs) -> Result<()> {
    // Before the output check, which would accept a missing --out (to be created).
    settings::check_resume_target(&a)?;
    check_outputs([
        (Some(a.out.as_path()), OutputKind::Dir),
        (a.save_best.as_deref(), OutputKind::File),
        (a.tensorboard.as_deref(), OutputKind::Dir),
    ])?;
    super::save::warn_torch_save_names([a.save_best.as_deref()]);
    check_outputs_spare_inputs(
        [a.save_best.as_deref()],
        &[("configs", a.configs.as_deref())],
    )?;
    // One sweep per --out directory at a time: a second would interleave its trials. The
    // lock lives inside the directory, so it is created (its last component) first.
    // The Ctrl-C handler before the locks: a Ctrl-C during start-up then stops the run at
    // its first step boundary, writing the outputs and releasing the locks, instead of
    // killing the process with its lock files left behind.
    interrupt::stop_flag();
    wgtrain::output::ensure_writable_dir(&a.out)?;
    let locks =
        wgtrain::lock::lock_all(std::iter::once(a.out.as_path()).chain(a.save_best.as_deref()))?;
    if let Some(dir) = &a.tensorboard {
        wgtrain::lock::check_unheld(dir, &locks)?;
    }
    if a.val_split == 0.0 {
        return Err(usage(
            "val-split",
            0,
            "a sweep ranks trials on a validation split: use e.g. --val-split 0.1",
        ));
    }
    let space = SearchSpace {
        lr: a.lr.clone(),
        weight_decay: a.weight_decay.clone(),
        batch_size: a.batch_size.clone(),
        momentum: a.momentum.clone(),
        hidden: a.hidden.clone(),
        epochs: a.epochs.clone(),
    };
    space.validate()?;
    let method = match a.search {
        SearchChoice::Random => SearchMethod::Random,
        SearchChoice::Grid => SearchMethod::Grid,
        SearchChoice::Pbt => unreachable!("cli::dispatch sends --search pbt to sweep_pbt"),
    };
    for (flag, value) in [
        ("pbt-interval", a.pbt_interval.map(|v| v.to_string())),
        ("pbt-quantile", a.pbt_quantile.map(|v| v.to_string())),
        ("pbt-resample", a.pbt_resample.map(|v| v.to_string())),
    ] {
        if let Some(v) = value {
            return Err(usage(flag, v, "applies to --search pbt only"));
        }
    }
    let pruner = pruner_from(&a)?;
    // Random draws from a space of one point are the same trial, N times over.
    if method == SearchMethod::Random && a.configs.is_none() && space.is_single_point() {
        let n = a
            .trials
            .unwrap_or(wgtrain::tune::space::DEFAULT_RANDOM_TRIALS);
        if n > 1 {
            return Err(usage(
                "search",
                "random",
                format!(
                    "every searched hyperparameter (--lr, --weight-decay, --batch-size, --momentum, --hidden, --epochs) has a single value, so all {n} trials would be identical; widen a range (e.g. --lr 1e-3:1) or use --trials 1"
                ),
            ));
        }
    }
    let configs = match &a.configs {
        Some(file) => sweep_configs::read_configs(file, &space)?,
        None => space.trials(method, a.trials, a.grid_points, a.seed),
    };
    // Every trial's schedule and optimiser settings are checked before any data loads.
    for t in &configs {
        let h = a.hyper(t);
        schedule_from(&h, 1)?;
        sgd_from(&h).validate()?;
    }
    let momenta: Vec<f64> = configs.iter().map(|t| t.momentum).collect();
    let decays: Vec<f64> = configs.iter().map(|t| t.weight_decay).collect();
    check_sgd_options_apply(&a.sgd, &momenta, &decays, "every trial's")?;
    settings::check_out(&a)?;
    // What --resume goes on from: the sweep's state (finished trials, the best one's
    // weights, the population that was running), or without one (an older wgtrain, a
    // finished sweep) trials.json and best_trial.safetensors.
    let (prior, prior_best, population) = match (a.resume, state::read(&a.out)?) {
        (false, _) => (Vec::new(), None, None),
        (true, Some(r)) => {
            check_trials(&state::path(&a.out), &r.trials, &configs)?;
            let ranked = wgtrain::tune::sweep::best_completed(&r.trials).map(|t| t.id);
            if let Some((id, _)) = &r.best
                && ranked != Some(*id)
            {
                // A state of a wgtrain that broke accuracy ties by trial id alone.
                return Err(usage(
                    "resume",
                    state::path(&a.out).display(),
                    format!(
                        "holds trial {id}'s weights as the best, but the best finished trial is {} (equal validation accuracy: ties go to the lower validation loss since this wgtrain); finish the sweep with the wgtrain that started it, or start again with --overwrite",
                        ranked.map_or_else(|| "none".into(), |t| t.to_string())
                    ),
                ));
            }
            let best = r.best.map(|(_, p)| PriorBest {
                spec: None,
                params: p,
            });
            (r.trials, best, r.population)
        }
        (true, None) => {
            let (trials, ck) = resumable_trials(&a.out, &configs)?;
            check_not_finished(&a.out, &trials, configs.len())?;
            let best = ck.map(|c| PriorBest {
                spec: Some(c.spec),
                params: c.params,
            });
            (trials, best, None)
        }
    };
    let mnist = with_subset(load_data(&a.data, a.quiet)?, a.train_subset, a.seed)?;
    check_outputs_spare_data([a.save_best.as_deref()], &mnist)?;
    let n_total = mnist.train.len();
    let (_, validation) = train::validation_split(n_total, a.val_split, a.seed)?;
    let n_train = n_total - validation.len();
    if let Some(t) = configs.iter().find(|t| t.batch_size > n_train) {
        return Err(usage(
            "batch size",
            t.batch_size,
            format!("must be at most the number of training samples ({n_train})"),
        ));
    }
    // Resolved here, so that what the trials record (TensorBoard's `device`, the path in
    // settings.json) is the choice.
    a.device = resolve_device(&a.device, wgtrain::Precision::F32, None)?;
    let device = device_path(&a.device);
    // A resume that goes on with trials (finished or running) on the other path.
    if a.resume && (!prior.is_empty() || population.is_some()) {
        settings::warn_other_path(&a, device);
    }
    // Recorded once every check has passed: a refused sweep leaves no settings behind.
    settings::record(&a, &mnist, device)?;
    let norm = normalization(&a.data);
    note!(
        "sweep: {} ({}), {} training + {} validation samples, pruning: {}",
        count(configs.len(), "trial"),
        match (&a.configs, method) {
            (Some(file), _) => format!("from {}", file.display()),
            (None, SearchMethod::Random) => "random search".into(),
            (None, SearchMethod::Grid) => "grid search".into(),
        },
        n_train,
        validation.len(),
        match pruner {
            Some(p) => p.describe(),
            None => "none".into(),
        }
    );
    let mut engines = Engines::open(&a.device)?;
    let done = prior.len();
    if a.resume {
        let going_on = population.as_ref().map(going_on_text).unwrap_or_default();
        note!(
            "resuming: {done} of {} trials already finished in {}{going_on}",
            configs.len(),
            a.out.display()
        );
    }
    let prior_params = match (prior_best, wgtrain::tune::sweep::best_completed(&prior)) {
        (Some(b), Some(t)) => {
            let spec = MlpSpec::new(mnist.train.features(), &t.config.hidden, mnist.classes)?;
            let fits = match &b.spec {
                Some(s) => s.to_string() == spec.to_string(),
                None => b.params.len() == spec.layout().len,
            };
            if !fits {
                let held = b.spec.map_or_else(
                    || format!("{} weights", b.params.len()),
                    |s| format!("an MLP {s}"),
                );
                return Err(usage(
                    "resume",
                    a.out.display(),
                    format!(
                        "holds {held} as the best trial's, but trial {} on this data is an MLP {spec}; resume with the same data and flags",
                        t.id
                    ),
                ));
            }
            Some(b.params)
        }
        _ => None,
    };
    let mut sweep = Sweep::resume(pruner, prior, prior_params)?;
    sweep.set_stop_flag(interrupt::stop_flag());
    // Every trial runs as a member of a population of up to K (K = 1: one at a time).
    let pop = population::Context {
        a: &a,
        mnist: &mnist,
        n_train,
        norm,
    };
    sweep.set_epoch_times(pop.epoch_times(&mut engines, &configs)?);
    pop.run(&engines, &configs, &mut sweep, population)?;
    let rows = leaderboard(sweep.trials());
    say!("\nleaderboard (validation accuracy after each trial's last epoch):");
    say_raw!("{}", format_leaderboard(&rows));
    let best = match (sweep.best_trial(), sweep.best_params()) {
        (Some(t), Some(p)) => {
            let h = a.hyper(&t.config);
            let cfg = run_config(&h, n_train.div_ceil(t.config.batch_size), norm, 0.0)?;
            let test = engines.with(&cfg, RunData::from(&mnist), Some(p), |engine| {
                Ok(engine.evaluate(EvalSet::Test)?.remove(0))
            })?;
            Some(BestTrial {
                trial: t.id,
                config: t.config.clone(),
                val_accuracy: t.val_accuracy.unwrap_or(f64::NAN),
                val_loss: t.val_loss.unwrap_or(f64::NAN),
                test_accuracy: test.accuracy,
                test_loss: test.loss,
                test_samples: test.samples,
                test_method: "the best trial's final parameters (trained on the training part, \
                    without the validation split), evaluated once on the test set after the sweep"
                    .into(),
                single_run_epoch_seconds: t.single_run_epoch_seconds,
                epoch_seconds_by_batch: sweep.epoch_times().clone(),
            })
        }
        _ => None,
    };
    match &best {
        Some(b) => say!(
            "\nbest: trial {} ({}): val acc {:.2}%, test acc {:.2}% (test loss {:.4}, {} samples; its final parameters, evaluated once)",
            b.trial,
            b.config,
            100.0 * b.val_accuracy,
            100.0 * b.test_accuracy,
            b.test_loss,
            b.test_samples
        ),
        None => say!("\nno trial completed: nothing to evaluate on the test set"),
    }
    // The best weights first, then the files and the pictures, each on its own: one that
    // fails (a full disk) does not cost the others.
    let mut failed = FailedOutputs::default();
    if let (Some(path), Some(t), Some(p)) = (&a.save_best, sweep.best_trial(), sweep.best_params())
    {
        let spec = MlpSpec::new(mnist.train.features(), &t.config.hidden, mnist.classes)?;
        match checkpoint::save(path, &spec, p, norm) {
            Ok(()) => note!("wrote {}", path.display()),
            Err(e) => failed.record(e.into(), false),
        }
    }
    match write_outputs(&a.out, sweep.trials(), best.as_ref()) {
        Ok(written) => written.iter().for_each(|p| note!("wrote {}", p.display())),
        Err(e) => failed.record(e.into(), false),
    }
    match plot::sweep_plots(sweep.trials(), a.top, &a.out) {
        Ok(written) => written.iter().for_each(|p| note!("wrote {}", p.display())),
        Err(e) => failed.record(
            anyhow::Error::from(e).context("drawing the sweep's pictures"),
            false,
        ),
    }
    failed.into_result()?;
    // Every output is written: the state has nothing left to resume.
    state::remove(&a.out);
    if a.save_best.is_some() && sweep.best_trial().is_none() {
        anyhow::bail!(
            "no trial completed, so no best model was saved (every trial diverged or was pruned); try smaller learning rates"
        );
    }
    Ok(())
}

/// The best finished trial's final weights, kept in `--out` while a sweep runs so that
/// `--resume` can evaluate it and `--save-best` it at the end.
const BEST_TRIAL_FILE: &str = "best_trial.safetensors";

/// The best finished trial's weights a resumed sweep starts with, and the model its
/// checkpoint names (`None` from a state, which holds the weights alone).
struct PriorBest {
    spec: Option<MlpSpec>,
    params: Vec<f32>,
}

/// The TensorBoard run of trial `i` (`--tensorboard DIR`: `DIR/trial-00i`), its
/// hyperparameters written; `None` without the flag.
fn trial_writer(a: &SweepArgs, h: &HyperArgs, i: usize) -> wgtrain::Result<Option<EventWriter>> {
    let Some(dir) = &a.tensorboard else {
        return Ok(None);
    };
    let mut w = EventWriter::create(&dir.join(format!("trial-{i:03}")))?;
    let mut hp = tensorboard_hparams(h, a.device.device, a.data.normalize, a.val_split);
    hp.push(("trial".into(), HParam::Number(i as f64)));
    w.session_start(&hp)?;
    Ok(Some(w))
}

/// How a trial's TensorBoard session ends.
fn session_status(s: TrialStatus) -> SessionStatus {
    match s {
        TrialStatus::Diverged => SessionStatus::Failure,
        TrialStatus::Complete | TrialStatus::Pruned => SessionStatus::Success,
    }
}

/// Saves the sweep's best trial's weights to `out/best_trial.safetensors` (for `--resume`).
fn save_best_trial(
    out: &Path,
    sweep: &Sweep,
    mnist: &wgtrain::data::Mnist,
    norm: Normalization,
) -> wgtrain::Result<()> {
    if let (Some(b), Some(p)) = (sweep.best_trial(), sweep.best_params()) {
        let spec = MlpSpec::new(mnist.train.features(), &b.config.hidden, mnist.classes)?;
        checkpoint::save_with_metadata(
            &out.join(BEST_TRIAL_FILE),
            &spec,
            p,
            norm,
            &[("wgtrain.trial", b.id.to_string())],
        )?;
    }
    Ok(())
}

/// What `--resume` says of the running trials it goes on with: `; running trials go on
/// where they were: trial 4 after 1 epoch and 118 steps` (nothing when none runs). The
/// steps are those of the population's epoch a stop interrupted, shared by its members.
fn going_on_text(p: &PopulationSnapshot) -> String {
    let steps = match p.trainer.state.epoch_steps_done() {
        0 => String::new(),
        n => format!(" and {}", count(n, "step")),
    };
    let each: Vec<String> = p
        .slots
        .iter()
        .flatten()
        .map(|s| {
            format!(
                "trial {} after {}{steps}",
                s.id,
                count(s.history.len(), "epoch")
            )
        })
        .collect();
    if each.is_empty() {
        return String::new();
    }
    format!(
        "; running trials go on where they were: {}",
        each.join(", ")
    )
}

/// What an interrupted sweep kept, naming only the files it wrote: `settings.json` when it
/// started; after each finished trial `trials.json`, `trials.csv` and `leaderboard.csv`,
/// and `best_trial.safetensors` once a trial completed; `state.safetensors` (which holds
/// the `running` trials where they stopped, for `--resume`) when `state_saved`.
fn interrupted_note(
    sweep: &Sweep,
    total: usize,
    out: &Path,
    running: &[usize],
    state_saved: bool,
) -> String {
    interrupted_text(
        sweep.trials().len(),
        total,
        out,
        sweep.best_trial().is_some(),
        running,
        state_saved,
    )
}

/// [`interrupted_note`] from the counts: `finished` of `total` trials, `best_saved` when
/// `best_trial.safetensors` was written.
fn interrupted_text(
    finished: usize,
    total: usize,
    out: &Path,
    best_saved: bool,
    running: &[usize],
    state_saved: bool,
) -> String {
    // settings.json is written when the sweep starts (--resume checks it).
    let mut files = vec!["settings.json"];
    if finished > 0 {
        files.extend(["trials.json", "trials.csv", "leaderboard.csv"]);
    }
    if best_saved {
        files.push(BEST_TRIAL_FILE);
    }
    if state_saved {
        files.push(state::STATE_FILE);
    }
    let kept = if finished == 0 {
        format!(
            "sweep interrupted: none of {} finished; {} holds {}",
            count(total, "trial"),
            out.display(),
            files.join(", ")
        )
    } else {
        format!(
            "sweep interrupted: {finished} of {total} trials finished and kept in {} ({})",
            out.display(),
            files.join(", ")
        )
    };
    let ids: Vec<String> = running.iter().map(usize::to_string).collect();
    let (trials, were) = match ids.len() {
        0 => return kept,
        1 => (format!("trial {}", ids[0]), "was"),
        _ => (format!("trials {}", ids.join(", ")), "were"),
    };
    if state_saved {
        format!(
            "{kept}; {trials}, running, {were} saved where {} stopped and go{} on with --resume",
            if ids.len() == 1 { "it" } else { "they" },
            if ids.len() == 1 { "es" } else { "" }
        )
    } else {
        format!("{kept}; {trials} {were} dropped")
    }
}

/// `n` and the noun, plural unless `n` is 1: `1 trial`, `3 trials`.
pub(super) fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A finished trial's outcome, as printed after it: `complete: val acc 91.20%  (3.1 s)`,
/// `pruned after epoch 2: ...`, `diverged: ...`.
fn outcome_text(trial: &wgtrain::tune::sweep::Trial) -> String {
    let acc = trial
        .val_accuracy
        .map_or("-".into(), |v| format!("{:.2}%", 100.0 * v));
    match trial.status {
        TrialStatus::Complete => format!("complete: val acc {acc}  ({:.1} s)", trial.seconds),
        TrialStatus::Pruned => format!(
            "pruned after epoch {}: {}",
            trial.history.len(),
            trial.note.as_deref().unwrap_or("")
        ),
        TrialStatus::Diverged => format!(
            "diverged: {}",
            trial.note.as_deref().unwrap_or("non-finite loss")
        ),
    }
}

/// What `--resume` goes on from when the sweep left no state (`state.safetensors`: a
/// finished sweep, or one of an older wgtrain): the trials in `out/trials.json` (none when
/// the file does not exist yet) and, when one of them completed,
/// `out/best_trial.safetensors`.
///
/// # Errors
/// Exit-2 errors when a finished trial is not the trial of `configs` with its id (other
/// flags or another seed), or when the best trial's weights are missing or belong to
/// another trial. (Trials one at a time finish in id order; a population sweep may leave
/// gaps, the trials that were running.)
fn resumable_trials(
    out: &Path,
    configs: &[TrialConfig],
) -> Result<(
    Vec<wgtrain::tune::sweep::Trial>,
    Option<checkpoint::Checkpoint>,
)> {
    let path = out.join("trials.json");
    if !path.exists() {
        return Ok((Vec::new(), None));
    }
    let trials = read_trials(&path).map_err(|e| {
        let why = cause(&e);
        usage(
            "resume",
            path.display(),
            format!(
                "cannot be read as this sweep's finished trials ({why}); fix or remove it, or choose another --out"
            ),
        )
    })?;
    check_trials(&path, &trials, configs)?;
    let best = match wgtrain::tune::sweep::best_completed(&trials) {
        None => None,
        Some(b) => {
            let p = out.join(BEST_TRIAL_FILE);
            let ck = checkpoint::load(&p).map_err(|e| {
                usage(
                    "resume",
                    p.display(),
                    format!("the best finished trial's weights cannot be read: {e}"),
                )
            })?;
            let bytes = std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
            let id = safetensors::SafeTensors::read_metadata(&bytes)
                .ok()
                .and_then(|(_, m)| m.metadata().as_ref()?.get("wgtrain.trial").cloned());
            if id.as_deref() != Some(b.id.to_string().as_str()) {
                return Err(usage(
                    "resume",
                    p.display(),
                    format!(
                        "holds trial {} but the best finished trial is {}",
                        id.unwrap_or_else(|| "?".into()),
                        b.id
                    ),
                ));
            }
            Some(ck)
        }
    };
    Ok((trials, best))
}

/// Refuses `--resume` into a finished sweep: one that left no state and whose `trials.json`
/// holds every one of its `total` trials, with `best.json` written (or no trial completed,
/// when there is none to write), or whose `best.json` is there without `trials.json`. It has
/// nothing left to run, and going on would only write
/// its outputs again (with new wall times), so they are left as they are; a sweep whose
/// last outputs failed keeps its state and goes on to write them.
///
/// # Errors
/// A usage error (exit 2) naming what `out` holds and the fix (`--overwrite`).
fn check_not_finished(
    out: &Path,
    trials: &[wgtrain::tune::sweep::Trial],
    total: usize,
) -> Result<()> {
    // best.json is written when a sweep ends: without trials.json (and a state) its
    // finished trials are lost, and going on would run all of them again.
    if !out.join("trials.json").exists() && out.join("best.json").is_file() {
        return Err(usage(
            "resume",
            out.display(),
            "holds a finished sweep (best.json) but no trials.json, so there are no finished trials to go on from: going on would run every trial again and replace its outputs; put trials.json back, give --overwrite to run it again, or choose another --out",
        ));
    }
    let completed = wgtrain::tune::sweep::best_completed(trials).is_some();
    if trials.len() < total || (completed && !out.join("best.json").is_file()) {
        return Ok(());
    }
    let weights = out.join(BEST_TRIAL_FILE);
    let best = if completed && weights.is_file() {
        format!(" (the best trial's weights are {})", weights.display())
    } else {
        String::new()
    };
    Err(usage(
        "resume",
        out.display(),
        format!(
            "holds a finished sweep (all {} in trials.json): nothing is left to run, and its outputs stay as they are{best}; give --overwrite to run it again, or choose another --out",
            count(total, "trial")
        ),
    ))
}

/// Refuses finished trials (read from `path`) that are not the trials of `configs` with
/// their ids: another sweep's, or this one's under other flags or another seed.
///
/// # Errors
/// A usage error (exit 2) naming the first trial that differs.
fn check_trials(
    path: &Path,
    trials: &[wgtrain::tune::sweep::Trial],
    configs: &[TrialConfig],
) -> Result<()> {
    // An older wgtrain's trials.json may round the last bit of a float: 1e-12 relative.
    let close = |x: f64, y: f64| (x - y).abs() <= 1e-12 * x.abs().max(y.abs());
    let same = |t: &TrialConfig, c: &TrialConfig| {
        close(t.lr, c.lr)
            && close(t.weight_decay, c.weight_decay)
            && close(t.momentum, c.momentum)
            && t.batch_size == c.batch_size
            && t.hidden == c.hidden
            && t.epochs == c.epochs
    };
    if let Some(t) = trials.iter().find(|t| t.id >= configs.len()) {
        return Err(usage(
            "resume",
            path.display(),
            format!(
                "lists trial {} but this sweep has {} trials; resume with the flags of the interrupted run",
                t.id,
                configs.len()
            ),
        ));
    }
    if let Some((t, c)) = trials
        .iter()
        .map(|t| (t, &configs[t.id]))
        .find(|(t, c)| !same(&t.config, c))
    {
        return Err(usage(
            "resume",
            path.display(),
            format!(
                "trial {} was {} but this sweep's trial {} is {c}; resume with the flags of the interrupted run, or choose another --out",
                t.id, t.config, t.id
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{count, interrupted_text};

    /// Regression (issue 26, item 8): a population sweep interrupted before any trial
    /// finished said "0 of 24 trials finished and kept in sweep/ (trials.json, ...)" over
    /// an empty folder. The note names only what was written; the running trials are
    /// said to be saved (issue 25 item 1) only when the state was written.
    #[test]
    fn an_interrupted_sweep_names_only_the_files_it_wrote() {
        let out = Path::new("sweep");
        assert_eq!(
            interrupted_text(0, 24, out, false, &[0, 1], true),
            "sweep interrupted: none of 24 trials finished; sweep holds settings.json, \
             state.safetensors; trials 0, 1, running, were saved where they stopped and go on \
             with --resume"
        );
        assert_eq!(
            interrupted_text(2, 5, out, false, &[2], true),
            "sweep interrupted: 2 of 5 trials finished and kept in sweep (settings.json, \
             trials.json, trials.csv, leaderboard.csv, state.safetensors); trial 2, running, \
             was saved where it stopped and goes on with --resume"
        );
        assert_eq!(
            interrupted_text(0, 1, out, false, &[0], false),
            "sweep interrupted: none of 1 trial finished; sweep holds settings.json; trial 0 \
             was dropped"
        );
        assert_eq!(
            (count(1, "trial"), count(2, "trial")),
            ("1 trial".into(), "2 trials".into())
        );
        assert!(interrupted_text(3, 5, out, true, &[], false).ends_with(
            "(settings.json, trials.json, trials.csv, leaderboard.csv, best_trial.safetensors)"
        ));
    }
}
