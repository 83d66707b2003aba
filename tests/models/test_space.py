"""The search space: valid combinations only, ranges that grid search can visit."""

from __future__ import annotations

import math

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import models

BASE_MODEL = {"units": 4, "layers": 1, "dropout": 0.0, "embedding_dim": 3}
BASE_TRAIN = {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 8}
# Sequences T x F can feed every encoder, so every combination builds.
DATA = {"input_shape": (5, 2), "input_kind": "sequence", "num_classes": 3}
CONDITIONAL_SPACE = {
    "encoder": ["mlp", "lstm"],
    "attention": ["none", "additive"],
    "optimizer": ["sgd", "momentum"],
    "momentum": {"values": [0.5, 0.9]},
}


def _hypermodel(space: dict, **overrides) -> keras_tuner.HyperModel:
    arguments = {"base_model": BASE_MODEL, "base_train": BASE_TRAIN, **DATA, "seed": 0, **overrides}
    return models.build_hypermodel(space, **arguments)


def _hyperparameters(values: dict) -> keras_tuner.HyperParameters:
    hp = keras_tuner.HyperParameters()
    hp.values.update(values)
    return hp


def test_enumeration_has_attention_only_with_recurrent_encoders_and_momentum_only_under_momentum():
    combinations = models.enumerate_space(CONDITIONAL_SPACE)
    # (mlp + lstm x 2 attentions) x (sgd + momentum x 2 values)
    assert len(combinations) == 3 * 3
    assert len({tuple(sorted(c.items())) for c in combinations}) == len(combinations)
    for combination in combinations:
        assert ("attention" in combination) == (combination["encoder"] in models.RECURRENT_ENCODERS)
        assert ("momentum" in combination) == (combination["optimizer"] == "momentum")


def test_every_enumerated_combination_builds_the_model_it_describes():
    hypermodel = _hypermodel(CONDITIONAL_SPACE)
    for combination in models.enumerate_space(CONDITIONAL_SPACE):
        model_kwargs, train_kwargs = models.hyperparameters_to_kwargs(
            combination, base_model=BASE_MODEL, base_train=BASE_TRAIN
        )
        assert model_kwargs["attention"] == combination.get("attention", "none")
        model = hypermodel.build(_hyperparameters(combination))
        attention_layers = [
            type(layer).__name__
            for layer in model.layers
            if isinstance(layer, keras.layers.Attention)  # AdditiveAttention included
        ]
        expected = {"none": [], "additive": ["AdditiveAttention"], "dot": ["Attention"]}
        assert attention_layers == expected[model_kwargs["attention"]]
        assert model.optimizer.momentum == combination.get("momentum", 0.0)
        assert train_kwargs["batch_size"] == BASE_TRAIN["batch_size"]


def test_enumeration_lists_exactly_what_grid_search_visits(tmp_path):
    space = {**CONDITIONAL_SPACE, "dropout": {"min": 0.0, "max": 0.2, "step": 0.1}}
    visited = []

    class RecordingGridSearch(keras_tuner.GridSearch):
        def run_trial(self, trial, *args, **kwargs):
            visited.append(dict(trial.hyperparameters.values))
            return 0.0

    tuner = RecordingGridSearch(
        hypermodel=_hypermodel(space), objective="val_loss", directory=tmp_path, project_name="grid"
    )
    tuner.search(verbose=0)
    as_set = lambda combinations: {tuple(sorted(c.items())) for c in combinations}
    enumerated = models.enumerate_space(space)
    assert len(enumerated) == 9 * 3
    assert as_set(visited) == as_set(enumerated)


def test_ranges_become_keras_tuner_grids():
    enumerated = lambda entry, key: [c[key] for c in models.enumerate_space({key: entry})]
    assert enumerated({"min": 4, "max": 16, "step": 4}, "units") == [4, 8, 12, 16]
    assert enumerated([1, 3], "layers") == [1, 2, 3]
    assert enumerated({"values": [32, 128]}, "batch_size") == [32, 128]
    log_grid = enumerated(
        {"min": 1e-3, "max": 1e-1, "step": 10, "sampling": "log"}, "learning_rate"
    )
    np.testing.assert_allclose(log_grid, [1e-3, 1e-2, 1e-1])
    # Without a step: the low end plus the centres of ten equal bins.
    dropout = sorted(enumerated([0.0, 0.5], "dropout"))
    np.testing.assert_allclose(dropout, [0.0] + [0.025 + 0.05 * i for i in range(10)])
    rates = sorted(enumerated([1e-4, 1e-2], "learning_rate"))
    assert len(rates) == 11 and rates[0] == 1e-4 and rates[-1] < 1e-2
    ratios = [later / earlier for earlier, later in zip(rates[1:], rates[2:])]
    np.testing.assert_allclose(ratios, math.pow(100, 0.1), rtol=1e-6)


