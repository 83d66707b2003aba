"""Tune and train build alike: a trial and the train stage given the same values build the same model and optimizer."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, load_config


def test_a_trial_and_train_build_the_same_model_and_optimizer_schedule_included():
    import keras_tuner

    import models
    from components.hyperparameters import base_values, clean

    config = load_config(None, ["train.schedule=cosine", "train.optimizer=momentum", "train.nesterov=true",
                                "train.clipnorm=1.0", "model.dropout=0.3"])
    base_model, base_train = base_values(config, steps_per_epoch=12, epochs=5)
    assert (base_train["schedule"], base_train["decay_steps"]) == ("cosine", 60)
    inputs = dict(input_shape=(8, 8), input_kind="image", num_classes=10, seed=config.pipeline.seed)
    hypermodel = models.build_hypermodel(dict(config.tune.space), base_model=base_model, base_train=base_train, **inputs)
    hp = keras_tuner.HyperParameters()
    trial = hypermodel.build(hp)  # what KerasTuner trains for these values

    model_kwargs, train_kwargs = models.hyperparameters_to_kwargs(clean(hp.values), base_model=base_model,
                                                                  base_train=base_train)
    trained = models.build_model(**inputs, **model_kwargs)  # what the train stage builds for them
    optimizer = models.optimizer_from(train_kwargs)
    assert trial.get_config() == trained.get_config()
    unnamed = lambda config: {k: v for k, v in config.items() if k != "name"}  # noqa: E731  (Keras numbers names)
    assert unnamed(trial.optimizer.get_config()) == unnamed(optimizer.get_config())
    assert optimizer.get_config()["nesterov"] and optimizer.get_config()["clipnorm"] == 1.0
    schedule = optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "CosineDecay" and schedule["config"]["decay_steps"] == 60


def test_hparams_files_are_checked_against_the_tunable_keys(tmp_path):
    from components.hyperparameters import read_file

    good = tmp_path / "good.json"
    good.write_text('{"units": 32, "optimizer": "sgd"}')
    assert read_file(str(good)) == {"units": 32, "optimizer": "sgd"}
    bad = tmp_path / "bad.json"
    bad.write_text('{"unitz": 32}')
    with pytest.raises(ConfigError, match="unknown keys \\['unitz'\\]"):
        read_file(str(bad))
