"""The runner's own decisions, in-process against a real SQLite MLflow store."""

from __future__ import annotations

import mlflow
import pytest

from pipeline import runner


@pytest.fixture()
def client(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    yield mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


def test_a_cached_stage_shows_its_producers_metrics_but_not_its_system_metrics(client):
    experiment = client.create_experiment("copy")
    source = client.create_run(experiment).info.run_id
    client.log_metric(source, "val_accuracy", 0.93)
    client.log_metric(source, "system/cpu_utilization_percentage", 88.0)
    target = client.create_run(experiment).info.run_id
    runner._copy_metrics(client, source, target)
    assert client.get_run(target).data.metrics == {"val_accuracy": 0.93}


def test_an_artifact_sealed_by_another_stores_run_is_used_without_its_metrics(client, capsys):
    # Two tracking stores in one directory share the fingerprinted artifacts; the run that sealed
    # one may then be missing from this store. That is a warning, not a crash.
    experiment = client.create_experiment("elsewhere")
    target = client.create_run(experiment).info.run_id
    runner._copy_metrics(client, "0123456789abcdef0123456789abcdef", target)
    assert client.get_run(target).data.metrics == {}
    assert "not in this tracking store" in capsys.readouterr().err
