"""wgtrain for Python: train MLPs on the GPU (WGSL kernels through wgpu) or the CPU, one
run or a population of K runs at once, with numpy arrays in and out.

    import wgtrain
    data = wgtrain.load_dataset("mnist")                  # or wgtrain.from_numpy(...)
    cfg = wgtrain.RunConfig(lr=0.1, momentum=0.9, epochs=3, validation_split=0.1)
    run = wgtrain.open(data, cfg, device="cpu")           # "gpu", or "auto"
    for reports in run.epochs():                          # one list per epoch
        print(reports[0])
    weights = run.state_dict()                            # {"0.weight": ndarray, ...}
    # model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})

Shapes use the library's letters: N samples, D = rows*cols input features, C classes,
H hidden units; weights are `nn.Linear`'s `[out, in]`. Losses are mean cross-entropy per
sample (nats), accuracies fractions in [0, 1], times seconds.

`wgtrain.optuna` trains Optuna's trials K at a time as one population.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterator, Mapping, Optional, Sequence, Union

import numpy as np

from . import _wgtrain
from ._errors import (
    CheckpointError,
    ConfigError,
    DataError,
    DeviceError,
    DivergedError,
    NoAdapterError,
    WgtrainError,
)

RunConfig = _wgtrain.RunConfig
__version__ = _wgtrain.__version__

__all__ = [
    "RunConfig",
    "Data",
    "Population",
    "EpochReport",
    "load_dataset",
    "from_numpy",
    "open",
    "WgtrainError",
    "ConfigError",
    "DataError",
    "NoAdapterError",
    "DeviceError",
    "CheckpointError",
    "DivergedError",
]


def __dir__() -> list[str]:
    # dir(wgtrain) and tab completion list the API, not this module's own imports (os,
    # np, dataclass, typing's names), which stay importable for the code below. Private
    # and dunder names, and submodules once imported (wgtrain.optuna), are kept.
    own = [n for n in globals() if n.startswith("_")]
    submodules = [n for n in ("optuna",) if n in globals()]
    return sorted(set(__all__) | set(own) | set(submodules))


class Data:
    """A dataset: training and test splits of images `[N, D]` (uint8, D = rows*cols) and
    labels `[N]` (class indices below `classes`). Build one with `load_dataset` or
    `from_numpy`; it is read-only and shared by every population opened on it."""

    def __init__(self, native: _wgtrain._Data):
        self._native = native

    @property
    def train_len(self) -> int:
        """Training samples N (a validation split is taken from them)."""
        return self._native.train_len

    @property
    def test_len(self) -> int:
        """Test samples."""
        return self._native.test_len

    @property
    def image_shape(self) -> tuple[int, int]:
        """`(rows, cols)` of an image, pixels."""
        return (self._native.rows, self._native.cols)

    @property
    def features(self) -> int:
        """D = rows * cols, the model's inputs."""
        return self._native.rows * self._native.cols

    @property
    def classes(self) -> int:
        """C, the model's outputs."""
        return self._native.classes

    @property
    def class_names(self) -> list[str]:
        """One name per class (the named dataset's, else "0", "1", ...)."""
        return self._native.class_names

    @property
    def name(self) -> Optional[str]:
        """The named dataset (e.g. "mnist"), or None."""
        return self._native.name

    @property
    def normalization(self) -> tuple[float, float]:
        """`(mean, std)` of the pixels scaled to [0, 1]: the named dataset's, else the
        training pixels'. Pass it as `RunConfig(normalize=data.normalization)`."""
        return self._native.normalization

    def images(self, split: str = "train") -> np.ndarray:
        """A copy of a split's pixels, `[N, D]` uint8 (`split`: "train" or "test")."""
        raw = self._native.images(split)
        return np.frombuffer(raw, dtype=np.uint8).reshape(-1, self.features).copy()

    def labels(self, split: str = "train") -> np.ndarray:
        """A copy of a split's labels, `[N]` int64."""
        raw = self._native.labels(split)
        return np.frombuffer(raw, dtype="<u4").astype(np.int64)

    def __repr__(self) -> str:
        what = self.name or "arrays"
        return (f"Data({what}: {self.train_len} train, {self.test_len} test, "
                f"{self.image_shape[0]}x{self.image_shape[1]} inputs, {self.classes} classes)")


