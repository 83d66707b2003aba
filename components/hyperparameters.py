"""The hyperparameters tune searches and train uses: one owner for both, so a trial builds what train builds.

`base_values` turns [model] and [train] into the keyword arguments of `models.build_model` and of
`models.optimizer_from`, the learning-rate schedule included; tune hands them to the hypermodel as
the values of every key the search does not tune, and train merges the best values over them. The
tunable keys and their kinds are `models.vocabulary`'s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from models.vocabulary import BOOLEAN, TUNABLE_MODEL_KEYS, TUNABLE_TRAIN_KEYS
from pipeline.config import Config, ConfigError


def base_values(config: Config, *, steps_per_epoch: int, epochs: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """([model], [train]) as build_model and optimizer_from keyword arguments.

    A cosine schedule decays over `steps_per_epoch * epochs` optimizer steps: a whole training run,
    or a whole trial (tune.max_epochs).
    """
    model = config.model
    base_model = {
        "encoder": model.encoder, "attention": model.attention, "units": model.units, "layers": model.layers,
        "batch_norm": model.batch_norm, "dropout": model.dropout, "activation": model.activation,
        "bidirectional": model.bidirectional, "embedding_dim": model.embedding_dim,
        "init_std": model.init_std or None, "bn_momentum": model.bn_momentum, "bn_epsilon": model.bn_epsilon,
    }
    train = config.train
    base_train = {
        "optimizer": train.optimizer, "learning_rate": train.learning_rate, "momentum": train.momentum,
        "nesterov": train.nesterov, "batch_size": train.batch_size, "clipnorm": train.clipnorm or None,
        "schedule": train.schedule, "decay_steps": max(1, steps_per_epoch * epochs),
    }
    return base_model, base_train


def tunable_keys() -> tuple[str, ...]:
    return TUNABLE_MODEL_KEYS + TUNABLE_TRAIN_KEYS


def read_file(path: str) -> dict[str, Any]:
    """Fixed hyperparameters from a JSON file (`--hparams`), checked against the tunable keys."""
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--hparams {path!r} is not a readable JSON file: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--hparams {path!r} must hold a JSON object of hyperparameters")
    allowed = tunable_keys()
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise ConfigError(f"--hparams {path!r} has unknown keys {unknown}; allowed: {', '.join(allowed)}")
    return values


def clean(values: dict[str, Any]) -> dict[str, Any]:
    """Tuned values without KerasTuner's bookkeeping keys, booleans as booleans."""
    return {k: bool(v) if k in BOOLEAN else v for k, v in values.items() if not k.startswith("tuner/")}
