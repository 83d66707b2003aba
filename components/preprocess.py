"""Preprocess: Keras preprocessing layers built on train only, and the transformed splits as shards.

Images get a `Normalization` from validate's train statistics (one mean and
variance over all pixels: constant border pixels would get a zero variance per
pixel); numeric vectors and sequences a per-channel `Normalization` from the
train statistics' channel moments; text a `TextVectorization` whose vocabulary is
the train statistics' token ranking, cut to [data] vocab_size (sequence length from [data]); tabular dicts a
`keras.utils.FeatureSpace` (normalised numbers, integer and string lookups,
optional hashed crosses) from the train statistics' columns. The layers are saved as
`transform.keras`, a model from raw inputs to what the core model trains on, so
train can put it in front of the model it exports: the served model takes raw
inputs (the raw dict, for tabular data). Every split is then transformed once
and written as shards, so training epochs never repeat this work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components import examples as ex
from components import records
from components.records import Column, ShardWriter
from components.statistics import KERAS_RESERVED
from components.properties import TransformProperties
from pipeline.artifacts import Artifact, read_json
from pipeline.config import DataConfig
from pipeline.names import RAW_SAMPLE, SPLITS, STATISTICS_FILE, TRANSFORM_MODEL, VOCABULARY_TEXT

BATCH = 512  # examples transformed per step while materialising
BLOCK = 128  # examples per record of the transformed shards (see records.ShardWriter)


def _tabular_space(spec: dict[str, Any], config: DataConfig, columns: dict[str, dict[str, Any]]):
    """A FeatureSpace whose layers come from the train statistics' `columns`: normalised numbers from their
    moments, integer and string lookups from their ranked values, hashed crosses (nothing to learn)."""
    import keras

    space = keras.utils.FeatureSpace

    def feature(name: str, kind: str):
        stats = columns[name]
        if kind == "numeric":
            return space.feature("float32", keras.layers.Normalization(axis=-1, mean=stats["mean"],
                                                                       variance=stats["std"] ** 2), "float")
        lookup = keras.layers.IntegerLookup if kind == "integer_categorical" else keras.layers.StringLookup
        return space.feature("int32" if kind == "integer_categorical" else "string",
                             lookup(vocabulary=stats["vocabulary"], num_oov_indices=1), "one_hot")

    features = {name: feature(name, kind) for name, kind in spec["tabular"].items()}
    crosses = [space.cross(feature_names=tuple(cross.split("*")), crossing_dim=32) for cross in config.crosses]
    built = space(features=features, crosses=crosses or None, output_mode="concat")
    # FeatureSpace exempts only a Normalization given its moments (and a TextVectorization given its
    # vocabulary) from adapt(); its lookups here have their vocabularies too, so nothing is left to adapt.
    built._is_adapted = True
    return built


def build_transform(examples: Artifact, spec: dict[str, Any], statistics: dict[str, Any], config: DataConfig):
    """A Keras model from raw inputs to the core model's inputs, its layers built on train only."""
    import keras

    kind = spec["kind"]
    if kind == "tabular":
        space = _tabular_space(spec, config, statistics["train"]["feature"]["columns"])
        return keras.Model(space.get_inputs(), space.get_encoded_features(), name="transform")
    if kind == "text":
        # The train vocabulary ranked as adapt() ranks it; the layer keeps its mask and OOV tokens in front.
        learned = statistics["train"]["feature"]["vocabulary"][:config.vocab_size - len(KERAS_RESERVED)]
        layer = keras.layers.TextVectorization(max_tokens=config.vocab_size, output_sequence_length=config.sequence_length,
                                               standardize="lower_and_strip_punctuation", vocabulary=learned,
                                               name="text_vectorization")
        inputs = keras.Input(shape=(), dtype="string", name="raw_inputs")
    else:
        inputs = keras.Input(shape=tuple(spec["shape"]), dtype="float32", name="raw_inputs")
        train = statistics["train"]["feature"]
        if kind == "image":
            layer = keras.layers.Normalization(axis=None, mean=train["mean"], variance=train["std"] ** 2,
                                               name="normalization")
        else:
            layer = keras.layers.Normalization(axis=-1, mean=train["channel_mean"],
                                               variance=train["channel_variance"], name="normalization")
    return keras.Model(inputs, layer(inputs), name="transform")


