"""Feeding models: tf.data pipelines over the transformed shards, and over in-memory arrays.

The pipeline's stages read the Transform artifact's shards: `training_stream` feeds `fit` (shuffled
through a bounded buffer, endless) and `evaluation_stream` feeds validation (in order, once). The
studies and benchmarks, whose data fit in memory, use `training_batches` and `evaluation_batches`
over arrays: both take an array or a dict of arrays (a model with named inputs) as `x`; `y` gives
the number of examples.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from components import records
from components.properties import TransformProperties
from pipeline.artifacts import Artifact

FEATURE, LABEL = "x", "y"  # the Transform shards' columns: the core model's input and the label


def watched(metric: str, task: str) -> str:
    """The validation figure to watch for `metric` (train.monitor, tune.objective) on this task.

    Regression has no accuracy: a config that watches val_accuracy (the default) watches val_loss there.
    """
    return "val_loss" if task == "regression" and metric == "val_accuracy" else metric


def _split(transform: Artifact, split: str) -> tuple[list[str], tuple[records.Column, ...], int, int]:
    """(shard paths, columns, examples, examples per record) of a transformed split."""
    props = TransformProperties.of(transform)
    paths = [str(transform.file(name)) for name in props.shards[split]]
    columns = tuple(c for c in records.columns_from(props.columns) if c.name in (FEATURE, LABEL))
    return paths, columns, int(props.counts[split]), props.block


def _pairs(batch):
    return batch[FEATURE], batch[LABEL]


def training_stream(transform: Artifact, *, batch_size: int, seed: int, shuffle_buffer: int):
    """(an endless stream of shuffled training batches, the number of batches in one pass).

    Pass the number as `fit(steps_per_epoch=...)`: each epoch is then one pass over the train shards
    in a fresh order (shards shuffled, then examples through a buffer of at most `shuffle_buffer`
    examples and 64 MiB), read by one iterator for the whole fit. Memory stays bounded by the buffer,
    whatever the size of the split.
    """
    paths, columns, count, block = _split(transform, "train")
    size = _check_count(count, batch_size)
    buffer = records.shuffle_buffer(columns, min(shuffle_buffer, count))
    stream = records.dataset(paths, columns, batch_size=size, shuffle=buffer, seed=seed, repeat=True, block=block)
    return stream.map(_pairs), math.ceil(count / size)


def evaluation_stream(transform: Artifact, split: str, *, batch_size: int):
    """(a split's transformed examples in order, in batches of `batch_size`, the number of batches).

    Each example is seen exactly once; pass the number as `validation_steps`, so Keras knows where
    the stream ends instead of running into its end.
    """
    paths, columns, count, block = _split(transform, split)
    size = _check_count(count, batch_size)
    return records.dataset(paths, columns, batch_size=size, block=block).map(_pairs), math.ceil(count / size)


def load_arrays(transform: Artifact, split: str, *, limit: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A transformed split (or its first `limit` examples) as in-memory arrays (x, y).

    For the benchmarks' in-memory baselines and small data only: the stages stream the shards.
    """
    paths, columns, count, block = _split(transform, split)
    wanted = min(limit, count) if limit else count
    xs, ys, held = [], [], 0
    for batch in records.iterate(paths, columns, batch_size=4096, block=block):
        xs.append(batch[FEATURE])
        ys.append(batch[LABEL])
        held += len(batch[LABEL])
        if held >= wanted:
            break
    return np.concatenate(xs)[:wanted], np.concatenate(ys)[:wanted]


def _check_count(count: int, batch_size: int) -> int:
    if count == 0:
        raise ValueError("a dataset needs at least one example, got an empty split")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return min(batch_size, count)


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
