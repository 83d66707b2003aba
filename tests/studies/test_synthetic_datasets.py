"""The studies' synthetic TFDS builders, prepared small into a temporary data_dir."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow_datasets as tfds

from components.datasets.adding import AddingConfig, AddingProblem, generate
from components.datasets.reversal import DIGIT_OFFSET, PAD_TOKEN, DigitReversal, ReversalConfig


def _prepare(builder_class, config, data_dir):
    builder = builder_class(config=config, data_dir=str(data_dir))
    builder.download_and_prepare()
    return builder


def test_adding_problem_targets_sum_the_marked_values_and_predicting_one_scores_a_sixth(tmp_path):
    config = AddingConfig(name="t20_tiny", length=20, num_train=40, num_test=8)
    builder = _prepare(AddingProblem, config, tmp_path)
    sequences, targets = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1, as_supervised=True))
    assert sequences.shape == (40, 20, 2) and sequences.dtype == np.float32
    markers = sequences[:, :, 1]
    assert (markers.sum(axis=1) == 2).all()
    assert (markers[:, :10].sum(axis=1) == 1).all()  # one marker in each half
    np.testing.assert_allclose((sequences[:, :, 0] * markers).sum(axis=1), targets, rtol=1e-6)
    assert builder.info.splits["test"].num_examples == 8
    _, many = generate(50, 20_000, np.random.default_rng(0))
    assert np.mean((many - 1.0) ** 2) == pytest.approx(1 / 6, abs=0.01)


def test_adding_problem_is_the_same_on_every_preparation(tmp_path):
    config = AddingConfig(name="t10_tiny", length=10, num_train=5, num_test=5)
    first, second = (
        tfds.as_numpy(_prepare(AddingProblem, config, tmp_path / name).as_dataset(split="test", batch_size=-1))
        for name in ("a", "b")
    )
    np.testing.assert_array_equal(first["sequence"], second["sequence"])


def test_digit_reversal_targets_reverse_the_sources(tmp_path):
    config = ReversalConfig(name="len2to6_tiny", min_length=2, max_length=6, num_train=30, num_test=5)
    builder = _prepare(DigitReversal, config, tmp_path)
    examples = tfds.as_numpy(builder.as_dataset(split="train", batch_size=-1))
    assert examples["source"].shape == (30, 6)
    for source, target, length in zip(examples["source"], examples["target"], examples["length"]):
        assert 2 <= length <= 6
        assert (source[length:] == PAD_TOKEN).all() and (target[length:] == PAD_TOKEN).all()
        np.testing.assert_array_equal(target[:length], source[:length][::-1])
        assert ((source[:length] >= DIGIT_OFFSET) & (source[:length] < DIGIT_OFFSET + 10)).all()
    assert builder.info.supervised_keys == ("source", "target")


def test_configs_reject_impossible_sizes():
    with pytest.raises(ValueError, match="length"):
        AddingConfig(name="t1", length=1)
    with pytest.raises(ValueError, match="min_length"):
        ReversalConfig(name="bad", min_length=7, max_length=6)
