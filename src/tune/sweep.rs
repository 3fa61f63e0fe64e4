//! Sweeps: running trials with pruning ([`Pruner`]), the leaderboard, and the files a
//! sweep writes (`trials.json`, `trials.csv`, `leaderboard.csv`, `best.json`).
//!
//! A trial's id is its index in the sweep's list of trials (the order they were defined),
//! whatever order they ran or finished in (trials of a population sweep,
//! [`crate::tune::population_sweep`], finish out of order); [`Sweep::trials`] lists them by
//! id.
//!
//! A trial is judged by its validation accuracy after its last epoch. The leaderboard
//! lists completed trials first (best validation accuracy first), then pruned ones (by the
//! validation accuracy where they stopped), then diverged ones; ties go to the earlier
//! trial. The best trial is the top completed one; its final parameters are kept and, at
//! the end of the sweep, evaluated once on the test set (no retraining: those parameters
//! are the ones the validation accuracy was measured on).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::{FileWriter, write_each};
use crate::tune::EpochMetrics;
use crate::tune::prune::Pruner;
use crate::tune::space::{TrialConfig, hidden_label};

/// How a trial ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrialStatus {
    /// Ran every epoch (or stopped early on its validation loss).
    Complete,
    /// Stopped by the pruner.
    Pruned,
    /// Its training loss became non-finite.
    Diverged,
}

impl TrialStatus {
    fn rank(self) -> u8 {
        match self {
            TrialStatus::Complete => 0,
            TrialStatus::Pruned => 1,
            TrialStatus::Diverged => 2,
        }
    }

    /// `complete`, `pruned` or `diverged`.
    pub fn as_str(self) -> &'static str {
        match self {
            TrialStatus::Complete => "complete",
            TrialStatus::Pruned => "pruned",
            TrialStatus::Diverged => "diverged",
        }
    }
}

/// One trial: its hyperparameters, how it ended and every epoch's metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// 0-based index in the sweep's list of trials (the order they were defined).
    pub id: usize,
    /// How it ended.
    pub status: TrialStatus,
    /// Its hyperparameters.
    pub config: TrialConfig,
    /// Validation loss after the last epoch run.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the last epoch run: the trial's score.
    pub val_accuracy: Option<f64>,
    /// Per-epoch metrics (no test metrics: sweeps never look at the test set).
    pub history: Vec<EpochMetrics>,
    /// Wall time of the trial, s; for a member of a population, its share of the
    /// population's time (each population epoch's wall time divided by the members that
    /// trained in it, summed over the trial's epochs).
    pub seconds: f64,
    /// Why a trial diverged or was pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The training time of one epoch of a single run at this trial's minibatch size on
    /// the sweep's device, s, as the sweep measured it ([`crate::tune::epoch_time`]): the
    /// time side of the batch-size answer (`seconds` is a population share, the same for
    /// every minibatch size of one population).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_run_epoch_seconds: Option<f64>,
}

/// Runs trials one after the other and keeps what the pruner and the leaderboard need.
pub struct Sweep {
    pruner: Option<Pruner>,
    trials: Vec<Trial>,
    best: Option<(usize, Vec<f32>)>,
    stop: Option<Arc<AtomicBool>>,
    /// A single run's epoch time per minibatch size, s ([`Sweep::set_epoch_times`]).
    epoch_times: BTreeMap<usize, f64>,
}

/// How a sweep ranks two trials that both completed, the better first: the higher
/// validation accuracy, then (accuracy ties, common on a small validation split) the lower
/// validation loss, then the smaller trial id. A missing or NaN accuracy ranks last, a
/// missing or NaN loss after any number.
pub fn rank_completed(a: &Trial, b: &Trial) -> std::cmp::Ordering {
    let acc = |t: &Trial| {
        t.val_accuracy
            .filter(|v| !v.is_nan())
            .unwrap_or(f64::NEG_INFINITY)
    };
    let loss = |t: &Trial| t.val_loss.filter(|v| !v.is_nan()).unwrap_or(f64::INFINITY);
    acc(b)
        .total_cmp(&acc(a))
        .then_with(|| loss(a).total_cmp(&loss(b)))
        .then(a.id.cmp(&b.id))
}

