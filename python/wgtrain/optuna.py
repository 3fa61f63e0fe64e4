"""Optuna's batched trials as one wgtrain population.

    import optuna, wgtrain, wgtrain.optuna

    def space(trial):
        return wgtrain.RunConfig(
            lr=trial.suggest_float("lr", 1e-3, 1.0, log=True),
            weight_decay=trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
            momentum=0.9, epochs=3, validation_split=0.1)

    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.MedianPruner())
    wgtrain.optuna.optimize(study, space, wgtrain.load_dataset("mnist"), n_trials=32,
                            population=8, device="cpu")

`optimize` asks the study for `population` trials, trains them together as one
population (one set of GPU dispatches per step, or the members in parallel on the CPU),
reports each member's validation metric to its trial after every epoch
(`trial.report(value, epoch)`, epochs counted from 1), asks the study's pruner
(`trial.should_prune()`) and freezes the members it prunes, refills every freed slot with
a newly asked trial, and tells every trial exactly once: COMPLETE with its last value,
PRUNED, or FAIL for a member whose loss diverged. Any sampler and pruner work (the pruner
sees the same intermediate values as with `study.optimize`).

Trials train together only when they share the minibatch stream (hidden sizes, batch
size, normalisation, seed, validation split, precision: `RunConfig.shares_stream`); a
trial that does not fit the running population waits for the next one, which opens when
the running one has no member left. Tuning batch size or width therefore trains a
population per value.

Several processes (machines) can share one study through an RDB storage. With a
heartbeat (`heartbeat_storage(url, 60)`: Optuna's `RDBStorage(url, heartbeat_interval=60,
grace_period=120)` with its retry callback), this module records
a heartbeat for every trial it holds (from a thread, while the epoch runs without the
GIL), and before each ask fails the trials of workers whose heartbeat stopped (killed,
even with SIGKILL, or cut off): the retry callback then queues a copy of each, with the
same parameters, which the next ask of any worker trains. Without a heartbeat a killed
worker's trials stay RUNNING. Ctrl-C or an error in this process tells its untold trials
FAIL on the way out (they are not retried).
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections import deque
from typing import Callable, Optional

import optuna
from optuna.trial import Trial, TrialState

import wgtrain

__all__ = ["optimize", "heartbeat_storage", "retried_from"]

_DIRECTIONS = {
    "val_accuracy": optuna.study.StudyDirection.MAXIMIZE,
    "val_loss": optuna.study.StudyDirection.MINIMIZE,
}


class _Heartbeat:
    """Records a heartbeat for every held trial every `interval` seconds, from a thread."""

    def __init__(self, storage, interval: float):
        self._storage = storage
        self._interval = interval
        self._ids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wgtrain-heartbeat",
                                        daemon=True)
        self._thread.start()

    def add(self, trial_id: int) -> None:
        with self._lock:
            self._ids.add(trial_id)
        self._storage.record_heartbeat(trial_id)

    def remove(self, trial_id: int) -> None:
        with self._lock:
            self._ids.discard(trial_id)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                ids = list(self._ids)
            for trial_id in ids:
                try:
                    self._storage.record_heartbeat(trial_id)
                except Exception:  # a lost connection: the next beat tries again
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _heartbeat_interval(study: optuna.Study) -> Optional[float]:
    """The storage's heartbeat interval, or None when it has no heartbeat."""
    # Optuna's integrations reach the storage the same way (there is no public property).
    get = getattr(study._storage, "get_heartbeat_interval", None)
    return get() if get is not None else None


