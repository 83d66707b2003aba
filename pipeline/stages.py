"""The stage table: which component each stage calls, with which inputs and config.

Only the runner reads this table; the components know nothing of each other,
the stage order or caching.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pipeline.artifacts import Artifact
from pipeline.config import Config, parse_address
from pipeline.names import (
    EVALUATION,
    EXAMPLES,
    HYPERPARAMETERS,
    MODEL,
    PREPROCESS,
    PUSHED,
    STATISTICS,
)


@dataclass(frozen=True)
class StageCall:
    """Everything a stage invocation may use; built by the runner."""

    config: Config
    inputs: dict[str, Artifact]  # upstream stage name -> its artifact
    out: Path  # the (partial) directory the stage writes into
    run_id: str  # the stage's MLflow run
    fingerprint: str
    options: dict[str, Any]  # runner options a stage may need (hparams file, quiet, champion)


@dataclass(frozen=True)
class Stage:
    name: str
    module: str  # the component module; its source is part of the fingerprint
    artifact_type: str
    sections: tuple[str, ...]  # config sections that change this stage's output
    inputs: tuple[str, ...]  # upstream stages whose artifacts this one consumes
    call: Callable[[StageCall], dict[str, Any]]  # imports its component, calls it -> its properties as JSON


# Each call imports its component where it runs: importing a component brings NumPy (and the stage
# brings TensorFlow), which a fully cached run never needs.

def _ingest(call: StageCall) -> dict[str, Any]:
    from components import ingest

    return ingest.run(call.config.data, call.out, beam=call.config.beam).to_dict()


def _validate(call: StageCall) -> dict[str, Any]:
    from components import validate

    return validate.run(call.inputs["ingest"], call.config.data, call.out, beam=call.config.beam).to_dict()


def _preprocess(call: StageCall) -> dict[str, Any]:
    from components import preprocess

    return preprocess.run(call.inputs["ingest"], call.inputs["validate"], call.config.data, call.out).to_dict()


def _tune(call: StageCall) -> dict[str, Any]:
    from components import tune
    from pipeline import tracking

    distributed = None
    if call.options.get("role") == "chief":
        distributed = tune.Distributed("chief", "chief", *parse_address(call.options["oracle"]))
    return tune.run(call.inputs["preprocess"], call.config, call.out, trial_tags=tracking.process_tags("trial"),
                      hparams_file=call.options.get("hparams"),
                      verbose=call.options.get("verbose", 1), distributed=distributed).to_dict()


def _train(call: StageCall) -> dict[str, Any]:
    from components import train

    return train.run(call.inputs["preprocess"], call.inputs["tune"], call.config, call.out,
                      verbose=call.options.get("verbose", 1)).to_dict()


def _evaluate(call: StageCall) -> dict[str, Any]:
    from components import evaluate

    return evaluate.run(call.inputs["train"], call.inputs["ingest"], call.config, call.out,
                      champion=call.options.get("champion")).to_dict()


def _push(call: StageCall) -> dict[str, Any]:
    from components import push
    from pipeline import tracking

    serving_dir = call.config.push.serving_dir
    root = Path(serving_dir).expanduser() if serving_dir else tracking.store_dir() / "serving"
    return push.run(call.inputs["train"], call.inputs["evaluate"], call.config, call.out, serving_root=root).to_dict()


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("ingest", "components.ingest", EXAMPLES, ("data",), (), _ingest),
    Stage("validate", "components.validate", STATISTICS, ("data",), ("ingest",), _validate),
    Stage("preprocess", "components.preprocess", PREPROCESS, ("data",), ("ingest", "validate"), _preprocess),
    Stage("tune", "components.tune", HYPERPARAMETERS, ("pipeline", "model", "train", "tune"), ("preprocess",), _tune),
    Stage("train", "components.train", MODEL, ("pipeline", "model", "train"), ("preprocess", "tune"), _train),
    Stage("evaluate", "components.evaluate", EVALUATION, ("evaluate",), ("train", "ingest"), _evaluate),
    Stage("push", "components.push", PUSHED, ("pipeline", "push"), ("train", "evaluate"), _push),
)


def warm_up(config: Config, computed: set[str], options: dict[str, Any]) -> None:
    """Start now what a stage to be computed will need and can prepare while the stages before it run.

    A search with several local workers gets its worker processes here, before the dataset check: each
    spends seconds importing TensorFlow, which then overlaps this process's own import, the dataset check
    and the stages before tune instead of the search (the worker joined the default search 1 s into
    the tune stage instead of about 4 s). `release_warm_up` stops what no stage took.
    """
    if "tune" not in computed or not config.tune.enabled or options.get("hparams") \
            or options.get("role", "standalone") != "standalone":
        return
    from components import trial_processes

    extra = trial_processes.worker_count(config.tune.workers) - 1
    if extra > 0:
        trial_processes.prestart(extra, options.get("verbose", 1))


def release_warm_up() -> None:
    """Stop what `warm_up` started and no stage took (the run failed or ended before it)."""
    from components import trial_processes

    trial_processes.release_prestarted()
