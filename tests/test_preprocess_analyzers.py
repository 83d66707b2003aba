"""Preprocess builds its layers from validate's train statistics, and they equal what Keras's adapt() learns.

On real data: fashion_mnist images stored (with TFDS's own writer) as numeric features the pipeline
reads as a sequence (28 rows of 28 channels) and as a vector (784 channels), and a slice of clinc_oos
for text. Each is ingested by the real component, its statistics computed by validate's pass, and the
layer preprocess builds compared with the same layer adapted on the raw train split.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from components import examples, preprocess, records, validate
from pipeline.artifacts import Artifact, write_json
from pipeline.config import DataConfig, load_config
from pipeline.names import SPLITS, STATISTICS_FILE
from tests.conftest import ROOT, ingested

SHARED_TFDS = Path(os.environ.get("TFDS_DATA_DIR") or ROOT.parent / "shared" / "tfds")
SLICE = 600  # fashion_mnist images per stored split
# The statistics accumulate in float64. adapt() on the same values given as float64 computes its moments
# in float64 too, so the two agree to the float32 the layer stores them in. adapt() on float32 values (how
# preprocess adapted before) computes the variance in float32: on these pixel rows that is off the exact
# variance by up to 1.4e-4 relative, hence the looser bound for that comparison.
ADAPT_RTOL = 1e-6
FLOAT32_ADAPT_RTOL = 1e-3


def numeric_fashion_dir(data_dir: Path) -> Path:
    """fashion_mnist train and test slices stored as float features: `rows` (28x28) and `pixels` (784)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    def split(expression: str) -> dict:
        images, labels = tfds.as_numpy(tfds.load("fashion_mnist", split=expression, data_dir=str(SHARED_TFDS),
                                                 as_supervised=True, batch_size=-1))
        rows = images[..., 0].astype(np.float32)
        return {"rows": rows, "pixels": rows.reshape(len(rows), -1), "label": labels}

    features = tfds.features.FeaturesDict({"rows": tfds.features.Tensor(shape=(28, 28), dtype=np.float32),
                                           "pixels": tfds.features.Tensor(shape=(784,), dtype=np.float32),
                                           "label": tfds.features.ClassLabel(num_classes=10)})
    builder = tfds.dataset_builders.store_as_tfds_dataset(
        name="fashion_numeric", version="1.0.0", features=features, data_dir=str(data_dir),
        split_datasets={name: tf.data.Dataset.from_tensor_slices(split(expression))
                        for name, expression in (("train", f"train[:{SLICE}]"), ("test", "test[:200]"))})
    return Path(builder.data_dir)


def numeric_data(directory: Path, feature: str) -> DataConfig:
    return replace(load_config(None).data, name=str(directory), feature=feature, label="label",
                   train_split="train[:80%]", validation_split="train[80%:]", test_split="test")


@pytest.fixture(scope="module")
def numeric(tmp_path_factory) -> dict[str, Artifact]:
    """The sequence and the vector reading of the stored fashion_mnist slices, ingested."""
    directory = numeric_fashion_dir(tmp_path_factory.mktemp("tfds"))
    return {feature: ingested(tmp_path_factory.mktemp(feature), numeric_data(directory, feature))
            for feature in ("rows", "pixels")}


def _adapted_normalization(artifact: Artifact, split: str, dtype: str = "float64"):
    import keras

    layer = keras.layers.Normalization(axis=-1)
    layer.adapt(np.concatenate([batch[examples.FEATURE] for batch in examples.iterate(artifact, split)]).astype(dtype))
    return layer


def _moments(layer) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(layer.mean).reshape(-1), np.asarray(layer.variance).reshape(-1)


