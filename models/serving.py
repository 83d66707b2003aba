"""Wrap a trained core model with its preprocessing so the saved model takes raw data.

Raw inputs the served model accepts:
- uint8 (or any integer) images of the core's HxW(xC) shape: cast to float32
  (because the core takes floats), then e.g. an adapted
  `keras.layers.Normalization`.
- integer token ids for a token core: passed through uncast (no preprocessing,
  or any layer mapping ids to ids).
- strings: raw_shape=() (one string per example, a batch is a 1-D string
  tensor) and raw_dtype="string", then an adapted
  `keras.layers.TextVectorization(output_sequence_length=T)` producing the
  (T,) token ids the core was trained on. raw_shape=(1,) works as well,
  because TextVectorization squeezes a trailing axis of 1. Feed strings as a
  tf.string tensor, a tf.data.Dataset or a numpy object array: Keras's
  array adapter rejects numpy unicode ("<U") arrays.
Everything is a built-in or registered layer, so the result loads with
`keras.saving.load_model(path, safe_mode=True)`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

_INTEGER_KINDS = ("i", "u")  # numpy dtype kinds of signed and unsigned integers


@keras.saving.register_keras_serializable(package="deeplearning_tf")
class CastToFloat32(keras.layers.Layer):
    """Cast integer pixels to float32: a serializable stand-in for a Lambda."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def call(self, inputs):
        return ops.cast(inputs, "float32")

    def compute_output_shape(self, input_shape):
        return input_shape


def _is_integer(dtype: str) -> bool:
    return dtype != "string" and np.dtype(dtype).kind in _INTEGER_KINDS


def with_preprocessing(
    core: keras.Model,
    preprocessing: keras.layers.Layer | None,
    *,
    raw_shape: tuple[int, ...],
    raw_dtype: str,
    name: str = "served_model",
) -> keras.Model:
    """raw input -> [cast integers to float32 for a float core] -> [preprocessing] -> core.

    The preprocessing layer must already be adapted. Its output shape must
    match the core's input shape, which is checked here rather than at the
    first prediction.
    """
    raw_shape = tuple(raw_shape)
    inputs = keras.Input(shape=raw_shape, dtype=raw_dtype, name="raw_inputs")
    x = inputs
    if _is_integer(raw_dtype) and not _is_integer(core.inputs[0].dtype):
        x = CastToFloat32(name="cast_to_float32")(x)
    if preprocessing is not None:
        x = preprocessing(x)
    expected = tuple(core.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"preprocessing turns raw_shape {raw_shape!r} into {tuple(x.shape[1:])!r}, "
            f"but core model {core.name!r} expects {expected!r}"
        )
    return keras.Model(inputs, core(x), name=name)
