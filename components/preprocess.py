"""Preprocess: Keras preprocessing layers adapted on train only, and the transformed splits.

Images and numeric sequences get a `Normalization` layer; text gets a
`TextVectorization` layer (vocabulary and sequence length from [data]). The
adapted layer is saved as `transform.keras` so train can put it in front of the
model it exports: the served model takes raw inputs, and training never sees
statistics from validation or test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from components.validate import load_split
from pipeline.artifacts import Artifact, read_json
from pipeline.config import DataConfig
from pipeline.names import RAW_SAMPLE, SPEC_FILE, SPLITS, TRANSFORM_MODEL


def build_layer(spec: dict[str, Any], config: DataConfig, train_x: np.ndarray):
    """Create and adapt the preprocessing layer for this kind of feature, on train data only."""
    import keras

    if spec["kind"] == "text":
        layer = keras.layers.TextVectorization(
            max_tokens=config.vocab_size,
            output_sequence_length=config.sequence_length,
            standardize="lower_and_strip_punctuation",
            name="text_vectorization",
        )
        layer.adapt(train_x)
        return layer
    # Images share one mean/variance over all pixels (constant border pixels would get a zero
    # variance per pixel); numeric sequences are normalised per input feature.
    axis = -1 if spec["kind"] == "sequence" else None
    layer = keras.layers.Normalization(axis=axis, name="normalization")
    layer.adapt(train_x.astype(np.float32))
    return layer


def transform(layer, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Apply the adapted layer in batches (bounded memory on large splits)."""
    if len(x) == 0:
        return np.zeros((0,), dtype=np.float32)
    parts = []
    for start in range(0, len(x), batch_size):
        chunk = x[start : start + batch_size]
        if chunk.dtype.kind != "U":
            chunk = chunk.astype(np.float32)
        parts.append(np.asarray(layer(chunk)))
    return np.concatenate(parts)


def run(examples: Artifact, config: DataConfig, out: Path) -> dict[str, Any]:
    import keras
    import mlflow

    spec = read_json(examples.file(SPEC_FILE))
    train = load_split(examples, "train")
    layer = build_layer(spec, config, train["x"])

    raw_shape = tuple(spec["shape"])
    raw_dtype = "string" if spec["kind"] == "text" else spec["dtype"]
    holder = keras.Sequential([keras.Input(shape=raw_shape, dtype=raw_dtype if raw_dtype == "string" else "float32"),
                               layer], name="transform")
    holder.save(out / TRANSFORM_MODEL)
    np.savez(out / RAW_SAMPLE, x=train["x"][:8])

    for split in SPLITS:
        data = train if split == "train" else load_split(examples, split)
        payload = {"x": transform(layer, data["x"]), "y": data["y"]}
        if "slice" in data:
            payload["slice"] = data["slice"]
        np.savez(out / f"{split}.npz", **payload)

    properties: dict[str, Any] = {
        "input_kind": "tokens" if spec["kind"] == "text" else spec["kind"],
        "input_shape": [config.sequence_length] if spec["kind"] == "text" else list(raw_shape),
        "raw_shape": list(raw_shape),
        "raw_dtype": raw_dtype,
        "num_classes": spec["num_classes"],
        "class_names": spec["class_names"],
        "layer": layer.name,
    }
    if spec["kind"] == "text":
        vocabulary = layer.get_vocabulary()
        properties["vocab_size"] = len(vocabulary)
        mlflow.log_metric("vocabulary_size", len(vocabulary))
        mlflow.log_text("\n".join(vocabulary), "vocabulary.txt")
    else:
        properties["raw_max"] = float(np.max(train["x"])) if len(train["x"]) else 0.0
        mean = float(np.mean(np.asarray(layer.mean)))
        std = float(np.sqrt(np.mean(np.asarray(layer.variance))))
        properties.update({"mean": mean, "std": std})
        mlflow.log_metrics({"train_mean": mean, "train_std": std})
    return properties
