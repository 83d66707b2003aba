"""The runner: stage order, fingerprints, caching, atomic artifacts and MLflow run lifecycle.

It plans every stage before creating any MLflow run (so a bad dataset name ends
with exit 2 and nothing written), then runs one parent run with one nested run
per stage. A stage whose fingerprint matches a FINISHED run with a verified
artifact is reused and recorded as cached, without importing TensorFlow.
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import artifact_store, artifacts, console, system_metrics, tracking
from pipeline.config import Config, ConfigError, flatten
from pipeline.fingerprint import fingerprint
from pipeline.locks import exclusive
from pipeline.quiet import import_tensorflow_quietly
from pipeline.names import (
    ALIAS_CHAMPION,
    ARTIFACT_PROPERTIES,
    ERROR_TEXT,
    STAGES,
    TAG_BLESSED,
    TAG_CACHED,
    TAG_CACHED_FROM,
    TAG_ERROR,
    TAG_FINGERPRINT,
    TAG_STAGE,
    TAG_TRAIN_FINGERPRINT,
)
from pipeline.stages import STAGE_TABLE, Stage, StageCall, release_warm_up, warm_up

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class Options:
    no_cache: bool = False
    from_stage: str | None = None  # rerun this stage and all after it
    until_stage: str = "push"  # stop after this stage (`pipeline tune` stops after tune)
    hparams: str | None = None  # JSON file of fixed hyperparameters: skips the search
    verbose: int = 1  # 0 quiet, 1 normal, 2 verbose
    role: str = "standalone"  # tuning: standalone, or KerasTuner's distributed chief / worker
    tuner_id: str = ""  # distributed tuning: this process's KerasTuner id
    oracle: str = ""  # distributed tuning: HOST:PORT of the chief's oracle
    wait_s: float = 900.0  # a worker waits this long for the chief's preprocess artifact and tune run


@dataclass
class Planned:
    stage: Stage
    fingerprint: str
    final: Path
    store: artifact_store.ArtifactStore  # where `final` is sealed, found or fetched
    cached: artifacts.Artifact | None = None
    cached_run_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    stage: str
    cached: bool
    seconds: float
    run_id: str
    properties: dict[str, Any]


def _section_values(config: Config, names: tuple[str, ...]) -> dict[str, Any]:
    data = config.to_dict()
    return {name: data[name] for name in names}


def _champion_key(client, config: Config, train_fingerprint: str) -> str:
    """What evaluate compares against: "none" when there is no other champion than this very model."""
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(config.pipeline.name, ALIAS_CHAMPION)
    except MlflowException as exc:
        # Only "no such model or alias" means there is no champion. Anything else (a server that
        # cannot be reached, refused credentials) must not let a candidate replace an unseen champion.
        if exc.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "PERMISSION_DENIED"):
            raise
        if exc.error_code == "PERMISSION_DENIED" and not _model_missing(client, config.pipeline.name):
            raise
        return "none"
    if version.tags.get(TAG_TRAIN_FINGERPRINT) == train_fingerprint:
        return "none"
    return f"version-{version.version}"


def _model_missing(client, name: str) -> bool:
    """Whether no registered model has this name (a server with basic auth answers 403, not 404, for one)."""
    return not client.search_registered_models(filter_string=f"name = '{name}'")


def plan(config: Config, options: Options, client, experiment_id: str) -> list[Planned]:
    stages = [s for s in STAGE_TABLE if STAGES.index(s.name) <= STAGES.index(options.until_stage)]
    forced_from = STAGES.index(options.from_stage) if options.from_stage else len(STAGES)
    planned: dict[str, Planned] = {}
    hparams_text = Path(options.hparams).read_text() if options.hparams else None
    store = artifact_store.open_store(config, client, experiment_id)
    for stage in stages:
        inputs = {name: planned[name].fingerprint for name in stage.inputs}
        extra: dict[str, Any] = {}
        if stage.name == "tune" and hparams_text is not None:
            extra["hparams_content"] = hparams_text
        if stage.name == "evaluate":
            extra["champion"] = _champion_key(client, config, planned["train"].fingerprint)
        fp = fingerprint(stage.name, stage.module, _section_values(config, stage.sections), inputs, extra)
        item = Planned(stage, fp, store.final(stage.name, fp), store, extra=extra)
        if not options.no_cache and STAGES.index(stage.name) < forced_from:
            hit = store.find(stage.name, fp)
            if hit is not None:
                item.cached, item.cached_run_id = hit
        planned[stage.name] = item
    return list(planned.values())


def preflight(config: Config, steps: list[Planned], verbose: int = 1) -> None:
    """Check the dataset before any run exists; raises ConfigError (exit 2)."""
    if steps[0].cached is not None:
        return
    import_tensorflow_quietly(verbose)
    from components import ingest

    source = ingest.resolve_builder(config.data)
    ingest.ensure_prepared(source, config.data, config.beam)
    ingest.check_selection(source, config.data)


def _stage_lock(final: Path):
    """One process at a time computes a given fingerprint; the others then find it cached."""
    return exclusive(final.with_name(final.name + ".lock"))


def _run_stage(step: Planned, config: Config, options: Options, inputs: dict[str, artifacts.Artifact],
               run_id: str) -> artifacts.Artifact:
    import_tensorflow_quietly(options.verbose)
    work = artifacts.partial_dir(step.final)
    work.mkdir(parents=True, exist_ok=True)
    call = StageCall(config=config, inputs=inputs, out=work, run_id=run_id, fingerprint=step.fingerprint,
                     options={"hparams": options.hparams, "verbose": options.verbose, "role": options.role,
                              "tuner_id": options.tuner_id, "oracle": options.oracle, **step.extra})
    properties = step.stage.call(call) or {}
    artifact = artifacts.Artifact(
        type=step.stage.artifact_type, uri=str(step.final), fingerprint=step.fingerprint,
        producer_run_id=run_id, inputs={name: inputs[name].fingerprint for name in step.stage.inputs},
        properties=properties,
    )
    return step.store.seal(work, step.final, artifact)


def _execute(config: Config, options: Options, steps: list[Planned], client, parent_id: str) -> list[Outcome]:
    done: dict[str, artifacts.Artifact] = {}
    return [execute_stage(step, index, len(steps), config, options, client, done, parent_id)
            for index, step in enumerate(steps, start=1)]


def execute_stage(step: Planned, index: int, total: int, config: Config, options: Options, client,
                  done: dict[str, artifacts.Artifact], parent_id: str) -> Outcome:
    """One stage as a run nested under `parent_id`: computed, or recorded as cached. `done` holds the
    upstream artifacts and receives this one. The in-process run calls it per stage; so does each KFP task."""
    import mlflow

    name = step.stage.name
    console.stage_start(index, total, name)
    started = time.perf_counter()
    tags = {TAG_STAGE: name, TAG_FINGERPRINT: step.fingerprint, **step.store.run_tags(step.final),
            **tracking.process_tags("stage")}
    # Not a `with` block: MLflow's context manager would end the run FAILED on Ctrl-C; run_pipeline
    # ends every active run with the right status (FAILED or KILLED) when a stage raises.
    # System metrics come from system_metrics.sampled below, not from MLflow's switch for every run.
    run = mlflow.start_run(run_name=name, nested=True, parent_run_id=parent_id, tags=tags, log_system_metrics=False)
    tracking.log_params(flatten_sections(config, step.stage.sections))
    if step.cached is None:
        with _stage_lock(step.final):
            sealed = None if options.no_cache or options.from_stage else step.store.sealed(step.final)
            if sealed is not None:  # another process finished it while we waited for the lock
                step.cached, step.cached_run_id = sealed, sealed.producer_run_id
            else:
                with system_metrics.sampled(config, name, run.info.run_id, options.verbose):
                    done[name] = _run_stage(step, config, options, done, run.info.run_id)
    if step.cached is not None:
        done[name] = step.cached
        mlflow.set_tags({TAG_CACHED: "true", TAG_CACHED_FROM: step.cached_run_id or "",
                         **step.store.run_tags(step.final, step.cached)})
        _copy_metrics(client, step.cached_run_id, run.info.run_id)
    else:
        mlflow.set_tag(TAG_CACHED, "false")
    mlflow.log_dict(json.loads(json.dumps(done[name].properties, default=str)), ARTIFACT_PROPERTIES)
    mlflow.end_run("FINISHED")
    seconds = time.perf_counter() - started
    console.stage_end(index, total, name, step.cached is not None, seconds, done[name].properties)
    return Outcome(name, step.cached is not None, seconds, run.info.run_id, done[name].properties)


def flatten_sections(config: Config, sections: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in flatten(config).items() if k.split(".", 1)[0] in sections}


def _copy_metrics(client, source_run_id: str | None, target_run_id: str) -> None:
    """A cached stage shows the metrics of the run that computed it, so the UI table stays comparable.
    Not its system metrics: those describe the machine while that run computed, not this run."""
    if not source_run_id:
        return
    from mlflow.exceptions import MlflowException

    try:
        source = client.get_run(source_run_id)
    except MlflowException:
        # The artifact was sealed by a run of another tracking store sharing this store directory:
        # the artifact is still valid (fingerprinted), its producer's metrics are just not here.
        console.warn(f"the run {source_run_id} that produced this cached artifact is not in this tracking store; "
                     "its metrics are not copied")
        return
    metrics = {k: v for k, v in source.data.metrics.items() if not k.startswith(system_metrics.PREFIX)}
    if metrics:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        client.log_batch(target_run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()])


def run_pipeline(config: Config, options: Options) -> int:
    """Run the stages; returns the process exit code."""
    import mlflow

    from pipeline import workers

    cluster = workers.training_cluster(config, options)  # a bad TF_CONFIG ends here, with exit 2 and nothing recorded
    if cluster is not None and not cluster.is_chief:
        return workers.run_train_worker(config, options, cluster)
    experiment_id = tracking.setup(config.pipeline.name)
    client = mlflow.MlflowClient()
    for run_id in tracking.fail_orphaned_runs(experiment_id):
        console.warn(f"run {run_id} was left RUNNING by a process that died; marked FAILED")
    steps = plan(config, options, client, experiment_id)
    if cluster is not None and any(step.stage.name == "train" and step.cached is None for step in steps):
        # Before any other TensorFlow work (preflight's included): collective ops are configured only then.
        console.info(f"multi_worker: {cluster.name} is the chief of {cluster.tasks} tasks; waiting for all to join")
        import_tensorflow_quietly(options.verbose)
        from components import distribute

        distribute.join(cluster)
    # Before preflight: what warms up (tuning workers importing TensorFlow) then overlaps this process's own
    # TensorFlow import and dataset checks as well as the stages before tune.
    warm_up(config, {step.stage.name for step in steps if step.cached is None},
            {"hparams": options.hparams, "verbose": options.verbose, "role": options.role})
    try:
        return _run_planned(config, options, steps, client, experiment_id)
    finally:
        release_warm_up()


def _run_planned(config: Config, options: Options, steps: list[Planned], client, experiment_id: str) -> int:
    """Preflight, then the pipeline run and its stages' runs; returns the process exit code."""
    import mlflow

    try:
        preflight(config, steps, options.verbose)
    except ConfigError:
        raise
    except Exception as exc:  # e.g. TFDS failing to prepare a dataset: nothing has been recorded yet
        console.error(f"the dataset could not be prepared: {type(exc).__name__}: {exc}")
        return EXIT_FAILED

    parent = mlflow.start_run(run_name=f"{config.pipeline.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                              tags=tracking.process_tags("pipeline"))
    console.info(f"MLflow run {parent.info.run_id} in experiment '{config.pipeline.name}' "
                 f"({tracking.redact_uri(tracking.tracking_uri())})")
    try:
        tracking.log_params(flatten(config))
        outcomes = _execute(config, options, steps, client, parent.info.run_id)
        _log_summary(outcomes)
        mlflow.end_run("FINISHED")
    except KeyboardInterrupt:
        _end_all_runs("KILLED", "interrupted by the user (Ctrl-C)")
        console.error("interrupted: the stage runs and the pipeline run are marked KILLED")
        return EXIT_INTERRUPTED
    except ConfigError as exc:
        _end_all_runs("FAILED", str(exc))
        _log_graph(client, parent.info.run_id, config.pipeline.name)
        console.error(str(exc))
        return EXIT_USAGE
    except Exception as exc:  # a failing stage: one paragraph for the user, the traceback in MLflow
        _end_all_runs("FAILED", f"{type(exc).__name__}: {exc}", traceback.format_exc())
        _log_graph(client, parent.info.run_id, config.pipeline.name)
        console.error(f"{type(exc).__name__}: {exc}")
        return EXIT_FAILED
    _log_graph(client, parent.info.run_id, config.pipeline.name)
    console.summary(config, outcomes, parent.info.run_id, experiment_id)
    return EXIT_OK


def _log_graph(client, run_id: str, name: str) -> None:
    """The pipeline picture on the parent run, drawn from what MLflow recorded once every run has ended
    (so it shows their final states). It is a view of the run: failing to draw it only warns."""
    from pipeline import graph, show

    try:
        graph.log(client, show.collect(run_id, name))
    except Exception as exc:
        console.warn(f"the pipeline picture was not logged on run {run_id}: {type(exc).__name__}: {exc}")


def _end_all_runs(status: str, message: str, details: str | None = None) -> None:
    import mlflow

    while mlflow.active_run() is not None:
        try:
            mlflow.set_tag(TAG_ERROR, message[:5000])
            if details:
                mlflow.log_text(details, ERROR_TEXT)
        finally:
            mlflow.end_run(status)


def _log_summary(outcomes: list[Outcome]) -> None:
    import mlflow

    seconds = {f"seconds.{o.stage}": o.seconds for o in outcomes}
    mlflow.log_metrics({**seconds, "stages_cached": sum(o.cached for o in outcomes)})
    for outcome in outcomes:
        metrics = outcome.properties.get("metrics", {})
        if outcome.stage == "evaluate":
            mlflow.log_metrics({f"test_{k}": v for k, v in metrics.items() if isinstance(v, (int, float))})
            mlflow.set_tag(TAG_BLESSED, str(outcome.properties.get("blessed")).lower())
