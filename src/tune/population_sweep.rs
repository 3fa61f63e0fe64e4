//! Population sweeps: a sweep's trials trained K at a time as the members of one engine
//! ([`crate::engine`]; K = 1 trains them one at a time), with pruned and finished members'
//! slots refilled by the trials still waiting.
//!
//! - **Groups.** Members of a population share one minibatch stream, so the trials are
//!   grouped by what they cannot share: hidden sizes, and also epochs (so that a wave of
//!   members starts and ends together, see below). Minibatch sizes mix: a population steps
//!   in micro-steps of its smallest and each member sums its own minibatch over them
//!   ([`crate::step`]). Groups run one after the other, in the order of their first trial.
//! - **Waves.** A group runs as populations of at most K members. A wave opens a fresh
//!   population whose micro-batch is the smallest minibatch size among the group's waiting
//!   trials ([`next_wave`]): the first waiting trial of that size and, in id order, the next
//!   waiting trials whose minibatch size is a multiple of it, up to K; a trial of another
//!   size waits for a later wave. Every member starts at the population's epoch 0, so it
//!   trains as the trial would alone (same data order, same initial weights): bit for bit
//!   at the micro-batch, and to the rounding of its gradient's summation order at a multiple
//!   of it. Without pruning and divergence a population sweep's trials are those of K = 1,
//!   only faster.
//! - **Refill.** After each epoch, members that completed, diverged or were pruned leave
//!   their slot; while other members still train and trials of the group wait, the next
//!   waiting trial whose minibatch size is a multiple of the population's micro-batch starts
//!   in the freed slot ([`Trainer::restart`]): the asynchronous schedule of ASHA. A
//!   refilled trial sees the shuffles of the population's later epochs, so it is a valid run
//!   of its hyperparameters but not bit-identical to its sequential run. When every member
//!   has left, the next wave opens a fresh population instead.
//! - **Pruning** is the sweep's [`crate::tune::prune::Pruner`], judged after each epoch
//!   for every member that trained: first the members that completed or diverged in that
//!   epoch are recorded (so the median rule counts a trial completed in the same epoch),
//!   then each training member is judged against the recorded trials and the other running
//!   members' curves (which the halving rule counts), all judged before any is stopped.
//! - **Time.** A member's `seconds` and each epoch's `epoch_seconds` are its share of the
//!   population's time: the wall time of a population epoch (training and validation,
//!   refill included; the epoch's training part for `epoch_seconds`) divided by the
//!   members that trained in it. Every member computes every micro-step, so this share does
//!   not show what a larger minibatch saves: the sweep times a single run per minibatch
//!   size for that ([`crate::tune::epoch_time`]).
//! - **Best parameters.** A member that completes with the best validation accuracy so far
//!   has its parameters read from the population ([`Engine::params`]) before its
//!   slot is reused.
//! - **Resume.** After every population epoch, and when a stop interrupts one, the caller
//!   can be handed the population's state ([`PopulationSnapshot`]: each slot's trial and
//!   epochs so far, the trainer's [`Snapshot`]); [`run_group_from`] goes on from one, so a
//!   sweep's running trials resume where they were (`sweep --resume`) and end as they
//!   would have without the interruption.
//!
//! The default population size ([`default_population`]) is what fits a memory budget,
//! estimated per member by [`member_bytes`].

use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::engine::{EVAL_BATCH, Engine};
use crate::error::{Error, Result};
use crate::model::MlpSpec;
use crate::train::{MemberOutcome, MemberStatus, Snapshot, Trainer};
use crate::tune::EpochMetrics;
use crate::tune::space::TrialConfig;
use crate::tune::sweep::{Sweep, Trial, TrialStatus, check_validation};

/// The most members a default population has on a GPU: past this the per-step dispatch
/// saving is spent and each epoch waits on the slowest of many trials.
pub const GPU_POPULATION_CAP: usize = 16;

/// The default population on the CPU: 8. The CPU population runs its members' steps in
/// parallel (rayon; the arithmetic of K single runs), which fills cores a single MNIST-sized
/// model leaves idle: an 8-trial sweep (batch 64, 2 epochs of 10,800 samples) took 3.6-4.1 s
/// as one population against 6.8-8.7 s one trial at a time on 2 cores, with identical
/// trials.json. The cost: the median rule prunes nothing until a trial completes, so the
/// first wave runs unpruned (`--pruning halving` judges members at its rungs).
pub const CPU_POPULATION_CAP: usize = 8;

