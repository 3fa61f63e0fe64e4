"""The package's surface: numpy data in, epochs, evaluation, parameters out under
nn.Sequential names, freeze/restart/copy, save, errors, Ctrl-C and the GIL."""

import os
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

import wgtrain
from conftest import forward


def cfg(**kw):
    base = dict(lr=0.1, epochs=2, hidden=[32], batch_size=64, validation_split=0.1)
    base.update(kw)
    return wgtrain.RunConfig(**base)


def test_numpy_data_trains_and_its_weights_give_wgtrains_logits(small, arrays):
    run = wgtrain.open(small, cfg(), device="cpu")
    history = run.fit()
    assert [r.epoch for r in history[0]] == [1, 2]
    assert all(r.outcome == "trained" for r in history[0])
    state = run.state_dict()
    # nn.Sequential(nn.Linear(784, 32), nn.ReLU(), nn.Linear(32, 10))'s names and shapes.
    assert {k: v.shape for k, v in state.items()} == {
        "0.weight": (32, 784), "0.bias": (32,), "2.weight": (10, 32), "2.bias": (10,)}
    assert all(v.dtype == np.float32 for v in state.values())
    _, _, xte, yte = arrays
    want = forward(state, xte)
    got = run.logits(0, "test")
    assert got.shape == (500, 10)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # The accuracy wgtrain evaluates is the argmax of those logits against the labels.
    (loss, acc), = run.evaluate("test")
    assert acc == np.mean(np.argmax(got, axis=1) == yte)
    assert acc == history[0][-1].test_accuracy
    shifted = want - want.max(axis=1, keepdims=True)
    ce = -(shifted[np.arange(500), yte] - np.log(np.exp(shifted).sum(axis=1)))
    assert abs(loss - ce.mean()) < 1e-4
    assert acc > 0.5  # it learned (chance is 0.1)


def test_a_population_member_trains_exactly_as_its_single_run(small):
    configs = [cfg(lr=lr, momentum=m) for lr, m in [(0.05, 0.0), (0.1, 0.9), (0.2, 0.5)]]
    pop = wgtrain.open(small, configs, device="cpu")
    pop.fit()
    for k, c in enumerate(configs):
        single = wgtrain.open(small, c, device="cpu")
        single.fit()
        for name, v in single.state_dict().items():
            assert np.array_equal(pop.state_dict(k)[name], v), (k, name)


def test_state_dict_round_trips_and_load_refuses_a_wrong_one(small):
    a = wgtrain.open(small, cfg(epochs=1), device="cpu")
    a.fit()
    b = wgtrain.open(small, cfg(epochs=1, seed=2), device="cpu")
    b.load_state_dict(a.state_dict())
    assert np.array_equal(b.logits(0), a.logits(0))
    bad = dict(a.state_dict())
    del bad["2.bias"]
    bad["4.weight"] = np.zeros((10, 32), np.float32)
    with pytest.raises(wgtrain.ConfigError, match=r"missing \[\"2.bias\"\].*unexpected \[\"4.weight\"\]"):
        b.load_state_dict(bad)
    wrong = dict(a.state_dict())
    wrong["0.weight"] = wrong["0.weight"].T
    with pytest.raises(wgtrain.ConfigError, match=r"0.weight has shape \[784, 32\]"):
        b.load_state_dict(wrong)


def test_save_writes_safetensors_holding_the_state_dict(small, tmp_path):
    run = wgtrain.open(small, cfg(epochs=1), device="cpu")
    run.fit()
    path = tmp_path / "m.safetensors"
    run.save(path)
    loaded = load_file(str(path))
    state = run.state_dict()
    assert sorted(loaded) == sorted(state)
    for k in state:
        assert np.array_equal(loaded[k], state[k]), k