def load_dataset(name: Optional[str] = None, dir: Union[str, os.PathLike, None] = None,
                 classes: Optional[int] = None, download: bool = True) -> Data:
    """Loads a dataset as `wgtrain train --dataset NAME --data DIR` does.

    `name`: "mnist", "fashion-mnist", "kmnist", "emnist-balanced", "emnist-letters",
    "emnist-digits", "qmnist", or None for any directory of MNIST-named IDX files (then
    `dir` is required and the class count is inferred). Without `dir`, `$MNIST_DIR` (for
    MNIST), `./data/NAME` and the cache folder are searched, and the files downloaded
    into the cache folder when missing and `download` is true. `classes` overrides C.

    Raises `DataError` naming the malformed file, or saying whether `dir` (else a set
    `$MNIST_DIR`) does not exist or which files it lacks, with the fix in this API's
    terms (`dir=`, `MNIST_DIR`, `download=True`).
    """
    if name is None and dir is None:
        name = "mnist"
    return Data(_wgtrain._Data.load(None if dir is None else os.fspath(dir), name, classes,
                                    download))


def _images(x, what: str) -> np.ndarray:
    a = np.asarray(x)
    if a.dtype != np.uint8:
        raise DataError(f"{what} has dtype {a.dtype}; give uint8 pixels (0..255), "
                        f"e.g. (x * 255).round().astype(np.uint8) for [0, 1] floats")
    if a.ndim == 3:
        a = a.reshape(a.shape[0], -1)
    if a.ndim != 2:
        raise DataError(f"{what} has shape {a.shape}; give [N, D] (or [N, rows, cols])")
    return np.ascontiguousarray(a)


def _labels(y, n: int, what: str) -> np.ndarray:
    a = np.asarray(y)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"{what} has shape {a.shape} and dtype {a.dtype}; give [N] integers")
    if a.shape[0] != n:
        raise DataError(f"{what} has {a.shape[0]} labels but the images have {n} samples")
    if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint32).max):
        i = int(np.argmax((a < 0) | (a > np.iinfo(np.uint32).max)))
        raise DataError(f"{what}[{i}] is {a[i]}; labels are class indices 0..C-1")
    return np.ascontiguousarray(a, dtype="<u4")


def from_numpy(train_images, train_labels, test_images, test_labels, *,
               image_shape: Optional[tuple[int, int]] = None,
               classes: Optional[int] = None) -> Data:
    """Data from numpy arrays: images `[N, D]` (or `[N, rows, cols]`) uint8 and labels
    `[N]` integers in 0..C-1, for the training and the test split. `image_shape` is
    `(rows, cols)`, default `(1, D)` for flat inputs; `classes` defaults to the largest
    label + 1. The arrays are copied.

    Raises `DataError` for a wrong dtype, shape or label, naming the array.
    """
    if image_shape is None:
        a = np.asarray(train_images)
        image_shape = (a.shape[1], a.shape[2]) if a.ndim == 3 else (1, a.shape[-1])
    xtr = _images(train_images, "train_images")
    ytr = _labels(train_labels, xtr.shape[0], "train_labels")
    xte = _images(test_images, "test_images")
    yte = _labels(test_labels, xte.shape[0], "test_labels")
    if xte.shape[0] == 0:
        raise DataError("test_images is empty: give at least one test sample")
    rows, cols = image_shape
    for what, x in (("train_images", xtr), ("test_images", xte)):
        if x.shape[1] != rows * cols:
            raise DataError(f"{what} has {x.shape[1]} features per sample but image_shape "
                            f"{image_shape} needs {rows * cols}")
    return Data(_wgtrain._Data.from_bytes(xtr.tobytes(), ytr.tobytes(), xte.tobytes(),
                                          yte.tobytes(), rows, cols, classes))


