//! `wgtrain sweep --population K`: the sweep's trials trained as populations
//! ([`wgtrain::tune::population_sweep`]). This layer picks K per group of trials, opens the
//! population engines on the sweep's device, and prints, writes TensorBoard runs and keeps
//! the sweep's files as trials finish, as the sequential loop does.

use std::collections::{BTreeSet, HashMap};

use anyhow::{Context as _, Result};

use wgtrain::data::Mnist;
use wgtrain::device::open_population;
use wgtrain::engine::RunData;
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::tensorboard::EventWriter;
use wgtrain::tune::population_sweep::{
    CPU_POPULATION_CAP, GPU_POPULATION_BUDGET, GPU_POPULATION_CAP, PendingTrial, PopulationBudget,
    PopulationEvent, default_population, group_trials, run_group,
};
use wgtrain::tune::space::TrialConfig;
use wgtrain::tune::sweep::{Sweep, write_outputs};

use super::super::common::run_config;
use super::super::engines::Engines;
use super::super::interrupt;
use super::{SweepArgs, outcome_text, save_best_trial, session_status, trial_writer};

/// A group of trials that can share a population, and its population size.
type Group = (Vec<PendingTrial>, usize);

/// What every population of a sweep shares: the flags, the data and the split.
pub(super) struct Context<'s> {
    pub a: &'s SweepArgs,
    pub mnist: &'s Mnist,
    /// Training samples after the validation split.
    pub n_train: usize,
    pub norm: Normalization,
}

impl Context<'_> {
    /// The trials of `configs` not yet in `sweep`, grouped, each group with its population
    /// size: `--population K`, or by default [`default_population`] on a GPU (its binding
    /// limit, [`GPU_POPULATION_BUDGET`], at most [`GPU_POPULATION_CAP`]) and
    /// [`CPU_POPULATION_CAP`] on the CPU. `None` when every group gets 1: trials run one at
    /// a time, by the sequential loop.
    fn plan(
        &self,
        engines: &Engines,
        configs: &[TrialConfig],
        sweep: &Sweep,
    ) -> Result<Option<Vec<Group>>> {
        let mut pending = Vec::new();
        for (id, t) in configs.iter().enumerate() {
            if sweep.has_trial(id) {
                continue;
            }
            let run = run_config(
                &self.a.hyper(t),
                self.n_train.div_ceil(t.batch_size),
                self.norm,
                self.a.val_split,
            )?;
            pending.push(PendingTrial {
                id,
                config: t.clone(),
                run,
            });
        }
        let mut plan = Vec::new();
        for group in group_trials(pending) {
            let t = &group[0].config;
            let k = match (self.a.population, engines.gpu_limits()) {
                (Some(k), _) => k,
                (None, None) => CPU_POPULATION_CAP,
                (None, Some(limits)) => {
                    let spec =
                        MlpSpec::new(self.mnist.train.features(), &t.hidden, self.mnist.classes)?;
                    let budget = PopulationBudget {
                        bytes: GPU_POPULATION_BUDGET,
                        binding_bytes: limits.max_storage_buffer_binding_size,
                        cap: GPU_POPULATION_CAP,
                    };
                    default_population(&spec, t.batch_size, &budget)
                }
            };
            plan.push((group, k));
        }
        Ok(plan.iter().any(|(_, k)| *k > 1).then_some(plan))
    }

    /// Runs the trials of `configs` not yet in `sweep` as populations, when the plan has
    /// one of more than one member (else returns at once, leaving them to the sequential
    /// loop).
    ///
    /// # Errors
    /// Engine, output and TensorBoard errors; [`wgtrain::Error::Interrupted`] after Ctrl-C
    /// (the trials that finished are written to `--out`).
    pub(super) fn run(
        &self,
        engines: &Engines,
        configs: &[TrialConfig],
        sweep: &mut Sweep,
    ) -> Result<()> {
        let Some(plan) = self.plan(engines, configs, sweep)? else {
            return Ok(());
        };
        let a = self.a;
        let total = configs.len();
        let sizes: Vec<String> = plan
            .iter()
            .map(|(g, k)| format!("{} trials x {k}", g.len()))
            .collect();
        note!(
            "populations: {} group(s) of trials sharing batch size, hidden sizes and epochs, members at once: {}",
            plan.len(),
            sizes.join(", ")
        );
        let mut writers: HashMap<usize, EventWriter> = HashMap::new();
        let mut running: BTreeSet<usize> = BTreeSet::new();
        let header = |id: usize, t: &TrialConfig| format!("trial {id} ({}/{total}): {t}", id + 1);
        let mut on_event = |sweep: &Sweep, e: PopulationEvent<'_>| -> wgtrain::Result<()> {
            match e {
                PopulationEvent::Started {
                    id,
                    config,
                    slot,
                    members,
                } => {
                    running.insert(id);
                    if !a.quiet {
                        say!(
                            "{}  [population member {}/{members}]",
                            header(id, config),
                            slot + 1
                        );
                    }
                    if let Some(w) = trial_writer(a, &a.hyper(config), id)? {
                        writers.insert(id, w);
                    }
                }
                PopulationEvent::Epoch { id, metrics: m } => {
                    if let Some(w) = writers.get_mut(&id) {
                        w.epoch(m)?;
                    }
                    if !a.quiet {
                        say!(
                            "  trial {id} epoch {}: train loss {:.4}  val loss {:.4}  val acc {:.2}%  {:.1} s",
                            m.epoch,
                            m.train_loss,
                            m.val_loss.unwrap_or(f64::NAN),
                            100.0 * m.val_accuracy.unwrap_or(f64::NAN),
                            m.epoch_seconds
                        );
                    }
                }
                PopulationEvent::Finished { id, new_best } => {
                    running.remove(&id);
                    // Every recorded trial is in the sweep (this one was just recorded).
                    let Some(trial) = sweep.trials().iter().find(|t| t.id == id) else {
                        return Ok(());
                    };
                    if let Some(mut w) = writers.remove(&id) {
                        w.session_end(session_status(trial.status))?;
                    }
                    // Written after every trial, atomically: an interrupted sweep keeps
                    // what finished.
                    write_outputs(&a.out, sweep.trials(), None)?;
                    if new_best {
                        save_best_trial(&a.out, sweep, self.mnist, self.norm)?;
                    }
                    let outcome = outcome_text(trial);
                    if a.quiet {
                        say!("{}: {outcome}", header(id, &trial.config));
                    } else {
                        say!("  trial {id} {outcome}");
                    }
                }
            }
            Ok(())
        };
        let data = RunData::from(self.mnist);
        let mut open = |cfgs: &[wgtrain::RunConfig]| open_population(engines.device(), cfgs, data);
        for (group, k) in &plan {
            let result = run_group(sweep, group, *k, &mut open, &mut on_event);
            match result {
                Err(e @ wgtrain::Error::Interrupted { .. }) => {
                    let dropped: Vec<String> = running.iter().map(|i| i.to_string()).collect();
                    note!(
                        "sweep interrupted: {} of {total} trials finished and kept in {} (trials.json, trials.csv, leaderboard.csv); trial(s) {} were dropped",
                        sweep.trials().len(),
                        a.out.display(),
                        dropped.join(", ")
                    );
                    note!("resume with: {}", interrupt::resume_command());
                    return Err(anyhow::Error::from(e).context("population sweep"));
                }
                r => r.with_context(|| {
                    let ids: Vec<String> = group.iter().map(|p| p.id.to_string()).collect();
                    format!("population of trials {}", ids.join(", "))
                })?,
            }
        }
        Ok(())
    }
}
