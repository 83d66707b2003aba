"""tracking.artifact_store = "mlflow": stage artifacts shared through the tracking server alone.

Each "machine" is a pipeline process with a store directory of its own (PIPELINE_STORE_DIR) and the
server of tests/scale/conftest.py (PostgreSQL, basic auth, proxied artifacts); nothing is shared between
them but the server. The first machine computes a small pipeline and uploads every stage's sealed
artifact; the others find the stage runs by fingerprint and download what they lack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from pipeline import artifacts
from pipeline.names import (
    MANIFEST,
    STAGE_ARTIFACT_PATH,
    STAGES,
    STATISTICS_FILE,
    SPEC_FILE,
    TAG_ARTIFACT_URI,
    TAG_CACHED,
    TAG_CACHED_FROM,
    TAG_FINGERPRINT,
    TAG_KIND,
    TAG_STAGE,
)
from tests.conftest import Result, Store, make_store, outputs_of

pytestmark = pytest.mark.slow

# The default digits pipeline shrunk: no search (tuning is not the point here), one epoch, a sliver of the data.
SMALL = ("--set", "data.max_examples=300", "--set", "tune.enabled=false", "--set", "train.epochs=1",
         "--set", "evaluate.min_accuracy=0", "--set", "tracking.system_metrics=false",
         "--set", "tracking.artifact_store=mlflow", "-q")
NAME = "digits_shared"


def _machine(root: Path, tfds_dir: Path, server) -> Store:
    """A process environment with its own, empty store directory and the tracking server's address."""
    store = make_store(root, tfds_dir)
    return replace(store, env={**store.env, **server.env(), "PIPELINE_STORE_DIR": str(root)})


def _latest_stages(client, name: str) -> dict[str, object]:
    """The stage runs of the newest pipeline run of `name`, by stage."""
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                              order_by=["attributes.start_time DESC"], max_results=1)
    (parent,) = runs
    assert parent.info.status == "FINISHED", parent.data.tags
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {run.data.tags[TAG_STAGE]: run for run in children if run.data.tags.get(TAG_KIND) == "stage"}


def _local_copy(machine: Store, stage: str, fingerprint: str) -> Path:
    return machine.root / "pipeline" / NAME / stage / fingerprint


def _uploaded(server, run) -> Path:
    """The server's own copy of a stage run's artifact, in its --artifacts-destination folder."""
    (found,) = server.artifacts.glob(f"*/{run.info.run_id}/artifacts/{STAGE_ARTIFACT_PATH}")
    return found


@dataclass(frozen=True)
class FirstMachine:
    machine: Store
    result: Result
    stages: dict  # stage -> its MLflow run


@pytest.fixture(scope="module")
def first_machine(tmp_path_factory, tfds_dir, tracking_server) -> FirstMachine:
    import mlflow

    machine = _machine(tmp_path_factory.mktemp("machine1") / "store", tfds_dir, tracking_server)
    result = machine.cli("run", *SMALL, "--set", f"pipeline.name={NAME}")
    assert result.returncode == 0, result.stderr[-4000:]
    with pytest.MonkeyPatch.context() as patch:
        for key, value in tracking_server.env().items():
            patch.setenv(key, value)
        stages = _latest_stages(mlflow.MlflowClient(tracking_server.uri), NAME)
    return FirstMachine(machine, result, stages)


def test_every_stage_uploads_its_sealed_artifact_to_its_run(first_machine, tracking_server, server_client):
    assert set(first_machine.stages) == set(STAGES)
    for stage, run in first_machine.stages.items():
        assert run.data.tags[TAG_CACHED] == "false", stage
        assert run.data.tags[TAG_ARTIFACT_URI] == f"runs:/{run.info.run_id}/{STAGE_ARTIFACT_PATH}"
        listed = {item.path.rsplit("/", 1)[-1] for item in server_client.list_artifacts(run.info.run_id,
                                                                                         STAGE_ARTIFACT_PATH)}
        assert MANIFEST in listed, (stage, listed)
        # The server's copy is the sealed directory itself: every file of the manifest, byte for byte.
        local = artifacts.load(_local_copy(first_machine.machine, stage, run.data.tags[TAG_FINGERPRINT]))
        assert artifacts.load(_uploaded(tracking_server, run), verify=True).files == local.files


def test_a_second_machine_with_an_empty_store_gets_every_stage_by_download(first_machine, tmp_path, tfds_dir,
                                                                          tracking_server, server_client):
    second = _machine(tmp_path / "machine2", tfds_dir, tracking_server)
    result = second.cli("run", *SMALL, "--set", f"pipeline.name={NAME}")
    assert result.returncode == 0, result.stderr[-4000:]
    reused = _latest_stages(server_client, NAME)
    assert set(reused) == set(STAGES)
    for stage, run in reused.items():
        made = first_machine.stages[stage]
        fingerprint = run.data.tags[TAG_FINGERPRINT]
        assert fingerprint == made.data.tags[TAG_FINGERPRINT], stage
        assert run.data.tags[TAG_CACHED] == "true" and run.data.tags[TAG_CACHED_FROM] == made.info.run_id, stage
        assert run.data.tags[TAG_ARTIFACT_URI] == made.data.tags[TAG_ARTIFACT_URI]
        copy = artifacts.load(_local_copy(second, stage, fingerprint), verify=True)
        assert copy.producer_run_id == made.info.run_id
        assert copy.files == artifacts.load(_local_copy(first_machine.machine, stage, fingerprint)).files
    assert not (second.root / "mlflow.db").exists()

    # A flipped byte in a downloaded copy: found, never used; the copy is fetched again and every stage stays cached.
    spec = _local_copy(second, "ingest", reused["ingest"].data.tags[TAG_FINGERPRINT]) / SPEC_FILE
    good = spec.read_bytes()
    spec.write_bytes(good.replace(b'"', b"'", 1))
    again = second.cli("run", *SMALL, "--set", f"pipeline.name={NAME}")
    assert again.returncode == 0, again.stderr[-4000:]
    assert "the local copy is not used" in again.stderr and "sha256" in again.stderr
    assert all(run.data.tags[TAG_CACHED] == "true" for run in _latest_stages(server_client, NAME).values())
    assert spec.read_bytes() == good


