"""The seven benchmarks, in the order they run; each adds rows to the table and keeps its raw figures.

Order matters only to share work: the default pipeline's full run feeds the
cached re-run, the end-to-end split and the memory figure; the fashion_mnist
pipeline run feeds the same figures and gives the training benchmarks their
transformed data and hyperparameters.

Every ratio is measured side by side (the two variants alternate, which one
goes first alternates too) and reported as the median over repeats, in wall
time and in CPU time. On a machine shared with other work the wall ratio
carries the other work's noise; the CPU-time ratio mostly does not.
"""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.runs import ROOT, Workspace

FASHION_CONFIG = ROOT / "pipeline" / "configs" / "fashion_mnist.toml"
# Where fashion_mnist is prepared: TFDS_DATA_DIR (`make bench` sets it), else TFDS's own default.
SHARED_TFDS = Path(os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets").resolve()
GROUPS = ("pipelines", "training", "input", "tracking", "scale", "tuning", "beam")  # what --only may pick
SAME_BUDGET_CONFIG = ROOT / "benchmarks" / "same_budget.toml"


@dataclass(frozen=True)
class Settings:
    repeats: int  # side-by-side repeats of each ratio (the median is reported)
    quick: bool
    shared_tfds: Path = SHARED_TFDS  # a TFDS data_dir with fashion_mnist prepared
    fashion_examples: int = 0  # data.max_examples of the fashion_mnist run (0 = every example)
    fashion_epochs: int = 8  # train.epochs of the fashion_mnist run and of the training benchmark
    slice_examples: int = 0  # fashion_mnist train examples the input-pipeline and tracking benchmarks read (0 = all)
    digits_pairs: int = 20  # logged/unlogged fit pairs on digits (a fit is about a second: its ratio is noisy, so many)
    digits_epochs_per_fit: int = 20  # epochs of each of those fits (a digits epoch takes about 0.1 s)
    profile: Path | None = None  # also cProfile one extra (unmeasured) train stage run into this file

    @classmethod
    def make(cls, repeats: int | None, quick: bool, shared_tfds: Path | None, profile: Path | None,
             fashion_examples: int | None = None, fashion_epochs: int | None = None) -> "Settings":
        sizes = dict(fashion_examples=3000, fashion_epochs=1, slice_examples=1000, digits_pairs=4) if quick else {}
        if fashion_examples is not None:
            sizes["fashion_examples"] = fashion_examples
        if fashion_epochs is not None:
            sizes["fashion_epochs"] = fashion_epochs
        return cls(repeats=repeats or (1 if quick else 3), quick=quick, shared_tfds=shared_tfds or SHARED_TFDS,
                   profile=profile, **sizes)

    @property
    def long_repeats(self) -> int:
        """Repeats of the measurements made of short fashion_mnist fits (their callers take four times as
        many, since a fit of two epochs is short and this machine's timings of it vary by 10-30 %): at
        least 3 unless --quick."""
        return self.repeats if self.quick else max(3, self.repeats)


@dataclass
class Row:
    id: str
    name: str
    value: float | None  # wall-time figure
    unit: str  # "x" for a ratio, "s", "MiB"
    cpu: float | None = None  # the same ratio in CPU time, where measured
    target: str = ""
    met: bool | None = None  # judged on the wall-time figure
    cpu_met: bool | None = None  # judged on the CPU-time figure
    detail: str = ""
    load: str = ""  # 1-minute load average, lowest-highest, around the measurement


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def _ratio_row(id_: str, name: str, wall: float, cpu: float | None, target: str, detail: str, load: str,
               cpu_target: str | None = None) -> Row:
    """A ratio row judged against `target` ("<= 1.05" or ">= 0.95") in wall time, and in CPU time against
    `cpu_target` where the CPU figure has a target of its own (else against `target` too)."""

    def judge(value: float, bound_text: str) -> bool:
        op, bound = bound_text.split()
        return value <= float(bound) if op == "<=" else value >= float(bound)

    shown = target if cpu_target is None else f"{target}, cpu {cpu_target}"
    cpu_met = None if cpu is None else judge(cpu, cpu_target or target)
    return Row(id_, name, wall, "x", cpu, shown, judge(wall, target), cpu_met, detail, load)


def _stage_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"stage": s["stage"], "seconds": s["seconds"], "cached": s["cached"]} for s in summary["stages"]]


