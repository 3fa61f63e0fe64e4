#!/usr/bin/env python3
"""Tune wgtrain with Optuna: ask the study for trials, train them with wgtrain, tell it.

One trial per process (the default): each trial asks the study for hyperparameters,
trains them with `wgtrain train ... --val-split 0.1 --metrics FILE` as a subprocess, reads
the final epoch's `val_accuracy` from the metrics file and tells it to the study. A trial
whose run fails (e.g. a non-finite loss at a too-high learning rate) is told FAIL.

Populations (`--population K`): the script asks the study for K trials at once, writes
them to a `wgtrain sweep --configs FILE` file and trains them in one wgtrain process (as
one population when K > 1), then reads that sweep's trials.json and tells each trial its
final validation accuracy: COMPLETE, PRUNED (stopped by the sweep's pruner; its per-epoch
accuracies are reported first, so the last one becomes its value) or FAIL (diverged). If
the wgtrain process fails or dies, all K trials are told FAIL; if this script stops
(an error, Ctrl-C, SIGTERM), the trials it asked for and has not told yet are told FAIL on
the way out. Every trial asked is told exactly once. Each population's files are kept in
WORKDIR/pop-N (N: its first trial number): configs.json, optuna_trials.json (the
trial numbers, in the order of configs.json) and the sweep's --out files.

The study lives in an RDB storage (SQLite by default; PostgreSQL or MySQL to share it
between machines), so several copies of this script can run at once on one study, on one
machine or many, and a search can be resumed:

    pip install optuna                # and psycopg2-binary for PostgreSQL
    cargo build --release
    python3 examples/optuna_sweep.py --trials 20 --storage sqlite:///optuna.db \\
        --lr 1e-3:1 --weight-decay 1e-6:1e-2 -- --device cpu --epochs 3 --train-subset 10000
    python3 examples/optuna_sweep.py --trials 32 --population 8 \\
        --storage postgresql://user:password@dbhost/optuna -- --device gpu --epochs 3

Search-space flags take a log-uniform range `lo:hi` (FloatDistribution, log=True) or a
list `a,b,c` (CategoricalDistribution). Everything after `--` goes to `wgtrain train`
unchanged (to `wgtrain sweep` with --population, where --hidden and --epochs give the
values of the fields this script does not tune, and the sweep's pruner compares the
trials of one population only). The tuned value is validation accuracy only: the test set
is never looked at. After the trials, the study's best trial is printed as JSON (the
last line of stdout).
"""

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

try:
    import optuna
except ImportError:
    sys.exit("this example needs Optuna: pip install optuna")

# Flags of `wgtrain train` this script can tune, by parameter name (the same names are
# the fields of a `wgtrain sweep --configs` entry).
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


def param_value(name, value):
    """A parameter as wgtrain takes it: batch sizes are integers."""
    if name in INTEGER:
        return int(round(value))
    return float(value)


def flag_value(name, value):
    return str(param_value(name, value)) if name in INTEGER else repr(float(value))


def open_storage(url):
    """The study's RDB storage. Workers that start together on a new database all try to
    create its tables; the losers of that race get an error from the database and retry."""
    if not url.startswith(("sqlite", "postgresql", "mysql")):
        return url
    last = None
    for attempt in range(8):
        try:
            return optuna.storages.RDBStorage(url)
        except ImportError:  # no database driver (psycopg2 for PostgreSQL): no retry helps
            raise
        except Exception as e:  # sqlalchemy errors of the table-creation race
            last = e
            print(f"opening the storage: {e.__class__.__name__}; retrying", file=sys.stderr,
                  flush=True)
            time.sleep(0.2 + random.random() * (attempt + 1) * 0.3)
    raise last