@dataclass(frozen=True)
class EpochReport:
    """What one member did in one epoch. `outcome` is "trained" or "diverged" (its loss
    turned non-finite or exploded; `error` says where, and the member is stopped).
    Losses are mean cross-entropy per sample, accuracies fractions in [0, 1]; `val_*` are
    None without a validation split, `test_*` None when the test set is not evaluated."""

    member: int
    epoch: int
    outcome: str
    lr: Optional[float] = None
    train_loss: Optional[float] = None
    train_accuracy: Optional[float] = None
    val_loss: Optional[float] = None
    val_accuracy: Optional[float] = None
    test_loss: Optional[float] = None
    test_accuracy: Optional[float] = None
    seconds: Optional[float] = None
    samples_per_second: Optional[float] = None
    error: Optional[str] = None

    def __str__(self) -> str:
        if self.outcome != "trained":
            return f"member {self.member} epoch {self.epoch}: diverged: {self.error}"
        s = (f"member {self.member} epoch {self.epoch:>3}  lr {self.lr:.3e}  "
             f"train loss {self.train_loss:.4f} acc {100 * self.train_accuracy:.2f}%")
        if self.test_loss is not None:
            s += f"  test loss {self.test_loss:.4f} acc {100 * self.test_accuracy:.2f}%"
        if self.val_loss is not None:
            s += f"  val loss {self.val_loss:.4f} acc {100 * self.val_accuracy:.2f}%"
        return s + f"  {self.seconds:.2f} s"


