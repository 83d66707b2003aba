"""What the pipeline says on the terminal: progress and results on stderr, data on stdout.

One line per stage as it starts and ends, and a summary table at the end.
`--quiet` keeps only warnings, errors and the summary; `--verbose` adds detail.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from pipeline.tracking import ui_url

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
    """The one figure that says how a stage went, for the progress line and the summary table.

    Empty for properties this code cannot read (a run logged by another version of the pipeline).
    """
    from components import properties as kinds

    typed = kinds.of_stage(stage, properties)
    if isinstance(typed, kinds.ExamplesProperties):
        return " / ".join(f"{split} {typed.counts[split]}" for split in ("train", "validation", "test")
                          if split in typed.counts)
    if isinstance(typed, kinds.StatisticsProperties):
        return f"{typed.anomalies} anomalies"
    if isinstance(typed, kinds.TransformProperties):
        return f"{typed.input_kind} {typed.input_shape}"
    if isinstance(typed, kinds.HyperParametersProperties):
        if typed.best_score is None:
            return "fixed hyperparameters"
        return f"{typed.trials} trials, best {typed.objective} {typed.best_score:.4f}"
    if isinstance(typed, kinds.ModelProperties):
        return f"{typed.epochs} epochs, {typed.val_metric} {_number(typed.val_value)}"
    if isinstance(typed, kinds.EvaluationProperties):
        verdict = "blessed" if typed.blessed else "not blessed"
        if typed.task == "regression":
            return f"test MAE {_number(typed.metrics.get('mae'))}, R² {_number(typed.metrics.get('r2'))}, {verdict}"
        return f"test accuracy {_number(typed.metrics.get('accuracy'))}, {verdict}"
    if isinstance(typed, kinds.PushProperties):
        return f"version {typed.version} is champion" if typed.pushed else "not pushed (not blessed)"
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
         f"{ui_url()}/#/experiments/{experiment_id}/runs/{run_id}")


def _process_seconds() -> float:
    """Wall seconds since this process started (interpreter start-up and imports included), as a user
    waits for them: the stages' sum leaves those out."""
    import psutil

    return time.time() - psutil.Process().create_time()
