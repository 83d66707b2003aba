"""Keras building blocks of the study: models, attention, optimizers, search space, seq2seq.

Pure Keras: nothing here reads files, configs or MLflow. The pipeline imports
this package lazily because importing Keras starts TensorFlow. The models
built here contain only built-in Keras layers, so saved ones load with
`keras.saving.load_model(path, safe_mode=True)` without importing this package.
"""

from models.attention import attention_pooling, attention_weights_model
from models.blocks import ACTIVATIONS, ATTENTIONS, ENCODERS, INPUT_KINDS, RECURRENT_ENCODERS
from models.builders import CLASSIFICATION_METRIC, REGRESSION_METRIC, build_model, compile_model
from models.optimizers import OPTIMIZERS, SCHEDULES, build_optimizer, optimizer_from
from models.seq2seq import (
    DECODER_INPUT,
    END,
    ENCODER_INPUT,
    FIRST_SYMBOL,
    PAD,
    START,
    build_seq2seq,
    greedy_decode,
    teacher_forcing,
)
from models.serving import stack, with_preprocessing
from models.hypermodel import build_hypermodel
from models.space import (
    TUNABLE_MODEL_KEYS,
    TUNABLE_TRAIN_KEYS,
    enumerate_space,
    hyperparameters_to_kwargs,
    validate_space,
)

__all__ = [
    "ACTIVATIONS",
    "ATTENTIONS",
    "CLASSIFICATION_METRIC",
    "DECODER_INPUT",
    "ENCODERS",
    "ENCODER_INPUT",
    "END",
    "FIRST_SYMBOL",
    "INPUT_KINDS",
    "OPTIMIZERS",
    "PAD",
    "RECURRENT_ENCODERS",
    "REGRESSION_METRIC",
    "SCHEDULES",
    "START",
    "TUNABLE_MODEL_KEYS",
    "TUNABLE_TRAIN_KEYS",
    "attention_pooling",
    "attention_weights_model",
    "build_hypermodel",
    "build_model",
    "build_optimizer",
    "build_seq2seq",
    "compile_model",
    "enumerate_space",
    "greedy_decode",
    "hyperparameters_to_kwargs",
    "optimizer_from",
    "stack",
    "teacher_forcing",
    "validate_space",
    "with_preprocessing",
]
