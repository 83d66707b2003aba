"""The printed table, `results/latest.json` and `RESULTS.md`."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.machine import summary_line
from benchmarks.suite import Results, Row, Settings

COLUMNS = ("#", "benchmark", "wall", "cpu", "target", "met wall/cpu", "detail", "load 1m")


def _value(row: Row) -> str:
    if row.value is None:
        return "-"
    if row.unit == "x":
        return f"{row.value:.3f}"
    if row.unit == "s":
        return f"{row.value:.1f} s"
    return f"{row.value:.0f} {row.unit}"


def _met(row: Row) -> str:
    def word(met: bool | None) -> str:
        return "-" if met is None else ("yes" if met else "NO")

    if row.met is None:
        return ""
    return f"{word(row.met)}/{word(row.cpu_met)}"


def _cells(row: Row) -> list[str]:
    cpu = "" if row.cpu is None else f"{row.cpu:.3f}"
    return [row.id, row.name, _value(row), cpu, row.target, _met(row), row.detail, row.load]


def _aligned(body: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in body) for i in range(len(body[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in body]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _markdown(body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(body[0]) + " |", "|" + "---|" * len(body[0])]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in line) + " |" for line in body[1:]]
    return "\n".join(lines)


def _figures(rows: list[Row]) -> list[list[str]]:
    return [list(COLUMNS)] + [_cells(r) for r in rows]


def _stages(stages: dict[str, list[dict[str, Any]]]) -> list[list[str]]:
    """Seconds per stage of each end-to-end run, side by side."""
    names = list(stages)
    order = [s["stage"] for s in next(iter(stages.values()))] if stages else []
    body = [["stage", *[f"{n} (s)" for n in names]]]
    for stage in order:
        row = [stage]
        for name in names:
            found = [s for s in stages[name] if s["stage"] == stage]
            row.append(f"{found[0]['seconds']:.1f}" if found else "-")
        body.append(row)
    return body


def text_tables(results: Results) -> str:
    return _aligned(_figures(results.rows)) + "\n\nseconds per stage (pipeline show --json):\n" + _aligned(_stages(results.stages))


def write_json(path: Path, machine: dict[str, Any], settings: Settings, results: Results, command: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": command, "machine": machine, "settings": {**asdict(settings), "shared_tfds": str(settings.shared_tfds),
               "profile": str(settings.profile) if settings.profile else None},
               "rows": [asdict(r) for r in results.rows], "stages": results.stages, "raw": results.raw}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")


def write_markdown(path: Path, machine: dict[str, Any], settings: Settings, results: Results, command: str) -> None:
    mode = "quick" if settings.quick else "default"
    load_end = machine.get("load_at_end")
    text = f"""# Benchmark results

Measured {machine['date']} with `{command}` ({mode} mode: {settings.repeats} side-by-side repeat(s) per
ratio, median reported; {machine.get('benchmark_seconds', 0):.0f} s in all).

Machine: {summary_line(machine)}.

Load average (1, 5, 15 min): {', '.join(str(v) for v in machine['load_at_start'])} at the start,
{', '.join(str(v) for v in load_end) if load_end else '?'} at the end. The `load 1m` column gives the
1-minute load average seen around each measurement: on {machine['cores']} cores, anything above
{machine['cores']} means other work was competing for the CPU, and the `wall` ratios carry that noise.
The `cpu` column is the same ratio in CPU time of the measured process (all threads), which other
work disturbs much less.

{_markdown(_figures(results.rows))}

Seconds per stage of the end-to-end runs (`pipeline show --json`):

{_markdown(_stages(results.stages))}

What each figure measures and how: the Benchmarks section of `README.md`.
"""
    path.write_text(text)
