//! [`HparamSchedule`]: a learning rate and a weight decay per epoch, the schedule a
//! population-based-training run found for its best member ([`crate::tune::pbt`]) and
//! `wgtrain train --hparam-schedule FILE` replays from scratch.
//!
//! Epoch `e`'s learning rate is the *base* lr of the run's [`super::LrSchedule`] during that
//! epoch: a constant schedule trains at it; a warm-up, step or cosine schedule scales it as
//! usual. OneCycle (which ignores its base lr) and ReduceLROnPlateau (whose state holds the
//! lr) are refused ([`HparamSchedule::check_schedule`]).
//!
//! The file is JSON: `{"epochs": [{"epoch": 1, "lr": 0.05, "weight_decay": 0.0001}, ...]}`,
//! epochs numbered 1, 2, ... in order, and an optional `source` note. Any other key, at the
//! top or in an epoch (`"momentum": 0.9`, a misspelt `"weight_decy"`), is refused: it would
//! otherwise be silently ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{LrSchedule, Schedule};
use crate::error::{Error, Result};

/// One epoch's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EpochHparams {
    /// 1-based epoch.
    pub epoch: usize,
    /// Base learning rate during the epoch.
    pub lr: f64,
    /// SGD weight decay during the epoch.
    pub weight_decay: f64,
}

/// A learning rate and a weight decay for every epoch of a run. See the module docs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HparamSchedule {
    /// Where the schedule came from (free text, e.g. `pbt member 3 of sweep/pbt.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Epoch 1, 2, ... in order.
    pub epochs: Vec<EpochHparams>,
}

