"""Tune: a KerasTuner search over the [tune.space], every trial an MLflow run.

The tuner's state lives in the stage's work directory, so a search killed
midway continues where it stopped when the same command runs again. With
`[tune] enabled = false` or `--hparams FILE`, no search runs: the artifact holds
the fixed values, and train reads them the same way.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from components import examples as ex
from components import hyperparameters, trial_processes
from components.data import evaluation_stream, training_stream, watched
from components.properties import HyperParametersProperties, TransformProperties
from pipeline.artifacts import Artifact, write_json
from pipeline.config import Config
from pipeline.names import BEST_HPARAMS, TAG_TUNE_CHIEF, TAG_TUNE_SOURCE, TRIALS_TABLE, TUNING_PNG

log = logging.getLogger(__name__)
def _tuner_class(algorithm: str):
    import keras_tuner

    return {
        "random": keras_tuner.RandomSearch,
        "bayesian": keras_tuner.BayesianOptimization,
        "hyperband": keras_tuner.Hyperband,
        "grid": keras_tuner.GridSearch,
    }[algorithm]


def _write_tuner_state_atomically() -> None:
    """Make KerasTuner write its resume state (oracle.json, trial.json) to a temporary file renamed over the old.

    KerasTuner writes those files in place, so a search killed during a write (kill -9, a lost machine)
    left an empty oracle.json that made the resumed search fail. Every one of its state writes goes
    through `keras_tuner.src.utils.save_json`, which is replaced here for this process (once).
    """
    from keras_tuner.src import utils as tuner_utils

    if getattr(tuner_utils.save_json, "atomic", False):
        return

    def save_json(path, obj):
        text = json.dumps(obj)
        temporary = f"{path}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            handle.write(text)
        os.replace(temporary, path)
        return text

    save_json.atomic = True
    tuner_utils.save_json = save_json


def _make_tuner(config: Config, hypermodel, directory: Path, *, objective: str, trial_parent: str | None,
                trial_tags: dict[str, str], verbose: int, training_data=None, should_stop=None):
    """The configured KerasTuner tuner, with every trial recorded as a nested MLflow run."""
    import keras_tuner

    from components.trial_tracking import tracked

    _write_tuner_state_atomically()

    tune = config.tune
    direction = "max" if objective == "val_accuracy" else "min"
    common = dict(
        hypermodel=hypermodel,
        objective=keras_tuner.Objective(objective, direction),
        executions_per_trial=tune.executions_per_trial,
        seed=config.pipeline.seed,
        directory=str(directory),
        project_name="search",
        overwrite=False,  # reload the oracle's state: a killed search resumes
        max_consecutive_failed_trials=max(3, tune.max_trials),
    )
    tracked_class = tracked(_tuner_class(tune.algorithm), trial_parent=trial_parent, tags=trial_tags, verbose=verbose,
                            seed=config.pipeline.seed, training_data=training_data, should_stop=should_stop)
    try:
        if tune.algorithm == "hyperband":
            return tracked_class(max_epochs=tune.max_epochs, factor=3, hyperband_iterations=1, **common)
        return tracked_class(max_trials=tune.max_trials, **common)
    except json.JSONDecodeError as exc:  # state written in place by an older version and cut short
        raise RuntimeError(f"the saved state of the interrupted search in {directory / 'search'} is damaged "
                           f"({exc}); delete that directory to start the search afresh") from None


def _trials_table(tuner, objective: str) -> list[dict[str, Any]]:
    rows = []
    for trial in tuner.oracle.trials.values():
        score = trial.score
        row = {"trial_id": trial.trial_id, "status": str(trial.status),
               objective: None if score is None or (isinstance(score, float) and math.isnan(score)) else float(score)}
        row.update(hyperparameters.clean(trial.hyperparameters.values))
        rows.append(row)
    return sorted(rows, key=lambda r: r["trial_id"])


def _write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    import csv

    columns: list[str] = []
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@dataclass(frozen=True)
class Distributed:
    """KerasTuner's own distributed mode: one chief runs the oracle, workers run the trials."""

    role: str  # "chief" or "worker"
    tuner_id: str  # "chief" for the chief; a unique id such as "tuner0" per worker
    oracle_ip: str  # where the chief's oracle listens (gRPC)
    oracle_port: int

    def export(self) -> None:
        """KerasTuner reads its distribution settings from the environment when a tuner is built."""
        os.environ["KERASTUNER_TUNER_ID"] = self.tuner_id
        os.environ["KERASTUNER_ORACLE_IP"] = self.oracle_ip
        os.environ["KERASTUNER_ORACLE_PORT"] = str(self.oracle_port)


