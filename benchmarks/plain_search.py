"""The tuning benchmark's baseline: the job of a same-budget pipeline run done by hand in one plain script.

What an ML engineer would write without the project: load digits with `tfds.load`, a KerasTuner
RandomSearch (6 trials x 5 epochs over encoder mlp|lstm, dropout 0-0.5, batch norm on/off), each
trial an MLflow run with its epochs' metrics, then a 20-epoch fit of the best hyperparameters with
early stopping (patience 3), test accuracy, and the model logged with `mlflow.tensorflow.log_model`
as its documentation shows (MLflow then infers the model's requirements itself). No cache, no
validation, no registry. Run: `python -m benchmarks.plain_search OUT_DIR` with MLFLOW_TRACKING_URI
and TFDS_DATA_DIR set; it prints one JSON line with its figures.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

TRIALS, TRIAL_EPOCHS, TRAIN_EPOCHS, PATIENCE, BATCH, SEED = 6, 5, 20, 3, 32, 42


def main(out: Path) -> int:
    started = time.perf_counter()
    import keras
    import keras_tuner
    import mlflow
    import numpy as np
    import tensorflow_datasets as tfds

    import components.datasets.digits  # noqa: F401  registers the digits builder with TFDS

    def arrays(split: str):
        images, labels = tfds.as_numpy(tfds.load("digits", split=split, as_supervised=True, batch_size=-1))
        return images.reshape(len(images), 8, 8).astype("float32") / 16.0, labels.astype("int64")

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = (arrays(s) for s in ("train[:80%]", "train[80%:]", "test"))

    def build(hp: keras_tuner.HyperParameters) -> keras.Model:
        encoder = hp.Choice("encoder", ["mlp", "lstm"])
        batch_norm = hp.Boolean("batch_norm")
        dropout = hp.Float("dropout", 0.0, 0.5)
        inputs = keras.Input((8, 8))
        x = inputs
        if encoder == "lstm":
            x = keras.layers.LSTM(64, return_sequences=True)(x)
            x = keras.layers.LSTM(64)(x)
        else:
            x = keras.layers.Flatten()(x)
            for _ in range(2):
                x = keras.layers.Dense(64)(x)
                if batch_norm:
                    x = keras.layers.BatchNormalization()(x)
                x = keras.layers.Activation("relu")(x)
                x = keras.layers.Dropout(dropout)(x)
        outputs = keras.layers.Dense(10, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(0.003), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    class EpochMetrics(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            mlflow.log_metrics({k: float(v) for k, v in (logs or {}).items()}, step=epoch)

    class Search(keras_tuner.RandomSearch):
        def run_trial(self, trial, *args, **kwargs):
            with mlflow.start_run(run_name=f"trial-{trial.trial_id}", nested=True):
                mlflow.log_params(trial.hyperparameters.values)
                kwargs["callbacks"] = [*kwargs.get("callbacks", []), EpochMetrics()]
                return super().run_trial(trial, *args, **kwargs)

    keras.utils.set_random_seed(SEED)
    mlflow.set_experiment("plain")
    with mlflow.start_run(run_name="plain-search"):
        tune_started = time.perf_counter()
        tuner = Search(build, objective="val_accuracy", max_trials=TRIALS, seed=SEED, directory=str(out),
                       project_name="search", overwrite=True)
        tuner.search(x_train, y_train, validation_data=(x_val, y_val), epochs=TRIAL_EPOCHS, batch_size=BATCH,
                     verbose=0)
        tune_seconds = time.perf_counter() - tune_started
        best = tuner.get_best_hyperparameters(1)[0]
        mlflow.log_params(best.values)
        model = build(best)
        model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=TRAIN_EPOCHS, batch_size=BATCH, verbose=0,
                  callbacks=[EpochMetrics(), keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=PATIENCE,
                                                                           restore_best_weights=True)])
        _, accuracy = model.evaluate(x_test, y_test, batch_size=BATCH, verbose=0)
        mlflow.log_metric("test_accuracy", float(accuracy))
        log_started = time.perf_counter()
        mlflow.tensorflow.log_model(model, name="model", input_example=np.zeros((1, 8, 8), "float32"))
        log_model_seconds = time.perf_counter() - log_started
    print(json.dumps({"seconds": time.perf_counter() - started, "tune_seconds": tune_seconds,
                      "log_model_seconds": log_model_seconds, "test_accuracy": float(accuracy),
                      "best": best.values}))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