class Asked:
    """The trials this process asked for and has not told yet; `fail_all` tells each of
    them FAIL once (used when wgtrain dies and on the way out of the script)."""

    def __init__(self, study):
        self.study = study
        self.open = {}

    def ask(self, sampler, space):
        self.study.sampler = sampler
        trial = self.study.ask(space)
        self.open[trial.number] = trial
        return trial

    def tell(self, number, **kwargs):
        self.study.tell(number, **kwargs)
        del self.open[number]

    def fail_all(self, why):
        for number in list(self.open):
            print(f"trial {number}: told FAIL ({why})", flush=True)
            # skip_if_finished: a trial whose tell reached the database before an error
            # (or that another process finished) is not told twice.
            self.study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            del self.open[number]


def failure(run):
    """Why a wgtrain process failed: its signal, else its first `error` line on stderr
    (clap puts usage after it), else its last line."""
    if run.returncode < 0:
        return f"killed by signal {-run.returncode}"
    lines = run.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("error")]
    return (errors or lines or [f"exit code {run.returncode}"])[0 if errors else -1]


def describe(params):
    return " ".join(f"{k}={v:.4g}" for k, v in params.items())


def run_one(a, asked, sampler, space, extra, workdir):
    """One trial, one `wgtrain train` process (the script without --population)."""
    trial = asked.ask(sampler, space)
    number, params = trial.number, trial.params
    metrics = os.path.join(workdir, f"trial-{number}.jsonl")
    cmd = [a.wgtrain, "train", "--val-split", str(a.val_split), "--metrics", metrics,
           "--quiet", *extra]
    for name, value in params.items():
        cmd += [FLAGS[name], flag_value(name, value)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"trial {number}: {describe(params)} -> failed: {failure(run)}", flush=True)
        asked.tell(number, state=optuna.trial.TrialState.FAIL)
        return
    value = final_val_accuracy(metrics)
    print(f"trial {number}: {describe(params)} -> val_accuracy {value:.4f}", flush=True)
    asked.tell(number, values=value, state=optuna.trial.TrialState.COMPLETE)