class _Runner:
    """One `optimize` call: the trials it holds and the population training them."""

    def __init__(self, study, space, data, n_trials, population, device, metric, timeout,
                 log):
        self.study = study
        self.space = space
        self.data = data
        self.n_trials = n_trials
        self.k = population
        self.device = device
        self.metric = metric
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.log = log or (lambda line: None)
        self.asked = 0
        self.populations = 0
        self.open: dict[int, Trial] = {}
        interval = _heartbeat_interval(study)
        self.heartbeat = _Heartbeat(study._storage, interval) if interval else None

    def can_ask(self) -> bool:
        return self.asked < self.n_trials and (
            self.deadline is None or time.monotonic() < self.deadline)

    def ask(self):
        """Asks one trial and builds its configuration: `(trial, config)`, or None when
        the space pruned it (it is told PRUNED)."""
        with warnings.catch_warnings():
            # Optuna marks its heartbeat API experimental and warns that heartbeats are
            # meant for Study.optimize: this runner records them itself (_Heartbeat).
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            warnings.filterwarnings("ignore", message="Heartbeat of storage")
            if self.heartbeat is not None:
                optuna.storages.fail_stale_trials(self.study)
            trial = self.study.ask()
        self.asked += 1
        self.open[trial.number] = trial
        if self.heartbeat is not None:
            self.heartbeat.add(trial._trial_id)
        try:
            config = self.space(trial)
        except optuna.TrialPruned:
            self.tell(trial, TrialState.PRUNED, why="pruned by the space")
            return None
        if not isinstance(config, wgtrain.RunConfig):
            raise wgtrain.ConfigError(
                f"space(trial) returned {type(config).__name__}; return a wgtrain.RunConfig")
        if not config.validation_split > 0:
            raise wgtrain.ConfigError(
                "the trials' RunConfig has validation_split=0: trials are judged on the "
                "validation split (the test set is never looked at); give e.g. "
                "validation_split=0.1")
        return trial, config

    def tell(self, trial: Trial, state: TrialState, value: Optional[float] = None,
             why: str = "") -> None:
        self.study.tell(trial, values=value, state=state)
        del self.open[trial.number]
        if self.heartbeat is not None:
            self.heartbeat.remove(trial._trial_id)
        shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in trial.params.items())
        outcome = state.name if value is None else f"{state.name} {self.metric} {value:.4f}"
        self.log(f"trial {trial.number}: {shown} -> {outcome}{' (' + why + ')' if why else ''}")

    def next_fitting(self, pending: deque, first) -> Optional[tuple]:
        """The first pending trial that fits `first`'s stream, else a newly asked one that
        does (asking on while the asked ones do not fit and fewer than K wait)."""
        for i, (trial, config) in enumerate(pending):
            if config.shares_stream(first):
                del pending[i]
                return trial, config
        while self.can_ask() and len(pending) < self.k:
            got = self.ask()
            if got is None:
                continue
            if got[1].shares_stream(first):
                return got
            pending.append(got)
        return None

    def run(self) -> None:
        pending: deque = deque()
        while pending or self.can_ask():
            if not pending:
                got = self.ask()
                if got is not None:
                    pending.append(got)
                continue
            first = pending.popleft()
            group = [first]
            while len(group) < self.k:
                got = self.next_fitting(pending, first[1])
                if got is None:
                    break
                group.append(got)
            self.train(group, pending)

    def train(self, group: list, pending: deque) -> None:
        """Trains `group` as one population, refilling freed slots from `pending` and new
        asks, until no member trains."""
        pop = wgtrain.open(self.data, [c for _, c in group], self.device, evaluate_test=False)
        self.populations += 1
        self.log(f"population {self.populations}: trials "
                 f"{', '.join(str(t.number) for t, _ in group)} on {pop.describe()}")
        slots: list = list(group)
        stream = group[0][1]
        for m, (trial, _) in enumerate(slots):
            self.place(trial, m, 0)
        while pop.any_training:
            freed = []
            for r in pop.train_epoch():
                trial, _ = slots[r.member]
                if r.outcome == "diverged":
                    self.tell(trial, TrialState.FAIL, why=r.error)
                    freed.append(r.member)
                    continue
                value = getattr(r, self.metric)
                if value is None or not math.isfinite(value):
                    self.tell(trial, TrialState.FAIL, why=f"{self.metric} is {value}")
                    pop.freeze(r.member)
                    freed.append(r.member)
                    continue
                trial.report(value, r.epoch)
                if pop.status(r.member) == "done":
                    self.tell(trial, TrialState.COMPLETE, value)
                elif trial.should_prune():
                    pop.freeze(r.member)
                    self.tell(trial, TrialState.PRUNED, why=f"after epoch {r.epoch}")
                else:
                    continue
                freed.append(r.member)
            for m in freed:
                got = self.next_fitting(pending, stream)
                if got is None:
                    continue
                trial, config = got
                pop.restart(m, config)
                slots[m] = got
                self.place(trial, m, pop.epoch)

    def place(self, trial: Trial, member: int, epoch: int) -> None:
        """Records where a trial trains: its population (1, 2, ... in this call), slot and
        the population epoch it starts at."""
        trial.set_user_attr("wgtrain_population", self.populations)
        trial.set_user_attr("wgtrain_member", member)
        trial.set_user_attr("wgtrain_start_epoch", epoch)

    def close(self, why: str) -> None:
        """Tells every trial still held FAIL (once), stops the heartbeat."""
        for trial in list(self.open.values()):
            self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            del self.open[trial.number]
            self.log(f"trial {trial.number}: -> FAIL ({why})")
        if self.heartbeat is not None:
            self.heartbeat.close()


