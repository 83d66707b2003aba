"""The textbook properties of the building blocks inside built models."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models


def _recurrent_model(encoder: str, features: int, units: int, **kwargs) -> keras.Model:
    return models.build_model(
        input_shape=(5, features),
        input_kind="sequence",
        num_classes=2,
        encoder=encoder,
        units=units,
        seed=0,
        **kwargs,
    )


@pytest.mark.parametrize(
    ("encoder", "formula"),
    [
        ("lstm", lambda d, u: 4 * (u * (d + u) + u)),
        # Keras's GRU defaults to reset_after=True: separate input and recurrent biases.
        ("gru", lambda d, u: 3 * (u * (d + u) + 2 * u)),
        ("simple_rnn", lambda d, u: u * (d + u) + u),
    ],
)
def test_recurrent_parameter_counts_match_the_textbook_formulas(encoder, formula):
    features, units = 3, 5
    model = _recurrent_model(encoder, features, units, layers=2)
    # The first layer reads the features, the second the first layer's states.
    assert model.get_layer(f"{encoder}0").count_params() == formula(features, units)
    assert model.get_layer(f"{encoder}1").count_params() == formula(units, units)
    bidirectional = _recurrent_model(encoder, features, units, layers=1, bidirectional=True)
    assert bidirectional.get_layer("bidirectional0").count_params() == 2 * formula(features, units)


def test_gru_uses_reset_after():
    assert _recurrent_model("gru", 3, 4, layers=1).get_layer("gru0").reset_after


def _mlp(**kwargs) -> keras.Model:
    arguments = dict(
        input_shape=(3, 2),
        input_kind="image",
        num_classes=3,
        units=8,
        layers=1,
        dropout=0.0,
        seed=0,
    )
    return models.build_model(**{**arguments, **kwargs})


def test_block_order_is_affine_bn_activation_dropout():
    model = _mlp(batch_norm=True, dropout=0.3, activation="tanh")
    kinds = [type(layer).__name__ for layer in model.layers]
    start = kinds.index("Dense")
    assert kinds[start : start + 4] == ["Dense", "BatchNormalization", "Activation", "Dropout"]
    assert model.get_layer("block0_tanh").activation is keras.activations.tanh


def test_bias_is_dropped_only_when_batch_norm_follows():
    with_bn = _mlp(batch_norm=True).get_layer("block0_dense")
    without_bn = _mlp(batch_norm=False).get_layer("block0_dense")
    assert not with_bn.use_bias and len(with_bn.weights) == 1
    assert without_bn.use_bias and len(without_bn.weights) == 2
    conv = models.build_model(
        input_shape=(4, 4),
        input_kind="image",
        num_classes=2,
        encoder="cnn",
        units=3,
        layers=1,
        seed=0,
    ).get_layer("block0_conv")
    assert not conv.use_bias


def test_batch_norm_uses_batch_statistics_in_training_and_moving_ones_at_inference(rng):
    model = _mlp(batch_norm=True, bn_momentum=0.9, bn_epsilon=1e-3)
    affine = keras.Model(model.input, model.get_layer("block0_dense").output)
    normalised = keras.Model(model.input, model.get_layer("block0_bn").output)
    x = rng.normal(loc=2.0, scale=3.0, size=(64, 3, 2)).astype("float32")
    pre = keras.ops.convert_to_numpy(affine(x))

    inference = keras.ops.convert_to_numpy(normalised(x, training=False))
    # Fresh moving statistics are mean 0, variance 1: inference is an affine no-op.
    np.testing.assert_allclose(inference, pre / np.sqrt(1 + 1e-3), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(
        inference, keras.ops.convert_to_numpy(normalised(x, training=False))
    )

    training = keras.ops.convert_to_numpy(normalised(x, training=True))
    np.testing.assert_allclose(training.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(training.std(axis=0), 1.0, atol=1e-2)
    assert not np.allclose(training, inference)
    # The training call moved the moving mean by (1 - momentum) towards the batch mean.
    moving_mean = model.get_layer("block0_bn").moving_mean.numpy()
    np.testing.assert_allclose(moving_mean, 0.1 * pre.mean(axis=0), rtol=1e-4, atol=1e-5)


def test_model_outputs_differ_between_training_and_inference_with_batch_norm(rng):
    model = _mlp(batch_norm=True)
    x = rng.normal(size=(8, 3, 2)).astype("float32")
    first, second = model(x, training=False), model(x, training=False)
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(model(x, training=True), first)


def test_dropout_is_identity_at_inference_and_keeps_the_expected_activation_in_training():
    rate = 0.4
    dropout = _mlp(batch_norm=False, dropout=rate).get_layer("block0_dropout")
    x = np.ones((500, 200), dtype="float32")
    np.testing.assert_array_equal(dropout(x, training=False), x)
    dropped = keras.ops.convert_to_numpy(dropout(x, training=True))
    kept = dropped[dropped != 0]
    # Inverted dropout scales survivors by 1 / (1 - rate) so the mean stays 1.
    np.testing.assert_allclose(kept, 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs((dropped == 0).mean() - rate) < 0.01
    assert abs(dropped.mean() - 1.0) < 0.02


def test_init_std_gives_a_normal_kernel_of_that_scale():
    kernel = _mlp(batch_norm=False, init_std=0.05, units=400).get_layer("block0_dense").kernel
    values = kernel.numpy()
    assert abs(values.std() - 0.05) < 0.005
    assert abs(values.mean()) < 0.005


def test_same_seed_gives_the_same_model_and_another_seed_a_different_one(rng):
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    arguments = dict(
        input_shape=(5, 3),
        input_kind="sequence",
        num_classes=2,
        encoder="lstm",
        units=4,
        bidirectional=True,
        dropout=0.5,
    )
    first = models.build_model(**arguments, seed=7)
    again = models.build_model(**arguments, seed=7)
    other = models.build_model(**arguments, seed=8)
    np.testing.assert_array_equal(first(x, training=True), again(x, training=True))
    assert not np.allclose(first(x, training=False), other(x, training=False))
    # Forward and backward directions start from different weights.
    layer = first.get_layer("bidirectional0")
    forward = layer.forward_layer.cell.kernel.numpy()
    backward = layer.backward_layer.cell.kernel.numpy()
    assert not np.allclose(forward, backward)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"encoder": "transformer"}, "transformer"),
        ({"attention": "multihead", "encoder": "lstm"}, "multihead"),
        ({"activation": "gelu"}, "gelu"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
        ({"units": 0}, "units"),
        ({"layers": 0}, "layers"),
        ({"num_classes": 1}, "num_classes"),
        ({"input_kind": "audio"}, "audio"),
        ({"input_kind": "tokens", "input_shape": (5,)}, "vocab_size"),
        ({"input_kind": "sequence", "input_shape": (5,)}, "input_shape"),
        ({"attention": "additive", "encoder": "mlp"}, "'mlp'"),
        ({"attention": "dot", "encoder": "cnn"}, "'cnn'"),
    ],
)
def test_invalid_arguments_raise_value_errors_naming_the_value(overrides, named):
    arguments = dict(input_shape=(3, 2), input_kind="image", num_classes=3, units=4, seed=0)
    with pytest.raises(ValueError, match=named):
        models.build_model(**{**arguments, **overrides})


def test_attention_with_a_feedforward_encoder_names_the_combination():
    with pytest.raises(ValueError, match=r"attention 'additive'.*encoder 'mlp'"):
        models.build_model(
            input_shape=(3, 2),
            input_kind="image",
            num_classes=3,
            encoder="mlp",
            attention="additive",
        )
