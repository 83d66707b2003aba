"""Encoder-decoder RNNs for the attention study (e.g. reversing digit strings).

Token ids: PAD (0) is padding and is masked everywhere, START (1) opens every
decoder input, END (2) closes every target; data symbols start at
FIRST_SYMBOL (3), so vocab_size counts these three reserved ids too.

Teacher forcing: for a target y_1..y_n the decoder reads START y_1..y_n and
must predict y_1..y_n END; `teacher_forcing` builds both arrays so that their
padding lines up and the loss masks it.

Without attention the decoder starts from the encoder's final state and sees
nothing else of the source: the fixed-length bottleneck of Sutskever et al.
2014 / Cho et al. 2014. With attention each decoder state h_t queries all
encoder states (padding masked) and the context c_t is combined as in Luong
et al. 2015: h~_t = tanh(W_c [c_t; h_t]), then softmax. "additive" scores with
Bahdanau's v^T tanh(W_q h_t + W_k s_j); "dot" with Luong's h_t . s_j.
"""

from __future__ import annotations

from collections.abc import Iterator

import keras
import numpy as np

from models.blocks import (
    embedding_initializer,
    kernel_initializer,
    recurrent_layer,
    seed_stream,
)
from models.vocabulary import ATTENTIONS, RECURRENT_ENCODERS, check_choice

PAD = 0  # padding, masked in the encoder, the decoder and the loss
START = 1  # first decoder input of every sequence
END = 2  # last target of every sequence
FIRST_SYMBOL = 3  # lowest id of a data symbol
ENCODER_INPUT = "encoder_tokens"  # input name of the source ids (batch, Ts)
DECODER_INPUT = "decoder_tokens"  # input name of the teacher-forced ids (batch, Td)


def build_seq2seq(
    *,
    vocab_size: int,
    units: int = 128,
    cell: str = "gru",
    attention: str = "none",
    embedding_dim: int = 32,
    seed: int | None = None,
) -> keras.Model:
    """Teacher-forced model {encoder_tokens, decoder_tokens} -> (batch, Td, vocab) softmax."""
    check_choice("cell", cell, RECURRENT_ENCODERS)
    check_choice("attention", attention, ATTENTIONS)
    if vocab_size <= FIRST_SYMBOL:
        raise ValueError(
            f"vocab_size must exceed the {FIRST_SYMBOL} reserved ids (PAD, START, END), "
            f"got {vocab_size!r}"
        )
    if units < 1 or embedding_dim < 1:
        raise ValueError(
            f"units and embedding_dim must be >= 1, got {units!r} and {embedding_dim!r}"
        )
    seeds = seed_stream(seed)
    encoder_tokens = keras.Input(shape=(None,), dtype="int32", name=ENCODER_INPUT)
    decoder_tokens = keras.Input(shape=(None,), dtype="int32", name=DECODER_INPUT)

    def recurrent(name: str) -> keras.layers.Layer:
        return recurrent_layer(
            cell,
            units,
            init_std=None,
            seeds=seeds,
            name=name,
            return_sequences=True,
            return_state=True,
        )

    def embed(tokens: keras.KerasTensor, name: str) -> keras.KerasTensor:
        return keras.layers.Embedding(
            vocab_size,
            embedding_dim,
            mask_zero=True,
            embeddings_initializer=embedding_initializer(next(seeds)),
            name=name,
        )(tokens)

    encoder_states, *final_state = recurrent("encoder")(embed(encoder_tokens, "encoder_embedding"))
    decoder_states, *_ = recurrent("decoder")(
        embed(decoder_tokens, "decoder_embedding"), initial_state=final_state
    )
    x = decoder_states
    if attention != "none":
        x = _attend(decoder_states, encoder_states, attention, units, seeds)
    outputs = keras.layers.Dense(
        vocab_size,
        activation="softmax",
        kernel_initializer=kernel_initializer(None, next(seeds)),
        name="prediction",
    )(x)
    return keras.Model(
        {ENCODER_INPUT: encoder_tokens, DECODER_INPUT: decoder_tokens},
        outputs,
        name=f"seq2seq_{cell}_{attention}",
    )


