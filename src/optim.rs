//! The optimizer's configuration: SGD with `torch.optim.SGD` semantics (coupled weight
//! decay, momentum with dampening, nesterov) or decoupled weight decay (SGDW). The update
//! itself is the `sgd_update` kernel on the GPU and [`crate::cpu::sgd_update`] on the CPU.
//! Learning-rate schedules are in [`crate::schedule`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// SGD hyperparameters, as `torch.optim.SGD(params, lr, momentum, dampening, weight_decay,
/// nesterov)`; the learning rate comes from the schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// L2 penalty added to the gradient (`g += wd · p`), or with
    /// `decoupled_weight_decay`, `p -= lr · wd · p` (SGDW, Loshchilov & Hutter).
    pub weight_decay: f64,
    /// Momentum factor μ (0 disables the momentum buffer).
    pub momentum: f64,
    /// Dampening τ: `v = μ·v + (1 - τ)·g` after the first step.
    pub dampening: f64,
    /// Nesterov momentum: `g = g + μ·v`.
    pub nesterov: bool,
    /// SGDW instead of PyTorch's coupled L2 decay.
    pub decoupled_weight_decay: bool,
    /// Apply weight decay to biases too (PyTorch's default: all parameters).
    pub decay_bias: bool,
}

impl Default for SgdConfig {
    fn default() -> Self {
        SgdConfig {
            weight_decay: 1e-4,
            momentum: 0.0,
            dampening: 0.0,
            nesterov: false,
            decoupled_weight_decay: false,
            decay_bias: true,
        }
    }
}

impl SgdConfig {
    /// Checks the ranges PyTorch enforces.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] for negative or non-finite values, and nesterov without
    /// momentum or with dampening (as `torch.optim.SGD` refuses).
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &'static str, v: f64, reason: &str| Error::InvalidConfig {
            name,
            value: v.to_string(),
            reason: reason.into(),
        };
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(bad(
                "weight decay",
                self.weight_decay,
                "must be finite and >= 0",
            ));
        }
        if !(self.momentum.is_finite() && self.momentum >= 0.0) {
            return Err(bad("momentum", self.momentum, "must be finite and >= 0"));
        }
        if !(self.dampening.is_finite() && (0.0..=1.0).contains(&self.dampening)) {
            return Err(bad("dampening", self.dampening, "must be in [0, 1]"));
        }
        if self.nesterov && self.momentum <= 0.0 {
            return Err(bad(
                "momentum",
                self.momentum,
                "nesterov needs momentum > 0 (as torch.optim.SGD)",
            ));
        }
        if self.nesterov && self.dampening != 0.0 {
            return Err(bad(
                "dampening",
                self.dampening,
                "nesterov needs dampening 0 (as torch.optim.SGD)",
            ));
        }
        Ok(())
    }
}

