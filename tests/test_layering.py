"""The layering the code promises, read from its imports (every import, function-level ones included).

models/ is pure Keras; components/ are plain functions of (artifacts, config) that know nothing of the
runner, the console or the tracking store, and no stage's component imports another's: what two stages
share lives in a helper module of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from pipeline.names import STAGES

ROOT = Path(__file__).resolve().parents[1]
RUNNER_SIDE = ("pipeline.console", "pipeline.tracking", "pipeline.runner", "pipeline.stages", "pipeline.cli")


def _imports(path: Path) -> set[str]:
    """Every module a file imports, as dotted names (`from a import b` counts as a and a.b)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules("components"), ids=lambda p: str(p.relative_to(ROOT)))
def test_components_do_not_reach_into_the_runner_or_other_stages(path):
    imported = _imports(path)
    assert not {name for name in imported if name.startswith(RUNNER_SIDE)}
    own = path.stem
    stages = {f"components.{stage}" for stage in STAGES if stage != own}
    assert not imported & stages, f"{path.name} imports another stage's component; move what they share to a helper"


@pytest.mark.parametrize("path", _modules("models"), ids=lambda p: str(p.relative_to(ROOT)))
def test_models_import_nothing_of_the_pipeline(path):
    imported = _imports(path)
    assert not {name for name in imported if name.split(".")[0] in ("pipeline", "components", "studies", "mlflow")}
