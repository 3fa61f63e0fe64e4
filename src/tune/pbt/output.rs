//! The files a PBT sweep writes into its `--out` directory:
//!
//! - `pbt.json`: the whole [`PbtRecord`] (settings, every member's epochs, the lineage,
//!   the best member with its ancestry and schedule);
//! - `pbt_members.csv`: one row per member and epoch ([`super::MemberEpoch`]): the lr, weight
//!   decay and momentum in use and the epoch's metrics;
//! - `pbt_lineage.csv`: one row per exploit step ([`LineageRow`]);
//! - `pbt_best_schedule.json`: the best member's [`crate::schedule::HparamSchedule`], for
//!   `wgtrain train --hparam-schedule`;
//! - `leaderboard.csv`: the members ranked by validation accuracy after the last epoch,
//!   as a sweep's leaderboard ([`LeaderboardRow`]; `trial` is the member, `lr` and `wd`
//!   its final values, diverged members last, `seconds` its share of the population's
//!   time as in a population sweep: [`member_seconds`]);
//! - `best.json` (when given): the best member's final hyperparameters and its one test
//!   evaluation ([`BestTrial`], `trial` being the member).
//!
//! A sweep's `trials.json` and `trials.csv` are not written: a member has no single
//! configuration (its hyperparameters change at every exploit step), so `pbt.json` and
//! `pbt_members.csv` take their place.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{EpochStatus, Hparams, PbtRecord};
use crate::error::{Error, Result};
use crate::output::{FileWriter, write_each};
use crate::tune::space::hidden_label;
use crate::tune::sweep::{BestTrial, LeaderboardRow, TrialStatus};

/// One exploit step flattened for `pbt_lineage.csv`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LineageRow {
    /// Epochs finished when it happened.
    pub epoch: usize,
    /// The replaced member.
    pub member: usize,
    /// The member it copied.
    pub from: usize,
    /// The replaced member's validation accuracy then.
    pub member_val_accuracy: Option<f64>,
    /// The copied member's validation accuracy then.
    pub from_val_accuracy: Option<f64>,
    /// The replaced member's lr before.
    pub old_lr: f64,
    /// The replaced member's weight decay before.
    pub old_weight_decay: f64,
    /// The replaced member's momentum before.
    pub old_momentum: f64,
    /// The copied member's lr.
    pub copied_lr: f64,
    /// The copied member's weight decay.
    pub copied_weight_decay: f64,
    /// The lr from the next epoch on.
    pub new_lr: f64,
    /// The weight decay from the next epoch on.
    pub new_weight_decay: f64,
    /// The momentum from the next epoch on (the copied member's).
    pub new_momentum: f64,
    /// `x0.8`, `x1.25` or `resample`.
    pub lr_change: String,
    /// `x0.8`, `x1.25` or `resample`.
    pub weight_decay_change: String,
}

/// The rows of `pbt_lineage.csv`.
pub fn lineage_rows(record: &PbtRecord) -> Vec<LineageRow> {
    record
        .lineage
        .iter()
        .map(|e| LineageRow {
            epoch: e.epoch,
            member: e.member,
            from: e.from,
            member_val_accuracy: e.member_val_accuracy,
            from_val_accuracy: e.from_val_accuracy,
            old_lr: e.old.lr,
            old_weight_decay: e.old.weight_decay,
            old_momentum: e.old.momentum,
            copied_lr: e.copied.lr,
            copied_weight_decay: e.copied.weight_decay,
            new_lr: e.new.lr,
            new_weight_decay: e.new.weight_decay,
            new_momentum: e.new.momentum,
            lr_change: e.lr_change.to_string(),
            weight_decay_change: e.weight_decay_change.to_string(),
        })
        .collect()
}

/// Each member's hyperparameters after the last recorded epoch's exploit step (those it
/// trained its last epoch with).
fn final_hparams(record: &PbtRecord, member: usize) -> Hparams {
    let last = record.epochs_done();
    match record.row(member, last) {
        Some(r) => Hparams {
            lr: r.lr,
            weight_decay: r.weight_decay,
            momentum: r.momentum,
            batch_size: r.batch_size,
        },
        None => record.initial[member],
    }
}

