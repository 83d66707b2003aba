"""build_optimizer gives the classic optimizers with the asked-for settings."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models


def test_sgd_is_plain_gradient_descent_even_when_a_momentum_is_passed():
    optimizer = models.build_optimizer("sgd", 0.1, momentum=0.9, nesterov=True)
    assert type(optimizer) is keras.optimizers.SGD
    assert optimizer.momentum == 0.0
    assert not optimizer.nesterov
    assert optimizer.learning_rate.numpy() == pytest.approx(0.1)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_is_sgd_with_momentum(nesterov):
    optimizer = models.build_optimizer("momentum", 0.05, momentum=0.8, nesterov=nesterov)
    assert type(optimizer) is keras.optimizers.SGD
    assert optimizer.momentum == 0.8
    assert optimizer.nesterov is nesterov


def test_adam_and_clipnorm():
    optimizer = models.build_optimizer("adam", 1e-3, clipnorm=1.0)
    assert type(optimizer) is keras.optimizers.Adam
    assert optimizer.clipnorm == 1.0
    assert models.build_optimizer("adam", 1e-3).clipnorm is None


def test_clipnorm_rescales_a_large_gradient_to_that_norm():
    optimizer = models.build_optimizer("sgd", 1.0, clipnorm=1.0)
    weight = keras.Variable(np.zeros(2, dtype="float32"))
    optimizer.apply_gradients([(np.array([30.0, 40.0], dtype="float32"), weight)])
    np.testing.assert_allclose(weight.numpy(), [-0.6, -0.8], rtol=1e-6)


def test_cosine_schedule_decays_to_zero_over_decay_steps():
    optimizer = models.build_optimizer("adam", 0.1, schedule="cosine", decay_steps=10)
    rates = []
    for step in (0, 5, 10):
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate.numpy()))
    np.testing.assert_allclose(rates, [0.1, 0.05, 0.0], atol=1e-7)


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"name": "rmsprop", "learning_rate": 0.1}, "rmsprop"),
        ({"name": "adam", "learning_rate": 0.0}, "learning_rate"),
        ({"name": "adam", "learning_rate": 0.1, "schedule": "step"}, "'step'"),
        ({"name": "adam", "learning_rate": 0.1, "schedule": "cosine"}, "decay_steps"),
        ({"name": "momentum", "learning_rate": 0.1, "momentum": 1.0}, "momentum"),
        ({"name": "adam", "learning_rate": 0.1, "clipnorm": 0.0}, "clipnorm"),
    ],
)
def test_invalid_optimizer_settings_name_the_value(arguments, named):
    with pytest.raises(ValueError, match=named):
        models.build_optimizer(**arguments)
