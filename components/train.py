"""Train: the best hyperparameters, per-epoch metrics in MLflow, a model that takes raw inputs.

The core model trains on the transformed shards, streamed (fast: no decoding
or vectorisation per epoch, and memory bounded by the shuffle buffer); the
exported model is the preprocessing model built on train followed by that core, saved as `.keras` with the resolved config beside it and logged with
`mlflow.keras` and a signature. Training state is backed up every epoch in the
stage's work directory, so a killed run resumes from its last finished epoch.

With `train.distribution = "multi_worker"` the chief's train stage is this `run`, and every other
worker of the cluster runs `follow`: the same fit in step with the chief (components/distribute.py),
which records nothing and saves nothing; only the chief backs up, and a restarted cluster resumes from
its backup.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from components import distribute
from components import examples as ex
from components import hyperparameters as hparams
from components.data import evaluation_stream, training_stream, watched
from components.trial_tracking import epoch_logger
from components.properties import ModelProperties, TransformProperties
from pipeline.artifacts import Artifact, read_json, write_json
from pipeline.config import Config
from pipeline.names import (
    BEST_HPARAMS,
    CLASS_NAMES_FILE,
    HISTORY_FILE,
    INPUT_INFO_FILE,
    LEARNING_CURVES_PNG,
    MODEL_FILE,
    RAW_SAMPLE,
    RESOLVED_CONFIG,
    TAG_RESUMED,
    TRAINED_HPARAMS,
    TRANSFORM_MODEL,
)

log = logging.getLogger(__name__)

# What `mlflow.keras.log_model` records as the model's requirements; naming them skips
# MLflow's slow dependency inference (a subprocess that imports the model).
PIP_REQUIREMENTS = ("tensorflow-cpu", "keras", "mlflow")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def load_preprocessing(transform: Artifact):
    """The model from raw inputs to the core model's inputs that preprocess built on train."""
    import keras

    return keras.saving.load_model(transform.file(TRANSFORM_MODEL), safe_mode=True)


def _callbacks(config: Config, backup_dir: Path | None, task: str, strategy, *, chief: bool) -> list:
    """Backup (where `backup_dir` is given), the chief's state for every worker (multi_worker), NaN stop,
    per-epoch metrics in MLflow (chief only), early stopping. Every worker sees the same all-reduced logs,
    so they all stop at the same epoch."""
    import keras

    callbacks = []
    if backup_dir is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup_dir), save_freq="epoch", delete_checkpoint=False))
    if distribute.is_multi_worker(strategy):
        callbacks.append(distribute.chief_state_callback(strategy, is_chief=chief))
    callbacks.append(keras.callbacks.TerminateOnNaN())
    if chief:
        callbacks.append(epoch_logger())
    if config.train.early_stopping_patience:
        monitor = watched(config.train.monitor, task)
        callbacks.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=config.train.early_stopping_patience,
                                                       mode="max" if monitor == "val_accuracy" else "min",
                                                       restore_best_weights=True))
    return callbacks


def _keras_verbosity(level: int) -> int:
    """Keras's progress bar on a terminal, one line per epoch in logs, nothing when quiet."""
    import sys

    if level == 0:
        return 0
    return 1 if sys.stdout.isatty() else 2


def _pip_requirements() -> list[str]:
    from importlib import metadata

    pins = []
    for name in PIP_REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return pins


@dataclass
class _Training:
    """One fit, set up: the streams, the resolved hyperparameters and the compiled core model."""

    batches: Any
    steps_per_epoch: int
    validation: Any
    validation_steps: int
    model_kwargs: dict[str, Any]
    train_kwargs: dict[str, Any]
    core: Any
    strategy: Any  # None without a tf.distribute strategy