def _search(transform: Artifact, config: Config, directory: Path, *, verbose: int, trial_tags: dict[str, str],
            trial_parent: str | None = None, chief: Distributed | None = None, processes: tuple = (),
            local_worker: str = ""):
    """Build the hypermodel and the tracked tuner over `directory`, and run the search.

    As `chief`, serve the oracle to workers until the search is over; `processes`, when given, are
    local worker processes watched meanwhile, and with `local_worker` this process runs trials too,
    as a worker of that id, while it serves."""
    import keras

    import models

    keras.utils.set_random_seed(config.pipeline.seed)
    props = TransformProperties.of(transform)
    # Every trial reads the same streamed shards as train does, in the same seeded order.
    def training_data():
        return training_stream(transform, batch_size=config.train.batch_size, seed=config.pipeline.seed,
                               shuffle_buffer=config.train.shuffle_buffer)

    batches, steps = training_data()
    validation, validation_steps = evaluation_stream(transform, "validation", batch_size=config.train.batch_size)
    base_model, base_train = hyperparameters.base_values(config, steps_per_epoch=steps, epochs=config.tune.max_epochs)
    hypermodel = models.build_hypermodel(
        dict(config.tune.space), base_model=base_model, base_train=base_train,
        input_shape=tuple(props.input_shape), input_kind=props.input_kind,
        num_classes=props.num_classes, vocab_size=props.vocab_size, seed=config.pipeline.seed,
    )
    # Hyperband resumes a trial from its parent's weights with a fresh optimizer; Keras warns about
    # the optimizer slots it does not restore, once per trial. Expected, so not shown.
    warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
    objective = watched(config.tune.objective, props.task)
    failure = trial_processes.failure_of(processes)

    def tuner_here():
        return _make_tuner(config, hypermodel, directory, objective=objective, trial_parent=trial_parent,
                           trial_tags=trial_tags, verbose=verbose, training_data=lambda: training_data()[0],
                           should_stop=failure)

    tuner = tuner_here()
    if chief is not None:
        tuner.oracle.verbose = 1 if verbose >= 2 else 0
        with trial_processes.serving(tuner, chief.oracle_ip, chief.oracle_port, failure):
            if local_worker:
                # A second tuner in this process, built as a worker: it asks the oracle served above.
                os.environ["KERASTUNER_TUNER_ID"] = local_worker
                _fit_trials(tuner_here(), config, objective, batches, steps, validation, validation_steps,
                            directory, verbose)
        return tuner
    _fit_trials(tuner, config, objective, batches, steps, validation, validation_steps, directory, verbose)
    return tuner


def _fit_trials(tuner, config: Config, objective: str, batches, steps: int, validation, validation_steps: int,
                directory: Path, verbose: int) -> None:
    """The trial loop of this process: ask for trials until the oracle has none left."""
    import keras

    callbacks = [keras.callbacks.TensorBoard(log_dir=str(directory / "tensorboard"), write_graph=False,
                                             profile_batch=0)]
    if config.tune.early_stopping_patience:
        callbacks.append(keras.callbacks.EarlyStopping(monitor=objective, patience=config.tune.early_stopping_patience,
                                                       mode="max" if objective == "val_accuracy" else "min"))
    with _collector_skips_the_setup():
        tuner.search(batches, steps_per_epoch=steps, validation_data=validation, validation_steps=validation_steps,
                     epochs=config.tune.max_epochs, shuffle=False,  # the stream is shuffled
                     callbacks=callbacks, verbose=1 if verbose >= 2 else 0)


