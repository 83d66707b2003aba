"""The three classic optimizers of the study, with an optional cosine schedule."""

from __future__ import annotations

import keras

from models.vocabulary import OPTIMIZERS, SCHEDULES, check_choice, check_range


def build_optimizer(
    name: str,
    learning_rate: float,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    schedule: str = "constant",
    decay_steps: int | None = None,
    clipnorm: float | None = None,
) -> keras.optimizers.Optimizer:
    """sgd: plain SGD; momentum: SGD with (optionally Nesterov) momentum; adam: Adam.

    `momentum` and `nesterov` only matter for "momentum" and are ignored
    otherwise, so one training config can switch optimizers freely.
    "cosine" decays the rate to 0 over `decay_steps` optimizer steps
    (Loshchilov & Hutter 2017, without restarts). `decay_steps` is ignored
    under "constant". `clipnorm` rescales each gradient tensor whose L2 norm
    exceeds it, the usual guard against exploding gradients in recurrent nets.
    """
    check_choice("optimizer", name, OPTIMIZERS)
    check_choice("schedule", schedule, SCHEDULES)
    check_range("learning_rate", learning_rate)
    if clipnorm is not None:
        check_range("clipnorm", clipnorm)
    rate: float | keras.optimizers.schedules.LearningRateSchedule = learning_rate
    if schedule == "cosine":
        if decay_steps is None or decay_steps < 1:
            raise ValueError(f"schedule 'cosine' needs decay_steps >= 1, got {decay_steps!r}")
        rate = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=rate, momentum=0.0, clipnorm=clipnorm)
    if name == "momentum":
        check_range("momentum", momentum)
        return keras.optimizers.SGD(
            learning_rate=rate, momentum=momentum, nesterov=nesterov, clipnorm=clipnorm
        )
    return keras.optimizers.Adam(learning_rate=rate, clipnorm=clipnorm)


def optimizer_from(train_kwargs: dict) -> keras.optimizers.Optimizer:
    """The optimizer a training config describes: the one assembly plain training and tuning trials share.

    `train_kwargs` holds optimizer and learning_rate, and optionally momentum, nesterov, schedule,
    decay_steps and clipnorm (as `models.hyperparameters_to_kwargs` returns them).
    """
    options = ("momentum", "nesterov", "schedule", "decay_steps", "clipnorm")
    return build_optimizer(
        train_kwargs["optimizer"],
        train_kwargs["learning_rate"],
        **{key: train_kwargs[key] for key in options if key in train_kwargs},
    )
