"""Config loading: TOML into frozen dataclasses, overrides typed by TOML, the vocabulary shared with models.

Every mistake a config can hold (bad values, keys, files, overrides) is in the bad-input matrix,
tests/reliability/test_bad_inputs.py, which checks the message the user sees and that nothing is written."""

from __future__ import annotations

import pytest

from pipeline.config import DEFAULT_CONFIG, Config, flatten, load_config


def test_default_config_loads_into_frozen_dataclasses():
    config = load_config()
    assert config.pipeline.name == "digits"
    assert config.data.name == "digits"
    assert "mlp" in config.tune.space["encoder"] and "lstm" in config.tune.space["encoder"]
    with pytest.raises(AttributeError):
        config.train.epochs = 3  # frozen


def test_overrides_are_typed_by_toml():
    config = load_config(DEFAULT_CONFIG, ["train.epochs=3", "model.encoder=gru", "model.batch_norm=false",
                                          "train.learning_rate=1e-2", 'tune.space.encoder=["mlp", "gru"]'])
    assert config.train.epochs == 3
    assert config.model.encoder == "gru"
    assert config.model.batch_norm is False
    assert config.train.learning_rate == pytest.approx(0.01)
    assert config.tune.space["encoder"] == ["mlp", "gru"]


def test_int_is_accepted_for_float_keys():
    assert load_config(None, ["model.dropout=0"]).model.dropout == 0.0


def test_flatten_covers_every_key():
    flat = flatten(Config())
    assert flat["train.epochs"] == Config().train.epochs
    assert all("." in key for key in flat)


def test_config_vocabulary_matches_models():
    """pipeline/names.py and models/ spell the same choices (the config validates what models builds)."""
    import models
    from pipeline import names

    assert tuple(names.ENCODERS) == tuple(models.ENCODERS)
    assert tuple(names.ATTENTIONS) == tuple(models.ATTENTIONS)
    assert tuple(names.OPTIMIZERS) == tuple(models.OPTIMIZERS)
    assert tuple(names.ACTIVATIONS) == tuple(models.ACTIVATIONS)
    assert tuple(names.SCHEDULES) == tuple(models.SCHEDULES)
