"""Every model type builds, learns a little and survives a safe .keras round trip."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import models

# One full-batch step per epoch, unshuffled: the step count that makes the
# loss drop clearly above dropout's noise while tracing still dominates the cost.
EPOCHS = 20

# (encoder, input_kind, input_shape, extra build_model kwargs): each encoder,
# each input kind, each attention kind and bidirectional appear at least once.
TRAINED_CASES = [
    ("mlp", "image", (6, 5), {}),
    ("mlp", "tokens", (7,), {}),
    ("cnn", "image", (6, 5, 2), {}),
    ("cnn", "sequence", (7, 2), {"batch_norm": False}),
    ("simple_rnn", "image", (6, 5, 2), {"bidirectional": True}),
    ("lstm", "tokens", (7,), {"attention": "additive"}),
    ("gru", "sequence", (7, 2), {"attention": "dot", "layers": 1}),
]


def _train(model: keras.Model, x, y, num_classes: int) -> keras.callbacks.History:
    optimizer = models.build_optimizer("adam", 0.02)
    models.compile_model(model, optimizer=optimizer, num_classes=num_classes)
    return model.fit(x, y, epochs=EPOCHS, batch_size=len(y), shuffle=False, verbose=0)


def _assert_round_trip(model: keras.Model, x, path) -> None:
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
    )


@pytest.mark.parametrize("input_kind", models.INPUT_KINDS)
@pytest.mark.parametrize("encoder", models.ENCODERS)
def test_every_encoder_builds_for_every_input_kind(encoder, input_kind, make_inputs, vocab_size):
    input_shape = {"image": (6, 5), "sequence": (7, 2), "vector": (9,), "tokens": (7,)}[input_kind]
    model = models.build_model(
        input_shape=input_shape,
        input_kind=input_kind,
        num_classes=3,
        encoder=encoder,
        units=4,
        embedding_dim=3,
        vocab_size=vocab_size,
        seed=0,
    )
    probabilities = keras.ops.convert_to_numpy(model(make_inputs(input_kind, input_shape, n=4)))
    assert probabilities.shape == (4, 3)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize(("encoder", "input_kind", "input_shape", "extra"), TRAINED_CASES)
def test_model_trains_and_round_trips(
    encoder, input_kind, input_shape, extra, make_inputs, vocab_size, assert_learned, tmp_path
):
    x = make_inputs(input_kind, input_shape)
    y = np.arange(len(x)) % 3
    model = models.build_model(
        input_shape=input_shape,
        input_kind=input_kind,
        num_classes=3,
        encoder=encoder,
        units=6,
        embedding_dim=4,
        vocab_size=vocab_size,
        seed=0,
        **extra,
    )
    history = _train(model, x, y, num_classes=3)
    assert set(history.history) == {"loss", models.CLASSIFICATION_METRIC}
    assert_learned(history)
    _assert_round_trip(model, x, tmp_path / "model.keras")


@pytest.mark.slow
def test_regression_head_trains_on_the_adding_problem_and_round_trips(
    rng, assert_learned, tmp_path
):
    # The adding problem (Hochreiter & Schmidhuber 1997): sum the two marked values.
    values = rng.uniform(size=(16, 7))
    markers = np.zeros_like(values)
    for row in markers:
        row[rng.choice(7, size=2, replace=False)] = 1.0
    x = np.stack([values, markers], axis=-1).astype("float32")
    y = (values * markers).sum(axis=1).astype("float32")
    model = models.build_model(
        input_shape=(7, 2), input_kind="sequence", num_classes=0, encoder="lstm", units=6, seed=0
    )
    assert model.output_shape == (None, 1)
    assert model.get_layer("prediction").activation is keras.activations.linear
    history = _train(model, x, y, num_classes=0)
    assert set(history.history) == {"loss", models.REGRESSION_METRIC}
    assert_learned(history)
    _assert_round_trip(model, x, tmp_path / "regressor.keras")


@pytest.mark.slow
def test_served_image_model_takes_uint8_and_round_trips(rng, tmp_path):
    raw = rng.integers(0, 256, size=(16, 6, 5), dtype=np.uint8)
    normalization = keras.layers.Normalization(axis=None)
    normalization.adapt(raw.astype("float32"))
    core = models.build_model(
        input_shape=(6, 5), input_kind="image", num_classes=3, units=4, seed=0
    )
    _train(
        core, keras.ops.convert_to_numpy(normalization(raw.astype("float32"))), np.arange(16) % 3, 3
    )

    served = models.with_preprocessing(core, normalization, raw_shape=(6, 5), raw_dtype="uint8")
    # No cast layer: the float32 Input converts the uint8 pixels itself.
    assert served.input.dtype == "float32"
    assert [type(layer).__name__ for layer in served.layers] == [
        "InputLayer",
        "Normalization",
        "Functional",
    ]
    expected = core(normalization(raw.astype("float32")), training=False)
    np.testing.assert_allclose(served(raw, training=False), expected, rtol=1e-6)
    _assert_round_trip(served, raw, tmp_path / "served.keras")


@pytest.mark.slow
def test_served_text_model_takes_raw_strings_and_round_trips(tmp_path):
    texts = tf.constant(
        ["the cat sat", "a dog ran far away", "cat", "the dog sat", "a cat ran"] * 2
    )
    vectorizer = keras.layers.TextVectorization(max_tokens=20, output_sequence_length=5)
    vectorizer.adapt(texts)
    core = models.build_model(
        input_shape=(5,),
        input_kind="tokens",
        num_classes=2,
        encoder="gru",
        attention="dot",
        units=4,
        embedding_dim=3,
        vocab_size=vectorizer.vocabulary_size(),
        seed=0,
    )
    tokens = vectorizer(texts)
    _train(core, tokens, np.arange(10) % 2, 2)

    served = models.with_preprocessing(core, vectorizer, raw_shape=(), raw_dtype="string")
    np.testing.assert_allclose(
        served(texts, training=False), core(tokens, training=False), rtol=1e-6
    )
    _assert_round_trip(served, texts, tmp_path / "served_text.keras")


def test_preprocessing_that_does_not_fit_the_core_is_rejected():
    core = models.build_model(
        input_shape=(6, 5), input_kind="image", num_classes=3, units=4, seed=0
    )
    with pytest.raises(ValueError, match=r"\(6, 5\)"):
        models.with_preprocessing(core, None, raw_shape=(5, 6), raw_dtype="float32")


def test_integer_token_ids_reach_a_token_core_uncast(make_inputs, vocab_size):
    core = models.build_model(
        input_shape=(7,),
        input_kind="tokens",
        num_classes=2,
        encoder="gru",
        units=3,
        vocab_size=vocab_size,
        seed=0,
    )
    served = models.with_preprocessing(core, None, raw_shape=(7,), raw_dtype="int32")
    assert served.input.dtype == "int32"
    tokens = make_inputs("tokens", (7,), n=4)
    np.testing.assert_array_equal(served(tokens), core(tokens))


@pytest.mark.parametrize("encoder", ["mlp", "lstm"])
def test_built_training_state_traces_the_step_once_and_trains_identically(encoder, make_inputs, rng, monkeypatch):
    """build_training_state creates the optimizer's and metrics' variables up front, so fit traces its
    training step once instead of twice; the weights after training are those of a plain fit."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    traced = []
    plain_step = TensorFlowTrainer.train_step

    def counting_step(self, data):
        traced.append(self.name)
        return plain_step(self, data)

    monkeypatch.setattr(TensorFlowTrainer, "train_step", counting_step)
    x = make_inputs("image", (6, 5), n=32)
    y = rng.integers(0, 3, 32)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(8, drop_remainder=True).repeat()

    def trained(prepare: bool) -> tuple[list[np.ndarray], int]:
        keras.utils.set_random_seed(1)
        model = models.build_model(input_shape=(6, 5), input_kind="image", num_classes=3, encoder=encoder,
                                   units=8, layers=1, dropout=0.2, seed=1, name=f"{encoder}_{prepare}")
        models.compile_model(model, optimizer=models.build_optimizer("adam", 0.01), num_classes=3)
        if prepare:
            assert models.build_training_state(model, batches)
            assert model.optimizer.built
            assert not models.build_training_state(model, batches)  # built already: nothing to do
        model.fit(batches, steps_per_epoch=4, epochs=2, verbose=0)
        return model.get_weights(), traced.count(model.name)

    plain_weights, plain_traces = trained(False)
    built_weights, built_traces = trained(True)
    assert plain_traces == 2  # Keras's own way: a variable-creating trace, then the real one
    assert built_traces == 1
    for plain, built in zip(plain_weights, built_weights, strict=True):
        np.testing.assert_array_equal(plain, built)
