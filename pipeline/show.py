"""`pipeline show`: the summary of a pipeline run, read back from MLflow."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

from pipeline import console, tracking
from pipeline.config import ConfigError
from pipeline.names import ARTIFACT_PROPERTIES, STAGES, TAG_CACHED, TAG_ERROR, TAG_FINGERPRINT, TAG_KIND, TAG_STAGE


def _properties(client, run_id: str) -> dict[str, Any]:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/{ARTIFACT_PROPERTIES}")
    except Exception:  # a stage that failed before writing its properties
        return {}


def _given_run(client, run_id: str):
    """The pipeline run with this id; a stage or trial id, or an unknown one, is a usage error."""
    store = tracking.redact_uri(tracking.tracking_uri())
    try:
        run = client.get_run(run_id)
    except Exception:
        raise ConfigError(f"no run {run_id!r} in {store}; run `pipeline show` without an id for the latest "
                          "pipeline run") from None
    kind = run.data.tags.get(TAG_KIND)
    if kind != "pipeline":
        what = f"a {kind} run" if kind else "not a pipeline run"
        parent = run.data.tags.get("mlflow.parentRunId")
        hint = f"; its parent run is {parent}" if parent else ""
        raise ConfigError(f"run {run_id!r} is {what}, not a pipeline run{hint}; "
                          "`pipeline show` takes a pipeline (top-level) run id")
    return run


def _finite(value: Any) -> Any:
    """NaN and infinities (a diverged model's loss) become null, so stdout stays strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def collect(run_id: str | None, name: str) -> dict[str, Any]:
    import mlflow

    # Reading the stages' properties must not draw MLflow's download progress bars on stderr.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = mlflow.MlflowClient()
    if run_id:
        parent = _given_run(client, run_id)
        experiment_id = parent.info.experiment_id
    else:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise ConfigError(f"no pipeline named {name!r} in {tracking.redact_uri(tracking.tracking_uri())}; "
                              "run `pipeline run` first or pass --name")
        experiment_id = experiment.experiment_id
        runs = client.search_runs([experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise ConfigError(f"pipeline {name!r} has no runs yet; run `pipeline run` first")
        parent = runs[0]
    children = client.search_runs([experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    stages = sorted((r for r in children if r.data.tags.get(TAG_KIND) == "stage"),
                    key=lambda r: STAGES.index(r.data.tags[TAG_STAGE]))
    rows, properties = [], {}
    for run in stages:
        stage = run.data.tags[TAG_STAGE]
        properties[stage] = _properties(client, run.info.run_id)
        seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
        error = run.data.tags.get(TAG_ERROR)
        # A stage that did not finish has no properties: its error says more than an empty key figure.
        result = console.key_metric(stage, properties[stage]) if run.info.status == "FINISHED" else (
            error or run.info.status)
        rows.append({"stage": stage, "status": run.info.status, "cached": run.data.tags.get(TAG_CACHED) == "true",
                     "seconds": round(seconds, 2), "result": result, "run_id": run.info.run_id,
                     "fingerprint": run.data.tags.get(TAG_FINGERPRINT, ""), "error": error})
    evaluate = properties.get("evaluate", {})
    return {
        "run_id": parent.info.run_id,
        "experiment_id": experiment_id,
        "status": parent.info.status,
        "stages": rows,
        "metrics": evaluate.get("metrics", {}),
        "best_hyperparameters": properties.get("tune", {}).get("best", {}),
        "blessing": {"blessed": evaluate.get("blessed"), "reason": evaluate.get("reason")},
        "push": properties.get("push", {}),
        "error": parent.data.tags.get(TAG_ERROR),
    }


def show(run_id: str | None, name: str, *, as_json: bool, graph_png: str | None = None) -> int:
    summary = collect(run_id, name)
    if graph_png is not None:
        from pathlib import Path

        from pipeline import graph

        picture = graph.from_summary(summary)
        path = graph.render_png(picture, Path(graph_png))
        sys.stdout.write(graph.mermaid(picture))
        console.info(f"pipeline run {summary['run_id']}: {summary['status']}; picture written to {path} "
                     "(its Mermaid source is on stdout)")
        return 0
    if as_json:
        json.dump(_finite(summary), sys.stdout, indent=2, default=str, allow_nan=False)
        sys.stdout.write("\n")
        return 0
    console.info(f"pipeline run {summary['run_id']}: {summary['status']}")
    console.print_table([{k: row[k] for k in ("stage", "status", "cached", "seconds", "result")}
                         for row in summary["stages"]])
    if summary["best_hyperparameters"]:
        console.info(f"best hyperparameters: {summary['best_hyperparameters']}")
    if summary["blessing"]["reason"]:
        console.info(f"blessing: {summary['blessing']['reason']}")
    if summary["error"]:
        console.info(f"error: {summary['error']}")
    return 0
