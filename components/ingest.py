"""Ingest: TFDS splits -> an Examples artifact (one .npz per split plus spec.json).

The dataset is read through TFDS itself: a catalogue name (`name/config:version`)
in `data_dir`, a builder the project ships (components/datasets), or a prepared
TFDS directory. Splits are stored as plain NumPy arrays so later stages and
tests read them without a TF graph; strings are stored as fixed-width unicode,
never pickled objects.
"""

from __future__ import annotations

import difflib
import fcntl
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import write_json
from pipeline.config import ConfigError, DataConfig
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


def ensure_prepared(source: Source, config: DataConfig) -> None:
    """Prepare the dataset through TFDS's download-and-prepare path if it is not prepared yet."""
    builder = source.builder
    if not hasattr(builder, "download_and_prepare") or builder.is_prepared():
        return
    kwargs: dict[str, Any] = {}
    if _needs_download(builder):
        kwargs["download_config"] = _manual_download_config(source, config)
    # Two pipelines preparing one dataset at once would collide in TFDS's temporary directory.
    lock_path = Path(builder.data_dir).parents[1] / f".{builder.name}.prepare.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            if not builder.is_prepared():
                builder.download_and_prepare(**kwargs)
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _manual_download_config(source: Source, config: DataConfig):
    import tensorflow_datasets as tfds

    manual = config.manual_dir
    if not manual:
        raise DataError(
            f"dataset {source.description!r} is not prepared in {source.builder.data_dir} and preparing it would "
            "need a download, but this machine is offline; set data.data_dir to a directory that holds it "
            "prepared (e.g. ../shared/tfds), or data.manual_dir to a folder with its downloaded files"
        )
    if not Path(manual).is_dir():
        raise DataError(f"data.manual_dir = {manual!r} is not a directory")
    return tfds.download.DownloadConfig(manual_dir=str(Path(manual).resolve()))


def _feature_kind(feature: Any) -> str:
    import tensorflow_datasets as tfds

    if isinstance(feature, tfds.features.Image):
        return "image"
    if isinstance(feature, tfds.features.Text) or np.dtype(feature.np_dtype).kind in "OSU":
        return "text"
    dtype = np.dtype(feature.np_dtype)
    shape = tuple(feature.shape)
    if dtype.kind in "iub" and len(shape) >= 2:
        return "image"
    if dtype.kind == "f" and len(shape) == 3:
        return "image"
    if dtype.kind == "f" and len(shape) in (1, 2):
        return "sequence"
    raise DataError(f"feature of shape {shape} and dtype {dtype} is not an image, text or numeric sequence")


def _keys(builder: Any, config: DataConfig) -> tuple[str, str]:
    features = builder.info.features
    available = sorted(features.keys())
    supervised = builder.info.supervised_keys or (None, None)
    feature = config.feature or supervised[0]
    label = config.label or supervised[1]
    for role, key in (("feature", feature), ("label", label)):
        if not key:
            raise DataError(
                f"the dataset has no supervised_keys, so data.{role} must name one of: {', '.join(available)}"
            )
        if key not in features:
            raise DataError(f"data.{role} = {key!r} is not a feature of the dataset; its features are: {', '.join(available)}")
    if config.slice_feature and config.slice_feature not in features:
        raise DataError(
            f"data.slice_feature = {config.slice_feature!r} is not a feature of the dataset; "
            f"its features are: {', '.join(available)}"
        )
    return feature, label


def check_selection(source: Source, config: DataConfig) -> None:
    """Check keys and split expressions against the prepared dataset, before anything is written."""
    _keys(source.builder, config)
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


def _split_arrays(builder: Any, split: str, keys: list[str], limit: int) -> dict[str, np.ndarray]:
    import tensorflow_datasets as tfds

    try:
        dataset = builder.as_dataset(split=split, shuffle_files=False)
    except Exception as exc:
        raise DataError(f"split {split!r} cannot be read: {exc}") from None
    if limit:
        dataset = dataset.take(limit)
    dataset = dataset.map(lambda example: {key: example[key] for key in keys})
    columns: dict[str, list] = {key: [] for key in keys}
    for batch in tfds.as_numpy(dataset.batch(4096)):
        for key in keys:
            columns[key].append(batch[key])
    arrays = {}
    for key in keys:
        values = np.concatenate(columns[key]) if columns[key] else np.zeros((0,))
        if values.dtype.kind in "OS":
            values = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in values], dtype=str)
        arrays[key] = values
    return arrays


