"""The MLflow artifact store in-process, against a real SQLite MLflow store and its artifact folder.

Two store roots stand for two machines: one seals (and so uploads) a stage's artifact, the other finds
the run by fingerprint and downloads it. tests/scale/test_shared_artifacts.py runs whole pipelines the
same way against a tracking server.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest

from pipeline import artifacts
from pipeline.artifact_store import LOCAL, MLFLOW, ArtifactStore
from pipeline.names import (
    MANIFEST,
    STAGE_ARTIFACT_PATH,
    TAG_ARTIFACT_DIR,
    TAG_ARTIFACT_URI,
    TAG_FINGERPRINT,
    TAG_STAGE,
)
from tests.stores import blank_store, copy_store

FINGERPRINT = "0123456789abcdef0123"


@pytest.fixture(scope="module")
def blank(tmp_path_factory) -> Path:
    return blank_store(tmp_path_factory.mktemp("blank"))


@pytest.fixture()
def client(tmp_path, blank):
    uri = copy_store(blank, tmp_path / "tracking")
    mlflow.set_tracking_uri(uri)
    yield mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


def _experiment(client, tmp_path: Path) -> str:
    return client.create_experiment("shared", artifact_location=(tmp_path / "mlflow-artifacts").as_uri())


def _produce(client, store: ArtifactStore, *, status: str = "FINISHED") -> tuple[artifacts.Artifact, str]:
    """What a stage run leaves with artifact_store = "mlflow": a sealed directory here, its copy in MLflow."""
    run_id = client.create_run(store.experiment_id, tags={TAG_STAGE: "validate", TAG_FINGERPRINT: FINGERPRINT}).info.run_id
    final = store.final("validate", FINGERPRINT)
    work = artifacts.partial_dir(final)
    (work / "nested").mkdir(parents=True)
    (work / "statistics.json").write_text('{"mean": 0.5}')
    (work / "nested" / "shard-0").write_bytes(bytes(range(256)) * 64)
    sealed = store.seal(work, final, artifacts.Artifact(type="Statistics", uri=str(final), fingerprint=FINGERPRINT,
                                                       producer_run_id=run_id, properties={"count": 7}))
    client.set_terminated(run_id, status)
    return sealed, run_id


def _uploaded(tmp_path: Path, run_id: str) -> Path:
    (found,) = (tmp_path / "mlflow-artifacts").glob(f"{run_id}/artifacts/{STAGE_ARTIFACT_PATH}")
    return found


def test_sealing_uploads_the_directory_with_its_manifest_and_tags_the_run(client, tmp_path):
    store = ArtifactStore(MLFLOW, tmp_path / "machine1", client, _experiment(client, tmp_path))
    sealed, run_id = _produce(client, store)
    assert client.get_run(run_id).data.tags[TAG_ARTIFACT_URI] == f"runs:/{run_id}/{STAGE_ARTIFACT_PATH}"
    copy = _uploaded(tmp_path, run_id)
    assert artifacts.load(copy, verify=True).files == sealed.files
    assert (copy / MANIFEST).is_file() and (copy / "nested" / "shard-0").is_file()


def test_another_machine_downloads_a_verified_copy_at_the_same_fingerprint(client, tmp_path):
    experiment = _experiment(client, tmp_path)
    sealed, run_id = _produce(client, ArtifactStore(MLFLOW, tmp_path / "machine1", client, experiment))
    other = ArtifactStore(MLFLOW, tmp_path / "machine2", client, experiment)
    found, found_run = other.find("validate", FINGERPRINT)
    assert found_run == run_id
    assert found.path == other.final("validate", FINGERPRINT) and found.path.is_dir()
    assert found.properties == {"count": 7} and found.files == sealed.files and found.producer_run_id == run_id
    assert (found.file("nested") / "shard-0").read_bytes() == bytes(range(256)) * 64
    assert [p.name for p in found.path.parent.iterdir()] == [FINGERPRINT]  # no download folder left behind
    # Found again, the local copy is used as it is; a run that is not FINISHED is never a hit.
    assert other.find("validate", FINGERPRINT)[0].files == sealed.files
    assert other.find("validate", "f" * 20) is None


def test_a_flipped_byte_in_the_uploaded_copy_is_never_used(client, tmp_path, capsys):
    experiment = _experiment(client, tmp_path)
    _, run_id = _produce(client, ArtifactStore(MLFLOW, tmp_path / "machine1", client, experiment))
    shard = _uploaded(tmp_path, run_id) / "nested" / "shard-0"
    data = bytearray(shard.read_bytes())
    data[100] ^= 1
    shard.write_bytes(bytes(data))
    other = ArtifactStore(MLFLOW, tmp_path / "machine2", client, experiment)
    assert other.find("validate", FINGERPRINT) is None
    err = capsys.readouterr().err
    assert "validate: cached artifact rejected, recomputing" in err and "sha256" in err
    folder = other.final("validate", FINGERPRINT).parent
    assert not folder.exists() or list(folder.iterdir()) == []  # neither the copy nor its download folder


def test_a_file_missing_upstream_is_never_used(client, tmp_path, capsys):
    experiment = _experiment(client, tmp_path)
    _, run_id = _produce(client, ArtifactStore(MLFLOW, tmp_path / "machine1", client, experiment))
    (_uploaded(tmp_path, run_id) / "statistics.json").unlink()
    other = ArtifactStore(MLFLOW, tmp_path / "machine2", client, experiment)
    assert other.find("validate", FINGERPRINT) is None
    err = capsys.readouterr().err
    assert "rejected" in err and "missing" in err


def test_a_corrupt_local_copy_is_replaced_by_a_fresh_download(client, tmp_path, capsys):
    experiment = _experiment(client, tmp_path)
    sealed, _ = _produce(client, ArtifactStore(MLFLOW, tmp_path / "machine1", client, experiment))
    other = ArtifactStore(MLFLOW, tmp_path / "machine2", client, experiment)
    local = other.find("validate", FINGERPRINT)[0]
    local.file("statistics.json").write_text('{"mean": 0.6}')
    again, _ = other.find("validate", FINGERPRINT)
    assert again.file("statistics.json").read_text() == '{"mean": 0.5}'
    assert artifacts.load(again.path, verify=True).files == sealed.files
    assert "downloading it again" in capsys.readouterr().err


def test_a_failed_upload_seals_nothing_and_leaves_the_work_for_a_retry(client, tmp_path, monkeypatch):
    store = ArtifactStore(MLFLOW, tmp_path / "machine1", client, _experiment(client, tmp_path))

    def refused(*args, **kwargs):
        raise ConnectionError("the artifact store refused the upload")

    monkeypatch.setattr(client, "log_artifacts", refused)
    with pytest.raises(ConnectionError):
        _produce(client, store)
    final = store.final("validate", FINGERPRINT)
    work = artifacts.partial_dir(final)
    assert not final.exists() and (work / "statistics.json").is_file() and not (work / MANIFEST).exists()
    assert store.sealed(final) is None


def test_a_directory_sealed_with_the_local_store_is_not_taken_for_an_uploaded_one(client, tmp_path):
    experiment = _experiment(client, tmp_path)
    root = tmp_path / "machine1"
    _, run_id = _produce(client, ArtifactStore(LOCAL, root, client, experiment))
    assert TAG_ARTIFACT_URI not in client.get_run(run_id).data.tags
    assert not (tmp_path / "mlflow-artifacts").exists()
    mlflow_store = ArtifactStore(MLFLOW, root, client, experiment)
    final = mlflow_store.final("validate", FINGERPRINT)
    assert ArtifactStore(LOCAL, root, client, experiment).sealed(final) is not None
    # Others could not fetch it, so with "mlflow" it is neither sealed-meanwhile nor a cache hit: recomputed.
    assert mlflow_store.sealed(final) is None
    assert mlflow_store.find("validate", FINGERPRINT) is None


def test_the_local_store_keeps_no_copy_in_mlflow_and_finds_by_directory(client, tmp_path):
    experiment = _experiment(client, tmp_path)
    store = ArtifactStore(LOCAL, tmp_path / "machine1", client, experiment)
    sealed, run_id = _produce(client, store)
    client.set_tag(run_id, TAG_ARTIFACT_DIR, str(sealed.path))  # as the runner tags every stage run
    assert TAG_ARTIFACT_URI not in client.get_run(run_id).data.tags
    assert store.find("validate", FINGERPRINT)[0].files == sealed.files
    assert ArtifactStore(LOCAL, tmp_path / "machine2", client, experiment).get("validate", FINGERPRINT) is None
