//! Unit tests that exercise the schedule module through its public entry points, and the
//! helpers the per-file tests share.

mod closed_form;
mod torch_reference;
mod validation;

use super::{LrSchedule, PlateauConfig, PlateauState};

/// Relative tolerance of every comparison: the torch references agree to 1e-12.
const TOL: f64 = 1e-12;

/// `a` and `b` are equal or within [`TOL`] relative to the larger magnitude.
pub(super) fn close(a: f64, b: f64) -> bool {
    a == b || (a - b).abs() <= TOL * a.abs().max(b.abs())
}

#[track_caller]
fn assert_close(got: f64, want: f64) {
    assert!(
        close(got, want),
        "got {got:e}, want {want:e} (rel err {:e})",
        ((got - want) / want).abs()
    );
}

/// The lr of epoch `epoch` (its first step) of a valid epoch-based schedule.
fn epoch_lr(s: &LrSchedule, epoch: usize) -> f64 {
    s.try_lr_at(epoch, 0, 1).expect("valid schedule")
}

/// cos(3*pi/10) = sin(pi/5) = sqrt(10 - 2*sqrt(5)) / 4 ≈ 0.5877852522924731,
/// computed algebraically so the expected values do not reuse `cos`.
fn cos_3pi_10() -> f64 {
    (10.0 - 2.0 * 5f64.sqrt()).sqrt() / 4.0
}

/// The lrs a validated `ReduceLROnPlateau` gives after each metric.
pub(super) fn run_plateau(cfg: PlateauConfig, base: f64, metrics: &[f64]) -> Vec<f64> {
    let mut st = PlateauState::try_new(cfg, base).unwrap();
    metrics.iter().map(|&m| st.step(m)).collect()
}
