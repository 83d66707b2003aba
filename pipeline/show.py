"""`pipeline show`: the summary of a pipeline run, read back from MLflow."""

from __future__ import annotations

import json
import sys
from typing import Any

from pipeline import console, tracking
from pipeline.config import ConfigError
from pipeline.names import STAGES, TAG_CACHED, TAG_KIND, TAG_STAGE


def _properties(client, run_id: str) -> dict[str, Any]:
    import mlflow

    try:
        return mlflow.artifacts.load_dict(f"runs:/{run_id}/artifact_properties.json")
    except Exception:  # a stage that failed before writing its properties
        return {}


def collect(run_id: str | None, name: str) -> dict[str, Any]:
    import mlflow

    mlflow.set_tracking_uri(tracking.tracking_uri())
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise ConfigError(f"no pipeline named {name!r} in {tracking.redact_uri(tracking.tracking_uri())}; "
                          "run `pipeline run` first or pass --name")
    if run_id:
        try:
            parent = client.get_run(run_id)
        except Exception:
            raise ConfigError(f"no run {run_id!r} in the store; `pipeline show` lists the latest run") from None
    else:
        runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                  order_by=["attributes.start_time DESC"], max_results=1)
        if not runs:
            raise ConfigError(f"pipeline {name!r} has no runs yet; run `pipeline run` first")
        parent = runs[0]
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    stages = sorted((r for r in children if r.data.tags.get(TAG_KIND) == "stage"),
                    key=lambda r: STAGES.index(r.data.tags[TAG_STAGE]))
    rows, properties = [], {}
    for run in stages:
        stage = run.data.tags[TAG_STAGE]
        properties[stage] = _properties(client, run.info.run_id)
        seconds = ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000
        rows.append({"stage": stage, "status": run.info.status, "cached": run.data.tags.get(TAG_CACHED) == "true",
                     "seconds": round(seconds, 2), "result": console.key_metric(stage, properties[stage]),
                     "run_id": run.info.run_id})
    evaluate = properties.get("evaluate", {})
    return {
        "run_id": parent.info.run_id,
        "experiment_id": experiment.experiment_id,
        "status": parent.info.status,
        "stages": rows,
        "metrics": evaluate.get("metrics", {}),
        "best_hyperparameters": properties.get("tune", {}).get("best", {}),
        "blessing": {"blessed": evaluate.get("blessed"), "reason": evaluate.get("reason")},
        "push": properties.get("push", {}),
        "error": parent.data.tags.get("pipeline.error"),
    }


def show(run_id: str | None, name: str, *, as_json: bool) -> int:
    summary = collect(run_id, name)
    if as_json:
        json.dump(summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return 0
    console.info(f"pipeline run {summary['run_id']}: {summary['status']}")
    console.print_table([{k: v for k, v in row.items() if k != "run_id"} for row in summary["stages"]])
    if summary["best_hyperparameters"]:
        console.info(f"best hyperparameters: {summary['best_hyperparameters']}")
    if summary["blessing"]["reason"]:
        console.info(f"blessing: {summary['blessing']['reason']}")
    if summary["error"]:
        console.info(f"error: {summary['error']}")
    return 0
