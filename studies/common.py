"""What every study shares: the run lifecycle over seeds, MLflow runs, data through TFDS and training.

A study module defines `TITLE`, a frozen `Settings` dataclass with `QUICK` and
`FULL` instances, `run(study: Study) -> Findings` for one seed, and
`rules(settings) -> list[Rule]`, its claims. `conduct` opens the study's MLflow
parent run and, per seed, a child run in which `run` opens one nested run per
grid cell (through `Study.cell`). The seeds' measures become estimates with
intervals, the rules are judged on them, and `reports/<study>.md` and
`reports/<study>.json` are written (see studies.report) and logged, with the
first seed's figures, to the parent run. Later seeds' figures go to their own
child runs only.
"""

from __future__ import annotations

import dataclasses
import os
import re
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

from studies.report import Findings, estimate, verdict, write_report

REPO_ROOT = Path(__file__).resolve().parents[1]
EXPERIMENT = "studies"  # MLflow experiment holding every study's parent run
TAG_STUDY = "study.name"  # on the parent and on every child run
TAG_SEED = "study.seed"  # on a seed's run and on its cells' runs
TAG_CELL = "study.cell"  # on cell runs: the grid cell's name
KIND_STUDY = "study"  # pipeline.kind of a parent run
KIND_SEED = "study_seed"  # pipeline.kind of a seed's run (a child of the parent)
KIND_CELL = "study_cell"  # pipeline.kind of a cell's run (a child of a seed's run)


def default_reports_dir() -> Path:
    return REPO_ROOT / "reports"


@dataclass
class Study:
    """One seed of a study in progress: its settings, where its figures go, and its MLflow runs."""

    name: str  # one of studies.STUDIES
    quick: bool  # True: the CI-sized grid
    seed: int  # seeds numpy, Keras and every model
    settings: Any  # the module's Settings instance in use
    figures_dir: Path  # where this seed's PNGs go: the reports directory for the first seed
    data_dir: str | None  # TFDS data_dir for the synthetic builders (None: TFDS's default)
    run_ids: list[str] = field(default_factory=list)  # the cells' MLflow runs

    @contextmanager
    def cell(self, name: str, params: dict[str, Any]) -> Iterator[None]:
        """A nested MLflow run for one grid cell, with its settings as params."""
        import mlflow

        from pipeline import tracking
        from pipeline.names import TAG_KIND

        tags = {TAG_KIND: KIND_CELL, TAG_STUDY: self.name, TAG_SEED: str(self.seed), TAG_CELL: name}
        with mlflow.start_run(run_name=name, nested=True, tags=tags) as run:
            self.run_ids.append(run.info.run_id)
            tracking.log_params(params)
            yield

    def figure_path(self, stem: str) -> Path:
        return self.figures_dir / f"{self.name}_{stem}.png"


# ---------------------------------------------------------------- the run lifecycle


def conduct(
    module: ModuleType, name: str, *, quick: bool, reports_dir: Path, data_dir: str | None,
    seeds: tuple[int, ...],
) -> dict[str, Any]:
    """Run one study module once per seed inside its MLflow parent run and write its report."""
    import mlflow

    from pipeline import tracking

    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct and at least one, got {seeds!r}")
    settings = module.QUICK if quick else module.FULL
    reports_dir.mkdir(parents=True, exist_ok=True)
    experiment_id = tracking.setup(EXPERIMENT)
    tags = {**tracking.process_tags(KIND_STUDY), TAG_STUDY: name}
    started = time.perf_counter()
    with mlflow.start_run(run_name=f"{name}-quick" if quick else name, tags=tags) as parent, \
            tempfile.TemporaryDirectory() as scratch:
        tracking.log_params({"quick": quick, "seeds": ",".join(map(str, seeds)),
                             **dataclasses.asdict(settings)})
        per_seed, runs = [], 1
        for index, seed in enumerate(seeds):
            figures_dir = reports_dir if index == 0 else Path(scratch) / f"seed{seed}"
            figures_dir.mkdir(parents=True, exist_ok=True)
            study = Study(name, quick, seed, settings, figures_dir, data_dir)
            per_seed.append(_one_seed(module, study, log_figures=index > 0))
            runs += 1 + len(study.run_ids)
        measures = {key: estimate([findings.measures[key] for findings in per_seed])
                    for key in per_seed[0].measures}
        claims = [rule.judge(measures) for rule in module.rules(settings)]
        wall_time = time.perf_counter() - started
        mlflow.log_metric("wall_time_s", wall_time)
        mlflow.log_metrics({metric_name(f"{key}.mean"): e.mean for key, e in measures.items()
                            if np.isfinite(e.mean)})
        payload = {
            "study": name,
            "title": module.TITLE,
            "quick": quick,
            "seeds": list(seeds),
            "command": _command(name, quick, len(seeds)),
            "wall_time_s": round(wall_time, 1),
            "verdict": verdict(claims),
            "interval": "95% t-interval of the mean over seeds (mean +- t * standard error)",
            "data": per_seed[0].data,
            "settings": dataclasses.asdict(settings),
            "claims": [dataclasses.asdict(claim) | {"line": claim.line()} for claim in claims],
            "measures": {key: e.as_json() for key, e in measures.items()},
            "per_seed": [{"seed": seed, "results": findings.results} for seed, findings in zip(seeds, per_seed)],
            "figures": [path.name for path in per_seed[0].figures],
            "mlflow": {"experiment": EXPERIMENT, "experiment_id": experiment_id,
                       "parent_run_id": parent.info.run_id, "runs": runs},
            "versions": _versions(),
        }
        markdown, json_path = reports_dir / f"{name}.md", reports_dir / f"{name}.json"
        write_report(markdown, json_path, payload, per_seed[0].body, claims, measures)
        for path in (*per_seed[0].figures, markdown, json_path):
            mlflow.log_artifact(str(path))
    return payload


