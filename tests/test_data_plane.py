"""The streaming data plane end to end on tiny TFDS datasets built here: tabular dicts, regression on
numeric vectors, and the exit-2 errors for features the pipeline does not take."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.names import SPEC_FILE, TAG_STAGE
from tests.serving import serve_and_predict

pytestmark = pytest.mark.slow

# No search, few epochs, any accuracy blessed: what each run here needs besides its own settings.
QUICK = ("--set", "tune.enabled=false", "--set", "evaluate.min_accuracy=0", "-q")
TABULAR_COLUMNS = {"age": "numeric", "fare": "numeric", "sex": "string_categorical", "pclass": "integer_categorical"}


def _prepare(data_dir: Path, name: str, features, splits: dict) -> Path:
    """Store in-memory splits as a prepared TFDS dataset (TFDS's own writer) and return its directory."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name=name, version="1.0.0", features=features, data_dir=str(data_dir),
        split_datasets={split: tf.data.Dataset.from_tensor_slices(data) for split, data in splits.items()})
    return Path(builder.data_dir)


def _passengers(count: int, seed: int) -> dict:
    """Titanic-shaped rows: survival depends on sex and class, so a model can learn it."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], count)
    pclass = rng.integers(1, 4, count)
    age = rng.normal(35, 12, count).astype(np.float32)
    survived = ((sex == "female") & (pclass < 3)) | ((sex == "male") & (pclass == 1) & (age < 30))
    return {"features": {"age": age, "fare": (rng.gamma(2, 20, count) / pclass).astype(np.float32),
                         "sex": sex, "pclass": pclass.astype(np.int64)},
            "survived": survived.astype(np.int64)}


def passengers_dataset(directory: Path) -> Path:
    """A prepared TFDS directory of synthetic passengers: numeric, text and integer columns, a class label."""
    import tensorflow_datasets as tfds

    features = tfds.features.FeaturesDict({
        "features": tfds.features.FeaturesDict({
            "age": tfds.features.Tensor(shape=(), dtype=np.float32),
            "fare": tfds.features.Tensor(shape=(), dtype=np.float32),
            "sex": tfds.features.Text(),
            "pclass": tfds.features.Tensor(shape=(), dtype=np.int64)}),
        "survived": tfds.features.ClassLabel(names=["died", "survived"])})
    return _prepare(directory, "passengers", features, {"train": _passengers(400, 0), "test": _passengers(120, 1)})


@pytest.fixture(scope="module")
def tabular_dir(tmp_path_factory) -> Path:
    return passengers_dataset(tmp_path_factory.mktemp("tabular"))


def _runs(store, name: str) -> dict:
    client = store.client()
    experiment = client.get_experiment_by_name(name)
    return {r.data.tags[TAG_STAGE]: r for r in client.search_runs([experiment.experiment_id])
            if TAG_STAGE in r.data.tags}


def test_tabular_dict_trains_and_the_champion_takes_the_raw_dict_over_rest(store, tabular_dir):
    import mlflow

    result = store.cli("run", "--set", f"data.name={tabular_dir}", "--set", "data.feature=features",
                       "--set", "data.label=survived", "--set", "data.train_split=train[:80%]",
                       "--set", "data.validation_split=train[80%:]", "--set", "data.test_split=test",
                       "--set", 'data.categorical=["pclass"]', "--set", 'data.crosses=["sex*pclass"]',
                       "--set", "pipeline.name=passengers", "--set", "train.epochs=12", *QUICK)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = _runs(store, "passengers")
    examples = Path(runs["ingest"].data.tags["pipeline.artifact_dir"])
    spec = json.loads((examples / SPEC_FILE).read_text())
    assert spec["kind"] == "tabular" and spec["task"] == "classification"
    assert spec["tabular"] == TABULAR_COLUMNS
    assert spec["class_names"] == ["died", "survived"]
    assert all(name.endswith(".tfrecord") for names in spec["shards"].values() for name in names)
    assert runs["evaluate"].data.metrics["accuracy"] > 0.75  # the rule is learnable from sex and class

    rows = {"age": [22.0, 40.0], "fare": [70.0, 8.0], "sex": ["female", "male"], "pclass": [1, 3]}
    served = np.asarray(serve_and_predict("models:/passengers@champion", store.env, {"inputs": rows}))
    mlflow.set_tracking_uri(store.uri)
    model = mlflow.keras.load_model("models:/passengers@champion")
    local = model.predict({"age": np.array(rows["age"], np.float32), "fare": np.array(rows["fare"], np.float32),
                           "sex": np.array(rows["sex"], dtype=object), "pclass": np.array(rows["pclass"])},
                          verbose=0)
    assert served.shape == (2, 2)
    assert np.allclose(served, local, atol=1e-5)

    answer = store.cli("predict", "--name", "passengers", "--json",
                       json.dumps([{k: v[0] for k, v in rows.items()}, {k: v[1] for k, v in rows.items()}]))
    assert answer.returncode == 0, answer.stderr[-2000:]
    printed = json.loads(answer.stdout)
    assert [r["top"][0]["class"] for r in printed] == [["died", "survived"][int(i)] for i in local.argmax(axis=1)]
    incomplete = store.cli("predict", "--name", "passengers", '{"age": 30, "fare": 10, "sex": "male"}')
    assert incomplete.returncode == 2
    assert "lacks column(s) pclass" in incomplete.stderr


@pytest.fixture(scope="module")
def vector_dir(tmp_path_factory) -> Path:
    """y = x . w + noise over 8-dimensional vectors: a float label, so regression."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(3)
    weights = rng.normal(size=8).astype(np.float32)

    def split(count: int) -> dict:
        x = rng.normal(size=(count, 8)).astype(np.float32)
        return {"x": x, "y": (x @ weights + rng.normal(0, 0.1, count)).astype(np.float32)}

    features = tfds.features.FeaturesDict({"x": tfds.features.Tensor(shape=(8,), dtype=np.float32),
                                           "y": tfds.features.Scalar(dtype=np.float32)})
    return _prepare(tmp_path_factory.mktemp("vector"), "linear_vectors", features,
                    {"train": split(600), "test": split(200)})


