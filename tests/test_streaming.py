"""The pieces of the streaming data plane, in process: record shards, mergeable statistics, batch-accumulated
metrics, and how ingest lays out each kind of TFDS feature (or refuses it, naming the setting to change)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from components import metrics, records
from components.statistics import CategoryStats, NumericStats, TextStats


def test_shards_round_trip_every_column_in_order(tmp_path):
    columns = (records.Column("x", "uint8", (3, 2)), records.Column("t", records.STRING),
               records.Column("y", "float32"))
    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (50, 3, 2), dtype=np.uint8)
    texts = np.array([f"example {i} é" for i in range(50)], dtype=object)
    y = rng.normal(size=50).astype(np.float32)
    with records.ShardWriter(tmp_path, "train", columns) as writer:
        writer.write_batch({"x": x, "t": texts, "y": y})
    assert writer.count == 50 and not list(tmp_path.glob("*.partial"))
    batches = list(records.iterate([tmp_path / name for name in writer.files], columns, batch_size=16))
    assert [len(b["y"]) for b in batches] == [16, 16, 16, 2]
    assert np.array_equal(np.concatenate([b["x"] for b in batches]), x)
    assert list(np.concatenate([b["t"] for b in batches])) == list(texts)
    assert np.array_equal(np.concatenate([b["y"] for b in batches]), y)


def test_a_failed_write_leaves_no_shard(tmp_path):
    columns = (records.Column("x", "float32", (2,)),)
    with pytest.raises(ValueError, match="expects shape"):
        with records.ShardWriter(tmp_path, "train", columns) as writer:
            writer.write({"x": np.zeros(2)})
            writer.write({"x": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("block", [0, 6])  # one example per record, or blocks of 6 (the last one partial)
def test_the_training_stream_sees_every_example_once_per_pass(tmp_path, block):
    columns = (records.Column("x", "float32", (1,)), records.Column("y", "int64"))
    with records.ShardWriter(tmp_path, "train", columns, block=block) as writer:
        writer.write_batch({"x": np.arange(40, dtype=np.float32)[:, None], "y": np.arange(40)})
    assert writer.count == 40
    ordered = list(records.iterate([tmp_path / f for f in writer.files], columns, batch_size=16, block=block))
    assert [len(b["y"]) for b in ordered] == [16, 16, 8]
    assert np.array_equal(np.concatenate([b["x"][:, 0] for b in ordered]), np.arange(40))
    stream = records.dataset([tmp_path / f for f in writer.files], columns, batch_size=8, shuffle=16, seed=1,
                             repeat=True, block=block)
    seen = [batch["y"].numpy() for batch, _ in zip(stream, range(10))]
    first, second = np.concatenate(seen[:5]), np.concatenate(seen[5:])
    assert sorted(first) == list(range(40)) and sorted(second) == list(range(40))
    assert not np.array_equal(first, second)  # reshuffled each pass
    again = records.dataset([tmp_path / f for f in writer.files], columns, batch_size=8, shuffle=16, seed=1, repeat=True,
                            block=block)
    assert np.array_equal(np.concatenate([b["y"].numpy() for b, _ in zip(again, range(5))]), first)  # seeded


@pytest.mark.parametrize("block", [0, 6])
def test_an_endless_stream_has_only_full_batches_that_run_across_passes(tmp_path, block):
    # 44 examples in batches of 8: a pass ends mid-batch. Every batch is still full (one traced shape
    # for the training step), and two passes' worth of batches holds every example exactly twice.
    columns = (records.Column("x", "float32", (1,)), records.Column("y", "int64"))
    with records.ShardWriter(tmp_path, "train", columns, block=block) as writer:
        writer.write_batch({"x": np.arange(44, dtype=np.float32)[:, None], "y": np.arange(44)})
    stream = records.dataset([tmp_path / f for f in writer.files], columns, batch_size=8, shuffle=16, seed=1,
                             repeat=True, block=block)
    seen = [batch["y"].numpy() for batch, _ in zip(stream, range(11))]
    assert [len(b) for b in seen] == [8] * 11
    assert np.array_equal(np.bincount(np.concatenate(seen), minlength=44), np.full(44, 2))


def test_numeric_statistics_merge_to_the_whole_split():
    rng = np.random.default_rng(0)
    values = rng.normal(3, 2, 10_000)
    values[::997] = np.nan
    values[::13] = 0
    whole, parts = NumericStats(), [NumericStats() for _ in range(3)]
    whole.update(values)
    for part, chunk in zip(parts, np.array_split(values, 3)):
        for batch in np.array_split(chunk, 7):
            part.update(batch)
    parts[0].merge(parts[1])
    parts[0].merge(parts[2])
    finite = values[np.isfinite(values)]
    for summary in (whole.summary(), parts[0].summary()):
        assert summary["mean"] == pytest.approx(finite.mean())
        assert summary["std"] == pytest.approx(finite.std())
        assert (summary["min"], summary["max"]) == (finite.min(), finite.max())
        assert summary["nan_count"] == int(np.isnan(values).sum())
        assert summary["zeros_share"] == pytest.approx(np.mean(values == 0))
        assert summary["quantiles"]["p50"] == pytest.approx(np.median(finite), abs=0.1)


def test_text_and_category_statistics():
    train = TextStats(vocabulary=__import__("collections").Counter())
    train.update(np.array(["Book a table", "", "a table for two"], dtype=object))
    summary = train.summary()
    assert (summary["length_min"], summary["length_max"], summary["empty_count"]) == (0, 4, 1)
    assert summary["vocabulary_size"] == 5
    test = TextStats(known=frozenset(train.vocabulary))
    test.update(np.array(["a table for three"], dtype=object))
    assert test.summary()["oov_rate"] == pytest.approx(0.25)
    categories = CategoryStats()
    categories.update(np.array(["m", "f", "m"], dtype=object))
    assert categories.summary()["top"][0] == ["m", 2]


def test_batch_accumulated_metrics_equal_whole_split_metrics():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(500, 4))
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = rng.integers(0, 4, 500)
    whole, batched = metrics.Classification(4, 2), metrics.Classification(4, 2)
    whole.update(probabilities, labels)
    for start in range(0, 500, 64):
        batched.update(probabilities[start:start + 64], labels[start:start + 64])
    expected, result = whole.result(), batched.result()
    assert result.pop("loss") == pytest.approx(expected.pop("loss"), rel=1e-12)  # sums in another order
    assert result.pop("ece") == pytest.approx(expected.pop("ece"), rel=1e-12)
    assert result == expected
    assert expected["accuracy"] == pytest.approx(np.mean(probabilities.argmax(1) == labels))
    assert whole.result()["loss"] == pytest.approx(-np.mean(np.log(probabilities[np.arange(500), labels])))
    # scikit-learn's per-class precision/recall/F1 equal the textbook formulas on the confusion matrix.
    matrix = np.zeros((4, 4), dtype=int)
    np.add.at(matrix, (labels, probabilities.argmax(1)), 1)
    precision = np.diag(matrix) / np.maximum(matrix.sum(axis=0), 1)
    recall = np.diag(matrix) / matrix.sum(axis=1)
    f1 = 2 * precision * recall / np.where(precision + recall > 0, precision + recall, 1)
    assert expected["confusion_matrix"] == matrix.tolist()
    assert expected["per_class"]["precision"] == pytest.approx(precision.tolist())
    assert expected["per_class"]["recall"] == pytest.approx(recall.tolist())
    assert expected["per_class"]["f1"] == pytest.approx(f1.tolist())
    assert expected["per_class"]["support"] == matrix.sum(axis=1).tolist()
    assert expected["macro_f1"] == pytest.approx(f1.mean())
    truth = rng.normal(size=300)
    predicted = truth + rng.normal(0, 0.5, 300)
    regression = metrics.Regression(expected=300)
    for start in range(0, 300, 70):
        regression.update(predicted[start:start + 70], truth[start:start + 70])
    result = regression.result()
    assert result["mae"] == pytest.approx(np.mean(np.abs(predicted - truth)))
    assert result["rmse"] == pytest.approx(np.sqrt(np.mean((predicted - truth) ** 2)))
    assert result["r2"] == pytest.approx(1 - np.sum((predicted - truth) ** 2) / np.sum((truth - truth.mean()) ** 2))


def _builder(features, supervised=(None, None)):
    return SimpleNamespace(info=SimpleNamespace(features=features, supervised_keys=supervised))


def _layout(feature, label=None, **data):
    import tensorflow_datasets as tfds

    from components import ingest
    from pipeline.config import DataConfig

    label = label or tfds.features.ClassLabel(num_classes=3)
    features = tfds.features.FeaturesDict({"f": feature, "label": label})
    return ingest.layout(_builder(features, ("f", "label")), DataConfig(**data))


def test_each_kind_of_feature_gets_its_layout():
    import tensorflow_datasets as tfds

    assert _layout(tfds.features.Image(shape=(28, 28, 1))).kind == "image"
    assert _layout(tfds.features.Tensor(shape=(8, 8), dtype=np.uint8)).kind == "image"
    assert _layout(tfds.features.Text()).kind == "text"
    vector = _layout(tfds.features.Tensor(shape=(10,), dtype=np.float32))
    assert (vector.kind, vector.columns[0].shape) == ("vector", (10,))
    assert _layout(tfds.features.Tensor(shape=(50, 2), dtype=np.float32)).kind == "sequence"
    resized = _layout(tfds.features.Image(shape=(None, None, 3)), image_size=[32, 24])
    assert (resized.resize, resized.columns[0].shape) == ((32, 24), (32, 24, 3))
    regression = _layout(tfds.features.Tensor(shape=(4,), dtype=np.float32), tfds.features.Scalar(dtype=np.float32))
    assert (regression.task, regression.columns[-1].dtype) == ("regression", "float32")
    forced = _layout(tfds.features.Tensor(shape=(4,), dtype=np.float32),
                     tfds.features.Tensor(shape=(), dtype=np.int64), task="regression")
    assert forced.task == "regression"
    table = _layout(tfds.features.FeaturesDict({"a": tfds.features.Tensor(shape=(), dtype=np.float32),
                                                "b": tfds.features.Tensor(shape=(), dtype=np.int64),
                                                "c": tfds.features.Text()}), categorical=["b"])
    assert table.kind == "tabular"
    assert table.tabular == {"a": "numeric", "b": "integer_categorical", "c": "string_categorical"}


@pytest.mark.parametrize("feature, label, data, words", [
    ("video", None, {}, ["feature 'f' is a video", "data.feature"]),
    ("nested", None, {}, ["feature 'f' is a nested sequence", "data.feature"]),
    ("variable_image", None, {}, ["variable size", "data.image_size"]),
    ("variable_vector", None, {}, ["variable-length", "data.feature"]),
    ("nested_column", None, {}, ["feature 'f.inner'", "scalar columns"]),
    ("vector", "text_label", {}, ["label 'label' is text", "data.label"]),
    ("vector", "float_label", {"task": "classification"}, ["label 'label' is a float", "data.task"]),
    ("table", None, {"categorical": ["missing"]}, ["'missing', which is not a column", "data.categorical"]),
])
def test_unsupported_features_are_refused_naming_the_setting(feature, label, data, words):
    import tensorflow_datasets as tfds

    from components.ingest import DataError

    features = {
        "video": tfds.features.Video(shape=(None, 4, 4, 3)),
        "nested": tfds.features.Sequence(tfds.features.Tensor(shape=(2,), dtype=np.float32)),
        "variable_image": tfds.features.Image(shape=(None, None, 3)),
        "variable_vector": tfds.features.Tensor(shape=(None,), dtype=np.float32),
        "nested_column": tfds.features.FeaturesDict({"inner": tfds.features.Tensor(shape=(3,), dtype=np.float32)}),
        "vector": tfds.features.Tensor(shape=(3,), dtype=np.float32),
        "table": tfds.features.FeaturesDict({"a": tfds.features.Tensor(shape=(), dtype=np.float32)}),
    }
    labels = {None: None, "text_label": tfds.features.Text(), "float_label": tfds.features.Scalar(dtype=np.float32)}
    with pytest.raises(DataError) as raised:
        _layout(features[feature], labels[label], **data)
    for word in words:
        assert word in str(raised.value)
