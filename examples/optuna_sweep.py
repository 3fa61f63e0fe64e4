#!/usr/bin/env python3
"""Tune wgtrain with Optuna: batched trials, K at a time as one population, pruned per epoch.

Uses the `wgtrain` Python package (`pip install ./python optuna`; `psycopg2-binary` for
PostgreSQL): `wgtrain.optuna.optimize` asks the study for K trials, trains them together
in this process (one population on the GPU or the CPU), reports every member's validation
accuracy to its trial after each epoch so the study's pruner can stop it, refills freed
slots with new trials, and tells every trial exactly once (COMPLETE, PRUNED, or FAIL for
a diverged member). The test set is never looked at.

The study lives in an RDB storage (SQLite by default; PostgreSQL or MySQL to share it
between machines), so several copies of this script can run at once on one study, and
a search can be resumed. With `--heartbeat S` each worker records a heartbeat for its
trials every S seconds; a worker that dies (even by SIGKILL) has its trials failed by
the others after 2 S and retried once with the same parameters
(`wgtrain.optuna.heartbeat_storage`, Optuna's retry callback):

    python3 examples/optuna_sweep.py --storage sqlite:///optuna.db --trials 32 \\
        --population 8 --device cpu --epochs 3
    python3 examples/optuna_sweep.py --storage postgresql://user:password@dbhost/optuna \\
        --study mnist --trials 32 --population 8 --heartbeat 30

Search-space flags take a log-uniform range `lo:hi` or a list `a,b,c` (categorical);
`--batch-size` takes integers.
Each trial told prints one line `trial N: params -> STATE [val_accuracy V]`; at the end
the study's best trial is printed as JSON (the last line of stdout) and a summary of this
worker's trials goes to stderr.
"""

import argparse
import json
import signal
import sys
import time
import warnings

try:
    import optuna
except ImportError:
    sys.exit("this example needs Optuna: pip install optuna")
try:
    import wgtrain
    import wgtrain.optuna
except ImportError:
    sys.exit("this example needs the wgtrain package: pip install ./python")


def distribution(text, integer=False):
    """`lo:hi` -> ("log", lo, hi); `a,b,c` -> ("list", [a, b, c]). With `integer` (batch
    sizes) the values are ints, so Optuna suggests, stores and prints 64, not 64.0."""
    number = int if integer else float
    try:
        if ":" in text:
            lo, hi = (number(v) for v in text.split(":", 1))
            if not 0 < lo < hi:
                raise argparse.ArgumentTypeError(f"range {text}: need 0 < lo < hi (log-uniform)")
            return ("log", lo, hi)
        return ("list", [number(v) for v in text.split(",")])
    except ValueError:
        kind = "integers" if integer else "numbers"
        raise argparse.ArgumentTypeError(f"{text}: give {kind} as lo:hi or a,b,c") from None


def integers(text):
    """`distribution` of integers."""
    return distribution(text, integer=True)


def suggest(trial, name, d):
    if d[0] == "log":
        if isinstance(d[1], int):
            return trial.suggest_int(name, d[1], d[2], log=True)
        return trial.suggest_float(name, d[1], d[2], log=True)
    return trial.suggest_categorical(name, d[1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--storage", default="sqlite:///optuna.db",
                   help="Optuna RDB storage URL (sqlite:///FILE, postgresql://..., mysql://...)")
    p.add_argument("--study", default="wgtrain", help="study name (created if missing)")
    p.add_argument("--trials", type=int, default=10, help="trials this worker runs")
    p.add_argument("--population", type=int, default=8, metavar="K",
                   help="trials trained at once as one population (default 8)")
    p.add_argument("--device", default="auto", choices=["auto", "gpu", "cpu"])
    p.add_argument("--data", default=None, help="a directory of the dataset's IDX files")
    p.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist, ... (default mnist)")
    p.add_argument("--train-subset", type=int, default=None, metavar="N",
                   help="train on the first N training samples only")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--hidden", default="256", help="hidden widths, e.g. 512,256")
    p.add_argument("--val-split", type=float, default=0.1)
    p.add_argument("--lr", type=distribution, default=distribution("1e-3:1"))
    p.add_argument("--weight-decay", type=distribution, default=distribution("1e-6:1e-2"))
    p.add_argument("--momentum", type=distribution, default=None)
    p.add_argument("--batch-size", type=integers, default=integers("64"))
    p.add_argument("--pruner", default="median", choices=["median", "halving", "none"])
    p.add_argument("--sampler", default="TPESampler", help="an optuna.samplers class")
    p.add_argument("--seed", type=int, default=None, help="seed the sampler")
    p.add_argument("--heartbeat", type=float, default=None, metavar="S",
                   help="record a heartbeat every S s; a dead worker's trials are failed "
                        "after 2 S and retried once (RDB storage)")
    a = p.parse_args()
    if a.val_split <= 0:
        p.error("--val-split must be > 0: trials are judged on the validation split")
    if a.population < 1:
        p.error("--population must be at least 1")
    sampler_class = getattr(optuna.samplers, a.sampler, None)
    if sampler_class is None:
        p.error(f"--sampler {a.sampler}: optuna.samplers has no such class")
    hidden = [int(h) for h in a.hidden.split(",")]

    data = wgtrain.load_dataset(a.dataset, dir=a.data)
    if a.train_subset is not None:
        data = wgtrain.from_numpy(
            data.images("train")[:a.train_subset], data.labels("train")[:a.train_subset],
            data.images("test"), data.labels("test"), image_shape=data.image_shape,
            classes=data.classes)

    def space(trial):
        return wgtrain.RunConfig(
            lr=suggest(trial, "lr", a.lr),
            weight_decay=suggest(trial, "weight_decay", a.weight_decay),
            momentum=suggest(trial, "momentum", a.momentum) if a.momentum else 0.0,
            batch_size=suggest(trial, "batch_size", a.batch_size),
            hidden=hidden, epochs=a.epochs, validation_split=a.val_split)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = a.storage
    if a.heartbeat is not None:
        storage = wgtrain.optuna.heartbeat_storage(a.storage, a.heartbeat, max_retry=1)
    pruner = {"median": optuna.pruners.MedianPruner(),
              "halving": optuna.pruners.SuccessiveHalvingPruner(),
              "none": optuna.pruners.NopPruner()}[a.pruner]
    sampler = sampler_class(seed=a.seed) if a.seed is not None else sampler_class()
    study = optuna.create_study(storage=storage, study_name=a.study, direction="maximize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    # SIGTERM (a scheduler, `kill`) unwinds like Ctrl-C: the untold trials are told FAIL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    told = []

    def log(line):  # one line per trial told, one per population opened
        if line.startswith("trial "):
            told.append(line)
        print(line, flush=True)

    start = time.monotonic()
    wgtrain.optuna.optimize(study, space, data, n_trials=a.trials, population=a.population,
                            device=a.device, log=log)
    seconds = time.monotonic() - start
    states = {s: sum(f"-> {s}" in line for line in told) for s in ("COMPLETE", "PRUNED", "FAIL")}
    try:
        best = study.best_trial
    except ValueError:
        sys.exit(f"study {a.study}: no trial has completed")
    print(f"{len(told)} trials in {seconds:.1f} s: {states['COMPLETE']} complete, "
          f"{states['PRUNED']} pruned, {states['FAIL']} failed; best val_accuracy "
          f"{best.value:.4f} (trial {best.number})", file=sys.stderr)
    print(json.dumps({"number": best.number, "state": best.state.name, "value": best.value,
                      "params": best.params}))


if __name__ == "__main__":
    main()