def _slowest(stages: list[dict[str, Any]]) -> str:
    top = max(stages, key=lambda s: s["seconds"])
    return f"slowest stage: {top['stage']} {top['seconds']:.1f} s"


def _median(values) -> float:
    return statistics.median(list(values))


def _spread(ratios) -> str:
    """The lowest and highest of the repeated ratios behind a median, so its noise is visible."""
    ratios = list(ratios)
    return f"repeats {min(ratios):.3f}-{max(ratios):.3f}"


def _best(first, second, *, faster: str) -> str:
    """The ratio of each variant's best repeat: what remains when the noise that only slows is left out."""
    pick = max if faster == "higher" else min
    return f"best of each {pick(first) / pick(second):.3f}"


# -- 2, 5a, 6a: the default pipeline ---------------------------------------------------------------------------

def default_pipeline(ws: Workspace, settings: Settings, results: Results) -> Path:
    """`pipeline run` on the default config in a fresh store, then the same command again (x repeats)."""
    store, mark = ws.store("default"), ws.mark()
    args = ["run"] + (["--set", "tune.enabled=false"] if settings.quick else [])
    what = "default pipeline" + (" (quick: tune disabled)" if settings.quick else "")
    full = ws.pipeline(store, *args, label="default-full").check(f"{what}, full run")
    full_load = ws.load_span(mark)
    stages = _stage_rows(ws.show(store, "digits"))
    reruns, all_cached = [], True
    for repeat in range(settings.repeats):
        reruns.append(ws.pipeline(store, *args, label=f"default-rerun{repeat}").check(f"{what}, re-run"))
        # The first and the last re-run are checked (`pipeline show` costs a process start); with the
        # source snapshot and the store unchanged in between, the ones between behave alike.
        if repeat in (0, settings.repeats - 1):
            all_cached &= all(s["cached"] for s in ws.show(store, "digits")["stages"])
    rerun_s, rerun_cpu = _median(r.seconds for r in reruns), _median(r.cpu_seconds for r in reruns)
    results.stages["default"] = stages
    results.raw["default"] = {"full_s": full.seconds, "full_cpu_s": full.cpu_seconds,
                              "rerun_s": [r.seconds for r in reruns], "rerun_cpu_s": [r.cpu_seconds for r in reruns],
                              "all_cached": all_cached, "maxrss_mib": full.maxrss_mib,
                              "tree_peak_mib": full.tree_peak_mib, "stages": stages,
                              "load": [full.load, *[r.load for r in reruns]]}
    row = _ratio_row("2", f"cached re-run / full run ({what})", rerun_s / full.seconds, rerun_cpu / full.cpu_seconds,
                     "<= 0.15", f"full {full.seconds:.1f} s, re-run {rerun_s:.1f} s (median of {len(reruns)})"
                     + ("" if all_cached else "; NOT every stage was cached: invalid"), ws.load_span(mark))
    if not all_cached:
        row.met = row.cpu_met = False
    results.rows.append(row)
    results.rows.append(Row("5a", f"end to end: {what}", full.seconds, "s",
                            target="" if settings.quick else "<= 60",
                            met=None if settings.quick else full.seconds <= 60,
                            detail=f"{_slowest(stages)}; stages sum {sum(s['seconds'] for s in stages):.1f} s, "
                                   "the rest is start-up", load=full_load))
    results.rows.append(Row("6a", f"peak memory: {what}", full.maxrss_mib, "MiB",
                            detail=f"pipeline process max RSS; process tree sampled {full.tree_peak_mib:.0f} MiB",
                            load=full_load))
    return store


# -- 5b, 6b: the fashion_mnist pipeline ------------------------------------------------------------------------