def heartbeat_storage(url: str, heartbeat: float, max_retry: int = 1
                      ) -> optuna.storages.RDBStorage:
    """An RDB storage (`url`: sqlite:///FILE, postgresql://..., mysql://...) whose trials
    beat every `heartbeat` seconds and are failed after `2 * heartbeat` without one, each
    failed one retried up to `max_retry` times (a copy with the same parameters, asked
    next by any worker): Optuna's RetryHeartbeatStaleTrialCallback (RetryFailedTrialCallback
    before Optuna 4.9)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
        if retry is not None:
            return optuna.storages.RDBStorage(
                url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
                heartbeat_stale_trial_callback=retry(max_retry=max_retry))
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat, grace_period=2 * heartbeat,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(max_retry=max_retry))


def retried_from(trial: optuna.trial.FrozenTrial) -> Optional[int]:
    """The number of the failed trial `trial` retries, or None."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) or \
            optuna.storages.RetryFailedTrialCallback
        return retry.retried_trial_number(trial)


def optimize(study: optuna.Study, space: Callable[[Trial], "wgtrain.RunConfig"],
             data: "wgtrain.Data", n_trials: int, *, population: int = 8,
             device: str = "auto", metric: str = "val_accuracy",
             timeout: Optional[float] = None,
             log: Optional[Callable[[str], None]] = None) -> None:
    """Runs `n_trials` trials of `study`, `population` at a time as one wgtrain population.

    `space(trial)` suggests the trial's hyperparameters and returns its `wgtrain.RunConfig`
    (with `validation_split > 0`: trials are judged on it, never on the test set; it may
    raise `optuna.TrialPruned`). `metric`: "val_accuracy" (the study must maximize) or
    "val_loss" (minimize), reported after every epoch. `device`: as `wgtrain.open`.
    `timeout`: seconds after which no new trial is asked (the held ones finish). `log`:
    called with one line per trial told (`trial N: params -> STATE value`) and one per
    population opened (`population P: trials N, M on DEVICE`).

    Every trial asked is told exactly once: COMPLETE (its final value), PRUNED (by the
    study's pruner after an epoch, or by `space`), or FAIL (its loss diverged; or, on the
    way out, when an exception or Ctrl-C stops the call, which is then re-raised).
    """
    if metric not in _DIRECTIONS:
        raise wgtrain.ConfigError(f"metric={metric!r} is not 'val_accuracy' or 'val_loss'")
    if len(study.directions) != 1 or study.directions[0] != _DIRECTIONS[metric]:
        want = _DIRECTIONS[metric].name.lower()
        raise wgtrain.ConfigError(
            f"metric={metric!r} needs a single-objective study that will {want} it; this "
            f"study's directions are {[d.name.lower() for d in study.directions]}")
    if population < 1 or n_trials < 0:
        raise wgtrain.ConfigError(
            f"population={population}, n_trials={n_trials}: need population >= 1 and "
            f"n_trials >= 0")
    runner = _Runner(study, space, data, n_trials, population, device, metric, timeout, log)
    why = "optimize stopped before telling it"
    try:
        runner.run()
    except BaseException as e:
        why = f"optimize stopped by {type(e).__name__}"
        raise
    finally:
        runner.close(why)
