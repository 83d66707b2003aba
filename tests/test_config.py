"""Config loading: TOML into frozen dataclasses, overrides typed by TOML, the hyperparameter vocabulary read from models.vocabulary without Keras.

Every mistake a config can hold (bad values, keys, files, overrides) is in the bad-input matrix,
tests/reliability/test_bad_inputs.py, which checks the message the user sees and that nothing is written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_loading_a_config_does_not_start_keras():
    """The config checks hyperparameters against models.vocabulary, which must stay Keras-free (and fast)."""
    code = ("import sys; from pipeline.config import load_config; load_config(); "
            "print(sorted(m for m in ('keras', 'tensorflow', 'keras_tuner') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    assert result.stdout.strip() == "[]"