/// The completed trial a sweep ranks best ([`rank_completed`]), as [`Sweep::best_trial`]
/// keeps it while trials run; trials without a validation accuracy are not candidates.
pub fn best_completed(trials: &[Trial]) -> Option<&Trial> {
    trials
        .iter()
        .filter(|t| t.status == TrialStatus::Complete)
        .filter(|t| t.val_accuracy.is_some_and(|a| !a.is_nan()))
        .min_by(|a, b| rank_completed(a, b))
}

impl Sweep {
    /// An empty sweep; `pruner` `None` runs every trial to the end.
    pub fn new(pruner: Option<Pruner>) -> Sweep {
        Sweep {
            pruner,
            trials: Vec::new(),
            best: None,
            stop: None,
            epoch_times: BTreeMap::new(),
        }
    }

    /// Gives the sweep a single run's epoch time per minibatch size, s
    /// ([`crate::tune::epoch_time`]): trials recorded from now on carry theirs
    /// ([`Trial::single_run_epoch_seconds`]).
    pub fn set_epoch_times(&mut self, times: BTreeMap<usize, f64>) {
        self.epoch_times = times;
    }

    /// A single run's epoch time per minibatch size, s, as given to
    /// [`Sweep::set_epoch_times`].
    pub fn epoch_times(&self) -> &BTreeMap<usize, f64> {
        &self.epoch_times
    }

    /// A sweep that goes on from `trials`, the trials an earlier, interrupted run of the
    /// same sweep finished (read back with [`read_trials`]); `best_params` are the final
    /// parameters of their best completed trial ([`best_completed`]), which the test
    /// evaluation and `--save-best` need at the end.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when the trial ids are not increasing (a population sweep
    /// may leave gaps: trials that had not finished), or when a completed trial exists but
    /// `best_params` is `None`.
    pub fn resume(
        pruner: Option<Pruner>,
        trials: Vec<Trial>,
        best_params: Option<Vec<f32>>,
    ) -> Result<Sweep> {
        if let Some((i, w)) = trials
            .windows(2)
            .enumerate()
            .find(|(_, w)| w[1].id <= w[0].id)
        {
            return Err(Error::InvalidConfig {
                name: "resume",
                value: format!("trial {}", w[1].id),
                reason: format!(
                    "is at position {} after trial {}: the trials file is not one sweep's, in order",
                    i + 1,
                    w[0].id
                ),
            });
        }
        let best = match (best_completed(&trials).map(|t| t.id), best_params) {
            (Some(id), Some(p)) => Some((id, p)),
            (None, _) => None,
            (Some(id), None) => {
                return Err(Error::InvalidConfig {
                    name: "resume",
                    value: format!("trial {id}"),
                    reason: "is the best finished trial but its parameters are missing".into(),
                });
            }
        };
        Ok(Sweep {
            pruner,
            trials,
            best,
            stop: None,
            epoch_times: BTreeMap::new(),
        })
    }

