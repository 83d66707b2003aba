"""Config loading and validation: every mistake is caught before anything runs."""

from __future__ import annotations

import pytest

from pipeline.config import DEFAULT_CONFIG, Config, ConfigError, flatten, load_config, parse_override


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


@pytest.mark.parametrize(
    ("override", "named", "allowed"),
    [
        ("train.epochs=0", "train.epochs", "[1, 100000]"),
        ("model.dropout=1.5", "model.dropout", "[0, 1)"),
        ("model.dropout=-0.1", "model.dropout", "[0, 1)"),
        ("model.encoder=transformer", "model.encoder", "mlp, cnn, simple_rnn, lstm, gru"),
        ("train.optimizer=rmsprop", "train.optimizer", "sgd, momentum, adam"),
        ("tune.algorithm=evolution", "tune.algorithm", "random, bayesian, hyperband, grid"),
        ("train.learning_rate=0", "train.learning_rate", "(0, 10]"),
        ("train.batch_size=0", "train.batch_size", "[1, 1000000]"),
        ("train.epochs=2.5", "train.epochs", "integer"),
        ("model.batch_norm=1", "model.batch_norm", "true or false"),
        ("model.units=abc", "model.units", "integer"),
        ("data.train_split=train[:80", "data.train_split", "train[:80%]"),
        ("data.test_split=train[:120%]", "data.test_split", "[-100%, 100%]"),
        ("model.unit=3", "model.unit", "did you mean model.units"),
        ("nosuch.key=3", "[nosuch]", "pipeline, data, model"),
        ('tune.space.encoder=["transformer"]', "tune.space", "mlp, cnn"),
        ("tune.space.colour=[1, 2]", "tune.space.colour", "tunable keys"),
        ("model.attention=additive", "model.attention", "recurrent encoder"),
    ],
)
def test_bad_values_name_the_key_and_what_is_allowed(override, named, allowed):
    with pytest.raises(ConfigError) as caught:
        load_config(None, [override])
    assert named in str(caught.value)
    assert allowed in str(caught.value)


@pytest.mark.parametrize("text", ["train.epochs", "epochs=3", ".epochs=3"])
def test_malformed_set(text):
    with pytest.raises(ConfigError, match="--set"):
        parse_override(text)


def test_config_file_problems(tmp_path):
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(missing)
    empty = tmp_path / "empty.toml"
    empty.write_text("  \n")
    with pytest.raises(ConfigError, match="is empty"):
        load_config(empty)
    binary = tmp_path / "latin1.toml"
    binary.write_bytes("[pipeline]\nname = 'caf\xe9'\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary)
    broken = tmp_path / "broken.toml"
    broken.write_text("[train\nepochs = 3\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path)


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