class Population:
    """K >= 1 members training at once on one device (a single run is K = 1): the members
    share the data's minibatch stream (hidden sizes, normalisation, seed, validation
    split, precision) and differ in the rest (lr, momentum, weight decay, schedule,
    init_seed, epochs, and batch size where each is a multiple of the smallest: the
    population steps in micro-steps of the smallest and a larger member sums its gradient
    over several). Member k trains as a population of one of its configuration would: bit
    for bit at the smallest batch size, to float rounding of the gradient sums' order at a
    larger one. Open one with `wgtrain.open`."""

    def __init__(self, native: _wgtrain._Population, data: Data):
        self._native = native
        self.data = data

    @property
    def device(self) -> str:
        """"gpu" or "cpu"."""
        return self._native.device

    def describe(self) -> str:
        """One line: the device, why it was chosen, and the engine."""
        return self._native.describe()

    @property
    def members(self) -> int:
        """K."""
        return self._native.members

    @property
    def epoch(self) -> int:
        """Epochs the population has run."""
        return self._native.epoch

    @property
    def any_training(self) -> bool:
        """True while some member still trains."""
        return self._native.any_training

    def status(self, member: int) -> str:
        """"training", "done", "frozen" or "diverged: <why>"."""
        return self._native.status(member)

    def config(self, member: int) -> RunConfig:
        """Member `member`'s configuration."""
        return self._native.config(member)

    def epochs_trained(self, member: int) -> int:
        """Epochs member `member`'s current run has trained."""
        return self._native.epochs_trained(member)

    def train_epoch(self) -> list[EpochReport]:
        """Runs the next epoch of every training member and evaluates them; returns one
        report per member that ran (members done, frozen or diverged before are left out).
        The GIL is released while it runs; Ctrl-C raises `KeyboardInterrupt` at the next
        step boundary (the parameters are those after that step, and the interrupted
        epoch runs again from its start if training goes on)."""
        return [EpochReport(**r) for r in self._native.train_epoch()]

    def epochs(self) -> Iterator[list[EpochReport]]:
        """Yields `train_epoch()`'s reports until no member trains."""
        while self._native.any_training:
            yield self.train_epoch()

    def fit(self) -> list[list[EpochReport]]:
        """Trains to the end; returns each member's reports, `[K][its epochs]`."""
        out: list[list[EpochReport]] = [[] for _ in range(self.members)]
        for reports in self.epochs():
            for r in reports:
                out[r.member].append(r)
        return out

    def evaluate(self, set: str = "test") -> list[tuple[float, float]]:
        """Every member's `(loss, accuracy)` on "test" or "validation" with its current
        parameters: mean cross-entropy per sample, accuracy in [0, 1]."""
        return [(loss, acc) for loss, acc, _ in self._native.evaluate(set)]

    def logits(self, member: int = 0, set: str = "test") -> np.ndarray:
        """Member `member`'s logits on every sample of "test" or "validation", `[N, C]`
        float32, samples in the set's order."""
        raw, n, c = self._native.logits(member, set)
        return np.frombuffer(raw, dtype="<f4").reshape(n, c)

    def state_dict(self, member: int = 0) -> dict[str, np.ndarray]:
        """Member `member`'s parameters under `nn.Sequential` names: `"0.weight"`
        `[H1, D]`, `"0.bias"` `[H1]`, `"2.weight"` `[H2, H1]`, ..., the last `[C, H]`
        (float32; the odd indices are the ReLUs), so that
        `nn.Sequential(nn.Linear(D, H1), nn.ReLU(), ..., nn.Linear(H, C))` loads
        `{k: torch.from_numpy(v) for k, v in state_dict.items()}`."""
        return {name: np.frombuffer(raw, dtype="<f4").reshape(shape)
                for name, shape, raw in self._native.state(member)}

    def load_state_dict(self, state: Mapping[str, object], member: int = 0) -> None:
        """Replaces member `member`'s parameters (exactly the names and shapes
        `state_dict` gives; numpy arrays or anything `np.asarray` takes, e.g. a torch
        tensor's `.numpy()`) and clears its momentum. Raises `ConfigError` naming missing,
        unexpected or misshapen tensors."""
        tensors = {}
        for name, value in state.items():
            a = np.ascontiguousarray(np.asarray(value), dtype="<f4")
            tensors[str(name)] = (list(a.shape), a.tobytes())
        self._native.load_state(member, tensors)

    def freeze(self, member: int) -> None:
        """Stops member `member` from the next epoch on (pruned); its parameters stay."""
        self._native.freeze(member)

    def restart(self, member: int, config: RunConfig) -> None:
        """Starts a new run `config` in slot `member` from the next epoch: fresh
        parameters, cleared momentum, its own epochs and schedule from their start. It
        must share the population's minibatch stream, its batch size a multiple of the
        population's smallest (`config.shares_stream(...)` with a member's configuration
        is sufficient)."""
        self._native.restart(member, config)

    def copy_member(self, src: int, dst: int) -> None:
        """Member `dst` continues from member `src`'s parameters, momentum and progress
        (copied on the device), keeping its own hyperparameters: PBT's exploit step."""
        self._native.copy_member(src, dst)

    def save(self, path: Union[str, os.PathLike], member: int = 0, dtype: str = "f32") -> None:
        """Writes member `member`'s parameters as safetensors under `nn.Sequential` names
        (`dtype`: "f32", "f16" or "bf16"), atomically; `safetensors.torch.load_file`
        reads it for `load_state_dict`. Raises `CheckpointError` for non-finite weights."""
        self._native.save(os.fspath(path), member, dtype)

    def __repr__(self) -> str:
        return f"Population({self.members} members, {self.describe()})"


def open(data: Data, configs: Union[RunConfig, Sequence[RunConfig]], device: str = "auto",
         *, evaluate_test: bool = True) -> Population:
    """Opens one member per configuration (one `RunConfig` opens a single run) on `data`.

    `device`: "gpu", "cpu", or "auto" (the GPU on a hardware adapter, else the CPU path,
    which beats a software adapter such as lavapipe; f16 runs take the GPU).
    `evaluate_test`: evaluate the test set after every epoch (tuning turns it off).

    Raises `ConfigError` for configurations that cannot share a population (naming the
    setting), `NoAdapterError` when device="gpu" finds no adapter (device="cpu" then
    trains on the CPU), `DeviceError` for GPU limits.
    """
    if isinstance(configs, RunConfig):
        configs = [configs]
    configs = list(configs)
    if not configs or not all(isinstance(c, RunConfig) for c in configs):
        raise ConfigError("configs: give a RunConfig or a non-empty list of them")
    return Population(_wgtrain._Population(data._native, configs, device, evaluate_test), data)