def test_freeze_restart_and_copy_member(small):
    pop = wgtrain.open(small, [cfg(lr=0.05, epochs=3), cfg(lr=0.2, epochs=3)], device="cpu")
    first = pop.train_epoch()
    assert [r.member for r in first] == [0, 1]
    pop.copy_member(0, 1)
    for k, v in pop.state_dict(0).items():
        assert np.array_equal(pop.state_dict(1)[k], v), k
    pop.freeze(1)
    frozen = pop.state_dict(1)
    assert pop.status(1) == "frozen"
    assert [r.member for r in pop.train_epoch()] == [0]
    for k, v in frozen.items():
        assert np.array_equal(pop.state_dict(1)[k], v), k
    pop.restart(1, cfg(lr=0.1, epochs=1, init_seed=7))
    reports = pop.train_epoch()
    assert [(r.member, r.epoch) for r in reports] == [(0, 3), (1, 1)]
    assert pop.status(0) == "done" and pop.status(1) == "done"
    assert not pop.any_training
    with pytest.raises(wgtrain.ConfigError, match="hidden sizes"):
        pop.restart(1, cfg(hidden=[16]))


def test_a_diverged_member_is_reported_and_the_others_go_on(small):
    pop = wgtrain.open(small, [cfg(lr=0.1, epochs=1), cfg(lr=1e8, epochs=1)], device="cpu")
    reports = pop.train_epoch()
    assert reports[0].outcome == "trained"
    assert reports[1].outcome == "diverged"
    assert "non-finite" in reports[1].error or "exploded" in reports[1].error
    assert pop.status(1).startswith("diverged")


def test_the_gpu_path_trains_as_the_cpu_path(small):
    c = cfg(epochs=1)
    gpu = wgtrain.open(small, c, device="gpu")
    cpu = wgtrain.open(small, c, device="cpu")
    assert gpu.device == "gpu" and cpu.device == "cpu"
    g, = gpu.train_epoch()
    p, = cpu.train_epoch()
    assert abs(g.train_loss - p.train_loss) < 1e-4
    assert abs(g.test_loss - p.test_loss) < 1e-4
    np.testing.assert_allclose(gpu.logits(0), cpu.logits(0), rtol=1e-3, atol=1e-3)


def test_bad_input_raises_one_clear_error(arrays, small):
    xtr, ytr, xte, yte = arrays
    with pytest.raises(wgtrain.DataError, match="dtype float64; give uint8"):
        wgtrain.from_numpy(xtr / 255.0, ytr, xte, yte)
    with pytest.raises(wgtrain.DataError, match=r"train_labels\[3\] is 12 but classes=10"):
        y = ytr.copy()
        y[3] = 12
        wgtrain.from_numpy(xtr, y, xte, yte, classes=10)
    with pytest.raises(wgtrain.DataError, match="has 1999 labels"):
        wgtrain.from_numpy(xtr, ytr[:-1], xte, yte)
    with pytest.raises(wgtrain.ConfigError, match="learning rate"):
        wgtrain.RunConfig(lr=-1.0)
    assert issubclass(wgtrain.ConfigError, ValueError)
    with pytest.raises(wgtrain.ConfigError, match="batch size"):
        wgtrain.open(small, cfg(batch_size=5000), device="cpu")
    with pytest.raises(wgtrain.ConfigError, match='device="tpu"'):
        wgtrain.open(small, cfg(), device="tpu")
    with pytest.raises(wgtrain.ConfigError, match="step_size"):
        wgtrain.RunConfig(lr_schedule="step")
    with pytest.raises(wgtrain.DataError, match="no such directory"):
        wgtrain.load_dataset("mnist", dir="/nonexistent-wgtrain-dir", download=False)


MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def data_error(**kw) -> str:
    with pytest.raises(wgtrain.DataError) as e:
        wgtrain.load_dataset("mnist", download=False, **kw)
    return str(e.value)


def assert_names_python_fixes(msg: str):
    """The fixes a pip-only user can apply: the CLI's flags are not theirs."""
    assert "dir=" in msg and "MNIST_DIR" in msg, msg
    assert 'wgtrain.load_dataset("mnist")' in msg and "download=True" in msg, msg
    assert "--data" not in msg, msg