def _set_up(transform: Artifact, hyperparameters: Artifact, config: Config, strategy) -> _Training:
    import keras

    import models

    keras.utils.set_random_seed(config.pipeline.seed)
    props = TransformProperties.of(transform)
    best = read_json(hyperparameters.file(BEST_HPARAMS))
    batch_size = int(best.get("batch_size", config.train.batch_size))  # the global batch, over all replicas
    validation, validation_steps = evaluation_stream(transform, "validation", batch_size=batch_size)
    batches, steps_per_epoch = training_stream(transform, batch_size=batch_size, seed=config.pipeline.seed,
                                               shuffle_buffer=config.train.shuffle_buffer)
    if strategy is not None:
        batches, validation = distribute.shard_by_data(batches), distribute.shard_by_data(validation)
    base_model, base_train = hparams.base_values(config, steps_per_epoch=steps_per_epoch, epochs=config.train.epochs)
    model_kwargs, train_kwargs = models.hyperparameters_to_kwargs(best, base_model=base_model, base_train=base_train)
    distribute.rendezvous(strategy)  # every task has read its inputs; from here on they work in step
    with distribute.scope(strategy):
        core = models.build_model(input_shape=tuple(props.input_shape), input_kind=props.input_kind,
                                  num_classes=props.num_classes, vocab_size=props.vocab_size,
                                  seed=config.pipeline.seed, **model_kwargs)
        if distribute.is_multi_worker(strategy):
            distribute.synchronize_batch_norm(core)
        models.compile_model(core, optimizer=models.optimizer_from(train_kwargs), num_classes=props.num_classes)
    return _Training(batches, steps_per_epoch, validation, validation_steps, model_kwargs, train_kwargs, core, strategy)


def _fit(training: _Training, config: Config, backup: Path | None, task: str, *, chief: bool,
         verbose: int) -> dict[str, list[float]]:
    """Fit the core model; raises TrainingDiverged when the loss became NaN or infinite."""
    import models

    if training.strategy is None:
        models.build_training_state(training.core, training.batches)  # one trace of the step, not two
    history = training.core.fit(
        training.batches, steps_per_epoch=training.steps_per_epoch,
        validation_data=training.validation, validation_steps=training.validation_steps,
        epochs=config.train.epochs, callbacks=_callbacks(config, backup, task, training.strategy, chief=chief),
        shuffle=False,  # the stream is shuffled
        verbose=_keras_verbosity(verbose),
    ).history
    losses = history.get("loss", [])
    checked = losses + history.get("val_loss", [])
    if not losses or not all(math.isfinite(v) for v in checked):
        raise TrainingDiverged(
            f"training diverged: the loss became NaN or infinite (learning rate "
            f"{training.train_kwargs['learning_rate']}); lower train.learning_rate or set train.clipnorm"
        )
    return history


def weights_digest(model) -> str:
    """sha256 of a model's weights in order (values, shapes and dtypes): equal digests, identical weights."""
    digest = hashlib.sha256()
    for weight in model.get_weights():
        digest.update(f"{weight.dtype}{weight.shape}".encode())
        digest.update(np.ascontiguousarray(weight).tobytes())
    return digest.hexdigest()


