"""Stage fingerprints: what a stage's output depends on, hashed.

A fingerprint covers the stage name, its config sections, its inputs'
fingerprints, the source of its component module and of every project module
that module imports (found by reading the source, not by importing it, so no
TensorFlow start-up is spent on a cached run), and the library versions.
"""

from __future__ import annotations

import ast
import hashlib
import json
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_PACKAGES = ("pipeline", "components", "models", "studies")
LIBRARIES = ("tensorflow-cpu", "tensorflow", "keras", "keras-tuner", "tensorflow-datasets", "mlflow")
_ROOT = Path(__file__).resolve().parent.parent


def _module_file(module: str) -> Path | None:
    parts = module.split(".")
    if parts[0] not in PROJECT_PACKAGES:
        return None
    base = _ROOT.joinpath(*parts)
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    return None


def _imports(path: Path) -> set[str]:
    """Project modules a source file imports, at any depth in the file (imports inside functions count)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PROJECT_PACKAGES}


@lru_cache(maxsize=None)
def code_digest(module: str) -> str:
    """sha256 over the module's source and the project modules it reaches through imports."""
    seen: dict[str, Path] = {}
    pending = [module]
    while pending:
        name = pending.pop()
        path = _module_file(name)
        if path is None or name in seen:
            continue
        seen[name] = path
        pending.extend(_imports(path))
        # A package's submodules imported as attributes resolve through its __init__.
        parent = name.rsplit(".", 1)[0]
        if parent != name:
            pending.append(parent)
    digest = hashlib.sha256()
    for name in sorted(seen):
        digest.update(name.encode())
        digest.update(seen[name].read_bytes())
    return digest.hexdigest()


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    versions = {}
    for library in LIBRARIES:
        try:
            versions[library] = metadata.version(library)
        except metadata.PackageNotFoundError:
            continue
    return versions


def fingerprint(stage: str, module: str, sections: dict[str, Any], inputs: dict[str, str],
                extra: dict[str, Any] | None = None) -> str:
    payload = {
        "stage": stage,
        "config": sections,
        "inputs": inputs,
        "code": code_digest(module),
        "libraries": library_versions(),
        "extra": extra or {},
    }
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]
