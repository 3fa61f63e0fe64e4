//! How `wgtrain sweep` runs its trials: as populations of up to K members
//! ([`wgtrain::tune::population_sweep`]; `--population 1` runs them one at a time). This
//! layer picks K per group of trials, opens the engines on the sweep's device, and prints,
//! writes TensorBoard runs and keeps the sweep's files as trials finish.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use anyhow::Result;

use wgtrain::data::Mnist;
use wgtrain::engine::RunData;
use wgtrain::model::{MlpSpec, Normalization};
use wgtrain::tensorboard::EventWriter;
use wgtrain::tune::epoch_time::{TIMED_SAMPLES, single_run_epoch_seconds};
use wgtrain::tune::population_sweep::{
    CPU_POPULATION_CAP, GPU_POPULATION_BUDGET, GPU_POPULATION_CAP, PendingTrial, PopulationBudget,
    PopulationEvent, PopulationSnapshot, default_population, group_trials, run_group_from,
};
use wgtrain::tune::space::TrialConfig;
use wgtrain::tune::sweep::{Sweep, write_outputs};

use super::super::common::run_config;
use super::super::engines::Engines;
use super::super::interrupt;
use super::{
    SweepArgs, interrupted_note, outcome_text, save_best_trial, session_status, state, trial_writer,
};

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
    /// A single run's epoch time at each minibatch size of `configs`, s (timed on this
    /// device at the hidden sizes of the first trial of that size,
    /// [`wgtrain::tune::epoch_time`]), announced in one line; none after a Ctrl-C.
    ///
    /// # Errors
    /// Engine errors.
    pub(super) fn epoch_times(
        &self,
        engines: &mut Engines,
        configs: &[TrialConfig],
    ) -> Result<BTreeMap<usize, f64>> {
        let mut times = BTreeMap::new();
        for t in configs {
            // A Ctrl-C stops the timing at the next batch size; the sweep then stops as
            // usual, before its first step.
            if interrupt::received().is_some() {
                break;
            }
            if times.contains_key(&t.batch_size) {
                continue;
            }
            let cfg = run_config(
                &self.a.hyper(t),
                self.n_train.div_ceil(t.batch_size),
                self.norm,
                self.a.val_split,
            )?;
            let data = RunData::from(self.mnist);
            let s = engines.with(&cfg, data, None, |e| Ok(single_run_epoch_seconds(e)?))?;
            times.insert(t.batch_size, s);
        }
        if times.is_empty() {
            return Ok(times);
        }
        let parts: Vec<String> = times
            .iter()
            .map(|(b, s)| format!("batch {b} {s:.2} s"))
            .collect();
        note!(
            "single-run epoch time on this device (timed on up to {TIMED_SAMPLES} samples per batch size): {}",
            parts.join(", ")
        );
        Ok(times)
    }

    /// The trials of `configs` not yet in `sweep`, grouped, each group with its population
    /// size: `--population K`, or by default [`default_population`] on a GPU (its binding
    /// limit, [`GPU_POPULATION_BUDGET`], at most [`GPU_POPULATION_CAP`]) and
    /// [`CPU_POPULATION_CAP`] on the CPU.
    fn plan(
        &self,
        engines: &Engines,
        configs: &[TrialConfig],
        sweep: &Sweep,
    ) -> Result<Vec<Group>> {
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
            // The population's buffers are sized for its smallest minibatch.
            let micro = group.iter().map(|p| p.config.batch_size).min().unwrap_or(1);
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
                    default_population(&spec, micro, &budget)
                }
            };
            plan.push((group, k));
        }
        Ok(plan)
    }

    /// Runs the trials of `configs` not yet in `sweep` as populations (K = 1: one at a
    /// time), first going on with `resume`, the population that was running when the sweep
    /// stopped (its group first, as it was when the sweep stopped). The sweep's state
    /// (`--out/state.safetensors`) is written after every population epoch and on Ctrl-C.
    ///
    /// # Errors
    /// Engine, output and TensorBoard errors; [`wgtrain::Error::Interrupted`] after Ctrl-C
    /// (the trials that finished are written to `--out`, the running ones to its state).
    pub(super) fn run(
        &self,
        engines: &Engines,
        configs: &[TrialConfig],
        sweep: &mut Sweep,
        resume: Option<PopulationSnapshot>,
    ) -> Result<()> {
        let mut plan = self.plan(engines, configs, sweep)?;
        if plan.is_empty() {
            return Ok(());
        }
        // A population whose every trial has left has nothing to go on with.
        let mut resume = resume.filter(|r| !r.running().is_empty());
        if let Some(r) = &resume {
            let id = r.running()[0];
            let at = plan
                .iter()
                .position(|(g, _)| g.iter().any(|p| p.id == id))
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "the sweep's state runs trial {id}, which this sweep does not wait for"
                    )
                })?;
            let group = plan.remove(at);
            plan.insert(0, group);
        }
        let a = self.a;
        let total = configs.len();
        if plan.iter().any(|(_, k)| *k > 1) {
            let sizes: Vec<(Vec<usize>, usize)> = plan
                .iter()
                .map(|(g, k)| (g.iter().map(|p| p.config.batch_size).collect(), *k))
                .collect();
            note!("{}", plan_line(&sizes));
        }
        let mut writers: HashMap<usize, EventWriter> = HashMap::new();
        let mut running: BTreeSet<usize> = BTreeSet::new();
        // Trials one at a time print as they always did: no member or trial tags.
        let mut one_at_a_time = false;
        let header = |id: usize, t: &TrialConfig| format!("trial {id} ({}/{total}): {t}", id + 1);
        let mut on_event = |sweep: &Sweep, e: PopulationEvent<'_>| -> wgtrain::Result<()> {
            match e {
                PopulationEvent::Started {
                    id,
                    config,
                    slot,
                    members,
                    epochs_done,
                } => {
                    running.insert(id);
                    let resumed = if epochs_done > 0 {
                        format!("  (resumed after epoch {epochs_done})")
                    } else {
                        String::new()
                    };
                    if !a.quiet && members == 1 {
                        say!("{}{resumed}", header(id, config));
                    } else if !a.quiet {
                        say!(
                            "{}  [population member {}/{members}]{resumed}",
                            header(id, config),
                            slot + 1
                        );
                    }
                    one_at_a_time = members == 1;
                    if let Some(w) = trial_writer(a, &a.hyper(config), id)? {
                        writers.insert(id, w);
                    }
                }
                PopulationEvent::Epoch { id, metrics: m } => {
                    if let Some(w) = writers.get_mut(&id) {
                        w.epoch(m)?;
                    }
                    let who = if one_at_a_time {
                        String::new()
                    } else {
                        format!("trial {id} ")
                    };
                    if !a.quiet {
                        say!(
                            "  {who}epoch {}: train loss {:.4}  val loss {:.4}  val acc {:.2}%  {:.1} s",
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
                    // The best weights first, then the trials, each written atomically:
                    // trials.json never names a best trial whose weights `--resume` cannot
                    // read (a full disk between the two left a sweep it refused for good).
                    if new_best {
                        save_best_trial(&a.out, sweep, self.mnist, self.norm)?;
                    }
                    write_outputs(&a.out, sweep.trials(), None)?;
                    let outcome = outcome_text(trial);
                    if a.quiet {
                        say!("{}: {outcome}", header(id, &trial.config));
                    } else if one_at_a_time {
                        say!("  {outcome}");
                    } else {
                        say!("  trial {id} {outcome}");
                    }
                }
            }
            Ok(())
        };
        let data = RunData::from(self.mnist);
        let mut open = |cfgs: &[wgtrain::RunConfig], micro_batch: Option<usize>| {
            let data = RunData {
                micro_batch,
                ..data
            };
            wgtrain::open(engines.device(), cfgs, data)
        };
        // A failed state write (a full disk) is warned of once and tried again after the
        // next population epoch; the state written before stays whole meanwhile.
        let state_saved = std::cell::Cell::new(false);
        let state_failing = std::cell::Cell::new(false);
        let mut on_state = |sweep: &Sweep, p: &PopulationSnapshot| -> wgtrain::Result<()> {
            match state::write(&a.out, sweep, Some(p)) {
                Ok(()) => {
                    if state_failing.replace(false) {
                        note!(
                            "wrote the sweep's state {} again",
                            state::path(&a.out).display()
                        );
                    }
                    state_saved.set(true);
                }
                Err(e) => {
                    if !state_failing.replace(true) {
                        let held = if state_saved.get() {
                            "it holds the state written before"
                        } else {
                            "no state was written yet"
                        };
                        note!(
                            "warning: writing the sweep's state failed: {e}; {held}; the sweep goes on and tries again after the next population epoch"
                        );
                    }
                }
            }
            Ok(())
        };
        for (group, k) in &plan {
            let result = run_group_from(
                sweep,
                group,
                *k,
                resume.take(),
                &mut open,
                &mut on_event,
                Some(&mut on_state),
            );
            match result {
                Err(e @ wgtrain::Error::Interrupted { .. }) => {
                    let running: Vec<usize> = running.iter().copied().collect();
                    // Saved where the stop landed only when the last write worked.
                    let saved_now = state_saved.get() && !state_failing.get();
                    note!(
                        "{}",
                        interrupted_note(sweep, total, &a.out, &running, saved_now)
                    );
                    if state_saved.get() && !saved_now {
                        note!(
                            "{} holds the state written before: --resume goes on from there",
                            state::path(&a.out).display()
                        );
                    }
                    note!("resume with: {}", interrupt::resume_command(None));
                    return Err(anyhow::Error::from(e).context("population sweep"));
                }
                Err(e) => {
                    // Whatever stopped the sweep, what it kept goes on with --resume.
                    if state_saved.get() || !sweep.trials().is_empty() {
                        note!(
                            "the sweep stopped; what it kept in {} goes on with: {}",
                            a.out.display(),
                            interrupt::resume_command(None)
                        );
                    }
                    let ids: Vec<String> = group.iter().map(|p| p.id.to_string()).collect();
                    return Err(anyhow::Error::from(e)
                        .context(format!("population of trials {}", ids.join(", "))));
                }
                Ok(()) => {}
            }
        }
        Ok(())
    }
}