    /// Makes trials stoppable (see [`crate::train::Trainer::set_stop_flag`]): once `flag` is
    /// set, the trials running stop at a step boundary, the sweep returns
    /// [`Error::Interrupted`] and those trials are not recorded.
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.stop = Some(flag);
    }

    /// The stop flag of [`Sweep::set_stop_flag`].
    pub fn stop_flag(&self) -> Option<Arc<AtomicBool>> {
        self.stop.clone()
    }

    /// The pruning rule (`None`: trials run to the end).
    pub fn pruner(&self) -> Option<Pruner> {
        self.pruner
    }

    /// Why the sweep's pruner stops a trial after its `epoch` (1-based) of `epochs` with
    /// validation accuracy `value`, or `None` when it goes on. The finished trials are the
    /// ones recorded; `running` are the validation-accuracy curves of other trials still
    /// training (a population's other members), which the halving rule counts too.
    pub fn prune_note(
        &self,
        epoch: usize,
        epochs: usize,
        value: f64,
        running: &[Vec<f64>],
    ) -> Option<String> {
        let pruner = self.pruner?;
        let completed: Vec<Vec<f64>> = self
            .trials
            .iter()
            .filter(|t| t.status == TrialStatus::Complete)
            .map(accuracy_curve)
            .collect();
        let mut others: Vec<Vec<f64>> = self.trials.iter().map(accuracy_curve).collect();
        others.extend_from_slice(running);
        pruner.judge(epoch, epochs, value, &completed, &others)
    }

    /// True when trial `id` has been recorded.
    pub fn has_trial(&self, id: usize) -> bool {
        self.position(id).is_ok()
    }

    fn position(&self, id: usize) -> std::result::Result<usize, usize> {
        self.trials.binary_search_by_key(&id, |t| t.id)
    }

    /// Records a finished trial (kept in id order). When it completed with a better
    /// validation accuracy than the best so far (or an equal one and a smaller id, as
    /// [`best_completed`] ranks), `params()` are kept as the best trial's.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when a trial with this id is already recorded; whatever
    /// `params` returns.
    pub fn record(
        &mut self,
        mut trial: Trial,
        params: impl FnOnce() -> Result<Vec<f32>>,
    ) -> Result<&Trial> {
        if trial.single_run_epoch_seconds.is_none() {
            trial.single_run_epoch_seconds =
                self.epoch_times.get(&trial.config.batch_size).copied();
        }
        let Err(at) = self.position(trial.id) else {
            return Err(Error::InvalidConfig {
                name: "trial",
                value: trial.id.to_string(),
                reason: "is recorded twice in one sweep".into(),
            });
        };
        if trial.status == TrialStatus::Complete && trial.val_accuracy.is_some_and(|a| !a.is_nan())
        {
            let better = self
                .best_trial()
                .is_none_or(|b| rank_completed(&trial, b).is_lt());
            if better {
                self.best = Some((trial.id, params()?));
            }
        }
        self.trials.insert(at, trial);
        Ok(&self.trials[at])
    }

    /// Every trial recorded so far, by id.
    pub fn trials(&self) -> &[Trial] {
        &self.trials
    }

    /// The completed trial the sweep ranks best ([`rank_completed`]).
    pub fn best_trial(&self) -> Option<&Trial> {
        let (id, _) = self.best.as_ref()?;
        self.position(*id).ok().map(|i| &self.trials[i])
    }

    /// The best trial's final parameters.
    pub fn best_params(&self) -> Option<&[f32]> {
        self.best.as_ref().map(|(_, p)| p.as_slice())
    }
}

impl Trial {
    /// A finished trial: its score (validation loss and accuracy) is its last epoch's.
    pub fn finished(
        id: usize,
        config: TrialConfig,
        status: TrialStatus,
        history: Vec<EpochMetrics>,
        seconds: f64,
        note: Option<String>,
    ) -> Trial {
        let last = history.last();
        Trial {
            id,
            status,
            config,
            val_loss: last.and_then(|m| m.val_loss),
            val_accuracy: last.and_then(|m| m.val_accuracy),
            history,
            seconds,
            note,
            single_run_epoch_seconds: None,
        }
    }
}

/// A trial's validation accuracy after each epoch (NaN where none was measured).
fn accuracy_curve(t: &Trial) -> Vec<f64> {
    t.history
        .iter()
        .map(|m| m.val_accuracy.unwrap_or(f64::NAN))
        .collect()
}

/// Refuses a sweep without validation samples.
///
/// # Errors
/// [`Error::InvalidConfig`] when `validation_samples` is 0.
pub fn check_validation(validation_samples: usize) -> Result<()> {
    if validation_samples == 0 {
        return Err(Error::InvalidConfig {
            name: "validation split",
            value: "0".into(),
            reason: "a sweep tunes on a validation split (e.g. --val-split 0.1)".into(),
        });
    }
    Ok(())
}

/// One row of the leaderboard (and of `leaderboard.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardRow {
    /// 1-based.
    pub rank: usize,
    /// The trial's id.
    pub trial: usize,
    /// How it ended.
    pub status: TrialStatus,
    /// Validation accuracy after its last epoch (the score).
    pub val_accuracy: Option<f64>,
    /// Validation loss after its last epoch.
    pub val_loss: Option<f64>,
    /// Base learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Momentum.
    pub momentum: f64,
    /// As [`hidden_label`] writes it.
    pub hidden: String,
    /// Epochs planned.
    pub epochs: usize,
    /// Epochs that ran.
    pub epochs_run: usize,
    /// Wall time of the trial, s; for a member of a population (a population sweep's
    /// trial, a PBT member), its share of the population's time.
    pub seconds: f64,
    /// One epoch of a single run at this minibatch size on the sweep's device, s
    /// ([`Trial::single_run_epoch_seconds`]; empty when not measured).
    pub single_run_epoch_seconds: Option<f64>,
}