def test_conditional_key_under_a_fixed_parent_follows_the_base():
    space = {"momentum": {"values": [0.5, 0.9]}}
    under_momentum = {"optimizer": "momentum", "learning_rate": 0.1}
    assert models.enumerate_space(space, base_train=under_momentum) == [
        {"momentum": 0.5},
        {"momentum": 0.9},
    ]
    with pytest.raises(ValueError, match="'momentum'.*'adam'"):
        _hypermodel(space)
    with pytest.raises(ValueError, match="'attention'.*'mlp'"):
        _hypermodel({"attention": ["none", "dot"]})
    assert (
        len(models.enumerate_space({"attention": ["none", "dot"]}, base_model={"encoder": "gru"}))
        == 2
    )


def test_base_attention_is_dropped_when_the_tuner_picks_a_feedforward_encoder():
    base_model = {**BASE_MODEL, "encoder": "lstm", "attention": "additive"}
    model_kwargs, _ = models.hyperparameters_to_kwargs(
        {"encoder": "cnn"}, base_model=base_model, base_train=BASE_TRAIN
    )
    assert model_kwargs["attention"] == "none"
    model_kwargs, _ = models.hyperparameters_to_kwargs(
        {"encoder": "gru"}, base_model=base_model, base_train=BASE_TRAIN
    )
    assert model_kwargs["attention"] == "additive"


def test_sampled_points_build_compiled_models_with_the_sampled_values():
    space = {
        "encoder": ["cnn", "gru"],
        "units": {"values": [3, 5]},
        "activation": ["tanh", "relu"],
        "batch_norm": [True, False],
        "optimizer": ["adam", "momentum"],
        "learning_rate": [1e-3, 1e-1],
        "momentum": [0.5, 0.95],
    }
    hypermodel = _hypermodel(space)
    rng = np.random.default_rng(0)
    combinations = models.enumerate_space(space)
    for index in rng.choice(len(combinations), size=3, replace=False):
        values = combinations[index]
        model = hypermodel.build(_hyperparameters(values))
        assert model.optimizer is not None and model.loss == "sparse_categorical_crossentropy"
        assert model.get_layer("prediction").input.shape[-1] == values["units"]
        expected_lr = float(model.optimizer.learning_rate.numpy())
        assert expected_lr == pytest.approx(values["learning_rate"], rel=1e-6)


@pytest.mark.parametrize("as_dataset", [False, True])
def test_fit_applies_a_tuned_batch_size(as_dataset):
    hypermodel = _hypermodel({"batch_size": {"values": [4]}})
    hp = _hyperparameters({"batch_size": 4})
    model = hypermodel.build(hp)
    x = np.zeros((12, 5, 2), dtype="float32")
    y = np.zeros(12, dtype="int32")
    steps = []
    counter = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: steps.append(batch)
    )
    if as_dataset:
        data = tf.data.Dataset.from_tensor_slices((x, y)).batch(6)
        hypermodel.fit(hp, model, data, epochs=1, verbose=0, callbacks=[counter])
    else:
        hypermodel.fit(hp, model, x, y, epochs=1, verbose=0, callbacks=[counter])
    assert len(steps) == 3


@pytest.mark.parametrize(
    ("space", "named"),
    [
        ({"optimiser": ["adam"]}, "'optimiser'"),
        ({"encoder": []}, "'encoder'"),
        ({"encoder": ["lstm", "transformer"]}, "transformer"),
        ({"attention": ["none", "dot"], "encoder": ["mlp", "cnn"]}, "'attention'"),
        ({"momentum": [0.5, 0.9], "optimizer": ["adam"]}, "'momentum'"),
        ({"dropout": [0.0, 1.5]}, "'dropout'"),
        ({"units": [0, 8]}, "'units'"),
        ({"units": [8.5, 16]}, "'units'"),
        ({"units": {"min": 4, "max": 2}}, "'units'"),
        ({"layers": {"min": 1, "max": 3, "step": 0}}, "'layers'"),
        (
            {"learning_rate": {"min": 1e-3, "max": 1e-1, "step": 0.5, "sampling": "log"}},
            "'learning_rate'",
        ),
        ({"learning_rate": {"min": 0.0, "max": 0.1}}, "'learning_rate'"),
        ({"batch_norm": ["yes"]}, "'batch_norm'"),
        ({"batch_norm": {"min": 0, "max": 1}}, "'batch_norm'"),
        ({"activation": "relu"}, "'activation'"),
        ({"units": [8, 8, 16]}, "'units'"),
        ({"batch_size": {"values": [32], "step": 2}}, "'batch_size'"),
    ],
)
def test_validate_space_rejects_bad_spaces_naming_the_key(space, named):
    with pytest.raises(ValueError, match=named):
        models.validate_space(space)


def test_base_configs_with_unknown_keys_are_rejected():
    with pytest.raises(ValueError, match="epochs"):
        _hypermodel({}, base_train={**BASE_TRAIN, "epochs": 3})
    with pytest.raises(ValueError, match="learning_rate"):
        _hypermodel({}, base_train={"optimizer": "adam"})
