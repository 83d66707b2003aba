"""Run a study at quick size into temporary places: reports, MLflow store and TFDS data_dir."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class StudyRun:
    payload: dict[str, Any]  # what run_study returned
    reports_dir: Path
    tracking_uri: str

    def children(self) -> list:
        """The MLflow runs nested under the study's parent run."""
        import mlflow

        client = mlflow.MlflowClient(self.tracking_uri)
        parent = self.payload["mlflow"]["parent_run_id"]
        return client.search_runs(
            [self.payload["mlflow"]["experiment_id"]],
            filter_string=f"tags.mlflow.parentRunId = '{parent}'",
            max_results=1000,
        )

    def parent(self):
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri).get_run(self.payload["mlflow"]["parent_run_id"])

    def report(self) -> str:
        return (self.reports_dir / f"{self.payload['study']}.md").read_text()

    def report_json(self) -> dict[str, Any]:
        return json.loads((self.reports_dir / f"{self.payload['study']}.json").read_text())


@pytest.fixture
def run_quick(tmp_path, monkeypatch, tfds_dir):
    """run_quick(name) -> StudyRun: the study at quick size, seed 0, MLflow in tmp_path."""

    def run(name: str) -> StudyRun:
        from studies import run_study

        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        reports_dir = tmp_path / "reports"
        payload = run_study(name, quick=True, reports_dir=reports_dir, data_dir=str(tfds_dir), seed=0)
        return StudyRun(payload, reports_dir, uri)

    return run
