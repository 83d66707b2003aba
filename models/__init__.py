"""Keras building blocks of the study: models, attention, optimizers, search space, seq2seq.

Pure Keras: nothing here reads files, configs or MLflow. Importing Keras starts
TensorFlow, so the package loads each name from its module on first use: the
Keras-free `models.vocabulary` imports in milliseconds. The models
built here contain only built-in Keras layers, so saved ones load with
`keras.saving.load_model(path, safe_mode=True)` without importing this package.
"""

from __future__ import annotations

import importlib
from typing import Any

# Public name -> the module that defines it; loaded on first attribute access (PEP 562).
_HOMES = {
    "models.attention": ("attention_pooling", "attention_weights_model"),
    "models.vocabulary": ("ACTIVATIONS", "ATTENTIONS", "ENCODERS", "INPUT_KINDS", "OPTIMIZERS", "RECURRENT_ENCODERS",
                          "SCHEDULES", "TUNABLE_MODEL_KEYS", "TUNABLE_TRAIN_KEYS"),
    "models.builders": ("CLASSIFICATION_METRIC", "REGRESSION_METRIC", "build_model", "build_training_state",
                        "compile_model"),
    "models.optimizers": ("build_optimizer", "optimizer_from"),
    "models.seq2seq": ("DECODER_INPUT", "END", "ENCODER_INPUT", "FIRST_SYMBOL", "PAD", "START", "build_seq2seq",
                       "greedy_decode", "teacher_forcing"),
    "models.serving": ("stack", "with_preprocessing"),
    "models.hypermodel": ("build_hypermodel",),
    "models.space": ("enumerate_space", "hyperparameters_to_kwargs", "validate_space"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
