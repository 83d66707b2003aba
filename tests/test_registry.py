"""Blessing, registry and serving: only a model that beats the champion ships."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.serving import serve_and_predict

pytestmark = pytest.mark.slow


def _champion(client, name="digits"):
    try:
        return int(client.get_model_version_by_alias(name, "champion").version)
    except Exception:
        return None


def _evaluate_run(client, store):
    experiment = client.get_experiment_by_name("digits")
    (run,) = client.search_runs([experiment.experiment_id],
                                filter_string="tags.`pipeline.stage` = 'evaluate' and tags.`pipeline.cached` = 'false'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    return run


def test_only_a_model_that_is_not_worse_than_the_champion_moves_the_alias(store, fast):
    client = store.client()
    # 1. A modest first model: no champion yet, so the thresholds alone decide.
    first = store.cli("run", *fast, "--set", "train.epochs=2", "--set", "model.units=16")
    assert first.returncode == 0, first.stderr[-3000:]
    assert _champion(client) == 1
    first_accuracy = _evaluate_run(client, store).data.metrics["accuracy"]
    assert "no champion yet" in _evaluate_run(client, store).data.tags["pipeline.blessing"]

    # 2. A deliberately worse model (one epoch, dropout 0.9): not blessed, the champion stays.
    worse = store.cli("run", *fast, "--set", "train.epochs=1", "--set", "model.dropout=0.9",
                      "--set", "model.units=16", "--set", "train.learning_rate=0.0003")
    assert worse.returncode == 0, worse.stderr[-3000:]
    evaluate = _evaluate_run(client, store)
    assert evaluate.data.metrics["accuracy"] < first_accuracy - 0.01
    assert evaluate.data.metrics["blessed"] == 0.0
    assert "not blessed" in evaluate.data.tags["pipeline.blessing"]
    assert "champion version 1" in evaluate.data.tags["pipeline.blessing"]
    assert evaluate.data.metrics["champion_accuracy"] == pytest.approx(first_accuracy)
    assert _champion(client) == 1
    assert "not pushed" in worse.stderr

    # 3. A better model: blessed against the champion, which moves to it.
    better = store.cli("run", *fast, "--set", "train.epochs=25")
    assert better.returncode == 0, better.stderr[-3000:]
    evaluate = _evaluate_run(client, store)
    assert evaluate.data.metrics["accuracy"] > first_accuracy
    assert evaluate.data.metrics["blessed"] == 1.0
    assert _champion(client) == 2
    version = client.get_model_version("digits", "2")
    for tag in ("pipeline.run_id", "pipeline.data_fingerprint", "pipeline.hyperparameters", "pipeline.train_fingerprint"):
        assert version.tags.get(tag), tag
    assert json.loads(version.tags["pipeline.hyperparameters"])["optimizer"] == "adam"
    saved_model = store.root / "serving" / "digits" / "2"
    assert (saved_model / "saved_model.pb").is_file()


def test_tf_serving_export_has_a_signature_on_raw_inputs(default_run):
    import tensorflow as tf

    exports = sorted((default_run.store.root / "serving" / "digits").iterdir())
    assert exports, "no SavedModel was exported"
    loaded = tf.saved_model.load(str(exports[-1]))
    signature = loaded.signatures["serving_default"]
    (spec,) = signature.structured_input_signature[1].values()
    assert tuple(spec.shape[1:]) == (8, 8)
    raw = tf.constant(np.full((2, 8, 8), 8, dtype=np.float32))
    (probabilities,) = signature(**{next(iter(signature.structured_input_signature[1])): raw}).values()
    assert probabilities.shape == (2, 10)
    assert np.allclose(probabilities.numpy().sum(axis=1), 1.0, atol=1e-5)


def test_mlflow_models_serve_answers_like_the_model_in_process(default_run, tfds_dir):
    import mlflow
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401

    store = default_run.store
    images, _ = tfds.as_numpy(tfds.load("digits", split="test[:16]", data_dir=str(tfds_dir), as_supervised=True,
                                        batch_size=-1))
    served = np.asarray(serve_and_predict("models:/digits@champion", store.env, {"inputs": images.tolist()}))
    mlflow.set_tracking_uri(store.uri)
    model = mlflow.keras.load_model("models:/digits@champion")
    local = model.predict(images, verbose=0)
    assert served.shape == local.shape
    assert np.array_equal(served.argmax(axis=1), local.argmax(axis=1))
    assert np.allclose(served, local, atol=1e-5)


def test_predict_prints_class_names_for_a_png(default_run, tfds_dir, tmp_path):
    import tensorflow_datasets as tfds
    from PIL import Image

    import components.datasets  # noqa: F401

    images, labels = tfds.as_numpy(tfds.load("digits", split="test[:5]", data_dir=str(tfds_dir), as_supervised=True,
                                             batch_size=-1))
    paths = []
    for index, image in enumerate(images):
        path = tmp_path / f"digit{index}.png"
        Image.fromarray((image.astype(np.float32) * 255 / 16).round().astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
    result = default_run.store.cli("predict", *paths, "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    predictions = json.loads(result.stdout)
    assert [p["input"] for p in predictions] == paths
    predicted = [int(p["top"][0]["class"]) for p in predictions]
    assert np.mean(np.array(predicted) == labels) >= 0.8  # 8-bit PNG rounding barely changes the 0-16 grey levels
    text = default_run.store.cli("predict", paths[0])
    assert text.returncode == 0 and text.stdout.startswith(f"{paths[0]}: ")