/// Memory a default GPU population may use, bytes (2 GiB). wgpu does not report how much
/// memory an adapter has; every adapter wgtrain runs on has this much for buffers.
pub const GPU_POPULATION_BUDGET: u64 = 2 << 30;

/// Bytes one member of a population of an MLP `spec` at minibatch size `batch` needs on
/// its device: [`crate::engine::member_bytes`] (the formula the engines allocate by) with
/// activations for the larger of the minibatch and the evaluation minibatch.
pub fn member_bytes(spec: &MlpSpec, batch: usize) -> u64 {
    crate::engine::member_bytes(spec, batch.max(EVAL_BATCH))
}

/// Bytes of one member's largest stacked tensor at minibatch size `batch`
/// ([`crate::member_groups::member_largest_tensor_bytes`] with activations for the larger of
/// the minibatch and the evaluation minibatch). A default population keeps K times this
/// within one binding, so that it runs as one group.
pub fn member_largest_tensor_bytes(spec: &MlpSpec, batch: usize) -> u64 {
    crate::member_groups::member_largest_tensor_bytes(spec, batch.max(EVAL_BATCH))
}

/// What bounds a default population.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PopulationBudget {
    /// Bytes all members together may use ([`member_bytes`] each).
    pub bytes: u64,
    /// The largest buffer one binding may hold (`max_storage_buffer_binding_size`): K times
    /// [`member_largest_tensor_bytes`] fits, so the population runs as one group (a larger
    /// one would be split into groups that run one after another, gaining nothing).
    pub binding_bytes: u64,
    /// Most members, whatever fits.
    pub cap: usize,
}

/// The default population size for `spec` at minibatch size `batch`: as many members as
/// fit `budget` (both its total and its binding size), at most `budget.cap`, at least 1.
pub fn default_population(spec: &MlpSpec, batch: usize, budget: &PopulationBudget) -> usize {
    let by_memory = budget.bytes / member_bytes(spec, batch).max(1);
    let by_binding = budget.binding_bytes / member_largest_tensor_bytes(spec, batch).max(1);
    let fit = usize::try_from(by_memory.min(by_binding)).unwrap_or(usize::MAX);
    fit.min(budget.cap).max(1)
}

/// A trial waiting to run.
#[derive(Clone, Debug)]
pub struct PendingTrial {
    /// Its id (index in the sweep's trial list).
    pub id: usize,
    /// Its hyperparameters.
    pub config: TrialConfig,
    /// The run configuration that trains it (with the sweep's validation split).
    pub run: RunConfig,
}

/// The trials grouped by what members of one population must share: hidden sizes and
/// epochs (minibatch sizes mix, see [`next_wave`]). Groups are in the order of their first
/// trial, trials in a group in the order given.
pub fn group_trials(pending: Vec<PendingTrial>) -> Vec<Vec<PendingTrial>> {
    let mut groups: Vec<Vec<PendingTrial>> = Vec::new();
    for p in pending {
        let same = |g: &&mut Vec<PendingTrial>| {
            let c = &g[0].config;
            c.hidden == p.config.hidden && c.epochs == p.config.epochs
        };
        match groups.iter_mut().find(same) {
            Some(g) => g.push(p),
            None => groups.push(vec![p]),
        }
    }
    groups
}

/// The next wave of at most `k` trials out of `waiting` (trials in id order; those taken
/// are removed): its micro-batch is the smallest minibatch size of the waiting trials; the
/// wave is the first waiting trial of that size and, in order, the next waiting ones whose
/// minibatch size is a multiple of it, returned in id order. Returns the wave and its
/// micro-batch.
pub fn next_wave<'g>(
    waiting: &mut Vec<&'g PendingTrial>,
    k: usize,
) -> (Vec<&'g PendingTrial>, usize) {
    let Some(micro) = waiting.iter().map(|p| p.run.batch_size).min() else {
        return (Vec::new(), 0);
    };
    let mut wave = Vec::with_capacity(k);
    if let Some(first) = waiting.iter().position(|p| p.run.batch_size == micro) {
        wave.push(waiting.remove(first));
    }
    let mut i = 0;
    while wave.len() < k && i < waiting.len() {
        if waiting[i].run.batch_size.is_multiple_of(micro) {
            wave.push(waiting.remove(i));
        } else {
            i += 1;
        }
    }
    wave.sort_by_key(|p| p.id);
    (wave, micro)
}