def _materialize(examples: Artifact, spec: dict[str, Any], transform, split: str, out: Path,
                 core: Column) -> tuple[list[str], int]:
    """Transform one split batch by batch and write it as shards of core inputs and labels, in blocks."""
    columns = [core, *(c for c in ex.columns(spec) if c.name == ex.LABEL)]
    stream = records.dataset(ex.paths(examples.path, spec, split), ex.columns(spec), batch_size=BATCH)

    def apply(batch):
        return {ex.FEATURE: transform(ex.raw_inputs(batch, spec)),
                **{c.name: batch[c.name] for c in columns[1:]}}

    with ShardWriter(out, split, columns, block=BLOCK) as writer:
        for batch in stream.map(apply).as_numpy_iterator():
            writer.write_batch(batch)
    return writer.files, writer.count


def _raw_sample(examples: Artifact, spec: dict[str, Any], out: Path) -> None:
    """A few raw train inputs: the served model's signature example (tabular: one array per column)."""
    batch = next(ex.iterate(examples, "train", batch_size=8))
    inputs = ex.raw_inputs(batch, spec)
    arrays = inputs if isinstance(inputs, dict) else {"x": inputs}
    np.savez(out / RAW_SAMPLE, **{name: value.astype(str) if value.dtype == object else value
                                  for name, value in arrays.items()})


def run(examples: Artifact, statistics: Artifact, config: DataConfig, out: Path) -> TransformProperties:
    import mlflow

    spec = ex.spec(examples)
    stats = read_json(statistics.file(STATISTICS_FILE))
    transform = build_transform(examples, spec, stats, config)
    transform.save(out / TRANSFORM_MODEL)
    _raw_sample(examples, spec, out)

    output = transform.outputs[0]
    core = Column(ex.FEATURE, "int64" if spec["kind"] == "text" else "float32", tuple(output.shape[1:]))
    shards, counts = {}, {}
    for split in SPLITS:
        shards[split], counts[split] = _materialize(examples, spec, transform, split, out, core)

    kind = spec["kind"]
    by_kind: dict[str, Any] = {}
    if kind == "text":
        vocabulary = transform.get_layer("text_vectorization").get_vocabulary()
        by_kind["vocab_size"] = len(vocabulary)
        mlflow.log_metric("vocabulary_size", len(vocabulary))
        mlflow.log_text("\n".join(vocabulary), VOCABULARY_TEXT)
    elif kind != "tabular":
        layer = transform.get_layer("normalization")
        mean = float(np.mean(np.asarray(layer.mean)))
        std = float(np.sqrt(np.mean(np.asarray(layer.variance))))
        by_kind = {"raw_max": stats["train"]["feature"]["max"], "mean": mean, "std": std}
        mlflow.log_metrics({"train_mean": mean, "train_std": std})
    else:
        by_kind["encoded_size"] = int(core.shape[0])
        mlflow.log_metric("encoded_size", int(core.shape[0]))
    return TransformProperties(
        input_kind={"text": "tokens", "tabular": "vector"}.get(kind, kind),
        input_shape=list(core.shape),
        raw_kind=kind,
        raw_shape=spec["shape"],
        raw_dtype="string" if kind == "text" else spec["dtype"],
        raw_columns=spec["tabular"],
        task=spec["task"],
        num_classes=spec["num_classes"],
        class_names=spec["class_names"],
        columns=[c.to_dict() for c in (core, *(c for c in ex.columns(spec) if c.name == ex.LABEL))],
        block=BLOCK,
        shards=shards,
        counts=counts,
        digests={split: records.digest(out, shards[split]) for split in SPLITS},
        examples={"uri": examples.uri, **{key: spec[key] for key in
                                          ("dataset", "tfds_name", "version", "splits", "counts", "digests")}},
        **by_kind,
    )
