"""Attention pooling: built-in Keras attention over unmasked time steps, exposed for plots."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models

# Ids 1..10 are words, 0 is padding; the last row is all padding (an empty string).
TOKENS = np.array(
    [[3, 4, 5, 0, 0, 0], [5, 6, 7, 8, 9, 1], [2, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]],
    dtype="int32",
)
PADDING = TOKENS == 0
EMPTY = 3  # the all-padding row


def _token_model(
    kind: str, encoder: str = "lstm", bidirectional: bool = False, seed: int = 0
) -> keras.Model:
    # Two recurrent layers, so the mask must cross a stack; the pooled one is layer 1.
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
        seed=seed,
    )


def _outputs(model: keras.Model, *names: str) -> list[np.ndarray]:
    """The values on TOKENS of the named layers' outputs, all of them for multi-output layers."""
    tensors = []
    for name in names:
        output = model.get_layer(name).output
        tensors.extend(output if isinstance(output, (list, tuple)) else [output])
    values = keras.Model(model.input, tensors)(TOKENS)
    return [keras.ops.convert_to_numpy(value) for value in values]


@pytest.mark.parametrize(
    ("kind", "encoder", "bidirectional"), [("additive", "lstm", False), ("dot", "gru", True)]
)
def test_weights_sum_to_one_over_tokens_and_are_zero_on_padding(
    kind, encoder, bidirectional, tmp_path
):
    model = _token_model(kind, encoder, bidirectional)
    weights = keras.ops.convert_to_numpy(models.attention_weights_model(model)(TOKENS))
    assert weights.shape == (4, 6)
    words = slice(0, EMPTY)
    np.testing.assert_array_equal(weights[words][PADDING[words]], 0.0)
    assert (weights[words][~PADDING[words]] > 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-6)
    # An all-padding sequence has nothing to attend to, yet its output is finite.
    assert np.isfinite(keras.ops.convert_to_numpy(model(TOKENS))).all()
    # A saved and reloaded model still exposes the same weights.
    model.save(tmp_path / "attention.keras")
    loaded = keras.saving.load_model(tmp_path / "attention.keras", safe_mode=True)
    np.testing.assert_array_equal(models.attention_weights_model(loaded)(TOKENS), weights)


@pytest.mark.parametrize(("kind", "encoder"), [("additive", "gru"), ("dot", "lstm")])
def test_context_is_the_weighted_sum_of_the_states_and_ignores_padding(kind, encoder):
    model = _token_model(kind, encoder, bidirectional=True)
    states, *_, context = _outputs(model, "bidirectional1", "attention_pooling_context")
    weights = keras.ops.convert_to_numpy(models.attention_weights_model(model)(TOKENS))
    np.testing.assert_allclose(
        context, np.einsum("bt,btd->bd", weights, states), rtol=1e-5, atol=1e-6
    )
    # The encoder's padded states are zero, so the empty sequence pools to zero.
    np.testing.assert_array_equal(states[PADDING], 0.0)
    np.testing.assert_array_equal(context[EMPTY], 0.0)


def _masked_softmax(scores: np.ndarray) -> np.ndarray:
    scores = np.where(PADDING[:EMPTY], -np.inf, scores[:EMPTY])
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_additive_scores_are_bahdanau_scores_of_the_projected_final_state():
    model = _token_model("additive", "gru")
    # gru1 returns its states and its final state.
    _, final, query, keys = _outputs(
        model, "gru1", "attention_pooling_query", "attention_pooling_keys"
    )
    # The query is W_q s + b of the encoder's final state s.
    projection = model.get_layer("attention_pooling_query")
    kernel, bias = (w.numpy() for w in projection.weights)
    np.testing.assert_allclose(query, final @ kernel + bias, rtol=1e-5, atol=1e-6)
    v = model.get_layer("attention_pooling").scale.numpy()
    scores = np.einsum("bth,h->bt", np.tanh(query[:, None, :] + keys), v)
    weights = keras.ops.convert_to_numpy(models.attention_weights_model(model)(TOKENS))
    np.testing.assert_allclose(weights[:EMPTY], _masked_softmax(scores), rtol=1e-5, atol=1e-7)


def test_dot_scores_are_scaled_luong_scores_starting_at_one_over_root_d():
    model = _token_model("dot", "gru", bidirectional=True)
    state_size = 2 * 4  # two directions of 4 units
    scale = model.get_layer("attention_pooling").scale.numpy()
    np.testing.assert_allclose(scale, 1.0 / np.sqrt(state_size), rtol=1e-6)
    # bidirectional1 returns its states and the forward and backward final states.
    states, forward, backward, query = _outputs(model, "bidirectional1", "attention_pooling_query")
    kernel = model.get_layer("attention_pooling_query").kernel.numpy()
    np.testing.assert_allclose(
        query, np.concatenate([forward, backward], axis=1) @ kernel, rtol=1e-5, atol=1e-6
    )
    scores = scale * np.einsum("bd,btd->bt", query, states)
    weights = keras.ops.convert_to_numpy(models.attention_weights_model(model)(TOKENS))
    np.testing.assert_allclose(weights[:EMPTY], _masked_softmax(scores), rtol=1e-5, atol=1e-7)


def test_models_with_attention_are_built_only_from_builtin_layers_and_are_seeded():
    first = _token_model("additive", "lstm", bidirectional=True)
    keras.utils.set_random_seed(123)  # the global seed must not matter
    again = _token_model("additive", "lstm", bidirectional=True)
    for model in (first, _token_model("dot", "gru")):
        modules = {type(layer).__module__ for layer in model.layers}
        assert all(module.startswith("keras.") for module in modules), modules
    for mine, theirs in zip(first.weights, again.weights, strict=True):
        np.testing.assert_array_equal(mine.numpy(), theirs.numpy(), err_msg=mine.path)


def test_pooling_works_on_any_states_and_rejects_bad_arguments(rng):
    states = keras.Input((4, 3))
    summary = keras.Input((5,))
    context, weights = models.attention_pooling(states, summary, "additive", units=7, seed=1)
    assert tuple(context.shape) == (None, 3) and tuple(weights.shape) == (None, 1, 4)
    pool = keras.Model([states, summary], [context, weights])
    assert pool.get_layer("attention_pooling_keys").units == 7
    values = rng.normal(size=(2, 4, 3)).astype("float32")
    out, attention = (
        keras.ops.convert_to_numpy(t) for t in pool([values, rng.normal(size=(2, 5))])
    )
    np.testing.assert_allclose(
        out, np.einsum("bt,btd->bd", attention[:, 0], values), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="'luong'"):
        models.attention_pooling(states, summary, "luong")
    with pytest.raises(ValueError, match="units"):
        models.attention_pooling(states, summary, "additive", units=0)


def test_models_without_attention_are_rejected_naming_a_nested_core():
    plain = _token_model("none")
    with pytest.raises(ValueError, match="no attention layer"):
        models.attention_weights_model(plain)
    served = models.with_preprocessing(
        _token_model("dot", "gru"), None, raw_shape=(6,), raw_dtype="int32"
    )
    with pytest.raises(ValueError, match="pass the nested core model"):
        models.attention_weights_model(served)