def _class_names(builder: Any, label: str, arrays: dict[str, dict[str, np.ndarray]]) -> list[str]:
    """Names of the classes: a ClassLabel's names, else learned from the train split alone.

    Datasets such as clinc_oos store integer labels beside a "<label>_name" text feature. The
    number of classes comes from train only, so validate can flag a label that only other splits use.
    """
    import tensorflow_datasets as tfds

    feature = builder.info.features[label]
    if isinstance(feature, tfds.features.ClassLabel):
        return list(feature.names)
    train = arrays["train"]
    names = [str(i) for i in range(int(train[label].max()) + 1)]
    for index, name in zip(train[label], train.get(f"{label}_name", [])):
        names[int(index)] = str(name)
    return names


def run(config: DataConfig, out: Path) -> dict[str, Any]:
    """Read the configured splits through TFDS and write them to `out`."""
    source = resolve_builder(config)
    ensure_prepared(source, config)
    builder = source.builder
    feature, label = _keys(builder, config)
    kind = _feature_kind(builder.info.features[feature])
    keys = [feature, label]
    if config.slice_feature:
        keys.append(config.slice_feature)
    label_feature = builder.info.features[label]
    names_key = f"{label}_name"
    if names_key in builder.info.features and names_key not in keys:
        keys.append(names_key)

    arrays: dict[str, dict[str, np.ndarray]] = {}
    splits = {"train": config.train_split, "validation": config.validation_split, "test": config.test_split}
    for split, expression in splits.items():
        arrays[split] = _split_arrays(builder, expression, keys, config.max_examples)
        if len(arrays[split][label]) == 0:
            raise DataError(f"data.{split}_split = {expression!r} selects no examples; widen the split")

    label_dtype = np.dtype(label_feature.np_dtype)
    classification = label_dtype.kind in "iub"
    class_names = _class_names(builder, label, arrays) if classification else []
    counts, digests = {}, {}
    for split in SPLITS:
        columns = arrays[split]
        payload = {"x": columns[feature], "y": columns[label]}
        if config.slice_feature:
            payload["slice"] = columns[config.slice_feature]
        path = out / f"{split}.npz"
        np.savez(path, **payload)
        counts[split] = int(len(payload["y"]))
        digests[split] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]

    train_x = arrays["train"][feature]
    spec = {
        "dataset": source.description,
        "tfds_name": builder.info.name,
        "version": str(builder.info.version),
        "splits": splits,
        "feature": feature,
        "label": label,
        "slice_feature": config.slice_feature,
        "kind": kind,
        "shape": list(train_x.shape[1:]),
        "dtype": "string" if kind == "text" else str(train_x.dtype),
        "task": "classification" if classification else "regression",
        "num_classes": len(class_names) if classification else 0,
        "class_names": class_names,
        "counts": counts,
        "digests": digests,
    }
    write_json(out / SPEC_FILE, spec)
    _log_datasets(spec, arrays, feature, label, builder.data_dir)
    return spec


def _log_datasets(spec: dict[str, Any], arrays: dict[str, dict[str, np.ndarray]], feature: str, label: str,
                  source_dir: str) -> None:
    """Record each split as an MLflow dataset input with its TFDS source and digest (lineage)."""
    import warnings

    import mlflow

    for split in SPLITS:
        with warnings.catch_warnings():
            # MLflow registers two equivalent local-path source types and warns that it picked one.
            warnings.simplefilter("ignore", UserWarning)
            dataset = mlflow.data.from_numpy(
                arrays[split][feature],
                targets=arrays[split][label],
                source=str(source_dir),
                name=f"{spec['tfds_name']}-{split}",
                digest=spec["digests"][split],
            )
        tags = {"tfds_name": spec["dataset"], "tfds_version": spec["version"], "split": spec["splits"][split]}
        mlflow.log_input(dataset, context=split, tags=tags)