def fashion_arguments(settings: Settings) -> tuple[str | None, list[str]]:
    """(config file or None, --set overrides) of the bounded fashion_mnist run: no tuning, few epochs."""
    overrides = ["tune.enabled=false", f"train.epochs={settings.fashion_epochs}", "evaluate.min_accuracy=0",
                 f"data.max_examples={settings.fashion_examples}", f"data.data_dir={settings.shared_tfds}"]
    if FASHION_CONFIG.is_file():
        return str(FASHION_CONFIG.relative_to(ROOT)), overrides
    data = ["data.name=fashion_mnist", "data.train_split=train[:90%]", "data.validation_split=train[90%:]",
            "data.test_split=test", "pipeline.name=fashion_mnist"]
    return None, [*data, *overrides]


def fashion_pipeline(ws: Workspace, settings: Settings, results: Results) -> dict[str, Any]:
    store, mark = ws.store("fashion_mnist"), ws.mark()
    config_file, overrides = fashion_arguments(settings)
    args = ["run", *(["--config", config_file] if config_file else [])]
    for override in overrides:
        args += ["--set", override]
    done = ws.pipeline(store, *args, label="fashion-full").check("fashion_mnist pipeline")
    load = ws.load_span(mark)
    stages = _stage_rows(ws.show(store, "fashion_mnist"))
    results.stages["fashion_mnist"] = stages
    examples = f"max_examples={settings.fashion_examples}" if settings.fashion_examples else "all examples"
    what = f"fashion_mnist ({examples}, tune disabled, {settings.fashion_epochs} epoch(s))"
    results.raw["fashion_mnist"] = {"seconds": done.seconds, "cpu_seconds": done.cpu_seconds,
                                    "maxrss_mib": done.maxrss_mib, "tree_peak_mib": done.tree_peak_mib,
                                    "stages": stages, "load": done.load, "config_file": config_file,
                                    "overrides": overrides}
    results.rows.append(Row("5b", f"end to end: {what}", done.seconds, "s",
                            detail=f"{_slowest(stages)}; stages sum {sum(s['seconds'] for s in stages):.1f} s",
                            load=load))
    results.rows.append(Row("6b", f"peak memory: {what}", done.maxrss_mib, "MiB",
                            detail=f"process tree sampled {done.tree_peak_mib:.0f} MiB", load=load))
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


# -- 1: the train stage against a plain Keras script ------------------------------------------------------------

def training_overhead(ws: Workspace, settings: Settings, results: Results, request: dict[str, Any]) -> None:
    """A fresh process per measurement; stage and plain script alternate which goes first."""
    store, mark = ws.store("training"), ws.mark()
    pairs = []
    for repeat in range(settings.repeats):
        order = ["train-stage", "train-plain"] if repeat % 2 == 0 else ["train-plain", "train-stage"]
        pair = {}
        for task in order:
            job = {**request, "out": str(ws.root / "train" / f"{task}-{repeat}")}
            pair[task] = ws.worker(store, task, job, label=f"{task}-{repeat}")
        pairs.append(pair)
    load = ws.load_span(mark)
    if settings.profile:  # an extra, unmeasured run: cProfile slows the Python side of every training step
        job = {**request, "out": str(ws.root / "train" / "profiled"), "profile": str(settings.profile.resolve())}
        ws.worker(store, "train-stage", job, label="train-stage-profiled")

    def median(key: str, task: str) -> float:
        return _median(p[task][key] for p in pairs)

    def ratio(key: str) -> float:
        return _median(p["train-stage"][key] / p["train-plain"][key] for p in pairs)

    fixed = _median((p["train-stage"]["seconds"] - p["train-stage"]["fit_seconds"])
                    - (p["train-plain"]["seconds"] - p["train-plain"]["fit_seconds"]) for p in pairs)
    results.raw["training"] = {"pairs": pairs, "outside_fit_extra_s": fixed}
    n = len(pairs)
    stage_s, plain_s = [p["train-stage"]["seconds"] for p in pairs], [p["train-plain"]["seconds"] for p in pairs]
    results.rows.append(_ratio_row(
        "1", "training: whole train stage / plain Keras script", ratio("seconds"), ratio("cpu_seconds"), "<= 1.05",
        f"stage {median('seconds', 'train-stage'):.1f} s vs plain {median('seconds', 'train-plain'):.1f} s "
        f"(median of {n}, {_spread(a / b for a, b in zip(stage_s, plain_s))}, "
        f"{_best(stage_s, plain_s, faster='lower')}); "
        f"outside fit the stage spends {fixed:.1f} s more", load))
    results.rows.append(Row(
        "1b", "training: fit only, stage / plain", ratio("fit_seconds"), "x",
        detail=f"fit {median('fit_seconds', 'train-stage'):.1f} s vs {median('fit_seconds', 'train-plain'):.1f} s",
        load=load))


