"""Workarounds: Keras 3 `fit` under tf.distribute strategies (keras-team/keras#20585, open).

Keras 3.15's TensorFlow trainer (`keras/src/backend/tensorflow/trainer.py`, unchanged on its main
branch at 3.16.0.dev) fails in three ways that the pipeline meets:

1. With MultiWorkerMirroredStrategy, `fit` first builds the model from one batch of the distributed
   dataset (`_maybe_symbolic_build`), which it "averages" across replicas with
   `strategy.reduce("MEAN", batch, axis=None)`. The batch is a (features, labels) tuple, which
   `Strategy.reduce` does not take (nests are a TODO in TensorFlow), so the collective strategy tries
   to make one tensor of it: "Attempt to convert a value (PerReplica:...) with an unsupported type".
   This is keras-team/keras#20585.
2. With any strategy, `evaluate` calls that method again at every epoch's validation and draws its
   batch from the validation iterator it keeps between epochs, which the previous epoch's validation
   used up when `validation_steps` covers a finite stream: the second epoch ends in `StopIteration`
   (MirroredStrategy included). Drawing that batch also starts the training stream's iterator once
   more, so a seeded stream is seen in another order than without a strategy.
   Fix for 1 and 2: build from the dataset's element spec (the build needs only shapes and dtypes),
   drawing no batch at all, and only when something is still unbuilt.
3. With MultiWorkerMirroredStrategy, every step's metrics go through `reduce_per_replica`, whose
   multi-worker branch calls `strategy.reduce("MEAN", value, axis=0)`: that also averages along each
   value's first axis and fails on the scalar metrics ("Invalid reduction dimension 0 for input with
   0 dimensions"). Fix: average across replicas only (`axis=None`), as the single-worker branch does.

`apply()` installs them; `components.distribute` calls it when it creates a mirrored or multi_worker
strategy, and nothing else does. Prediction's multi-worker concat (`_multi_worker_concat`, which names
an undefined variable) is left alone: the pipeline never predicts under a strategy.
`tests/scale/test_keras_fixes.py` checks that the unpatched Keras still fails each way; when one no
longer does, delete its fix here (and this module with the last one), with its check.
"""

from __future__ import annotations

from typing import Any

UPSTREAM_ISSUE = "https://github.com/keras-team/keras/issues/20585"

_applied = False


def apply() -> None:
    """Patch Keras's TensorFlow trainer, once per process."""
    global _applied
    if _applied:
        return
    from keras.src.backend.tensorflow import trainer

    original_reduce = trainer.reduce_per_replica

    def reduce_per_replica(values: Any, strategy: Any, reduction: str) -> Any:
        if reduction in ("auto", "mean") and trainer._collective_all_reduce_multi_worker(strategy):
            return _mean_across_replicas(values, strategy)
        return original_reduce(values, strategy, reduction)

    trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    trainer.reduce_per_replica = reduce_per_replica
    _applied = True


def _maybe_symbolic_build(self, iterator=None, data_batch=None) -> None:
    """Keras's method with fixes 1 and 2: build from the element spec of the data, never from a drawn batch."""
    if self._distribute_strategy is None:
        return  # as in Keras: without a strategy the model builds when its step function is traced
    if data_batch is None and iterator is not None:
        # Keras's `_symbolic_build` reads only `shape` and `dtype` of each element: a TensorSpec has both.
        data_batch = iterator.data_adapter.get_tf_dataset().element_spec
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _mean_across_replicas(values: Any, strategy: Any) -> Any:
    """Fix 3: the mean of each value over all replicas of all workers, whatever its rank."""
    import tensorflow as tf

    return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), values)
