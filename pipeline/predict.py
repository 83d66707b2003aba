"""`pipeline predict`: call a trained model on image files, text lines, a JSON array or JSON records.

The model is the registered champion (default), a registered version number, or
a path to a `.keras` file. Inputs are raw, as the exported model takes them: its
first layers do the preprocessing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import tracking
from pipeline.config import ConfigError
from pipeline.names import ALIAS_CHAMPION, CLASS_NAMES_FILE, INPUT_INFO_FILE

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def load(model: str, name: str) -> tuple[Any, list[str], dict[str, Any]]:
    """The Keras model, its class names and what its raw input is."""
    import mlflow

    path = Path(model)
    if model.endswith(".keras") or path.exists():
        import keras

        if not path.is_file():
            raise ConfigError(f"--model {model!r} is not a .keras file")
        names_file, info_file = path.with_name(CLASS_NAMES_FILE), path.with_name(INPUT_INFO_FILE)
        names = json.loads(names_file.read_text()) if names_file.is_file() else []
        input_info = json.loads(info_file.read_text()) if info_file.is_file() else {}
        try:
            loaded = keras.saving.load_model(path, safe_mode=True)
        except ValueError as exc:
            # safe_mode refuses layers that would run arbitrary Python code (Lambda) on load.
            reason = str(exc).strip().splitlines()[0]
            raise ConfigError(f"refused to load {model}: {reason}") from None
        return loaded, names, input_info
    mlflow.set_tracking_uri(tracking.tracking_uri())
    if model == ALIAS_CHAMPION:
        uri = f"models:/{name}@{ALIAS_CHAMPION}"
    elif model.isdigit():
        uri = f"models:/{name}/{model}"
    else:
        raise ConfigError(f"--model {model!r} is neither 'champion', a version number, nor a .keras file")
    try:
        info = mlflow.models.get_model_info(uri)
    except Exception as exc:
        raise ConfigError(f"no model at {uri} ({type(exc).__name__}); run `pipeline run` first, "
                          "or pass --name and --model") from None
    metadata = info.metadata or {}
    return mlflow.keras.load_model(uri), metadata.get("class_names", []), metadata.get("input", {})


def _image(path: Path, shape: tuple[int, ...], raw_max: float | None) -> np.ndarray:
    """An image file as the model's raw input: resized, grey or RGB, 8-bit levels scaled to the data's range."""
    from PIL import Image

    height, width = shape[0], shape[1]
    channels = shape[2] if len(shape) == 3 else None
    with Image.open(path) as image:
        image = image.convert("RGB" if channels == 3 else "L").resize((width, height))
        pixels = np.asarray(image, dtype=np.float32)
    if raw_max and raw_max != 255:
        pixels = pixels * (raw_max / 255.0)  # e.g. digits stores grey levels 0-16
    if len(shape) == 3 and channels == 1:
        pixels = pixels[..., None]
    return pixels


_COLUMN_DTYPES = {"numeric": np.float32, "integer_categorical": np.int64, "string_categorical": object}


def read_records(items: list[str], columns: dict[str, str]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Tabular inputs: a JSON object or a JSON array of objects (inline or in a .json file), one key per column."""
    text = " ".join(items)
    if len(items) == 1 and items[0].endswith(".json"):
        text = Path(items[0]).read_text()
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"the model takes records of named columns: give a JSON object or array of objects "
                          f"with keys {', '.join(columns)} ({exc})") from None
    rows = [rows] if isinstance(rows, dict) else rows
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise ConfigError(f"the model takes records of named columns: give a JSON object or array of objects "
                          f"with keys {', '.join(columns)}")
    for index, row in enumerate(rows):
        missing = sorted(set(columns) - set(row))
        if missing:
            raise ConfigError(f"record #{index} lacks column(s) {', '.join(missing)}; every record needs "
                              f"{', '.join(columns)}")
    arrays = {}
    for name, kind in columns.items():
        values = [row[name] for row in rows]
        arrays[name] = np.array([str(v) for v in values], dtype=object) if kind == "string_categorical" \
            else np.asarray(values, dtype=_COLUMN_DTYPES[kind])
    return arrays, [f"#{i}" for i in range(len(rows))]


def read_inputs(items: list[str], shape: tuple[int, ...], dtype: str,
                raw_max: float | None = None) -> tuple[np.ndarray, list[str]]:
    """Raw model inputs and a label per input for the printout."""
    if len(items) == 1 and (items[0].lstrip().startswith("[") or items[0].endswith(".json")):
        text = Path(items[0]).read_text() if items[0].endswith(".json") else items[0]
        values = np.asarray(json.loads(text), dtype=object if dtype == "string" else np.float32)
        return values, [f"#{i}" for i in range(len(values))]
    if dtype == "string":
        lines: list[str] = []
        for item in items:
            path = Path(item)
            lines.extend(path.read_text().splitlines() if path.suffix == ".txt" and path.is_file() else [item])
        lines = [line for line in lines if line.strip()]
        return np.asarray(lines, dtype=object), lines
    images = []
    for item in items:
        path = Path(item)
        if path.suffix.lower() not in IMAGE_SUFFIXES or not path.is_file():
            raise ConfigError(f"{item!r} is not an image file ({', '.join(IMAGE_SUFFIXES)}) and the model takes images")
        images.append(_image(path, shape, raw_max))
    return np.stack(images), items


def predict(items: list[str], model: str, name: str, top: int) -> list[dict[str, Any]]:
    keras_model, class_names, input_info = load(model, name)
    if input_info.get("kind") == "tabular":
        inputs, labels = read_records(items, input_info["columns"])
    else:
        spec = keras_model.inputs[0]
        inputs, labels = read_inputs(items, tuple(spec.shape[1:]), str(spec.dtype), input_info.get("raw_max"))
    probabilities = np.asarray(keras_model.predict(inputs, verbose=0))
    if input_info.get("task") == "regression":
        return [{"input": label, "value": float(row[0])} for label, row in zip(labels, probabilities)]
    results = []
    for label, row in zip(labels, probabilities):
        order = np.argsort(-row)[:top]
        results.append({"input": label, "top": [
            {"class": class_names[i] if i < len(class_names) else str(i), "index": int(i),
             "probability": float(row[i])} for i in order]})
    return results


def command(items: list[str], model: str, name: str, top: int, as_json: bool) -> int:
    results = predict(items, model, name, top)
    if as_json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    for result in results:
        if "value" in result:
            print(f"{result['input']}: {result['value']:.6g}")
            continue
        best = ", ".join(f"{t['class']} ({t['probability']:.3f})" for t in result["top"])
        print(f"{result['input']}: {best}")
    return 0
