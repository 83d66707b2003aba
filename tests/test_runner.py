"""The runner's own decisions, in-process against a real SQLite MLflow store."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import mlflow
import pytest

from pipeline import artifacts, runner, tracking
from pipeline.config import Config
from pipeline.names import STAGES, TAG_ARTIFACT_DIR, TAG_FINGERPRINT, TAG_STAGE
from tests.stores import blank_store, copy_store


@pytest.fixture(scope="module")
def blank(tmp_path_factory) -> Path:
    return blank_store(tmp_path_factory.mktemp("blank"))


@pytest.fixture()
def client(tmp_path, blank):
    uri = copy_store(blank, tmp_path)
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


# plan(): which stages it reuses. Every stage of the default config gets a FINISHED run tagged with
# its fingerprint and a sealed artifact, as a finished pipeline run leaves them; the options then decide.

@dataclass(frozen=True)
class Finished:
    client: mlflow.MlflowClient
    root: Path  # the store: mlflow.db and the stages' artifacts
    config: Config
    experiment_id: str
    producers: dict[str, str]  # stage -> the run that sealed its artifact

    def reused(self, options: runner.Options, config: Config | None = None) -> dict[str, bool]:
        steps = runner.plan(config or self.config, options, self.client, self.experiment_id)
        return {step.stage.name: step.cached is not None for step in steps}


def _seal_finished(client, experiment_id: str, step, status: str = "FINISHED") -> str:
    run_id = client.create_run(experiment_id, tags={TAG_STAGE: step.stage.name, TAG_FINGERPRINT: step.fingerprint,
                                                    TAG_ARTIFACT_DIR: str(step.final)}).info.run_id
    work = artifacts.partial_dir(step.final)
    work.mkdir(parents=True)
    (work / "output.txt").write_text(f"what {step.stage.name} produced")
    artifacts.seal(work, step.final, artifacts.Artifact(type=step.stage.artifact_type, uri=str(step.final),
                                                        fingerprint=step.fingerprint, producer_run_id=run_id))
    client.set_terminated(run_id, status)
    return run_id


def _finish_pipeline(blank: Path, root: Path, until_stage: str = "push", status: str = "FINISHED") -> Finished:
    client = mlflow.MlflowClient(copy_store(blank, root))
    config = Config()
    experiment_id = client.create_experiment(config.pipeline.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(tracking.STORE_ENV, str(root))
        steps = runner.plan(config, runner.Options(no_cache=True, until_stage=until_stage), client, experiment_id)
        producers = {step.stage.name: _seal_finished(client, experiment_id, step, status) for step in steps}
    return Finished(client, root, config, experiment_id, producers)


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory, blank) -> Finished:
    """One finished pipeline, shared by the tests that only read it."""
    return _finish_pipeline(blank, tmp_path_factory.mktemp("finished"))


@pytest.fixture()
def finished(finished_store, monkeypatch) -> Finished:
    monkeypatch.setenv(tracking.STORE_ENV, str(finished_store.root))
    return finished_store


def test_plan_reuses_every_stage_a_finished_run_sealed(finished):
    steps = runner.plan(finished.config, runner.Options(), finished.client, finished.experiment_id)
    assert [step.stage.name for step in steps] == list(STAGES)
    for step in steps:
        assert step.cached is not None, step.stage.name
        assert step.cached_run_id == finished.producers[step.stage.name]
        assert step.cached.fingerprint == step.fingerprint and step.cached.path == step.final


def test_no_cache_recomputes_every_stage_under_the_same_fingerprints(finished):
    cached = runner.plan(finished.config, runner.Options(), finished.client, finished.experiment_id)
    forced = runner.plan(finished.config, runner.Options(no_cache=True), finished.client, finished.experiment_id)
    assert all(step.cached is None for step in forced)
    assert [step.fingerprint for step in forced] == [step.fingerprint for step in cached]


@pytest.mark.parametrize("stage", STAGES)
def test_from_stage_recomputes_that_stage_and_every_later_one(finished, stage):
    reused = finished.reused(runner.Options(from_stage=stage))
    assert reused == {name: STAGES.index(name) < STAGES.index(stage) for name in STAGES}


def test_until_stage_plans_no_stage_after_it(finished):
    assert finished.reused(runner.Options(until_stage="tune")) == {
        "ingest": True, "validate": True, "preprocess": True, "tune": True}
    assert finished.reused(runner.Options(until_stage="tune", from_stage="preprocess")) == {
        "ingest": True, "validate": True, "preprocess": False, "tune": False}
    assert list(finished.reused(runner.Options(until_stage="ingest"))) == ["ingest"]


def test_a_changed_config_section_recomputes_the_stages_that_read_it_and_their_dependents(finished):
    config = finished.config
    changed = replace(config, train=replace(config.train, epochs=config.train.epochs + 1))
    # [train] is read by tune and train; evaluate and push consume train's model.
    assert finished.reused(runner.Options(), changed) == {
        "ingest": True, "validate": True, "preprocess": True,
        "tune": False, "train": False, "evaluate": False, "push": False}


def test_a_run_that_did_not_finish_is_not_a_cache_hit(blank, tmp_path, monkeypatch):
    failed = _finish_pipeline(blank, tmp_path, until_stage="ingest", status="FAILED")
    monkeypatch.setenv(tracking.STORE_ENV, str(tmp_path))
    assert failed.reused(runner.Options(until_stage="ingest")) == {"ingest": False}


def test_a_corrupt_cached_artifact_is_not_reused(blank, tmp_path, monkeypatch, capsys):
    finished = _finish_pipeline(blank, tmp_path, until_stage="preprocess")
    monkeypatch.setenv(tracking.STORE_ENV, str(tmp_path))
    _, validate, _ = runner.plan(finished.config, runner.Options(until_stage="preprocess"), finished.client,
                                 finished.experiment_id)
    output = validate.final / "output.txt"
    output.write_text(output.read_text() + " (changed)")
    assert finished.reused(runner.Options(until_stage="preprocess")) == {
        "ingest": True, "validate": False, "preprocess": True}
    assert "validate: cached artifact rejected, recomputing" in capsys.readouterr().err
