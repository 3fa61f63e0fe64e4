"""The exceptions wgtrain raises. Every one is a `WgtrainError`; those about arguments and
data are also `ValueError`s, those about the device `RuntimeError`s."""


class WgtrainError(Exception):
    """Base of every wgtrain exception."""


class ConfigError(WgtrainError, ValueError):
    """An argument or configuration value is out of its valid range (the message names it
    and the range)."""


class DataError(WgtrainError, ValueError):
    """Data that cannot be trained on: missing or malformed files, arrays of the wrong
    shape or type, labels out of range."""


class NoAdapterError(WgtrainError, RuntimeError):
    """No GPU adapter was found; `device="cpu"` trains on the CPU."""


class DeviceError(WgtrainError, RuntimeError):
    """The GPU failed or its limits were exceeded."""


class CheckpointError(WgtrainError):
    """A checkpoint could not be written or read."""


class DivergedError(WgtrainError):
    """A single run's training loss became non-finite or exploded."""
