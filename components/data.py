"""Reading the transformed splits for training: arrays and tf.data pipelines.

`training_batches` feeds `fit` and `evaluation_batches` feeds validation and evaluation. Both take an
array or a dict of arrays (a model with named inputs) as `x`; `y` gives the number of examples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.artifacts import Artifact


def load_arrays(transform: Artifact, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(transform.file(f"{split}.npz"), allow_pickle=False) as data:
        return data["x"], data["y"]


def _check(y: np.ndarray, batch_size: int) -> int:
    if len(y) == 0:
        raise ValueError("a dataset needs at least one example, got an empty split")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return min(batch_size, len(y))


def training_batches(x: Any, y: np.ndarray, *, batch_size: int, seed: int):
    """(an endless tf.data stream of shuffled batches, the number of batches in one pass over the data).

    Pass the number as `fit(steps_per_epoch=...)`: each epoch is then one pass in a fresh order. The stream
    draws a seeded permutation per pass (two runs with one seed see the same orders) and cuts it into
    batches of exactly `batch_size`, the last completed with the first examples of the same permutation,
    so every example is seen at least once per epoch and Keras traces one training step with a static
    batch shape. Being endless, the stream is iterated by one iterator for the whole fit: a finite
    dataset would be set up again every epoch, which costs more than a small epoch's batches. Per pass
    the work is one permutation and one gather per batch, not a trip through a shuffle buffer per
    example (benchmarks/, input pipeline row).
    """
    import tensorflow as tf

    size = _check(y, batch_size)
    examples = len(y)
    steps = math.ceil(examples / size)
    features = tf.nest.map_structure(tf.convert_to_tensor, x)
    labels = tf.convert_to_tensor(y)

    def pass_order(pass_seed):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(examples, dtype=tf.int64), seed=tf.stack([pass_seed, tf.constant(seed, tf.int64)]))
        return tf.reshape(tf.concat([order, order[: steps * size - examples]], axis=0), [steps, size])

    def gather(indices):
        return tf.nest.map_structure(lambda array: tf.gather(array, indices), features), tf.gather(labels, indices)

    pass_seeds = tf.data.Dataset.random(seed=seed)  # endless: one random number seeds each pass
    return pass_seeds.map(pass_order).unbatch().map(gather).prefetch(tf.data.AUTOTUNE), steps


def evaluation_batches(x: Any, y: np.ndarray, *, batch_size: int):
    """The examples in order, in batches of `batch_size` (the last one partial): each is seen exactly once."""
    import tensorflow as tf

    size = _check(y, batch_size)
    full = len(y) // size * size

    def whole_batches(array: np.ndarray) -> np.ndarray:
        return array[:full].reshape(full // size, size, *array.shape[1:])

    dataset = tf.data.Dataset.from_tensor_slices(tf.nest.map_structure(whole_batches, (x, y)))
    if full < len(y):
        rest = tf.nest.map_structure(lambda array: array[full:], (x, y))
        dataset = dataset.concatenate(tf.data.Dataset.from_tensors(rest))
    return dataset
