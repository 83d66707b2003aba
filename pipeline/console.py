"""What the pipeline says on the terminal: progress and results on stderr, data on stdout.

One line per stage as it starts and ends, and a summary table at the end.
`--quiet` keeps only warnings, errors and the summary; `--verbose` adds detail.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

_VERBOSITY = 1
COMPONENT_LOGGER = "components"  # the components report progress through standard logging under this name


def set_verbosity(level: int) -> None:
    """How much to say; the components' log records follow the same level (their messages, as lines)."""
    global _VERBOSITY
    _VERBOSITY = level
    logger = logging.getLogger(COMPONENT_LOGGER)
    if not any(getattr(handler, "pipeline_console", False) for handler in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.pipeline_console = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.INFO if level >= 1 else logging.WARNING)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def info(text: str) -> None:
    if _VERBOSITY >= 1:
        _say(text)


def warn(text: str) -> None:
    _say(f"warning: {text}")


def error(text: str) -> None:
    _say(f"error: {text}")


def stage_start(index: int, total: int, name: str) -> None:
    info(f"[{index}/{total}] {name} ...")


def key_metric(stage: str, properties: dict[str, Any]) -> str:
    """The one figure that says how a stage went, for the progress line and the summary table."""
    if stage == "ingest":
        counts = properties.get("counts", {})
        return " / ".join(f"{split} {counts[split]}" for split in ("train", "validation", "test") if split in counts)
    if stage == "validate":
        return f"{properties.get('anomalies', 0)} anomalies"
    if stage == "preprocess":
        return f"{properties.get('input_kind', '')} {properties.get('input_shape', '')}"
    if stage == "tune":
        best = properties.get("best_score")
        trials = properties.get("trials", 0)
        return f"{trials} trials, best {properties.get('objective', '')} {best:.4f}" if best is not None else "fixed hyperparameters"
    if stage == "train":
        name = properties.get("val_metric", "val_accuracy")
        value = properties.get("val_value", properties.get("val_accuracy"))
        return f"{properties.get('epochs', 0)} epochs, {name} {_number(value)}"
    if stage == "evaluate":
        metrics = properties.get("metrics", {})
        verdict = "blessed" if properties.get("blessed") else "not blessed"
        if properties.get("task") == "regression":
            return f"test MAE {_number(metrics.get('mae'))}, R² {_number(metrics.get('r2'))}, {verdict}"
        return f"test accuracy {_number(metrics.get('accuracy'))}, {verdict}"
    if stage == "push":
        if properties.get("pushed"):
            return f"version {properties.get('version')} is champion"
        return "not pushed (not blessed)"
    return ""


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def stage_end(index: int, total: int, name: str, cached: bool, seconds: float, properties: dict[str, Any]) -> None:
    how = "cached" if cached else "done"
    info(f"[{index}/{total}] {name}: {how} in {seconds:.1f}s  {key_metric(name, properties)}")


def summary_rows(outcomes: list[Any]) -> list[dict[str, Any]]:
    return [{"stage": o.stage, "cached": o.cached, "seconds": round(o.seconds, 2),
             "result": key_metric(o.stage, o.properties)} for o in outcomes]


def print_table(rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    headers = list(rows[0])
    widths = {h: max(len(h), *(len(str(r[h])) for r in rows)) for h in headers}
    _say("  ".join(h.ljust(widths[h]) for h in headers))
    _say("  ".join("-" * widths[h] for h in headers))
    for row in rows:
        _say("  ".join(str(row[h]).ljust(widths[h]) for h in headers))


def summary(config: Any, outcomes: list[Any], run_id: str, experiment_id: str) -> None:
    _say("")
    print_table(summary_rows(outcomes))
    props = {o.stage: o.properties for o in outcomes}
    if "tune" in props and props["tune"].get("best"):
        _say(f"best hyperparameters: {props['tune']['best']}")
    if "evaluate" in props:
        _say(f"blessing: {props['evaluate'].get('reason', '')}")
    _say(f"total {_process_seconds():.1f}s; see it in the MLflow UI (`pipeline ui`): "
         f"http://127.0.0.1:5000/#/experiments/{experiment_id}/runs/{run_id}")


def _process_seconds() -> float:
    """Wall seconds since this process started (interpreter start-up and imports included), as a user
    waits for them: the stages' sum leaves those out."""
    import psutil

    return time.time() - psutil.Process().create_time()
