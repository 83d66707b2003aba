"""Typed artifacts: directories with a manifest, written atomically, verified by sha256.

A stage writes into `<final>.partial/`; only when the stage succeeded does the
runner seal it (hash every file, write `artifact.json`) and rename it to its
final path. A directory without a valid manifest is never taken for a finished
artifact, and a flipped byte is caught by the hashes before a cache hit is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from pipeline.names import MANIFEST


class ArtifactError(RuntimeError):
    """An artifact is missing, incomplete or corrupt."""


@dataclass(frozen=True)
class Artifact:
    type: str  # e.g. "Examples", "Model"
    uri: str  # absolute path of the artifact directory
    fingerprint: str  # the producing stage's fingerprint
    producer_run_id: str  # MLflow run of the stage that produced it
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> input fingerprint (lineage)
    properties: dict[str, Any] = field(default_factory=dict)  # small facts other stages read (counts, metrics...)
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256

    @property
    def path(self) -> Path:
        return Path(self.uri)

    def file(self, name: str) -> Path:
        return self.path / name


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _hash_tree(root: Path) -> dict[str, str]:
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(root).as_posix()] = sha256_file(path)
    return files


def partial_dir(final: Path) -> Path:
    """Where a stage writes before it is sealed; kept across crashes so stages can resume."""
    return final.with_name(final.name + ".partial")


def seal(work_dir: Path, final: Path, artifact: Artifact,
         publish: Callable[[Path, Artifact], None] | None = None) -> Artifact:
    """Hash the work directory, write its manifest, and move it atomically to `final`.

    `publish`, when given, gets the manifested directory before the move (an upload, say): if it
    raises, nothing is sealed and the directory stays where the stage wrote it.
    """
    sealed = Artifact(**{**asdict(artifact), "uri": str(final), "files": _hash_tree(work_dir)})
    manifest = work_dir / MANIFEST
    tmp = manifest.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(sealed), indent=2, sort_keys=True, default=str))
    os.replace(tmp, manifest)
    if publish is not None:
        try:
            publish(work_dir, sealed)
        except BaseException:
            manifest.unlink(missing_ok=True)  # a manifest stands only in a finished artifact
            raise
    move_into_place(work_dir, final)
    return sealed


def move_into_place(directory: Path, final: Path) -> None:
    """Rename a finished directory to `final`, replacing whatever was there whole."""
    if final.exists():
        # A recomputed artifact replaces a corrupt or forced-stale one; never mix their files.
        stale = final.with_name(f"{final.name}.stale-{os.getpid()}-{int(time.time())}")
        os.replace(final, stale)
        shutil.rmtree(stale, ignore_errors=True)
    os.replace(directory, final)


def load(path: Path, *, verify: bool = True) -> Artifact:
    """Read an artifact's manifest; with `verify`, check every file's sha256."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        raise ArtifactError(f"{path} has no {MANIFEST}: it is not a finished artifact")
    try:
        data = json.loads(manifest.read_text())
        artifact = Artifact(**data)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{manifest} is unreadable: {exc}") from None
    if Path(artifact.uri).resolve() != path.resolve():
        artifact = Artifact(**{**data, "uri": str(path)})
    if verify:
        for name, expected in artifact.files.items():
            file = path / name
            if not file.is_file():
                raise ArtifactError(f"{file} is missing from artifact {path}")
            if sha256_file(file) != expected:
                raise ArtifactError(f"{file} does not match its sha256 in {MANIFEST}: the artifact is corrupt")
    return artifact


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
