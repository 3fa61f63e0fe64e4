#!/usr/bin/env python3
"""Dump PyTorch learning-rate sequences used as reference values by src/schedule.rs.

Run with a Python that has `torch` installed (any CPU build from PyPI):

    python3 tests/data/gen_lr_schedules_torch.py > tests/data/lr_schedules_torch.json

Every sequence is produced by *running* the real torch.optim.lr_scheduler classes in
the documented usage (optimizer.step() then scheduler.step()), so the values are
torch's recursive/chainable forms, not its closed forms. The Rust tests compare
them with `LrSchedule::lr_at` / `PlateauState::step` at 1e-12 relative tolerance.

Layout:
  epoch_cases:   lrs[e] = lr in use during epoch e (scheduler stepped once per epoch)
  onecycle_cases: lrs[s] = lr in use for optimizer step s, s = 0..=total_steps
                  (torch computes step total_steps without error and raises on the
                  next scheduler.step(); `raises_after_total` records that)
  plateau_cases: lrs[k] = lr after scheduler.step(metrics[k]); metric null = NaN
"""

import json
import math
import sys
import warnings

import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    MultiStepLR,
    OneCycleLR,
    ReduceLROnPlateau,
    SequentialLR,
    StepLR,
)

warnings.filterwarnings("ignore")


def make_opt(lr):
    p = torch.nn.Parameter(torch.zeros(1))
    return SGD([p], lr=lr, momentum=0.9)


def main_sched(opt, spec):
    kind = spec["kind"]
    if kind == "constant":
        return None
    if kind == "step":
        return StepLR(opt, step_size=spec["step_size"], gamma=spec["gamma"])
    if kind == "multistep":
        return MultiStepLR(opt, milestones=spec["milestones"], gamma=spec["gamma"])
    if kind == "exponential":
        return ExponentialLR(opt, gamma=spec["gamma"])
    if kind == "cosine":
        return CosineAnnealingLR(opt, T_max=spec["t_max"], eta_min=spec["eta_min"])
    raise ValueError(kind)


def epoch_case(name, base_lr, spec, epochs, warmup_epochs=0, warmup_start_factor=1.0 / 3):
    opt = make_opt(base_lr)
    if warmup_epochs > 0:
        warm = LinearLR(
            opt, start_factor=warmup_start_factor, end_factor=1.0, total_iters=warmup_epochs
        )
        main = main_sched(opt, spec)
        if main is None:
            # "constant after warmup": LinearLR alone stays at base_lr after total_iters.
            sched = warm
        else:
            sched = SequentialLR(opt, schedulers=[warm, main], milestones=[warmup_epochs])
    else:
        sched = main_sched(opt, spec)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if sched is not None:
            sched.step()
    return {
        "name": name,
        "base_lr": base_lr,
        "warmup_epochs": warmup_epochs,
        "warmup_start_factor": warmup_start_factor,
        "schedule": spec,
        "lrs": lrs,
    }


def onecycle_case(name, max_lr, total_steps, pct_start=0.3, div_factor=25.0,
                  final_div_factor=1e4, three_phase=False, anneal="cos"):
    opt = make_opt(0.123)  # OneCycleLR ignores the optimizer's lr
    sched = OneCycleLR(
        opt,
        max_lr=max_lr,
        total_steps=total_steps,
        pct_start=pct_start,
        anneal_strategy=anneal,
        div_factor=div_factor,
        final_div_factor=final_div_factor,
        three_phase=three_phase,
        cycle_momentum=False,
    )
    lrs = []
    for _ in range(total_steps + 1):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if len(lrs) <= total_steps:
            sched.step()
    try:
        sched.step()
        raises = False
    except ValueError:
        raises = True
    return {
        "name": name,
        "max_lr": max_lr,
        "total_steps": total_steps,
        "pct_start": pct_start,
        "div_factor": div_factor,
        "final_div_factor": final_div_factor,
        "three_phase": three_phase,
        "anneal": anneal,
        "lrs": lrs,
        "raises_after_total": raises,
    }


def plateau_case(name, base_lr, metrics, **cfg):
    opt = make_opt(base_lr)
    sched = ReduceLROnPlateau(opt, **cfg)
    lrs = []
    for m in metrics:
        opt.step()
        sched.step(float("nan") if m is None else m)
        lrs.append(opt.param_groups[0]["lr"])
    full = {
        "mode": "min",
        "factor": 0.1,
        "patience": 10,
        "threshold": 1e-4,
        "threshold_mode": "rel",
        "cooldown": 0,
        "min_lr": 0.0,
        "eps": 1e-8,
    }
    full.update(cfg)
    return {"name": name, "base_lr": base_lr, "config": full, "metrics": metrics, "lrs": lrs}


