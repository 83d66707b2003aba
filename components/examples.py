"""The Examples artifact as later stages read it: its spec, its shards, and its lineage in MLflow.

Ingest writes `spec.json` beside the shards; every other stage reads a split through the helpers
here, so the layout of the artifact is known to this module and to ingest only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from components import records
from pipeline.artifacts import Artifact, read_json
from pipeline.names import SPEC_FILE

FEATURE = "x"  # record column of the feature; a tabular column `c` is "x/c"
LABEL = "y"
SLICE = "slice"
LABEL_NAME = "y_name"  # the dataset's "<label>_name" text, where it has one (class names)
TABULAR_PREFIX = FEATURE + "/"


def spec(examples: Artifact) -> dict[str, Any]:
    return read_json(examples.file(SPEC_FILE))


def columns(spec: dict[str, Any]) -> tuple[records.Column, ...]:
    return records.columns_from(spec["columns"])


def feature_columns(spec: dict[str, Any]) -> tuple[records.Column, ...]:
    return tuple(c for c in columns(spec) if c.name == FEATURE or c.name.startswith(TABULAR_PREFIX))


def paths(directory: Path, spec: dict[str, Any], split: str) -> list[Path]:
    return [Path(directory) / name for name in spec["shards"][split]]


def raw_inputs(batch: dict[str, np.ndarray], spec: dict[str, Any]) -> Any:
    """A batch's feature as the served model takes it: an array, or a dict of named tabular columns."""
    if spec["kind"] == "tabular":
        return {name.removeprefix(TABULAR_PREFIX): batch[name] for name in batch if name.startswith(TABULAR_PREFIX)}
    return batch[FEATURE]


def iterate(examples: Artifact, split: str, *, batch_size: int = 1024) -> Iterator[dict[str, np.ndarray]]:
    """One split in order, as NumPy batches of every record column."""
    data = spec(examples)
    yield from records.iterate(paths(examples.path, data, split), columns(data), batch_size=batch_size)


def log_inputs(spec: dict[str, Any], directory: Path, contexts: dict[str, str]) -> None:
    """Record splits as MLflow dataset inputs of the active run: {split: context}.

    Every run that reads a split logs it with the same name, source and digest, so the MLflow UI
    shows one dataset across the ingest, tune, train and evaluate runs that used it.
    """
    import mlflow
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset

    with warnings.catch_warnings():
        # MLflow registers two equivalent local-path source types and warns that it picked one.
        warnings.simplefilter("ignore", UserWarning)
        source = resolve_dataset_source(str(directory))
    for split, context in contexts.items():
        dataset = MetaDataset(source=source, name=f"{spec['tfds_name']}-{split}", digest=spec["digests"][split])
        tags = {"tfds_name": spec["dataset"], "tfds_version": spec["version"], "split": spec["splits"][split],
                "examples": str(spec["counts"][split])}
        mlflow.log_input(dataset, context=context, tags=tags)
