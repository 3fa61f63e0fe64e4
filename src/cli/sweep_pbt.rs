//! `wgtrain sweep --search pbt`: population-based training over the sweep's search space
//! ([`wgtrain::tune::pbt`]). It parses nothing of its own (the flags are `sweep`'s); it
//! checks the flags PBT reads, trains the population, prints each epoch and exploit step,
//! writes `pbt.json`, `pbt_members.csv`, `pbt_lineage.csv`, `pbt_best_schedule.json`,
//! `leaderboard.csv`, `best.json` and `pbt_val_accuracy.{png,svg}` into `--out`, and prints
//! the `wgtrain train --hparam-schedule` command that replays the best member. Its state
//! ([`state`]) is written after every epoch and on Ctrl-C; `--resume` goes on from it.

use std::path::Path;

use anyhow::Result;
use clap::ValueEnum;

use wgtrain::checkpoint;
use wgtrain::engine::{EvalSet, RunData};
use wgtrain::model::MlpSpec;
use wgtrain::output::OutputKind;
use wgtrain::schedule::HparamSchedule;
use wgtrain::train;
use wgtrain::train::Trainer;
use wgtrain::tune::pbt::output::{BEST_SCHEDULE_FILE, leaderboard, write_pbt_outputs};
use wgtrain::tune::pbt::{
    DEFAULT_INTERVAL, DEFAULT_POPULATION, DEFAULT_QUANTILE, DEFAULT_RESAMPLE, Hparams, Pbt,
    PbtRecord, PbtSettings, fixed_settings, initial_hparams,
};
use wgtrain::tune::plot;
use wgtrain::tune::space::{SearchSpace, TrialConfig, Values};
use wgtrain::tune::sweep::{BestTrial, format_leaderboard};

use super::common::{
    FailedOutputs, HiddenSizes, HyperArgs, check_outputs, check_outputs_spare_data, device_path,
    load_data, normalization, resolve_device, run_config, schedule_from, sgd_from, usage,
    with_subset,
};
use super::engines::Engines;
use super::interrupt;
use super::sweep::{PruningChoice, SweepArgs};

mod state;

