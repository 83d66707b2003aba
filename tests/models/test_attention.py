"""Attention pooling: a softmax over unmasked time steps, exposed for plots."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models


def _token_model(kind: str, encoder: str = "lstm", bidirectional: bool = False) -> keras.Model:
    # Ids 1..10 are words, 0 is padding.
    return models.build_model(
        input_shape=(6,),
        input_kind="tokens",
        num_classes=2,
        encoder=encoder,
        attention=kind,
        units=4,
        embedding_dim=3,
        bidirectional=bidirectional,
        vocab_size=11,
        seed=0,
    )


@pytest.mark.parametrize(
    ("kind", "encoder", "bidirectional"), [("additive", "lstm", False), ("dot", "gru", True)]
)
def test_weights_sum_to_one_over_tokens_and_are_zero_on_padding(
    kind, encoder, bidirectional, tmp_path
):
    model = _token_model(kind, encoder, bidirectional)
    tokens = np.array([[3, 4, 5, 0, 0, 0], [5, 6, 7, 8, 9, 1], [2, 0, 0, 0, 0, 0]], dtype="int32")
    weights = keras.ops.convert_to_numpy(models.attention_weights_model(model)(tokens))
    assert weights.shape == (3, 6)
    padding = tokens == 0
    np.testing.assert_array_equal(weights[padding], 0.0)
    assert (weights[~padding] > 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    # A saved and reloaded model still exposes the same weights.
    model.save(tmp_path / "attention.keras")
    loaded = keras.saving.load_model(tmp_path / "attention.keras", safe_mode=True)
    np.testing.assert_array_equal(models.attention_weights_model(loaded)(tokens), weights)


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_layer_returns_the_weighted_sum_of_states_and_masked_steps_do_not_matter(kind, rng):
    layer = models.AttentionPooling(kind=kind, units=5, return_attention=True, seed=1)
    states = rng.normal(size=(2, 4, 3)).astype("float32")
    mask = np.array([[True, True, False, False], [True, True, True, True]])
    context, weights = (keras.ops.convert_to_numpy(t) for t in layer(states, mask=mask))
    np.testing.assert_allclose(
        context, np.einsum("bt,btd->bd", weights, states), rtol=1e-5, atol=1e-6
    )
    # What sits under the mask cannot change the result.
    scrambled = states.copy()
    scrambled[0, 2:] = 100.0
    np.testing.assert_allclose(layer(scrambled, mask=mask)[0], context, rtol=1e-6)
    assert layer.compute_mask(states, mask) is None


def test_dot_scores_are_scaled_by_the_square_root_of_the_state_size():
    layer = models.AttentionPooling(kind="dot", return_attention=True, seed=0)
    states = np.zeros((1, 2, 4), dtype="float32")
    states[0, 0] = [1.0, 0.0, 0.0, 0.0]
    _, weights = layer(states)
    query = layer.query.numpy()
    expected_logit = query[0] / np.sqrt(4)
    expected = np.exp(expected_logit) / (np.exp(expected_logit) + 1.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(weights)[0, 0], expected, rtol=1e-5)


def test_layer_config_round_trips():
    layer = models.AttentionPooling(kind="dot", units=7, return_attention=True, seed=3, name="pool")
    clone = models.AttentionPooling.from_config(layer.get_config())
    assert (clone.kind, clone.units, clone.return_attention, clone.seed) == ("dot", 7, True, 3)


def test_unknown_kind_and_models_without_attention_are_rejected():
    with pytest.raises(ValueError, match="'luong'"):
        models.AttentionPooling(kind="luong")
    plain = _token_model("none")
    with pytest.raises(ValueError, match="no AttentionPooling"):
        models.attention_weights_model(plain)