/// The members ranked as a sweep's leaderboard: those that trained the last epoch by
/// validation accuracy (best first, ties to the lower index), then the diverged ones.
pub fn leaderboard(record: &PbtRecord) -> Vec<LeaderboardRow> {
    let last = record.epochs_done();
    let scores: Vec<f64> = (0..record.population)
        .map(|m| {
            record
                .row(m, last)
                .map_or(f64::NEG_INFINITY, super::MemberEpoch::score)
        })
        .collect();
    super::explore::rank(&scores)
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            let row = record.row(m, last);
            let trained = row.is_some_and(|r| r.status == EpochStatus::Trained);
            let h = final_hparams(record, m);
            LeaderboardRow {
                rank: i + 1,
                trial: m,
                status: if trained {
                    TrialStatus::Complete
                } else {
                    TrialStatus::Diverged
                },
                val_accuracy: row.and_then(|r| r.val_accuracy).filter(|_| trained),
                val_loss: row.and_then(|r| r.val_loss).filter(|_| trained),
                lr: h.lr,
                weight_decay: h.weight_decay,
                batch_size: h.batch_size,
                momentum: h.momentum,
                hidden: hidden_label(&record.hidden),
                epochs: record.epochs,
                epochs_run: record
                    .history
                    .iter()
                    .filter(|r| r.member == m && r.status == EpochStatus::Trained)
                    .count(),
                seconds: member_seconds(record, m),
                single_run_epoch_seconds: None,
            }
        })
        .collect()
}

/// Member `member`'s share of the population's time, s: over the epochs it trained (or
/// diverged in), the population's epoch time divided by the members that trained in that
/// epoch, as a population sweep counts a member's `seconds`
/// ([`crate::tune::population_sweep`]), so the leaderboards' time columns mean the same
/// and add up to the run's time. (A record holds each epoch's training time, which every
/// member's row repeats; a population sweep's share also counts the validation pass.)
pub fn member_seconds(record: &PbtRecord, member: usize) -> f64 {
    (1..=record.epochs_done())
        .filter_map(|e| {
            let rows: Vec<_> = record.history.iter().filter(|r| r.epoch == e).collect();
            let ran: Vec<_> = rows
                .iter()
                .filter(|r| r.status != EpochStatus::Idle)
                .collect();
            if !ran.iter().any(|r| r.member == member) {
                return None;
            }
            let epoch = rows.iter().find_map(|r| r.epoch_seconds)?;
            Some(epoch / ran.len() as f64)
        })
        .sum()
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    }
}

fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| io_error(path, e))?;
    crate::output::write_atomically(path, (text + "\n").as_bytes())
}

fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r).map_err(|e| io_error(path, e))?;
    }
    let bytes = w.into_inner().map_err(|e| io_error(path, e))?;
    crate::output::write_atomically(path, &bytes)
}

/// Writes the files listed in the module docs into `dir` (created if missing), each
/// atomically; `pbt_best_schedule.json` once the record has a best member, `best.json`
/// when `best` is given. Every file is tried: one that fails (a full disk) does not keep
/// the others from being written. Returns the paths written.
///
/// # Errors
/// [`Error::Io`] or [`Error::Output`] naming the first file that failed (the others were
/// tried).
pub fn write_pbt_outputs(
    dir: &Path,
    record: &PbtRecord,
    best: Option<&BestTrial>,
) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    let json = |p: &Path| write_json(p, record);
    let members = |p: &Path| write_csv(p, &record.history);
    let lineage = |p: &Path| {
        if record.lineage.is_empty() {
            // csv writes no header for no rows: an empty lineage still gets its header.
            let header = "epoch,member,from,member_val_accuracy,from_val_accuracy,old_lr,\
                          old_weight_decay,old_momentum,copied_lr,copied_weight_decay,new_lr,\
                          new_weight_decay,new_momentum,lr_change,weight_decay_change\n";
            crate::output::write_atomically(p, header.as_bytes())
        } else {
            write_csv(p, &lineage_rows(record))
        }
    };
    let board = |p: &Path| write_csv(p, &leaderboard(record));
    let schedule = |p: &Path| record.best.as_ref().map_or(Ok(()), |b| b.schedule.write(p));
    let best_json = |p: &Path| best.map_or(Ok(()), |b| write_json(p, b));
    let mut files: Vec<FileWriter> = vec![
        ("pbt.json", &json),
        ("pbt_members.csv", &members),
        ("pbt_lineage.csv", &lineage),
        ("leaderboard.csv", &board),
    ];
    if record.best.is_some() {
        files.push((BEST_SCHEDULE_FILE, &schedule));
    }
    if best.is_some() {
        files.push(("best.json", &best_json));
    }
    write_each(dir, &files)
}

