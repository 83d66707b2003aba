"""Artifact properties: one frozen dataclass per artifact type, written and read by the same code."""

from __future__ import annotations

import dataclasses

import pytest

from components import properties as kinds
from pipeline.artifacts import Artifact, ArtifactError
from pipeline.console import key_metric
from pipeline.names import ARTIFACT_PROPERTIES, STAGES, TAG_KIND, TAG_STAGE

EVALUATION = {"metrics": {"accuracy": 0.95, "ece": 0.02}, "task": "classification", "blessed": True,
              "reason": "accuracy 0.95 >= 0.0", "champion_version": None}


def test_properties_round_trip_through_the_manifest_json():
    typed = kinds.EvaluationProperties(**EVALUATION)
    artifact = Artifact("Evaluation", "/tmp/evaluation", "f" * 8, "run", properties=typed.to_dict())
    assert kinds.EvaluationProperties.of(artifact) == typed
    with pytest.raises(dataclasses.FrozenInstanceError):
        typed.blessed = False  # frozen


@pytest.mark.parametrize("change", [{"blesed": True}, {"blessed": None}], ids=["unknown key", "missing key"])
def test_properties_of_another_shape_are_refused_naming_the_artifact(change):
    values = {k: v for k, v in {**EVALUATION, **change}.items() if v is not None or k == "champion_version"}
    artifact = Artifact("Evaluation", "/store/pipeline/evaluate/abc", "f" * 8, "run", properties=values)
    with pytest.raises(ArtifactError, match=r"/store/pipeline/evaluate/abc.*EvaluationProperties.*--no-cache"):
        kinds.EvaluationProperties.of(artifact)


def test_every_stage_has_a_properties_class():
    assert set(kinds.BY_STAGE) == set(STAGES)


def test_key_metric_reads_typed_properties_and_leaves_unreadable_ones_blank():
    assert key_metric("evaluate", EVALUATION) == "test accuracy 0.9500, blessed"
    assert key_metric("evaluate", {"metrics": {"accuracy": 0.9}}) == ""  # logged by other code: no guess


def test_every_stage_of_a_real_run_logged_properties_its_class_reads(default_run):
    import mlflow

    client = default_run.store.client()
    experiment = client.get_experiment_by_name("digits")
    runs = client.search_runs([experiment.experiment_id], f"tags.`{TAG_KIND}` = 'stage'")
    latest = {}
    for run in sorted(runs, key=lambda r: r.info.start_time):
        latest[run.data.tags[TAG_STAGE]] = run
    assert set(latest) == set(STAGES)
    for stage, run in latest.items():
        logged = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/{ARTIFACT_PROPERTIES}")
        typed = kinds.of_stage(stage, logged)
        assert isinstance(typed, kinds.BY_STAGE[stage]), (stage, logged)
        assert typed.to_dict() == logged