def run_population(a, asked, samplers, space, extra, workdir):
    """`len(samplers)` trials in one `wgtrain sweep --configs FILE` process."""
    trials = [asked.ask(s, space) for s in samplers]
    k = len(trials)
    pop = os.path.join(workdir, f"pop-{trials[0].number}")
    os.makedirs(pop, exist_ok=True)
    configs = os.path.join(pop, "configs.json")
    with open(configs, "w", encoding="utf-8") as f:
        json.dump([{n: param_value(n, v) for n, v in t.params.items()} for t in trials], f)
    with open(os.path.join(pop, "optuna_trials.json"), "w", encoding="utf-8") as f:
        json.dump([t.number for t in trials], f)
    out = os.path.join(pop, "sweep")
    cmd = [a.wgtrain, "sweep", "--configs", configs, "--out", out, "--val-split",
           str(a.val_split), "--quiet"]
    if k > 1:
        cmd += ["--population", str(k)]
    cmd += extra
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        print(f"population of trials {[t.number for t in trials]}: wgtrain failed: "
              f"{failure(run)}", flush=True)
        asked.fail_all("its wgtrain process failed")
        return
    with open(os.path.join(out, "trials.json"), encoding="utf-8") as f:
        results = {r["id"]: r for r in json.load(f)}
    for i, trial in enumerate(trials):
        r = results.get(i)
        shown = f"trial {trial.number}: {describe(trial.params)} ->"
        if r is None:
            print(f"{shown} failed: not in {out}/trials.json", flush=True)
            asked.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            continue
        for epoch in r["history"]:
            acc = epoch.get("val_accuracy")
            if acc is not None and math.isfinite(acc):
                trial.report(acc, epoch["epoch"])
        if r["status"] == "complete":
            print(f"{shown} val_accuracy {r['val_accuracy']:.4f}", flush=True)
            asked.tell(trial.number, values=r["val_accuracy"],
                       state=optuna.trial.TrialState.COMPLETE)
        elif r["status"] == "pruned":
            print(f"{shown} pruned after epoch {len(r['history'])}", flush=True)
            asked.tell(trial.number, state=optuna.trial.TrialState.PRUNED)
        else:
            print(f"{shown} diverged: {r.get('note') or 'non-finite loss'}", flush=True)
            asked.tell(trial.number, state=optuna.trial.TrialState.FAIL)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wgtrain", default=os.environ.get("WGTRAIN", "target/release/wgtrain"),
                   help="the wgtrain binary (default: $WGTRAIN or target/release/wgtrain)")
    p.add_argument("--storage", default="sqlite:///optuna.db",
                   help="Optuna RDB storage URL (sqlite:///FILE, postgresql://..., mysql://...)")
    p.add_argument("--study", default="wgtrain", help="study name (created if missing)")
    p.add_argument("--trials", type=int, default=10, help="trials this process runs")
    p.add_argument("--population", type=int, default=None, metavar="K",
                   help="ask K trials at a time and train them in one `wgtrain sweep "
                        "--configs` process (one population when K > 1)")
    p.add_argument("--sampler", default="TPESampler", help="Optuna sampler class")
    p.add_argument("--seed", type=int, default=None,
                   help="seed the sampler (trial i of this process uses seed + i)")
    p.add_argument("--val-split", type=float, default=0.1)
    p.add_argument("--workdir", default=None,
                   help="where the per-trial files go (default: a temporary directory)")
    p.add_argument("--lr", type=distribution, default=distribution("1e-3:1"))
    p.add_argument("--weight-decay", type=distribution, default=distribution("1e-6:1e-2"))
    p.add_argument("--batch-size", type=distribution, default=None)
    p.add_argument("--momentum", type=distribution, default=None)
    p.add_argument("train_args", nargs=argparse.REMAINDER,
                   help="-- then extra flags for `wgtrain train` (`wgtrain sweep` with "
                        "--population)")
    a = p.parse_args()
    extra = a.train_args[1:] if a.train_args[:1] == ["--"] else a.train_args
    if a.val_split <= 0:
        p.error("--val-split must be > 0: trials are judged on the validation split")
    if a.population is not None and a.population < 1:
        p.error("--population must be at least 1")
    sampler_class = getattr(optuna.samplers, a.sampler, None)
    if sampler_class is None:
        p.error(f"--sampler {a.sampler}: optuna.samplers has no such class")

    space = {name: optuna.distributions.json_to_distribution(json.dumps(getattr(a, name)))
             for name in FLAGS if getattr(a, name) is not None}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=open_storage(a.storage), study_name=a.study,
                                direction="maximize", load_if_exists=True)
    workdir = a.workdir or tempfile.mkdtemp(prefix="wgtrain-optuna-")
    os.makedirs(workdir, exist_ok=True)
    # SIGTERM (a cluster scheduler, `kill`) unwinds like Ctrl-C, through the `finally`.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))

    # One sampler per ask when seeded (trial i: seed + i), as `optuna ask` does; else one.
    unseeded = sampler_class()
    sampler = (lambda i: sampler_class(seed=a.seed + i)) if a.seed is not None \
        else (lambda i: unseeded)
    asked = Asked(study)
    try:
        i = 0
        while i < a.trials:
            if a.population is None:
                run_one(a, asked, sampler(i), space, extra, workdir)
                i += 1
            else:
                k = min(a.population, a.trials - i)
                run_population(a, asked, [sampler(i + j) for j in range(k)], space, extra,
                               workdir)
                i += k
    finally:
        asked.fail_all("this script stopped before telling it")

    store = ["--storage", a.storage, "--study-name", a.study]
    try:
        best = json.loads(optuna_cli("best-trial", *store, "-f", "json"))
    except subprocess.CalledProcessError:
        sys.exit(f"study {a.study}: no trial has completed")
    print(json.dumps(best))


if __name__ == "__main__":
    main()
