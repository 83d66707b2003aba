"""Saved models load, with safe_mode, in a fresh Python process that never imports `models`.

That is how users and `mlflow models serve` load what the pipeline exports, so
every layer must be a built-in Keras layer: Keras finds a registered custom
class only once its defining module was imported, and safe_mode refuses
Lambda layers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import models

# Runs in the fresh process, in the folder that will hold NAME.keras and
# NAME_x.npy. It imports TensorFlow while the test builds and saves the models,
# then reads {NAME: inputs are strings} from stdin. Importing the project there
# fails loudly (the editable install would otherwise make it importable), and
# it must not have been imported at all.
_LOADER = """
import json, sys

class NoProject:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "models":
            raise ImportError(f"the fresh process imported {name}")
        return None

sys.meta_path.insert(0, NoProject())
import keras, numpy as np, tensorflow as tf

for name, is_text in json.loads(sys.stdin.read()).items():
    model = keras.saving.load_model(f"{name}.keras", safe_mode=True)
    x = np.load(f"{name}_x.npy")
    if is_text:
        x = tf.constant(x)  # Keras's array adapter rejects numpy unicode arrays
    np.save(f"{name}_loaded.npy", model.predict(x, verbose=0))
    if name == "gru_additive":
        # The attention weights stay reachable without attention_weights_model.
        weights = model.get_layer("attention_pooling").output[1]
        np.save(f"{name}_weights.npy", keras.Model(model.input, weights).predict(x, verbose=0))
assert "models" not in sys.modules, "models was imported"
"""

# Ids 1..10 are words, 0 is padding; the last row is all padding.
_TOKENS = np.array(
    [[3, 4, 5, 0, 0, 0], [5, 6, 7, 8, 9, 1], [2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
    dtype="int32",
)
# The empty string vectorizes to all padding.
_TEXTS = np.array(["the cat sat", "a dog ran far away", "cat", "the dog sat", "a cat ran", ""])


def _token_core(
    encoder: str, attention: str, *, length: int = 6, vocab_size: int = 11, **kwargs
) -> keras.Model:
    return models.build_model(
        input_shape=(length,),
        input_kind="tokens",
        num_classes=2,
        encoder=encoder,
        attention=attention,
        units=4,
        embedding_dim=3,
        vocab_size=vocab_size,
        seed=0,
        **kwargs,
    )


def _image_model(rng: np.random.Generator) -> tuple[keras.Model, np.ndarray]:
    raw = rng.integers(0, 256, size=(8, 6, 5), dtype=np.uint8)
    normalization = keras.layers.Normalization(axis=None)
    normalization.adapt(raw.astype("float32"))
    core = models.build_model(
        input_shape=(6, 5), input_kind="image", num_classes=3, encoder="cnn", units=4, layers=1,
        seed=0,
    )
    served = models.with_preprocessing(core, normalization, raw_shape=(6, 5), raw_dtype="uint8")
    return served, raw[:4]


def _text_model() -> keras.Model:
    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorizer.adapt(tf.constant(_TEXTS))
    core = _token_core("lstm", "additive", length=5, vocab_size=vectorizer.vocabulary_size())
    return models.with_preprocessing(core, vectorizer, raw_shape=(), raw_dtype="string")


def _config_modules(config: object) -> set[str]:
    """Every "module" named anywhere in a saved model's config.json."""
    if isinstance(config, dict):
        found = {config["module"]} if isinstance(config.get("module"), str) else set()
        return found.union(*(_config_modules(value) for value in config.values()))
    if isinstance(config, list):
        return set().union(*(_config_modules(value) for value in config))
    return set()


def _fresh_environment() -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith("PYTHON")
    }
    environment["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return environment


def test_saved_models_load_and_predict_in_a_process_that_never_imports_models(rng, tmp_path):
    loader = subprocess.Popen(
        [sys.executable, "-c", _LOADER],
        cwd=tmp_path,
        env=_fresh_environment(),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        expected, text_inputs, gru_additive = _save_models(rng, tmp_path)
        _, stderr = loader.communicate(json.dumps(text_inputs), timeout=300)
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.communicate()
    assert loader.returncode == 0, stderr[-3000:]
    for name, prediction in expected.items():
        loaded = np.load(tmp_path / f"{name}_loaded.npy")
        assert loaded.shape == prediction.shape, name
        assert np.allclose(loaded, prediction), name
    weights = keras.ops.convert_to_numpy(models.attention_weights_model(gru_additive)(_TOKENS))
    assert np.allclose(np.load(tmp_path / "gru_additive_weights.npy")[:, 0], weights)


def _save_models(rng, folder) -> tuple[dict[str, np.ndarray], dict[str, bool], keras.Model]:
    """Save the four models and their inputs into `folder`.

    Returns each model's predictions, whether its inputs are strings, and the
    gru_additive model.
    """
    image, pixels = _image_model(rng)
    cases = {
        # name: (model, inputs, inputs are strings)
        "image_uint8": (image, pixels, False),
        "gru_additive": (_token_core("gru", "additive", bidirectional=True), _TOKENS, False),
        "gru_dot": (_token_core("gru", "dot", layers=1), _TOKENS, False),
        "text_lstm_additive": (_text_model(), _TEXTS, True),
    }
    expected = {}
    for name, (model, x, is_text) in cases.items():
        model.save(folder / f"{name}.keras")
        np.save(folder / f"{name}_x.npy", x)
        prediction = model(tf.constant(x) if is_text else x, training=False)
        expected[name] = keras.ops.convert_to_numpy(prediction)
        assert np.isfinite(expected[name]).all(), name  # all-padding rows included
        with zipfile.ZipFile(folder / f"{name}.keras") as archive:
            modules = _config_modules(json.loads(archive.read("config.json")))
        assert modules and not [m for m in modules if m.startswith("models")], (name, modules)
    text_inputs = {name: is_text for name, (_, _, is_text) in cases.items()}
    return expected, text_inputs, cases["gru_additive"][0]


@pytest.mark.parametrize("raw_dtype", ["uint8", "int64"])
def test_integer_raw_images_enter_as_float32_without_a_cast_layer(raw_dtype, rng):
    core = models.build_model(
        input_shape=(3, 2), input_kind="image", num_classes=2, units=2, layers=1, seed=0
    )
    served = models.with_preprocessing(core, None, raw_shape=(3, 2), raw_dtype=raw_dtype)
    assert served.input.dtype == "float32"
    assert [type(layer).__name__ for layer in served.layers] == ["InputLayer", "Functional"]
    raw = rng.integers(0, 256, size=(2, 3, 2)).astype(raw_dtype)
    expected = keras.ops.convert_to_numpy(core(raw.astype("float32")))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(served(raw)), expected, rtol=1e-6)
    np.testing.assert_allclose(served.predict(tf.constant(raw), verbose=0), expected, rtol=1e-6)
