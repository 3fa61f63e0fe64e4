//! Pruning rules: stop a sweep's unpromising trials early. Both judge a trial after each
//! of its epochs by its validation accuracy, and never prune a trial's last epoch
//! (stopping it there saves no work, and it completes). [`Pruner`] is the choice of rule.
//!
//! **Median pruning** ([`MedianPruner`]; Optuna's `MedianPruner`, Google Vizier's median
//! stopping rule): after each epoch, a trial whose validation accuracy is below the median
//! of the completed trials' validation accuracies at the same epoch stops there.
//!
//! - Nothing is pruned during the first `warmup_epochs` epochs (the curves cross early on).
//! - Nothing is pruned until `min_trials` completed trials reached that epoch (Optuna's
//!   `n_startup_trials`): a median of too few trials is noise.
//! - A trial's last epoch is never pruned: stopping it saves no work, and it completes.
//! - Only completed trials count: pruned ones stopped because they were behind, and would
//!   pull the median down. Strictly below the median prunes; a tie survives.
//!
//! **Successive halving** ([`HalvingPruner`]; Jamieson & Talwalkar 2016, in the
//! asynchronous form of ASHA, Li et al. 2020, as Optuna's `SuccessiveHalvingPruner`):
//!
//! - Rungs sit at epochs `r, r·η, r·η², ...` (`r` = `min_epochs` ≥ 1, `η` = `eta` ≥ 2).
//! - A trial that finishes a rung epoch `e` (not its last epoch) is compared with every
//!   trial that reached `e` so far, whatever became of it later (completed, pruned or still
//!   running), itself included: `n` validation accuracies at epoch `e`.
//! - Nothing is pruned at a rung until `min_trials` trials reached it (`n ≥ min_trials`).
//! - The trial goes on iff its accuracy is at least the `m`-th best of the `n`, with
//!   `m = max(1, ⌊n / η⌋)`: the top `1/η` (at least the best one) are promoted, a tie with
//!   the `m`-th survives, a NaN accuracy is behind every finite one.
//!
//! In a sequential sweep `n` grows trial by trial (ASHA: the first trial at a rung is always
//! promoted, later ones must be in the top `1/η` of those before them); in a population
//! the members that reach a rung in the same epoch are all recorded before any is judged,
//! so a first wave of K members is synchronous successive halving: the best `⌊K/η⌋` go on.

/// The pruning rule's settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MedianPruner {
    /// Epochs during which no trial is pruned.
    pub warmup_epochs: usize,
    /// Completed trials needed at an epoch before pruning there.
    pub min_trials: usize,
}

