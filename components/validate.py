"""Validate: statistics per split in one streaming pass, a schema inferred from train, anomalies against it.

What TFX's StatisticsGen, SchemaGen and ExampleValidator do, for every kind of
feature the pipeline reads (images, text, numeric vectors and sequences, tabular
columns). Each split is read once, batch by batch, into mergeable accumulators
(components/split_statistics.py), so memory does not grow with the split. Anomalies
have a severity: any "error" fails the stage after the report is written and
logged, so the user sees exactly what is wrong before a model is trained on it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from components import examples as ex
from components.split_statistics import split_accumulator, summarize
from components.properties import StatisticsProperties
from pipeline.artifacts import Artifact, write_json
from pipeline.config import BeamConfig, DataConfig
from pipeline.names import ANOMALIES_FILE, SCHEMA_FILE, SPLITS, STATISTICS_FILE, VALIDATION_REPORT


STATISTICS_RUNNER_PARAM = "statistics_runner"  # the validate run's param: beam.runner, "none" = in-process


class ValidationFailed(RuntimeError):
    """The data violate the schema; the message lists the error anomalies."""


def _split_statistics(examples: Artifact, spec: dict[str, Any], split: str,
                      train_vocabulary: frozenset[str] | None) -> tuple[dict[str, Any], frozenset[str] | None]:
    accumulator = split_accumulator(spec, split, train_vocabulary)
    for batch in ex.iterate(examples, split):
        accumulator.update(batch)
    return summarize(accumulator, spec, split)


def compute_statistics(examples: Artifact, spec: dict[str, Any]) -> dict[str, Any]:
    """Every split's statistics, each from one streaming pass; text OOV rates are against train's vocabulary."""
    statistics: dict[str, Any] = {}
    vocabulary: frozenset[str] | None = None
    for split in SPLITS:
        statistics[split], found = _split_statistics(examples, spec, split, vocabulary)
        vocabulary = found if split == "train" else vocabulary
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
    if spec["kind"] == "tabular":
        schema["columns"] = {name: {"type": spec["tabular"][name], **({"min": stats["min"], "max": stats["max"]}
                                                                     if "min" in stats else {})}
                             for name, stats in feature["columns"].items()}
    elif spec["kind"] != "text":
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
        ranges = [(f"column {name!r} ", stats, schema["columns"][name]) for name, stats in feature.get("columns", {}).items()
                  if stats.get("min") is not None and schema["columns"].get(name, {}).get("min") is not None]
        if "min" in schema and feature.get("min") is not None:
            ranges.append(("", feature, schema))
        for what, found, allowed in ranges if split != "train" else ():
            if found["min"] < allowed["min"] or found["max"] > allowed["max"]:
                add(split, "value_out_of_range", "warning",
                    f"{what}values span [{found['min']:g}, {found['max']:g}], train spans "
                    f"[{allowed['min']:g}, {allowed['max']:g}]")
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
    classes = f", {spec['num_classes']} classes" if spec["task"] == "classification" else ""
    lines = [f"# Data validation: {spec['dataset']} ({spec['version']})", "",
             f"Feature `{spec['feature']}` ({spec['kind']}, shape {spec['shape']}, {spec['dtype']}); "
             f"label `{spec['label']}` ({spec['task']}{classes}).", "",
             "| split | expression | count | feature summary | label drift vs train |", "| --- | --- | --- | --- | --- |"]
    for split in SPLITS:
        stats = statistics[split]
        feature = stats["feature"]
        if spec["kind"] == "tabular":
            kinds = Counter(spec["tabular"].values())
            summary = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
            summary += f" columns, {feature['nan_count']} NaN"
        elif spec["kind"] == "text":
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


def run(examples: Artifact, config: DataConfig, out: Path, beam: BeamConfig | None = None) -> StatisticsProperties:
    """Statistics, schema and anomalies of the examples; `beam` ([beam] config) runs the statistics on Beam."""
    import mlflow

    spec = ex.spec(examples)
    runner = "none" if beam is None else beam.runner
    if runner != "none":
        from components import beam_statistics

        statistics = beam_statistics.compute_statistics(examples, spec, beam)
    else:
        statistics = compute_statistics(examples, spec)
    # [beam] is in no fingerprint, so the run says which engine computed what a later run may reuse.
    mlflow.log_param(STATISTICS_RUNNER_PARAM, runner)
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
    return StatisticsProperties(anomalies=len(anomalies), counts={s: statistics[s]["count"] for s in SPLITS})
