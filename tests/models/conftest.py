"""Shared tiny data for the models/ tests: a handful of examples, a few features."""

from __future__ import annotations

import os

# TensorFlow reads this when it is first imported, which is during collection.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest

# Token ids 1..10 are words, 0 is padding.
VOCAB_SIZE = 11


@pytest.fixture(autouse=True)
def _seeded() -> None:
    """Seed Python, numpy and the backend so that anything left unseeded is repeatable."""
    keras.utils.set_random_seed(0)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture
def vocab_size() -> int:
    return VOCAB_SIZE


@pytest.fixture
def make_inputs(rng):
    """make_inputs(input_kind, input_shape, n=16): random examples of that shape.

    Token rows get trailing padding of varied length, so masks are exercised.
    """

    def make(input_kind: str, input_shape: tuple[int, ...], n: int = 16) -> np.ndarray:
        if input_kind != "tokens":
            return rng.normal(size=(n, *input_shape)).astype("float32")
        tokens = rng.integers(1, VOCAB_SIZE, size=(n, *input_shape)).astype("int32")
        for row, length in enumerate(rng.integers(1, input_shape[0] + 1, size=n)):
            tokens[row, length:] = 0
        return tokens

    return make


@pytest.fixture
def assert_learned():
    """assert_learned(history): the last losses are clearly below the first.

    Single steps are noisy under dropout, so the mean of the last five epochs
    is compared with the first epoch's loss, with a margin.
    """

    def check(history: keras.callbacks.History) -> None:
        losses = history.history["loss"]
        assert np.mean(losses[-5:]) < 0.8 * losses[0], losses

    return check