/// The best member's schedule file in the out directory.
pub const BEST_SCHEDULE_FILE: &str = "pbt_best_schedule.json";

/// Reads a `pbt.json` back.
///
/// # Errors
/// [`Error::Io`] for an unreadable file, [`Error::Format`] for one that is not a record.
pub fn read_record(path: &Path) -> Result<PbtRecord> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|e| Error::Format {
        path: path.to_path_buf(),
        reason: format!("not a PBT record: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tune::pbt::{MemberEpoch, PbtSettings};

    fn row(member: usize, epoch: usize, status: EpochStatus, seconds: f64) -> MemberEpoch {
        let trained = status == EpochStatus::Trained;
        MemberEpoch {
            member,
            epoch,
            lr: 0.1,
            weight_decay: 0.0,
            momentum: 0.0,
            batch_size: 64,
            status,
            epoch_lr: trained.then_some(0.1),
            train_loss: trained.then_some(0.5),
            train_accuracy: trained.then_some(0.8),
            val_loss: trained.then_some(0.5),
            val_accuracy: trained.then_some(0.8 + 0.01 * member as f64),
            epoch_seconds: trained.then_some(seconds),
        }
    }

    /// Regression (issue 26, item 4): every PBT member's leaderboard time was the whole
    /// population's (each row repeats the population's epoch time), where a population
    /// sweep shows each member's share. Four members train epoch 1 (8 s: 2 s each); in
    /// epoch 2 (6 s) member 3 diverges and member 2 sits idle, so three ran: 2 s each.
    #[test]
    fn pbt_leaderboard_time_is_each_members_share_of_the_population_epochs() {
        use EpochStatus::{Diverged, Idle, Trained};
        let mut history: Vec<MemberEpoch> = (0..4).map(|m| row(m, 1, Trained, 8.0)).collect();
        history.extend([
            row(0, 2, Trained, 6.0),
            row(1, 2, Trained, 6.0),
            row(2, 2, Idle, 6.0),
            row(3, 2, Diverged, 6.0),
        ]);
        let record = PbtRecord {
            settings: PbtSettings {
                interval: 1,
                quantile: 0.25,
                resample: 0.25,
                seed: 1,
            },
            population: 4,
            epochs: 2,
            batch_size: 64,
            hidden: vec![32],
            initial: vec![
                Hparams {
                    lr: 0.1,
                    weight_decay: 0.0,
                    momentum: 0.0,
                    batch_size: 64,
                };
                4
            ],
            history,
            lineage: vec![],
            best: None,
        };
        let want = [4.0, 4.0, 2.0, 4.0];
        for (m, w) in want.iter().enumerate() {
            assert!((member_seconds(&record, m) - w).abs() < 1e-12, "member {m}");
        }
        let rows = leaderboard(&record);
        let total: f64 = rows.iter().map(|r| r.seconds).sum();
        assert!((total - 14.0).abs() < 1e-12, "the shares add up to 8 + 6 s");
        let by_member = |m: usize| rows.iter().find(|r| r.trial == m).unwrap().seconds;
        assert!((by_member(0) - 4.0).abs() < 1e-12);
    }
}
