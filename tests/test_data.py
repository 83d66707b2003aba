"""The training input pipeline and the per-epoch MLflow logger, in process on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from components.data import evaluation_batches, training_batches


def _labels(batches) -> list[list[int]]:
    return [batch[1].numpy().tolist() for batch in batches]


def test_training_batches_are_whole_reshuffled_passes_over_every_example():
    x, y = np.arange(10, dtype="float32")[:, None] * 10, np.arange(10)
    dataset, steps = training_batches(x, y, batch_size=4, seed=7)
    assert steps == 3
    assert [tuple(spec.shape) for spec in dataset.element_spec] == [(4, 1), (4,)]  # one static batch shape
    batches = list(dataset.take(4 * steps))
    labels = _labels(batches)
    passes = [sum(labels[i * steps:(i + 1) * steps], []) for i in range(4)]
    for seen in passes:
        assert sorted(set(seen)) == list(range(10))  # every example in every pass
        assert len(seen) == 12 and seen[10:] == seen[:2]  # the last batch completed from the pass's start
    assert len({tuple(seen) for seen in passes}) == 4, "each pass must draw a new order"
    for features, targets in batches:  # features and labels stay paired
        np.testing.assert_array_equal(features.numpy()[:, 0], targets.numpy() * 10)


def test_training_batches_repeat_with_the_seed_and_change_without_it():
    y = np.arange(50)
    first = _labels(training_batches(y, y, batch_size=8, seed=1)[0].take(14))
    assert first == _labels(training_batches(y, y, batch_size=8, seed=1)[0].take(14))
    assert first != _labels(training_batches(y, y, batch_size=8, seed=2)[0].take(14))


def test_training_batches_take_named_inputs_and_small_splits():
    x = {"a": np.arange(3), "b": np.arange(3) * 2}
    dataset, steps = training_batches(x, np.arange(3), batch_size=32, seed=0)
    assert steps == 1
    (features, labels), = dataset.take(1)
    assert sorted(labels.numpy().tolist()) == [0, 1, 2]  # one batch of the whole split, not 32
    np.testing.assert_array_equal(features["b"].numpy(), labels.numpy() * 2)


def test_evaluation_batches_see_each_example_once_in_order():
    x, y = {"a": np.arange(10), "b": np.arange(10)[:, None]}, np.arange(10)
    assert _labels(evaluation_batches(x, y, batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert _labels(evaluation_batches(y, y, batch_size=5)) == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]
    assert _labels(evaluation_batches(y, y, batch_size=64)) == [list(range(10))]


@pytest.mark.parametrize("build", [training_batches, evaluation_batches])
def test_bad_sizes_are_refused_with_the_value(build):
    extra = {"seed": 0} if build is training_batches else {}
    with pytest.raises(ValueError, match="empty split"):
        build(np.zeros((0, 2)), np.zeros(0), batch_size=4, **extra)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        build(np.zeros((3, 2)), np.zeros(3), batch_size=0, **extra)


def test_epoch_logger_has_every_epoch_in_mlflow_when_fit_returns(tmp_path):
    """Metrics are written off the training thread, a batch of epochs at a time; fit's end waits for them."""
    import keras
    import mlflow

    from components.trial_tracking import epoch_logger

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    mlflow.set_experiment("epoch-logger")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 2)).astype("float32")
    with mlflow.start_run() as run:
        history = model.fit(x, x[:, :1], epochs=7, batch_size=16, callbacks=[epoch_logger()], verbose=0).history
        logged = mlflow.MlflowClient().get_metric_history(run.info.run_id, "loss")  # read before the run ends
    assert [m.step for m in sorted(logged, key=lambda m: m.step)] == list(range(7))
    assert [m.value for m in sorted(logged, key=lambda m: m.step)] == pytest.approx(history["loss"])
