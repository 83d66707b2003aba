"""Every KerasTuner trial as an MLflow run nested under the tune stage's run.

`tracked(TunerClass)` returns a subclass that opens a run when a trial begins
(hyperparameters as params), logs each epoch's metrics with `step=epoch`, and
closes the run with the trial's outcome: FINISHED with its objective, or FAILED
with the reason. A NaN loss fails only that trial; the search goes on.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any, Callable

from pipeline import background
from pipeline.names import TAG_ERROR, TAG_TRIAL_ID, TAG_TRIAL_STATUS, TAG_TUNER_ID, TRIAL_ERROR_TEXT

log = logging.getLogger(__name__)


# Epochs that end less than this many seconds after the last write share the next one, so a fit of
# sub-second epochs writes about once a second instead of once an epoch; steps and timestamps stay per epoch.
WRITE_INTERVAL_S = 1.0


def epoch_logger():
    """A Keras callback logging all epoch metrics (step=epoch) to the active MLflow run, off the training thread.

    Each write is one batch handed to the background writer (pipeline/background.py) through one client kept for the whole
    fit: `mlflow.log_metrics` builds two clients per call and writes to the store while the next epoch
    waits, and a store write costs several milliseconds of CPU, which on short epochs was several percent
    of training (benchmarks/, tracking rows). Training end writes what is left, waits for every queued
    batch and raises if one failed. The writer is the project's own thread, not MLflow's asynchronous
    queue: ending a run stops that queue's thread, which sleeps up to a second before it notices, and a
    search ends a run per trial.
    """
    import keras
    import mlflow
    from mlflow.entities import Metric

    class EpochLogger(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._client = None
            self._run_id: str | None = None
            self._unwritten: list = []
            self._pending: list = []
            self._last_write = 0.0

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self._run_id = None  # the run active when this fit first writes, even if the callback is reused
            self._last_write = time.time()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            values = {k: float(v) for k, v in (logs or {}).items() if _finite_number(v)}
            if not values:
                return
            now = time.time()
            self._unwritten += [Metric(key, value, int(now * 1000), epoch) for key, value in values.items()]
            if now - self._last_write >= WRITE_INTERVAL_S:
                self._write(now)

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            self._write(time.time())
            pending, self._pending = self._pending, []
            for operation in pending:
                operation.result()

        def _write(self, now: float) -> None:
            if not self._unwritten:
                return
            if self._client is None:
                self._client = mlflow.MlflowClient()
            if self._run_id is None:
                self._run_id = (mlflow.active_run() or mlflow.start_run()).info.run_id
            metrics, self._unwritten = self._unwritten, []
            self._pending.append(background.submit(self._client.log_batch, self._run_id, metrics=metrics))
            self._last_write = now

    return EpochLogger()


def _finite_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def epoch_timer():
    """A Keras callback adding up the wall seconds spent inside epochs (`.seconds`), across fits."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        seconds = 0.0

        def __deepcopy__(self, memo):  # KerasTuner copies a trial's callbacks; the sum must stay one
            return self

        def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.seconds += time.perf_counter() - self._started

    return EpochTimer()


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


