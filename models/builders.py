"""Build and compile the classifiers and regressors of the study.

Every model is input -> encoder -> head:
- mlp: flatten, then `layers` dense blocks of `units`.
- cnn: `layers` conv blocks of `units` filters (Conv2D for images, Conv1D for
  sequences and tokens), each followed by 2x max-pooling, then global average
  pooling. The filter count stays `units` in every block so that `units` and
  `layers` mean the same thing for every encoder.
- simple_rnn / lstm / gru: `layers` stacked recurrent layers of `units`
  (optionally bidirectional). The last layer returns its final state, or all
  its states and its final state when attention pools them (the final state
  queries the attention; see models/attention.py). Images are read row by
  row, so an HxWxC image is H time steps of W*C features. One dense block of `units`
  (with BN, the activation and dropout) then sits between the encoder and the
  output layer, so batch_norm, activation and dropout act on recurrent models
  too. The recurrent cells keep their classic tanh/sigmoid nonlinearities.
Token inputs first go through an Embedding (id 0 = padding, masked for the
recurrent encoders). The head is Dense(num_classes, softmax) for classification or Dense(1) linear
for regression (num_classes == 0).

Every layer is a built-in Keras layer, so a saved model loads with
`keras.saving.load_model(path, safe_mode=True)` in a process that never
imports this package.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras

from models.attention import attention_pooling
from models.vocabulary import ATTENTIONS, ENCODERS, INPUT_KINDS, RECURRENT_ENCODERS, check_choice
from models.blocks import (
    BlockConfig,
    conv_block,
    dense_block,
    embedding_initializer,
    kernel_initializer,
    recurrent_layer,
    seed_stream,
)

# Metric names as they appear in Keras history (and, with "val_", on validation data).
CLASSIFICATION_METRIC = "accuracy"
REGRESSION_METRIC = "mae"
_INPUT_RANKS = {"image": (2, 3), "sequence": (2,), "vector": (1,), "tokens": (1,)}


def build_model(
    *,
    input_shape: tuple[int, ...],
    input_kind: str,
    num_classes: int,
    encoder: str = "mlp",
    attention: str = "none",
    units: int = 64,
    layers: int = 2,
    batch_norm: bool = True,
    dropout: float = 0.2,
    activation: str = "relu",
    init_std: float | None = None,
    bn_momentum: float = 0.99,
    bn_epsilon: float = 1e-3,
    bidirectional: bool = False,
    vocab_size: int | None = None,
    embedding_dim: int = 64,
    seed: int | None = None,
    name: str = "model",
) -> keras.Model:
    """Build an uncompiled model; the same `seed` gives the same initial weights.

    input_kind "image" takes floats HxW or HxWxC, "sequence" floats T x F, "vector"
    floats (F,) (a dense input; cnn and recurrent encoders read it as F steps of one
    value), and "tokens" int ids of shape (T,) with 0 as padding (needs vocab_size).
    """
    input_shape = tuple(input_shape)
    _check_arguments(
        input_shape, input_kind, num_classes, encoder, attention, layers, vocab_size, embedding_dim
    )
    block = BlockConfig(
        units=units,
        batch_norm=batch_norm,
        dropout=dropout,
        activation=activation,
        init_std=init_std,
        bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon,
    )
    seeds = seed_stream(seed)
    dtype = "int32" if input_kind == "tokens" else "float32"
    inputs = keras.Input(shape=input_shape, dtype=dtype, name="inputs")
    x = inputs
    if input_kind == "tokens":
        x = _embed_tokens(x, vocab_size, embedding_dim, encoder, seeds)
    if input_kind == "vector" and encoder != "mlp":
        x = keras.layers.Reshape((*input_shape, 1), name="values_as_steps")(x)
    if encoder == "mlp":
        x = keras.layers.Flatten(name="flatten")(x)
        for index in range(layers):
            x = dense_block(x, block, seeds, name=f"block{index}")
    elif encoder == "cnn":
        x = _cnn_encoder(x, input_kind, input_shape, block, layers, seeds)
    else:
        x = _recurrent_encoder(
            x, encoder, attention, input_kind, input_shape, block, layers, bidirectional, seeds
        )
        x = dense_block(x, block, seeds, name="head")
    outputs = _output_layer(x, num_classes, block.init_std, seeds)
    return keras.Model(inputs, outputs, name=name)


def check_num_classes(num_classes: int) -> None:
    if num_classes == 1 or num_classes < 0:
        raise ValueError(f"num_classes must be 0 (regression) or >= 2, got {num_classes!r}")


def _check_arguments(
    input_shape: tuple[int, ...],
    input_kind: str,
    num_classes: int,
    encoder: str,
    attention: str,
    layers: int,
    vocab_size: int | None,
    embedding_dim: int,
) -> None:
    check_choice("input_kind", input_kind, INPUT_KINDS)
    check_choice("encoder", encoder, ENCODERS)
    check_choice("attention", attention, ATTENTIONS)
    if len(input_shape) not in _INPUT_RANKS[input_kind]:
        raise ValueError(
            f"input_shape for input_kind {input_kind!r} must have "
            f"{' or '.join(map(str, _INPUT_RANKS[input_kind]))} dimensions, got {input_shape!r}"
        )
    check_num_classes(num_classes)
    if attention != "none" and encoder not in RECURRENT_ENCODERS:
        raise ValueError(
            f"attention {attention!r} needs a recurrent encoder {RECURRENT_ENCODERS}, "
            f"got encoder {encoder!r}"
        )
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers!r}")
    if input_kind == "tokens" and (vocab_size is None or vocab_size < 2):
        raise ValueError(f"input_kind 'tokens' needs vocab_size >= 2, got {vocab_size!r}")
    if input_kind == "tokens" and embedding_dim < 1:
        raise ValueError(f"embedding_dim must be >= 1, got {embedding_dim!r}")


def _embed_tokens(
    tokens: keras.KerasTensor,
    vocab_size: int,
    embedding_dim: int,
    encoder: str,
    seeds: Iterator[int | None],
) -> keras.KerasTensor:
    """Token ids -> vectors, with id 0 as padding.

    Only recurrent layers and attention consume a Keras mask; Flatten and
    Conv1D would drop it with a warning, so for mlp and cnn mask_zero is off
    and they see the padding embedding, a learned vector like any other.
    """
    return keras.layers.Embedding(
        vocab_size,
        embedding_dim,
        mask_zero=encoder in RECURRENT_ENCODERS,
        embeddings_initializer=embedding_initializer(next(seeds)),
        name="embedding",
    )(tokens)


def _cnn_encoder(
    x: keras.KerasTensor,
    input_kind: str,
    input_shape: tuple[int, ...],
    block: BlockConfig,
    layers: int,
    seeds: Iterator[int | None],
) -> keras.KerasTensor:
    rank = 2 if input_kind == "image" else 1
    if input_kind == "image" and len(input_shape) == 2:
        x = keras.layers.Reshape((*input_shape, 1), name="add_channel")(x)
    for index in range(layers):
        x = conv_block(x, block, seeds, name=f"block{index}", rank=rank)
    if rank == 2:
        return keras.layers.GlobalAveragePooling2D(name="global_pool")(x)
    return keras.layers.GlobalAveragePooling1D(name="global_pool")(x)


def _recurrent_encoder(
    x: keras.KerasTensor,
    encoder: str,
    attention: str,
    input_kind: str,
    input_shape: tuple[int, ...],
    block: BlockConfig,
    layers: int,
    bidirectional: bool,
    seeds: Iterator[int | None],
) -> keras.KerasTensor:
    if input_kind == "image" and len(input_shape) == 3:
        height, width, channels = input_shape
        x = keras.layers.Reshape((height, width * channels), name="rows_as_steps")(x)
    pooled = attention != "none"
    for index in range(layers):
        last = index == layers - 1
        return_sequences = not last or pooled
        # The last layer of a pooled encoder also returns its final state: the query.
        return_state = last and pooled
        layer = recurrent_layer(
            encoder,
            block.units,
            init_std=block.init_std,
            seeds=seeds,
            name=f"{encoder}{index}",
            return_sequences=return_sequences,
            return_state=return_state,
        )
        if bidirectional:
            # An explicit backward layer gets its own seeds; Keras would
            # otherwise clone the forward layer's config, seeds included, and
            # start both directions from identical weights.
            backward = recurrent_layer(
                encoder,
                block.units,
                init_std=block.init_std,
                seeds=seeds,
                name=f"{encoder}{index}_backward",
                return_sequences=return_sequences,
                return_state=return_state,
                go_backwards=True,
            )
            layer = keras.layers.Bidirectional(
                layer, backward_layer=backward, name=f"bidirectional{index}"
            )
        x = layer(x)
    if not pooled:
        return x
    states, final_states = x[0], list(x[1:])
    if encoder == "lstm":
        # An LSTM returns (h, c) per direction; h is the state it outputs.
        final_states = final_states[::2]
    if len(final_states) == 1:
        final_state = final_states[0]
    else:
        final_state = keras.layers.Concatenate(name="final_state")(final_states)
    # The weights stay in the graph (unused by the head) so that
    # attention_weights_model can expose them without rebuilding anything.
    context, _ = attention_pooling(states, final_state, attention, seed=next(seeds))
    return context


def _output_layer(
    x: keras.KerasTensor, num_classes: int, init_std: float | None, seeds: Iterator[int | None]
) -> keras.KerasTensor:
    initializer = kernel_initializer(init_std, next(seeds))
    if num_classes == 0:
        return keras.layers.Dense(1, kernel_initializer=initializer, name="prediction")(x)
    return keras.layers.Dense(
        num_classes, activation="softmax", kernel_initializer=initializer, name="prediction"
    )(x)


def compile_model(
    model: keras.Model, *, optimizer: keras.optimizers.Optimizer, num_classes: int
) -> keras.Model:
    """Compile for integer-label classification (num_classes >= 2) or regression (0).

    History keys are then loss/accuracy (or loss/mae) and their val_ twins.
    """
    check_num_classes(num_classes)
    if num_classes == 0:
        model.compile(optimizer=optimizer, loss="mse", metrics=[REGRESSION_METRIC])
    else:
        model.compile(
            optimizer=optimizer,
            loss="sparse_categorical_crossentropy",
            metrics=[CLASSIFICATION_METRIC],
        )
    return model


def build_training_state(model: keras.Model, batches) -> bool:
    """Create the optimizer's slots and the loss's and metrics' variables before `fit`; True if done.

    Without a distribution strategy, Keras (TensorFlow backend) leaves them to the first trace of
    the training step, and TensorFlow, seeing variables created there, traces that step a second
    time: 0.4-0.8 s a model on digits, a third of a short tuning trial. Built here from the
    batches' element spec (what Keras itself does under a strategy), the step is traced once.
    Nothing else changes: the variables start at the values they would have had.

    `batches` is a tf.data.Dataset of (features, labels) batches. Returns False, leaving Keras to
    build as before, where the optimizer is built already (the model was trained before), where
    the model runs under a strategy, or where this Keras has no such build step.
    """
    import tensorflow as tf

    build = getattr(model, "_symbolic_build", None)
    under_strategy = tf.distribute.has_strategy() or model.distribute_strategy is not tf.distribute.get_strategy()
    if build is None or under_strategy or model.optimizer.built:
        return False
    build(data_batch=batches.element_spec)
    return True
