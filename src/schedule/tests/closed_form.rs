//! Unit tests of the closed forms through [`LrSchedule`], the public entry: each value is
//! derived by hand in a comment next to it.

use std::f64::consts::PI;

use super::{assert_close, cos_3pi_10, epoch_lr};
use crate::schedule::*;

#[test]
fn step_lr() {
    // StepLR(step_size=3, gamma=0.1), base 0.1: 0.1 * 0.1^(e // 3)
    let s = LrSchedule::new(
        0.1,
        Schedule::Step {
            step_size: 3,
            gamma: 0.1,
        },
    );
    let want = [0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.001, 0.001, 0.001, 1e-4];
    for (e, w) in want.into_iter().enumerate() {
        assert_close(epoch_lr(&s, e), w);
    }
    // constant within an epoch
    assert_eq!(s.lr_at(4, 0, 50), s.lr_at(4, 49, 50));
}

#[test]
fn multistep_lr() {
    // MultiStepLR([2, 5], gamma=0.5), base 0.1: 0.1 * 0.5^(#milestones <= e)
    let s = LrSchedule::new(
        0.1,
        Schedule::MultiStep {
            milestones: vec![2, 5],
            gamma: 0.5,
        },
    );
    // e=1: 0 milestones -> 0.1; e=2,3,4: one -> 0.05; e=5,6: two -> 0.025
    for (e, w) in [
        (0, 0.1),
        (1, 0.1),
        (2, 0.05),
        (3, 0.05),
        (4, 0.05),
        (5, 0.025),
        (6, 0.025),
    ] {
        assert_close(epoch_lr(&s, e), w);
    }
    // milestone 0 decays already at epoch 0 (torch: last_epoch 0 is in the Counter)
    let s0 = LrSchedule::new(
        0.3,
        Schedule::MultiStep {
            milestones: vec![0],
            gamma: 0.1,
        },
    );
    assert_close(epoch_lr(&s0, 0), 0.03);
    let empty = LrSchedule::new(
        0.3,
        Schedule::MultiStep {
            milestones: vec![],
            gamma: 0.1,
        },
    );
    assert_close(epoch_lr(&empty, 100), 0.3);
}

#[test]
fn exponential_lr() {
    // ExponentialLR(0.9), base 0.1: epoch 3 -> 0.1 * 0.9^3 = 0.1 * 0.729 = 0.0729
    let s = LrSchedule::new(0.1, Schedule::Exponential { gamma: 0.9 });
    assert_close(epoch_lr(&s, 0), 0.1);
    assert_close(epoch_lr(&s, 1), 0.09);
    assert_close(epoch_lr(&s, 3), 0.1 * 0.729);
}

#[test]
fn cosine_lr() {
    // CosineAnnealingLR(T_max=10, eta_min=0.001), base 0.1:
    // lr = 0.001 + 0.099 * (1 + cos(pi * e / 10)) / 2
    let s = LrSchedule::new(
        0.1,
        Schedule::Cosine {
            t_max: 10,
            eta_min: 0.001,
        },
    );
    // e=0: cos 0 = 1 -> 0.001 + 0.099 = 0.1
    assert_close(epoch_lr(&s, 0), 0.1);
    // e=3: cos(0.3 pi) = 0.5877852522924731 -> 0.001 + 0.099 * 1.5877852522924731 / 2
    //      = 0.001 + 0.0785953699884774 = 0.0795953699884774
    assert_close(epoch_lr(&s, 3), 0.001 + 0.099 * (1.0 + cos_3pi_10()) / 2.0);
    assert_close(epoch_lr(&s, 3), 0.079_595_369_988_477_4);
    // e=5: cos(pi/2) = 0 -> 0.001 + 0.0495 = 0.0505
    assert_close(epoch_lr(&s, 5), 0.0505);
    // e=7: cos(0.7 pi) = -cos(0.3 pi) -> 0.001 + 0.099 * (1 - 0.5877852522924731) / 2
    assert_close(epoch_lr(&s, 7), 0.001 + 0.099 * (1.0 - cos_3pi_10()) / 2.0);
    // e=10: cos(pi) = -1 -> eta_min
    assert_close(epoch_lr(&s, 10), 0.001);
    // monotone non-increasing over 0..=T_max
    for e in 0..10 {
        assert!(epoch_lr(&s, e + 1) <= epoch_lr(&s, e));
    }
    // beyond T_max: periodic continuation (rises again, base_lr at 2*T_max)
    assert_close(epoch_lr(&s, 13), epoch_lr(&s, 7));
    assert_close(epoch_lr(&s, 20), 0.1);
}

