"""Any TFDS dataset, image or text, read through TFDS itself, offline; validation that catches bad data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pipeline.names import SPEC_FILE, TAG_STAGE

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
# The offline TFDS copies: TFDS_DATA_DIR as the Makefile exports it, else the development copy beside the checkout.
SHARED_TFDS = Path(os.environ.get("TFDS_DATA_DIR") or ROOT.parent / "shared" / "tfds")
FASHION = str(ROOT / "pipeline" / "configs" / "fashion_mnist.toml")
CLINC = str(ROOT / "pipeline" / "configs" / "clinc_oos.toml")
UP_TO_PREPROCESS = ("--set", "tune.enabled=false", "--set", "data.max_examples=300", "-q")


def _spec(store, name: str) -> dict:
    (examples,) = [p for p in (store.root / "pipeline" / name / "ingest").iterdir()
                   if p.is_dir() and not p.name.endswith(".partial")]
    return json.loads((examples / SPEC_FILE).read_text())


@pytest.mark.parametrize("dataset", ["fashion_mnist", "fashion_mnist:3.0.1", str(SHARED_TFDS / "fashion_mnist" / "3.0.1")])
def test_fashion_mnist_by_name_version_or_prepared_directory(store, dataset):
    result = store.cli("tune", "--config", FASHION, "--set", f"data.name={dataset}",
                       "--set", f"data.data_dir={SHARED_TFDS}", *UP_TO_PREPROCESS)
    assert result.returncode == 0, result.stderr[-3000:]
    spec = _spec(store, "fashion_mnist")
    assert spec["shape"] == [28, 28, 1] and spec["kind"] == "image" and spec["dtype"] == "uint8"
    assert spec["class_names"][0] == "T-shirt/top" and spec["num_classes"] == 10  # from the ClassLabel
    assert spec["counts"] == {"train": 300, "validation": 300, "test": 300}
    assert spec["feature"] == "image" and spec["label"] == "label"  # from supervised_keys
    assert spec["version"] == "3.0.1"


def test_download_and_prepare_into_an_empty_data_dir_from_manual_files(store, tmp_path):
    data_dir = tmp_path / "fresh_tfds"
    data_dir.mkdir()
    offline = store.cli("tune", "--config", FASHION, "--set", f"data.data_dir={data_dir}", *UP_TO_PREPROCESS)
    assert offline.returncode == 2
    assert "would need a download" in offline.stderr and "data.manual_dir" in offline.stderr

    prepared = store.cli("tune", "--config", FASHION, "--set", f"data.data_dir={data_dir}",
                         "--set", f"data.manual_dir={SHARED_TFDS / 'downloads' / 'manual'}", *UP_TO_PREPROCESS)
    assert prepared.returncode == 0, prepared.stderr[-3000:]
    info = json.loads((data_dir / "fashion_mnist" / "3.0.1" / "dataset_info.json").read_text())
    assert {split["name"]: int(split["shardLengths"][0]) for split in info["splits"]} == {"train": 60000, "test": 10000}


def test_text_pipeline_end_to_end_raw_strings_in_intent_out(store):
    result = store.cli("run", "--config", CLINC, "--set", f"data.data_dir={SHARED_TFDS}",
                       "--set", "data.max_examples=2000", "--set", "tune.enabled=false",
                       "--set", "train.epochs=4", "--set", "model.attention=dot", "--set", "evaluate.min_accuracy=0",
                       "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    spec = _spec(store, "clinc_oos")
    assert spec["kind"] == "text" and spec["feature"] == "text" and spec["label"] == "intent"
    assert len(spec["class_names"]) >= 140 and "restaurant_reservation" in spec["class_names"]

    import mlflow

    mlflow.set_tracking_uri(store.uri)
    model = mlflow.keras.load_model("models:/clinc_oos@champion")
    assert model.inputs[0].dtype == "string"
    probabilities = model.predict(np.array(["what is my bank balance", "book a table for two at 7pm"], dtype=object),
                                  verbose=0)
    assert probabilities.shape == (2, len(spec["class_names"]))

    predicted = store.cli("predict", "--name", "clinc_oos", "--json", "book a table for two at 7pm tonight")
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    (answer,) = json.loads(predicted.stdout)
    assert answer["top"][0]["class"] in spec["class_names"]  # an intent name, not an index

    client = store.client()
    experiment = client.get_experiment_by_name("clinc_oos")
    (evaluate,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_STAGE}` = 'evaluate'")
    artifacts = {a.path for a in client.list_artifacts(evaluate.info.run_id)}
    assert "slices.json" in artifacts  # accuracy per domain
    (validate,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_STAGE}` = 'validate'")
    assert 0.0 <= validate.data.metrics["test.oov_rate"] < 0.5


def _prepare_bad_labels(data_dir: Path) -> Path:
    """A tiny TFDS dataset, prepared by TFDS, whose test split uses a label the train split never has."""
    import tensorflow_datasets as tfds

    rng = np.random.default_rng(0)

    def examples(count: int, classes: int):
        import tensorflow as tf

        return tf.data.Dataset.from_tensor_slices({
            "image": rng.integers(0, 255, (count, 4, 4), dtype=np.uint8),
            "label": np.arange(count, dtype=np.int64) % classes})

    features = tfds.features.FeaturesDict({"image": tfds.features.Tensor(shape=(4, 4), dtype=np.uint8),
                                           "label": tfds.features.Tensor(shape=(), dtype=np.int64)})
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name="unseen_label_digits", version="1.0.0", features=features, data_dir=str(data_dir),
        split_datasets={"train": examples(60, 3), "test": examples(30, 6)})
    return Path(builder.data_dir)


def test_an_unseen_label_stops_the_run_at_validate(store, tmp_path):
    prepared = _prepare_bad_labels(tmp_path / "bad_tfds")
    result = store.cli("run", "--set", f"data.name={prepared}", "--set", "data.feature=image", "--set", "data.label=label",
                       "--set", "data.validation_split=train[80%:]",
                       "--set", "data.train_split=train[:80%]", "--set", "data.max_label_drift=1.0", "-q")
    assert result.returncode == 1
    assert "label_out_of_schema in test" in result.stderr
    client = store.client()
    experiment = client.get_experiment_by_name("digits")
    stages = {r.data.tags[TAG_STAGE]: r.info.status for r in client.search_runs([experiment.experiment_id])
              if TAG_STAGE in r.data.tags}
    assert stages == {"ingest": "FINISHED", "validate": "FAILED"}
    (validate,) = [r for r in client.search_runs([experiment.experiment_id]) if r.data.tags.get(TAG_STAGE) == "validate"]
    report = {a.path for a in client.list_artifacts(validate.info.run_id)}
    assert "validation_report.md" in report and "anomalies.json" in report
