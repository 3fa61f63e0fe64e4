//! PBT's two choices: which members rank where ([`rank`], truncation selection) and how a
//! copied member's hyperparameters move ([`perturb`]).

use std::fmt;

use rand::RngExt;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{Hparams, PERTURB_FACTORS};
use crate::tune::space::SearchSpace;

/// How explore changed one hyperparameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Multiplied by 0.8.
    #[serde(rename = "x0.8")]
    Down,
    /// Multiplied by 1.25.
    #[serde(rename = "x1.25")]
    Up,
    /// Drawn afresh from the search space.
    #[serde(rename = "resample")]
    Resample,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Change::Down => "x0.8",
            Change::Up => "x1.25",
            Change::Resample => "resample",
        })
    }
}

/// Member indices, best first: by `scores` (higher is better; -inf and NaN last), ties
/// to the lower index. The bottom group is the tail, the top group the head.
pub fn rank(scores: &[f64]) -> Vec<usize> {
    let key = |m: usize| {
        let s = scores[m];
        if s.is_nan() { f64::NEG_INFINITY } else { s }
    };
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| key(b).total_cmp(&key(a)).then(a.cmp(&b)));
    order
}

/// One hyperparameter explored: with probability `resample` a fresh draw from `values`,
/// else `x` times 0.8 or 1.25 (a fair coin).
fn explore_one(
    x: f64,
    values: &crate::tune::space::Values,
    resample: f64,
    rng: &mut ChaCha8Rng,
) -> (f64, Change) {
    if rng.random_bool(resample) {
        (values.sample(rng), Change::Resample)
    } else if rng.random_bool(0.5) {
        (x * PERTURB_FACTORS[1], Change::Up)
    } else {
        (x * PERTURB_FACTORS[0], Change::Down)
    }
}

/// The explored hyperparameters of a member that copied `copied`: its learning rate, then
/// its weight decay, each explored independently ([`Change`]); momentum and minibatch size
/// kept. Returns them
/// with the change made to the lr and to the weight decay.
pub fn perturb(
    copied: &Hparams,
    space: &SearchSpace,
    resample: f64,
    rng: &mut ChaCha8Rng,
) -> (Hparams, Change, Change) {
    let (lr, lr_change) = explore_one(copied.lr, &space.lr, resample, rng);
    let (weight_decay, wd_change) =
        explore_one(copied.weight_decay, &space.weight_decay, resample, rng);
    (
        Hparams {
            lr,
            weight_decay,
            momentum: copied.momentum,
            batch_size: copied.batch_size,
        },
        lr_change,
        wd_change,
    )
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn rank_puts_the_best_first_nan_last_and_ties_to_the_lower_index() {
        assert_eq!(
            rank(&[0.5, 0.9, f64::NAN, 0.9, f64::NEG_INFINITY, 0.1]),
            [1, 3, 0, 5, 2, 4]
        );
        assert_eq!(rank(&[]), Vec::<usize>::new());
    }

    #[test]
    fn perturbations_are_the_two_factors_or_a_draw_from_the_space() {
        let space = SearchSpace {
            lr: "1e-3:1".parse().unwrap(),
            weight_decay: "0,1e-4".parse().unwrap(),
            batch_size: "64".parse().unwrap(),
            momentum: "0".parse().unwrap(),
            hidden: "32".parse().unwrap(),
            epochs: "4".parse().unwrap(),
        };
        let h = Hparams {
            lr: 0.5,
            weight_decay: 3e-3,
            momentum: 0.9,
            batch_size: 64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut seen = [0usize; 3];
        for _ in 0..400 {
            let (n, lc, wc) = perturb(&h, &space, 0.25, &mut rng);
            assert_eq!((n.momentum, n.batch_size), (0.9, 64));
            match lc {
                Change::Down => assert_eq!(n.lr, 0.4),
                Change::Up => assert_eq!(n.lr, 0.625),
                Change::Resample => assert!((1e-3..=1.0).contains(&n.lr)),
            }
            match wc {
                Change::Down => assert_eq!(n.weight_decay, 3e-3 * 0.8),
                Change::Up => assert_eq!(n.weight_decay, 3e-3 * 1.25),
                Change::Resample => assert!([0.0, 1e-4].contains(&n.weight_decay)),
            }
            seen[lc as usize] += 1;
        }
        // 400 draws at p = 0.25 / 0.375 / 0.375: each within about 4 standard deviations.
        assert!((110..=190).contains(&seen[0]), "{seen:?}");
        assert!((110..=190).contains(&seen[1]), "{seen:?}");
        assert!((60..=140).contains(&seen[2]), "{seen:?}");
        let (n, lc, wc) = perturb(&h, &space, 1.0, &mut rng);
        assert_eq!((lc, wc), (Change::Resample, Change::Resample));
        assert!([0.0, 1e-4].contains(&n.weight_decay));
    }
}