def _parallel_search(transform: Artifact, config: Config, directory: Path, *, workers: int, verbose: int,
                     trial_tags: dict[str, str]):
    """`workers` trials at once on this machine: this process serves the oracle (KerasTuner's distributed
    mode, on a free loopback port) and runs trials as worker0, and `workers - 1` processes of
    `python -m components.tune` run trials too, each a nested MLflow run under the tune stage's run, as
    in a search in one process."""
    import mlflow

    chief = Distributed("chief", "chief", "127.0.0.1", trial_processes.free_loopback_port())
    job = {"transform": transform.uri, "config": config.to_dict(), "directory": str(directory),
           "parent": mlflow.active_run().info.run_id, "tracking_uri": mlflow.get_tracking_uri(),
           "oracle": [chief.oracle_ip, chief.oracle_port], "trial_tags": trial_tags, "verbose": verbose,
           "threads": max(1, trial_processes.usable_cores() // workers)}
    processes: list = []
    with trial_processes.kerastuner_variables():
        try:
            chief.export()
            # worker0 is this process
            processes += trial_processes.start_workers([{**job, "tuner_id": f"worker{index}"}
                                                        for index in range(1, workers)])
            log.info(f"tune: {workers} trials at a time, in this process and {workers - 1} worker process(es)")
            return _search(transform, config, directory, verbose=verbose, trial_tags=trial_tags, chief=chief,
                           processes=tuple(processes), local_worker="worker0")
        finally:
            trial_processes.stop(processes)


def _worker_main() -> int:
    """A local tuning worker (`python -m components.tune`, started by `_parallel_search`, or ahead of it by
    `trial_processes.prestart`: then it imports what trials need first and reads its job from stdin)."""
    raw = os.environ.pop(trial_processes.WORKER_JOB)
    prestarted = raw == trial_processes.JOB_ON_STDIN
    verbose = int(os.environ.pop(trial_processes.WORKER_VERBOSE, "1")) if prestarted else json.loads(raw)["verbose"]

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    logging.basicConfig(level=logging.INFO if verbose >= 1 else logging.WARNING, format="%(message)s")
    from pipeline.quiet import import_tensorflow_quietly

    import_tensorflow_quietly(verbose)
    import keras_tuner  # noqa: F401  (imported before the job arrives: a prestarted worker is ready sooner)
    import mlflow
    import tensorflow as tf

    from keras_tuner.src.distribute import oracle_client  # noqa: F401

    import models.hypermodel  # noqa: F401
    from components import trial_tracking  # noqa: F401
    from pipeline import artifacts
    from pipeline.config import from_dict
    from pipeline.names import TAG_PID

    if prestarted:
        _open_tracking_store()
        try:
            line = sys.stdin.readline()
        except KeyboardInterrupt:
            return 130
        if not line:  # released unused: the pipeline ended before its tune stage
            return 0
        job = json.loads(line)
    else:
        job = json.loads(raw)

    # Each worker gets its share of the cores: TensorFlow's own thread pools would otherwise each
    # take all of them and the workers would contend.
    tf.config.threading.set_intra_op_parallelism_threads(job["threads"])
    tf.config.threading.set_inter_op_parallelism_threads(job["threads"])
    mlflow.set_tracking_uri(job["tracking_uri"])
    distributed = Distributed("worker", job["tuner_id"], *job["oracle"])
    try:
        work(artifacts.load(Path(job["transform"]), verify=False), from_dict(job["config"]), Path(job["directory"]),
             chief_run_id=job["parent"], distributed=distributed, verbose=job["verbose"],
             trial_tags={**job["trial_tags"], TAG_PID: str(os.getpid())})
    except KeyboardInterrupt:
        while mlflow.active_run() is not None:
            mlflow.end_run("KILLED")
        return 130
    except Exception as exc:  # the chief reports the exit code; the reason goes to the shared stderr
        while mlflow.active_run() is not None:
            mlflow.end_run("FAILED")
        log.error(f"error: tuning worker {job['tuner_id']}: {type(exc).__name__}: {exc}")
        return 1
    return 0


def _open_tracking_store() -> None:
    """A prestarted worker opens the tracking store its job will name (the environment's) while it waits:
    the first trial's MLflow run then starts without connecting and checking the store's schema first
    (0.5-0.7 s of a worker's start). Only a head start: a store that cannot be opened now fails the job
    itself, with its error, when the first trial starts its run."""
    import mlflow

    try:
        mlflow.MlflowClient().search_experiments(max_results=1)
    except Exception as exc:
        log.debug(f"tuning worker: the tracking store was not opened ahead of the job: {exc}")


@contextmanager
def _collector_skips_the_setup():
    """KerasTuner runs two full garbage collections before every trial, and each walked every object
    TensorFlow, Keras and MLflow had created (0.6 s apiece on digits, a fifth of a trial). Objects alive
    when the search starts are frozen out of the collector's walk for the search: a trial's collections
    then visit only what the trials themselves created, and still free every model they drop."""
    import gc

    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run(transform: Artifact, config: Config, out: Path, *, trial_tags: dict[str, str], hparams_file: str | None = None,
        verbose: int = 1, distributed: Distributed | None = None) -> HyperParametersProperties:
    """The search (or the fixed values); `trial_tags` go on every trial's MLflow run."""
    import mlflow

    if hparams_file or not config.tune.enabled:
        best = hyperparameters.read_file(hparams_file) if hparams_file else {}
        source = f"file {hparams_file}" if hparams_file else "[model]/[train] (tuning disabled)"
        write_json(out / BEST_HPARAMS, best)
        mlflow.log_dict(best, BEST_HPARAMS)
        mlflow.set_tag(TAG_TUNE_SOURCE, source)
        return HyperParametersProperties(best=best, source=source, trials=0)

    from components.plots import plot_tuning

    if distributed is not None:
        distributed.export()
        mlflow.set_tag(TAG_TUNE_CHIEF, f"{distributed.oracle_ip}:{distributed.oracle_port}")
        log.info(f"tune: chief oracle on {distributed.oracle_ip}:{distributed.oracle_port}; "
                     "waiting for workers (`pipeline tune --role worker ...`) to run the trials")
    props = TransformProperties.of(transform)
    ex.log_inputs(props.examples, Path(props.examples["uri"]), {"train": "training", "validation": "validation"})
    workers = trial_processes.worker_count(config.tune.workers) if distributed is None else 1
    if workers > 1:
        tuner = _parallel_search(transform, config, out, workers=workers, verbose=verbose, trial_tags=trial_tags)
    else:
        tuner = _search(transform, config, out, verbose=verbose, trial_tags=trial_tags, chief=distributed)
    objective = watched(config.tune.objective, props.task)

    rows = _trials_table(tuner, objective)
    completed = [r for r in rows if r[objective] is not None]
    if not completed:
        raise RuntimeError(f"all {len(rows)} tuning trials failed; see the FAILED trial runs in MLflow for why")
    best_trial = tuner.oracle.get_best_trials(1)[0]
    best = hyperparameters.clean(best_trial.hyperparameters.values)
    best_score = float(best_trial.score)
    write_json(out / BEST_HPARAMS, best)
    _write_csv(rows, out / TRIALS_TABLE)
    figure = plot_tuning(rows, objective, out / TUNING_PNG)
    mlflow.log_dict(best, BEST_HPARAMS)
    mlflow.log_artifact(str(out / TRIALS_TABLE))
    if figure is not None:
        mlflow.log_artifact(str(figure))
    if (out / "tensorboard").is_dir():
        mlflow.log_artifacts(str(out / "tensorboard"), "tensorboard")
    mlflow.log_metrics({f"best_{objective}": best_score, "trials": len(rows),
                        "failed_trials": len(rows) - len(completed)})
    return HyperParametersProperties(best=best, best_score=best_score, objective=objective, trials=len(rows),
                                     failed_trials=len(rows) - len(completed), algorithm=config.tune.algorithm)


def work(transform: Artifact, config: Config, directory: Path, *, chief_run_id: str, distributed: Distributed,
         trial_tags: dict[str, str], verbose: int = 1) -> int:
    """A worker: takes trials from the chief's oracle until it has none left; returns how many it ran."""
    distributed.export()
    tuner = _search(transform, config, directory, verbose=verbose, trial_tags=trial_tags, trial_parent=chief_run_id)
    return tuner.trials_run


if __name__ == "__main__":
    sys.exit(_worker_main())
