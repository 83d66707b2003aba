"""What each task of a compiled Kubeflow pipeline runs (`pipeline compile --target kfp`).

`pipeline run` holds one parent MLflow run open while it runs the seven stages in turn. On
Kubeflow each stage is its own task, in its own process and pod, so the same records are made
in three steps: a first task (`start`) checks the config and the dataset, plans every stage's
fingerprint once (as `pipeline run` does before its first stage) and opens the parent run; each
stage task looks its own fingerprint up in MLflow and runs or reuses its stage through
the runner's `execute_stage`, nested under that parent (same tags, cache, locks and records as
in-process); an exit task (`finish`), which Kubeflow runs whether the stages succeeded or not,
ends the parent as `run_pipeline` does: summary metrics, status, error, the pipeline picture.

Tasks hand each other only small values (the run settings, each stage's fingerprint); the
artifacts themselves are found by fingerprint in the store, which every task must reach.
Nothing here imports kfp: these functions run in the project's image with what KFP hands them.
"""

from __future__ import annotations

import functools
import os
import socket
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

from pipeline import artifact_store, artifacts, console, tracking
from pipeline.config import Config, ConfigError, check_stage, flatten, load_config
from pipeline.names import (
    STAGES,
    TAG_CACHED,
    TAG_ERROR,
    TAG_KFP_JOB,
    TAG_KIND,
    TAG_ORCHESTRATOR,
    TAG_PID,
    TAG_STAGE,
    TAG_TUNE_CHIEF,
)
from pipeline.runner import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    Options,
    Outcome,
    Planned,
    _end_all_runs,
    _log_graph,
    _log_summary,
    execute_stage,
    plan,
    preflight,
)
from pipeline.stages import STAGE_TABLE

POLL_S = 2.0  # how often a tuning worker looks for its chief's search
_STAGES = {stage.name: stage for stage in STAGE_TABLE}


@dataclass(frozen=True)
class _Context:
    config: Config
    client: Any  # mlflow.MlflowClient
    experiment_id: str


def _open(settings: dict[str, Any]) -> _Context:
    """Point this process at the run's store and config, as the CLI would from its environment."""
    import mlflow

    from pipeline.cli import _quiet_libraries

    _quiet_libraries(verbose=False)
    console.set_verbosity(1)
    if settings.get("tracking_uri"):
        os.environ["MLFLOW_TRACKING_URI"] = settings["tracking_uri"]
    if settings.get("store_dir"):
        os.environ[tracking.STORE_ENV] = settings["store_dir"]
    config = _load(settings["config_toml"], settings["overrides"])
    experiment_id = tracking.setup(config.pipeline.name)
    return _Context(config, mlflow.MlflowClient(), experiment_id)