impl Default for MedianPruner {
    /// One warm-up epoch, three completed trials.
    fn default() -> Self {
        MedianPruner {
            warmup_epochs: 1,
            min_trials: 3,
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

impl MedianPruner {
    /// Whether a trial at `epoch` (1-based) of its `epochs`, with validation accuracy
    /// `value`, stops. `completed[t][e]` is completed trial t's validation accuracy after
    /// epoch `e + 1`.
    pub fn should_prune(
        &self,
        epoch: usize,
        epochs: usize,
        value: f64,
        completed: &[Vec<f64>],
    ) -> bool {
        if epoch <= self.warmup_epochs || epoch >= epochs {
            return false;
        }
        let at: Vec<f64> = completed
            .iter()
            .filter_map(|c| c.get(epoch - 1).copied())
            .filter(|v| v.is_finite())
            .collect();
        if at.len() < self.min_trials.max(1) {
            return false;
        }
        // A NaN accuracy (nothing to compare) is behind every finite one.
        value.is_nan() || value < median(&at)
    }
}

/// Successive-halving settings (see the module docs for the rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HalvingPruner {
    /// The first rung, epochs (`r` ≥ 1).
    pub min_epochs: usize,
    /// The reduction factor `η` ≥ 2: rungs are `η` times apart and `1/η` of a rung's
    /// trials go on.
    pub eta: usize,
    /// Trials that must have reached a rung (the judged one included) before pruning there.
    pub min_trials: usize,
}

impl Default for HalvingPruner {
    /// Rungs at epochs 1, 3, 9, ...; one trial at a rung is enough.
    fn default() -> Self {
        HalvingPruner {
            min_epochs: 1,
            eta: 3,
            min_trials: 1,
        }
    }
}

impl HalvingPruner {
    /// Whether `epoch` (1-based) is a rung: `r·η^k` for some `k ≥ 0`.
    pub fn is_rung(&self, epoch: usize) -> bool {
        let (r, eta) = (self.min_epochs.max(1), self.eta.max(2));
        if epoch < r || !epoch.is_multiple_of(r) {
            return false;
        }
        let mut q = epoch / r;
        while q.is_multiple_of(eta) {
            q /= eta;
        }
        q == 1
    }

    /// Whether a trial at `epoch` (1-based) of its `epochs`, with validation accuracy
    /// `value`, stops. `others[t][e]` is another trial's validation accuracy after epoch
    /// `e + 1` (every trial of the sweep that reached any epoch, finished or running, the
    /// judged one excluded).
    pub fn should_prune(
        &self,
        epoch: usize,
        epochs: usize,
        value: f64,
        others: &[Vec<f64>],
    ) -> bool {
        if epoch >= epochs || !self.is_rung(epoch) {
            return false;
        }
        let mut at: Vec<f64> = others
            .iter()
            .filter_map(|c| c.get(epoch - 1).copied())
            .collect();
        at.push(value);
        if at.len() < self.min_trials.max(1) {
            return false;
        }
        let keep = (at.len() / self.eta.max(2)).max(1);
        let mut finite: Vec<f64> = at.into_iter().filter(|v| !v.is_nan()).collect();
        finite.sort_by(|a, b| b.total_cmp(a));
        if value.is_nan() {
            return true;
        }
        // Fewer finite values than `keep`: every finite one is among the best `keep`.
        finite.get(keep - 1).is_some_and(|&kth| value < kth)
    }
}

/// The pruning rule of a sweep.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pruner {
    /// [`MedianPruner`].
    Median(MedianPruner),
    /// [`HalvingPruner`].
    Halving(HalvingPruner),
}

impl From<MedianPruner> for Pruner {
    fn from(p: MedianPruner) -> Pruner {
        Pruner::Median(p)
    }
}

impl From<HalvingPruner> for Pruner {
    fn from(p: HalvingPruner) -> Pruner {
        Pruner::Halving(p)
    }
}

impl Pruner {
    /// Why a trial at `epoch` (1-based) of its `epochs`, with validation accuracy `value`,
    /// stops, or `None` when it goes on. `completed` are the completed trials' accuracy
    /// curves (the median rule's), `others` every other trial's, finished or running (the
    /// halving rule's); curve `c[e]` is the accuracy after epoch `e + 1`.
    pub fn judge(
        &self,
        epoch: usize,
        epochs: usize,
        value: f64,
        completed: &[Vec<f64>],
        others: &[Vec<f64>],
    ) -> Option<String> {
        match self {
            Pruner::Median(p) => p.should_prune(epoch, epochs, value, completed).then(|| {
                format!(
                    "validation accuracy {:.2}% below the median of the completed trials at epoch {epoch}",
                    100.0 * value
                )
            }),
            Pruner::Halving(p) => p.should_prune(epoch, epochs, value, others).then(|| {
                let n = others.iter().filter(|c| c.len() >= epoch).count() + 1;
                format!(
                    "validation accuracy {:.2}% not in the top 1/{} of the {n} trials at rung epoch {epoch}",
                    100.0 * value,
                    p.eta
                )
            }),
        }
    }

