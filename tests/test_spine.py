"""The pipeline spine end to end: the README's run command on the embedded default.

Reads the session's real default run (tests/conftest.py): seven stages recorded
in MLflow, tuning trials, datasets, plots, a registered champion that classifies
raw 8x8 images as evaluate said, and a second run served entirely from cache.
"""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.config import flatten, load_config
from pipeline.names import ALIAS_CHAMPION, STAGES, TAG_CACHED, TAG_KIND, TAG_STAGE

pytestmark = pytest.mark.slow


def _pipeline_runs(client, experiment_id):
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                              order_by=["attributes.start_time ASC"])
    return runs


def _children(client, experiment_id, parent_id):
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                              max_results=1000)


@pytest.fixture(scope="module")
def recorded(default_run):
    client = default_run.store.client()
    experiment = client.get_experiment_by_name("digits")
    parents = _pipeline_runs(client, experiment.experiment_id)
    return client, experiment.experiment_id, parents


def test_default_run_finishes_every_stage(default_run):
    for index, stage in enumerate(STAGES, start=1):
        assert f"[{index}/7] {stage}: done" in default_run.first.stderr
    assert "blessing: blessed" in default_run.first.stderr


def test_one_parent_run_with_seven_nested_stage_runs(recorded):
    client, experiment_id, parents = recorded
    assert len(parents) == 2  # the first run and the cached re-run
    first = parents[0]
    assert first.info.status == "FINISHED"
    resolved = {key: str(value) for key, value in flatten(load_config()).items()}
    assert resolved.items() <= first.data.params.items()  # the whole resolved config, logged flat
    stages = [r for r in _children(client, experiment_id, first.info.run_id) if r.data.tags.get(TAG_KIND) == "stage"]
    assert sorted(r.data.tags[TAG_STAGE] for r in stages) == sorted(STAGES)
    assert all(r.info.status == "FINISHED" for r in stages)


def _stage(client, experiment_id, parent, name):
    (run,) = [r for r in _children(client, experiment_id, parent.info.run_id) if r.data.tags.get(TAG_STAGE) == name]
    return run


def test_tuning_trials_are_nested_under_tune_with_params_and_epoch_metrics(recorded):
    client, experiment_id, parents = recorded
    tune = _stage(client, experiment_id, parents[0], "tune")
    trials = _children(client, experiment_id, tune.info.run_id)
    assert len(trials) >= 4
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert finished, "no trial finished"
    encoders = {t.data.params.get("encoder") for t in trials}
    assert "mlp" in encoders and encoders & {"simple_rnn", "lstm", "gru"}
    history = client.get_metric_history(finished[0].info.run_id, "val_accuracy")
    assert [m.step for m in history] == list(range(history[0].step, history[0].step + len(history)))
    for key in ("dropout", "batch_norm", "encoder"):
        assert key in finished[0].data.params


def test_train_logs_per_epoch_metrics_and_the_model(recorded):
    client, experiment_id, parents = recorded
    train = _stage(client, experiment_id, parents[0], "train")
    history = client.get_metric_history(train.info.run_id, "val_loss")
    assert len(history) >= 2
    assert [m.step for m in history] == list(range(len(history)))
    artifacts = {a.path for a in client.list_artifacts(train.info.run_id)}
    assert "learning_curves.png" in artifacts


def test_datasets_are_run_inputs(recorded):
    client, experiment_id, parents = recorded
    ingest = _stage(client, experiment_id, parents[0], "ingest")
    inputs = client.get_run(ingest.info.run_id).inputs.dataset_inputs
    contexts = {tag.value for d in inputs for tag in d.tags if tag.key == "mlflow.data.context"}
    assert contexts == {"train", "validation", "test"}
    assert all(d.dataset.digest for d in inputs)
    digests = {d.dataset.name: d.dataset.digest for d in inputs}
    # Every run that reads a split logs it again, with the context MLflow's UI expects and ingest's digest.
    for stage, expected in (("tune", {"training", "validation"}), ("train", {"training", "validation"}),
                            ("evaluate", {"evaluation"})):
        used = client.get_run(_stage(client, experiment_id, parents[0], stage).info.run_id).inputs.dataset_inputs
        assert {tag.value for d in used for tag in d.tags if tag.key == "mlflow.data.context"} == expected
        assert all(digests[d.dataset.name] == d.dataset.digest for d in used)


def test_evaluate_logs_confusion_matrix_and_blessing(recorded):
    client, experiment_id, parents = recorded
    evaluate = _stage(client, experiment_id, parents[0], "evaluate")
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id)}
    assert {"confusion_matrix.png", "confusion_matrix.json", "blessing.json"} <= artifacts
    metrics = evaluate.data.metrics
    assert metrics["accuracy"] >= 0.95, f"test accuracy {metrics['accuracy']:.4f} below the 0.95 target"
    assert metrics["blessed"] == 1.0


def test_champion_is_registered_and_classifies_raw_images_as_evaluate_reported(recorded, default_run, tfds_dir):
    import mlflow
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401  (registers the digits builder)

    client, experiment_id, parents = recorded
    version = client.get_model_version_by_alias("digits", ALIAS_CHAMPION)
    evaluate = _stage(client, experiment_id, parents[0], "evaluate")
    assert version.tags["pipeline.run_id"] == parents[0].info.run_id
    model = mlflow.keras.load_model(f"models:/digits@{ALIAS_CHAMPION}")
    images, labels = tfds.as_numpy(tfds.load("digits", split="test", data_dir=str(tfds_dir), as_supervised=True,
                                             batch_size=-1))
    assert images.shape[1:] == (8, 8) and images.dtype == np.uint8  # raw pixels, no preprocessing by hand
    accuracy = float(np.mean(model.predict(images, verbose=0).argmax(axis=1) == labels))
    assert accuracy == pytest.approx(evaluate.data.metrics["accuracy"], abs=1e-9)


def test_second_run_is_fully_cached_and_fast(recorded, default_run):
    client, experiment_id, parents = recorded
    for index, stage in enumerate(STAGES, start=1):
        assert f"[{index}/7] {stage}: cached" in default_run.second.stderr
    stages = [r for r in _children(client, experiment_id, parents[1].info.run_id) if r.data.tags.get(TAG_KIND) == "stage"]
    assert len(stages) == 7 and all(r.data.tags[TAG_CACHED] == "true" for r in stages)
    assert default_run.second.seconds <= default_run.first.seconds / 4, (
        f"cached re-run took {default_run.second.seconds:.1f}s, first run {default_run.first.seconds:.1f}s")
    versions = client.search_model_versions("name = 'digits'")
    assert len(versions) == 1  # the cached push registered nothing new