impl HparamSchedule {
    /// Number of epochs the schedule covers.
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// True for a schedule without epochs (refused by [`HparamSchedule::validate`]).
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }

    /// Epoch `epoch`'s hyperparameters (0-based), `None` past the end.
    pub fn at(&self, epoch: usize) -> Option<EpochHparams> {
        self.epochs.get(epoch).copied()
    }

    /// Checks that the schedule has epochs numbered 1, 2, ..., learning rates that are
    /// valid learning rates ([`crate::optim::validate_lr`]) and finite weight decays >= 0.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the epoch and the bad value.
    pub fn validate(&self) -> Result<()> {
        let bad = |value: String, reason: String| Error::InvalidConfig {
            name: "hparam schedule",
            value,
            reason,
        };
        if self.epochs.is_empty() {
            return Err(bad(
                "0 epochs".into(),
                "give at least one epoch's lr and weight decay".into(),
            ));
        }
        for (i, e) in self.epochs.iter().enumerate() {
            if e.epoch != i + 1 {
                return Err(bad(
                    format!("epoch {}", e.epoch),
                    format!(
                        "entry {} must be epoch {} (epochs 1, 2, ... in order)",
                        i + 1,
                        i + 1
                    ),
                ));
            }
            crate::optim::validate_lr(e.lr)
                .map_err(|err| bad(format!("epoch {}: lr {}", e.epoch, e.lr), err.to_string()))?;
            if !(e.weight_decay.is_finite() && e.weight_decay >= 0.0) {
                return Err(bad(
                    format!("epoch {}: weight decay {}", e.epoch, e.weight_decay),
                    "must be finite and >= 0".into(),
                ));
            }
        }
        Ok(())
    }

    /// Checks that `schedule` reads its base lr per epoch, so that replacing it each epoch
    /// means what the schedule says.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for OneCycle (it ignores the base lr) and ReduceLROnPlateau
    /// (its state holds the lr).
    pub fn check_schedule(schedule: &LrSchedule) -> Result<()> {
        let name = match schedule.schedule {
            Schedule::OneCycle { .. } => "onecycle",
            Schedule::Plateau(_) => "plateau",
            _ => return Ok(()),
        };
        Err(Error::InvalidConfig {
            name: "hparam schedule",
            value: format!("--lr-schedule {name}"),
            reason: "a per-epoch learning rate needs a schedule that scales its base lr \
                     (constant, step, multistep, exponential or cosine, with or without \
                     warm-up)"
                .into(),
        })
    }

    /// Reads and checks a schedule file.
    ///
    /// # Errors
    /// [`Error::Io`] for an unreadable file, [`Error::Format`] for one that is not a
    /// schedule, as [`HparamSchedule::validate`] for bad values.
    pub fn read(path: &Path) -> Result<HparamSchedule> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let s: HparamSchedule = serde_json::from_str(&text).map_err(|e| Error::Format {
            path: path.to_path_buf(),
            reason: format!(
                "not an hparam schedule ({{\"epochs\": [{{\"epoch\": 1, \"lr\": ..., \
                 \"weight_decay\": ...}}, ...]}}): {e}"
            ),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Writes the schedule as pretty JSON, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::Output`] naming the file.
    pub fn write(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other(e),
        })?;
        crate::output::write_atomically(path, (text + "\n").as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (issue 25, item 9): `"momentum": 0.9` in an epoch of an
    /// `--hparam-schedule` file was silently ignored (the run trained without momentum),
    /// while `sweep --configs` refuses the same key. It is refused, naming the key.
    #[test]
    fn regression_an_unknown_key_in_an_epoch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let read = |text: &str| {
            std::fs::write(&p, text).unwrap();
            HparamSchedule::read(&p)
        };
        let e =
            read(r#"{"epochs": [{"epoch": 1, "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9}]}"#)
                .unwrap_err()
                .to_string();
        assert!(e.contains("unknown field `momentum`"), "{e}");
        assert!(e.contains("s.json"), "{e}");
        let e = read(r#"{"epochs": [{"epoch": 1, "lr": 0.1, "weight_decay": 0.0}], "seed": 3}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown field `seed`"), "{e}");
        // What PBT writes is read back.
        let s = read(
            r#"{"source": "pbt member 3", "epochs": [{"epoch": 1, "lr": 0.1, "weight_decay": 0.0}]}"#,
        )
        .unwrap();
        assert_eq!(s.source.as_deref(), Some("pbt member 3"));
    }

    fn schedule(rows: &[(usize, f64, f64)]) -> HparamSchedule {
        HparamSchedule {
            source: None,
            epochs: rows
                .iter()
                .map(|&(epoch, lr, weight_decay)| EpochHparams {
                    epoch,
                    lr,
                    weight_decay,
                })
                .collect(),
        }
    }

    #[test]
    fn validation_names_the_bad_epoch() {
        assert!(
            schedule(&[(1, 0.1, 0.0), (2, 0.05, 1e-4)])
                .validate()
                .is_ok()
        );
        let e = schedule(&[(1, 0.1, 0.0), (3, 0.1, 0.0)])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("epoch 3"), "{e}");
        let e = schedule(&[(1, 0.1, 0.0), (2, -1.0, 0.0)])
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("epoch 2: lr -1"), "{e}");
        let e = schedule(&[(1, 0.1, f64::NAN)]).validate().unwrap_err();
        assert!(e.to_string().contains("weight decay"), "{e}");
        assert!(schedule(&[]).validate().is_err());
    }

    #[test]
    fn files_round_trip_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.json");
        let s = HparamSchedule {
            source: Some("test".into()),
            ..schedule(&[(1, 0.1, 1e-4), (2, 0.08, 1.25e-4)])
        };
        s.write(&p).unwrap();
        assert_eq!(HparamSchedule::read(&p).unwrap(), s);
        std::fs::write(&p, "{\"epochs\": 3}").unwrap();
        let e = HparamSchedule::read(&p).unwrap_err().to_string();
        assert!(e.contains("not an hparam schedule"), "{e}");
    }

    #[test]
    fn onecycle_and_plateau_are_refused() {
        assert!(HparamSchedule::check_schedule(&LrSchedule::new(0.1, Schedule::Constant)).is_ok());
        let one = LrSchedule::new(0.1, Schedule::one_cycle(0.1, 100));
        assert!(HparamSchedule::check_schedule(&one).is_err());
    }
}