def _load(text: str, overrides: list[str]) -> Config:
    """The compiled config (the TOML file's text and the --set list), read exactly as `pipeline run` reads it."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "config.toml"
        path.write_text(text)
        return load_config(path, list(overrides))


def _task(function: Callable[..., Any]) -> Callable[..., Any]:
    """A task ends as the CLI does: a config error is one line and exit 2, an interrupt exit 130."""
    @functools.wraps(function)
    def task(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except ConfigError as exc:
            console.error(str(exc))
            raise SystemExit(EXIT_USAGE) from None
        except KeyboardInterrupt:
            console.error("interrupted")
            raise SystemExit(EXIT_INTERRUPTED) from None
    return task


@_task
def start(settings: dict[str, Any], *, no_cache: bool, from_stage: str, job: str) -> dict[str, Any]:
    """Check the config and the dataset, then open the parent run; returns the settings every stage task takes."""
    if urlsplit(settings.get("tracking_uri", "")).password is not None:
        # A pipeline parameter is shown in the Kubeflow UI and stored with the run.
        raise ConfigError("tracking_uri holds a password: pass the bare URI and the credentials as "
                          "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD in the tasks' environment")
    context = _open(settings)
    if from_stage:
        check_stage(from_stage)
    for run_id in tracking.fail_orphaned_runs(context.experiment_id):
        console.warn(f"run {run_id} was left RUNNING by a process that died; marked FAILED")
    # Fingerprints only: each stage task looks its own up in MLflow when it runs. Ingest's is looked up here
    # too, since a cached ingest needs no dataset check (as in `pipeline run`).
    steps = plan(context.config, Options(no_cache=True), context.client, context.experiment_id)
    _look_up(context, steps[0], no_cache, from_stage)
    try:
        preflight(context.config, steps)
    except ConfigError:
        raise
    except Exception as exc:  # e.g. TFDS failing to prepare a dataset: nothing has been recorded yet
        console.error(f"the dataset could not be prepared: {type(exc).__name__}: {exc}")
        raise SystemExit(EXIT_FAILED) from None
    name = context.config.pipeline.name
    # No process outlives this task holding the parent run, so it carries no pid for orphan detection to test.
    tags = {key: value for key, value in tracking.process_tags("pipeline").items() if key != TAG_PID}
    parent = context.client.create_run(context.experiment_id, run_name=f"{name}-{time.strftime('%Y%m%d-%H%M%S')}",
                                       tags={**tags, TAG_ORCHESTRATOR: "kfp", TAG_KFP_JOB: job})
    _log_params(context.client, parent.info.run_id, flatten(context.config))
    console.info(f"MLflow run {parent.info.run_id} in experiment '{name}' "
                 f"({tracking.redact_uri(tracking.tracking_uri())})")
    planned = {step.stage.name: {"fingerprint": step.fingerprint, "extra": step.extra} for step in steps}
    return {**settings, "parent_run_id": parent.info.run_id, "no_cache": no_cache, "from_stage": from_stage,
            "plan": planned}


def _log_params(client, run_id: str, params: dict[str, Any]) -> None:
    """The whole resolved config on the parent, as `pipeline run` logs it (MLflow takes 100 params a batch)."""
    from mlflow.entities import Param

    items = [Param(key, str(value)) for key, value in params.items()]
    for begin in range(0, len(items), 100):
        client.log_batch(run_id, params=items[begin:begin + 100])


def _look_up(context: _Context, step: Planned, no_cache: bool, from_stage: str) -> None:
    """Mark the step cached when MLflow has a verified artifact for its fingerprint, unless
    --no-cache or --from say to recompute it (the rule `plan` applies in-process)."""
    if no_cache or (from_stage and STAGES.index(step.stage.name) >= STAGES.index(from_stage)):
        return
    hit = step.store.find(step.stage.name, step.fingerprint)
    if hit is not None:
        step.cached, step.cached_run_id = hit


def _upstream(store: artifact_store.ArtifactStore, name: str, fingerprint: str) -> artifacts.Artifact:
    found = store.get(name, fingerprint)
    if found is None:  # before this stage's run exists: nothing to end
        console.error(f"the {name} artifact {fingerprint} that an upstream task made is not in this task's store "
                      f"({store.final(name, fingerprint)}): with tracking.artifact_store = \"local\" every task needs "
                      "the same store_dir volume; with \"mlflow\" every task reaches it through the tracking server")
        raise SystemExit(EXIT_FAILED)
    return found


@_task
def stage(run: dict[str, Any], name: str, upstream: dict[str, str], *, role: str = "standalone",
          oracle: str = "") -> str:
    """Run one stage (or record it as cached) under the parent run; returns its fingerprint."""
    context = _open(run)
    options = Options(no_cache=run["no_cache"], from_stage=run["from_stage"] or None, until_stage=name,
                      role=role, tuner_id="chief" if role == "chief" else "", oracle=oracle)
    planned = run["plan"][name]
    store = artifact_store.open_store(context.config, context.client, context.experiment_id)
    step = Planned(_STAGES[name], planned["fingerprint"], store.final(name, planned["fingerprint"]), store,
                   extra=planned["extra"])
    _look_up(context, step, run["no_cache"], run["from_stage"])
    # The upstream tasks of this run made or found these artifacts; their fingerprints came along.
    done = {input_name: _upstream(store, input_name, upstream[input_name]) for input_name in step.stage.inputs}
    try:
        execute_stage(step, STAGES.index(name) + 1, len(STAGES), context.config, options, context.client, done,
                      run["parent_run_id"])
    except KeyboardInterrupt:
        _end_all_runs("KILLED", "interrupted (the task was stopped)")
        raise
    except Exception as exc:  # the stage run ends FAILED with its error; `finish` ends the parent the same way
        _end_all_runs("FAILED", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        if isinstance(exc, ConfigError):
            raise
        console.error(f"{type(exc).__name__}: {exc}")
        raise SystemExit(EXIT_FAILED) from None
    return step.fingerprint


def tune_chief(run: dict[str, Any], preprocess: str, oracle_port: int) -> str:
    """The tune stage as KerasTuner's chief: its oracle listens on this pod's address (or KerasTuner's
    KERASTUNER_ORACLE_IP), which the tune run records for the workers."""
    host = os.environ.get("KERASTUNER_ORACLE_IP") or socket.gethostbyname(socket.gethostname())
    return stage(run, "tune", {"preprocess": preprocess}, role="chief", oracle=f"{host}:{oracle_port}")


@_task
def tune_worker(run: dict[str, Any], tuner_id: str) -> None:
    """A tuning worker: finds the chief's search under this parent run, runs trials from its oracle, ends with it."""
    from pipeline.workers import run_worker

    context = _open(run)
    wait_s = Options().wait_s
    deadline = time.monotonic() + wait_s
    while (tune := _tune_run(context, run["parent_run_id"])) is None or (
            tune.info.status == "RUNNING" and TAG_TUNE_CHIEF not in tune.data.tags):
        if time.monotonic() > deadline:
            console.error(f"worker {tuner_id}: no tune run started under {run['parent_run_id']} within {wait_s:.0f}s")
            raise SystemExit(EXIT_FAILED)
        time.sleep(POLL_S)
    if tune.info.status != "RUNNING":
        console.info(f"worker {tuner_id}: the tune stage ended ({tune.info.status}, cached: "
                     f"{tune.data.tags.get(TAG_CACHED, 'false')}) before this worker joined; nothing to do")
        return
    try:
        code = run_worker(context.config, Options(role="worker", tuner_id=tuner_id, oracle=tune.data.tags[TAG_TUNE_CHIEF]))
    except Exception as exc:
        console.warn(f"worker {tuner_id}: {type(exc).__name__}: {exc}")
        code = EXIT_FAILED
    if code != EXIT_OK and _tune_run(context, run["parent_run_id"]).info.status == "FINISHED":
        console.info(f"worker {tuner_id}: the chief's search completed without it")  # it joined as the search ended
        return
    if code != EXIT_OK:
        raise SystemExit(code)