/// The line that announces a population sweep's plan: per group of trials (those sharing
/// hidden sizes and epochs, given as their minibatch sizes and K), how many trials it has
/// and how many train at once (at most K, at most the trials). A population's minibatch
/// sizes are multiples of its smallest ([`wgtrain::tune::population_sweep::next_wave`]),
/// so a group whose sizes are not (32 and 48) trains in populations one after the other,
/// and the line says which sizes wait.
fn plan_line(groups: &[(Vec<usize>, usize)]) -> String {
    let group = |(batches, k): &(Vec<usize>, usize)| {
        let n = batches.len();
        let at_once = |n: usize| match n.min(*k) {
            _ if n == 1 => String::new(),
            1 => ", one at a time".to_string(),
            m => format!(", {m} at a time"),
        };
        let stages = stages(batches);
        if stages.len() == 1 {
            return format!("{}{}", super::count(n, "trial"), at_once(n));
        }
        let parts: Vec<String> = stages
            .iter()
            .map(|sizes| {
                let mut distinct = sizes.clone();
                distinct.sort_unstable();
                distinct.dedup();
                let b: Vec<String> = distinct.iter().map(usize::to_string).collect();
                format!(
                    "{} at batch {}{}",
                    super::count(sizes.len(), "trial"),
                    b.join("/"),
                    at_once(sizes.len())
                )
            })
            .collect();
        format!(
            "{} in {} populations one after the other (a population's batch sizes are multiples of its smallest): {}",
            super::count(n, "trial"),
            stages.len(),
            parts.join(", then ")
        )
    };
    let parts: Vec<String> = groups.iter().map(group).collect();
    format!(
        "populations: {} group{} of trials sharing hidden sizes and epochs: {}",
        groups.len(),
        if groups.len() == 1 { "" } else { "s" },
        parts.join("; ")
    )
}

