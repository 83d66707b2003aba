"""Encoder-decoder models: teacher forcing, masking, attention and greedy decoding."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import models
from models import END, PAD, START

VOCAB = 8  # PAD, START, END and the five symbols 3..7


@pytest.fixture
def reversal(rng):
    """Digit strings of length 2..4 and their reversals, PAD-padded to 4."""
    source = np.zeros((16, 4), dtype="int32")
    target = np.zeros((16, 4), dtype="int32")
    for row, length in enumerate(rng.integers(2, 5, size=16)):
        symbols = rng.integers(models.FIRST_SYMBOL, VOCAB, size=length)
        source[row, :length] = symbols
        target[row, :length] = symbols[::-1]
    return source, target


def _inputs(source: np.ndarray, decoder_tokens: np.ndarray) -> dict[str, np.ndarray]:
    return {models.ENCODER_INPUT: source, models.DECODER_INPUT: decoder_tokens}


def test_reserved_ids_are_distinct_and_below_the_first_symbol():
    assert len({PAD, START, END}) == 3
    assert PAD == 0 and max(START, END) < models.FIRST_SYMBOL


def test_teacher_forcing_shifts_targets_and_keeps_padding_aligned():
    decoder_inputs, decoder_targets = models.teacher_forcing(np.array([[5, 4, 3], [6, 7, 0]]))
    np.testing.assert_array_equal(decoder_inputs, [[START, 5, 4, 3], [START, 6, 7, PAD]])
    np.testing.assert_array_equal(decoder_targets, [[5, 4, 3, END], [6, 7, END, PAD]])


@pytest.mark.slow
@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_seq2seq_trains_and_round_trips(attention, reversal, assert_learned, tmp_path):
    source, target = reversal
    decoder_inputs, decoder_targets = models.teacher_forcing(target)
    model = models.build_seq2seq(
        vocab_size=VOCAB, units=8, attention=attention, embedding_dim=4, seed=0
    )
    models.compile_model(model, optimizer=models.build_optimizer("adam", 0.02), num_classes=VOCAB)
    history = model.fit(
        _inputs(source, decoder_inputs),
        decoder_targets,
        epochs=20,
        batch_size=16,
        shuffle=False,
        verbose=0,
    )
    assert_learned(history)

    inputs = _inputs(source, decoder_inputs)
    probabilities = keras.ops.convert_to_numpy(model(inputs, training=False))
    assert probabilities.shape == (16, 5, VOCAB)
    model.save(tmp_path / "seq2seq.keras")
    loaded = keras.saving.load_model(tmp_path / "seq2seq.keras", safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(inputs, training=False)), probabilities
    )


@pytest.mark.parametrize("attention", ["none", "additive", "dot"])
def test_encoder_padding_is_masked(attention, reversal):
    source, target = reversal
    decoder_inputs, _ = models.teacher_forcing(target)
    model = models.build_seq2seq(
        vocab_size=VOCAB, units=6, attention=attention, embedding_dim=4, seed=0
    )
    padded_source = np.concatenate([source, np.zeros((16, 3), dtype="int32")], axis=1)
    np.testing.assert_allclose(
        model(_inputs(padded_source, decoder_inputs)),
        model(_inputs(source, decoder_inputs)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_only_attention_models_look_past_the_final_encoder_state():
    layer_types = {
        kind: {
            type(layer).__name__
            for layer in models.build_seq2seq(vocab_size=VOCAB, units=4, attention=kind).layers
        }
        for kind in ("none", "additive", "dot")
    }
    assert not {"Attention", "AdditiveAttention"} & layer_types["none"]
    assert "AdditiveAttention" in layer_types["additive"]
    assert "Attention" in layer_types["dot"]


def _biased_model(favourite: int) -> keras.Model:
    """A model whose output layer always prefers `favourite`, whatever it reads."""
    model = models.build_seq2seq(vocab_size=VOCAB, units=4, attention="dot", seed=0)
    prediction = model.get_layer("prediction")
    bias = np.zeros(VOCAB, dtype="float32")
    bias[favourite] = 100.0
    prediction.kernel.assign(np.zeros(prediction.kernel.shape, dtype="float32"))
    prediction.bias.assign(bias)
    return model


def test_greedy_decode_feeds_back_its_choice_until_max_length(reversal):
    source, _ = reversal
    decoded = models.greedy_decode(_biased_model(favourite=5), source[:3], max_length=4)
    np.testing.assert_array_equal(decoded, np.full((3, 4), 5))


def test_greedy_decode_drops_end_and_pads_after_it(reversal):
    source, _ = reversal
    decoded = models.greedy_decode(_biased_model(favourite=END), source[:3], max_length=4)
    np.testing.assert_array_equal(decoded, np.full((3, 4), PAD))


def test_greedy_decode_first_step_is_the_argmax_after_start(reversal):
    source, _ = reversal
    model = models.build_seq2seq(vocab_size=VOCAB, units=6, attention="additive", seed=1)
    decoded = models.greedy_decode(model, source[:4], max_length=3)
    first = keras.ops.convert_to_numpy(
        model(_inputs(source[:4], np.full((4, 1), START, dtype="int32")))
    )
    expected = first[:, 0].argmax(axis=-1)
    finished = (expected == END) | (expected == PAD)
    np.testing.assert_array_equal(decoded[:, 0], np.where(finished, PAD, expected))


def test_invalid_seq2seq_arguments_name_the_value():
    with pytest.raises(ValueError, match="'transformer'"):
        models.build_seq2seq(vocab_size=VOCAB, cell="transformer")
    with pytest.raises(ValueError, match="'bahdanau'"):
        models.build_seq2seq(vocab_size=VOCAB, attention="bahdanau")
    with pytest.raises(ValueError, match="vocab_size"):
        models.build_seq2seq(vocab_size=3)