/// Runs `wgtrain sweep --search pbt`.
pub fn pbt_command(mut a: SweepArgs) -> Result<()> {
    // Before the output check, which would accept a missing --out (to be created).
    super::sweep::settings::check_resume_target(&a)?;
    check_outputs([
        (Some(a.out.as_path()), OutputKind::Dir),
        (a.save_best.as_deref(), OutputKind::File),
    ])?;
    super::save::warn_torch_save_names([a.save_best.as_deref()]);
    let refused = [
        (
            "trials",
            a.trials.map(|t| t.to_string()),
            "PBT trains --population members; use --population",
        ),
        (
            "tensorboard",
            a.tensorboard.as_ref().map(|p| p.display().to_string()),
            "is not written by --search pbt (pbt.json and pbt_members.csv hold every member's epochs)",
        ),
    ];
    if let Some((flag, Some(value), why)) = refused.into_iter().find(|r| r.1.is_some()) {
        return Err(usage(flag, value, why));
    }
    // --pruning median is the default, so only another choice shows it was given.
    if a.pruning != PruningChoice::Median {
        let value = a
            .pruning
            .to_possible_value()
            .map(|v| v.get_name().to_string())
            .unwrap_or_default();
        return Err(usage(
            "pruning",
            value,
            "does not apply to --search pbt: members are never pruned, the worst copy the best every --pbt-interval epochs; drop --pruning",
        ));
    }
    if let Some(&(flag, v)) = super::sweep::pruning_flags_given(&a).first() {
        return Err(usage(
            flag,
            v,
            format!(
                "does not apply to --search pbt: members are never pruned, the worst copy the best every --pbt-interval epochs; drop --{flag}"
            ),
        ));
    }
    if a.val_split == 0.0 {
        return Err(usage(
            "val-split",
            0,
            "PBT ranks members on a validation split: use e.g. --val-split 0.1",
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
    let (batch_size, hidden, epochs) = fixed_settings(&space)?;
    let settings = PbtSettings {
        interval: a.pbt_interval.unwrap_or(DEFAULT_INTERVAL),
        quantile: a.pbt_quantile.unwrap_or(DEFAULT_QUANTILE),
        resample: a.pbt_resample.unwrap_or(DEFAULT_RESAMPLE),
        seed: a.seed,
    };
    settings.validate()?;
    if settings.interval >= epochs {
        let given = match a.pbt_interval {
            Some(_) => "",
            None => "(the default) ",
        };
        return Err(usage(
            "pbt-interval",
            settings.interval,
            format!(
                "{given}is not below --epochs {epochs}: no exploit step would happen and the members would train as independent trials; give --pbt-interval below --epochs (or more --epochs)"
            ),
        ));
    }
    let k = a.population.unwrap_or(DEFAULT_POPULATION);
    // Checked here as Pbt::new does, before --out records this run's settings.
    if k < 2 {
        return Err(usage(
            "population",
            k,
            "PBT needs at least 2 members to copy between (e.g. --population 8)",
        ));
    }
    let initial = initial_hparams(&space, k, a.seed)?;
    let hyper = |h: &Hparams| HyperArgs {
        hidden: HiddenSizes(hidden.clone()),
        epochs: Some(epochs),
        batch_size: h.batch_size,
        lr: h.lr,
        weight_decay: h.weight_decay,
        momentum: h.momentum,
        sgd: a.sgd.clone(),
        seed: a.seed,
        schedule: a.schedule.clone(),
    };
    // Explore multiplies or redraws lr and weight decay, so a member's decay is 0 only
    // when the space's decays are (a log-uniform range is above 0); momentum stays each
    // member's draw.
    let decays = match &space.weight_decay {
        Values::List(l) => l.clone(),
        Values::LogUniform { lo, .. } => vec![*lo],
    };
    let momenta: Vec<f64> = initial.iter().map(|h| h.momentum).collect();
    super::common::check_sgd_options_apply(&a.sgd, &momenta, &decays, "every member's")?;
    // Every member's schedule and SGD settings are checked before any data loads.
    for h in &initial {
        let hy = hyper(h);
        HparamSchedule::check_schedule(&schedule_from(&hy, 1)?)?;
        sgd_from(&hy).validate()?;
    }
    // The Ctrl-C handler before the locks: a Ctrl-C during start-up then stops the run at
    // its first step boundary, writing the outputs and releasing the locks, instead of
    // killing the process with its lock files left behind.
    interrupt::stop_flag();
    wgtrain::output::ensure_writable_dir(&a.out)?;
    let _locks =
        wgtrain::lock::lock_all(std::iter::once(a.out.as_path()).chain(a.save_best.as_deref()))?;
    super::sweep::settings::check_out(&a)?;
    // What --resume goes on from: the state the run wrote after its last epoch, or where a
    // stop landed; none when it was killed before its first epoch ended.
    let resumed = match a.resume {
        true => state::read(&a.out)?,
        false => None,
    };
    if a.resume && resumed.is_none() {
        check_nothing_to_resume(&a.out)?;
    }
    let mnist = with_subset(load_data(&a.data, a.quiet)?, a.train_subset, a.seed)?;
    check_outputs_spare_data([a.save_best.as_deref()], &mnist)?;
    let (_, validation) = train::validation_split(mnist.train.len(), a.val_split, a.seed)?;
    let n_train = mnist.train.len() - validation.len();
    let largest = initial
        .iter()
        .map(|h| h.batch_size)
        .max()
        .unwrap_or(batch_size);
    if largest > n_train {
        return Err(usage(
            "batch size",
            largest,
            format!("must be at most the number of training samples ({n_train})"),
        ));
    }
    // Resolved here, so that the replay command names the device the members trained on,
    // and settings.json the path.
    a.device = resolve_device(&a.device, wgtrain::Precision::F32, None)?;
    let device = device_path(&a.device);
    // A resume that goes on with the members on the other path.
    if resumed.is_some() {
        super::sweep::settings::warn_other_path(&a, device);
    }
    // Recorded once every check has passed: a refused run leaves no settings behind.
    super::sweep::settings::record(&a, &mnist, device)?;
    let norm = normalization(&a.data);
    // Each member's schedule counts its own steps per epoch.
    let member_config =
        |h: &Hparams| run_config(&hyper(h), n_train.div_ceil(h.batch_size), norm, a.val_split);
    let base = member_config(&initial[0])?;
    let configs = initial
        .iter()
        .map(member_config)
        .collect::<Result<Vec<_>>>()?;
    note!(
        "pbt: {k} members, {epochs} epochs, exploit every {} (bottom {} copy the top {}, \
         resample probability {}), {n_train} training + {} validation samples",
        match settings.interval {
            1 => "epoch".to_string(),
            n => format!("{n} epochs"),
        },
        settings.group_size(k),
        settings.group_size(k),
        settings.resample,
        validation.len()
    );
    let mut engines = Engines::open(&a.device)?;
    let data = RunData::from(&mnist);
    let (mut pbt, snapshot) = match resumed {
        Some(r) => {
            let pbt = Pbt::resume(space, settings, &configs, r.progress).map_err(|e| {
                usage(
                    "resume",
                    a.out.display(),
                    format!(
                        "{e}; resume with the flags of the interrupted run, or choose another --out"
                    ),
                )
            })?;
            (pbt, Some(r.trainer))
        }
        None => (Pbt::new(space, settings, &configs)?, None),
    };
    let quiet = a.quiet;
    let out = a.out.clone();
    // The engine's micro-batch: every member steps through the shared order this many
    // samples at a time (the smallest starting minibatch).
    let micro_batch = configs
        .iter()
        .map(|c| c.batch_size)
        .min()
        .unwrap_or(batch_size);
    let (record, best_params) = (|| -> Result<_> {
        // Opened with the starting configurations: the engine's micro-batch is the
        // population's smallest starting minibatch, which a restored state steps at.
        let mut engine = engines.engine(&configs, data)?;
        let mut trainer = match &snapshot {
            Some(s) => {
                let t = Trainer::restore(engine.as_mut(), s)?;
                note!("{}", resuming_text(&out, pbt.record(), &t));
                t
            }
            None => Trainer::new(engine.as_mut())?,
        };
        trainer.set_evaluate_test(false);
        trainer.set_stop_flag(interrupt::stop_flag());
        let mut state_failed = false;
        let result = pbt.run_epochs(&mut trainer, &mut |trainer, pbt| {
            let record = pbt.record();
            print_epoch(record, quiet);
            // Written after every epoch, atomically: an interrupted run keeps its epochs
            // and, in its state, what it needs to go on. The state first, each write on its
            // own: one that fails does not cost the other.
            let state = trainer
                .snapshot()
                .and_then(|snap| state::write(&out, pbt.progress(), &snap));
            let written = state.and(write_pbt_outputs(&out, record, None).map(|_| ()));
            state_failed = warn_if_failed(written, &out, record.epochs_done(), state_failed);
            Ok(())
        });
        match result {
            Err(e @ wgtrain::Error::Interrupted { .. }) => {
                // The members where the stop landed, in the middle of an epoch: the
                // resumed run goes on from that step.
                let saved = trainer
                    .snapshot()
                    .and_then(|snap| state::write(&out, pbt.progress(), &snap));
                note!("{}", interrupted_text(&out, pbt.record(), saved.is_ok()));
                if let Err(w) = saved {
                    note!("warning: {w}");
                    let p = super::sweep::state::path(&out);
                    if p.is_file() {
                        note!(
                            "{} holds the state written before: --resume goes on from there",
                            p.display()
                        );
                    }
                }
                note!("resume with: {}", interrupt::resume_command(None));
                return Err(e.into());
            }
            Err(e) => {
                // Whatever stopped the run, its last state goes on with --resume.
                if super::sweep::state::path(&out).is_file() {
                    note!(
                        "the run stopped; its state in {} goes on with: {}",
                        out.display(),
                        interrupt::resume_command(None)
                    );
                }
                return Err(e.into());
            }
            Ok(()) => {}
        }
        let record = pbt.finish(&trainer)?;
        let params = match &record.best {
            Some(b) => Some(trainer.engine().params(b.member)?),
            None => None,
        };
        Ok((record, params))
    })()?;
    say!(
        "\nleaderboard (validation accuracy after the last epoch; lr and wd are each member's last):"
    );
    say_raw!("{}", format_leaderboard(&leaderboard(&record)));
    let (Some(b), Some(params)) = (&record.best, &best_params) else {
        let written = write_pbt_outputs(&a.out, &record, None)?;
        for p in written {
            note!("wrote {}", p.display());
        }
        // Finished: a resume would end here again.
        super::sweep::state::remove(&a.out);
        anyhow::bail!(
            "no member trained the last epoch (every member diverged); try smaller learning rates"
        );
    };
    let final_cfg = b.final_hparams.apply(&base);
    let test = engines.with(
        &wgtrain::RunConfig {
            validation_split: 0.0,
            ..final_cfg
        },
        data,
        Some(params),
        |engine| Ok(engine.evaluate(EvalSet::Test)?.remove(0)),
    )?;
    let best = BestTrial {
        trial: b.member,
        config: TrialConfig {
            lr: b.final_hparams.lr,
            weight_decay: b.final_hparams.weight_decay,
            batch_size: b.final_hparams.batch_size,
            momentum: b.final_hparams.momentum,
            hidden: hidden.clone(),
            epochs,
        },
        val_accuracy: b.val_accuracy,
        val_loss: b.val_loss.unwrap_or(f64::NAN),
        test_accuracy: test.accuracy,
        test_loss: test.loss,
        test_samples: test.samples,
        test_method: "the best member's final parameters (trained on the training part, \
            without the validation split), evaluated once on the test set after the run; \
            config holds its last hyperparameters (its schedule is in pbt_best_schedule.json)"
            .into(),
        single_run_epoch_seconds: None,
        epoch_seconds_by_batch: Default::default(),
    };
    say!(
        "\nbest: member {} (its weights passed through {} member slot{}): val acc {:.2}%, test \
         acc {:.2}% (test loss {:.4}, {} samples; its final parameters, evaluated once)",
        b.member,
        b.ancestry.len(),
        if b.ancestry.len() == 1 { "" } else { "s" },
        100.0 * b.val_accuracy,
        100.0 * test.accuracy,
        test.loss,
        test.samples
    );
    let lineage: Vec<String> = b
        .ancestry
        .iter()
        .map(|s| {
            format!(
                "member {} (epochs {}-{})",
                s.member, s.first_epoch, s.last_epoch
            )
        })
        .collect();
    say!("lineage: {}", lineage.join(" -> "));
    say!("schedule (epoch: lr, weight decay):");
    for e in &b.schedule.epochs {
        say!("  {:>3}: {:.4e}, {}", e.epoch, e.lr, wd(e.weight_decay));
    }
    // The best weights first, then the files and the picture, each on its own: one that
    // fails (a full disk) does not cost the others.
    let mut failed = FailedOutputs::default();
    if let Some(path) = &a.save_best {
        let spec = MlpSpec::new(mnist.train.features(), &hidden, mnist.classes)?;
        match checkpoint::save(path, &spec, params, norm) {
            Ok(()) => note!("wrote {}", path.display()),
            Err(e) => failed.record(e.into(), false),
        }
    }
    match write_pbt_outputs(&a.out, &record, Some(&best)) {
        Ok(written) => written.iter().for_each(|p| note!("wrote {}", p.display())),
        Err(e) => failed.record(e.into(), false),
    }
    match plot::pbt_plot(&record, &a.out) {
        Ok(written) => written.iter().for_each(|p| note!("wrote {}", p.display())),
        Err(e) => failed.record(
            anyhow::Error::from(e).context("drawing the PBT picture"),
            false,
        ),
    }
    if !failed.is_empty() {
        // The state after the last epoch stays: going on from it writes the outputs again.
        let state = super::sweep::state::path(&a.out);
        if state.is_file() {
            note!(
                "the run's state is kept in {}; to write the outputs again: {}",
                state.display(),
                interrupt::resume_command(None)
            );
        } else {
            note!(
                "no state of the run could be written to {} either: the outputs that failed \
                 cannot be written again with --resume; free space there (or choose another \
                 --out) and train again with --overwrite",
                a.out.display()
            );
        }
    }
    failed.into_result()?;
    // Every output is written: the state has nothing left to resume.
    super::sweep::state::remove(&a.out);
    let replay = replay_command(
        &a,
        b.final_hparams.momentum,
        b.final_hparams.batch_size,
        &a.out.join(BEST_SCHEDULE_FILE),
    );
    if b.batch_sizes.len() > 1 {
        let sizes: Vec<String> = b.batch_sizes.iter().map(usize::to_string).collect();
        say!(
            "replay the best member's schedule from scratch (its lineage trained at batch sizes {}, so a replay at {} alone only approximates it):\n  {replay}",
            sizes.join(" then "),
            b.final_hparams.batch_size
        );
    } else if b.final_hparams.batch_size > micro_batch {
        say!(
            "replay the best member's schedule from scratch (it summed its minibatches of {} in micro-steps of the population's {micro_batch}, so a replay ends within rounding of its weights, not on them):\n  {replay}",
            b.final_hparams.batch_size
        );
    } else {
        say!(
            "replay the best member's schedule from scratch (on the CPU it ends on the same weights):\n  {replay}"
        );
    }
    Ok(())
}

/// With `--resume` and no state in `out`: a run killed before its first epoch ended starts
/// again (nothing was kept); a finished run, or one that left epochs but no state (an
/// older wgtrain's), has nothing to go on from.
///
/// # Errors
/// A usage error (exit 2) naming what `out` holds and the fix.
fn check_nothing_to_resume(out: &Path) -> Result<()> {
    let p = out.join("pbt.json");
    if !p.exists() {
        note!(
            "resuming: no epoch had finished in {}; the run starts from its first",
            out.display()
        );
        return Ok(());
    }
    let finished = wgtrain::tune::pbt::output::read_record(&p).is_ok_and(|r| r.best.is_some());
    let holds = if finished {
        "holds a finished PBT run (pbt.json names its best member)".to_string()
    } else {
        format!(
            "holds a PBT run's epochs (pbt.json) but no {} to go on from (written by an older wgtrain)",
            super::sweep::state::STATE_FILE
        )
    };
    Err(usage(
        "resume",
        out.display(),
        format!("{holds}; give --overwrite to run it again, or choose another --out"),
    ))
}

/// What `--resume` says before going on: `resuming pbt: 2 of 4 epochs done, epoch 3 from
/// step 40 of 141`.
fn resuming_text(out: &Path, record: &PbtRecord, trainer: &Trainer<'_>) -> String {
    let done = record.epochs_done();
    let next = match trainer.state().epoch_steps_done() {
        0 => "from its start".to_string(),
        s => format!("from step {s} of {}", trainer.steps_per_epoch()),
    };
    let rest = if done >= record.epochs {
        "every epoch done; writing the outputs".to_string()
    } else {
        format!("epoch {} {next}", done + 1)
    };
    format!(
        "resuming {}: {done} of {} epochs done, {rest}",
        out.display(),
        record.epochs
    )
}

/// What an interrupted PBT run kept in `out`: the finished epochs' files and, when
/// `state_saved`, the state that `--resume` goes on from.
fn interrupted_text(out: &Path, record: &PbtRecord, state_saved: bool) -> String {
    let done = record.epochs_done();
    let mut files = vec!["settings.json"];
    if done > 0 {
        files.extend([
            "pbt.json",
            "pbt_members.csv",
            "pbt_lineage.csv",
            "leaderboard.csv",
        ]);
    }
    if state_saved {
        files.push(super::sweep::state::STATE_FILE);
    }
    let members = if state_saved {
        "; the members were saved where they stopped and go on with --resume"
    } else {
        ""
    };
    format!(
        "pbt interrupted: {done} of {} epochs finished; {} holds {}{members}",
        record.epochs,
        out.display(),
        files.join(", ")
    )
}

/// Warns of a failed write of the epoch's files or state (a full disk), once until a
/// write works again (then says so): the run goes on and writes them again after the next
/// epoch; a stop keeps the last state written. Returns whether this write failed.
fn warn_if_failed(
    written: wgtrain::Result<()>,
    out: &Path,
    epoch: usize,
    failed_before: bool,
) -> bool {
    match written {
        Ok(()) => {
            if failed_before {
                note!(
                    "wrote the run's files and state in {} again (epoch {epoch})",
                    out.display()
                );
            }
            false
        }
        Err(e) => {
            if !failed_before {
                note!(
                    "warning: writing the run's files or state in {} failed after epoch {epoch}: {e}; the run goes on and tries again after the next epoch (the state written before, if any, is whole)",
                    out.display()
                );
            }
            true
        }
    }
}

/// Prints the epoch just recorded: one line per member (or, with `quiet`, the best
/// member's line) and one per exploit step that followed it.
fn print_epoch(record: &PbtRecord, quiet: bool) {
    let epoch = record.epochs_done();
    let rows: Vec<_> = record.history.iter().filter(|r| r.epoch == epoch).collect();
    let acc = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}%", 100.0 * v));
    if quiet {
        let best = rows.iter().max_by(|x, y| {
            x.score()
                .total_cmp(&y.score())
                .then(y.member.cmp(&x.member))
        });
        if let Some(r) = best {
            say!(
                "epoch {epoch}/{}: best member {} val acc {}",
                record.epochs,
                r.member,
                acc(r.val_accuracy)
            );
        }
    } else {
        say!("epoch {epoch}/{}:", record.epochs);
        for r in &rows {
            say!(
                "  member {:>2}: lr {:.3e}  wd {}  train loss {}  val acc {}  ({:?})",
                r.member,
                r.lr,
                wd(r.weight_decay),
                r.train_loss.map_or("-".into(), |l| format!("{l:.4}")),
                acc(r.val_accuracy),
                r.status
            );
        }
    }
    for e in record.lineage.iter().filter(|e| e.epoch == epoch) {
        say!(
            "  exploit: member {} ({}) copies member {} ({}): lr {:.3e} -> {:.3e} ({}), wd {} -> {} ({})",
            e.member,
            acc(e.member_val_accuracy),
            e.from,
            acc(e.from_val_accuracy),
            e.copied.lr,
            e.new.lr,
            e.lr_change,
            wd(e.copied.weight_decay),
            wd(e.new.weight_decay),
            e.weight_decay_change
        );
    }
}

/// A weight decay as the leaderboard writes it: `0`, or `1.0e-4`.
fn wd(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else {
        format!("{v:.2e}")
    }
}

/// A command-line word, single-quoted when it holds a space or a shell metacharacter.
fn word(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:,=+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn enum_name<T: ValueEnum>(v: &T) -> String {
    v.to_possible_value()
        .map_or(String::new(), |p| p.get_name().to_string())
}

/// The `wgtrain train` command that replays `schedule` with this sweep's data, model,
/// seed, split, momentum, SGD variant and lr-schedule flags.
fn replay_command(a: &SweepArgs, momentum: f64, batch: usize, schedule: &Path) -> String {
    let mut w: Vec<String> = vec!["wgtrain".into(), "train".into()];
    let mut flag = |name: &str, value: Option<String>| {
        w.push(format!("--{name}"));
        if let Some(v) = value {
            w.push(word(&v));
        }
    };
    let d = &a.device;
    flag("device", Some(enum_name(&d.device)));
    if let Some(b) = &d.backend {
        flag("backend", Some(enum_name(b)));
    }
    if let Some(ad) = &d.adapter {
        flag("adapter", Some(ad.clone()));
    }
    if let Some(k) = &d.kernels {
        flag("kernels", Some(enum_name(k)));
    }
    if let Some(dir) = &a.data.data {
        flag("data", Some(dir.display().to_string()));
    }
    if let Some(name) = &a.data.dataset {
        flag("dataset", Some(name.to_string()));
    }
    if a.data.no_download {
        flag("no-download", None);
    }
    if a.data.normalize {
        flag("normalize", None);
    }
    if let Some(c) = a.data.classes {
        flag("classes", Some(c.to_string()));
    }
    let hidden = &a.hidden.0[0];
    let hidden = if hidden.is_empty() {
        "none".to_string()
    } else {
        let s: Vec<String> = hidden.iter().map(usize::to_string).collect();
        s.join(",")
    };
    flag("hidden", Some(hidden));
    flag("batch-size", Some(batch.to_string()));
    flag("momentum", Some(momentum.to_string()));
    let s = &a.sgd;
    if s.dampening != 0.0 {
        flag("dampening", Some(s.dampening.to_string()));
    }
    if s.nesterov {
        flag("nesterov", None);
    }
    if s.decoupled_weight_decay {
        flag("decoupled-weight-decay", None);
    }
    if s.no_decay_bias {
        flag("no-decay-bias", None);
    }
    let sch = &a.schedule;
    if let Some(name) = &sch.lr_schedule {
        flag("lr-schedule", Some(name.clone()));
    }
    if sch.warmup_epochs > 0 {
        flag("warmup-epochs", Some(sch.warmup_epochs.to_string()));
    }
    for (name, value, _) in sch.given() {
        flag(name, Some(value));
    }
    flag("seed", Some(a.seed.to_string()));
    flag("val-split", Some(a.val_split.to_string()));
    if let Some(n) = a.train_subset {
        flag("train-subset", Some(n.to_string()));
    }
    flag("hparam-schedule", Some(schedule.display().to_string()));
    w.join(" ")
}
