"""The pipeline picture: stages in order, cached or computed, seconds, key figure, fingerprints on the arrows.

MLflow has no DAG view, so every `pipeline run` logs this picture on its parent run, and
`pipeline show --graph` draws it again for any recorded run. Both are drawn from the summary
`pipeline.show.collect` reads back from MLflow, so the logged picture and the one drawn later agree.

Two forms of one picture: Mermaid text (readable as it is, rendered by GitHub and most docs tools)
and a PNG drawn with matplotlib (MLflow's artifact viewer shows images, not Mermaid).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.names import GRAPH_MERMAID, GRAPH_PNG, STAGES
from pipeline.stages import STAGE_TABLE


# One colour per state: (fill, edge). "not run" is a stage the failure stopped before it started.
COLOURS = {
    "computed": ("#e6f4ea", "#188038"),
    "cached": ("#e8f0fe", "#1a73e8"),
    "failed": ("#fce8e6", "#d93025"),
    "killed": ("#fef7e0", "#e37400"),
    "running": ("#fef7e0", "#e37400"),
    "not run": ("#f1f3f4", "#9aa0a6"),
}
PRODUCED = ("computed", "cached")  # the states in which a stage has handed on its artifact
SHORT_FINGERPRINT = 8  # characters of a fingerprint on the PNG's arrows; the Mermaid text has them whole


@dataclass(frozen=True)
class Node:
    stage: str
    state: str  # a key of COLOURS
    seconds: float | None  # None for a stage that never started
    figure: str  # the stage's key figure; for a failed stage, its error
    fingerprint: str  # "" for a stage that never started


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    fingerprint: str  # of the artifact the source hands to the target


@dataclass(frozen=True)
class Picture:
    run_id: str
    status: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    error: str | None


def _state(row: dict[str, Any]) -> str:
    status = row["status"]
    if status == "FINISHED":
        return "cached" if row["cached"] else "computed"
    return {"FAILED": "failed", "KILLED": "killed"}.get(status, "running")


def from_summary(summary: dict[str, Any]) -> Picture:
    """The picture of one pipeline run, from `pipeline.show.collect`'s summary.

    A finished run shows the stages it ran (`pipeline tune` stops after tune); any other run shows
    every stage, so what a failure kept from running is visible too.
    """
    rows = {row["stage"]: row for row in summary["stages"]}
    names = [s for s in STAGES if s in rows] if summary["status"] == "FINISHED" else list(STAGES)
    nodes = []
    for name in names:
        row = rows.get(name)
        if row is None:
            nodes.append(Node(name, "not run", None, "", ""))
        else:
            nodes.append(Node(name, _state(row), row["seconds"], row["result"], row.get("fingerprint", "")))
    shown = {node.stage: node for node in nodes}
    # Only a stage that finished hands an artifact on; the arrows out of any other carry no fingerprint.
    edges = tuple(Edge(source, stage.name, shown[source].fingerprint if shown[source].state in PRODUCED else "")
                  for stage in STAGE_TABLE if stage.name in shown
                  for source in stage.inputs if source in shown)
    return Picture(summary["run_id"], summary["status"], tuple(nodes), edges, summary.get("error"))


# -- Mermaid -----------------------------------------------------------------------------------


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label: one line, no quotes or angle brackets read as markup."""
    text = " ".join(text.split())
    return text.replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")


def _node_label(node: Node) -> str:
    parts = [f"<b>{node.stage}</b>", node.state if node.seconds is None else f"{node.state} · {node.seconds:.1f} s"]
    if node.figure:
        parts.append(_mermaid_text(textwrap.shorten(node.figure, 160, placeholder=" …")))
    return "<br/>".join(parts)


def mermaid(picture: Picture) -> str:
    lines = [f"%% pipeline run {picture.run_id}: {picture.status}"]
    if picture.error:
        lines.append(f"%% error: {' '.join(picture.error.split())}")
    lines.append("flowchart TD")
    for node in picture.nodes:
        lines.append(f'    {node.stage}["{_node_label(node)}"]')
    for edge in picture.edges:
        arrow = f'-->|"{edge.fingerprint}"|' if edge.fingerprint else "-.->"  # dotted: nothing was handed on
        lines.append(f"    {edge.source} {arrow} {edge.target}")
    for state in sorted({node.state for node in picture.nodes}):
        fill, stroke = COLOURS[state]
        dashed = ",stroke-dasharray: 4 3" if state == "not run" else ""
        name = state.replace(" ", "_")
        lines.append(f"    classDef {name} fill:{fill},stroke:{stroke}{dashed}")
        lines.append(f"    class {','.join(n.stage for n in picture.nodes if n.state == state)} {name}")
    return "\n".join(lines) + "\n"


# -- PNG ----------------------------------------------------------------------------------------

BOX_W, BOX_H, GAP = 7.0, 1.25, 0.85  # data units: box size and the vertical gap an arrow crosses


def _sides(picture: Picture, order: dict[str, int]) -> dict[Edge, str]:
    """Arrows that skip stages run beside the column: right unless they would cross another, then left."""
    sides: dict[Edge, str] = {}
    taken: list[tuple[int, int]] = []
    skips = [e for e in picture.edges if order[e.target] - order[e.source] > 1]
    for edge in sorted(skips, key=lambda e: (order[e.target] - order[e.source], order[e.source])):
        span = (order[edge.source], order[edge.target])
        crosses = any(a < span[1] and span[0] < b for a, b in taken)
        sides[edge] = "left" if crosses else "right"
        if not crosses:
            taken.append(span)
    return sides