def test_a_corrupt_or_incomplete_upload_is_recomputed_never_used(first_machine, tmp_path, tfds_dir,
                                                                 tracking_server, server_client):
    made = first_machine.stages
    statistics = _uploaded(tracking_server, made["validate"]) / STATISTICS_FILE
    flipped = bytearray(statistics.read_bytes())
    flipped[len(flipped) // 2] ^= 0x01
    statistics.write_bytes(bytes(flipped))
    (_uploaded(tracking_server, made["ingest"]) / SPEC_FILE).unlink()

    third = _machine(tmp_path / "machine3", tfds_dir, tracking_server)
    result = third.cli("run", *SMALL, "--set", f"pipeline.name={NAME}")
    assert result.returncode == 0, result.stderr[-4000:]
    assert "ingest: cached artifact rejected, recomputing" in result.stderr and "missing" in result.stderr
    assert "validate: cached artifact rejected, recomputing" in result.stderr and "sha256" in result.stderr
    runs = _latest_stages(server_client, NAME)
    recomputed = {stage for stage, run in runs.items() if run.data.tags[TAG_CACHED] == "false"}
    assert recomputed == {"ingest", "validate"}  # the rest keep their fingerprints and are downloaded
    for stage in STAGES:
        fingerprint = runs[stage].data.tags[TAG_FINGERPRINT]
        assert fingerprint == made[stage].data.tags[TAG_FINGERPRINT]
        copy = artifacts.load(_local_copy(third, stage, fingerprint), verify=True)
        if stage in recomputed:
            # Made here and uploaded anew, with the statistics the corrupt copy had lost.
            assert copy.producer_run_id == runs[stage].info.run_id
            assert artifacts.load(_uploaded(tracking_server, runs[stage]), verify=True).files == copy.files
    local = _local_copy(third, "validate", runs["validate"].data.tags[TAG_FINGERPRINT]) / STATISTICS_FILE
    assert json.loads(local.read_text()) and local.read_bytes() != bytes(flipped)


def test_a_tuning_worker_with_only_the_tracking_uri_reads_the_transformed_data(tmp_path, tfds_dir, tracking_server,
                                                                                server_client, loopback_port):
    name = "digits_shared_tuning"
    args = (*SMALL, "--set", f"pipeline.name={name}", "--set", "tune.enabled=true", "--set", "tune.algorithm=random",
            "--set", "tune.max_trials=2", "--set", "tune.max_epochs=1", "--set", 'tune.space.encoder=["mlp"]',
            "--set", "tune.space.units={ values = [16, 32] }", "--oracle", f"127.0.0.1:{loopback_port}")
    chief = _machine(tmp_path / "chief", tfds_dir, tracking_server)
    worker_root = tmp_path / "worker"
    worker_root.mkdir()
    # The worker's whole environment: no TFDS data directory, no shared folder; the server and an empty store.
    worker = Store(worker_root, {**{k: v for k, v in chief.env.items() if not k.startswith("TFDS_")},
                                 "PIPELINE_STORE_DIR": str(worker_root)})
    processes = [chief.popen("tune", *args, "--role", "chief"),
                 worker.popen("tune", *args, "--role", "worker", "--tuner-id", "tuner0")]
    outputs = outputs_of(processes)
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]

    stages = {run.data.tags[TAG_STAGE]: run for run in server_client.search_runs(
        [server_client.get_experiment_by_name(name).experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'stage'")}
    tune = stages["tune"]
    assert tune.info.status == "FINISHED"
    trials = server_client.search_runs([tune.info.experiment_id],
                                       filter_string=f"tags.`mlflow.parentRunId` = '{tune.info.run_id}'")
    # The chief serves the oracle only: every trial was trained by the worker, on data it downloaded.
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.tags["pipeline.tuner_id"] for t in trials} == {"tuner0"}
    transform = worker_root / "pipeline" / name / "preprocess" / stages["preprocess"].data.tags[TAG_FINGERPRINT]
    assert artifacts.load(transform, verify=True).producer_run_id == stages["preprocess"].info.run_id


def test_a_server_location_no_other_machine_can_read_is_refused_before_anything_is_recorded(
        tmp_path, tfds_dir, tracking_server, server_client):
    """What a tracking server started without artifact serving gives a new experiment: a path on its own disk.
    The experiment is made here with such a location, as that server would make it."""
    name = "digits_unshared"
    experiment_id = server_client.create_experiment(name, artifact_location=str(tmp_path / "server-disk"))
    machine = _machine(tmp_path / "machine", tfds_dir, tracking_server)
    result = machine.cli("run", *SMALL, "--set", f"pipeline.name={name}")
    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr
    assert 'tracking.artifact_store = "mlflow"' in message and str(tmp_path / "server-disk") in message
    assert "--artifacts-destination" in message and 'tracking.artifact_store = "local"' in message
    assert server_client.search_runs([experiment_id]) == []
    assert not (machine.root / "pipeline").exists() and not (tmp_path / "server-disk").exists()
