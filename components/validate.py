"""Validate: statistics per split, a schema inferred from train, anomalies against it.

What TFX's StatisticsGen, SchemaGen and ExampleValidator do, for the three kinds
of feature the pipeline reads (images, text, numeric sequences). Anomalies have
a severity: any "error" fails the stage after the report is written and logged,
so the user sees exactly what is wrong before a model is trained on it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import Artifact, read_json, write_json
from pipeline.config import DataConfig
from pipeline.names import ANOMALIES_FILE, SCHEMA_FILE, SPEC_FILE, SPLITS, STATISTICS_FILE, VALIDATION_REPORT


class ValidationFailed(RuntimeError):
    """The data violate the schema; the message lists the error anomalies."""


_TOKEN_RE = re.compile(r"[a-z0-9']+")


def tokenize(text: str) -> list[str]:
    """The whitespace-and-punctuation split the text statistics use (lower-cased)."""
    return _TOKEN_RE.findall(text.lower())


def load_split(examples: Artifact, split: str) -> dict[str, np.ndarray]:
    with np.load(examples.file(f"{split}.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _numeric_stats(x: np.ndarray) -> dict[str, Any]:
    values = x.astype(np.float64)
    finite = values[np.isfinite(values)]
    return {
        "shape": list(x.shape[1:]),
        "dtype": str(x.dtype),
        "min": float(finite.min()) if finite.size else None,
        "max": float(finite.max()) if finite.size else None,
        "mean": float(finite.mean()) if finite.size else None,
        "std": float(finite.std()) if finite.size else None,
        "zeros_share": float(np.mean(values == 0)) if values.size else 0.0,
        "nan_count": int(np.isnan(values).sum()),
    }


def _text_stats(x: np.ndarray, train_vocab: set[str] | None) -> dict[str, Any]:
    lengths = np.array([len(tokenize(str(t))) for t in x]) if len(x) else np.zeros(0)
    stats: dict[str, Any] = {
        "shape": [],
        "dtype": "string",
        "length_min": int(lengths.min()) if lengths.size else 0,
        "length_mean": float(lengths.mean()) if lengths.size else 0.0,
        "length_p50": float(np.percentile(lengths, 50)) if lengths.size else 0.0,
        "length_p95": float(np.percentile(lengths, 95)) if lengths.size else 0.0,
        "length_max": int(lengths.max()) if lengths.size else 0,
        "empty_count": int((lengths == 0).sum()),
    }
    if train_vocab is not None:
        tokens = [token for text in x for token in tokenize(str(text))]
        stats["oov_rate"] = float(np.mean([t not in train_vocab for t in tokens])) if tokens else 0.0
    return stats


def _label_distribution(y: np.ndarray, num_classes: int) -> list[float]:
    if num_classes == 0 or len(y) == 0:
        return []
    counts = np.bincount(np.clip(y.astype(np.int64), 0, None), minlength=num_classes)[:num_classes]
    return (counts / max(len(y), 1)).tolist()


def compute_statistics(examples: Artifact, spec: dict[str, Any]) -> dict[str, Any]:
    statistics: dict[str, Any] = {}
    train_vocab: set[str] | None = None
    for split in SPLITS:
        data = load_split(examples, split)
        x, y = data["x"], data["y"]
        if spec["kind"] == "text":
            feature = _text_stats(x, train_vocab)
            if split == "train":
                train_vocab = {token for text in x for token in tokenize(str(text))}
        else:
            feature = _numeric_stats(x)
        label: dict[str, Any] = {"dtype": str(y.dtype), "min": float(y.min()) if len(y) else None,
                                 "max": float(y.max()) if len(y) else None}
        label["distribution"] = _label_distribution(y, spec["num_classes"])
        statistics[split] = {"count": int(len(y)), "feature": feature, "label": label}
    return statistics


def infer_schema(spec: dict[str, Any], train: dict[str, Any]) -> dict[str, Any]:
    """What every split must look like, learned from the train split alone."""
    feature = train["feature"]
    schema: dict[str, Any] = {
        "kind": spec["kind"],
        "shape": feature["shape"],
        "dtype": feature["dtype"],
        "task": spec["task"],
    }
    if spec["kind"] != "text":
        schema["min"], schema["max"] = feature["min"], feature["max"]
    if spec["task"] == "classification":
        schema["label_values"] = [0, spec["num_classes"] - 1]
    return schema


def find_anomalies(statistics: dict[str, Any], schema: dict[str, Any], max_label_drift: float) -> list[dict[str, Any]]:
    anomalies = []

    def add(split: str, kind: str, severity: str, description: str) -> None:
        anomalies.append({"split": split, "kind": kind, "severity": severity, "description": description})

    for split in SPLITS:
        stats = statistics[split]
        feature, label = stats["feature"], stats["label"]
        if stats["count"] == 0:
            add(split, "empty_split", "error", "the split has no examples")
            continue
        if feature["shape"] != schema["shape"]:
            add(split, "shape_mismatch", "error", f"feature shape {feature['shape']} != schema {schema['shape']}")
        if feature["dtype"] != schema["dtype"]:
            add(split, "dtype_mismatch", "error", f"feature dtype {feature['dtype']} != schema {schema['dtype']}")
        if feature.get("nan_count"):
            add(split, "nan_values", "error", f"{feature['nan_count']} NaN values in the feature")
        if schema["kind"] != "text" and feature.get("min") is not None and split != "train":
            if feature["min"] < schema["min"] or feature["max"] > schema["max"]:
                add(split, "value_out_of_range", "warning",
                    f"values span [{feature['min']:g}, {feature['max']:g}], train spans [{schema['min']:g}, {schema['max']:g}]")
        if feature.get("empty_count"):
            add(split, "empty_text", "warning", f"{feature['empty_count']} examples have no tokens")
        if "label_values" in schema and label["min"] is not None:
            low, high = schema["label_values"]
            if label["min"] < low or label["max"] > high:
                add(split, "label_out_of_schema", "error",
                    f"labels span [{label['min']:g}, {label['max']:g}], schema allows [{low}, {high}]")
    train_dist = statistics["train"]["label"]["distribution"]
    for split in ("validation", "test"):
        other = statistics[split]["label"]["distribution"]
        if train_dist and other and statistics[split]["count"]:
            drift = float(np.max(np.abs(np.array(train_dist) - np.array(other))))
            statistics[split]["label"]["linf_drift_vs_train"] = drift
            if drift > max_label_drift:
                add(split, "label_drift", "error",
                    f"label distribution drifts {drift:.3f} (L-infinity) from train, above data.max_label_drift = {max_label_drift}")
    return anomalies


def _report(spec: dict[str, Any], statistics: dict[str, Any], anomalies: list[dict[str, Any]]) -> str:
    lines = [f"# Data validation: {spec['dataset']} ({spec['version']})", "",
             f"Feature `{spec['feature']}` ({spec['kind']}, shape {spec['shape']}, {spec['dtype']}); "
             f"label `{spec['label']}` ({spec['task']}, {spec['num_classes']} classes).", "",
             "| split | expression | count | feature summary | label drift vs train |", "| --- | --- | --- | --- | --- |"]
    for split in SPLITS:
        stats = statistics[split]
        feature = stats["feature"]
        if spec["kind"] == "text":
            summary = f"tokens mean {feature['length_mean']:.1f}, p95 {feature['length_p95']:.0f}, max {feature['length_max']}"
            if "oov_rate" in feature:
                summary += f", OOV {feature['oov_rate']:.3f}"
        else:
            summary = (f"min {feature['min']:g}, max {feature['max']:g}, mean {feature['mean']:.3f}, "
                       f"std {feature['std']:.3f}, zeros {feature['zeros_share']:.2f}") if feature["min"] is not None else "empty"
        drift = stats["label"].get("linf_drift_vs_train")
        lines.append(f"| {split} | `{spec['splits'][split]}` | {stats['count']} | {summary} | "
                     f"{'' if drift is None else f'{drift:.3f}'} |")
    lines += ["", "## Anomalies", ""]
    if not anomalies:
        lines.append("None: every split matches the schema inferred from train.")
    for anomaly in anomalies:
        lines.append(f"- **{anomaly['severity']}** `{anomaly['kind']}` in {anomaly['split']}: {anomaly['description']}")
    return "\n".join(lines) + "\n"


def run(examples: Artifact, config: DataConfig, out: Path) -> dict[str, Any]:
    import mlflow

    spec = read_json(examples.file(SPEC_FILE))
    statistics = compute_statistics(examples, spec)
    schema = infer_schema(spec, statistics["train"])
    anomalies = find_anomalies(statistics, schema, config.max_label_drift)
    write_json(out / STATISTICS_FILE, statistics)
    write_json(out / SCHEMA_FILE, schema)
    write_json(out / ANOMALIES_FILE, anomalies)
    report = _report(spec, statistics, anomalies)
    (out / VALIDATION_REPORT).write_text(report)

    errors = [a for a in anomalies if a["severity"] == "error"]
    metrics = {f"{split}.count": statistics[split]["count"] for split in SPLITS}
    metrics.update({"anomalies.errors": len(errors), "anomalies.warnings": len(anomalies) - len(errors)})
    for split in ("validation", "test"):
        drift = statistics[split]["label"].get("linf_drift_vs_train")
        if drift is not None:
            metrics[f"{split}.label_drift"] = drift
        if "oov_rate" in statistics[split]["feature"]:
            metrics[f"{split}.oov_rate"] = statistics[split]["feature"]["oov_rate"]
    mlflow.log_metrics(metrics)
    mlflow.log_text(report, VALIDATION_REPORT)
    mlflow.log_dict(schema, SCHEMA_FILE)
    mlflow.log_dict({"anomalies": anomalies}, ANOMALIES_FILE)
    if errors:
        listed = "; ".join(f"{a['kind']} in {a['split']} ({a['description']})" for a in errors)
        raise ValidationFailed(f"data validation found {len(errors)} error anomal{'y' if len(errors) == 1 else 'ies'}: {listed}")
    return {"anomalies": len(anomalies), "counts": {s: statistics[s]["count"] for s in SPLITS}}