def test_regression_on_vectors_blesses_by_mae_and_predict_prints_numbers(store, vector_dir):
    common = ("--set", f"data.name={vector_dir}", "--set", "data.feature=x", "--set", "data.label=y",
              "--set", "data.train_split=train[:80%]", "--set", "data.validation_split=train[80%:]",
              "--set", "data.test_split=test", "--set", "pipeline.name=linear", "--set", "train.epochs=20",
              "--set", "model.dropout=0.0", *QUICK)
    strict = store.cli("run", *common, "--set", "evaluate.max_mae=0.000001")
    assert strict.returncode == 0, strict.stderr[-3000:]
    runs = _runs(store, "linear")
    examples = Path(runs["ingest"].data.tags["pipeline.artifact_dir"])
    spec = json.loads((examples / SPEC_FILE).read_text())
    assert (spec["kind"], spec["task"], spec["shape"]) == ("vector", "regression", [8])
    metrics = runs["evaluate"].data.metrics
    assert {"mse", "rmse", "mae", "r2"} <= set(metrics)
    assert metrics["r2"] > 0.5  # a linear target is learnt well above the mean's R^2 of 0
    assert metrics["blessed"] == 0.0 and "mae" in strict.stdout + strict.stderr
    client = store.client()
    artifacts = {a.path for a in client.list_artifacts(runs["evaluate"].info.run_id)}
    assert "predictions.png" in artifacts and "confusion_matrix.png" not in artifacts
    assert runs["push"].data.tags.get("pipeline.push", "").startswith("not pushed")

    lenient = store.cli("run", *common, "--set", "evaluate.max_mae=100")
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    assert "test MAE" in lenient.stdout + lenient.stderr
    answer = store.cli("predict", "--name", "linear", json.dumps(np.eye(8)[:2].tolist()))
    assert answer.returncode == 0, answer.stderr[-2000:]
    lines = answer.stdout.strip().splitlines()
    assert len(lines) == 2 and all(np.isfinite(float(line.split(":")[1])) for line in lines)


def test_an_unsupported_feature_exits_2_before_any_run(store, tmp_path):
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)
    features = tfds.features.FeaturesDict({"clip": tfds.features.Video(shape=(2, 4, 4, 3)),
                                           "label": tfds.features.ClassLabel(num_classes=2)})
    prepared = _prepare(tmp_path / "video", "tiny_videos", features, {
        "train": {"clip": rng.integers(0, 255, (8, 2, 4, 4, 3), dtype=np.uint8), "label": np.arange(8) % 2}})
    result = store.cli("run", "--set", f"data.name={prepared}", "--set", "data.feature=clip",
                       "--set", "data.label=label", "--set", "data.validation_split=train",
                       "--set", "data.test_split=train", "-q")
    assert result.returncode == 2
    assert "feature 'clip' is a video" in result.stderr and "data.feature" in result.stderr
    client = store.client()
    experiment = client.get_experiment_by_name("digits")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
