"""Row 9: validate's statistics on Beam's DirectRunner (two worker processes) against the in-process pass.

`python -m benchmarks.beam_statistics ingest REQUEST.json RESULT.json` writes fashion_mnist's
Examples once (the real ingest component); `... statistics REQUEST.json RESULT.json` computes
every split's statistics in a fresh process, in-process or on Beam, and reports the seconds of
the computation alone (TensorFlow is imported before the clock starts, as in a pipeline process
when validate begins; importing Beam, starting its workers and their TensorFlow are timed).
The orchestrator's process-tree sampler gives the peak memory, Beam's worker processes included.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

WORKERS = 2  # DirectRunner worker processes


@dataclass(frozen=True)
class _Beam:
    """The [beam] settings of the measured variant."""

    runner: str = "direct"
    direct_num_workers: int = WORKERS
    direct_running_mode: str = "multi_processing"
    options: tuple[str, ...] = ()


def _ingest(request: dict[str, Any]) -> dict[str, Any]:
    import mlflow

    from components import ingest
    from pipeline.artifacts import read_json
    from pipeline.config import load_config
    from pipeline.names import SPEC_FILE

    config = load_config(request["config_file"])
    data = replace(config.data, data_dir=request["data_dir"])
    out = Path(request["out"])
    out.mkdir(parents=True)
    with mlflow.start_run():
        ingest.run(data, out)
    return {"counts": read_json(out / SPEC_FILE)["counts"]}


def _statistics(request: dict[str, Any]) -> dict[str, Any]:
    import tensorflow  # noqa: F401  (imported before the clock starts, as in the pipeline's process)

    from components import examples, validate
    from pipeline.artifacts import Artifact

    artifact = Artifact("Examples", request["examples"], "bench", "bench")
    spec = examples.spec(artifact)
    started = time.perf_counter()
    if request["variant"] == "beam":
        from components import beam_statistics

        statistics = beam_statistics.compute_statistics(artifact, spec, _Beam())
    else:
        statistics = validate.compute_statistics(artifact, spec)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "counts": {split: stats["count"] for split, stats in statistics.items()}}


def _run(ws, store: Path, task: str, request: dict[str, Any], label: str):
    """One task in a fresh process (the workspace's source snapshot); its result and its Finished record."""
    request_file, result_file = ws.logs / f"{label}-request.json", ws.logs / f"{label}-result.json"
    request_file.write_text(json.dumps(request, indent=2))
    done = ws.spawn([sys.executable, "-m", "benchmarks.beam_statistics", task, str(request_file), str(result_file)],
                    store, label).check(f"beam statistics benchmark: {task}")
    return json.loads(result_file.read_text()), done


def measure(ws, settings, results) -> None:
    """9a/9b: every split of fashion_mnist summarised in-process and on Beam (alternating, fresh processes)."""
    from benchmarks.suite import FASHION_CONFIG, Row, _median, _spread

    mark = ws.mark()
    store = ws.store("beam-statistics")
    examples = store / "examples"
    ingested, _ = _run(ws, store, "ingest", {"config_file": str(FASHION_CONFIG), "data_dir": str(settings.shared_tfds),
                                            "out": str(examples)}, label="beam-ingest")
    measured: dict[str, list] = {"in_process": [], "beam": []}
    for repeat in range(settings.repeats):
        order = ("in_process", "beam") if repeat % 2 == 0 else ("beam", "in_process")
        for variant in order:
            found, done = _run(ws, store, "statistics", {"examples": str(examples), "variant": variant},
                               label=f"beam-{variant}-{repeat}")
            if found["counts"] != ingested["counts"]:
                raise RuntimeError(f"{variant} statistics counted {found['counts']}, ingest wrote {ingested['counts']}")
            measured[variant].append((found["seconds"], done.tree_peak_mib))
    load = ws.load_span(mark)
    seconds = {variant: _median(s for s, _ in runs) for variant, runs in measured.items()}
    peaks = {variant: max(peak for _, peak in runs) for variant, runs in measured.items()}
    ratios = [beam[0] / own[0] for beam, own in zip(measured["beam"], measured["in_process"])]
    examples_count = sum(ingested["counts"].values())
    results.raw["beam_statistics"] = {"seconds": measured, "counts": ingested["counts"], "workers": WORKERS}
    results.rows.append(Row(
        "9a", f"validate statistics: Beam DirectRunner multi_processing, {WORKERS} workers / in-process (fashion_mnist)",
        _median(ratios), "x",
        detail=f"{seconds['beam']:.1f} s vs {seconds['in_process']:.1f} s for {examples_count} examples, every split "
               f"(median of {len(ratios)}, {_spread(ratios)}); Beam's time includes starting its worker processes "
               "and their TensorFlow", load=load))
    results.rows.append(Row(
        "9b", f"peak memory: Beam statistics ({WORKERS} worker processes included) / in-process",
        peaks["beam"] / peaks["in_process"], "x",
        detail=f"process tree sampled {peaks['beam']:.0f} MiB vs {peaks['in_process']:.0f} MiB (highest of "
               f"{len(ratios)} runs each)", load=load))


def main() -> int:
    task, request_file, result_file = sys.argv[1:4]
    request = json.loads(Path(request_file).read_text())
    result = {"ingest": _ingest, "statistics": _statistics}[task](request)
    Path(result_file).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