#[test]
fn warmup_then_cosine() {
    // SequentialLR([LinearLR(0.1, 1.0, total_iters=2), CosineAnnealingLR(8, 0.001)], [2]),
    // base 0.1:
    let s = LrSchedule::new(
        0.1,
        Schedule::Cosine {
            t_max: 8,
            eta_min: 0.001,
        },
    )
    .with_warmup(2, 0.1);
    // e=0: 0.1 * 0.1 = 0.01
    assert_close(epoch_lr(&s, 0), 0.01);
    // e=1: 0.1 * (0.1 + 0.9 * 1/2) = 0.1 * 0.55 = 0.055
    assert_close(epoch_lr(&s, 1), 0.055);
    // e=2: cosine t=0 -> base 0.1
    assert_close(epoch_lr(&s, 2), 0.1);
    // e=6: t=4=T_max/2 -> 0.001 + 0.099/2 = 0.0505
    assert_close(epoch_lr(&s, 6), 0.0505);
    // e=10: t=8=T_max -> eta_min
    assert_close(epoch_lr(&s, 10), 0.001);

    // default start factor 1/3 with warmup 3 epochs, then constant:
    // 0.3 * (1/3 + (2/3) * e/3): e=0 -> 0.1, e=1 -> 0.3*5/9, e=2 -> 0.3*7/9, e>=3 -> 0.3
    let c = LrSchedule::new(0.3, Schedule::Constant).with_warmup(3, DEFAULT_WARMUP_START_FACTOR);
    assert_close(epoch_lr(&c, 0), 0.1);
    assert_close(epoch_lr(&c, 1), 0.3 * 5.0 / 9.0);
    assert_close(epoch_lr(&c, 2), 0.3 * 7.0 / 9.0);
    assert_close(epoch_lr(&c, 3), 0.3);
    assert_close(epoch_lr(&c, 50), 0.3);

    // milestones/step_size count epochs after warm-up
    let st = LrSchedule::new(
        0.1,
        Schedule::Step {
            step_size: 2,
            gamma: 0.1,
        },
    )
    .with_warmup(1, 0.5);
    // e=0: 0.05; e=1,2: t=0,1 -> 0.1; e=3: t=2 -> 0.01
    for (e, w) in [(0, 0.05), (1, 0.1), (2, 0.1), (3, 0.01)] {
        assert_close(epoch_lr(&st, e), w);
    }
}

fn onecycle(three_phase: bool, anneal: Anneal) -> LrSchedule {
    LrSchedule::new(
        0.5, // ignored by OneCycle
        Schedule::OneCycle {
            max_lr: 0.1,
            total_steps: 100,
            pct_start: 0.3,
            div_factor: 25.0,
            final_div_factor: 1e4,
            three_phase,
            anneal,
        },
    )
}

