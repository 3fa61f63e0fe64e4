#!/usr/bin/env python3
"""Tune wgtrain with Optuna, one trial per process, through the `optuna` CLI.

Each trial asks the study for hyperparameters (`optuna ask`), trains them with
`wgtrain train ... --val-split 0.1 --metrics FILE` as a subprocess, reads the final
epoch's `val_accuracy` from the metrics file and reports it (`optuna tell`). A trial whose
run fails (e.g. a non-finite loss at a too-high learning rate) is told `--state fail`.
The study lives in an RDB storage (SQLite by default), so several copies of this script
can run at once on one study, on one machine or many, and a sweep can be resumed.

    pip install optuna
    cargo build --release
    python3 examples/optuna_sweep.py --trials 20 --storage sqlite:///optuna.db \\
        --lr 1e-3:1 --weight-decay 1e-6:1e-2 -- --device cpu --epochs 3 --train-subset 10000

Search-space flags take a log-uniform range `lo:hi` (FloatDistribution, log=True) or a
list `a,b,c` (CategoricalDistribution). Everything after `--` goes to `wgtrain train`
unchanged. The tuned value is validation accuracy only: the test set is never looked at.
After the trials, the study's best trial is printed as JSON (the last line of stdout).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

# Flags of `wgtrain train` this script can tune, by parameter name.
FLAGS = {
    "lr": "--lr",
    "weight_decay": "--weight-decay",
    "batch_size": "--batch-size",
    "momentum": "--momentum",
}
INTEGER = {"batch_size"}


def distribution(text):
    """`lo:hi` -> log-uniform float; `a,b,c` -> categorical (numbers)."""
    if ":" in text:
        lo, hi = (float(v) for v in text.split(":", 1))
        if not 0 < lo < hi:
            raise argparse.ArgumentTypeError(f"range {text}: need 0 < lo < hi (log-uniform)")
        return {"name": "FloatDistribution",
                "attributes": {"low": lo, "high": hi, "log": True, "step": None}}
    return {"name": "CategoricalDistribution",
            "attributes": {"choices": [float(v) for v in text.split(",")]}}


def optuna_cli(*args):
    """Runs the optuna CLI of this interpreter's optuna package; returns stdout."""
    code = "import sys; from optuna.cli import main; sys.argv[0] = 'optuna'; sys.exit(main())"
    out = subprocess.run([sys.executable, "-c", code, *args],
                         check=True, capture_output=True, text=True)
    return out.stdout


def final_val_accuracy(metrics_path):
    """The last epoch's val_accuracy in a `wgtrain train --metrics` file."""
    last = None
    with open(metrics_path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                last = json.loads(line)
    if last is None or "val_accuracy" not in last:
        raise ValueError(f"{metrics_path}: no epoch with val_accuracy (is --val-split set?)")
    return float(last["val_accuracy"])


def flag_value(name, value):
    if name in INTEGER:
        return str(int(round(value)))
    return repr(float(value))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wgtrain", default=os.environ.get("WGTRAIN", "target/release/wgtrain"),
                   help="the wgtrain binary (default: $WGTRAIN or target/release/wgtrain)")
    p.add_argument("--storage", default="sqlite:///optuna.db", help="Optuna RDB storage URL")
    p.add_argument("--study", default="wgtrain", help="study name (created if missing)")
    p.add_argument("--trials", type=int, default=10, help="trials this process runs")
    p.add_argument("--sampler", default="TPESampler", help="Optuna sampler class")
    p.add_argument("--seed", type=int, default=None,
                   help="seed the sampler (trial i of this process uses seed + i)")
    p.add_argument("--val-split", type=float, default=0.1)
    p.add_argument("--workdir", default=None,
                   help="where the per-trial metrics files go (default: a temporary directory)")
    p.add_argument("--lr", type=distribution, default=distribution("1e-3:1"))
    p.add_argument("--weight-decay", type=distribution, default=distribution("1e-6:1e-2"))
    p.add_argument("--batch-size", type=distribution, default=None)
    p.add_argument("--momentum", type=distribution, default=None)
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="-- then extra flags for `wgtrain train`")
    a = p.parse_args()
    extra = a.train_args[1:] if a.train_args[:1] == ["--"] else a.train_args
    if a.val_split <= 0:
        p.error("--val-split must be > 0: trials are judged on the validation split")

    space = {name: getattr(a, name) for name in FLAGS if getattr(a, name) is not None}
    store = ["--storage", a.storage, "--study-name", a.study]
    optuna_cli("create-study", *store, "--direction", "maximize", "--skip-if-exists", "-q")
    workdir = a.workdir or tempfile.mkdtemp(prefix="wgtrain-optuna-")
    os.makedirs(workdir, exist_ok=True)

    for i in range(a.trials):
        ask = ["ask", *store, "--sampler", a.sampler, "--search-space", json.dumps(space),
               "-f", "json"]
        if a.seed is not None:
            ask += ["--sampler-kwargs", json.dumps({"seed": a.seed + i})]
        trial = json.loads(optuna_cli(*ask))
        number, params = trial["number"], trial["params"]
        metrics = os.path.join(workdir, f"trial-{number}.jsonl")
        cmd = [a.wgtrain, "train", "--val-split", str(a.val_split), "--metrics", metrics,
               "--quiet", *extra]
        for name, value in params.items():
            cmd += [FLAGS[name], flag_value(name, value)]
        shown = " ".join(f"{k}={v:.4g}" for k, v in params.items())
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            why = (run.stderr.strip().splitlines() or ["exit code %d" % run.returncode])[-1]
            print(f"trial {number}: {shown} -> failed: {why}", flush=True)
            optuna_cli("tell", *store, "--trial-number", str(number), "--state", "fail", "-q")
            continue
        value = final_val_accuracy(metrics)
        print(f"trial {number}: {shown} -> val_accuracy {value:.4f}", flush=True)
        optuna_cli("tell", *store, "--trial-number", str(number), "--values", repr(value),
                   "--state", "complete", "-q")

    try:
        best = json.loads(optuna_cli("best-trial", *store, "-f", "json"))
    except subprocess.CalledProcessError:
        sys.exit(f"study {a.study}: no trial has completed")
    print(json.dumps(best))


if __name__ == "__main__":
    main()
