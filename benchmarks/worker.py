"""One measurement in a fresh process: `python -m benchmarks.worker TASK REQUEST.json RESULT.json`.

The orchestrator (benchmarks/suite.py) starts one worker per measurement so
that every variant begins from the same state: TensorFlow imported, nothing
traced, nothing else warmed. Imports that the real pipeline process has already
done before a stage starts (TensorFlow, Keras, MLflow) happen before the clock
starts; everything the stage does itself is timed.

Tasks:
- train-stage: `components.train.run` exactly as the runner calls it, inside a
  nested MLflow run, on the transformed split of a finished pipeline run.
- train-plain: the same model (same `build_model` kwargs, optimizer, arrays,
  epochs, batch size) in a plain Keras script: build, fit, save.
- input-pipeline: steps/s of fit on `components.data.make_dataset` against the
  same model fed from batches already held as in-memory tensors.
- tracking: epoch time with and without `components.trial_tracking.epoch_logger`
  in the same fit, on alternating epochs.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)


def _config(request: dict[str, Any]):
    from pipeline.config import load_config

    return load_config(request.get("config_file"), request.get("overrides", []))


def _artifacts(request: dict[str, Any]):
    from pipeline import artifacts

    return (artifacts.load(Path(request["preprocess_dir"]), verify=False),
            artifacts.load(Path(request["tune_dir"]), verify=False))


def _model_arguments(config, transform, hyperparameters) -> tuple[dict, dict, dict]:
    """The build_model kwargs, training kwargs and input facts train.run derives (same calls)."""
    import models
    from components.tune import base_values
    from pipeline.artifacts import read_json
    from pipeline.names import BEST_HPARAMS

    base_model, base_train = base_values(config)
    best = read_json(hyperparameters.file(BEST_HPARAMS))
    model_kwargs, train_kwargs = models.hyperparameters_to_kwargs(best, base_model=base_model, base_train=base_train)
    props = transform.properties
    inputs = dict(input_shape=tuple(props["input_shape"]), input_kind=props["input_kind"],
                  num_classes=props["num_classes"], vocab_size=props.get("vocab_size"))
    return model_kwargs, train_kwargs, inputs


def _compiled_model(config, model_kwargs: dict, train_kwargs: dict, inputs: dict, steps_per_epoch: int):
    import keras

    import models

    keras.utils.set_random_seed(config.pipeline.seed)
    model = models.build_model(**inputs, seed=config.pipeline.seed, **model_kwargs)
    optimizer = models.build_optimizer(
        train_kwargs["optimizer"], train_kwargs["learning_rate"], momentum=train_kwargs.get("momentum", 0.9),
        nesterov=bool(train_kwargs.get("nesterov", False)), schedule=config.train.schedule,
        decay_steps=steps_per_epoch * config.train.epochs, clipnorm=train_kwargs.get("clipnorm"),
    )
    return models.compile_model(model, optimizer=optimizer, num_classes=inputs["num_classes"])


@contextmanager
def _profiled(path: str | None) -> Iterator[None]:
    """cProfile the block into `path` when asked (`python -m benchmarks --profile`)."""
    if not path:
        yield
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.enable()
    try:
        yield
    finally:
        profiler.disable()
        profiler.dump_stats(path)


class _FitClock:
    """Wraps keras.Model.fit to time every call (the stage's fit is otherwise out of reach)."""

    def __init__(self) -> None:
        import keras

        self.seconds: list[float] = []
        original = keras.Model.fit
        clock = self

        def timed_fit(model, *args, **kwargs):
            started = time.perf_counter()
            try:
                return original(model, *args, **kwargs)
            finally:
                clock.seconds.append(time.perf_counter() - started)

        keras.Model.fit = timed_fit


def train_stage(request: dict[str, Any]) -> dict[str, Any]:
    """`components.train.run` inside a parent and a nested MLflow run, as the runner calls it."""
    import keras  # noqa: F401  (the runner has TensorFlow and MLflow loaded before a stage starts)
    import mlflow

    from pipeline import tracking

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    out = Path(request["out"])
    out.mkdir(parents=True, exist_ok=True)
    tracking.setup(config.pipeline.name)
    clock = _FitClock()
    mlflow.start_run(run_name="benchmark")
    mlflow.start_run(run_name="train", nested=True)
    from components import train  # imported before the clock: what is compared is what the stage does

    with _profiled(request.get("profile")):
        started, cpu = time.perf_counter(), time.process_time()
        properties = train.run(transform, hyperparameters, config, out, verbose=request.get("verbose", 1))
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    mlflow.end_run()
    mlflow.end_run()
    return {"seconds": seconds, "cpu_seconds": cpu, "fit_seconds": sum(clock.seconds), "epochs": properties["epochs"],
            "val_accuracy": properties["val_accuracy"]}


def train_plain(request: dict[str, Any]) -> dict[str, Any]:
    """What a Keras user would write by hand: load arrays, build, compile, fit, save."""
    import keras  # noqa: F401
    import numpy as np

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    out = Path(request["out"])
    out.mkdir(parents=True, exist_ok=True)
    model_kwargs, train_kwargs, inputs = _model_arguments(config, transform, hyperparameters)
    batch_size = int(train_kwargs["batch_size"])

    started, cpu = time.perf_counter(), time.process_time()
    with np.load(transform.file("train.npz")) as data:
        x_train, y_train = data["x"], data["y"]
    with np.load(transform.file("validation.npz")) as data:
        x_val, y_val = data["x"], data["y"]
    model = _compiled_model(config, model_kwargs, train_kwargs, inputs, math.ceil(len(x_train) / batch_size))
    fit_started = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=config.train.epochs,
                        validation_data=(x_val, y_val), shuffle=True, verbose=2 if request.get("verbose", 1) else 0)
    fit_seconds = time.perf_counter() - fit_started
    model.save(out / "model.keras")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "fit_seconds": fit_seconds, "epochs": len(history.history["loss"]),
            "val_accuracy": float(history.history["val_accuracy"][-1])}


