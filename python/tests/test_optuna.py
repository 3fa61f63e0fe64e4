"""wgtrain.optuna: Optuna's trials K at a time as one population, every trial told
exactly once, with the study's own pruners acting on per-epoch values."""

import collections
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState

import wgtrain
import wgtrain.optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def space_from_params(epochs=3, **fixed):
    def space(trial):
        return wgtrain.RunConfig(
            lr=trial.suggest_float("lr", 1e-6, 1e9, log=True),
            batch_size=int(trial.suggest_categorical("batch_size", [32, 64])),
            hidden=[32], epochs=epochs, validation_split=0.2, **fixed)
    return space


def counting_tells(study):
    """Wraps study.tell to count tells per trial number."""
    counts = collections.Counter()
    tell = study.tell

    def counted(trial, *a, **kw):
        number = trial if isinstance(trial, int) else trial.number
        counts[number] += 1
        return tell(trial, *a, **kw)

    study.tell = counted
    return counts


def check_told_once(study, counts, n):
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == n, trials
    assert sorted(t.number for t in trials) == list(range(n))
    assert all(t.state.is_finished() for t in trials), [t.state for t in trials]
    assert all(counts[t.number] == 1 for t in trials), counts
    for t in trials:
        if t.state == TrialState.COMPLETE:
            steps = sorted(t.intermediate_values)
            assert steps == list(range(1, len(steps) + 1)), t
            assert t.value == t.intermediate_values[steps[-1]], t
    return {t.number: t for t in trials}


def test_median_pruner_prunes_running_members_and_slots_are_refilled(small):
    study = optuna.create_study(
        direction="maximize",
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0))
    # The first two (slow learners) complete together; then each slot is refilled. lr 0.2
    # learns faster than both, lr 1e-6 and 2e-6 hardly learn, lr 1e8 diverges.
    lrs = [0.02, 0.03, 1e-6, 0.2, 2e-6, 1e8]
    for lr in lrs:
        study.enqueue_trial({"lr": lr, "batch_size": 64})
    counts = counting_tells(study)
    lines = []
    wgtrain.optuna.optimize(study, space_from_params(), small, n_trials=6, population=2,
                            device="cpu", log=lines.append)
    trials = check_told_once(study, counts, 6)
    by_lr = {t.params["lr"]: t for t in trials.values()}
    for lr in (0.02, 0.03, 0.2):
        assert by_lr[lr].state == TrialState.COMPLETE, by_lr[lr]
        assert len(by_lr[lr].intermediate_values) == 3
    # Behind the median of the completed trials after their first epoch: pruned there.
    for lr in (1e-6, 2e-6):
        assert by_lr[lr].state == TrialState.PRUNED, by_lr[lr]
        assert list(by_lr[lr].intermediate_values) == [1]
    assert by_lr[1e8].state == TrialState.FAIL
    # One population of two slots served all six: later trials started in freed slots.
    assert {t.user_attrs["wgtrain_member"] for t in trials.values()} == {0, 1}
    assert by_lr[0.2].user_attrs["wgtrain_start_epoch"] == 3
    told = [line for line in lines if line.startswith("trial ")]
    assert len(told) == 6 and sum(line.startswith("population ") for line in lines) == 1
    # Trials that started with the population train exactly as their single runs: the
    # values reported are those of wgtrain.open(config) alone.
    single = wgtrain.open(small, space_from_params()(optuna.trial.FixedTrial(
        {"lr": 0.02, "batch_size": 64})), device="cpu", evaluate_test=False).fit()[0]
    assert [by_lr[0.02].intermediate_values[e] for e in (1, 2, 3)] == [
        r.val_accuracy for r in single]


def test_successive_halving_judges_members_while_they_run(small):
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=3),
        pruner=optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2))
    for lr in [0.2, 1e-6, 0.1, 3e-6, 0.05, 1e-5, 0.3, 2e-6]:
        study.enqueue_trial({"lr": lr, "batch_size": 64})
    counts = counting_tells(study)
    wgtrain.optuna.optimize(study, space_from_params(epochs=4), small, n_trials=8,
                            population=4, device="cpu")
    trials = check_told_once(study, counts, 8)
    states = collections.Counter(t.state for t in trials.values())
    assert states[TrialState.PRUNED] >= 2 and states[TrialState.COMPLETE] >= 1, states
    for t in trials.values():
        if t.state == TrialState.PRUNED:
            assert len(t.intermediate_values) < 4, t
        if t.params["lr"] < 1e-4:  # hopeless: below a better value at their first rung
            assert t.state == TrialState.PRUNED, t
            assert list(t.intermediate_values) == [1], t


def test_trials_that_cannot_share_a_stream_train_in_their_own_population(small):
    study = optuna.create_study(direction="maximize")
    for i in range(5):
        study.enqueue_trial({"lr": 0.1, "batch_size": [32, 64][i % 2]})
    counts = counting_tells(study)
    wgtrain.optuna.optimize(study, space_from_params(epochs=1), small, n_trials=5,
                            population=3, device="cpu")
    trials = check_told_once(study, counts, 5)
    assert all(t.state == TrialState.COMPLETE for t in trials.values())
    populations = collections.defaultdict(set)
    for t in trials.values():
        populations[t.user_attrs["wgtrain_population"]].add(t.params["batch_size"])
    assert len(populations) >= 2 and all(len(b) == 1 for b in populations.values()), populations


def test_an_error_in_the_space_fails_the_untold_trials_once_and_is_raised(small):
    study = optuna.create_study(direction="maximize")
    counts = counting_tells(study)
    inner = space_from_params(epochs=2)

    def space(trial):
        if trial.number == 2:
            raise RuntimeError("boom")
        return inner(trial)

    with pytest.raises(RuntimeError, match="boom"):
        wgtrain.optuna.optimize(study, space, small, n_trials=4, population=3, device="cpu")
    trials = check_told_once(study, counts, 3)
    assert all(t.state == TrialState.FAIL for t in trials.values())


def test_a_study_that_minimizes_is_refused_for_val_accuracy(small):
    study = optuna.create_study(direction="minimize")
    with pytest.raises(wgtrain.ConfigError, match="maximize"):
        wgtrain.optuna.optimize(study, space_from_params(), small, n_trials=1)
    assert study.get_trials() == []


def test_a_dead_workers_trial_is_failed_by_heartbeat_and_retried(small, tmp_path):
    storage = wgtrain.optuna.heartbeat_storage(f"sqlite:///{tmp_path / 'hb.db'}", 1)
    study = optuna.create_study(storage=storage, study_name="hb", direction="maximize")
    # A worker that asked a trial, beat once and died (what SIGKILL leaves behind).
    study.enqueue_trial({"lr": 0.1, "batch_size": 64})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna: heartbeats are meant for Study.optimize
        dead = study.ask()
    space_from_params(epochs=1)(dead)
    storage.record_heartbeat(dead._trial_id)
    time.sleep(3)  # past the grace period: its heartbeat is stale
    wgtrain.optuna.optimize(study, space_from_params(epochs=1), small, n_trials=2,
                            population=2, device="cpu")
    trials = study.get_trials(deepcopy=False)
    assert trials[0].state == TrialState.FAIL
    retries = [t for t in trials if wgtrain.optuna.retried_from(t) == 0]
    assert len(retries) == 1, trials
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == trials[0].params
    assert all(t.state.is_finished() for t in trials)