    /// One line for the sweep's summary, e.g. `median (warm-up 1 epoch, 3 completed trials)`.
    pub fn describe(&self) -> String {
        match self {
            Pruner::Median(p) => format!(
                "median (warm-up {} epoch{}, {} completed trials)",
                p.warmup_epochs,
                if p.warmup_epochs == 1 { "" } else { "s" },
                p.min_trials
            ),
            Pruner::Halving(p) => format!(
                "successive halving (rungs at epochs {}, {}, ...; keep the top 1/{}; {} trials at a rung)",
                p.min_epochs,
                p.min_epochs * p.eta,
                p.eta,
                p.min_trials
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn a_trial_below_the_median_at_the_same_epoch_is_pruned() {
        let p = MedianPruner {
            warmup_epochs: 1,
            min_trials: 3,
        };
        // Three completed 4-epoch trials; medians: epoch 1 = 0.80, epoch 2 = 0.88, epoch 3 = 0.91.
        let done = vec![
            vec![0.70, 0.85, 0.90, 0.92],
            vec![0.80, 0.88, 0.91, 0.93],
            vec![0.90, 0.95, 0.96, 0.97],
        ];
        assert!(p.should_prune(2, 4, 0.87, &done));
        assert!(!p.should_prune(2, 4, 0.88, &done), "a tie survives");
        assert!(!p.should_prune(2, 4, 0.89, &done));
        assert!(p.should_prune(3, 4, 0.905, &done));
        assert!(p.should_prune(2, 4, f64::NAN, &done));
        // Warm-up: epoch 1 is never pruned, however far behind.
        assert!(!p.should_prune(1, 4, 0.10, &done));
        // The last epoch is never pruned.
        assert!(!p.should_prune(4, 4, 0.10, &done));
        // Trials longer than the completed ones: no values at that epoch, no pruning.
        assert!(!p.should_prune(5, 8, 0.10, &done));
    }

    #[test]
    fn pruning_waits_for_enough_completed_trials() {
        let p = MedianPruner {
            warmup_epochs: 1,
            min_trials: 3,
        };
        let two = vec![vec![0.8, 0.9, 0.95], vec![0.8, 0.9, 0.95]];
        assert!(!p.should_prune(2, 3, 0.1, &two));
        // A completed trial that was shorter (1 epoch) does not count at epoch 2.
        let mut three = two.clone();
        three.push(vec![0.99]);
        assert!(!p.should_prune(2, 3, 0.1, &three));
        three.push(vec![0.5, 0.6, 0.7]);
        // Epoch-2 values 0.9, 0.9, 0.6: median 0.9.
        assert!(p.should_prune(2, 3, 0.89, &three));
        let eager = MedianPruner {
            warmup_epochs: 0,
            min_trials: 1,
        };
        assert!(eager.should_prune(1, 3, 0.7, &two));
    }

    #[test]
    fn halving_rungs_are_r_times_powers_of_eta() {
        let p = HalvingPruner {
            min_epochs: 2,
            eta: 3,
            min_trials: 1,
        };
        let rungs: Vec<usize> = (1..=60).filter(|&e| p.is_rung(e)).collect();
        assert_eq!(rungs, [2, 6, 18, 54]);
        let d = HalvingPruner::default();
        let rungs: Vec<usize> = (1..=30).filter(|&e| d.is_rung(e)).collect();
        assert_eq!(rungs, [1, 3, 9, 27]);
    }

    #[test]
    fn halving_keeps_the_top_third_of_a_rung() {
        let p = HalvingPruner {
            min_epochs: 1,
            eta: 3,
            min_trials: 1,
        };
        // Eight other trials reached epoch 1; with the judged one n = 9, m = 3: the third
        // best of the nine must be matched. Others' epoch-1 accuracies sorted: 0.9, 0.8,
        // 0.7, 0.6, ... so with a value of 0.75 the best three are 0.9, 0.8, 0.75.
        let others: Vec<Vec<f64>> = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
            .iter()
            .map(|&v| vec![v, v])
            .collect();
        assert!(!p.should_prune(1, 9, 0.75, &others), "third best of nine");
        assert!(
            !p.should_prune(1, 9, 0.7, &others),
            "a tie with the third survives"
        );
        assert!(p.should_prune(1, 9, 0.69, &others), "fourth of nine");
        assert!(p.should_prune(1, 9, f64::NAN, &others));
        // Epoch 2 is not a rung; epoch 3 is, but only trials that reached it count: none
        // of the others did, so n = 1, m = 1, and the lone trial is the best.
        assert!(!p.should_prune(2, 9, 0.0, &others));
        assert!(!p.should_prune(3, 9, 0.0, &others));
        // The last epoch is never pruned.
        assert!(!p.should_prune(1, 1, 0.0, &others));
        // ASHA's early rule: with two trials at a rung (n = 2, m = max(1, 0) = 1) the
        // second must beat the first.
        let one = vec![vec![0.5]];
        assert!(p.should_prune(1, 3, 0.4, &one));
        assert!(!p.should_prune(1, 3, 0.5, &one));
        // min_trials: no pruning until three trials reached the rung.
        let patient = HalvingPruner { min_trials: 3, ..p };
        assert!(!patient.should_prune(1, 3, 0.4, &one));
        let two = vec![vec![0.5], vec![0.6]];
        assert!(patient.should_prune(1, 3, 0.4, &two));
        // Other NaN accuracies rank last: n = 3, m = 1, the best finite one is 0.1.
        let nan = vec![vec![f64::NAN], vec![0.1]];
        assert!(!patient.should_prune(1, 3, 0.1, &nan));
        assert!(patient.should_prune(1, 3, 0.05, &nan));
    }

    #[test]
    fn pruner_judge_names_the_rule() {
        let done = vec![vec![0.8, 0.9, 0.95]; 3];
        let median = Pruner::from(MedianPruner::default());
        let note = median.judge(2, 3, 0.5, &done, &[]).unwrap();
        assert!(note.contains("median") && note.contains("50.00%"), "{note}");
        assert_eq!(median.judge(2, 3, 0.95, &done, &[]), None);
        let halving = Pruner::from(HalvingPruner::default());
        let note = halving.judge(1, 3, 0.5, &[], &done).unwrap();
        assert!(
            note.contains("top 1/3 of the 4 trials at rung epoch 1"),
            "{note}"
        );
        assert_eq!(
            halving.judge(1, 3, 0.5, &done, &[]),
            None,
            "halving reads `others`"
        );
    }
}