def run(transform: Artifact, hyperparameters: Artifact, config: Config, out: Path, *, verbose: int = 1) -> ModelProperties:
    """The train stage, single-process or as a multi_worker chief: fit, save, log to the stage's MLflow run."""
    import mlflow

    import models
    from components.plots import plot_learning_curves

    strategy = distribute.strategy(config.train.distribution)
    distribute.rendezvous(strategy)  # multi_worker: the other workers now read this run's sealed inputs
    training = _set_up(transform, hyperparameters, config, strategy)
    model_kwargs, train_kwargs, core = training.model_kwargs, training.train_kwargs, training.core
    mlflow.log_params({f"hp.{k}": v for k, v in {**model_kwargs, **train_kwargs}.items()})
    props = TransformProperties.of(transform)
    task = props.task
    ex.log_inputs(props.examples, Path(props.examples["uri"]), {"train": "training", "validation": "validation"})

    backup = out / "backup"
    resumed = backup.is_dir() and any(backup.iterdir())
    if resumed:
        mlflow.set_tag(TAG_RESUMED, "true")
        log.info("train: resuming from the last completed epoch of an interrupted run")
    history = _fit(training, config, backup, task, chief=True, verbose=verbose)
    losses = history["loss"]

    served = models.stack(load_preprocessing(transform), core)
    served.save(out / MODEL_FILE)
    write_json(out / RESOLVED_CONFIG, config.to_dict())
    write_json(out / CLASS_NAMES_FILE, props.class_names)
    input_info = {"kind": props.raw_kind, "raw_shape": props.raw_shape, "raw_dtype": props.raw_dtype,
                  "raw_max": props.raw_max, "columns": props.raw_columns, "task": task}
    write_json(out / INPUT_INFO_FILE, input_info)
    write_json(out / HISTORY_FILE, history)
    write_json(out / TRAINED_HPARAMS, {**model_kwargs, **train_kwargs})
    curves = plot_learning_curves(history, out / LEARNING_CURVES_PNG)
    shutil.rmtree(backup, ignore_errors=True)  # the finished model supersedes the resume state

    model_info = _log_model(served, transform, {"class_names": props.class_names, "input": input_info})
    mlflow.log_artifact(str(curves))
    mlflow.log_dict(config.to_dict(), RESOLVED_CONFIG)
    final = {k: float(v[-1]) for k, v in history.items()}
    monitor = watched(config.train.monitor, task)
    monitored = history.get(monitor)
    if monitored:
        best_epoch = int(np.argmax(monitored) if monitor == "val_accuracy" else np.argmin(monitored))
    else:
        best_epoch = len(losses) - 1
    shown = "val_accuracy" if task == "classification" else f"val_{models.REGRESSION_METRIC}"
    return ModelProperties(
        epochs=len(losses),
        best_epoch=best_epoch + 1,
        resumed=resumed,
        task=task,
        val_metric=shown,
        val_value=float(history[shown][best_epoch]) if shown in history else None,
        val_accuracy=float(history["val_accuracy"][best_epoch]) if "val_accuracy" in history else None,
        final=final,
        model_uri=model_info.model_uri,
        model_id=getattr(model_info, "model_id", None),
        hyperparameters=json.loads(json.dumps({**model_kwargs, **train_kwargs}, default=str)),
        parameters=int(served.count_params()),
        distribution=config.train.distribution,
        replicas=int(strategy.num_replicas_in_sync) if strategy is not None else 1,
        weights_sha256=weights_digest(core),
    )


def follow(transform: Artifact, hyperparameters: Artifact, config: Config, *, verbose: int = 1) -> dict[str, Any]:
    """A multi_worker train stage on a worker other than the chief: the chief's fit, in step, recording nothing.

    It neither saves nor backs up (the chief's backup is the cluster's; at the start of `fit` every worker
    takes the chief's state), and returns what the worker trained: epochs and the weights' digest, which
    the chief's `run` returns too.
    """
    strategy = distribute.strategy("multi_worker")
    training = _set_up(transform, hyperparameters, config, strategy)
    history = _fit(training, config, None, TransformProperties.of(transform).task, chief=False, verbose=verbose)
    return {"epochs": len(history["loss"]), "replicas": int(strategy.num_replicas_in_sync),
            "weights_sha256": weights_digest(training.core)}


def _log_model(served, transform: Artifact, metadata: dict[str, Any]):
    """Log the served model with a signature on raw inputs (from the sample preprocess kept)."""
    import mlflow
    from mlflow.models import infer_signature

    with np.load(transform.file(RAW_SAMPLE), allow_pickle=False) as data:
        # Keras takes strings as object arrays, not fixed-width unicode.
        arrays = {name: data[name].astype(object) if data[name].dtype.kind == "U" else data[name] for name in data.files}
    sample = arrays if TransformProperties.of(transform).raw_kind == "tabular" else arrays["x"]
    # A signature records only dtypes and shapes, so the output side comes from the model's output spec:
    # running predict here would trace a predict function (about half a second) for nothing that
    # evaluate does not check right after on the whole test split.
    output = served.outputs[0]
    rows = len(next(iter(arrays.values())))
    signature = infer_signature(sample, np.zeros((rows, *output.shape[1:]), dtype=output.dtype))
    return mlflow.keras.log_model(served, name="model", signature=signature, pip_requirements=_pip_requirements(),
                                  metadata=metadata)