/// The trials ranked: completed first ([`rank_completed`]: validation accuracy, then loss,
/// then trial id), then pruned, then diverged, each by validation accuracy, then loss,
/// then trial id.
pub fn leaderboard(trials: &[Trial]) -> Vec<LeaderboardRow> {
    let mut sorted: Vec<&Trial> = trials.iter().collect();
    sorted.sort_by(|a, b| {
        a.status
            .rank()
            .cmp(&b.status.rank())
            .then_with(|| rank_completed(a, b))
    });
    sorted
        .into_iter()
        .enumerate()
        .map(|(i, t)| LeaderboardRow {
            rank: i + 1,
            trial: t.id,
            status: t.status,
            val_accuracy: t.val_accuracy,
            val_loss: t.val_loss,
            lr: t.config.lr,
            weight_decay: t.config.weight_decay,
            batch_size: t.config.batch_size,
            momentum: t.config.momentum,
            hidden: hidden_label(&t.config.hidden),
            epochs: t.config.epochs,
            epochs_run: t.history.len(),
            seconds: t.seconds,
            single_run_epoch_seconds: t.single_run_epoch_seconds,
        })
        .collect()
}

/// The leaderboard as an aligned text table.
pub fn format_leaderboard(rows: &[LeaderboardRow]) -> String {
    let header = [
        "rank",
        "trial",
        "status",
        "val acc",
        "val loss",
        "lr",
        "wd",
        "batch",
        "momentum",
        "hidden",
        "epochs",
        "time",
        "1-run epoch",
    ];
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map_or("-".into(), f);
    let cells: Vec<[String; 13]> = rows
        .iter()
        .map(|r| {
            [
                r.rank.to_string(),
                r.trial.to_string(),
                r.status.as_str().into(),
                opt(r.val_accuracy, &|a| format!("{:.2}%", 100.0 * a)),
                opt(r.val_loss, &|l| format!("{l:.4}")),
                format!("{:.3e}", r.lr),
                if r.weight_decay == 0.0 {
                    "0".into()
                } else {
                    format!("{:.1e}", r.weight_decay)
                },
                r.batch_size.to_string(),
                format!("{}", r.momentum),
                r.hidden.clone(),
                format!("{}/{}", r.epochs_run, r.epochs),
                format!("{:.1} s", r.seconds),
                opt(r.single_run_epoch_seconds, &|s| format!("{s:.2} s")),
            ]
        })
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &cells {
        for (w, c) in width.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, row: &[&str]| {
        let parts: Vec<String> = row
            .iter()
            .zip(&width)
            .enumerate()
            .map(|(i, (c, w))| {
                // Text columns (status, hidden) left-aligned, numbers right-aligned.
                if i == 2 || i == 9 {
                    format!("{c:<w$}")
                } else {
                    format!("{c:>w$}")
                }
            })
            .collect();
        // Writing to a String cannot fail.
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &header);
    for row in &cells {
        let r: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&mut out, &r);
    }
    out
}

/// One row of `trials.csv`: a trial's hyperparameters and one epoch's metrics. A trial that
/// diverged in its first epoch has one row with the metric columns empty.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrialEpochRow {
    /// The trial's id.
    pub trial: usize,
    /// How the trial ended.
    pub status: TrialStatus,
    /// Base learning rate.
    pub lr: f64,
    /// Weight decay.
    pub weight_decay: f64,
    /// Minibatch size.
    pub batch_size: usize,
    /// Momentum.
    pub momentum: f64,
    /// As [`hidden_label`] writes it.
    pub hidden: String,
    /// Epochs planned.
    pub epochs: usize,
    /// 1-based epoch of this row (empty: no epoch finished).
    pub epoch: Option<usize>,
    /// The learning rate of the epoch's first step (the schedule's).
    pub epoch_lr: Option<f64>,
    /// Mean training loss of the epoch.
    pub train_loss: Option<f64>,
    /// Training accuracy of the epoch.
    pub train_accuracy: Option<f64>,
    /// Validation loss after the epoch.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the epoch.
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch's training, s.
    pub epoch_seconds: Option<f64>,
}

