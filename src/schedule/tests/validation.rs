//! The parameter ranges [`LrSchedule::validate`] and [`Schedule::validate`] check, and the
//! messages that name them.

use crate::schedule::*;

#[track_caller]
fn assert_invalid(s: &LrSchedule, param: &str) {
    match s.validate() {
        Err(ScheduleError::InvalidParameter { param: p, .. }) if p == param => {}
        other => panic!("expected invalid {param}, got {other:?} for {s}"),
    }
}

#[test]
fn validation_errors() {
    let lr = |s: Schedule| LrSchedule::new(0.1, s);
    assert_invalid(
        &lr(Schedule::Step {
            step_size: 0,
            gamma: 0.1,
        }),
        "step_size",
    );
    assert_invalid(
        &lr(Schedule::Step {
            step_size: 1,
            gamma: 0.0,
        }),
        "gamma",
    );
    assert_invalid(
        &lr(Schedule::Step {
            step_size: 1,
            gamma: f64::NAN,
        }),
        "gamma",
    );
    assert_invalid(
        &lr(Schedule::Exponential {
            gamma: f64::INFINITY,
        }),
        "gamma",
    );
    assert_invalid(&lr(Schedule::Exponential { gamma: -0.5 }), "gamma");
    assert_invalid(
        &lr(Schedule::MultiStep {
            milestones: vec![1],
            gamma: 0.0,
        }),
        "gamma",
    );
    assert_eq!(
        lr(Schedule::MultiStep {
            milestones: vec![1, 5, 5],
            gamma: 0.1
        })
        .validate(),
        Err(ScheduleError::MilestonesNotIncreasing {
            index: 2,
            previous: 5,
            value: 5
        })
    );
    assert!(
        lr(Schedule::MultiStep {
            milestones: vec![5, 3],
            gamma: 0.1
        })
        .validate()
        .is_err()
    );
    assert_invalid(
        &lr(Schedule::Cosine {
            t_max: 0,
            eta_min: 0.0,
        }),
        "t_max",
    );
    assert_invalid(
        &lr(Schedule::Cosine {
            t_max: 5,
            eta_min: -1e-3,
        }),
        "eta_min",
    );
    assert_invalid(&LrSchedule::new(-0.1, Schedule::Constant), "base_lr");
    assert_invalid(&LrSchedule::new(f64::NAN, Schedule::Constant), "base_lr");

    let oc = |f: &dyn Fn(&mut Schedule)| {
        let mut s = Schedule::one_cycle(0.1, 100);
        f(&mut s);
        LrSchedule::new(0.1, s)
    };
    macro_rules! set {
        ($field:ident = $v:expr) => {
            |s: &mut Schedule| {
                if let Schedule::OneCycle { $field, .. } = s {
                    *$field = $v;
                }
            }
        };
    }
    assert!(oc(&|_| {}).validate().is_ok());
    assert_invalid(&oc(&set!(max_lr = 0.0)), "max_lr");
    assert_invalid(&oc(&set!(total_steps = 0)), "total_steps");
    assert_invalid(&oc(&set!(pct_start = 0.0)), "pct_start");
    assert_invalid(&oc(&set!(pct_start = 1.0)), "pct_start");
    assert_invalid(&oc(&set!(div_factor = 0.0)), "div_factor");
    assert_invalid(
        &oc(&set!(final_div_factor = f64::INFINITY)),
        "final_div_factor",
    );
    // pct_start * total_steps == 1: torch ZeroDivisionError at step 0
    let zero_len = LrSchedule::new(0.1, {
        let mut s = Schedule::one_cycle(0.1, 10);
        if let Schedule::OneCycle { pct_start, .. } = &mut s {
            *pct_start = 0.1;
        }
        s
    });
    assert_invalid(&zero_len, "pct_start");
    // three-phase with pct_start >= ~0.5: phases out of order
    let mut bad3 = Schedule::one_cycle(0.1, 100);
    if let Schedule::OneCycle {
        pct_start,
        three_phase,
        ..
    } = &mut bad3
    {
        *pct_start = 0.6;
        *three_phase = true;
    }
    assert_invalid(&LrSchedule::new(0.1, bad3), "pct_start");
    // two-phase with pct_start * total_steps < 1 is fine (torch skips the warm-up phase)
    assert!(
        LrSchedule::new(0.1, Schedule::one_cycle(0.1, 3))
            .validate()
            .is_ok()
    );

    // warm-up
    let cos = Schedule::Cosine {
        t_max: 5,
        eta_min: 0.0,
    };
    assert_invalid(&lr(cos.clone()).with_warmup(2, 0.0), "warmup_start_factor");
    assert_invalid(&lr(cos.clone()).with_warmup(2, 1.5), "warmup_start_factor");
    assert!(lr(cos.clone()).with_warmup(2, 1.0).validate().is_ok());
    assert!(lr(cos).with_warmup(0, 0.0).validate().is_ok()); // unused when no warm-up
    assert_eq!(
        lr(Schedule::one_cycle(0.1, 100))
            .with_warmup(1, 0.5)
            .validate(),
        Err(ScheduleError::WarmupUnsupported {
            schedule: "onecycle"
        })
    );
    assert_eq!(
        lr(Schedule::Plateau(PlateauConfig::default()))
            .with_warmup(1, 0.5)
            .validate(),
        Err(ScheduleError::WarmupUnsupported {
            schedule: "plateau"
        })
    );

    // messages name the parameter and the valid range
    let msg = lr(Schedule::Cosine {
        t_max: 0,
        eta_min: 0.0,
    })
    .validate()
    .unwrap_err()
    .to_string();
    assert_eq!(
        msg,
        "invalid cosine parameter t_max = 0: expected an integer >= 1 (epochs)"
    );
}
