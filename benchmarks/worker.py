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
- input-pipeline: steps/s of fit on the train stage's feed (`components.data.training_stream`
  over the Transform shards) against the same model fed from batches already held as
  in-memory tensors.
- prepare: prepare one of the project's TFDS builders (outside any measurement).
- tracking: the time of short fits with and without tracking (the epoch logger and MLflow's
  system-metrics sampler, as on a train stage run), alternating.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from contextlib import contextmanager, nullcontext
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
    from components.data import training_stream
    from components.hyperparameters import base_values
    from pipeline.artifacts import read_json
    from pipeline.names import BEST_HPARAMS

    best = read_json(hyperparameters.file(BEST_HPARAMS))
    _, steps = training_stream(transform, batch_size=int(best.get("batch_size", config.train.batch_size)),
                               seed=config.pipeline.seed, shuffle_buffer=config.train.shuffle_buffer)
    base_model, base_train = base_values(config, steps_per_epoch=steps, epochs=config.train.epochs)
    model_kwargs, train_kwargs = models.hyperparameters_to_kwargs(best, base_model=base_model, base_train=base_train)
    from components.properties import TransformProperties

    props = TransformProperties.of(transform)
    inputs = dict(input_shape=tuple(props.input_shape), input_kind=props.input_kind,
                  num_classes=props.num_classes, vocab_size=props.vocab_size)
    return model_kwargs, train_kwargs, inputs


def _compiled_model(config, model_kwargs: dict, train_kwargs: dict, inputs: dict):
    import keras

    import models

    keras.utils.set_random_seed(config.pipeline.seed)
    model = models.build_model(**inputs, seed=config.pipeline.seed, **model_kwargs)
    return models.compile_model(model, optimizer=models.optimizer_from(train_kwargs), num_classes=inputs["num_classes"])


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
    return {"seconds": seconds, "cpu_seconds": cpu, "fit_seconds": sum(clock.seconds), "epochs": properties.epochs,
            "val_accuracy": properties.val_accuracy}


def train_plain(request: dict[str, Any]) -> dict[str, Any]:
    """What a Keras user would write by hand: load arrays, build, compile, fit, save."""
    import keras  # noqa: F401

    from components.data import load_arrays

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    out = Path(request["out"])
    out.mkdir(parents=True, exist_ok=True)
    model_kwargs, train_kwargs, inputs = _model_arguments(config, transform, hyperparameters)
    batch_size = int(train_kwargs["batch_size"])

    started, cpu = time.perf_counter(), time.process_time()
    x_train, y_train = load_arrays(transform, "train")
    x_val, y_val = load_arrays(transform, "validation")
    model = _compiled_model(config, model_kwargs, train_kwargs, inputs)
    fit_started = time.perf_counter()
    history = model.fit(x_train, y_train, batch_size=batch_size, epochs=config.train.epochs,
                        validation_data=(x_val, y_val), shuffle=True, verbose=2 if request.get("verbose", 1) else 0)
    fit_seconds = time.perf_counter() - fit_started
    model.save(out / "model.keras")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {"seconds": seconds, "cpu_seconds": cpu, "fit_seconds": fit_seconds, "epochs": len(history.history["loss"]),
            "val_accuracy": float(history.history["val_accuracy"][-1])}


def input_pipeline(request: dict[str, Any]) -> dict[str, Any]:
    """Steps/s of one model fed by each feed, alternating short fits (drift hits both alike).

    "shards" is what the train stage reads: the Transform artifact's shards streamed through
    `training_stream` (shuffle buffer, parse, prefetch), set up once per fit. "tensors" is the fastest
    in-memory feed: the same examples as whole batches of constant tensors, prefetched. A fit of a few
    epochs is the unit; each feed first runs one untimed fit (tracing).
    """
    import keras
    import tensorflow as tf

    from components.data import load_arrays, training_stream

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    model_kwargs, train_kwargs, inputs = _model_arguments(config, transform, hyperparameters)
    batch_size = int(train_kwargs["batch_size"])
    epochs = int(request.get("epochs_per_fit", 2))
    x, y = load_arrays(transform, "train", limit=request.get("limit", 0))
    full = len(x) // batch_size
    in_memory = (tf.constant(x[: full * batch_size].reshape(full, batch_size, *x.shape[1:])),
                 tf.constant(y[: full * batch_size].reshape(full, batch_size)))
    stream, _ = training_stream(transform, batch_size=batch_size, seed=config.pipeline.seed,
                                shuffle_buffer=config.train.shuffle_buffer)
    feeds = {
        "shards": (stream, full),  # as many steps per epoch as the baseline: same work per fit
        "tensors": (tf.data.Dataset.from_tensor_slices(in_memory).prefetch(tf.data.AUTOTUNE), full),
    }
    model = _compiled_model(config, model_kwargs, train_kwargs, inputs)

    def fit(name: str) -> tuple[float, float]:
        dataset, steps = feeds[name]
        wall, cpu = time.perf_counter(), time.process_time()
        model.fit(dataset, epochs=epochs, steps_per_epoch=steps, verbose=0)
        return epochs * steps / (time.perf_counter() - wall), epochs * steps / (time.process_time() - cpu)

    for name in feeds:
        fit(name)
    rates: dict[str, list[float]] = {name: [] for name in feeds}
    cpu_rates: dict[str, list[float]] = {name: [] for name in feeds}
    ratios, cpu_ratios = [], []
    for round_ in range(request["rounds"]):
        this = {}
        for name in (list(feeds) if round_ % 2 == 0 else list(reversed(feeds))):
            this[name] = fit(name)
            rates[name].append(this[name][0])
            cpu_rates[name].append(this[name][1])
        ratios.append(this["shards"][0] / this["tensors"][0])
        cpu_ratios.append(this["shards"][1] / this["tensors"][1])
    keras.backend.clear_session()
    return {"ratio": statistics.median(ratios), "ratios": ratios, "cpu_ratio": statistics.median(cpu_ratios),
            "steps_per_s": {name: statistics.median(v) for name, v in rates.items()}, "all_steps_per_s": rates,
            "cpu_steps_per_s": {name: statistics.median(v) for name, v in cpu_rates.items()},
            "examples": len(x), "batch_size": batch_size, "rounds": request["rounds"], "epochs_per_fit": epochs}