@pytest.mark.parametrize("feature, kind, channels", [("rows", "sequence", 28), ("pixels", "vector", 784)])
def test_normalization_from_the_statistics_equals_adapt_on_the_train_split(numeric, feature, kind, channels):
    artifact = numeric[feature]
    spec = examples.spec(artifact)
    assert spec["kind"] == kind and spec["counts"]["train"] == 480
    statistics = validate.compute_statistics(artifact, spec)
    train = statistics["train"]["feature"]
    assert len(train["channel_mean"]) == len(train["channel_variance"]) == channels
    assert "channel_mean" not in statistics["validation"]["feature"]  # train only: what the layer is built on
    transform = preprocess.build_transform(artifact, spec, statistics, load_config(None).data)
    adapted = _adapted_normalization(artifact, "train")
    (mean, variance), (expected_mean, expected_variance) = _moments(transform.get_layer("normalization")), _moments(adapted)
    assert np.ptp(expected_variance) > 100  # channels differ: a single mean/variance would not pass
    np.testing.assert_allclose(mean, expected_mean, rtol=ADAPT_RTOL)
    np.testing.assert_allclose(variance, expected_variance, rtol=ADAPT_RTOL)
    float32_mean, float32_variance = _moments(_adapted_normalization(artifact, "train", "float32"))
    np.testing.assert_allclose(mean, float32_mean, rtol=FLOAT32_ADAPT_RTOL)
    np.testing.assert_allclose(variance, float32_variance, rtol=FLOAT32_ADAPT_RTOL)
    # The comparison can fail: the validation split's moments are not train's.
    other_mean, _ = _moments(_adapted_normalization(artifact, "validation"))
    assert not np.allclose(other_mean, expected_mean, rtol=1e-3)
    batch = next(examples.iterate(artifact, "validation", batch_size=64))[examples.FEATURE]
    np.testing.assert_allclose(transform(batch), adapted(batch), rtol=1e-5, atol=1e-5)


# -- text: the vocabulary ------------------------------------------------------------------------------------------

CLINC_SLICE = 3000  # train utterances: about 2,600 distinct tokens, most of them tied at counts 1 and 2


@pytest.fixture(scope="module")
def clinc(tmp_path_factory) -> tuple[Artifact, DataConfig]:
    data = replace(load_config(ROOT / "pipeline" / "configs" / "clinc_oos.toml").data, data_dir=str(SHARED_TFDS),
                   max_examples=CLINC_SLICE)
    return ingested(tmp_path_factory.mktemp("clinc"), data), data


def _train_stream(artifact: Artifact, spec: dict):
    """The raw train split as a tf.data stream of model inputs, as preprocess adapted on before."""
    stream = records.dataset(examples.paths(artifact.path, spec, "train"), examples.columns(spec), batch_size=512)
    return stream.map(lambda batch: examples.raw_inputs(batch, spec))


def _adapted_vectorization(artifact: Artifact, spec: dict, data: DataConfig):
    """TextVectorization as preprocess configures it, adapted on the raw train stream."""
    import keras

    layer = keras.layers.TextVectorization(max_tokens=data.vocab_size, output_sequence_length=data.sequence_length,
                                           standardize="lower_and_strip_punctuation")
    layer.adapt(_train_stream(artifact, spec))
    return layer


def test_token_counts_split_text_as_text_vectorization_does():
    """Non-ASCII capitals stay (TensorFlow lower-cases ASCII only), punctuation goes even inside words, and
    only ASCII whitespace splits (\\v does, \\x1c and a no-break space do not)."""
    import keras

    from components.statistics import KerasTokenCounts

    texts = np.array(["Ärger ärger DON'T don't", "a\x0bb a\x1cb c\u00a0d e\u2003f", "x-ray x.ray [UNK] [unk] ",
                      "naïve NAÏVE café, Café! 3.14 3,14", "  ", "tie tie b a a b Z z"], dtype=object)
    counts = KerasTokenCounts()
    counts.update(texts[:3])
    rest = KerasTokenCounts()
    rest.update(texts[3:])
    counts.merge(rest)
    layer = keras.layers.TextVectorization(standardize="lower_and_strip_punctuation")
    layer.adapt(texts)
    assert ["", "[UNK]", *counts.summary()["vocabulary"]] == layer.get_vocabulary()
    assert {"Ärger", "ärger", "a\x1cb", "c\u00a0d", "xray", "unk"} <= set(counts.counts)


