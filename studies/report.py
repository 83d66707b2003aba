"""A study's report: figures over seeds with intervals, claims judged on those intervals, and plots.

Every seed of a study measures the same named figures ("measures"). Over the
seeds each becomes an `Estimate`: the mean, a 95% interval and the per-seed
values. A claim is a `Rule`: one or more `Condition`s of the form "measure on
the claimed side of a threshold". A condition is held when the whole interval
lies on the claimed side, not held when the whole interval lies on the other
side, and inconclusive when the interval straddles the threshold; a claim is
held when every condition is, not held when any condition is not.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HELD_PREFIX = "Verdict:"  # starts the one line per claim that gives its verdict
HELD, NOT_HELD, INCONCLUSIVE = "held", "not held", "inconclusive"
INTERVAL = (
    "95% t-interval of the mean over seeds: mean +- t(0.975, n-1) * s / sqrt(n), s the sample standard "
    "deviation of the per-seed values; with one seed there is no spread to measure and the interval "
    "is the single value"
)
# Student's t 97.5% quantiles for 1..10 degrees of freedom; more seeds than 11 use the normal 1.96
# (the error is under 10% of the interval's width).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


@dataclass(frozen=True)
class Estimate:
    """One figure over seeds: its mean, 95% interval and per-seed values."""

    mean: float
    low: float
    high: float
    values: tuple[float, ...]

    def text(self) -> str:
        if len(self.values) == 1:
            return f"{_number(self.mean)} (1 seed)"
        return f"{_number(self.mean)} [{_number(self.low)}, {_number(self.high)}]"

    def as_json(self) -> dict[str, Any]:
        return {"mean": _finite(self.mean), "interval_95": [_finite(self.low), _finite(self.high)],
                "values": [_finite(v) for v in self.values]}


def estimate(values: list[float]) -> Estimate:
    """Mean and 95% t-interval of per-seed values (a non-finite value makes every figure NaN)."""
    if not values:
        raise ValueError(f"an estimate needs at least one value, got {values!r}")
    array = np.asarray(values, dtype="float64")
    mean = float(array.mean())
    if len(array) == 1 or not np.isfinite(array).all():
        return Estimate(mean, mean, mean, tuple(float(v) for v in array))
    quantile = _T975[len(array) - 2] if len(array) - 1 <= len(_T975) else 1.96
    half = quantile * float(array.std(ddof=1)) / math.sqrt(len(array))
    return Estimate(mean, mean - half, mean + half, tuple(float(v) for v in array))


@dataclass(frozen=True)
class Condition:
    """The measure lies on the claimed side of the threshold."""

    measure: str  # a key of the study's measures
    side: str  # ">" or "<": the claimed side
    threshold: float

    def __post_init__(self) -> None:
        if self.side not in (">", "<"):
            raise ValueError(f"side must be '>' or '<', got {self.side!r}")

    def judge(self, figure: Estimate) -> str:
        if not all(math.isfinite(v) for v in (figure.low, figure.high)):
            return INCONCLUSIVE
        above, below = figure.low > self.threshold, figure.high < self.threshold
        if self.side == ">":
            return HELD if above else NOT_HELD if figure.high <= self.threshold else INCONCLUSIVE
        return HELD if below else NOT_HELD if figure.low >= self.threshold else INCONCLUSIVE

    def text(self) -> str:
        return f"`{self.measure}` {self.side} {self.threshold:g}"


@dataclass(frozen=True)
class Rule:
    """A classic claim and the conditions on measured figures that decide it."""

    name: str  # short label, e.g. "BN speeds training"
    paper: str  # what the paper reported
    conditions: tuple[Condition, ...]  # all must hold
    context: tuple[str, ...] = ()  # further measures shown beside the claim
    note: str = ""  # how to read the figures, one sentence

    def judge(self, measures: dict[str, Estimate]) -> Claim:
        verdicts = [condition.judge(measures[condition.measure]) for condition in self.conditions]
        overall = NOT_HELD if NOT_HELD in verdicts else HELD if set(verdicts) == {HELD} else INCONCLUSIVE
        shown = dict.fromkeys([*(c.measure for c in self.conditions), *self.context])
        measured = "; ".join(f"{key} = {measures[key].text()}" for key in shown)
        rule = "held when " + " and ".join(c.text() for c in self.conditions) + " over the whole interval"
        return Claim(self.name, self.paper, rule, measured + (f" ({self.note})" if self.note else ""), overall)


@dataclass(frozen=True)
class Claim:
    """A judged claim: the paper's figure, the rule, the measured intervals and the verdict."""

    name: str
    paper: str
    rule: str
    measured: str
    verdict: str  # HELD, NOT_HELD or INCONCLUSIVE

    def line(self) -> str:
        return f"{HELD_PREFIX} {self.verdict} — {self.name}: {self.measured}"


