"""Every KerasTuner trial as an MLflow run nested under the tune stage's run.

`tracked(TunerClass)` returns a subclass that opens a run when a trial begins
(hyperparameters as params), logs each epoch's metrics with `step=epoch`, and
closes the run with the trial's outcome: FINISHED with its objective, or FAILED
with the reason. A NaN loss fails only that trial; the search goes on.
"""

from __future__ import annotations

import math
from typing import Any

TRIAL_TAG = "pipeline.trial_id"


def epoch_logger():
    """A Keras callback logging all epoch metrics to the active MLflow run in one call per epoch."""
    import keras
    import mlflow

    class EpochLogger(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items() if _finite_number(v)}
            if values:
                mlflow.log_metrics(values, step=epoch)

    return EpochLogger()


def _finite_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fail_on_nan():
    """Stops a trial whose loss became NaN or infinite, marking it FAILED with the reason."""
    import keras
    from keras_tuner.errors import FailedTrialError

    class FailOnNaN(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            loss = (logs or {}).get("loss")
            if loss is not None and not _finite_number(loss):
                raise FailedTrialError(f"loss became {float(loss)} at batch {batch}: the trial diverged")

    return FailOnNaN()


def tracked(tuner_class: type) -> type:
    import mlflow
    from keras_tuner.engine import trial as trial_module

    class TrackedTuner(tuner_class):
        def on_trial_begin(self, trial) -> None:
            super().on_trial_begin(trial)
            run = mlflow.start_run(run_name=f"trial-{trial.trial_id}", nested=True,
                                   tags={TRIAL_TAG: trial.trial_id, "pipeline.kind": "trial"})
            values = {k: v for k, v in trial.hyperparameters.values.items()}
            mlflow.log_params(values)
            self._trial_run_id = run.info.run_id

        def run_trial(self, trial, *args, **kwargs):
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), epoch_logger(), fail_on_nan()]
            return super().run_trial(trial, *args, **kwargs)

        def on_trial_end(self, trial) -> None:
            super().on_trial_end(trial)
            active = mlflow.active_run()
            if active is None or active.info.run_id != getattr(self, "_trial_run_id", None):
                return
            status = trial.status
            if status == trial_module.TrialStatus.COMPLETED and trial.score is not None:
                mlflow.log_metric("objective", float(trial.score))
                mlflow.set_tag("pipeline.trial_status", "COMPLETED")
                mlflow.end_run("FINISHED")
            else:
                reason = (trial.message or "no reason given").strip().splitlines()
                mlflow.set_tag("pipeline.trial_status", str(status))
                mlflow.set_tag("pipeline.error", reason[-1][:5000] if reason else "")
                if trial.message:
                    mlflow.log_text(trial.message, "trial_error.txt")
                mlflow.end_run("FAILED")

    TrackedTuner.__name__ = f"Tracked{tuner_class.__name__}"
    return TrackedTuner
