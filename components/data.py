"""Reading the transformed splits for training: arrays and tf.data pipelines."""

from __future__ import annotations

import numpy as np

from pipeline.artifacts import Artifact


def load_arrays(transform: Artifact, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(transform.file(f"{split}.npz"), allow_pickle=False) as data:
        return data["x"], data["y"]


def make_dataset(x: np.ndarray, y: np.ndarray, *, batch_size: int, shuffle: bool, seed: int):
    """An in-memory tf.data pipeline: cached once, reshuffled each epoch, prefetched."""
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)