def _top(index: int) -> float:
    """The y of the top edge of the box of the stage at this position (the first at 0, going down)."""
    return -index * (BOX_H + GAP)


def _draw_boxes(axes, picture: Picture) -> None:
    from matplotlib.patches import FancyBboxPatch

    for i, node in enumerate(picture.nodes):
        fill, stroke = COLOURS[node.state]
        axes.add_patch(FancyBboxPatch((0, _top(i) - BOX_H), BOX_W, BOX_H, boxstyle="round,pad=0.02,rounding_size=0.15",
                                      facecolor=fill, edgecolor=stroke, linewidth=2.2 if node.state == "failed" else 1.4,
                                      linestyle="--" if node.state == "not run" else "-"))
        how = node.state if node.seconds is None else f"{node.state} · {node.seconds:.1f} s"
        axes.text(0.2, _top(i) - 0.3, node.stage, fontsize=11, weight="bold", va="center")
        axes.text(BOX_W - 0.2, _top(i) - 0.3, how, fontsize=9.5, va="center", ha="right", color=stroke)
        figure_text = textwrap.shorten(node.figure, 150, placeholder=" …")
        axes.text(0.2, _top(i) - 0.82, "\n".join(textwrap.wrap(figure_text, 78)[:2]), fontsize=8.5, va="center",
                  color="#b3261e" if node.state == "failed" else "#202124")


def _draw_arrows(axes, picture: Picture) -> None:
    """Straight down to the next stage; in an arc beside the column to a later one. Labelled with the
    fingerprint handed on; dotted where nothing was."""
    from matplotlib.patches import FancyArrowPatch

    order = {node.stage: i for i, node in enumerate(picture.nodes)}
    sides = _sides(picture, order)
    for edge in picture.edges:
        a, b = order[edge.source], order[edge.target]
        label = edge.fingerprint[:SHORT_FINGERPRINT]
        if edge not in sides:
            x = BOX_W / 2
            start, end = (x, _top(a) - BOX_H), (x, _top(b))
            label_at, align, rad = (x + 0.15, (start[1] + end[1]) / 2), "left", 0.0
        else:
            right = sides[edge] == "right"
            x = BOX_W if right else 0.0
            start, end = (x, _top(a) - BOX_H / 2), (x, _top(b) - BOX_H / 2)
            bulge = min(0.5, 2.6 / abs(end[1] - start[1]))  # long arcs bend less, so they stay inside the page
            rad = -bulge if right else bulge  # matplotlib bends a positive rad to the left of start->end
            # A quadratic arc peaks half its control offset away from the chord: rad * length / 2.
            offset = bulge * abs(start[1] - end[1]) / 2 + 0.08
            label_at = (x + offset if right else x - offset, (start[1] + end[1]) / 2)
            align = "left" if right else "right"
        axes.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, linewidth=1.2,
                                       color="#5f6368", shrinkA=2, shrinkB=2, linestyle="-" if label else ":",
                                       connectionstyle=f"arc3,rad={rad}"))
        if label:
            axes.text(*label_at, label, fontsize=8, family="monospace", color="#5f6368", ha=align, va="center")


def render_png(picture: Picture, path: Path) -> Path:
    """Draw the picture with matplotlib's object API (no pyplot: no global figure state, no GUI backend)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    bottom = _top(len(picture.nodes))
    figure = Figure(figsize=(9.0, 0.62 * (1.6 - bottom) + 0.8), dpi=110)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0.02, 0.02, 0.96, 0.96))
    axes.set_xlim(-3.2, BOX_W + 3.2)
    axes.set_ylim(bottom - 0.9, 1.4)
    axes.axis("off")
    axes.text(-3.1, 1.05, f"pipeline run {picture.run_id}: {picture.status}", ha="left", va="center",
              fontsize=11, weight="bold")
    _draw_boxes(axes, picture)
    _draw_arrows(axes, picture)
    if picture.error:
        axes.text(BOX_W / 2, bottom + 0.1, "\n".join(textwrap.wrap(f"error: {picture.error}", 100)[:3]),
                  ha="center", va="top", fontsize=8.5, color="#b3261e")
    states = [s for s in COLOURS if any(n.state == s for n in picture.nodes)]
    axes.legend(handles=[Patch(facecolor=COLOURS[s][0], edgecolor=COLOURS[s][1], label=s) for s in states],
                loc="upper right", fontsize=8, frameon=False, ncols=len(states), bbox_to_anchor=(1.0, 1.0))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    return path


def write(picture: Picture, directory: Path) -> tuple[Path, Path]:
    """Both forms into a directory: (PNG, Mermaid)."""
    png = render_png(picture, directory / GRAPH_PNG)
    source = directory / GRAPH_MERMAID
    source.write_text(mermaid(picture))
    return png, source


def log(client, summary: dict[str, Any]) -> None:
    """Draw the run's picture and log both forms on its (already ended) parent run."""
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        for path in write(from_summary(summary), Path(directory)):
            client.log_artifact(summary["run_id"], str(path))
