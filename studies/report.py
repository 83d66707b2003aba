"""A study's report: its claims beside the papers', the markdown and JSON files, and plots.

Each claim is rendered twice: as a row of the paper-vs-measured table and as
one line starting with HELD_PREFIX that says whether it held in this run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HELD_PREFIX = "Held here:"  # starts the one line per claim that says whether it held


@dataclass(frozen=True)
class Claim:
    """One classic claim, the paper's figure beside the measured one, and whether it held."""

    name: str  # short label, e.g. "BN speeds training"
    paper: str  # what the paper reported
    measured: str  # what this run measured, one sentence with the numbers
    held: bool  # whether the claim's direction showed in this run

    def line(self) -> str:
        return f"{HELD_PREFIX} {'yes' if self.held else 'no'} — {self.name}: {self.measured}"


@dataclass(frozen=True)
class Findings:
    """What a study's `run` hands back for the report."""

    results: dict[str, Any]  # the study's figures, JSON-serialisable
    claims: list[Claim]  # each rendered as a paper-vs-measured row and a held line
    body: str  # markdown tables and notes specific to the study
    figures: list[Path]  # PNGs written under the reports directory


def verdict(claims: list[Claim]) -> str:
    """One line for a console: how many claims held, and which did not."""
    missed = [claim.name for claim in claims if not claim.held]
    return f"{len(claims) - len(missed)}/{len(claims)} claims held here" + (
        f" (not: {'; '.join(missed)})" if missed else ""
    )


def write_report(markdown_path: Path, json_path: Path, findings: Findings, payload: dict[str, Any]) -> None:
    """The markdown report and the JSON payload of one study."""
    tracked = payload["mlflow"]
    lines = [
        f"# {payload['title']}",
        "",
        f"Size: **{'quick' if payload['quick'] else 'full'}**, seed {payload['seed']}; the study took "
        f"{payload['wall_time_s']:.0f} s on this machine (`{payload['command']}`).",
        f"MLflow: experiment `{tracked['experiment']}`, parent run `{tracked['parent_run_id']}` with "
        f"{tracked['child_runs']} child runs (one per grid cell).",
        "",
        "## Claims: the paper beside this run",
        "",
        "| claim | paper | measured here | held here |",
        "| --- | --- | --- | --- |",
        *(f"| {_cell(c.name)} | {_cell(c.paper)} | {_cell(c.measured)} | {'yes' if c.held else 'no'} |"
          for c in findings.claims),
        "",
        *(claim.line() for claim in findings.claims),
        "",
        findings.body.strip(),
        "",
        "## Settings",
        "",
        *(f"- `{key}` = `{value}`" for key, value in payload["settings"].items()),
        "",
        *(f"![{path.stem}]({path.name})" for path in findings.figures),
        "",
    ]
    markdown_path.write_text("\n".join(lines))
    json_path.write_text(json.dumps(payload, indent=2, default=_json_default) + "\n")


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")


def pyplot():
    """matplotlib's pyplot on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    pyplot().close(figure)
    return path
