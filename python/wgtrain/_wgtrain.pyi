"""Type stubs of the extension module `wgtrain._wgtrain` (Rust, pyo3). The public API is
`wgtrain` (`wgtrain/__init__.py`), which wraps `_Data` and `_Population`; `RunConfig` is
re-exported as `wgtrain.RunConfig`. Arrays cross as little-endian bytes."""

from os import PathLike
from typing import Optional, Sequence, Union

__version__: str

class RunConfig:
    """A run's settings, keyword-only, with `torch.optim.SGD`'s names and defaults and
    `torch.optim.lr_scheduler`'s schedules; checked when built (`ConfigError`).

    lr: base learning rate (> 0). momentum, dampening, weight_decay, nesterov: as
    `torch.optim.SGD`. batch_size: samples per minibatch B (the last may be smaller).
    epochs: epochs to train. hidden: hidden-layer widths (the input width D and the
    class count C come from the data). seed: data order, validation split and, without
    init_seed, the initial weights. init_seed: the initial weights alone.
    validation_split: fraction of the training samples held out, in [0, 1).
    normalize: `(mean, std)` of pixels in [0, 1], or None for pixels / 255.
    early_stop_patience: epochs without a better validation loss before stopping.
    precision: "f32", or "f16" matmul operands (GPU with shader-f16).
    lr_schedule: "constant", "step" (step_size, gamma=0.1), "multistep" (milestones,
    gamma=0.1), "exponential" (gamma), "cosine" (T_max, eta_min); warmup_epochs and
    warmup_start_factor: a LinearLR warm-up before it. decoupled_weight_decay: SGDW.
    decay_bias: decay the biases too (PyTorch's default).
    """

    def __init__(
        self,
        *,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        batch_size: int = 64,
        epochs: int = 10,
        hidden: Sequence[int] = (256,),
        seed: int = 1,
        init_seed: Optional[int] = None,
        validation_split: float = 0.0,
        normalize: Optional[tuple[float, float]] = None,
        early_stop_patience: Optional[int] = None,
        precision: str = "f32",
        lr_schedule: str = "constant",
        step_size: Optional[int] = None,
        milestones: Optional[Sequence[int]] = None,
        gamma: Optional[float] = None,
        T_max: Optional[int] = None,
        eta_min: float = 0.0,
        warmup_epochs: int = 0,
        warmup_start_factor: float = 1.0 / 3.0,
        decoupled_weight_decay: bool = False,
        decay_bias: bool = True,
    ) -> None: ...
    def to_dict(self) -> dict[str, object]:
        """The keyword arguments that rebuild this configuration."""
    def replace(self, **changes: object) -> RunConfig:
        """A copy with `changes` applied, checked again."""
    def shares_stream(self, other: RunConfig) -> bool:
        """True when `other` can train in one population with this configuration at the
        same minibatch size (hidden sizes, batch size, normalisation, seed, validation
        split and precision equal)."""
    @property
    def lr(self) -> float: ...
    @property
    def momentum(self) -> float: ...
    @property
    def dampening(self) -> float: ...
    @property
    def weight_decay(self) -> float: ...
    @property
    def nesterov(self) -> bool: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def epochs(self) -> int: ...
    @property
    def hidden(self) -> list[int]: ...
    @property
    def seed(self) -> int: ...
    @property
    def init_seed(self) -> Optional[int]: ...
    @property
    def validation_split(self) -> float: ...
    @property
    def precision(self) -> str: ...

class _Data:
    """A loaded dataset (see `wgtrain.Data`)."""

    @staticmethod
    def load(
        dir: Union[str, PathLike[str], None] = None,
        dataset: Optional[str] = None,
        classes: Optional[int] = None,
        download: bool = True,
    ) -> _Data: ...
    @staticmethod
    def from_bytes(
        train_images: bytes,
        train_labels: bytes,
        test_images: bytes,
        test_labels: bytes,
        rows: int,
        cols: int,
        classes: Optional[int] = None,
    ) -> _Data:
        """Images `[N, rows*cols]` u8, labels `[N]` little-endian u32, per split."""
    @property
    def train_len(self) -> int: ...
    @property
    def test_len(self) -> int: ...
    @property
    def rows(self) -> int: ...
    @property
    def cols(self) -> int: ...
    @property
    def classes(self) -> int: ...
    @property
    def class_names(self) -> list[str]: ...
    @property
    def name(self) -> Optional[str]: ...
    @property
    def dir(self) -> Optional[str]: ...
    @property
    def normalization(self) -> tuple[float, float]: ...
    def images(self, split: str) -> bytes:
        """`[N, rows*cols]` u8."""
    def labels(self, split: str) -> bytes:
        """`[N]` little-endian u32."""

class _Population:
    """An open population (see `wgtrain.Population`)."""

    def __init__(
        self,
        data: _Data,
        configs: Sequence[RunConfig],
        device: str = "auto",
        evaluate_test: bool = True,
    ) -> None: ...
    @property
    def device(self) -> str: ...
    def describe(self) -> str: ...
    @property
    def members(self) -> int: ...
    @property
    def epoch(self) -> int: ...
    @property
    def any_training(self) -> bool: ...
    def status(self, k: int) -> str: ...
    def config(self, k: int) -> RunConfig: ...
    def epochs_trained(self, k: int) -> int: ...
    def train_epoch(self) -> list[dict[str, object]]:
        """One dict per member that ran (the fields of `wgtrain.EpochReport`)."""
    def evaluate(self, set: str = "test") -> list[tuple[float, float, int]]:
        """`[(loss, accuracy, samples)]` per member."""
    def logits(self, member: int, set: str = "test") -> tuple[bytearray, int, int]:
        """`(bytes of [N, C] little-endian f32, N, C)`."""
    def state(self, member: int) -> list[tuple[str, list[int], bytearray]]:
        """`[(name, shape, bytes of little-endian f32)]` under nn.Sequential names."""
    def load_state(self, member: int, tensors: dict[str, tuple[list[int], bytes]]) -> None: ...
    def freeze(self, k: int) -> None: ...
    def restart(self, k: int, config: RunConfig) -> None: ...
    def copy_member(self, src: int, dst: int) -> None: ...
    def save(self, path: Union[str, PathLike[str]], member: int = 0, dtype: str = "f32") -> None: ...