def tracked(tuner_class: type, *, tags: dict[str, str], trial_parent: str | None = None, verbose: int = 1,
            seed: int | None = None, training_data: Callable[[], Any] | None = None,
            should_stop: Callable[[], str | None] | None = None) -> type:
    """`tuner_class` with MLflow runs per trial (carrying `tags`), nested under the active run or `trial_parent`.

    With `seed`, each trial seeds Keras with `seed` plus its trial number, and with `training_data`
    it trains on a stream built afresh (the same batch order for every trial): a trial's model then
    depends on its hyperparameters only, not on which trials the same process ran before it, so a
    search spread over worker processes trains the same models as a search in one process.
    `should_stop`, asked before each trial, gives a reason to abandon the search (a worker it waits
    for has died), or None.
    """
    import os

    import keras

    import mlflow
    from keras_tuner.engine import trial as trial_module

    class TrackedTuner(tuner_class):
        trials_run = 0

        _asked = False  # a trial was asked for and none has begun since

        def pre_create_trial(self) -> None:
            # Asked again without a trial in between: the oracle answered IDLE (Hyperband waits for a
            # round's other trials before promoting). KerasTuner asks again at once, in a loop that kept
            # a core busy while the other workers trained; wait a little between questions instead.
            reason = should_stop() if should_stop else None
            if reason:
                raise RuntimeError(reason)
            if self._asked:
                time.sleep(0.2)
            self._asked = True
            super().pre_create_trial()

        def on_trial_begin(self, trial) -> None:
            self._asked = False
            self._trial_started = time.perf_counter()
            self._epochs = epoch_timer()
            super().on_trial_begin(trial)
            run_tags = {**tags, TAG_TRIAL_ID: trial.trial_id,
                        TAG_TUNER_ID: os.environ.get("KERASTUNER_TUNER_ID", "standalone")}
            run = mlflow.start_run(run_name=f"trial-{trial.trial_id}", nested=True, parent_run_id=trial_parent,
                                   tags=run_tags)
            mlflow.log_params(dict(trial.hyperparameters.values))
            self._trial_run_id = run.info.run_id

        def run_trial(self, trial, *args, **kwargs):
            if seed is not None:
                keras.utils.set_random_seed(seed + int(trial.trial_id))
            if training_data is not None:
                args = (training_data(), *args[1:])
            kwargs["callbacks"] = [*kwargs.get("callbacks", []), epoch_logger(), fail_on_nan(), self._epochs]
            return super().run_trial(trial, *args, **kwargs)

        def on_trial_end(self, trial) -> None:
            # The trial's MLflow run ends first, then the oracle records the trial: killed in between,
            # the resumed search runs the trial again (a second run of it in MLflow) rather than count it
            # done while MLflow shows it FAILED.
            outcome = self._end_trial_run(trial)
            super().on_trial_end(trial)
            if not os.environ.get("KERASTUNER_ORACLE_IP"):
                # KerasTuner saves the oracle's state before it takes the ended trial off the running ones:
                # killed before the next save, a resumed search would train that finished trial again.
                # (A chief saves again for its workers' trials, components/trial_processes.py.)
                self.oracle.save()
            self.trials_run += 1
            if outcome and verbose >= 1:
                log.info(f"tune: trial {trial.trial_id} ({self.trials_run} run here"
                         f"{_budget(self.oracle)}): {outcome}; best so far {_best(self.oracle)}")

        def _end_trial_run(self, trial) -> str:
            """End this trial's MLflow run with its outcome (the oracle's score, computed as the oracle will)."""
            active = mlflow.active_run()
            if active is None or active.info.run_id != getattr(self, "_trial_run_id", None):
                return ""
            # Where a trial's time goes: its epochs (fitting, validating, the first one tracing the
            # model's functions) and everything else (building, bookkeeping, tracking).
            seconds = time.perf_counter() - self._trial_started
            mlflow.log_metrics({"trial_seconds": seconds, "epoch_seconds": self._epochs.seconds,
                                "overhead_seconds": seconds - self._epochs.seconds})
            score = None
            if trial.status == trial_module.TrialStatus.COMPLETED:
                # A worker's copy of the trial has no metrics; the oracle's (over gRPC for a worker) has.
                recorded = self.oracle.get_trial(trial.trial_id)
                score = recorded.metrics.get_best_value(self.oracle.objective.name)
            if score is not None and _finite_number(score):
                mlflow.log_metric("objective", float(score))
                mlflow.set_tag(TAG_TRIAL_STATUS, "COMPLETED")
                mlflow.end_run("FINISHED")
                return f"{self.oracle.objective.name} {float(score):.4f}"
            message = trial.message or ("the objective was not finite" if score is not None else "no reason given")
            reason = message.strip().splitlines()
            mlflow.set_tag(TAG_TRIAL_STATUS, str(trial.status))
            mlflow.set_tag(TAG_ERROR, reason[-1][:5000] if reason else "")
            if trial.message:
                mlflow.log_text(trial.message, TRIAL_ERROR_TEXT)
            mlflow.end_run("FAILED")
            return f"FAILED ({reason[-1][:200] if reason else 'no reason'})"

    TrackedTuner.__name__ = f"Tracked{tuner_class.__name__}"
    return TrackedTuner


def _budget(oracle) -> str:
    limit = getattr(oracle, "max_trials", None)
    return f", budget {limit} trials" if limit else ""


def _best(oracle) -> str:
    try:
        best = oracle.get_best_trials(1)
    except Exception:  # a worker's oracle client may not answer this between trials
        return "n/a"
    return f"{best[0].score:.4f}" if best and best[0].score is not None else "n/a"