def test_missing_mnist_names_the_python_fix_and_which_problem(tmp_path, monkeypatch):
    # Regression (newcomer): the message named --data and `wgtrain download` (the CLI's)
    # and said "is missing files" for a directory that does not exist.
    nowhere = tmp_path / "nowhere"
    msg = data_error(dir=nowhere)
    assert f'dir="{nowhere}": no such directory.' in msg, msg
    assert "missing files" not in msg, msg
    assert_names_python_fixes(msg)
    assert ("with the wgtrain command-line tool installed, "
            f"`wgtrain download mnist --dir {nowhere}`") in msg, msg

    # An existing directory with two of the four files: it names the two missing.
    half = tmp_path / "half"
    half.mkdir()
    src = os.environ["MNIST_DIR"]
    for f in MNIST_FILES[:2]:
        name = f if os.path.exists(os.path.join(src, f)) else f + ".gz"
        os.symlink(os.path.join(src, name), half / name)
    msg = data_error(dir=half)
    assert (f'dir="{half}" is missing files: t10k-images-idx3-ubyte, '
            "t10k-labels-idx1-ubyte (each raw or .gz)") in msg, msg
    assert "no such directory" not in msg, msg
    assert_names_python_fixes(msg)

    # The same two cases through $MNIST_DIR (read when dir is not given).
    monkeypatch.setenv("MNIST_DIR", str(nowhere))
    msg = data_error()
    assert f'MNIST_DIR="{nowhere}"' in msg and ": no such directory." in msg, msg
    assert 'del os.environ["MNIST_DIR"]' in msg, msg
    assert_names_python_fixes(msg)
    monkeypatch.setenv("MNIST_DIR", str(half))
    msg = data_error()
    assert (f'MNIST_DIR="{half}"' in msg and "is missing files: t10k-images-idx3-ubyte, "
            "t10k-labels-idx1-ubyte (each raw or .gz)") in msg, msg
    assert_names_python_fixes(msg)


