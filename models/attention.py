"""Attention pooling over the time steps of a recurrent encoder.

Two classic scores, each followed by a softmax over time:
- additive (Bahdanau et al. 2015): score_t = v^T tanh(W h_t + b). There is no
  decoder state to condition on when pooling for classification, so the query
  is implicit in the learned v (Yang et al. 2016 call it a context vector).
- dot (Luong et al. 2015): score_t = h_t . q / sqrt(d) with a learned query q.
  The 1/sqrt(d) scaling (Vaswani et al. 2017) keeps the scores' spread
  independent of the state size d so the softmax does not saturate at init.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from models.blocks import check_choice

POOLING_KINDS = ("additive", "dot")
# Added to the scores of masked steps; exp() of it underflows to exactly 0.0 in float32.
_MASKED_SCORE = -1e9


@keras.saving.register_keras_serializable(package="deeplearning_tf")
class AttentionPooling(keras.layers.Layer):
    """Softmax-weighted sum of the states (batch, T, d) -> (batch, d).

    Masked time steps (padding) get exactly zero weight. With
    `return_attention=True` the layer returns `(context, weights)` where
    weights has shape (batch, T) and sums to 1 over the unmasked steps.
    `seed` seeds the initializers so models built with a seed are reproducible.
    """

    def __init__(
        self,
        kind: str = "additive",
        units: int | None = None,
        return_attention: bool = False,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_choice("attention kind", kind, POOLING_KINDS)
        if units is not None and units < 1:
            raise ValueError(f"units must be >= 1 or None, got {units!r}")
        self.kind = kind
        self.units = units
        self.return_attention = return_attention
        self.seed = seed
        # The output is one vector per sequence, so no mask survives pooling.
        self.supports_masking = True

    def build(self, input_shape):
        state_size = input_shape[-1]
        if self.kind == "additive":
            hidden = self.units or state_size
            self.projection = self.add_weight(
                name="projection",
                shape=(state_size, hidden),
                initializer=keras.initializers.GlorotUniform(seed=self.seed),
            )
            self.projection_bias = self.add_weight(
                name="projection_bias", shape=(hidden,), initializer="zeros"
            )
            self.score_vector = self.add_weight(
                name="score_vector",
                shape=(hidden,),
                initializer=keras.initializers.GlorotUniform(
                    seed=None if self.seed is None else self.seed + 1
                ),
            )
        else:
            self.query = self.add_weight(
                name="query",
                shape=(state_size,),
                initializer=keras.initializers.RandomNormal(stddev=1.0, seed=self.seed),
            )

    def call(self, inputs, mask=None):
        if self.kind == "additive":
            hidden = ops.tanh(ops.matmul(inputs, self.projection) + self.projection_bias)
            scores = ops.einsum("bth,h->bt", hidden, self.score_vector)
        else:
            scale = 1.0 / math.sqrt(inputs.shape[-1])
            scores = ops.einsum("btd,d->bt", inputs, self.query) * scale
        if mask is not None:
            scores = ops.where(mask, scores, ops.full_like(scores, _MASKED_SCORE))
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            # A sequence that is all padding would otherwise spread weight
            # uniformly over padding; multiplying keeps padding at exactly 0.
            weights = weights * ops.cast(mask, weights.dtype)
        context = ops.einsum("bt,btd->bd", weights, inputs)
        if self.return_attention:
            return context, weights
        return context

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        context_shape = (input_shape[0], input_shape[-1])
        if self.return_attention:
            return context_shape, (input_shape[0], input_shape[1])
        return context_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            kind=self.kind,
            units=self.units,
            return_attention=self.return_attention,
            seed=self.seed,
        )
        return config


def attention_weights_model(model: keras.Model) -> keras.Model:
    """A model from `model`'s inputs to the (batch, T) weights of its AttentionPooling.

    The new model shares the trained layers (no copy), so it can be built once
    and called after training to plot where the encoder looked. `model` is a
    build_model model (freshly built or loaded); for a served model pass its
    core, since the pooling layer sits inside the nested core model.
    """
    poolings = [layer for layer in model.layers if isinstance(layer, AttentionPooling)]
    if not poolings:
        raise ValueError(
            f"model {model.name!r} has no AttentionPooling layer "
            "(it was built with attention='none' or a non-recurrent encoder)"
        )
    if len(poolings) > 1:
        raise ValueError(
            f"model {model.name!r} has {len(poolings)} AttentionPooling layers, expected one"
        )
    pooling = poolings[0]
    if not pooling.return_attention:
        raise ValueError(
            f"AttentionPooling {pooling.name!r} of model {model.name!r} was built with "
            "return_attention=False, so its weights are not part of the graph"
        )
    _, weights = pooling.output
    return keras.Model(model.input, weights, name=f"{model.name}_attention_weights")