# -- 3, 4: input pipeline and tracking -------------------------------------------------------------------------

def input_pipeline(ws: Workspace, settings: Settings, results: Results, request: dict[str, Any]) -> None:
    job = {**request, "rounds": 4 * settings.long_repeats, "limit": settings.slice_examples, "epochs_per_fit": 2}
    mark = ws.mark()
    found = ws.worker(ws.store("training"), "input-pipeline", job, label="input-pipeline")
    results.raw["input_pipeline"] = found
    rates = found["steps_per_s"]
    results.rows.append(_ratio_row(
        "3", "input pipeline: steps/s, streamed shards / in-memory tensors", found["ratio"], found["cpu_ratio"], ">= 0.90",
        f"{rates['shards']:.1f} vs {rates['tensors']:.1f} steps/s, {found['examples']} fashion_mnist examples, batch "
        f"{found['batch_size']} (median of {found['rounds']} alternating {found['epochs_per_fit']}-epoch fits, "
        f"{_spread(found['ratios'])}, "
        f"{_best(found['all_steps_per_s']['shards'], found['all_steps_per_s']['tensors'], faster='higher')})",
        ws.load_span(mark)))


def tracking_overhead(ws: Workspace, settings: Settings, results: Results, requests: dict[str, dict[str, Any]]) -> None:
    found = {}
    for suffix, (name, request) in zip("ab", requests.items()):
        digits = name == "digits"
        job = {**request, "pairs": settings.digits_pairs if digits else 4 * settings.long_repeats,
               "epochs_per_fit": settings.digits_epochs_per_fit if digits else 2,
               "limit": 0 if digits else settings.slice_examples}
        mark = ws.mark()
        figures = found[name] = ws.worker(ws.store("tracking"), "tracking", job, label=f"tracking-{name}")
        results.rows.append(_ratio_row(
            f"4{suffix}", f"tracking: epoch with / without MLflow logging and system metrics ({name})", figures["ratio"],
            figures["cpu_ratio"], "<= 1.02",
            f"epoch {figures['epoch_s_logged']:.3f} s vs {figures['epoch_s_plain']:.3f} s (medians); the logger held the "
            f"training thread {1000 * figures['held_per_fit_s']:.1f} ms a fit (one synchronous mlflow.log_metrics: "
            f"{1000 * figures['log_call_sync_s']:.1f} ms); {figures['examples']} examples, median of "
            f"{figures['pairs']} pairs of {figures['epochs_per_fit']}-epoch fits "
            f"({_spread(logged[0] / plain[0] for logged, plain in figures['fits'])}, "
            f"{_best([a[0] for a, _ in figures['fits']], [b[0] for _, b in figures['fits']], faster='lower')})",
            ws.load_span(mark)))
    results.raw["tracking"] = found


# -- 7: memory and time against the size of the data -----------------------------------------------------------

