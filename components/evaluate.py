"""Evaluate: test metrics and plots, and the Blessing that decides whether the model ships.

The candidate is the exported model (raw inputs in), scored on the raw test
split exactly as a user would call it. The current champion, when there is one
other than this very model, is re-scored on the same split. The candidate is
blessed when it clears the [evaluate] thresholds and is not worse than the
champion by more than `max_regression`; the Blessing says why, in words and numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components import examples as ex
from components import metrics as accumulate
from components import records
from components.properties import EvaluationProperties
from pipeline.artifacts import Artifact, write_json
from pipeline.config import Config
from pipeline.names import (
    ATTENTION_PNG,
    BLESSING_FILE,
    CONFUSION_JSON,
    CONFUSION_PNG,
    METRICS_FILE,
    MODEL_FILE,
    PER_CLASS_JSON,
    PREDICTIONS_PNG,
    SLICES_JSON,
    TAG_BLESSING,
)

BATCH = 1024  # test examples per prediction step


def key_metric(task: str) -> tuple[str, str]:
    """(the metric the champion comparison uses, which direction is better)."""
    return ("accuracy", "higher") if task == "classification" else ("mae", "lower")


def _thresholds(candidate: dict[str, Any], config: Config, task: str) -> tuple[bool, list[str]]:
    """Whether the candidate clears every configured threshold, and each check in words."""
    rules = config.evaluate
    if task == "classification":
        value = candidate["accuracy"]
        clears = value >= rules.min_accuracy
        return clears, [f"accuracy {value:.4f} {'>=' if clears else '<'} min_accuracy {rules.min_accuracy}"]
    checks = [(name, candidate[metric], limit, upper) for name, metric, limit, upper, active in (
        ("max_loss", "mse", rules.max_loss, True, rules.max_loss > 0),
        ("max_mae", "mae", rules.max_mae, True, rules.max_mae > 0),
        ("min_r2", "r2", rules.min_r2, False, rules.min_r2 > -1e9),
    ) if active]
    if not checks:
        return True, ["no regression threshold set (evaluate.max_mae, min_r2, max_loss)"]
    words, clears = [], True
    for name, value, limit, upper, in checks:
        ok = value <= limit if upper else value >= limit
        clears = clears and ok
        sign = ("<=" if ok else ">") if upper else (">=" if ok else "<")
        words.append(f"{'mse' if name == 'max_loss' else name[4:]} {value:.4f} {sign} {name} {limit}")
    return clears, words


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, config: Config, task: str) -> dict[str, Any]:
    """The blessing verdict with its reason: thresholds, then no worse than the champion by max_regression."""
    rules = config.evaluate
    name, better = key_metric(task)
    value = candidate[name]
    clears, reasons = _thresholds(candidate, config, task)
    verdict: dict[str, Any] = {"metric": name, "candidate": value, "threshold_ok": clears}
    regression_ok = True
    if champion is not None:
        reference = champion["metrics"][name]
        delta = (reference - value) if better == "higher" else (value - reference)  # > 0: candidate is worse
        regression_ok = delta <= rules.max_regression
        verdict.update({"champion_version": champion["version"], "champion": reference, "worse_by": delta})
        reasons.append(f"{'worse' if delta > 0 else 'not worse'} than champion version {champion['version']} "
                       f"({name} {reference:.4f}) by {max(delta, 0):.4f}, "
                       f"{'within' if regression_ok else 'beyond'} max_regression {rules.max_regression}")
    else:
        reasons.append("no champion yet: thresholds alone decide")
    verdict["blessed"] = bool(clears and regression_ok)
    verdict["reason"] = ("blessed: " if verdict["blessed"] else "not blessed: ") + "; ".join(reasons)
    return verdict


def _load_champion(config: Config, key: str | None):
    if not key or key == "none":
        return None, None
    import mlflow

    version = key.removeprefix("version-")
    return version, mlflow.keras.load_model(f"models:/{config.pipeline.name}/{version}")


def score(examples: Artifact, models: list[Any], config: Config) -> tuple[list[Any], Any, np.ndarray]:
    """Stream the test split once through every model; returns (their accumulators, the candidate's slices,
    the first raw test inputs). Models take raw inputs: arrays, or dicts of named tabular columns."""
    spec = ex.spec(examples)
    task = spec["task"]
    scores = [accumulate.for_task(task, num_classes=spec["num_classes"], top_k=config.evaluate.top_k,
                                  expected=spec["counts"]["test"]) for _ in models]
    slices = accumulate.Slices() if spec["slice_feature"] and task == "classification" else None
    first = None
    stream = records.dataset(ex.paths(examples.path, spec, "test"), ex.columns(spec), batch_size=BATCH)
    for batch in stream:
        inputs = ex.raw_inputs(batch, spec)
        labels = batch[ex.LABEL].numpy()
        if first is None:
            first = {k: v.numpy() for k, v in inputs.items()} if isinstance(inputs, dict) else inputs.numpy()
        for model, accumulator in zip(models, scores):
            outputs = np.asarray(model.predict_on_batch(inputs))
            accumulator.update(outputs, labels)
            if slices is not None and accumulator is scores[0]:
                slices.update(outputs, labels, np.array([v.decode("utf-8") for v in batch[ex.SLICE].numpy()]))
    return scores, slices, first


def _attention_figure(model, raw: np.ndarray, spec: dict[str, Any], path: Path) -> Path | None:
    """Attention weights over the time steps of a few test examples, when the model has attention."""
    import keras

    import models
    from components.plots import plot_attention

    core = next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)
    if core is None:
        return None
    try:
        weights_model = models.attention_weights_model(core)
    except ValueError:
        return None  # no attention in this model
    if raw.dtype.kind in "OSU":
        raw = np.array([v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in raw], dtype=object)
    steps = raw if raw.dtype == object else raw.astype(np.float32)
    preprocessing = [layer for layer in model.layers if not isinstance(layer, (keras.layers.InputLayer, keras.Model))]
    for layer in preprocessing:
        steps = layer(steps)
    weights = np.asarray(weights_model.predict(steps, verbose=0))
    if spec["kind"] == "text":
        vocabulary = preprocessing[-1].get_vocabulary()
        ids = np.asarray(steps)
        positions = [[vocabulary[i] for i in row if i != 0] or ["(empty)"] for row in ids]
        titles = [str(text) for text in raw]
    else:
        positions = [[f"row {i}" for i in range(weights.shape[1])] for _ in raw]
        titles = [f"test example {i}" for i in range(len(raw))]
    return plot_attention(weights, positions, titles, path)


def run(model_artifact: Artifact, examples: Artifact, config: Config, out: Path, *,
        champion: str | None = None) -> EvaluationProperties:
    import keras
    import mlflow

    from components.plots import plot_confusion_matrix, plot_predictions

    spec = ex.spec(examples)
    task = spec["task"]
    ex.log_inputs(spec, examples.path, {"test": "evaluation"})
    model = keras.saving.load_model(model_artifact.file(MODEL_FILE), safe_mode=True)
    version, champion_model = _load_champion(config, champion)
    scored, slices, first = score(examples, [model] + ([champion_model] if champion_model is not None else []), config)
    metrics = scored[0].result()
    reference = {"version": version, "metrics": scored[1].result()} if champion_model is not None else None
    blessing = decide(metrics, reference, config, task)

    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    mlflow.log_metrics({**scalars, "blessed": float(blessing["blessed"])})
    if reference is not None:
        mlflow.log_metrics({f"champion_{k}": v for k, v in reference["metrics"].items() if isinstance(v, (int, float))})
    mlflow.set_tag(TAG_BLESSING, blessing["reason"])

    if task == "classification":
        matrix = np.asarray(metrics["confusion_matrix"])
        write_json(out / CONFUSION_JSON, {"class_names": spec["class_names"], "matrix": matrix})
        plot_confusion_matrix(matrix, spec["class_names"], out / CONFUSION_PNG)
        per_class = [{"class": name, **{k: metrics["per_class"][k][i] for k in metrics["per_class"]}}
                     for i, name in enumerate(spec["class_names"])]
        write_json(out / PER_CLASS_JSON, per_class)
        mlflow.log_table({k: [row[k] for row in per_class] for k in per_class[0]}, PER_CLASS_JSON)
        mlflow.log_artifact(str(out / CONFUSION_PNG))
        mlflow.log_artifact(str(out / CONFUSION_JSON))
        if slices is not None:
            rows = slices.result()
            write_json(out / SLICES_JSON, rows)
            mlflow.log_table({k: [row[k] for row in rows] for k in rows[0]}, SLICES_JSON)
    else:
        figure = plot_predictions(np.asarray(scored[0].points), metrics, out / PREDICTIONS_PNG)
        mlflow.log_artifact(str(figure))
    if spec["kind"] != "tabular":
        attention = _attention_figure(model, first[:6], spec, out / ATTENTION_PNG)
        if attention is not None:
            mlflow.log_artifact(str(attention))
    write_json(out / METRICS_FILE, metrics)
    write_json(out / BLESSING_FILE, blessing)
    mlflow.log_dict(blessing, BLESSING_FILE)
    return EvaluationProperties(metrics=scalars, task=task, blessed=blessing["blessed"], reason=blessing["reason"],
                                champion_version=blessing.get("champion_version"))