/// Checks a learning rate: finite and positive (`torch.optim.SGD` refuses `lr < 0`, and an
/// lr of 0 trains nothing). The one rule for every learning rate: the trainer's, and a
/// schedule's `base_lr` ([`LrSchedule::validate`](crate::schedule::LrSchedule::validate) and
/// [`PlateauState::try_new`](crate::schedule::PlateauState::try_new) call it).
///
/// # Errors
/// [`Error::InvalidConfig`] otherwise.
pub fn validate_lr(lr: f64) -> Result<()> {
    // The kernels compute in f32: an lr that f32 rounds to 0 or infinity would train wrong.
    if lr.is_finite() && lr > 0.0 && (lr as f32).is_finite() && lr as f32 > 0.0 {
        Ok(())
    } else {
        Err(Error::InvalidConfig {
            name: "learning rate",
            value: lr.to_string(),
            reason: "must be finite and > 0 within f32's range (1e-38 to 3e38)".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cpu::sgd_update;

    fn run(cfg: &SgdConfig, lr: f32, grads: &[f32]) -> Vec<f32> {
        let mut p = vec![1.0f32];
        let mut v = vec![0.0f32];
        let mut out = vec![];
        for (i, &g) in grads.iter().enumerate() {
            sgd_update(&mut p, &[g], &mut v, cfg, lr, i == 0, &[]);
            out.push(p[0]);
        }
        out
    }

    fn close(a: &[f32], b: &[f64]) {
        for (x, y) in a.iter().zip(b) {
            assert!((f64::from(*x) - y).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    // Hand-computed with torch.optim.SGD's update rule, p0 = 1, grads 1, 2, 3, lr 0.1.
    #[test]
    fn plain_sgd_with_coupled_weight_decay() {
        let cfg = SgdConfig {
            weight_decay: 0.5,
            ..SgdConfig::default()
        };
        // g1 = 1 + 0.5·1 = 1.5 -> p = 0.85; g2 = 2 + 0.425 = 2.425 -> p = 0.6075;
        // g3 = 3 + 0.30375 = 3.30375 -> p = 0.277125.
        close(&run(&cfg, 0.1, &[1.0, 2.0, 3.0]), &[0.85, 0.6075, 0.277125]);
    }

    #[test]
    fn momentum_first_step_sets_buffer_to_gradient() {
        let cfg = SgdConfig {
            weight_decay: 0.0,
            momentum: 0.9,
            ..SgdConfig::default()
        };
        // v1 = 1 -> p = 0.9; v2 = 0.9 + 2 = 2.9 -> p = 0.61; v3 = 2.61 + 3 = 5.61 -> p = 0.049.
        close(&run(&cfg, 0.1, &[1.0, 2.0, 3.0]), &[0.9, 0.61, 0.049]);
    }

    #[test]
    fn dampening_scales_later_gradients_only() {
        let cfg = SgdConfig {
            weight_decay: 0.0,
            momentum: 0.9,
            dampening: 0.5,
            ..SgdConfig::default()
        };
        // v1 = 1 (no dampening on the first step) -> 0.9; v2 = 0.9 + 0.5·2 = 1.9 -> 0.71;
        // v3 = 1.71 + 1.5 = 3.21 -> 0.389.
        close(&run(&cfg, 0.1, &[1.0, 2.0, 3.0]), &[0.9, 0.71, 0.389]);
    }

    #[test]
    fn nesterov_adds_momentum_times_buffer() {
        let cfg = SgdConfig {
            weight_decay: 0.0,
            momentum: 0.9,
            nesterov: true,
            ..SgdConfig::default()
        };
        // v1 = 1, g = 1 + 0.9 = 1.9 -> 0.81; v2 = 2.9, g = 2 + 2.61 = 4.61 -> 0.349;
        // v3 = 5.61, g = 3 + 5.049 = 8.049 -> -0.4559.
        close(&run(&cfg, 0.1, &[1.0, 2.0, 3.0]), &[0.81, 0.349, -0.4559]);
    }

    #[test]
    fn decoupled_weight_decay_scales_with_lr() {
        let cfg = SgdConfig {
            weight_decay: 0.5,
            decoupled_weight_decay: true,
            ..SgdConfig::default()
        };
        // p = 1 - 0.1·0.5·1 = 0.95, then - 0.1·1 = 0.85; p = 0.85·0.95 - 0.2 = 0.6075;
        // p = 0.6075·0.95 - 0.3 = 0.277125.
        close(&run(&cfg, 0.1, &[1.0, 2.0, 3.0]), &[0.85, 0.6075, 0.277125]);
    }

    #[test]
    fn coupled_decay_with_momentum() {
        let cfg = SgdConfig {
            weight_decay: 0.1,
            momentum: 0.5,
            ..SgdConfig::default()
        };
        // g1 = 1 + 0.1 = 1.1, v = 1.1 -> p = 0.89; g2 = 2 + 0.089 = 2.089, v = 0.55 + 2.089 = 2.639
        // -> p = 0.6261.
        close(&run(&cfg, 0.1, &[1.0, 2.0]), &[0.89, 0.6261]);
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(
            SgdConfig {
                weight_decay: -1.0,
                ..SgdConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            SgdConfig {
                nesterov: true,
                ..SgdConfig::default()
            }
            .validate()
            .is_err()
        );
        assert!(validate_lr(f64::NAN).is_err());
        assert!(validate_lr(0.0).is_err());
        assert!(validate_lr(-0.01).is_err());
        assert!(validate_lr(f64::INFINITY).is_err());
        assert!(validate_lr(0.01).is_ok());
        assert!(validate_lr(1e-50).is_err(), "rounds to 0 in f32");
        assert!(validate_lr(1e39).is_err(), "infinite in f32");
    }
}