#[test]
fn onecycle_cos_two_phase() {
    // initial_lr = 0.1 / 25 = 0.004, min_lr = 0.004 / 1e4 = 4e-7
    // phase ends: 0.3*100 - 1 = 29, 100 - 1 = 99
    let s = onecycle(false, Anneal::Cos);
    assert!(s.is_per_step());
    let lr = |step: usize| s.try_lr_at(0, step, 1000).unwrap();
    // step 0: pct 0 -> initial_lr
    assert_close(lr(0), 0.004);
    // step 29: pct = 29/29 = 1 -> max_lr
    assert_close(lr(29), 0.1);
    // step 50: phase 2, pct = (50-29)/(99-29) = 0.3
    //   lr = 4e-7 + (0.1 - 4e-7)/2 * (cos(0.3 pi) + 1) = 4e-7 + 0.0499998 * 1.5877852522924731
    //      ≈ 0.0793893450...
    assert_close(lr(50), 4e-7 + (0.1 - 4e-7) / 2.0 * (cos_3pi_10() + 1.0));
    // step 99: pct 1 -> min_lr
    assert_close(lr(99), 4e-7);
    // epoch/step decomposition: epoch 5 of 10 steps, step 0 = global step 50
    assert_close(s.lr_at(5, 0, 10), lr(50));
    // step 100 = total_steps: torch still computes it (pct = 71/70 > 1, extrapolated)
    let at_total = lr(100);
    assert_close(
        at_total,
        4e-7 + (0.1 - 4e-7) / 2.0 * ((PI * 71.0 / 70.0).cos() + 1.0),
    );
    assert!(at_total > 4e-7);
    // step 101: torch raises ValueError
    assert_eq!(
        s.try_lr_at(0, 101, 1000),
        Err(ScheduleError::PastTotalSteps {
            step: 101,
            total_steps: 100
        })
    );
    // lr_at clamps to min_lr past the end
    assert_close(s.lr_at(0, 101, 1000), 4e-7);
    assert_close(s.lr_at(usize::MAX, 1, 2), 4e-7);
}

#[test]
fn onecycle_three_phase() {
    // phase ends: 29, 2*0.3*100 - 2 = 58, 99
    let s = onecycle(true, Anneal::Cos);
    let lr = |step: usize| s.try_lr_at(0, step, 1000).unwrap();
    assert_close(lr(0), 0.004); // initial
    assert_close(lr(29), 0.1); // end of phase 1: max
    // step 43.5 would be the mid-point of phase 2; step 58: pct 1 -> back to initial
    assert_close(lr(58), 0.004);
    assert_close(lr(99), 4e-7); // end of phase 3: min
    // step 44 in phase 2: pct = (44-29)/29 = 15/29
    assert_close(
        lr(44),
        0.004 + (0.1 - 0.004) / 2.0 * ((PI * (15.0 / 29.0)).cos() + 1.0),
    );
}

#[test]
fn onecycle_linear() {
    let s = onecycle(false, Anneal::Linear);
    let lr = |step: usize| s.try_lr_at(0, step, 1000).unwrap();
    assert_close(lr(0), 0.004);
    // step 10: (0.1 - 0.004) * 10/29 + 0.004 = 0.0331034482758621 + 0.004 = 0.0371034482758621
    assert_close(lr(10), 0.037_103_448_275_862_07);
    assert_close(lr(29), 0.1);
    // step 64: pct = (64-29)/70 = 0.5 -> (4e-7 - 0.1) * 0.5 + 0.1 = 0.0500002
    assert_close(lr(64), 0.050_000_2);
    // step 99: pct 1 -> (4e-7 - 0.1) * 1 + 0.1, which torch evaluates with cancellation:
    // 3.999999999976245e-7, not 4e-7 (relative error 6e-12), so compare with that form
    assert_close(lr(99), (4e-7 - 0.1) * 1.0 + 0.1);
    assert!((lr(99) - 4e-7).abs() < 1e-17);
    // three-phase linear: step 58 -> initial, step 78.5 would be halfway to min
    let t = onecycle(true, Anneal::Linear);
    assert_close(t.try_lr_at(0, 58, 1000).unwrap(), 0.004);
    // step 43: pct = 14/29 -> (0.004 - 0.1) * 14/29 + 0.1
    assert_close(
        t.try_lr_at(0, 43, 1000).unwrap(),
        (0.004 - 0.1) * (14.0 / 29.0) + 0.1,
    );
}

#[test]
fn kind_and_stepping() {
    assert_eq!(Schedule::one_cycle(0.1, 10).kind(), ScheduleKind::OneCycle);
    assert_eq!(Schedule::Constant.kind(), ScheduleKind::Constant);
    assert!(Schedule::one_cycle(0.1, 10).is_per_step());
    assert!(Schedule::Plateau(PlateauConfig::default()).is_stateful());
}