@dataclass(frozen=True)
class Findings:
    """What a study's `run` hands back for one seed."""

    results: dict[str, Any]  # the seed's detailed figures, JSON-serialisable
    measures: dict[str, float]  # the named figures compared over seeds (the same keys every seed)
    body: str  # markdown tables and notes for this seed
    data: str  # the datasets used: TFDS name, version and splits (never a path on this machine)
    figures: list[Path] = field(default_factory=list)  # PNGs written by this seed


def verdict(claims: list[Claim]) -> str:
    """One line for a console: how many claims held, and the others' verdicts."""
    others = [f"{claim.name}: {claim.verdict}" for claim in claims if claim.verdict != HELD]
    held = len(claims) - len(others)
    return f"{held}/{len(claims)} claims held" + (f" ({'; '.join(others)})" if others else "")


def write_report(markdown_path: Path, json_path: Path, payload: dict[str, Any], first_body: str,
                 claims: list[Claim], measures: dict[str, Estimate]) -> None:
    """The markdown report and the JSON payload of one study."""
    tracked, seeds = payload["mlflow"], payload["seeds"]
    lines = [
        f"# {payload['title']}",
        "",
        f"Size: **{'quick' if payload['quick'] else 'full'}**, seeds {', '.join(map(str, seeds))}; the "
        f"study took {payload['wall_time_s']:.0f} s on this machine (`{payload['command']}`).",
        f"MLflow: experiment `{tracked['experiment']}`, parent run `{tracked['parent_run_id']}` with one "
        f"child run per seed, and under each a run per grid cell ({tracked['runs']} runs in all).",
        f"Data: {payload['data']}.",
        "",
        f"Intervals: {INTERVAL}.",
        "",
        "## Claims: the paper beside the measured intervals",
        "",
        "| claim | paper | rule | measured here (mean [95% interval]) | verdict |",
        "| --- | --- | --- | --- | --- |",
        *(f"| {_cell(c.name)} | {_cell(c.paper)} | {_cell(c.rule)} | {_cell(c.measured)} | {c.verdict} |"
          for c in claims),
        "",
        *(claim.line() for claim in claims),
        "",
        "## Every figure over seeds",
        "",
        "| figure | mean | 95% interval | per seed |",
        "| --- | --- | --- | --- |",
        *(f"| {key} | {_number(e.mean)} | [{_number(e.low)}, {_number(e.high)}] | "
          f"{', '.join(_number(v) for v in e.values)} |" for key, e in measures.items()),
        "",
        f"## Seed {seeds[0]} in detail",
        "",
        first_body.strip(),
        "",
        "## Settings",
        "",
        *(f"- `{key}` = `{value}`" for key, value in payload["settings"].items()),
        "",
        *(f"![{Path(name).stem}]({name})" for name in payload["figures"]),
        "",
    ]
    markdown_path.write_text("\n".join(lines))
    json_path.write_text(json.dumps(_plain(payload), indent=2, allow_nan=False) + "\n")


def _number(value: float) -> str:
    if not math.isfinite(value):
        return str(value)
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def _finite(value: float) -> float | None:
    """JSON has no NaN: a non-finite figure is written as null."""
    return float(value) if math.isfinite(value) else None


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell."""
    return text.replace("|", "\\|")


def _plain(value: Any) -> Any:
    """`value` as JSON can hold it: numpy scalars and arrays as Python ones, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return _finite(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
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