/// What a population sweep reports as it goes.
#[derive(Debug)]
pub enum PopulationEvent<'t> {
    /// Trial `id` starts in slot `slot` of a population of `members` (or goes on there, from
    /// a resumed population's state, after `epochs_done` epochs).
    Started {
        /// The trial.
        id: usize,
        /// Its hyperparameters.
        config: &'t TrialConfig,
        /// Its slot, `0..members`.
        slot: usize,
        /// Members of its population.
        members: usize,
        /// Epochs it trained before (0 for a trial that starts).
        epochs_done: usize,
    },
    /// Trial `id` finished an epoch.
    Epoch {
        /// The trial.
        id: usize,
        /// The epoch's metrics (its own epoch count; seconds are its share).
        metrics: &'t EpochMetrics,
    },
    /// Trial `id` finished and is recorded in the sweep.
    Finished {
        /// The trial.
        id: usize,
        /// It is now the sweep's best trial (its parameters are [`Sweep::best_params`]).
        new_best: bool,
    },
}

/// The engine that trains a population of these configurations, stepping at the given
/// micro-batch ([`crate::engine::RunData::micro_batch`]; `None`: their smallest minibatch
/// size).
pub type OpenPopulation<'o, 'd> =
    dyn FnMut(&[RunConfig], Option<usize>) -> Result<Box<dyn Engine + 'd>> + 'o;

/// The callback that sees a population sweep's events, with the sweep as it stands.
pub type OnPopulationEvent<'o> = dyn FnMut(&Sweep, PopulationEvent<'_>) -> Result<()> + 'o;

/// The callback that is handed a running population's state (after every epoch, and when a
/// stop interrupts one), with the sweep as it stands: what a sweep's state file keeps.
pub type OnPopulationState<'o> = dyn FnMut(&Sweep, &PopulationSnapshot) -> Result<()> + 'o;

/// A running member's trial: its id, its epochs so far and its share of the time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SlotState {
    /// The trial.
    pub id: usize,
    /// Its epochs so far.
    pub history: Vec<EpochMetrics>,
    /// Its share of the population's time so far, s.
    pub seconds: f64,
}

/// A running population of a group: each slot's trial (`None` where the trial left and no
/// other took its place) and the trainer's snapshot (its member `k` is slot `k`). The
/// group's other trials not yet recorded in the sweep are the ones still to start.
#[derive(Clone, Debug, PartialEq)]
pub struct PopulationSnapshot {
    /// Slot k's trial.
    pub slots: Vec<Option<SlotState>>,
    /// The trainer's state and the members' tensors.
    pub trainer: Snapshot,
}

impl PopulationSnapshot {
    /// The ids of the trials running in it.
    pub fn running(&self) -> Vec<usize> {
        self.slots.iter().flatten().map(|s| s.id).collect()
    }
}

/// A running member: its trial, its epochs so far and its share of the time.
struct Slot<'g> {
    trial: &'g PendingTrial,
    history: Vec<EpochMetrics>,
    seconds: f64,
}