def tracking_overhead(request: dict[str, Any]) -> dict[str, Any]:
    """Short fits of the same model, alternately with and without epoch_logger; the figure is the median pair ratio.

    Whole fits are timed, not single epochs: the logger hands each epoch's metrics to a background writer,
    whose work overlaps the next epoch and is waited for when training ends, so only a whole fit carries
    all of its cost. The first fit (tracing) is not timed.
    """
    import keras
    import mlflow

    from components.data import evaluation_batches, load_arrays, training_batches
    from components.trial_tracking import epoch_logger
    from pipeline import system_metrics, tracking

    config = _config(request)
    transform, hyperparameters = _artifacts(request)
    model_kwargs, train_kwargs, inputs = _model_arguments(config, transform, hyperparameters)
    batch_size = int(train_kwargs["batch_size"])
    x, y = load_arrays(transform, "train", limit=request.get("limit", 0))
    x_val, y_val = load_arrays(transform, "validation", limit=request.get("limit", 0))
    epochs = int(request["epochs_per_fit"])
    tracking.setup(config.pipeline.name)
    held: list[float] = []  # seconds the logger's own calls hold the training thread, per logged fit

    class TimedLogger(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.logger = epoch_logger()

        def set_model(self, model):
            super().set_model(model)
            self.logger.set_model(model)

        def on_epoch_end(self, epoch, logs=None):
            started = time.perf_counter()
            self.logger.on_epoch_end(epoch, logs)
            held[-1] += time.perf_counter() - started

        def on_train_begin(self, logs=None):
            held.append(0.0)
            started = time.perf_counter()
            self.logger.on_train_begin(logs)
            held[-1] += time.perf_counter() - started

        def on_train_end(self, logs=None):
            started = time.perf_counter()
            self.logger.on_train_end(logs)
            held[-1] += time.perf_counter() - started

    train_ds, steps = training_batches(x, y, batch_size=batch_size, seed=config.pipeline.seed)
    val_ds = evaluation_batches(x_val, y_val, batch_size=batch_size)
    model = _compiled_model(config, model_kwargs, train_kwargs, inputs)

    def fit(logged: bool) -> tuple[float, float]:
        # The logged fit is tracked as a train stage run is: per-epoch metrics and MLflow's system-metrics
        # sampler at the config's interval (both set up and torn down inside the timed span).
        wall, cpu = time.perf_counter(), time.process_time()
        with system_metrics.sampled(config, "train", run.info.run_id, verbose=0) if logged else nullcontext():
            model.fit(train_ds, steps_per_epoch=steps, validation_data=val_ds, epochs=epochs,
                      callbacks=[TimedLogger()] if logged else [], verbose=0)
        return time.perf_counter() - wall, time.process_time() - cpu

    pairs = []
    with mlflow.start_run(run_name="tracking-overhead") as run:
        fit(False)
        for pair in range(request["pairs"]):
            order = (True, False) if pair % 2 == 0 else (False, True)
            timed = {logged: fit(logged) for logged in order}
            pairs.append((timed[True], timed[False]))
        history = model.history.history
        reference = _log_call_seconds({k: float(v[-1]) for k, v in history.items()})
    keras.backend.clear_session()
    return {"ratio": statistics.median(a[0] / b[0] for a, b in pairs),
            "cpu_ratio": statistics.median(a[1] / b[1] for a, b in pairs),
            "epoch_s_logged": statistics.median(a[0] for a, _ in pairs) / epochs,
            "epoch_s_plain": statistics.median(b[0] for _, b in pairs) / epochs,
            "held_per_fit_s": statistics.median(held), **reference, "epochs_per_fit": epochs,
            "examples": len(x), "batch_size": batch_size, "pairs": request["pairs"], "fits": pairs}


def _log_call_seconds(metrics: dict[str, float], calls: int = 10) -> dict[str, float]:
    """For reference: what one epoch's metrics cost the training thread through a synchronous `mlflow.log_metrics`."""
    import mlflow

    seconds = []
    for step in range(calls):
        started = time.perf_counter()
        mlflow.log_metrics({f"reference.{k}": v for k, v in metrics.items()}, step=1000 + step)
        seconds.append(time.perf_counter() - started)
    return {"log_call_sync_s": statistics.median(seconds)}


def prepare(request: dict[str, Any]) -> dict[str, Any]:
    """Prepare a project TFDS builder into TFDS_DATA_DIR, so a measured run only reads it."""
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401  (registers the project's builders)

    started = time.perf_counter()
    builder = tfds.builder(request["name"])
    builder.download_and_prepare()
    return {"seconds": time.perf_counter() - started, "examples": {k: v.num_examples for k, v in builder.info.splits.items()}}


TASKS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "train-stage": train_stage,
    "train-plain": train_plain,
    "input-pipeline": input_pipeline,
    "tracking": tracking_overhead,
    "prepare": prepare,
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