def _epoch_clock():
    """Two callbacks bracketing all others, so an epoch's time includes every other callback's epoch-end work.

    Records (wall, cpu) seconds per epoch; cpu is the process's CPU time, all threads.
    """
    import keras

    times: list[tuple[float, float]] = []
    started: list[tuple[float, float]] = []

    class Start(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            started.append((time.perf_counter(), time.process_time()))

    class End(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            wall, cpu = started[-1]
            times.append((time.perf_counter() - wall, time.process_time() - cpu))

    return Start(), End(), times


def _slice(x, y, limit: int):
    return (x[:limit], y[:limit]) if limit else (x, y)


def input_pipeline(request: dict[str, Any]) -> dict[str, Any]:
    """Steps/s of one model fed by each feed, one epoch at a time, alternating (drift hits both alike).

    Each feed first runs one untimed epoch (tracing, and filling make_dataset's pipeline state).
    """
    import keras
    import tensorflow as tf

    from components.data import load_arrays, make_dataset

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    model_kwargs, train_kwargs, inputs = _model_arguments(config, transform, hyperparameters)
    batch_size = int(train_kwargs["batch_size"])
    x, y = _slice(*load_arrays(transform, "train"), request.get("limit", 0))
    full = len(x) // batch_size
    in_memory = (tf.constant(x[: full * batch_size].reshape(full, batch_size, *x.shape[1:])),
                 tf.constant(y[: full * batch_size].reshape(full, batch_size)))
    feeds = {
        "tfdata": (make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=config.pipeline.seed),
                   math.ceil(len(x) / batch_size)),
        "tensors": (tf.data.Dataset.from_tensor_slices(in_memory), full),
    }
    model = _compiled_model(config, model_kwargs, train_kwargs, inputs, feeds["tfdata"][1])

    def epoch(name: str) -> tuple[float, float]:
        dataset, steps = feeds[name]
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(dataset, epochs=1, verbose=0)
        return steps / (time.perf_counter() - wall), steps / (time.process_time() - cpu)

    for name in feeds:
        epoch(name)
    rates: dict[str, list[float]] = {name: [] for name in feeds}
    cpu_rates: dict[str, list[float]] = {name: [] for name in feeds}
    ratios, cpu_ratios = [], []
    for round_ in range(request["rounds"]):
        this = {}
        for name in (list(feeds) if round_ % 2 == 0 else list(reversed(feeds))):
            this[name] = epoch(name)
            rates[name].append(this[name][0])
            cpu_rates[name].append(this[name][1])
        ratios.append(this["tfdata"][0] / this["tensors"][0])
        cpu_ratios.append(this["tfdata"][1] / this["tensors"][1])
    keras.backend.clear_session()
    return {"ratio": statistics.median(ratios), "ratios": ratios, "cpu_ratio": statistics.median(cpu_ratios),
            "steps_per_s": {name: statistics.median(v) for name, v in rates.items()},
            "cpu_steps_per_s": {name: statistics.median(v) for name, v in cpu_rates.items()},
            "examples": len(x), "batch_size": batch_size, "rounds": request["rounds"]}


def tracking_overhead(request: dict[str, Any]) -> dict[str, Any]:
    """Within one fit, odd epochs log through epoch_logger and even ones do not; epoch 0 (tracing) is left out.

    Each logged epoch is paired with the unlogged epoch after it; the figure is the median pair ratio.
    """
    import keras
    import mlflow

    from components.data import load_arrays, make_dataset
    from components.trial_tracking import epoch_logger
    from pipeline import tracking

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    model_kwargs, train_kwargs, inputs = _model_arguments(config, transform, hyperparameters)
    batch_size = int(train_kwargs["batch_size"])
    x, y = _slice(*load_arrays(transform, "train"), request.get("limit", 0))
    x_val, y_val = _slice(*load_arrays(transform, "validation"), request.get("limit", 0))
    tracking.setup(config.pipeline.name)
    logger = epoch_logger()
    log_seconds: list[float] = []

    class OddEpochs(keras.callbacks.Callback):
        def set_model(self, model):
            super().set_model(model)
            logger.set_model(model)

        def on_epoch_end(self, epoch, logs=None):
            if epoch % 2 == 1:
                started = time.perf_counter()
                logger.on_epoch_end(epoch, logs)
                log_seconds.append(time.perf_counter() - started)

    train_ds = make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=config.pipeline.seed)
    val_ds = make_dataset(x_val, y_val, batch_size=batch_size, shuffle=False, seed=config.pipeline.seed)
    model = _compiled_model(config, model_kwargs, train_kwargs, inputs, math.ceil(len(x) / batch_size))
    start, end, times = _epoch_clock()
    with mlflow.start_run(run_name="tracking-overhead"):
        history = model.fit(train_ds, validation_data=val_ds, epochs=1 + 2 * request["pairs"],
                            callbacks=[start, OddEpochs(), end], verbose=0).history
        what_if = _log_call_seconds({k: float(v[-1]) for k, v in history.items()})
    pairs = [(times[i], times[i + 1]) for i in range(1, len(times) - 1, 2)]
    keras.backend.clear_session()
    return {"ratio": statistics.median(a[0] / b[0] for a, b in pairs),
            "cpu_ratio": statistics.median(a[1] / b[1] for a, b in pairs),
            "epoch_s_logged": statistics.median(a[0] for a, _ in pairs),
            "epoch_s_plain": statistics.median(b[0] for _, b in pairs),
            "log_call_s": statistics.median(log_seconds), **what_if,
            "examples": len(x), "batch_size": batch_size, "pairs": request["pairs"]}


def _log_call_seconds(metrics: dict[str, float], calls: int = 10) -> dict[str, float]:
    """What one epoch's log_metrics costs the training thread, synchronous (as now) and with synchronous=False."""
    import mlflow

    timed = {}
    for synchronous in (True, False):
        seconds = []
        for step in range(calls):
            started = time.perf_counter()
            mlflow.log_metrics({f"what_if.{k}": v for k, v in metrics.items()}, step=1000 + step,
                               synchronous=synchronous)
            seconds.append(time.perf_counter() - started)
        timed["log_call_sync_s" if synchronous else "log_call_async_s"] = statistics.median(seconds)
    mlflow.flush_async_logging()
    return timed


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train-stage": train_stage,
    "train-plain": train_plain,
    "input-pipeline": input_pipeline,
    "tracking": tracking_overhead,
}


def main(argv: list[str]) -> int:
    task, request_file, result_file = argv
    _quiet_tensorflow()
    import tensorflow  # noqa: F401  (imported before any clock starts, as in the pipeline process)

    request = json.loads(Path(request_file).read_text())
    result = TASKS[task](request)
    Path(result_file).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