@pytest.mark.parametrize("vocab_size", [400, 100_000])
def test_the_vocabulary_from_the_statistics_is_adapts_and_the_shards_are_the_same(clinc, tmp_path, vocab_size):
    """A cut inside the ties (400) and the whole vocabulary (100,000): same tokens in the same order, and
    every transformed split written by preprocess equals the adapted layer applied to the raw split."""
    import mlflow

    artifact, data = clinc
    data = replace(data, vocab_size=vocab_size)
    spec = examples.spec(artifact)
    statistics = validate.compute_statistics(artifact, spec)
    adapted = _adapted_vectorization(artifact, spec, data)
    expected = adapted.get_vocabulary()
    assert len(statistics["train"]["feature"]["vocabulary"]) > 2000
    assert len(expected) == min(vocab_size, len(statistics["train"]["feature"]["vocabulary"]) + 2)
    built = preprocess.build_transform(artifact, spec, statistics, data).get_layer("text_vectorization")
    assert built.get_vocabulary() == expected

    statistics_artifact = tmp_path / "statistics"
    statistics_artifact.mkdir()
    write_json(statistics_artifact / STATISTICS_FILE, statistics)
    out = tmp_path / "transform"
    out.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
        with mlflow.start_run():
            written = preprocess.run(artifact, Artifact("Statistics", str(statistics_artifact), "test", "test"),
                                     data, out)
    columns = records.columns_from(written.columns)
    for split in SPLITS:
        shards = records.iterate([out / name for name in written.shards[split]], columns, block=written.block)
        found = np.concatenate([batch[examples.FEATURE] for batch in shards])
        raw = np.concatenate([batch[examples.FEATURE] for batch in examples.iterate(artifact, split)])
        np.testing.assert_array_equal(found, np.asarray(adapted(raw)))


# -- tabular: FeatureSpace ----------------------------------------------------------------------------------------


def passengers_examples(tmp_path_factory) -> tuple[Artifact, DataConfig]:
    """The tabular dataset tests/test_data_plane.py trains on (two numeric, a string and an integer column),
    ingested."""
    from tests.test_data_plane import passengers_dataset

    directory = passengers_dataset(tmp_path_factory.mktemp("tabular-tfds"))
    data = replace(load_config(None).data, name=str(directory), feature="features", label="survived",
                   train_split="train[:80%]", validation_split="train[80%:]", test_split="test",
                   categorical=["pclass"], crosses=["sex*pclass"])
    return ingested(tmp_path_factory.mktemp("passengers"), data), data


@pytest.fixture(scope="module")
def passengers(tmp_path_factory) -> tuple[Artifact, DataConfig]:
    return passengers_examples(tmp_path_factory)


def test_the_feature_space_from_the_statistics_encodes_as_the_adapted_one(passengers):
    import keras

    artifact, data = passengers
    spec = examples.spec(artifact)
    assert spec["tabular"] == {"age": "numeric", "fare": "numeric", "sex": "string_categorical",
                               "pclass": "integer_categorical"}
    statistics = validate.compute_statistics(artifact, spec)
    columns = statistics["train"]["feature"]["columns"]
    transform = preprocess.build_transform(artifact, spec, statistics, data)

    space = keras.utils.FeatureSpace
    adapted = space(features={"age": space.float_normalized(), "fare": space.float_normalized(),
                              "sex": space.string_categorical(num_oov_indices=1),
                              "pclass": space.integer_categorical(num_oov_indices=1)},
                    crosses=[space.cross(feature_names=("sex", "pclass"), crossing_dim=32)], output_mode="concat")
    adapted.adapt(_train_stream(artifact, spec))
    assert columns["sex"]["vocabulary"] == adapted.preprocessors["sex"].get_vocabulary()[1:]
    assert columns["pclass"]["vocabulary"] == adapted.preprocessors["pclass"].get_vocabulary()[1:]
    assert sorted(columns["pclass"]["vocabulary"]) == [1, 2, 3] and "vocabulary" not in columns["age"]
    for name in ("age", "fare"):
        mean, variance = _moments(adapted.preprocessors[name])
        np.testing.assert_allclose([columns[name]["mean"], columns[name]["std"] ** 2], [mean[0], variance[0]],
                                   rtol=1e-5)
    reference = keras.Model(adapted.get_inputs(), adapted.get_encoded_features())
    for split in SPLITS:
        for batch in examples.iterate(artifact, split, batch_size=256):
            inputs = examples.raw_inputs(batch, spec)
            np.testing.assert_allclose(np.asarray(transform(inputs)), np.asarray(reference(inputs)),
                                       rtol=1e-5, atol=1e-5)