def scale(ws: Workspace, settings: Settings, results: Results) -> None:
    """`pipeline run` (tuning off, one epoch) on synthetic_images at two sizes: peak RSS and wall time.

    Each size is prepared by TFDS first, in a worker of its own (TFDS's writer is not the pipeline's),
    so the measured run reads a prepared dataset like any catalogue one."""
    sizes = (1, 8) if settings.quick else (1, 32)
    mark = ws.mark()
    runs = {}
    for multiple in sizes:
        store = ws.store(f"scale-x{multiple}")
        ws.worker(store, "prepare", {"name": f"synthetic_images/x{multiple}"}, label=f"prepare-x{multiple}")
        runs[multiple] = ws.pipeline(
            store, "run", "--set", f"data.name=synthetic_images/x{multiple}", "--set", "tune.enabled=false",
            "--set", "train.epochs=1", "--set", "evaluate.min_accuracy=0", "--set", "pipeline.name=scale",
            "--set", "data.train_split=train[:90%]", "--set", "data.validation_split=train[90%:]",
            "--set", "data.test_split=test", label=f"scale-x{multiple}").check(f"synthetic_images/x{multiple} run")
    small, large = (runs[m] for m in sizes)
    factor = sizes[1] // sizes[0]
    load = ws.load_span(mark)
    results.raw["scale"] = {f"x{m}": {"seconds": r.seconds, "cpu_seconds": r.cpu_seconds, "maxrss_mib": r.maxrss_mib,
                                      "tree_peak_mib": r.tree_peak_mib} for m, r in runs.items()}
    results.rows.append(_ratio_row(
        "7a", f"peak memory: pipeline run on synthetic_images x{sizes[1]} / x{sizes[0]}",
        large.maxrss_mib / small.maxrss_mib, None, "<= 1.2",
        f"max RSS {large.maxrss_mib:.0f} vs {small.maxrss_mib:.0f} MiB for {factor}x the examples "
        "(tuning off, one epoch, dataset prepared beforehand)", load))
    results.rows.append(Row(
        "7b", f"wall time: synthetic_images x{sizes[1]} / x{sizes[0]}", large.seconds / small.seconds, "x",
        detail=f"{large.seconds:.1f} s vs {small.seconds:.1f} s for {factor}x the examples; the fixed start-up "
               "(imports, MLflow runs, model build) keeps the ratio below the data's", load=load))


# -- 8: tuning speed ----------------------------------------------------------------------------------------------

