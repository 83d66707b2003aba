"""The KerasTuner HyperModel: sample the space, then build exactly as plain training does."""

from __future__ import annotations

import keras
import keras_tuner
import tensorflow as tf

from models.builders import build_model, build_training_state, compile_model
from models.optimizers import optimizer_from
from models.space import hyperparameters_to_kwargs, parse_space, sample_space


class _SpaceHyperModel(keras_tuner.HyperModel):
    """Samples the space on `hp`, then builds with the same functions as plain training."""

    def __init__(self, specs, *, base_model, base_train, model_arguments):
        super().__init__(name="deeplearning_tf")
        self._specs = specs
        self._base_model = dict(base_model)
        self._base_train = dict(base_train)
        self._model_arguments = model_arguments  # input_shape, input_kind, num_classes, ...

    def build(self, hp: keras_tuner.HyperParameters) -> keras.Model:
        values = sample_space(hp, self._specs, self._base_model, self._base_train)
        model_kwargs, train_kwargs = hyperparameters_to_kwargs(
            values, base_model=self._base_model, base_train=self._base_train
        )
        model = build_model(**self._model_arguments, **model_kwargs)
        return compile_model(
            model,
            optimizer=optimizer_from(train_kwargs),
            num_classes=self._model_arguments["num_classes"],
        )

    def fit(self, hp: keras_tuner.HyperParameters, model: keras.Model, *args, **kwargs):
        """model.fit with a tuned batch_size applied to arrays and to tf.data alike.

        Keras silently ignores batch_size for a tf.data.Dataset, so a
        dataset is rebatched instead; validation data keeps its batches since
        the batch size does not change inference. The model's training state is
        built first (`build_training_state`), so the trial traces its step once.
        """
        # `in` is true only for an active hyperparameter, i.e. a tuned batch_size.
        if "batch_size" in hp:
            batch_size = hp.get("batch_size")
            if args and isinstance(args[0], tf.data.Dataset):
                args = (args[0].rebatch(batch_size), *args[1:])
            elif isinstance(kwargs.get("x"), tf.data.Dataset):
                kwargs["x"] = kwargs["x"].rebatch(batch_size)
            else:
                kwargs["batch_size"] = batch_size
        data = args[0] if args else kwargs.get("x")
        if isinstance(data, tf.data.Dataset):
            build_training_state(model, data)
        return model.fit(*args, **kwargs)


def build_hypermodel(
    space: dict,
    *,
    base_model: dict,
    base_train: dict,
    input_shape: tuple[int, ...],
    input_kind: str,
    num_classes: int,
    vocab_size: int | None = None,
    seed: int | None = None,
) -> keras_tuner.HyperModel:
    """A HyperModel over `space`; fails here, not mid-search, on a bad space or base.

    `build(hp)` samples the space and calls build_model, build_optimizer and
    compile_model; `fit` applies a tuned batch_size.
    """
    specs = parse_space(space)
    hypermodel = _SpaceHyperModel(
        specs,
        base_model=base_model,
        base_train=base_train,
        model_arguments={
            "input_shape": tuple(input_shape),
            "input_kind": input_kind,
            "num_classes": num_classes,
            "vocab_size": vocab_size,
            "seed": seed,
        },
    )
    # Declaring the space once checks the conditionals against the base
    # configs; merging checks the base keys.
    values = sample_space(keras_tuner.HyperParameters(), specs, base_model, base_train)
    hyperparameters_to_kwargs(values, base_model=base_model, base_train=base_train)
    return hypermodel
