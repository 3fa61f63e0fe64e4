//! Median pruning (Optuna's `MedianPruner`, Google Vizier's median stopping rule): after
//! each epoch, a trial whose validation accuracy is below the median of the completed
//! trials' validation accuracies at the same epoch stops there.
//!
//! - Nothing is pruned during the first `warmup_epochs` epochs (the curves cross early on).
//! - Nothing is pruned until `min_trials` completed trials reached that epoch (Optuna's
//!   `n_startup_trials`): a median of too few trials is noise.
//! - A trial's last epoch is never pruned: stopping it saves no work, and it completes.
//! - Only completed trials count: pruned ones stopped because they were behind, and would
//!   pull the median down. Strictly below the median prunes; a tie survives.

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
}