def _trial_runs(store: Path, name: str) -> list:
    import mlflow

    client = mlflow.MlflowClient(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    return client.search_runs([experiment.experiment_id], filter_string="tags.`pipeline.kind` = 'trial'",
                              max_results=5000)


def tuning_speed(ws: Workspace, settings: Settings, results: Results) -> None:
    """8a: a same-budget pipeline run against the plain script (benchmarks/plain_search.py), alternating,
    each in a fresh store; 8b: the per-trial overhead of those runs' trials; 8c: the default search with
    tune.workers = 2 against 1, alternating, as trials per minute of the tune stage."""
    import sys

    mark = ws.mark()
    config = str(SAME_BUDGET_CONFIG.relative_to(ROOT))
    pairs, overheads = [], []
    for repeat in range(settings.repeats):
        order = ("project", "plain") if repeat % 2 == 0 else ("plain", "project")
        pair = {}
        for side in order:
            store = ws.store(f"budget-{side}-{repeat}")
            if side == "project":
                pair[side] = ws.pipeline(store, "run", "--config", config, "-q",
                                         label=f"budget-project-{repeat}").check("same-budget pipeline run")
                overheads += [t.data.metrics["overhead_seconds"] for t in _trial_runs(store, "digits")
                              if "overhead_seconds" in t.data.metrics]
            else:
                pair[side] = ws.spawn([sys.executable, "-m", "benchmarks.plain_search", str(store / "search")], store,
                                      f"budget-plain-{repeat}").check("plain search script")
        pairs.append(pair)
    load = ws.load_span(mark)
    plain_figures = [json.loads(p["plain"].stdout.read_text().strip().splitlines()[-1]) for p in pairs]
    wall = [p["project"].seconds / p["plain"].seconds for p in pairs]
    cpu = [p["project"].cpu_seconds / p["plain"].cpu_seconds for p in pairs]
    project_s, plain_s = [p["project"].seconds for p in pairs], [p["plain"].seconds for p in pairs]
    results.raw["tuning_budget"] = {"project_s": project_s, "plain_s": plain_s,
                                    "project_cpu_s": [p["project"].cpu_seconds for p in pairs],
                                    "plain_cpu_s": [p["plain"].cpu_seconds for p in pairs],
                                    "plain": plain_figures, "trial_overhead_s": overheads}
    results.rows.append(_ratio_row(
        "8a", "tuning: same-budget pipeline run / plain KerasTuner + MLflow script", _median(wall), _median(cpu),
        "<= 0.80",
        f"{_median(project_s):.1f} s vs {_median(plain_s):.1f} s (median of {len(pairs)}, {_spread(wall)}, "
        f"{_best(project_s, plain_s, faster='lower')}); 6 random trials x 5 epochs + a 20-epoch train, both sides; "
        f"the script spends {_median(f['log_model_seconds'] for f in plain_figures):.1f} s in log_model", load,
        cpu_target="<= 0.85"))
    if overheads:
        results.rows.append(Row(
            "8b", "tuning: per-trial overhead (trial wall minus its epochs)", _median(overheads), "s",
            target="<= 0.8", met=_median(overheads) <= 0.8,
            detail=f"median of {len(overheads)} trials of the same-budget runs, {min(overheads):.2f}-"
                   f"{max(overheads):.2f} s (the first epoch of a trial includes tracing its model's functions)",
            load=load))

    mark = ws.mark()
    rates: dict[int, list[float]] = {1: [], 2: []}
    trials_seen = {}
    for repeat in range(settings.repeats):
        for workers in ((1, 2) if repeat % 2 == 0 else (2, 1)):
            store = ws.store(f"workers{workers}-{repeat}")
            ws.pipeline(store, "tune", "--set", f"tune.workers={workers}", "-q",
                        label=f"tune-workers{workers}-{repeat}").check(f"tune with {workers} worker(s)")
            (tune,) = [s for s in ws.show(store, "digits")["stages"] if s["stage"] == "tune"]
            trials = len(_trial_runs(store, "digits"))
            trials_seen[workers] = trials
            rates[workers].append(60 * trials / tune["seconds"])
    ratios = [two / one for two, one in zip(rates[2], rates[1])]
    results.raw["tuning_workers"] = {"trials_per_minute": rates, "trials": trials_seen}
    results.rows.append(_ratio_row(
        "8c", "tuning: trials per minute, tune.workers = 2 / 1 (default search)", _median(ratios), None, ">= 1.6",
        f"{_median(rates[2]):.1f} vs {_median(rates[1]):.1f} trials/min over {trials_seen.get(1)} trials "
        f"(tune stage, median of {len(ratios)}, {_spread(ratios)}), {os.cpu_count()} cores", ws.load_span(mark)))


def run_all(ws: Workspace, settings: Settings, progress, groups: set[str] = set(GROUPS)) -> Results:
    """Run the chosen groups; the pipelines that feed them run too (their rows are kept)."""
    results = Results()
    default_store = fashion = None
    if groups & {"pipelines", "tracking"}:
        progress("default pipeline: full run, then cached re-runs")
        default_store = default_pipeline(ws, settings, results)
    if groups & {"pipelines", "training", "input", "tracking"}:
        progress("fashion_mnist pipeline")
        fashion = fashion_pipeline(ws, settings, results)
    if "training" in groups:
        progress("training: train stage vs plain Keras")
        training_overhead(ws, settings, results, fashion)
    if "input" in groups:
        progress("input pipeline")
        input_pipeline(ws, settings, results, fashion)
    if "tracking" in groups:
        progress("tracking overhead")
        tracking_overhead(ws, settings, results,
                          {"fashion_mnist": fashion, "digits": digits_request(default_store, settings)})
    if "scale" in groups:
        progress("scale: synthetic_images at two sizes")
        scale(ws, settings, results)
    if "tuning" in groups:
        progress("tuning: same budget against a plain script, per-trial overhead, parallel trials")
        tuning_speed(ws, settings, results)
    if "beam" in groups:
        from benchmarks import beam_statistics  # imports this module: imported here, not at the top

        progress("beam: validate statistics on Beam's DirectRunner vs in-process")
        beam_statistics.measure(ws, settings, results)
    results.rows.sort(key=lambda r: (r.id[0], r.id))
    return results