def main():
    epoch_cases = [
        epoch_case("constant", 0.1, {"kind": "constant"}, 10),
        epoch_case("step_3_0.1", 0.1, {"kind": "step", "step_size": 3, "gamma": 0.1}, 20),
        epoch_case("step_1_0.5", 0.05, {"kind": "step", "step_size": 1, "gamma": 0.5}, 30),
        epoch_case("multistep_2_5", 0.1, {"kind": "multistep", "milestones": [2, 5], "gamma": 0.5}, 10),
        epoch_case("multistep_0_3_7", 0.3, {"kind": "multistep", "milestones": [0, 3, 7], "gamma": 0.1}, 12),
        epoch_case("multistep_empty", 0.3, {"kind": "multistep", "milestones": [], "gamma": 0.1}, 5),
        epoch_case("exponential_0.9", 0.1, {"kind": "exponential", "gamma": 0.9}, 40),
        epoch_case("exponential_1.01", 0.02, {"kind": "exponential", "gamma": 1.01}, 15),
        epoch_case("cosine_10_0.001", 0.1, {"kind": "cosine", "t_max": 10, "eta_min": 0.001}, 11),
        # beyond T_max: torch's recursive form continues the cosine periodically
        epoch_case("cosine_10_0.001_long", 0.1, {"kind": "cosine", "t_max": 10, "eta_min": 0.001}, 45),
        epoch_case("cosine_7_0", 0.05, {"kind": "cosine", "t_max": 7, "eta_min": 0.0}, 30),
        epoch_case("cosine_1_0", 0.05, {"kind": "cosine", "t_max": 1, "eta_min": 0.0}, 6),
        epoch_case("warmup2_0.1_cosine8", 0.1, {"kind": "cosine", "t_max": 8, "eta_min": 0.001}, 11,
                   warmup_epochs=2, warmup_start_factor=0.1),
        epoch_case("warmup3_default_cosine5_long", 0.2, {"kind": "cosine", "t_max": 5, "eta_min": 0.0}, 20,
                   warmup_epochs=3),
        epoch_case("warmup1_0.5_step", 0.1, {"kind": "step", "step_size": 2, "gamma": 0.1}, 9,
                   warmup_epochs=1, warmup_start_factor=0.5),
        epoch_case("warmup4_multistep", 0.1, {"kind": "multistep", "milestones": [0, 2, 5], "gamma": 0.5}, 12,
                   warmup_epochs=4, warmup_start_factor=0.25),
        epoch_case("warmup5_exponential", 0.1, {"kind": "exponential", "gamma": 0.8}, 15,
                   warmup_epochs=5, warmup_start_factor=0.01),
        epoch_case("warmup3_constant", 0.1, {"kind": "constant"}, 8,
                   warmup_epochs=3, warmup_start_factor=0.2),
        epoch_case("warmup2_sf1_cosine", 0.1, {"kind": "cosine", "t_max": 4, "eta_min": 0.01}, 8,
                   warmup_epochs=2, warmup_start_factor=1.0),
    ]
    onecycle_cases = [
        onecycle_case("onecycle_cos_100", 0.1, 100),
        onecycle_case("onecycle_cos_100_three_phase", 0.1, 100, three_phase=True),
        onecycle_case("onecycle_linear_100", 0.1, 100, anneal="linear"),
        onecycle_case("onecycle_linear_100_three_phase", 0.1, 100, anneal="linear", three_phase=True),
        onecycle_case("onecycle_cos_37_pct0.25", 0.5, 37, pct_start=0.25, div_factor=10.0,
                      final_div_factor=100.0),
        onecycle_case("onecycle_cos_1", 0.1, 1),
        onecycle_case("onecycle_cos_3", 0.1, 3),
        onecycle_case("onecycle_cos_1000_pct0.1", 3e-3, 1000, pct_start=0.1),
        onecycle_case("onecycle_cos_51_three_phase_pct0.45", 1.0, 51, pct_start=0.45, three_phase=True),
    ]
    plateau_cases = [
        plateau_case("plateau_patience2", 0.1,
                     [1.0, 0.9, 0.95, 0.95, 0.95, 0.8, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85, 0.85],
                     patience=2),
        plateau_case("plateau_cooldown", 0.1,
                     [1.0] * 14 + [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6],
                     patience=1, cooldown=2, factor=0.5),
        plateau_case("plateau_min_lr", 0.1, [1.0] * 12, patience=0, factor=0.1, min_lr=1e-3),
        plateau_case("plateau_eps", 1e-7, [1.0] * 6, patience=0, factor=0.5, eps=1e-7),
        plateau_case("plateau_eps_default", 3e-8, [1.0] * 6, patience=0, factor=0.5),
        plateau_case("plateau_max", 0.01,
                     [0.5, 0.6, 0.6, 0.60005, 0.61, 0.61, 0.61, 0.7, 0.69, 0.69, 0.69],
                     mode="max", patience=1, factor=0.2),
        plateau_case("plateau_abs_min", 0.1,
                     [1.0, 0.95, 0.91, 0.905, 0.90, 0.89, 0.85, 0.849, 0.848, 0.70],
                     threshold_mode="abs", threshold=0.05, patience=1, factor=0.5),
        plateau_case("plateau_abs_max", 0.1,
                     [1.0, 1.5, 1.55, 1.56, 1.61, 1.6, 1.6, 1.6],
                     mode="max", threshold_mode="abs", threshold=0.05, patience=0, factor=0.5),
        plateau_case("plateau_rel_threshold_edge", 0.1,
                     [1.0, 0.9999, 0.99989, 0.9998, 0.9998, 0.9998],
                     patience=0, factor=0.5),
        plateau_case("plateau_nan", 0.1, [1.0, None, None, 0.5, None, None, None], patience=1, factor=0.5),
        plateau_case("plateau_negative_metric", 0.1, [-1.0, -1.05, -1.2, -1.2, -1.2], patience=1, factor=0.5),
        plateau_case("plateau_defaults", 0.1, [1.0] + [1.0] * 30),
    ]
    out = {
        "torch_version": torch.__version__,
        "epoch_cases": epoch_cases,
        "onecycle_cases": onecycle_cases,
        "plateau_cases": plateau_cases,
    }
    for case in out["epoch_cases"] + out["onecycle_cases"] + out["plateau_cases"]:
        for v in case["lrs"]:
            assert math.isfinite(v), case["name"]
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