def load_mnist_elsewhere(tmp_path, cache, download: bool) -> str:
    """The DataError of load_dataset("mnist") in a fresh process with no MNIST_DIR, the
    working directory `tmp_path` and the cache folder under `cache` (XDG_CACHE_HOME)."""
    env = {k: v for k, v in os.environ.items() if k != "MNIST_DIR"}
    env["XDG_CACHE_HOME"] = str(cache)
    code = textwrap.dedent(f"""
        import wgtrain
        try:
            wgtrain.load_dataset("mnist", download={download})
        except wgtrain.DataError as e:
            print(e)
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=True).stdout


def test_mnist_found_nowhere_with_download_false_names_download_true(tmp_path):
    cache = tmp_path / "cache" / "wgtrain" / "mnist"
    out = load_mnist_elsewhere(tmp_path, tmp_path / "cache", download=False)
    assert out.startswith(f"MNIST files not found: none of data/mnist, {cache} holds"), out
    assert f"download=True (the default) to download them into {cache}" in out, out
    assert_names_python_fixes(out)


def test_an_io_error_carries_the_os_reason(tmp_path):
    # Regression: the Python message was "cannot access PATH" alone; the OS error (the
    # library error's source) was dropped. Here the cache folder cannot be created.
    (tmp_path / "file").write_text("")
    out = load_mnist_elsewhere(tmp_path, tmp_path / "file", download=True)
    assert out.startswith(f"cannot access {tmp_path / 'file' / 'wgtrain' / 'mnist'}: "
                          "Not a directory"), out


# The public API as documented (the package docstring, the README's "Python" section).
DOCUMENTED_API = {"RunConfig", "Data", "Population", "EpochReport", "load_dataset",
                  "from_numpy", "open", "WgtrainError", "ConfigError", "DataError",
                  "NoAdapterError", "DeviceError", "CheckpointError", "DivergedError"}


def test_dir_shows_the_public_api_only():
    # Regression (newcomer): dir(wgtrain) and tab completion listed os, np, dataclass,
    # Optional, ... (the package's own imports) beside the API.
    assert set(wgtrain.__all__) == DOCUMENTED_API
    assert len(wgtrain.__all__) == len(DOCUMENTED_API)
    public = {n for n in dir(wgtrain) if not n.startswith("_")}
    helpers = {"os", "np", "numpy", "dataclass", "annotations", "Iterator", "Mapping",
               "Optional", "Sequence", "Union"}
    assert not public & helpers, sorted(public & helpers)
    # What is left is the API and the optional submodule wgtrain.optuna, once imported.
    assert public - DOCUMENTED_API <= {"optuna"}, sorted(public - DOCUMENTED_API)
    assert {"__version__", "__doc__", "__name__"} <= set(dir(wgtrain))
    for name in DOCUMENTED_API:
        assert getattr(wgtrain, name) is not None
    namespace = {}
    exec("from wgtrain import *", namespace)
    assert DOCUMENTED_API <= set(namespace)


def test_run_config_round_trips_through_its_dict():
    c = wgtrain.RunConfig(lr=0.05, momentum=0.9, nesterov=True, lr_schedule="cosine",
                          T_max=5, hidden=[64, 32], normalize=(0.1307, 0.3081))
    assert wgtrain.RunConfig(**c.to_dict()) == c
    assert c.replace(lr=0.2).lr == 0.2 and c.replace(lr=0.2).momentum == 0.9
    assert c.shares_stream(c.replace(lr=0.3, weight_decay=1e-3, epochs=2))
    assert not c.shares_stream(c.replace(batch_size=32))
    # torch.optim.SGD's defaults.
    d = wgtrain.RunConfig()
    assert (d.lr, d.momentum, d.dampening, d.weight_decay, d.nesterov) == (1e-3, 0, 0, 0, False)


def _run(code, env=None):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=600)


def test_no_adapter_raises_no_adapter_error_naming_device_cpu():
    # A fresh process: the GPU is opened once per process.
    out = _run("""
        import wgtrain
        import numpy as np
        x = np.array([[0, 255]] * 4, dtype=np.uint8)
        data = wgtrain.from_numpy(x, [0, 1, 0, 1], x[:1], [0])
        try:
            wgtrain.open(data, wgtrain.RunConfig(batch_size=2, hidden=[2]), device="gpu")
        except wgtrain.NoAdapterError as e:
            print("raised:", e)
    """, env={"WGPU_ADAPTER_NAME": "no-such-adapter-anywhere"})
    assert out.returncode == 0, out.stderr
    assert "raised: no GPU adapter found" in out.stdout, out.stdout + out.stderr
    assert 'device="cpu"' in out.stdout


def test_ctrl_c_raises_keyboard_interrupt_at_a_step_boundary(mnist):
    # Issue 24: Ctrl-C during an epoch. A thread sends SIGINT to the process 1 s into an
    # epoch of full MNIST through a 784-1024-1024-10 MLP (tens of seconds on the CPU): the
    # epoch must stop early (the population's epoch count stays 0); were signals only
    # looked at when the epoch returned, it would have finished (epoch 1).
    out = _run(f"""
        import os, signal, threading, time, wgtrain
        data = wgtrain.load_dataset("mnist", dir={os.environ["MNIST_DIR"]!r}, download=False)
        pop = wgtrain.open(data, wgtrain.RunConfig(lr=0.01, hidden=[1024, 1024], epochs=1),
                           device="cpu")
        threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
        try:
            pop.train_epoch()
            print("finished epoch", pop.epoch)
        except KeyboardInterrupt:
            print("interrupted; epochs run:", pop.epoch)
            print("still usable:", len(pop.evaluate("test")))
    """)
    assert out.returncode == 0, out.stderr
    assert "interrupted; epochs run: 0" in out.stdout, out.stdout + out.stderr
    assert "still usable: 1" in out.stdout


def test_the_gil_is_released_while_an_epoch_runs(mnist):
    run = wgtrain.open(mnist, wgtrain.RunConfig(lr=0.01, hidden=[256], epochs=1), device="cpu")
    ticks = []
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    before = len(ticks)
    run.train_epoch()
    during = len(ticks) - before
    done.set()
    t.join()
    # An epoch of 60,000 samples takes far over 50 ms; a thread that could not take the
    # GIL would tick at most once.
    assert during > 50, during
