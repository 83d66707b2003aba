"""The model and training vocabulary, said once: the choices, the tunable keys, their kinds and ranges.

Pure Python, no Keras: the config checks a TOML file against it without starting TensorFlow, and
the layer blocks, the optimizers and the search space check their arguments against the same
tables, so a range (dropout's [0, 1), say) has one owner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

ENCODERS = ("mlp", "cnn", "simple_rnn", "lstm", "gru")
RECURRENT_ENCODERS = ("simple_rnn", "lstm", "gru")
ATTENTIONS = ("none", "additive", "dot")
ACTIVATIONS = ("relu", "sigmoid", "tanh")
INPUT_KINDS = ("image", "sequence", "vector", "tokens")
OPTIMIZERS = ("sgd", "momentum", "adam")
SCHEDULES = ("constant", "cosine")

# What a search may tune, by the config section the key lives in.
TUNABLE_MODEL_KEYS = ("encoder", "attention", "units", "layers", "batch_norm", "dropout", "activation",
                      "bidirectional", "embedding_dim")
TUNABLE_TRAIN_KEYS = ("optimizer", "learning_rate", "momentum", "batch_size")
# The kind of every tunable key: a fixed vocabulary, a boolean, an integer or a float.
CHOICES = {"encoder": ENCODERS, "attention": ATTENTIONS, "activation": ACTIVATIONS, "optimizer": OPTIMIZERS}
BOOLEAN = ("batch_norm", "bidirectional")  # KerasTuner stores boolean choices as 0/1
INTEGER = ("units", "layers", "embedding_dim", "batch_size")
FLOAT = ("dropout", "learning_rate", "momentum")


@dataclass(frozen=True)
class Range:
    """An interval of allowed numbers, shown the way mathematicians write it: [0, 1)."""

    low: float
    high: float
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __contains__(self, value: float) -> bool:
        above = value >= self.low if self.low_inclusive else value > self.low
        below = value <= self.high if self.high_inclusive else value < self.high
        return above and below

    def __str__(self) -> str:
        def show(bound: float) -> str:
            if math.isinf(bound):
                return "inf" if bound > 0 else "-inf"
            return str(bound) if isinstance(bound, int) else f"{bound:g}"

        return (f"{'[' if self.low_inclusive else '('}{show(self.low)}, "
                f"{show(self.high)}{']' if self.high_inclusive else ')'}")


# Every numeric model and training hyperparameter's allowed values. Where the config spells "off"
# as 0 (init_std, clipnorm), the builders take None instead and check a given value against these.
RANGES: dict[str, Range] = {
    "dropout": Range(0.0, 1.0, True, False),
    "units": Range(1, math.inf),
    "layers": Range(1, 64),
    "embedding_dim": Range(1, math.inf),
    "init_std": Range(0.0, math.inf, False, True),
    "bn_momentum": Range(0.0, 1.0, True, False),
    "bn_epsilon": Range(0.0, 1.0, False, False),
    "learning_rate": Range(0.0, 10.0, False, True),
    "momentum": Range(0.0, 1.0, True, False),
    "clipnorm": Range(0.0, math.inf, False, True),
    "batch_size": Range(1, 1_000_000),
}


def check_range(name: str, value: float) -> None:
    """Raise a ValueError naming `name`, its allowed range and the value, if the value is outside it."""
    allowed = RANGES[name]
    if value not in allowed:
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")


def check_choice(name: str, value: object, allowed: tuple) -> None:
    """Raise a ValueError naming `name`, the offending value and the allowed ones."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {tuple(allowed)}, got {value!r}")
