"""Attention pooling over the time steps of a recurrent encoder, from built-in Keras layers only.

The pooled summary is the attention-weighted sum of the encoder states h_t,
with one query per sequence: a learned projection of the encoder's final
state s (for a bidirectional encoder, the forward and backward final states
side by side). Two classic scores, each followed by a softmax over time:
- additive (Bahdanau et al. 2015): score_t = v . tanh(W_q s + b + W_k h_t),
  i.e. `keras.layers.AdditiveAttention` on the projected query and keys.
- dot (Luong et al. 2015, "general"): score_t = a * (W_q s) . h_t, i.e.
  `keras.layers.Attention(use_scale=True)`. The learned scale a starts at
  1/sqrt(d) (Vaswani et al. 2017), which keeps the scores' spread independent
  of the state size d so the softmax does not saturate at init.

The encoder's Keras mask is the value mask, so padded steps get exactly zero
weight. The query is the final state rather than a masked mean of the states
because the mean of a sequence that is all padding (an empty string through
TextVectorization) is 0/0 = NaN, whereas its final state is the initial zero
state. Such a sequence has nothing to attend to: Keras spreads its weights
uniformly, and its padded states are all zero, so its context is zero.

Only built-in layers are used, so a model containing the pooling loads with
`keras.saving.load_model(path, safe_mode=True)` in a process that never
imports this package.
"""

from __future__ import annotations

import math

import keras

from models.blocks import kernel_initializer, seed_stream
from models.vocabulary import check_choice

POOLING_KINDS = ("additive", "dot")
DEFAULT_NAME = "attention_pooling"


def attention_pooling(
    states: keras.KerasTensor,
    final_state: keras.KerasTensor,
    kind: str = "additive",
    *,
    units: int | None = None,
    seed: int | None = None,
    name: str = DEFAULT_NAME,
) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """Pool states (batch, T, d), queried by final_state (batch, s), into a context (batch, d).

    Returns (context, weights), the weights of shape (batch, 1, T). Symbolic:
    call it on KerasTensors while building a functional model. A Keras mask
    on `states` (from Embedding(mask_zero=True) through the recurrent layers)
    gives masked steps exactly zero weight; the weights then sum to 1 over
    the unmasked steps. `units` is the width of the additive score's hidden
    layer (default d; the dot score needs the query in the states' space).
    `seed` seeds every initializer. The attention layer itself is named
    `name`, its helper layers `name` + "_query", "_query_step", "_keys" and
    "_context".
    """
    seeds = seed_stream(seed)
    check_choice("attention kind", kind, POOLING_KINDS)
    if units is not None and units < 1:
        raise ValueError(f"units must be >= 1 or None, got {units!r}")
    state_size = states.shape[-1]
    width = (units or state_size) if kind == "additive" else state_size
    query = keras.layers.Dense(
        width,
        use_bias=kind == "additive",  # Bahdanau's b; Luong's general score has none
        kernel_initializer=kernel_initializer(None, next(seeds)),
        name=f"{name}_query",
    )(final_state)
    query = keras.layers.Reshape((1, width), name=f"{name}_query_step")(query)
    if kind == "additive":
        # Keras scores v . tanh(q + k); projecting the keys first gives Bahdanau's
        # v . tanh(W_q s + b + W_k h_t). Dense passes the states' mask on to the keys.
        keys = keras.layers.Dense(
            width,
            use_bias=False,
            kernel_initializer=kernel_initializer(None, next(seeds)),
            name=f"{name}_keys",
        )(states)
        layer = keras.layers.AdditiveAttention(name=name)
        context, weights = layer([query, states, keys], return_attention_scores=True)
        # Keras draws v unseeded; redraw it from the seed so the model is reproducible.
        layer.scale.assign(keras.initializers.GlorotUniform(seed=next(seeds))((width,)))
    else:
        layer = keras.layers.Attention(use_scale=True, name=name)
        context, weights = layer([query, states], return_attention_scores=True)
        layer.scale.assign(1.0 / math.sqrt(state_size))
    # The query has no mask, so neither has the context: nothing after pooling sees one.
    context = keras.layers.Reshape((state_size,), name=f"{name}_context")(context)
    return context, weights


def _attention_layers(model: keras.Model) -> list[keras.layers.Layer]:
    # AdditiveAttention subclasses Attention.
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Attention)]


def attention_weights_model(model: keras.Model) -> keras.Model:
    """A model from `model`'s inputs to the (batch, T) weights of its attention pooling.

    The new model shares the trained layers (no copy), so it can be built once
    and called after training to plot where the encoder looked. `model` is a
    build_model model, freshly built or loaded from disk; for a served model
    pass its core, since the attention layer sits inside the nested core model.
    """
    attentions = _attention_layers(model)
    if not attentions:
        nested = [layer.name for layer in model.layers if isinstance(layer, keras.Model)]
        hint = f"; pass the nested core model ({', '.join(nested)}) instead" if nested else ""
        raise ValueError(
            f"model {model.name!r} has no attention layer "
            f"(it was built with attention='none' or a non-recurrent encoder){hint}"
        )
    if len(attentions) > 1:
        raise ValueError(
            f"model {model.name!r} has {len(attentions)} attention layers, expected one"
        )
    attention = attentions[0]
    outputs = attention.output
    if not isinstance(outputs, (list, tuple)) or len(outputs) != 2:
        raise ValueError(
            f"attention layer {attention.name!r} of model {model.name!r} was not called with "
            "return_attention_scores=True, so its weights are not part of the graph"
        )
    weights = keras.layers.Flatten(name=f"{attention.name}_weights")(outputs[1])
    return keras.Model(model.input, weights, name=f"{model.name}_attention_weights")
