"""Run a study at quick size into temporary places: reports and MLflow store; fashion_mnist from TFDS_DATA_DIR.

The studies read fashion_mnist from TFDS's default data_dir, which TFDS_DATA_DIR sets. The Makefile
exports it; where it is not set, the tests point it at the offline copy beside the checkout
(`../shared/tfds`) when there is one. The product itself never names that folder.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_TFDS = ROOT.parent / "shared" / "tfds"


@pytest.fixture(autouse=True)
def fashion_mnist_dir(monkeypatch) -> str | None:
    """TFDS_DATA_DIR as the studies will see it (the offline copy when the environment names none)."""
    if not os.environ.get("TFDS_DATA_DIR") and OFFLINE_TFDS.is_dir():
        monkeypatch.setenv("TFDS_DATA_DIR", str(OFFLINE_TFDS))
    return os.environ.get("TFDS_DATA_DIR")


@dataclass(frozen=True)
class StudyRun:
    payload: dict[str, Any]  # what run_study returned
    reports_dir: Path
    tracking_uri: str

    def client(self):
        import mlflow

        return mlflow.MlflowClient(self.tracking_uri)

    def children(self, parent: str) -> list:
        """The MLflow runs nested directly under run `parent`."""
        return self.client().search_runs(
            [self.payload["mlflow"]["experiment_id"]],
            filter_string=f"tags.mlflow.parentRunId = '{parent}'",
            max_results=1000,
        )

    def parent(self):
        return self.client().get_run(self.payload["mlflow"]["parent_run_id"])

    def report(self) -> str:
        return (self.reports_dir / f"{self.payload['study']}.md").read_text()

    def report_json(self) -> dict[str, Any]:
        return json.loads((self.reports_dir / f"{self.payload['study']}.json").read_text())

    def verdicts(self) -> dict[str, str]:
        return {claim["name"]: claim["verdict"] for claim in self.payload["claims"]}


@pytest.fixture
def run_quick(tmp_path, monkeypatch, tfds_dir):
    """run_quick(name, seeds=1) -> StudyRun: the study at quick size, seeds 0.., MLflow in tmp_path."""

    def run(name: str, seeds: int = 1) -> StudyRun:
        from studies import run_study

        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        reports_dir = tmp_path / "reports"
        payload = run_study(name, quick=True, reports_dir=reports_dir, data_dir=str(tfds_dir), seeds=seeds)
        return StudyRun(payload, reports_dir, uri)

    return run
