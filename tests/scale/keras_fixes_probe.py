"""Does Keras still fail without components/keras_fixes.py? Run by tests/scale/test_keras_fixes.py.

`python tests/scale/keras_fixes_probe.py mirrored` probes fix 2 in one process; with TF_CONFIG set to a
two-worker cluster, `... multi_worker` (one process per worker) probes fixes 1 and 3. Each fit runs first
on the unpatched Keras, then again after `keras_fixes.apply()`. The last line of stdout is a JSON object:
what each unpatched call raised (type and message), and the patched fit's epochs and weights digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root, for `components`


def _failure(call) -> dict[str, str] | None:
    try:
        call()
    except Exception as exc:  # what the unpatched Keras raises is the observation
        return {"type": type(exc).__name__, "message": str(exc)[:4000]}
    return None


def main(mode: str) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from components import keras_fixes

    strategy = tf.distribute.MirroredStrategy() if mode == "mirrored" else tf.distribute.MultiWorkerMirroredStrategy()
    rows = np.random.default_rng(0).random((64, 8), dtype=np.float32)
    labels = (rows.sum(axis=1) > 4).astype("int32")
    train = tf.data.Dataset.from_tensor_slices((rows, labels)).repeat().batch(16)
    # A finite validation stream whose length tf.data does not know, as the pipeline's shard readers are.
    validation = tf.data.Dataset.from_tensor_slices((rows[:32], labels[:32])).filter(lambda x, y: True).batch(16)

    def model():
        keras.utils.set_random_seed(1)
        with strategy.scope():
            built = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4, activation="relu"),
                                      keras.layers.Dense(2)])
            built.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        return built

    def fit(built):
        return built.fit(train, steps_per_epoch=4, epochs=2, validation_data=validation, validation_steps=2,
                         verbose=0)

    result: dict = {"mode": mode}
    result["unpatched_fit"] = _failure(lambda: fit(model()))
    if mode == "multi_worker":
        from keras.src.backend.tensorflow import trainer

        result["unpatched_metric_reduction"] = _failure(
            lambda: trainer.reduce_per_replica({"loss": tf.constant(0.5)}, strategy, "auto"))
    keras_fixes.apply()
    patched = model()
    history = fit(patched).history
    digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in patched.get_weights()))
    result["patched"] = {"epochs": len(history["loss"]), "weights_sha256": digest.hexdigest()}
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])), flush=True)
