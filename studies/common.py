"""What every study shares: the run lifecycle, MLflow runs, data through TFDS and training.

A study module defines `TITLE`, a frozen `Settings` dataclass with `QUICK` and
`FULL` instances, and `run(study: Study) -> Findings`. `conduct` opens the
study's MLflow parent run, calls `run` (which opens one nested child run per
grid cell through `Study.cell`), then writes `reports/<study>.md` and
`reports/<study>.json` (see studies.report) and logs them, with the figures,
to the parent run.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from studies.report import Findings, verdict, write_report

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "studies"  # MLflow experiment holding every study's parent run
TAG_STUDY = "study.name"  # on the parent and on every child run
TAG_CELL = "study.cell"  # on child runs: the grid cell's name
KIND_STUDY = "study"  # pipeline.kind of a parent run
KIND_CELL = "study_cell"  # pipeline.kind of a child run


def default_reports_dir() -> Path:
    return REPO_ROOT / "reports"


def shared_tfds_dir() -> Path:
    """The offline TFDS data_dir holding fashion_mnist: `../shared/tfds` from the repo root."""
    return REPO_ROOT.parent / "shared" / "tfds"


@dataclass
class Study:
    """One study in progress: its settings, where it writes, and its MLflow parent run."""

    name: str  # one of studies.STUDIES
    quick: bool  # True: the CI-sized grid
    seed: int  # seeds numpy, Keras and every model
    settings: Any  # the module's Settings instance in use
    reports_dir: Path  # where the report, JSON and figures go
    data_dir: str | None  # TFDS data_dir for the synthetic builders (None: TFDS default)
    parent_run_id: str = ""
    child_run_ids: list[str] = field(default_factory=list)

    @contextmanager
    def cell(self, name: str, params: dict[str, Any]) -> Iterator[None]:
        """A nested MLflow run for one grid cell, with its settings as params."""
        import mlflow

        from pipeline import tracking
        from pipeline.names import TAG_KIND

        tags = {TAG_KIND: KIND_CELL, TAG_STUDY: self.name, TAG_CELL: name}
        with mlflow.start_run(run_name=name, nested=True, tags=tags) as run:
            self.child_run_ids.append(run.info.run_id)
            tracking.log_params(params)
            yield

    def figure_path(self, stem: str) -> Path:
        return self.reports_dir / f"{self.name}_{stem}.png"


# ---------------------------------------------------------------- the run lifecycle


def conduct(
    module: ModuleType, name: str, *, quick: bool, reports_dir: Path, data_dir: str | None, seed: int
) -> dict[str, Any]:
    """Run one study module inside its MLflow parent run and write its report."""
    import keras
    import mlflow

    from pipeline import tracking

    settings = module.QUICK if quick else module.FULL
    reports_dir.mkdir(parents=True, exist_ok=True)
    study = Study(name, quick, seed, settings, reports_dir, data_dir)
    experiment_id = tracking.setup(EXPERIMENT)
    tags = {**tracking.process_tags(KIND_STUDY), TAG_STUDY: name}
    run_name = f"{name}-quick" if quick else name
    with mlflow.start_run(run_name=run_name, tags=tags) as parent:
        study.parent_run_id = parent.info.run_id
        tracking.log_params({"quick": quick, "seed": seed, **dataclasses.asdict(settings)})
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        findings = module.run(study)
        wall_time = time.perf_counter() - started
        mlflow.log_metric("wall_time_s", wall_time)
        payload = _payload(module, study, findings, experiment_id, wall_time)
        write_report(*_report_paths(study), findings, payload)
        for path in (*findings.figures, *_report_paths(study)):
            mlflow.log_artifact(str(path))
    return payload


def _command(name: str, quick: bool, seed: int) -> str:
    return f"python -m studies {name}{' --quick' if quick else ''} --seed {seed}"


def _payload(
    module: ModuleType, study: Study, findings: Findings, experiment_id: str, wall_time: float
) -> dict[str, Any]:
    import keras
    import tensorflow as tf

    return {
        "study": study.name,
        "title": module.TITLE,
        "quick": study.quick,
        "seed": study.seed,
        "command": _command(study.name, study.quick, study.seed),
        "wall_time_s": round(wall_time, 1),
        "verdict": verdict(findings.claims),
        "settings": dataclasses.asdict(study.settings),
        "claims": [dataclasses.asdict(claim) | {"line": claim.line()} for claim in findings.claims],
        "results": findings.results,
        "figures": [path.name for path in findings.figures],
        "mlflow": {
            "experiment": EXPERIMENT,
            "experiment_id": experiment_id,
            "parent_run_id": study.parent_run_id,
            "child_runs": len(study.child_run_ids),
        },
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__, "python": sys.version.split()[0]},
    }


def _report_paths(study: Study) -> tuple[Path, Path]:
    return study.reports_dir / f"{study.name}.md", study.reports_dir / f"{study.name}.json"


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class ImageData:
    """Image classification arrays with pixels in [0, 1] and integer labels."""

    dataset: str  # the TFDS name actually used
    source: str  # where it came from, and why, for the report
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    num_classes: int


def load_images(*, num_train: int, num_val: int, data_dir: str | None) -> ImageData:
    """fashion_mnist: train[:num_train] to train on, the last num_val of train to validate.

    fashion_mnist is looked up, in order, in `data_dir`, TFDS_DATA_DIR and the
    shared offline `../shared/tfds`. Where none holds it, the project's `digits`
    (8x8, prepared locally) stands in, validated on its test split, and the
    source says so.
    """
    import tensorflow_datasets as tfds

    for candidate in _image_dirs(data_dir):
        builder = tfds.builder("fashion_mnist", data_dir=candidate)
        if builder.is_prepared():
            available = builder.info.splits["train"].num_examples
            if num_train + num_val > available:
                raise ValueError(
                    f"num_train + num_val must fit in fashion_mnist's {available} training images "
                    f"(validation comes from their end), got {num_train} + {num_val}"
                )
            x_train, y_train = load_split("fashion_mnist", f"train[:{num_train}]", data_dir=candidate)
            x_val, y_val = load_split("fashion_mnist", f"train[-{num_val}:]", data_dir=candidate)
            source = f"fashion_mnist from `{candidate}` (validation: the last {num_val} of train)"
            return _image_data("fashion_mnist", source, x_train, y_train, x_val, y_val)
    x_train, y_train = load_split("digits", f"train[:{num_train}]", data_dir=data_dir)
    x_val, y_val = load_split("digits", f"test[:{num_val}]", data_dir=data_dir)
    source = (
        "FALLBACK: fashion_mnist was not found in "
        f"{', '.join(_image_dirs(data_dir))}; used the project's `digits` (8x8) instead"
    )
    return _image_data("digits", source, x_train, y_train, x_val, y_val)


def _image_dirs(data_dir: str | None) -> list[str]:
    candidates = [data_dir, os.environ.get("TFDS_DATA_DIR"), str(shared_tfds_dir())]
    return list(dict.fromkeys(str(c) for c in candidates if c))


def _image_data(dataset: str, source: str, x_train, y_train, x_val, y_val) -> ImageData:
    scale = 255.0 if dataset == "fashion_mnist" else 16.0  # digits' pixels run 0-16
    return ImageData(
        dataset=dataset,
        source=source,
        x_train=(x_train / scale).astype("float32"),
        y_train=y_train.astype("int32"),
        x_val=(x_val / scale).astype("float32"),
        y_val=y_val.astype("int32"),
        num_classes=10,
    )


def load_split(name: str, split: str, *, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """A TFDS split as (features, labels) numpy arrays from its supervised_keys.

    The project's builders are registered on the way, so `adding_problem` and
    `digit_reversal` prepare themselves into `data_dir` on first use.
    """
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401  (registers the project's builders)

    tfds.disable_progress_bar()
    features, labels = tfds.load(name, split=split, data_dir=data_dir, batch_size=-1, as_supervised=True)
    return tfds.as_numpy(features), tfds.as_numpy(labels)


# ---------------------------------------------------------------- training


@dataclass(frozen=True)
class Trained:
    """A fit's per-epoch history and the seconds each epoch took."""

    history: dict[str, list[float]]
    epoch_seconds: list[float]

    def last(self, metric: str) -> float:
        return float(self.history[metric][-1])


def fit(model, train, *, epochs: int, validation=None, steps_per_epoch: int | None = None,
        callbacks: tuple = ()) -> Trained:
    """model.fit with the project's epoch_logger (metrics to the active run, step=epoch) and a timer."""
    from components.trial_tracking import epoch_logger

    timer = _epoch_timer()
    history = model.fit(
        train,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=[*callbacks, epoch_logger(), timer],
        shuffle=False,  # training_batches shuffles; Keras would only warn that it cannot
        verbose=0,
    )
    return Trained({k: [float(v) for v in values] for k, values in history.history.items()}, timer.seconds)


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs=None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs=None) -> None:
            self.seconds.append(time.perf_counter() - self._started)

    return EpochTimer()


def log_final(metrics: dict[str, float]) -> None:
    """Final figures of a grid cell on its (active) child run."""
    import mlflow

    mlflow.log_metrics({key: float(value) for key, value in metrics.items()})


def log_learning_curves(trained: Trained) -> None:
    """The project's learning-curve plot of one cell, as an artifact of its child run."""
    import mlflow

    from components.plots import plot_learning_curves

    with tempfile.TemporaryDirectory() as folder:
        mlflow.log_artifact(str(plot_learning_curves(trained.history, Path(folder) / "learning_curves.png")))