def _attend(
    decoder_states: keras.KerasTensor,
    encoder_states: keras.KerasTensor,
    attention: str,
    units: int,
    seeds: Iterator[int | None],
) -> keras.KerasTensor:
    """Luong's attentional hidden state tanh(W_c [c_t; h_t]) for every decoder step.

    Masks reach the attention layer through the Keras mask of each input, so
    encoder padding gets zero weight and decoder padding is masked in the loss.
    """
    if attention == "additive":
        # Keras's AdditiveAttention scores v^T tanh(q + k); projecting q and k
        # first gives Bahdanau's v^T tanh(W_q q + W_k k).
        query = _projection(units, seeds, name="query_projection")(decoder_states)
        keys = _projection(units, seeds, name="key_projection")(encoder_states)
        context = keras.layers.AdditiveAttention(name="attention")([query, encoder_states, keys])
    else:
        context = keras.layers.Attention(name="attention")([decoder_states, encoder_states])
    combined = keras.layers.Concatenate(name="context_and_state")([context, decoder_states])
    return keras.layers.Dense(
        units,
        activation="tanh",
        kernel_initializer=kernel_initializer(None, next(seeds)),
        name="attentional_state",
    )(combined)


def _projection(units: int, seeds: Iterator[int | None], name: str) -> keras.layers.Dense:
    return keras.layers.Dense(
        units, use_bias=False, kernel_initializer=kernel_initializer(None, next(seeds)), name=name
    )


def teacher_forcing(targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(batch, n) PAD-padded targets -> (decoder inputs, decoder targets), each (batch, n + 1).

    Row y_1..y_k PAD.. becomes START y_1..y_k PAD.. and y_1..y_k END PAD..,
    so both have exactly k + 1 unmasked positions.
    """
    targets = np.asarray(targets)
    if targets.ndim != 2:
        raise ValueError(f"targets must be (batch, length), got shape {targets.shape!r}")
    lengths = (targets != PAD).sum(axis=1)
    batch = np.arange(len(targets))
    decoder_inputs = np.concatenate([np.full((len(targets), 1), START), targets], axis=1)
    decoder_targets = np.concatenate([targets, np.full((len(targets), 1), PAD)], axis=1)
    decoder_targets[batch, lengths] = END
    return decoder_inputs.astype("int32"), decoder_targets.astype("int32")


def greedy_decode(model: keras.Model, encoder_tokens: np.ndarray, max_length: int) -> np.ndarray:
    """Feed back the most likely token step by step, up to `max_length` tokens.

    Returns (batch, max_length) int32 symbols; END and everything after it
    are PAD, so each row reads as its non-PAD prefix. The teacher-forced model
    is rerun on the growing prefix (quadratic in max_length, which is fine for
    the short strings of the study and needs no separate inference graph).
    """
    if max_length < 1:
        raise ValueError(f"max_length must be >= 1, got {max_length!r}")
    encoder_tokens = np.asarray(encoder_tokens, dtype="int32")
    batch = len(encoder_tokens)
    decoded = np.full((batch, max_length), PAD, dtype="int32")
    finished = np.zeros(batch, dtype=bool)
    decoder_tokens = np.full((batch, 1), START, dtype="int32")
    for step in range(max_length):
        probabilities = model(
            {ENCODER_INPUT: encoder_tokens, DECODER_INPUT: decoder_tokens}, training=False
        )
        next_tokens = np.argmax(keras.ops.convert_to_numpy(probabilities[:, -1, :]), axis=-1)
        # PAD is never a training target (the loss masks it), so an untrained
        # model predicting it is read as the end of the sequence as well.
        finished |= (next_tokens == END) | (next_tokens == PAD)
        decoded[~finished, step] = next_tokens[~finished]
        if finished.all():
            break
        fed_back = next_tokens[:, None].astype("int32")
        decoder_tokens = np.concatenate([decoder_tokens, fed_back], axis=1)
    return decoded