/// The rows of `trials.csv`, trial by trial, epoch by epoch.
pub fn trial_rows(trials: &[Trial]) -> Vec<TrialEpochRow> {
    let mut rows = Vec::new();
    for t in trials {
        let row = |m: Option<&EpochMetrics>| TrialEpochRow {
            trial: t.id,
            status: t.status,
            lr: t.config.lr,
            weight_decay: t.config.weight_decay,
            batch_size: t.config.batch_size,
            momentum: t.config.momentum,
            hidden: hidden_label(&t.config.hidden),
            epochs: t.config.epochs,
            epoch: m.map(|m| m.epoch),
            epoch_lr: m.map(|m| m.lr),
            train_loss: m.map(|m| m.train_loss),
            train_accuracy: m.map(|m| m.train_accuracy),
            val_loss: m.and_then(|m| m.val_loss),
            val_accuracy: m.and_then(|m| m.val_accuracy),
            epoch_seconds: m.map(|m| m.epoch_seconds),
        };
        if t.history.is_empty() {
            rows.push(row(None));
        }
        rows.extend(t.history.iter().map(|m| row(Some(m))));
    }
    rows
}

/// The best trial and its one look at the test set (`best.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BestTrial {
    /// The trial's id.
    pub trial: usize,
    /// Its hyperparameters.
    pub config: TrialConfig,
    /// Its score: validation accuracy after its last epoch.
    pub val_accuracy: f64,
    /// Validation loss after its last epoch.
    pub val_loss: f64,
    /// Accuracy of its final parameters on the test set.
    pub test_accuracy: f64,
    /// Mean loss of its final parameters on the test set.
    pub test_loss: f64,
    /// Test samples evaluated.
    pub test_samples: usize,
    /// How the test numbers were obtained.
    pub test_method: String,
    /// One epoch of a single run at its minibatch size on this device, s
    /// ([`Trial::single_run_epoch_seconds`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single_run_epoch_seconds: Option<f64>,
    /// One epoch of a single run at each minibatch size of the sweep, s (keys: minibatch
    /// sizes), so accuracy per epoch of time can be read next to accuracy per epoch.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub epoch_seconds_by_batch: BTreeMap<usize, f64>,
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| io_error(path)(std::io::Error::other(e)))?;
    crate::output::write_atomically(path, (text + "\n").as_bytes())
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let csv_error = |e: csv::Error| io_error(path)(std::io::Error::other(e.to_string()));
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(csv_error)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| io_error(path)(std::io::Error::other(e.to_string())))?;
    crate::output::write_atomically(path, &bytes)
}

/// Writes `trials.json` (every trial with its per-epoch metrics), `trials.csv` (one row per
/// trial and epoch), `leaderboard.csv` and, when given, `best.json` into `dir` (created if
/// missing). Returns the paths written. Each file is written atomically (a temporary file
/// renamed over it), so a sweep can call this after every trial and an interrupted sweep
/// leaves whole files listing the trials that finished; every file is tried, so one that
/// fails (a full disk) does not keep the others from being written.
///
/// # Errors
/// [`Error::Io`] or [`Error::Output`] naming the first file that failed (the others were
/// tried).
pub fn write_outputs(
    dir: &Path,
    trials: &[Trial],
    best: Option<&BestTrial>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    let json = |p: &Path| write_json(p, trials);
    let csv = |p: &Path| write_csv(p, &trial_rows(trials));
    let board = |p: &Path| write_csv(p, &leaderboard(trials));
    let best_json = |p: &Path| best.map_or(Ok(()), |b| write_json(p, b));
    let mut files: Vec<FileWriter> = vec![
        ("trials.json", &json),
        ("trials.csv", &csv),
        ("leaderboard.csv", &board),
    ];
    if best.is_some() {
        files.push(("best.json", &best_json));
    }
    write_each(dir, &files)
}

