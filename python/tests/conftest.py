"""Shared fixtures: MNIST from $MNIST_DIR (required: these tests never skip) and small
numpy subsets of it."""

import os

import numpy as np
import pytest

import wgtrain


@pytest.fixture(scope="session")
def mnist():
    d = os.environ.get("MNIST_DIR")
    assert d, "set MNIST_DIR to the directory with the four MNIST files"
    return wgtrain.load_dataset("mnist", dir=d, download=False)


@pytest.fixture(scope="session")
def arrays(mnist):
    """The first 2,000 training and 500 test samples as numpy arrays."""
    return (mnist.images("train")[:2000], mnist.labels("train")[:2000],
            mnist.images("test")[:500], mnist.labels("test")[:500])


@pytest.fixture(scope="session")
def small(arrays):
    xtr, ytr, xte, yte = arrays
    return wgtrain.from_numpy(xtr, ytr, xte, yte, image_shape=(28, 28))


def forward(state, x):
    """The MLP `nn.Sequential(Linear, ReLU, ..., Linear)` of `state` on pixels `x` / 255,
    in float64 with numpy: what PyTorch computes from the same tensors."""
    h = x.astype(np.float64) / 255.0
    layers = sorted({int(k.split(".")[0]) for k in state})
    for i, l in enumerate(layers):
        h = h @ state[f"{l}.weight"].astype(np.float64).T + state[f"{l}.bias"]
        if i + 1 < len(layers):
            h = np.maximum(h, 0.0)
    return h