/// The minibatch sizes of a group's trials split as its populations take them, in order:
/// the smallest waiting size and every waiting multiple of it, then the same for the rest.
fn stages(batches: &[usize]) -> Vec<Vec<usize>> {
    let mut waiting = batches.to_vec();
    let mut out = Vec::new();
    while let Some(&micro) = waiting.iter().min() {
        let (now, later): (Vec<usize>, Vec<usize>) =
            waiting.iter().partition(|b| b.is_multiple_of(micro));
        out.push(now);
        waiting = later;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::plan_line;

    /// Regression (issue 26, item 8): the plan read "members at once: 2 trials x 8, 2
    /// trials x 8" (as if 16 trained per group) and "1 trials". Each group now says how
    /// many trials it has and how many of them train at once.
    #[test]
    fn the_population_plan_says_how_many_trials_train_at_once() {
        let n = |n: usize, k: usize| (vec![64; n], k);
        assert_eq!(
            plan_line(&[n(2, 8), n(2, 8)]),
            "populations: 2 groups of trials sharing hidden sizes and epochs: \
             2 trials, 2 at a time; 2 trials, 2 at a time"
        );
        assert_eq!(
            plan_line(&[n(24, 8), n(1, 8), n(5, 1)]),
            "populations: 3 groups of trials sharing hidden sizes and epochs: \
             24 trials, 8 at a time; 1 trial; 5 trials, one at a time"
        );
        assert!(plan_line(&[n(3, 2)]).starts_with("populations: 1 group of trials "));
    }

    /// Fault finding (issue 25): `--batch-size 32,48` said "2 trials, 2 at a time", but 48
    /// is not a multiple of 32, so the batch-48 trial waits for a population of its own.
    /// Sizes that are multiples of the smallest share one population.
    #[test]
    fn the_population_plan_says_which_batch_sizes_wait_for_a_later_population() {
        assert_eq!(
            plan_line(&[(vec![32, 48], 8)]),
            "populations: 1 group of trials sharing hidden sizes and epochs: 2 trials in 2 \
             populations one after the other (a population's batch sizes are multiples of \
             its smallest): 1 trial at batch 32, then 1 trial at batch 48"
        );
        assert_eq!(
            plan_line(&[(vec![48, 32, 64, 48, 96, 32], 3)]),
            "populations: 1 group of trials sharing hidden sizes and epochs: 6 trials in 2 \
             populations one after the other (a population's batch sizes are multiples of \
             its smallest): 4 trials at batch 32/64/96, 3 at a time, then 2 trials at batch \
             48, 2 at a time"
        );
        assert_eq!(
            plan_line(&[(vec![32, 64, 128], 8)]),
            "populations: 1 group of trials sharing hidden sizes and epochs: 3 trials, 3 at \
             a time"
        );
    }
}
