"""Ingest: TFDS splits -> an Examples artifact (sharded TFRecord files per split plus spec.json).

The dataset is read through TFDS itself: a catalogue name (`name/config:version`)
in `data_dir`, a builder the project ships (components/datasets), or a prepared
TFDS directory. Each split is streamed from TFDS's own shards (images decoded once,
here) into shards of fixed-shape records (components/records.py), so no split is
ever whole in memory and later stages never decode an image again. The spec says
what the feature is (image, text, vector, sequence or a tabular dict of columns),
what the task is (classification or regression), and each split's digest.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from components import examples as ex
from components.records import STRING, Column, ShardWriter, digest
from components.properties import ExamplesProperties
from pipeline.artifacts import write_json
from pipeline.config import BeamConfig, ConfigError, DataConfig
from pipeline.locks import exclusive
from pipeline.names import SPEC_FILE, SPLITS


class DataError(ConfigError):
    """The dataset named in [data] cannot be used as configured (exit 2, nothing trained)."""


@dataclass(frozen=True)
class Source:
    builder: Any  # tfds.core.DatasetBuilder
    description: str  # how the user named it, for messages and lineage


def _is_directory_name(name: str) -> bool:
    return "/" in name and (os.sep in name and Path(name).exists() or name.startswith((".", "/", "~")))


def resolve_builder(config: DataConfig) -> Source:
    """Find the TFDS builder for `[data]`, or raise DataError saying what to change."""
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401  (registers the project's builders with TFDS)

    data_dir = config.data_dir or None
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not path.exists():
            raise DataError(f"data.data_dir = {data_dir!r} does not exist; point it at a TFDS data directory")
        if not path.is_dir():
            raise DataError(f"data.data_dir = {data_dir!r} is a file, not a directory; point it at a TFDS data directory")
        data_dir = str(path.resolve())
    name = config.name.strip()
    if ".." in Path(name).parts and not _is_directory_name(name):
        raise DataError(f"data.name = {name!r} may not contain '..'; give a TFDS name or a prepared directory path")
    if _is_directory_name(name):
        path = Path(name).expanduser()
        if not (path / "dataset_info.json").is_file():
            raise DataError(
                f"data.name = {name!r} is not a prepared TFDS directory (no dataset_info.json); "
                "give a TFDS name or a path like <data_dir>/fashion_mnist/3.0.1"
            )
        return Source(tfds.builder_from_directory(str(path.resolve())), str(path.resolve()))
    base = name.split("/")[0].split(":")[0]
    known = tfds.list_builders(with_community_datasets=False)
    if base not in known:
        close = difflib.get_close_matches(base, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `tfds.list_builders()` for names"
        raise DataError(f"data.name = {name!r} is not a TFDS dataset{hint}")
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:  # TFDS raises several types for unknown configs/versions
        raise DataError(f"data.name = {name!r} cannot be loaded by TFDS: {exc}") from None
    return Source(builder, name)


def _needs_download(builder: Any) -> bool:
    """Whether preparing this builder would reach the network (the project's builders never do)."""
    return not type(builder).__module__.startswith("components.datasets")


def ensure_prepared(source: Source, config: DataConfig, beam: BeamConfig | None = None) -> None:
    """Prepare the dataset through TFDS's download-and-prepare path if it is not prepared yet.

    A builder that prepares with Apache Beam gets the `[beam]` runner and options (`beam`), so a large
    dataset is prepared on the same Beam runner as validate's statistics; without them TFDS runs Beam's
    DirectRunner in this process.
    """
    import tensorflow_datasets as tfds

    builder = source.builder
    if not hasattr(builder, "download_and_prepare") or builder.is_prepared():
        return
    download: dict[str, Any] = {}
    if _needs_download(builder):
        download["manual_dir"] = _manual_dir(source, config)
    if beam is not None and beam.runner != "none":
        from components.beam_statistics import pipeline_options

        download["beam_options"] = pipeline_options(beam)
    kwargs = {"download_config": tfds.download.DownloadConfig(**download)} if download else {}
    # Two pipelines preparing one dataset at once would collide in TFDS's temporary directory.
    with exclusive(Path(builder.data_dir).parents[1] / f".{builder.name}.prepare.lock"):
        if not builder.is_prepared():
            builder.download_and_prepare(**kwargs)


def _manual_dir(source: Source, config: DataConfig) -> str:
    manual = config.manual_dir
    if not manual:
        raise DataError(
            f"dataset {source.description!r} is not prepared in {source.builder.data_dir} and preparing it would "
            "need a download, but this machine is offline; set data.data_dir to a directory that holds it "
            "prepared (or export TFDS_DATA_DIR), or data.manual_dir to a folder with its downloaded files"
        )
    if not Path(manual).is_dir():
        raise DataError(f"data.manual_dir = {manual!r} is not a directory")
    return str(Path(manual).resolve())


@dataclass(frozen=True)
class Layout:
    """What the configured feature and label are, and how their records are laid out."""

    feature: str  # the dataset's feature key
    label: str  # the dataset's label key
    kind: str  # image | text | vector | sequence | tabular
    task: str  # classification | regression
    columns: tuple[Column, ...]  # record columns: the feature's, then the label's, then extras
    tabular: dict[str, str] = field(default_factory=dict)  # column -> numeric | integer_categorical | string_categorical
    class_names: tuple[str, ...] = ()  # from a ClassLabel; otherwise learned from train
    resize: tuple[int, int] = ()  # images: (height, width) every image is resized to in the stream


def _unsupported(feature: str, what: str, change: str) -> DataError:
    return DataError(f"feature {feature!r} is {what}, which the pipeline does not support; {change}")


def _tabular_columns(feature: str, spec: Any, config: DataConfig) -> tuple[list[Column], dict[str, str]]:
    import tensorflow_datasets as tfds

    names = list(spec.keys())
    for column in (*config.categorical, *(n for cross in config.crosses for n in cross.split("*"))):
        if column not in names:
            raise DataError(f"data.categorical / data.crosses name {column!r}, which is not a column of feature "
                            f"{feature!r}; its columns are: {', '.join(names)}")
    columns, types = [], {}
    for name, sub in spec.items():
        where = f"{feature}.{name}"
        if isinstance(sub, (tfds.features.FeaturesDict, tfds.features.Sequence)) or tuple(sub.shape) != ():
            raise _unsupported(where, f"a nested or non-scalar column (shape {tuple(getattr(sub, 'shape', ()))})",
                               "tabular features must be dicts of scalar columns; set data.feature to another feature")
        dtype = np.dtype(sub.np_dtype)
        if isinstance(sub, tfds.features.Text) or dtype.kind in "OSU":
            types[name], column = "string_categorical", Column(ex.TABULAR_PREFIX + name, STRING)
        elif isinstance(sub, tfds.features.ClassLabel) or dtype.kind == "b" or name in config.categorical:
            if dtype.kind == "f":
                raise DataError(f"data.categorical names {name!r}, a float column; only integer or string "
                                "columns can be categorical")
            types[name], column = "integer_categorical", Column(ex.TABULAR_PREFIX + name, "int64")
        elif dtype.kind in "iuf":
            types[name], column = "numeric", Column(ex.TABULAR_PREFIX + name, "float32")
        else:
            raise _unsupported(where, f"a column of dtype {dtype}", "set data.feature to another feature")
        columns.append(column)
    return columns, types


def _feature_layout(feature: str, spec: Any, config: DataConfig) -> tuple[str, list[Column], dict[str, str], tuple]:
    """(kind, record columns, tabular column types, resize) of the feature, or an exit-2 DataError."""
    import tensorflow_datasets as tfds

    if isinstance(spec, tfds.features.FeaturesDict):
        columns, types = _tabular_columns(feature, spec, config)
        return "tabular", columns, types, ()
    if isinstance(spec, tfds.features.Video):
        raise _unsupported(feature, "a video", "set data.feature to an image, text, numeric or tabular feature")
    if isinstance(spec, (tfds.features.Sequence, tfds.features.Dataset)):
        raise _unsupported(feature, "a nested sequence of features",
                           "set data.feature to an image, text, numeric or tabular feature")
    dtype = np.dtype(spec.np_dtype)
    shape = tuple(spec.shape)
    if isinstance(spec, tfds.features.Text) or dtype.kind in "OSU":
        if shape != ():
            raise _unsupported(feature, f"a text feature of shape {shape}", "set data.feature to a single text")
        return "text", [Column(ex.FEATURE, STRING)], {}, ()
    if dtype.kind not in "iubf":
        raise _unsupported(feature, f"of dtype {dtype}", "set data.feature to an image, text or numeric feature")
    is_image = isinstance(spec, tfds.features.Image) or (dtype.kind in "iub" and len(shape) >= 2) or len(shape) == 3
    if is_image:
        if len(shape) not in (2, 3):
            raise _unsupported(feature, f"an image of shape {shape}", "set data.feature to an HxW or HxWxC image")
        resize: tuple = ()
        if None in shape[:2]:
            if not config.image_size:
                raise _unsupported(feature, f"an image of variable size {shape}",
                                   "set data.image_size = [height, width] to resize every image in the stream")
            resize = tuple(config.image_size)
            shape = (*resize, *shape[2:])
        if None in shape:
            raise _unsupported(feature, f"an image with an unknown channel count {shape}", "set data.feature")
        return "image", [Column(ex.FEATURE, str(dtype), shape)], {}, resize
    if None in shape:
        raise _unsupported(feature, f"a variable-length numeric feature of shape {shape}",
                           "set data.feature to a fixed-shape feature")
    if len(shape) <= 1:
        return "vector", [Column(ex.FEATURE, "float32", shape or (1,))], {}, ()
    if len(shape) == 2:
        return "sequence", [Column(ex.FEATURE, "float32", shape)], {}, ()
    raise _unsupported(feature, f"numeric of shape {shape}", "set data.feature to a feature of rank 1 to 3")


def _label_layout(label: str, spec: Any, config: DataConfig) -> tuple[str, Column, tuple[str, ...]]:
    """(task, label column, class names from a ClassLabel) of the label."""
    import tensorflow_datasets as tfds

    if isinstance(spec, tfds.features.FeaturesDict) or tuple(getattr(spec, "shape", ())) != ():
        raise DataError(f"label {label!r} is not a scalar; set data.label to a class or number per example")
    dtype = np.dtype(spec.np_dtype)
    names = tuple(spec.names) if isinstance(spec, tfds.features.ClassLabel) else ()
    if dtype.kind in "OSU":
        raise DataError(f"label {label!r} is text; set data.label to a ClassLabel, integer or float feature")
    task = config.task
    if task == "auto":
        task = "classification" if names or dtype.kind in "iub" else "regression"
    if task == "classification":
        if dtype.kind == "f":
            raise DataError(f"data.task = \"classification\" but label {label!r} is a float; "
                            "set data.task = \"regression\" (or \"auto\")")
        return task, Column(ex.LABEL, "int64"), names
    return task, Column(ex.LABEL, "float32"), ()


def _keys(builder: Any, config: DataConfig) -> tuple[str, str]:
    features = builder.info.features
    available = sorted(features.keys())
    supervised = builder.info.supervised_keys or (None, None)
    feature = config.feature or supervised[0]
    label = config.label or supervised[1]
    for role, key in (("feature", feature), ("label", label)):
        if not key or not isinstance(key, str):
            raise DataError(f"the dataset has no single {role} in its supervised_keys, so data.{role} must name "
                            f"one of: {', '.join(available)}")
        if key not in features:
            raise DataError(f"data.{role} = {key!r} is not a feature of the dataset; its features are: {', '.join(available)}")
    if config.slice_feature and config.slice_feature not in features:
        raise DataError(
            f"data.slice_feature = {config.slice_feature!r} is not a feature of the dataset; "
            f"its features are: {', '.join(available)}"
        )
    return feature, label


def layout(builder: Any, config: DataConfig) -> Layout:
    """The feature/label layout of the configured dataset; raises DataError (exit 2) before anything runs."""
    feature, label = _keys(builder, config)
    features = builder.info.features
    kind, columns, types, resize = _feature_layout(feature, features[feature], config)
    task, label_column, names = _label_layout(label, features[label], config)
    columns.append(label_column)
    if config.slice_feature:
        columns.append(Column(ex.SLICE, STRING))
    if task == "classification" and not names and f"{label}_name" in features:
        columns.append(Column(ex.LABEL_NAME, STRING))
    return Layout(feature, label, kind, task, tuple(columns), types, names, resize)


def check_selection(source: Source, config: DataConfig) -> None:
    """Check keys, feature kinds and split expressions against the prepared dataset, before anything is written."""
    layout(source.builder, config)
    splits = source.builder.info.splits
    for role in ("train", "validation", "test"):
        expression = getattr(config, f"{role}_split")
        try:
            count = splits[expression].num_examples
        except Exception as exc:  # TFDS raises ValueError/KeyError/AssertionError for bad splits
            available = ", ".join(sorted(splits.keys()))
            raise DataError(f"data.{role}_split = {expression!r} cannot be read ({exc}); "
                            f"the dataset's splits are: {available}") from None
        if count == 0:
            raise DataError(f"data.{role}_split = {expression!r} selects no examples; widen the split")


def _selection(found: Layout, config: DataConfig):
    """A tf.data map from a TFDS example to the record columns (decoded, resized, cast)."""
    import tensorflow as tf

    def select(example):
        out = {}
        if found.kind == "tabular":
            for column in found.columns:
                if column.name.startswith(ex.TABULAR_PREFIX):
                    value = example[found.feature][column.name.removeprefix(ex.TABULAR_PREFIX)]
                    out[column.name] = value if column.dtype == STRING else tf.cast(value, column.dtype)
        else:
            column = found.columns[0]
            value = example[found.feature]
            if found.resize:
                resized = tf.image.resize(value, found.resize)
                value = tf.cast(tf.round(resized), value.dtype) if value.dtype.is_integer else tf.cast(resized, value.dtype)
            out[ex.FEATURE] = value if column.dtype == STRING else tf.reshape(tf.cast(value, column.dtype), column.shape)
        out[ex.LABEL] = tf.cast(example[found.label], "int64" if found.task == "classification" else "float32")
        if config.slice_feature:
            out[ex.SLICE] = tf.strings.as_string(example[config.slice_feature]) \
                if example[config.slice_feature].dtype != tf.string else example[config.slice_feature]
        if any(c.name == ex.LABEL_NAME for c in found.columns):
            out[ex.LABEL_NAME] = example[f"{found.label}_name"]
        return out

    return select


def _write_split(builder: Any, found: Layout, config: DataConfig, expression: str, out: Path, split: str,
                 learned: dict[int, str]) -> tuple[list[str], int, float | None]:
    """Stream one split into shards; returns (shard names, examples, largest label)."""
    import tensorflow_datasets as tfds

    try:
        dataset = builder.as_dataset(split=expression, shuffle_files=False)
    except Exception as exc:
        raise DataError(f"split {expression!r} cannot be read: {exc}") from None
    if config.max_examples:
        dataset = dataset.take(config.max_examples)
    dataset = dataset.map(_selection(found, config)).batch(256)
    largest = None
    with ShardWriter(out, split, found.columns) as writer:
        for batch in tfds.as_numpy(dataset):
            writer.write_batch(batch)
            labels = batch[ex.LABEL]
            largest = float(labels.max()) if largest is None else max(largest, float(labels.max()))
            if split == "train" and ex.LABEL_NAME in batch:
                for index, name in zip(labels, batch[ex.LABEL_NAME]):
                    learned.setdefault(int(index), name.decode("utf-8") if isinstance(name, bytes) else str(name))
    return writer.files, writer.count, largest


def run(config: DataConfig, out: Path, beam: BeamConfig | None = None) -> ExamplesProperties:
    """Stream the configured splits from TFDS into shards under `out`, and describe them in spec.json;
    `beam` ([beam]) is the Beam runner a builder that prepares with Beam runs on."""
    source = resolve_builder(config)
    ensure_prepared(source, config, beam)
    builder = source.builder
    found = layout(builder, config)
    splits = {"train": config.train_split, "validation": config.validation_split, "test": config.test_split}
    shards, counts, digests = {}, {}, {}
    learned: dict[int, str] = {}
    largest_train = None
    for split, expression in splits.items():
        shards[split], counts[split], largest = _write_split(builder, found, config, expression, out, split, learned)
        if counts[split] == 0:
            raise DataError(f"data.{split}_split = {expression!r} selects no examples; widen the split")
        digests[split] = digest(out, shards[split])
        if split == "train":
            largest_train = largest
    class_names: list[str] = []
    if found.task == "classification":
        # Without a ClassLabel the classes are 0..max seen in train, so validate can flag a label
        # that only the other splits use.
        class_names = list(found.class_names) or [learned.get(i, str(i)) for i in range(int(largest_train) + 1)]
    feature_columns = [c for c in found.columns if c.name == ex.FEATURE or c.name.startswith(ex.TABULAR_PREFIX)]
    spec = {
        "dataset": source.description,
        "tfds_name": builder.info.name,
        "version": str(builder.info.version),
        "splits": splits,
        "feature": found.feature,
        "label": found.label,
        "slice_feature": config.slice_feature,
        "kind": found.kind,
        "shape": list(feature_columns[0].shape) if found.kind != "tabular" else [len(feature_columns)],
        "dtype": "dict" if found.kind == "tabular" else feature_columns[0].dtype,
        "tabular": found.tabular,
        "task": found.task,
        "num_classes": len(class_names),
        "class_names": class_names,
        "columns": [column.to_dict() for column in found.columns],
        "shards": shards,
        "counts": counts,
        "digests": digests,
    }
    write_json(out / SPEC_FILE, spec)
    ex.log_inputs(spec, out, {split: split for split in SPLITS})
    return ExamplesProperties(counts=counts, kind=found.kind, task=found.task, digests=digests)