def _one_seed(module: ModuleType, study: Study, *, log_figures: bool) -> Findings:
    """One seed as a child run of the study's parent: its cells nested under it, its measures on it."""
    import keras
    import mlflow

    from pipeline.names import TAG_KIND

    tags = {TAG_KIND: KIND_SEED, TAG_STUDY: study.name, TAG_SEED: str(study.seed)}
    with mlflow.start_run(run_name=f"seed-{study.seed}", nested=True, tags=tags):
        mlflow.log_param("seed", study.seed)
        keras.utils.set_random_seed(study.seed)
        findings = module.run(study)
        mlflow.log_metrics({metric_name(key): float(value) for key, value in findings.measures.items()
                            if np.isfinite(value)})
        if log_figures:
            for path in findings.figures:
                mlflow.log_artifact(str(path))
    return findings


def metric_name(measure: str) -> str:
    """A measure's name as MLflow accepts it (letters, digits and _-. :/ only)."""
    return re.sub(r"[^\w\-. :/]", "_", measure)


def _command(name: str, quick: bool, seeds: int) -> str:
    return f"pipeline study {name}{' --quick' if quick else ''} --seeds {seeds}"


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {"tensorflow": tf.__version__, "keras": keras.__version__, "python": sys.version.split()[0]}


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

    fashion_mnist is looked up in `data_dir`, then in TFDS_DATA_DIR (the Makefile and the tests set
    it), then in TFDS's own default. Where neither holds it, the project's `digits` (8x8,
    prepared locally) stands in, validated on its test split, and the source says so.
    """
    candidate = fashion_mnist_dir(data_dir)
    if candidate is None:
        x_train, y_train = load_split("digits", f"train[:{num_train}]", data_dir=data_dir)
        x_val, y_val = load_split("digits", f"test[:{num_val}]", data_dir=data_dir)
        source = ("FALLBACK: fashion_mnist was not prepared in the given data_dir, TFDS_DATA_DIR or TFDS's default; "
                  f"used the project's `digits` (8x8) instead, train[:{num_train}], test[:{num_val}]")
        return _image_data("digits", source, x_train, y_train, x_val, y_val)
    available = _fashion_mnist_builder(candidate).info.splits["train"].num_examples
    if num_train + num_val > available:
        raise ValueError(
            f"num_train + num_val must fit in fashion_mnist's {available} training images "
            f"(validation comes from their end), got {num_train} + {num_val}"
        )
    x_train, y_train = load_split("fashion_mnist", f"train[:{num_train}]", data_dir=candidate)
    x_val, y_val = load_split("fashion_mnist", f"train[-{num_val}:]", data_dir=candidate)
    return _image_data("fashion_mnist", dataset_text("fashion_mnist", candidate,
                                                     f"train[:{num_train}]", f"validation train[-{num_val}:]"),
                       x_train, y_train, x_val, y_val)


def fashion_mnist_dir(data_dir: str | None) -> str | None:
    """The data_dir holding a prepared fashion_mnist: `data_dir`, TFDS_DATA_DIR, else "" (TFDS's default).

    None where none holds it. TFDS_DATA_DIR is read here, when the study runs, because TFDS reads it
    only once, when it is first imported.
    """
    for candidate in dict.fromkeys([data_dir or "", os.environ.get("TFDS_DATA_DIR", ""), ""]):
        if _fashion_mnist_builder(candidate).is_prepared():
            return candidate
    return None


def _fashion_mnist_builder(data_dir: str):
    import tensorflow_datasets as tfds

    return tfds.builder("fashion_mnist", data_dir=data_dir or None)


def dataset_text(name: str, data_dir: str | None, *splits: str) -> str:
    """A dataset as a report names it: TFDS name, version and splits, never a path on this machine."""
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401  (registers the project's builders)

    version = tfds.builder(name, data_dir=data_dir or None).info.version
    return f"TFDS `{name}` {version}, " + ", ".join(splits)


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
    features, labels = tfds.load(name, split=split, data_dir=data_dir or None, batch_size=-1, as_supervised=True)
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


def stop_at(target: float):
    """A Keras callback that stops training once val_accuracy reaches `target` (steps to it are what is compared)."""
    import keras

    class StopAt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs=None) -> None:
            if (logs or {}).get("val_accuracy", 0.0) >= target:
                self.model.stop_training = True

    return StopAt()
