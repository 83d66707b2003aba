"""Tuning benchmark: random vs bayesian vs hyperband vs grid on the default dataset at a matched epoch budget.

Run: `.venv/bin/python -m benchmarks.tuning` (about 5 minutes on 2 cores). Each algorithm runs
`pipeline tune` in its own temporary store over the same discrete space; the table gives the best
validation accuracy each found and the epochs it actually spent (summed over its trials, from MLflow).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPACE = ("--set", 'tune.space.encoder=["mlp", "gru"]', "--set", "tune.space.units={ values = [16, 64] }",
         "--set", "tune.space.dropout={ values = [0.0, 0.3] }", "--set", "tune.space.batch_norm=[true, false]")
# 16 combinations. Random, bayesian and grid get 8 trials x 4 epochs = 32 epochs; hyperband with max_epochs 5
# and factor 3 plans about as many across its brackets (with max_epochs 9 it spent 66).
ALGORITHMS = {
    "random": ("--set", "tune.max_trials=8", "--set", "tune.max_epochs=4"),
    "bayesian": ("--set", "tune.max_trials=8", "--set", "tune.max_epochs=4"),
    "grid": ("--set", "tune.max_trials=8", "--set", "tune.max_epochs=4"),
    "hyperband": ("--set", "tune.max_epochs=5"),
}


def run_one(algorithm: str, tfds_dir: str) -> dict:
    import mlflow

    with tempfile.TemporaryDirectory() as store:
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db", "TFDS_DATA_DIR": tfds_dir}
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pipeline.cli", "tune", *SPACE, *ALGORITHMS[algorithm],
                               "--set", f"tune.algorithm={algorithm}", "--set", "tune.early_stopping_patience=0",
                               "-q"], cwd=ROOT, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{algorithm} failed: {done.stderr[-2000:]}")
        client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
        experiment = client.get_experiment_by_name("digits")
        trials = client.search_runs([experiment.experiment_id], filter_string="tags.`pipeline.kind` = 'trial'",
                                    max_results=1000)
        epochs = sum(len(client.get_metric_history(t.info.run_id, "val_accuracy")) for t in trials)
        best = max(t.data.metrics.get("objective", float("nan")) for t in trials)
        return {"algorithm": algorithm, "trials": len(trials), "epochs": epochs, "best_val_accuracy": best,
                "seconds": seconds}


def main() -> int:
    with tempfile.TemporaryDirectory() as tfds_dir:
        rows = [run_one(algorithm, tfds_dir) for algorithm in ALGORITHMS]
    print(f"{'algorithm':<10} {'trials':>6} {'epochs':>6} {'best val_accuracy':>18} {'seconds':>8}")
    for row in rows:
        print(f"{row['algorithm']:<10} {row['trials']:>6} {row['epochs']:>6} {row['best_val_accuracy']:>18.4f} "
              f"{row['seconds']:>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