def _stage_runs(context: _Context, parent_run_id: str) -> list:
    children = context.client.search_runs(
        [context.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=1000)
    return [child for child in children if child.data.tags.get(TAG_KIND) == "stage"]


def _tune_run(context: _Context, parent_run_id: str):
    return next((r for r in _stage_runs(context, parent_run_id) if r.data.tags.get(TAG_STAGE) == "tune"), None)


@_task
def finish(settings: dict[str, Any], *, job: str, state: str, error: str) -> None:
    """End the parent run as `run_pipeline` does, from what the stage tasks recorded; `state` is Kubeflow's."""
    import mlflow

    from pipeline.show import _properties

    # Reading the stages' properties must not draw MLflow's download progress bars into the task's log.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    context = _open(settings)
    found = context.client.search_runs([context.experiment_id], filter_string=f"tags.`{TAG_KFP_JOB}` = '{job}'",
                                       max_results=1)
    if not found:
        console.warn(f"no pipeline run was recorded for Kubeflow run {job} ({state}): see the start task's log")
        return
    parent = found[0]
    if parent.info.status != "RUNNING":
        return
    parent_id, name = parent.info.run_id, context.config.pipeline.name
    stopped = "KILLED" if state.upper().startswith("CANCEL") else "FAILED"
    runs = {}
    for child in _stage_runs(context, parent_id):
        if child.info.status == "RUNNING":  # its pod was evicted, killed or cancelled mid-stage
            context.client.set_tag(child.info.run_id, TAG_ERROR,
                                   f"its Kubeflow task ended ({state}) before the stage did")
            context.client.set_terminated(child.info.run_id, status=stopped)
            child = context.client.get_run(child.info.run_id)
        runs[child.data.tags[TAG_STAGE]] = child
    outcomes = [Outcome(stage_name, run.data.tags.get(TAG_CACHED) == "true",
                        ((run.info.end_time or run.info.start_time) - run.info.start_time) / 1000, run.info.run_id,
                        _properties(context.client, run.info.run_id))
                for stage_name, run in sorted(runs.items(), key=lambda item: STAGES.index(item[0]))
                if run.info.status == "FINISHED"]
    mlflow.start_run(run_id=parent_id)
    if len(outcomes) == len(STAGES):
        _log_summary(outcomes)
        mlflow.end_run("FINISHED")
        _log_graph(context.client, parent_id, name)
        console.summary(context.config, outcomes, parent_id, context.experiment_id)
        return
    failed = [run for run in runs.values() if run.info.status != "FINISHED"]
    message = (failed[0].data.tags.get(TAG_ERROR) if failed else None) or error or f"the Kubeflow run ended {state}"
    status = failed[0].info.status if failed else stopped
    _end_all_runs(status, message)
    _log_graph(context.client, parent_id, name)
    console.error(f"pipeline run {parent_id} ended {status}: {message}")
