"""Push: a blessed model becomes the champion; an unblessed one changes nothing.

Registers the train run's logged model under `pipeline.name` with tags that
trace it back (pipeline run, data and model fingerprints, hyperparameters),
moves the `champion` alias to it, and exports a SavedModel in TF-Serving layout
(`<serving_dir>/<name>/<version>/`) whose serving signature takes raw inputs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from components.properties import EvaluationProperties, ModelProperties, PushProperties
from pipeline.artifacts import Artifact, write_json
from pipeline.config import Config
from pipeline.names import (
    ALIAS_CHAMPION,
    MODEL_FILE,
    PUSH_FILE,
    TAG_BLESSING,
    TAG_DATA_FINGERPRINT,
    TAG_HYPERPARAMETERS,
    TAG_PUSH,
    TAG_RUN_ID,
    TAG_TEST_PREFIX,
    TAG_TRAIN_FINGERPRINT,
    TAG_TRAIN_RUN_ID,
)


def export_saved_model(model_file: Path, destination: Path) -> Path:
    """Write a TF-Serving SavedModel atomically: into a temporary sibling, then renamed."""
    import keras

    model = keras.saving.load_model(model_file, safe_mode=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    shutil.rmtree(temporary, ignore_errors=True)
    model.export(str(temporary), format="tf_saved_model", verbose=False)
    if destination.exists():
        shutil.rmtree(destination)
    os.replace(temporary, destination)
    return destination


def _registered(client, name: str, train_fingerprint: str):
    """The version already registered for this very model, if any: pushing it again moves the alias only."""
    try:
        versions = client.search_model_versions(f"name = '{name}' and tags.`{TAG_TRAIN_FINGERPRINT}` = "
                                                f"'{train_fingerprint}'")
    except Exception:  # stores whose registry search does not filter on tags
        versions = [v for v in client.search_model_versions(f"name = '{name}'")
                    if v.tags.get(TAG_TRAIN_FINGERPRINT) == train_fingerprint]
    return min(versions, key=lambda v: int(v.version)) if versions else None


def run(model: Artifact, evaluation: Artifact, config: Config, out: Path, *, serving_root: Path) -> PushProperties:
    """Register, alias and export a blessed model; `serving_root` is where TF-Serving exports go."""
    import mlflow

    name = config.pipeline.name
    evaluated, trained = EvaluationProperties.of(evaluation), ModelProperties.of(model)
    if not evaluated.blessed:
        result = PushProperties(pushed=False, reason=evaluated.reason)
        write_json(out / PUSH_FILE, result.to_dict())
        mlflow.set_tag(TAG_PUSH, "not pushed: the champion stays")
        return result

    client = mlflow.MlflowClient()
    active = mlflow.active_run()
    parent = active.data.tags.get("mlflow.parentRunId", "") if active else ""
    tags = {
        TAG_RUN_ID: parent,
        TAG_TRAIN_RUN_ID: model.producer_run_id,
        TAG_TRAIN_FINGERPRINT: model.fingerprint,
        TAG_DATA_FINGERPRINT: evaluation.inputs.get("ingest", ""),
        TAG_HYPERPARAMETERS: json.dumps(trained.hyperparameters, sort_keys=True),
    }
    for metric in ("accuracy", "mae", "r2"):  # classification's figure, or regression's
        if metric in evaluated.metrics:
            tags[f"{TAG_TEST_PREFIX}{metric}"] = str(evaluated.metrics[metric])
    version = _registered(client, name, model.fingerprint) or mlflow.register_model(
        trained.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, ALIAS_CHAMPION, version.version)
    client.set_model_version_tag(name, version.version, TAG_BLESSING, evaluated.reason)
    export = export_saved_model(model.file(MODEL_FILE), serving_root / name / str(version.version))
    result = PushProperties(pushed=True, version=int(version.version), alias=ALIAS_CHAMPION,
                            model_uri=f"models:/{name}@{ALIAS_CHAMPION}", saved_model=str(export))
    write_json(out / PUSH_FILE, result.to_dict())
    mlflow.log_dict(result.to_dict(), PUSH_FILE)
    return result
