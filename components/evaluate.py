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

from components.metrics import classification_metrics, regression_metrics, sliced_metrics
from components.validate import load_split
from pipeline.artifacts import Artifact, read_json, write_json
from pipeline.config import Config
from pipeline.names import BLESSING_FILE, CONFUSION_JSON, CONFUSION_PNG, METRICS_FILE, MODEL_FILE, SPEC_FILE


def predict(model, x: np.ndarray) -> np.ndarray:
    if x.dtype.kind == "U":
        x = x.astype(object)  # Keras takes strings as object arrays, not fixed-width unicode
    return np.asarray(model.predict(x, batch_size=1024, verbose=0))


def metrics_for(outputs: np.ndarray, y: np.ndarray, spec: dict[str, Any], top_k: int) -> dict[str, Any]:
    if spec["task"] == "classification":
        return classification_metrics(outputs, y, top_k=top_k)
    return regression_metrics(outputs, y)


def decide(candidate: dict[str, Any], champion: dict[str, Any] | None, config: Config, task: str) -> dict[str, Any]:
    """The blessing verdict with its reason."""
    rules = config.evaluate
    if task == "classification":
        name, value, better = "accuracy", candidate["accuracy"], "higher"
        clears = value >= rules.min_accuracy
        threshold = f"accuracy {value:.4f} {'>=' if clears else '<'} min_accuracy {rules.min_accuracy}"
    else:
        name, value, better = "mse", candidate["mse"], "lower"
        clears = rules.max_loss == 0 or value <= rules.max_loss
        threshold = f"mse {value:.4f} {'<=' if clears else '>'} max_loss {rules.max_loss}" if rules.max_loss else "no max_loss set"
    verdict: dict[str, Any] = {"metric": name, "candidate": value, "threshold_ok": clears}
    reasons = [threshold]
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


def _champion(config: Config, key: str | None, test: dict[str, np.ndarray], spec: dict[str, Any]) -> dict[str, Any] | None:
    if not key or key == "none":
        return None
    import mlflow

    version = key.removeprefix("version-")
    model = mlflow.keras.load_model(f"models:/{config.pipeline.name}/{version}")
    outputs = predict(model, test["x"])
    return {"version": version, "metrics": metrics_for(outputs, test["y"], spec, config.evaluate.top_k)}


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
    steps = raw.astype(object) if raw.dtype.kind == "U" else raw.astype(np.float32)
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
        champion: str | None = None) -> dict[str, Any]:
    import keras
    import mlflow

    from components.plots import plot_confusion_matrix

    spec = read_json(examples.file(SPEC_FILE))
    test = load_split(examples, "test")
    model = keras.saving.load_model(model_artifact.file(MODEL_FILE), safe_mode=True)
    outputs = predict(model, test["x"])
    metrics = metrics_for(outputs, test["y"], spec, config.evaluate.top_k)
    reference = _champion(config, champion, test, spec)
    blessing = decide(metrics, reference, config, spec["task"])

    scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    mlflow.log_metrics({**scalars, "blessed": float(blessing["blessed"])})
    if reference is not None:
        mlflow.log_metrics({f"champion_{k}": v for k, v in reference["metrics"].items() if isinstance(v, (int, float))})
    mlflow.set_tag("pipeline.blessing", blessing["reason"])

    if spec["task"] == "classification":
        matrix = np.asarray(metrics["confusion_matrix"])
        write_json(out / CONFUSION_JSON, {"class_names": spec["class_names"], "matrix": matrix})
        plot_confusion_matrix(matrix, spec["class_names"], out / CONFUSION_PNG)
        per_class = [{"class": name, **{k: metrics["per_class"][k][i] for k in metrics["per_class"]}}
                     for i, name in enumerate(spec["class_names"])]
        write_json(out / "per_class.json", per_class)
        mlflow.log_table({k: [row[k] for row in per_class] for k in per_class[0]}, "per_class.json")
        mlflow.log_artifact(str(out / CONFUSION_PNG))
        mlflow.log_artifact(str(out / CONFUSION_JSON))
        if "slice" in test:
            slices = sliced_metrics(outputs, test["y"], test["slice"])
            write_json(out / "slices.json", slices)
            mlflow.log_table({k: [row[k] for row in slices] for k in slices[0]}, "slices.json")
    attention = _attention_figure(model, test["x"][:6], spec, out / "attention_weights.png")
    if attention is not None:
        mlflow.log_artifact(str(attention))
    write_json(out / METRICS_FILE, metrics)
    write_json(out / BLESSING_FILE, blessing)
    mlflow.log_dict(blessing, BLESSING_FILE)
    return {"metrics": scalars, "blessed": blessing["blessed"], "reason": blessing["reason"],
            "champion_version": blessing.get("champion_version")}
