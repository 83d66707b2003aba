"""What each stage's artifact hands on to the stages after it: one frozen dataclass per artifact type.

A component returns its artifact's properties as one of these; the runner keeps them as plain JSON
in the artifact's manifest (`to_dict`); a consumer reads them back with `Kind.of(artifact)`, which
fails loudly, naming the artifact, when the manifest lacks a field or holds one it does not know.
Writing and reading go through the same class, so a key cannot be spelled two ways.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, TypeVar

from pipeline.artifacts import Artifact, ArtifactError

P = TypeVar("P", bound="Properties")


@dataclass(frozen=True)
class Properties:
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls: type[P], artifact: Artifact) -> P:
        """The properties of a sealed artifact, typed; an ArtifactError if they are not this kind's."""
        return cls.from_dict(artifact.properties, where=artifact.uri)

    @classmethod
    def from_dict(cls: type[P], values: dict[str, Any], *, where: str = "properties") -> P:
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        unknown, missing = sorted(set(values) - names), sorted(required - set(values))
        if unknown or missing:
            raise ArtifactError(f"{where}: the properties are not {cls.__name__}'s (missing {missing}, unknown "
                                f"{unknown}); the artifact was written by other code: rerun with --no-cache")
        return cls(**values)


@dataclass(frozen=True)
class ExamplesProperties(Properties):
    """ingest -> Examples: the streamed splits (spec.json in the artifact has the full description)."""

    counts: dict[str, int]  # split -> examples
    kind: str  # image | sequence | text | tabular
    task: str  # classification | regression
    digests: dict[str, str]  # split -> sha256 over its shards, the dataset digest MLflow shows


@dataclass(frozen=True)
class StatisticsProperties(Properties):
    """validate -> Statistics, Schema and Anomalies."""

    anomalies: int  # how many anomalies validation found (errors stop the pipeline before this is sealed)
    counts: dict[str, int]  # split -> examples the statistics cover


@dataclass(frozen=True)
class TransformProperties(Properties):
    """preprocess -> Transform: the preprocessing model and the transformed shards the model trains on."""

    input_kind: str  # what the model's core takes: image | sequence | tokens | vector
    input_shape: list[int]  # one transformed example's shape
    raw_kind: str  # the raw feature's kind, as ingest found it (image | sequence | text | tabular)
    raw_shape: list[int]  # one raw example's shape (tabular: the number of columns)
    raw_dtype: str  # the raw feature's dtype ("string" for text, "dict" for tabular)
    raw_columns: Any  # tabular: the raw columns and their kinds; otherwise empty
    task: str  # classification | regression
    num_classes: int  # 0 for regression
    class_names: list[str]  # output index -> class name
    columns: list[dict[str, Any]]  # the transformed shards' columns (records.Column dicts)
    block: int  # examples per record block in the shards
    shards: dict[str, list[str]]  # split -> shard file names in the artifact
    counts: dict[str, int]  # split -> examples
    digests: dict[str, str]  # split -> sha256 over the transformed shards
    examples: dict[str, Any]  # the Examples artifact it came from: uri, dataset, version, splits, counts, digests
    vocab_size: int | None = None  # text: the TextVectorization vocabulary's size
    raw_max: float | None = None  # images and sequences: the largest raw value in train
    mean: float | None = None  # images and sequences: the normalization's mean
    std: float | None = None  # images and sequences: the normalization's standard deviation
    encoded_size: int | None = None  # tabular: the width of the encoded vector


@dataclass(frozen=True)
class HyperParametersProperties(Properties):
    """tune -> HyperParameters: the values train uses."""

    best: dict[str, Any]  # tunable key -> value (empty: train uses [model]/[train] as they are)
    trials: int  # trials the search ran (0 when nothing was searched)
    source: str = "search"  # "search", "file PATH" or "[model]/[train] (tuning disabled)"
    best_score: float | None = None  # the best trial's objective value
    objective: str | None = None  # what the search optimised
    failed_trials: int = 0
    algorithm: str | None = None  # random | bayesian | hyperband | grid


@dataclass(frozen=True)
class ModelProperties(Properties):
    """train -> Model: the trained model, where MLflow keeps it, and how the fit went."""

    epochs: int  # epochs run (early stopping may end before train.epochs)
    best_epoch: int  # 1-based epoch whose weights were kept
    resumed: bool  # the fit resumed from a backup left by a killed run
    task: str
    val_metric: str  # the validation figure shown for this model
    val_value: float | None
    val_accuracy: float | None  # classification only
    final: dict[str, float]  # every history metric's last value
    model_uri: str  # MLflow's URI of the logged model
    model_id: str | None
    hyperparameters: dict[str, Any]  # every value the model and optimizer were built from
    parameters: int  # trainable and non-trainable weights of the served model
    distribution: str  # none | mirrored | multi_worker
    replicas: int  # replicas the fit ran on
    weights_sha256: str  # digest of the trained weights (equal on every worker of a multi_worker fit)


@dataclass(frozen=True)
class EvaluationProperties(Properties):
    """evaluate -> Evaluation: test figures and the blessing."""

    metrics: dict[str, float]  # scalar test metrics (accuracy or mse/mae/r2, ece, ...)
    task: str
    blessed: bool  # whether push may register this model as the champion
    reason: str  # why (or why not), in one sentence
    champion_version: int | str | None = None  # the champion compared against, if any


@dataclass(frozen=True)
class PushProperties(Properties):
    """push -> PushedModel: what was registered and exported, or why nothing was."""

    pushed: bool
    reason: str = ""  # not pushed: why
    version: int | None = None  # pushed: the registered model version
    alias: str | None = None
    model_uri: str | None = None  # pushed: models:/NAME@ALIAS
    saved_model: str | None = None  # pushed: the TF-Serving export directory


# Stage name -> the properties its artifact hands on.
BY_STAGE: dict[str, type[Properties]] = {
    "ingest": ExamplesProperties,
    "validate": StatisticsProperties,
    "preprocess": TransformProperties,
    "tune": HyperParametersProperties,
    "train": ModelProperties,
    "evaluate": EvaluationProperties,
    "push": PushProperties,
}


def of_stage(stage: str, values: dict[str, Any]) -> Properties | None:
    """A stage's properties as logged (the runner's JSON), typed; None when they are not this code's."""
    try:
        return BY_STAGE[stage].from_dict(values, where=f"the {stage} stage's properties")
    except (ArtifactError, KeyError):
        return None
