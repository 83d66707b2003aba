"""The six benchmarks, in the order they run; each returns rows for the table and its raw figures.

Order matters only to share work: the default pipeline's full run feeds the
cached re-run, the end-to-end split and the memory figure; the fashion_mnist
pipeline run feeds the same figures and gives the training benchmarks their
transformed data and hyperparameters.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runs import ROOT, Finished, Workspace

FASHION_CONFIG = ROOT / "pipeline" / "configs" / "fashion_mnist.toml"
SHARED_TFDS = (ROOT.parent / "shared" / "tfds").resolve()


@dataclass(frozen=True)
class Settings:
    repeats: int  # side-by-side repeats of each ratio (the median is reported)
    quick: bool
    shared_tfds: Path = SHARED_TFDS  # a TFDS data_dir with fashion_mnist prepared
    fashion_examples: int = 0  # data.max_examples of the fashion_mnist run (0 = every example)
    fashion_epochs: int = 3
    slice_examples: int = 20000  # train examples the input-pipeline and tracking benchmarks read
    profile: Path | None = None  # cProfile the train stage of the first repeat into this file

    @classmethod
    def make(cls, repeats: int | None, quick: bool, shared_tfds: Path | None, profile: Path | None) -> "Settings":
        base = dict(shared_tfds=shared_tfds or SHARED_TFDS, profile=profile)
        if quick:
            return cls(repeats=repeats or 1, quick=True, fashion_examples=6000, fashion_epochs=2,
                       slice_examples=6000, **base)
        return cls(repeats=repeats or 3, quick=False, **base)


@dataclass
class Row:
    id: str
    name: str
    value: float | None
    unit: str  # "x" for a ratio, "s", "MiB"
    target: str = ""
    met: bool | None = None
    detail: str = ""
    load: str = ""  # 1-minute load average before .. after the measurement


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _stage_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"stage": s["stage"], "seconds": s["seconds"], "cached": s["cached"]} for s in summary["stages"]]


def _slowest(stages: list[dict[str, Any]]) -> str:
    top = max(stages, key=lambda s: s["seconds"])
    return f"slowest stage: {top['stage']} {top['seconds']:.1f} s"


# -- the default pipeline: full run, cached re-runs, stage split, memory ---------------------------------------

def default_pipeline(ws: Workspace, settings: Settings, results: Results) -> Path:
    """`pipeline run` on the default config in a fresh store, then the same command again (x repeats)."""
    store, mark = ws.store("default"), ws.mark()
    args = ["run"] + (["--set", "tune.enabled=false"] if settings.quick else [])
    what = "default pipeline" + (" (quick: tune disabled)" if settings.quick else "")
    full = ws.pipeline(store, *args, label="default-full").check(f"{what}, full run")
    full_load = ws.load_span(mark)
    full_summary = ws.show(store, "digits")
    reruns: list[Finished] = []
    all_cached = True
    for repeat in range(settings.repeats):
        reruns.append(ws.pipeline(store, *args, label=f"default-rerun{repeat}").check(f"{what}, re-run"))
        summary = ws.show(store, "digits")
        all_cached &= all(s["cached"] for s in summary["stages"])
    rerun_s = statistics.median(r.seconds for r in reruns)
    ratio = rerun_s / full.seconds
    stages = _stage_rows(full_summary)
    results.stages["default"] = stages
    results.raw["default"] = {"full_s": full.seconds, "rerun_s": [r.seconds for r in reruns], "all_cached": all_cached,
                              "maxrss_mib": full.maxrss_mib, "tree_peak_mib": full.tree_peak_mib,
                              "stages": stages, "load": [full.load, *[r.load for r in reruns]]}
    results.rows.append(Row(
        "2", f"cached re-run / full run ({what})", ratio, "x", "<= 0.15", ratio <= 0.15 and all_cached,
        f"full {full.seconds:.1f} s, re-run {rerun_s:.1f} s (median of {len(reruns)})"
        + ("" if all_cached else "; NOT every stage was cached: the figure is invalid"),
        ws.load_span(mark)))
    results.rows.append(Row(
        "5a", f"end to end: {what}", full.seconds, "s", detail=f"{_slowest(stages)}; stages sum "
        f"{sum(s['seconds'] for s in stages):.1f} s, the rest is start-up", load=full_load))
    results.rows.append(Row(
        "6a", f"peak memory: {what}", full.maxrss_mib, "MiB",
        detail=f"max RSS of the pipeline process; sampled process tree {full.tree_peak_mib:.0f} MiB",
        load=full_load))
    return store


# -- the fashion_mnist pipeline -------------------------------------------------------------------------------

def fashion_arguments(settings: Settings) -> tuple[str | None, list[str]]:
    """(config file or None, --set overrides) of the bounded fashion_mnist run: no tuning, few epochs."""
    overrides = [f"tune.enabled=false", f"train.epochs={settings.fashion_epochs}", "evaluate.min_accuracy=0",
                 f"data.max_examples={settings.fashion_examples}"]
    if FASHION_CONFIG.is_file():
        return str(FASHION_CONFIG.relative_to(ROOT)), [f"data.data_dir={settings.shared_tfds}", *overrides]
    data = [f"data.name=fashion_mnist", f"data.data_dir={settings.shared_tfds}", "data.train_split=train[:90%]",
            "data.validation_split=train[90%:]", "data.test_split=test", "pipeline.name=fashion_mnist"]
    return None, [*data, *overrides]


def fashion_pipeline(ws: Workspace, settings: Settings, results: Results) -> dict[str, Any]:
    store, mark = ws.store("fashion_mnist"), ws.mark()
    config_file, overrides = fashion_arguments(settings)
    args = ["run", *(["--config", config_file] if config_file else [])]
    for override in overrides:
        args += ["--set", override]
    done = ws.pipeline(store, *args, label="fashion-full").check("fashion_mnist pipeline")
    load = ws.load_span(mark)
    summary = ws.show(store, "fashion_mnist")
    stages = _stage_rows(summary)
    results.stages["fashion_mnist"] = stages
    examples = f"max_examples={settings.fashion_examples}" if settings.fashion_examples else "all examples"
    what = f"fashion_mnist ({examples}, tune disabled, {settings.fashion_epochs} epochs)"
    results.raw["fashion_mnist"] = {"seconds": done.seconds, "maxrss_mib": done.maxrss_mib,
                                    "tree_peak_mib": done.tree_peak_mib, "stages": stages, "load": done.load,
                                    "config_file": config_file, "overrides": overrides}
    results.rows.append(Row("5b", f"end to end: {what}", done.seconds, "s",
                            detail=f"{_slowest(stages)}; stages sum {sum(s['seconds'] for s in stages):.1f} s",
                            load=load))
    results.rows.append(Row("6b", f"peak memory: {what}", done.maxrss_mib, "MiB",
                            detail=f"sampled process tree {done.tree_peak_mib:.0f} MiB", load=load))
    return _training_request(store, "fashion_mnist", config_file, overrides)


def _training_request(store: Path, name: str, config_file: str | None, overrides: list[str]) -> dict[str, Any]:
    """What a worker needs to train as the train stage did: the config and the preprocess/tune artifacts."""
    def artifact(stage: str) -> str:
        (found,) = [p for p in (store / "pipeline" / name / stage).iterdir() if (p / "artifact.json").is_file()]
        return str(found)

    return {"config_file": config_file, "overrides": overrides, "preprocess_dir": artifact("preprocess"),
            "tune_dir": artifact("tune")}


def digits_request(store: Path, settings: Settings) -> dict[str, Any]:
    return _training_request(store, "digits", None, ["tune.enabled=false"] if settings.quick else [])


# -- training: the stage against a plain Keras script ----------------------------------------------------------

def training_overhead(ws: Workspace, settings: Settings, results: Results, request: dict[str, Any]) -> None:
    """Fresh process per measurement, stage and plain script alternating which goes first."""
    store, mark = ws.store("training"), ws.mark()
    pairs = []
    for repeat in range(settings.repeats):
        order = ["train-stage", "train-plain"] if repeat % 2 == 0 else ["train-plain", "train-stage"]
        pair = {}
        for task in order:
            job = {**request, "out": str(ws.root / "train" / f"{task}-{repeat}")}
            if task == "train-stage" and repeat == 0 and settings.profile:
                job["profile"] = str(settings.profile)
            pair[task] = ws.worker(store, task, job, label=f"{task}-{repeat}")
        pairs.append(pair)
    ratio = statistics.median(p["train-stage"]["seconds"] / p["train-plain"]["seconds"] for p in pairs)
    fit_ratio = statistics.median(p["train-stage"]["fit_seconds"] / p["train-plain"]["fit_seconds"] for p in pairs)
    cpu_ratio = statistics.median(p["train-stage"]["cpu_seconds"] / p["train-plain"]["cpu_seconds"] for p in pairs)
    stage_s = statistics.median(p["train-stage"]["seconds"] for p in pairs)
    plain_s = statistics.median(p["train-plain"]["seconds"] for p in pairs)
    stage_fit = statistics.median(p["train-stage"]["fit_seconds"] for p in pairs)
    plain_fit = statistics.median(p["train-plain"]["fit_seconds"] for p in pairs)
    results.raw["training"] = {"pairs": pairs, "ratio": ratio, "fit_ratio": fit_ratio, "cpu_ratio": cpu_ratio}
    load = ws.load_span(mark)
    n = len(pairs)
    results.rows.append(Row(
        "1", "training: whole train stage / plain Keras script", ratio, "x", "<= 1.05", ratio <= 1.05,
        f"stage {stage_s:.1f} s vs plain {plain_s:.1f} s (median of {n}); CPU-time ratio {cpu_ratio:.2f}",
        load))
    results.rows.append(Row(
        "1b", "training: fit only, stage / plain", fit_ratio, "x", detail=f"fit {stage_fit:.1f} s vs {plain_fit:.1f} s",
        load=load))


# -- input pipeline and tracking -----------------------------------------------------------------------------

def input_pipeline(ws: Workspace, settings: Settings, results: Results, request: dict[str, Any]) -> None:
    job, mark = {**request, "rounds": 2 * settings.repeats, "limit": settings.slice_examples}, ws.mark()
    found = ws.worker(ws.store("training"), "input-pipeline", job, label="input-pipeline")
    results.raw["input_pipeline"] = found
    rates = found["steps_per_s"]
    results.rows.append(Row(
        "3", "input pipeline: steps/s via make_dataset / in-memory tensors", found["ratio"], "x", ">= 0.95",
        found["ratio"] >= 0.95,
        f"{rates['tfdata']:.0f} vs {rates['tensors']:.0f} steps/s, {found['examples']} examples, batch "
        f"{found['batch_size']} (median of {found['rounds']} alternating epochs); CPU-time ratio {found['cpu_ratio']:.2f}",
        ws.load_span(mark)))


def tracking_overhead(ws: Workspace, settings: Settings, results: Results, requests: dict[str, dict[str, Any]]) -> None:
    found = {}
    for name, request in requests.items():
        limit = settings.slice_examples if name == "fashion_mnist" else 0
        job, mark = {**request, "pairs": 2 * settings.repeats, "limit": limit}, ws.mark()
        found[name] = ws.worker(ws.store("tracking"), "tracking", job, label=f"tracking-{name}")
        found[name]["load"] = ws.load_span(mark)
    results.raw["tracking"] = found
    for suffix, (name, figures) in zip("ab", found.items()):
        results.rows.append(Row(
            f"4{suffix}", f"tracking: epoch with / without MLflow logging ({name})", figures["ratio"], "x", "<= 1.02",
            figures["ratio"] <= 1.02,
            f"epoch {figures['epoch_s_logged']:.3f} s vs {figures['epoch_s_plain']:.3f} s, log call "
            f"{1000 * figures['log_call_s']:.0f} ms, {figures['examples']} examples (median of {figures['pairs']} pairs)",
            figures["load"]))


def run_all(ws: Workspace, settings: Settings, progress) -> Results:
    results = Results()
    progress("default pipeline: full run, then cached re-runs")
    default_store = default_pipeline(ws, settings, results)
    progress("fashion_mnist pipeline")
    fashion = fashion_pipeline(ws, settings, results)
    progress("training: train stage vs plain Keras")
    training_overhead(ws, settings, results, fashion)
    progress("input pipeline")
    input_pipeline(ws, settings, results, fashion)
    progress("tracking overhead")
    tracking_overhead(ws, settings, results, {"fashion_mnist": fashion, "digits": digits_request(default_store, settings)})
    results.rows.sort(key=lambda r: (r.id[0], r.id))
    return results
