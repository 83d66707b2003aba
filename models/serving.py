"""Wrap a trained core model with its preprocessing so the saved model takes raw data.

Raw inputs the served model accepts:
- uint8 (or any integer) images of the core's HxW(xC) shape, for a core that
  takes floats. The served model's input is then declared float32: Keras
  converts integer numpy arrays and tensors to an Input's dtype in `predict`
  and `__call__`, so feed the raw uint8 pixels as they are; an adapted
  `keras.layers.Normalization` (or any layer taking floats) follows.
- integer token ids for a token core: passed through at their raw dtype (no
  preprocessing, or any layer mapping ids to ids).
- strings: raw_shape=() (one string per example, a batch is a 1-D string
  tensor) and raw_dtype="string", then an adapted
  `keras.layers.TextVectorization(output_sequence_length=T)` producing the
  (T,) token ids the core was trained on. raw_shape=(1,) works as well,
  because TextVectorization squeezes a trailing axis of 1. Feed strings as a
  tf.string tensor, a tf.data.Dataset or a numpy object array: Keras's
  array adapter rejects numpy unicode ("<U") arrays.
Nothing custom is added (no Lambda, no registered class): with built-in
preprocessing and a build_model core, the result loads with
`keras.saving.load_model(path, safe_mode=True)` in a process that never
imports this package.
"""

from __future__ import annotations

import keras
import numpy as np

_INTEGER_KINDS = ("i", "u")  # numpy dtype kinds of signed and unsigned integers


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
    """raw input -> [preprocessing] -> core; integer raw data for a float core enters as float32.

    The preprocessing layer must already be adapted. Its output shape must
    match the core's input shape, which is checked here rather than at the
    first prediction.
    """
    raw_shape = tuple(raw_shape)
    input_dtype = raw_dtype
    if _is_integer(raw_dtype) and not _is_integer(core.inputs[0].dtype):
        # The Input converts the integers; a cast layer would be a custom class.
        input_dtype = "float32"
    inputs = keras.Input(shape=raw_shape, dtype=input_dtype, name="raw_inputs")
    x = inputs
    if preprocessing is not None:
        x = preprocessing(x)
    expected = tuple(core.inputs[0].shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"preprocessing turns raw_shape {raw_shape!r} into {tuple(x.shape[1:])!r}, "
            f"but core model {core.name!r} expects {expected!r}"
        )
    return keras.Model(inputs, core(x), name=name)


def stack(preprocessing: keras.Model, core: keras.Model, *, name: str = "served_model") -> keras.Model:
    """raw inputs -> a preprocessing model (its raw inputs, possibly a dict of named columns) -> core.

    For preprocessing that is a whole model rather than one layer, e.g. a `keras.utils.FeatureSpace`
    over tabular columns: the served model then takes the same raw inputs as `preprocessing`.
    """
    encoded = preprocessing.outputs[0]
    expected = tuple(core.inputs[0].shape[1:])
    if tuple(encoded.shape[1:]) != expected:
        raise ValueError(
            f"preprocessing {preprocessing.name!r} outputs shape {tuple(encoded.shape[1:])!r}, "
            f"but core model {core.name!r} expects {expected!r}"
        )
    return keras.Model(preprocessing.input, core(encoded), name=name)