/// The slots' trials as a snapshot holds them.
fn slot_states(slots: &[Option<Slot<'_>>]) -> Vec<Option<SlotState>> {
    slots
        .iter()
        .map(|s| {
            s.as_ref().map(|s| SlotState {
                id: s.trial.id,
                history: s.history.clone(),
                seconds: s.seconds,
            })
        })
        .collect()
}

/// Runs `group` (trials sharing hidden sizes and epochs, [`group_trials`]) as populations
/// of at most `k` members opened by `open` ([`next_wave`]), recording every trial in `sweep` as
/// it finishes. See the module docs for the schedule.
///
/// # Errors
/// [`Error::InvalidConfig`] for `k` = 0, trials that cannot share a population, or no
/// validation samples; [`Error::Interrupted`] when the sweep's stop flag ended an epoch
/// (trials that had not finished are not recorded); engine errors and the callback's.
pub fn run_group(
    sweep: &mut Sweep,
    group: &[PendingTrial],
    k: usize,
    open: &mut OpenPopulation<'_, '_>,
    on_event: &mut OnPopulationEvent<'_>,
) -> Result<()> {
    run_group_from(sweep, group, k, None, open, on_event, None)
}

/// [`run_group`], going on first from `resume` (a population of this group, as
/// `on_state` was handed it: its running trials resume in their slots, exactly where they
/// were; `group` then holds the group's trials not yet recorded in `sweep`, the running
/// ones among them), and handing `on_state` the running population's state after every
/// epoch and when a stop interrupts one (before [`Error::Interrupted`] is returned).
///
/// # Errors
/// As [`run_group`]; [`Error::InvalidConfig`] for a `resume` whose trial is not one of
/// `group`, or was trained with other settings; [`Trainer::restore`]'s errors.
pub fn run_group_from(
    sweep: &mut Sweep,
    group: &[PendingTrial],
    k: usize,
    mut resume: Option<PopulationSnapshot>,
    open: &mut OpenPopulation<'_, '_>,
    on_event: &mut OnPopulationEvent<'_>,
    mut on_state: Option<&mut OnPopulationState<'_>>,
) -> Result<()> {
    if k == 0 {
        return Err(Error::InvalidConfig {
            name: "population",
            value: "0".into(),
            reason: "a population has at least 1 member".into(),
        });
    }
    // The trials still to start: the group's, less those running in `resume`.
    let running = resume
        .as_ref()
        .map(PopulationSnapshot::running)
        .unwrap_or_default();
    let mut waiting: Vec<&PendingTrial> =
        group.iter().filter(|p| !running.contains(&p.id)).collect();
    loop {
        let (mut engine, mut slots, snapshot) = match resume.take() {
            Some(r) => {
                let state = &r.trainer.state;
                let configs: Vec<RunConfig> = (0..state.members())
                    .map(|m| state.config(m).clone())
                    .collect();
                let slots = resumed_slots(group, &r, &configs)?;
                // At the micro-batch it stepped at: refills may have left only larger sizes.
                let engine = open(&configs, state.micro_batch())?;
                (engine, slots, Some(r.trainer))
            }
            None if !waiting.is_empty() => {
                let (wave, _) = next_wave(&mut waiting, k);
                let configs: Vec<RunConfig> = wave.iter().map(|p| p.run.clone()).collect();
                let slots = wave
                    .iter()
                    .map(|p| {
                        Some(Slot {
                            trial: p,
                            history: Vec::new(),
                            seconds: 0.0,
                        })
                    })
                    .collect();
                (open(&configs, None)?, slots, None)
            }
            None => break,
        };
        // Refills must step at the population's micro-batch: a multiple of it.
        let micro = engine.setup().micro_batch();
        check_validation(engine.setup().shared().validation.len())?;
        let mut trainer = match &snapshot {
            Some(s) => Trainer::restore(engine.as_mut(), s)?,
            None => Trainer::new(engine.as_mut())?,
        };
        trainer.set_evaluate_test(false);
        if let Some(flag) = sweep.stop_flag() {
            trainer.set_stop_flag(flag);
        }
        let members = slots.len();
        for (slot, s) in slots.iter().enumerate() {
            if let Some(s) = s {
                on_event(sweep, started(s.trial, slot, members, s.history.len()))?;
            }
        }
        let mut tick = Instant::now();
        while trainer.any_training() {
            let outcomes = match trainer.run_epoch(&mut |_| {}) {
                Ok(o) => o,
                Err(e @ Error::Interrupted { .. }) => {
                    if let Some(f) = on_state.as_mut() {
                        let snap = PopulationSnapshot {
                            slots: slot_states(&slots),
                            trainer: trainer.snapshot()?,
                        };
                        f(sweep, &snap)?;
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            let trained = outcomes
                .iter()
                .filter(|o| !matches!(o, MemberOutcome::Idle))
                .count()
                .max(1) as f64;
            let share = tick.elapsed().as_secs_f64() / trained;
            let mut ended: Vec<(usize, TrialStatus, Option<String>)> = Vec::new();
            let mut judged: Vec<usize> = Vec::new();
            for (s, outcome) in outcomes.iter().enumerate() {
                let Some(slot) = slots[s].as_mut() else {
                    continue;
                };
                match outcome {
                    MemberOutcome::Idle => {}
                    MemberOutcome::Trained(r) => {
                        slot.seconds += share;
                        let mut m = EpochMetrics::from_report(r, false);
                        m.epoch_seconds = r.epoch_seconds / trained;
                        on_event(
                            sweep,
                            PopulationEvent::Epoch {
                                id: slot.trial.id,
                                metrics: &m,
                            },
                        )?;
                        slot.history.push(m);
                        match trainer.status(s) {
                            MemberStatus::Done => ended.push((s, TrialStatus::Complete, None)),
                            _ => judged.push(s),
                        }
                    }
                    MemberOutcome::Diverged(e) => {
                        slot.seconds += share;
                        ended.push((s, TrialStatus::Diverged, Some(e.to_string())));
                    }
                }
            }
            for (s, status, note) in ended {
                finish(sweep, &mut trainer, &mut slots, s, status, note, on_event)?;
            }
            let mut pruned = Vec::new();
            for &s in &judged {
                let Some(slot) = &slots[s] else { continue };
                let running: Vec<Vec<f64>> = judged
                    .iter()
                    .filter(|&&j| j != s)
                    .filter_map(|&j| slots[j].as_ref())
                    .map(|o| curve(&o.history))
                    .collect();
                let value = slot
                    .history
                    .last()
                    .and_then(|m| m.val_accuracy)
                    .unwrap_or(f64::NAN);
                let epochs = slot.trial.run.epochs;
                if let Some(note) = sweep.prune_note(slot.history.len(), epochs, value, &running) {
                    pruned.push((s, note));
                }
            }
            for (s, note) in pruned {
                trainer.freeze(s)?;
                finish(
                    sweep,
                    &mut trainer,
                    &mut slots,
                    s,
                    TrialStatus::Pruned,
                    Some(note),
                    on_event,
                )?;
            }
            // Refill freed slots while others train; once all have left, the next wave
            // opens a fresh population (its members then match their single runs).
            if trainer.any_training() {
                for (s, slot) in slots.iter_mut().enumerate() {
                    let fits = |p: &&PendingTrial| p.run.batch_size.is_multiple_of(micro);
                    if slot.is_some() {
                        continue;
                    }
                    let Some(i) = waiting.iter().position(fits) else {
                        break;
                    };
                    let p = waiting.remove(i);
                    trainer.restart(s, &p.run)?;
                    *slot = Some(Slot {
                        trial: p,
                        history: Vec::new(),
                        seconds: 0.0,
                    });
                    on_event(sweep, started(p, s, members, 0))?;
                }
            }
            if let Some(f) = on_state.as_mut() {
                let snap = PopulationSnapshot {
                    slots: slot_states(&slots),
                    trainer: trainer.snapshot()?,
                };
                f(sweep, &snap)?;
            }
            tick = Instant::now();
        }
    }
    Ok(())
}

/// The slots of a resumed population: each running trial found in `group`, with the
/// settings it was trained with (`configs`, the snapshot's) checked against its own.
fn resumed_slots<'g>(
    group: &'g [PendingTrial],
    r: &PopulationSnapshot,
    configs: &[RunConfig],
) -> Result<Vec<Option<Slot<'g>>>> {
    let bad = |id: usize, reason: &str| Error::InvalidConfig {
        name: "population state",
        value: format!("trial {id}"),
        reason: reason.into(),
    };
    if r.slots.len() != configs.len() {
        return Err(bad(
            r.slots.len(),
            "slots and trainer members differ in number",
        ));
    }
    r.slots
        .iter()
        .zip(configs)
        .map(|(s, cfg)| {
            let Some(s) = s else { return Ok(None) };
            let trial = group
                .iter()
                .find(|p| p.id == s.id)
                .ok_or_else(|| bad(s.id, "is not a trial of this group still to finish"))?;
            if &trial.run != cfg {
                return Err(bad(
                    s.id,
                    "was trained with other settings than this sweep gives it",
                ));
            }
            Ok(Some(Slot {
                trial,
                history: s.history.clone(),
                seconds: s.seconds,
            }))
        })
        .collect()
}

fn started(
    p: &PendingTrial,
    slot: usize,
    members: usize,
    epochs_done: usize,
) -> PopulationEvent<'_> {
    PopulationEvent::Started {
        id: p.id,
        config: &p.config,
        slot,
        members,
        epochs_done,
    }
}

/// Validation accuracy after each epoch (NaN where none was measured).
fn curve(history: &[EpochMetrics]) -> Vec<f64> {
    history
        .iter()
        .map(|m| m.val_accuracy.unwrap_or(f64::NAN))
        .collect()
}

/// Records the trial in slot `s` as finished with `status` and frees the slot.
fn finish(
    sweep: &mut Sweep,
    trainer: &mut Trainer<'_>,
    slots: &mut [Option<Slot>],
    s: usize,
    status: TrialStatus,
    note: Option<String>,
    on_event: &mut OnPopulationEvent<'_>,
) -> Result<()> {
    let Some(slot) = slots[s].take() else {
        return Ok(());
    };
    let id = slot.trial.id;
    let trial = Trial::finished(
        id,
        slot.trial.config.clone(),
        status,
        slot.history,
        slot.seconds,
        note,
    );
    let before = sweep.best_trial().map(|b| b.id);
    sweep.record(trial, || trainer.engine().params(s))?;
    let best = sweep.best_trial().map(|b| b.id);
    on_event(
        sweep,
        PopulationEvent::Finished {
            id,
            new_best: best == Some(id) && before != best,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(id: usize, batch: usize, hidden: &[usize], epochs: usize) -> PendingTrial {
        PendingTrial {
            id,
            config: TrialConfig {
                lr: 0.1,
                weight_decay: 0.0,
                batch_size: batch,
                momentum: 0.0,
                hidden: hidden.to_vec(),
                epochs,
            },
            run: RunConfig {
                batch_size: batch,
                ..RunConfig::default()
            },
        }
    }

    /// Issue 23: a sweep over batch sizes ran one population per batch size; they now
    /// share one (the trials at batches 64 and 32 below form one group).
    #[test]
    fn trials_group_by_hidden_and_epochs_not_batch_in_order_of_their_first_trial() {
        let groups = group_trials(vec![
            pending(0, 64, &[32], 3),
            pending(1, 32, &[32], 3),
            pending(2, 64, &[32], 3),
            pending(3, 64, &[16], 3),
            pending(4, 64, &[32], 2),
            pending(5, 32, &[32], 3),
        ]);
        let ids: Vec<Vec<usize>> = groups
            .iter()
            .map(|g| g.iter().map(|p| p.id).collect())
            .collect();
        assert_eq!(ids, [vec![0, 1, 2, 5], vec![3], vec![4]]);
    }

    #[test]
    fn a_wave_steps_at_the_smallest_waiting_batch_and_takes_its_multiples_in_id_order() {
        let trials: Vec<PendingTrial> = [128, 64, 96, 32, 64, 48]
            .iter()
            .enumerate()
            .map(|(id, &b)| pending(id, b, &[32], 3))
            .collect();
        let mut waiting: Vec<&PendingTrial> = trials.iter().collect();
        // Smallest 32: trial 3 first, then 128, 64, 96, 64 in id order (48 is not a
        // multiple of 32), three in all.
        let (w, micro) = next_wave(&mut waiting, 3);
        assert_eq!(micro, 32);
        assert_eq!(w.iter().map(|p| p.id).collect::<Vec<_>>(), [0, 1, 3]);
        let (w, micro) = next_wave(&mut waiting, 8);
        assert_eq!(micro, 48);
        assert_eq!(w.iter().map(|p| p.id).collect::<Vec<_>>(), [2, 5]);
        let (w, micro) = next_wave(&mut waiting, 8);
        assert_eq!((w.len(), micro), (1, 64));
        assert!(waiting.is_empty());
    }

    #[test]
    fn member_bytes_counts_parameters_four_times_and_two_activations_per_layer() {
        // 784 -> 256 -> 10: padded parameter layout (parameters, gradients, momentum and
        // gradient sum), 2 x [rows, O] activations per layer and the per-row loss and
        // correct flags, rows the evaluation minibatch (1000).
        let spec = MlpSpec::new(784, &[256], 10).unwrap();
        let params = spec.layout().len as u64;
        assert!(params >= 784 * 256 + 256 + 256 * 10 + 10);
        let want = 4 * (4 * params + 2 * 1000 * (256 + 10) + 2 * 1000);
        assert_eq!(member_bytes(&spec, 64), want);
        // The largest tensor: the momentum with the gradient sums (2P, one GPU buffer) over
        // the hidden activations at the evaluation minibatch (1000 rows x 256), and the
        // activations at a training minibatch of 4096 rows.
        assert!(4 * 2 * params > 4 * 1000 * 256);
        let largest = 4 * 2 * params;
        assert_eq!(member_largest_tensor_bytes(&spec, 64), largest);
        assert!(4 * 2 * params < 4 * 4096 * 256);
        assert_eq!(member_largest_tensor_bytes(&spec, 4096), 4 * 4096 * 256);
        let budget = |bytes, binding_bytes, cap| PopulationBudget {
            bytes,
            binding_bytes,
            cap,
        };
        // Memory for exactly 5 members; binding room for 7; cap 16.
        assert_eq!(
            default_population(&spec, 64, &budget(5 * want + 1, 7 * largest, 16)),
            5
        );
        assert_eq!(
            default_population(&spec, 64, &budget(u64::MAX, 7 * largest, 16)),
            7
        );
        assert_eq!(
            default_population(&spec, 64, &budget(u64::MAX, u64::MAX, 16)),
            16
        );
        assert_eq!(default_population(&spec, 64, &budget(1, 1, 16)), 1);
    }
}