/// Reads the trials back from a sweep's `trials.json`.
///
/// # Errors
/// [`Error::Io`] for an unreadable or malformed file.
pub fn read_trials(path: &Path) -> Result<Vec<Trial>> {
    let text = std::fs::read_to_string(path).map_err(io_error(path))?;
    serde_json::from_str(&text).map_err(|e| {
        io_error(path)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            e.to_string(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trial(id: usize, status: TrialStatus, accs: &[f64]) -> Trial {
        let history: Vec<EpochMetrics> = accs
            .iter()
            .enumerate()
            .map(|(e, &a)| EpochMetrics {
                epoch: e + 1,
                lr: 0.1,
                train_loss: 1.0 - a,
                train_accuracy: a,
                val_loss: Some(1.0 - a),
                val_accuracy: Some(a),
                test_loss: None,
                test_accuracy: None,
                epoch_seconds: 1.0,
            })
            .collect();
        Trial {
            id,
            status,
            config: TrialConfig {
                lr: 0.01 * (id + 1) as f64,
                weight_decay: 0.0,
                batch_size: 64,
                momentum: 0.0,
                hidden: vec![32],
                epochs: 3,
            },
            val_loss: history.last().and_then(|m| m.val_loss),
            val_accuracy: history.last().and_then(|m| m.val_accuracy),
            history,
            seconds: 1.0,
            note: None,
            single_run_epoch_seconds: None,
        }
    }

    /// A newcomer's report: trials 0 and 2 tied at 97.73% validation accuracy, and trial 0
    /// (val loss 0.0807) ranked above trial 2 (0.0759) by id alone. The lower loss wins an
    /// accuracy tie, in the leaderboard, in `best_completed` and in the running best,
    /// whatever order the trials arrive in; equal on both, the smaller id.
    #[test]
    fn an_accuracy_tie_goes_to_the_lower_validation_loss() {
        let with_loss = |id, acc, loss| {
            let mut t = trial(id, TrialStatus::Complete, &[acc]);
            t.val_loss = Some(loss);
            t
        };
        let trials = vec![
            with_loss(0, 0.9773, 0.0807),
            with_loss(1, 0.95, 0.01),
            with_loss(2, 0.9773, 0.0759),
            with_loss(3, 0.9773, 0.0759),
            with_loss(4, 0.9773, f64::NAN),
        ];
        assert_eq!(best_completed(&trials).map(|t| t.id), Some(2));
        let ids: Vec<usize> = leaderboard(&trials).iter().map(|r| r.trial).collect();
        assert_eq!(ids, [2, 3, 0, 4, 1]);
        for order in [[0, 1, 2, 3, 4], [4, 3, 2, 1, 0], [3, 0, 4, 2, 1]] {
            let mut s = Sweep::new(None);
            for i in order {
                s.record(trials[i].clone(), || Ok(vec![i as f32])).unwrap();
            }
            assert_eq!(s.best_trial().map(|t| t.id), Some(2), "{order:?}");
            assert_eq!(s.best_params(), Some(&[2.0][..]), "{order:?}");
        }
    }

    #[test]
    fn leaderboard_ranks_completed_then_pruned_then_diverged() {
        let trials = vec![
            trial(0, TrialStatus::Complete, &[0.8, 0.85, 0.90]),
            trial(1, TrialStatus::Pruned, &[0.9, 0.95]),
            trial(2, TrialStatus::Diverged, &[]),
            trial(3, TrialStatus::Complete, &[0.8, 0.9, 0.93]),
            trial(4, TrialStatus::Complete, &[0.8, 0.9, 0.90]),
        ];
        let lb = leaderboard(&trials);
        let order: Vec<usize> = lb.iter().map(|r| r.trial).collect();
        assert_eq!(order, [3, 0, 4, 1, 2]);
        assert_eq!(lb[0].rank, 1);
        assert_eq!(lb[3].epochs_run, 2);
        assert_eq!(lb[4].val_accuracy, None);
        let table = format_leaderboard(&lb);
        assert_eq!(table.lines().count(), 6);
        assert!(table.lines().nth(1).unwrap().contains("93.00%"), "{table}");
    }

    #[test]
    fn best_completed_is_the_earliest_top_completed_trial_and_resume_keeps_it() {
        let trials = vec![
            trial(0, TrialStatus::Complete, &[0.8, 0.85, 0.90]),
            trial(1, TrialStatus::Pruned, &[0.95]),
            trial(2, TrialStatus::Complete, &[0.8, 0.9, 0.93]),
            trial(3, TrialStatus::Complete, &[0.8, 0.9, 0.93]),
        ];
        assert_eq!(best_completed(&trials).map(|t| t.id), Some(2));
        let s = Sweep::resume(None, trials.clone(), Some(vec![1.0])).unwrap();
        assert_eq!(s.best_trial().map(|t| t.id), Some(2));
        assert_eq!(s.best_params(), Some(&[1.0][..]));
        assert!(Sweep::resume(None, trials.clone(), None).is_err());
        let mut shuffled = trials;
        shuffled.swap(0, 1);
        assert!(Sweep::resume(None, shuffled, Some(vec![1.0])).is_err());
    }

    #[test]
    fn trials_recorded_out_of_order_are_listed_by_id_and_a_tie_goes_to_the_smaller_id() {
        let mut s = Sweep::new(None);
        s.record(trial(3, TrialStatus::Complete, &[0.9]), || Ok(vec![3.0]))
            .unwrap();
        s.record(trial(1, TrialStatus::Pruned, &[0.95]), || unreachable!())
            .unwrap();
        // Equal score, smaller id: trial 2 becomes the best, as best_completed ranks.
        s.record(trial(2, TrialStatus::Complete, &[0.9]), || Ok(vec![2.0]))
            .unwrap();
        s.record(trial(5, TrialStatus::Complete, &[0.9]), || unreachable!())
            .unwrap();
        let ids: Vec<usize> = s.trials().iter().map(|t| t.id).collect();
        assert_eq!(ids, [1, 2, 3, 5]);
        assert_eq!(s.best_trial().map(|t| t.id), Some(2));
        assert_eq!(best_completed(s.trials()).map(|t| t.id), Some(2));
        assert_eq!(s.best_params(), Some(&[2.0][..]));
        assert!(s.has_trial(5) && !s.has_trial(4));
        assert!(
            s.record(trial(3, TrialStatus::Pruned, &[]), || unreachable!())
                .is_err()
        );
        // A resumed population sweep's file has gaps (the trials that were running).
        let r = Sweep::resume(None, s.trials().to_vec(), Some(vec![2.0])).unwrap();
        assert_eq!(r.best_trial().map(|t| t.id), Some(2));
    }

    /// Fault attack, second round: a failed trials.json kept trials.csv, the leaderboard
    /// and best.json from being written. Every file is now tried; the error names the one
    /// that failed.
    #[test]
    fn a_failed_file_does_not_keep_the_others_from_being_written() {
        let trials = vec![trial(0, TrialStatus::Complete, &[0.5, 0.6])];
        let dir = tempfile::tempdir().unwrap();
        // A directory where trials.json goes: its atomic rename fails.
        std::fs::create_dir_all(dir.path().join("trials.json").join("x")).unwrap();
        let err = write_outputs(dir.path(), &trials, None).unwrap_err();
        assert!(err.to_string().contains("trials.json"), "{err}");
        for name in ["trials.csv", "leaderboard.csv"] {
            assert!(dir.path().join(name).is_file(), "{name} not written");
        }
    }

    #[test]
    fn outputs_round_trip_through_json_and_csv() {
        let trials = vec![
            trial(0, TrialStatus::Complete, &[0.8, 0.85, 0.90]),
            trial(1, TrialStatus::Diverged, &[]),
        ];
        let dir = tempfile::tempdir().unwrap();
        let written = write_outputs(dir.path(), &trials, None).unwrap();
        assert_eq!(written.len(), 3);
        assert_eq!(
            read_trials(&dir.path().join("trials.json")).unwrap(),
            trials
        );
        let rows: Vec<TrialEpochRow> = csv::Reader::from_path(dir.path().join("trials.csv"))
            .unwrap()
            .deserialize()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(rows, trial_rows(&trials));
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[3].epoch, None);
        let lb: Vec<LeaderboardRow> = csv::Reader::from_path(dir.path().join("leaderboard.csv"))
            .unwrap()
            .deserialize()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        assert_eq!(lb, leaderboard(&trials));
    }
}
