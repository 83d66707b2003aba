"""Artifacts are sealed atomically and verified by sha256; fingerprints follow code and config."""

from __future__ import annotations

import json

import pytest

from pipeline import artifacts
from pipeline.fingerprint import code_digest, fingerprint
from pipeline.names import MANIFEST


def _sealed(tmp_path):
    final = tmp_path / "stage" / "abc"
    work = artifacts.partial_dir(final)
    work.mkdir(parents=True)
    (work / "data.txt").write_text("payload")
    (work / "sub").mkdir()
    (work / "sub" / "more.bin").write_bytes(b"\x00\x01")
    artifact = artifacts.Artifact(type="Examples", uri=str(final), fingerprint="abc", producer_run_id="run1",
                                  inputs={"ingest": "f0"}, properties={"count": 3})
    return artifacts.seal(work, final, artifact), final, work


def test_seal_moves_the_partial_directory_into_place_with_a_manifest(tmp_path):
    sealed, final, work = _sealed(tmp_path)
    assert final.is_dir() and not work.exists()
    manifest = json.loads((final / MANIFEST).read_text())
    assert set(manifest["files"]) == {"data.txt", "sub/more.bin"}
    assert manifest["inputs"] == {"ingest": "f0"} and manifest["producer_run_id"] == "run1"
    loaded = artifacts.load(final)
    assert loaded.properties == {"count": 3} and loaded.files == sealed.files


def test_a_flipped_byte_is_detected(tmp_path):
    _, final, _ = _sealed(tmp_path)
    target = final / "sub" / "more.bin"
    target.write_bytes(b"\x00\x02")
    with pytest.raises(artifacts.ArtifactError, match="sha256"):
        artifacts.load(final)


def test_a_missing_file_or_manifest_is_not_a_finished_artifact(tmp_path):
    _, final, _ = _sealed(tmp_path)
    (final / "data.txt").unlink()
    with pytest.raises(artifacts.ArtifactError, match="missing"):
        artifacts.load(final)
    partial = tmp_path / "half"
    partial.mkdir()
    (partial / "data.txt").write_text("x")
    with pytest.raises(artifacts.ArtifactError, match="not a finished artifact"):
        artifacts.load(partial)


def test_resealing_replaces_the_old_artifact_whole(tmp_path):
    _, final, work = _sealed(tmp_path)
    work.mkdir()
    (work / "other.txt").write_text("new")
    artifacts.seal(work, final, artifacts.Artifact(type="Examples", uri=str(final), fingerprint="abc",
                                                   producer_run_id="run2"))
    assert sorted(p.name for p in final.iterdir()) == [MANIFEST, "other.txt"]
    assert artifacts.load(final).producer_run_id == "run2"


def test_fingerprint_changes_with_config_inputs_and_stage():
    base = fingerprint("train", "components.train", {"train": {"epochs": 3}}, {"tune": "a"})
    assert base == fingerprint("train", "components.train", {"train": {"epochs": 3}}, {"tune": "a"})
    assert base != fingerprint("train", "components.train", {"train": {"epochs": 4}}, {"tune": "a"})
    assert base != fingerprint("train", "components.train", {"train": {"epochs": 3}}, {"tune": "b"})
    assert base != fingerprint("tune", "components.train", {"train": {"epochs": 3}}, {"tune": "a"})


def test_code_digest_covers_imported_project_modules(tmp_path, monkeypatch):
    """The train stage's digest reaches models/ through its imports, so editing a model builder invalidates it."""
    from pipeline import fingerprint as module

    seen = []
    original = module._imports

    def spy(path):
        seen.append(path.relative_to(module._ROOT).as_posix())
        return original(path)

    module.code_digest.cache_clear()
    monkeypatch.setattr(module, "_imports", spy)
    code_digest("components.train")
    module.code_digest.cache_clear()
    assert "components/train.py" in seen
    assert any(path.startswith("models/") for path in seen)
    assert "pipeline/config.py" in seen
