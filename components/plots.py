"""Plots saved as PNG for MLflow: learning curves, confusion matrix, tuning results.

matplotlib runs headless (Agg); each function returns the file it wrote.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_learning_curves(history: dict[str, list[float]], path: Path) -> Path:
    plt = _pyplot()
    metrics = [m for m in ("loss", "accuracy", "mae") if m in history]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.6), squeeze=False)
    for axis, metric in zip(axes[0], metrics):
        epochs = np.arange(1, len(history[metric]) + 1)
        axis.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_title(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_predictions(points: np.ndarray, metrics: dict[str, Any], path: Path) -> Path:
    """Regression: predicted against true values (a sample of the test split), with the y = x line."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(5, 5))
    if len(points):
        predicted, truth = points[:, 0], points[:, 1]
        axis.scatter(truth, predicted, s=6, alpha=0.5)
        low, high = float(min(truth.min(), predicted.min())), float(max(truth.max(), predicted.max()))
        axis.plot([low, high], [low, high], color="black", linewidth=1, label="prediction = truth")
        axis.legend(loc="upper left")
    axis.set_xlabel("true value")
    axis.set_ylabel("predicted value")
    axis.set_title(f"test: MAE {metrics['mae']:.4g}, RMSE {metrics['rmse']:.4g}, R² {metrics['r2']:.3f}"
                   f" ({len(points)} of {metrics['examples']} shown)", fontsize=9)
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], path: Path) -> Path:
    plt = _pyplot()
    size = max(4.0, 0.45 * len(class_names) + 2)
    figure, axis = plt.subplots(figsize=(size, size))
    image = axis.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    if len(class_names) <= 30:
        ticks = np.arange(len(class_names))
        axis.set_xticks(ticks, class_names, rotation=90)
        axis.set_yticks(ticks, class_names)
        for (row, col), value in np.ndenumerate(matrix):
            if value:
                axis.text(col, row, str(value), ha="center", va="center", fontsize=7,
                          color="white" if value > matrix.max() / 2 else "black")
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title("confusion matrix (test split)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_tuning(rows: list[dict[str, Any]], objective: str, path: Path) -> Path | None:
    """Objective per trial, and the objective against each hyperparameter that varied."""
    done = [r for r in rows if r.get(objective) is not None]
    if not done:
        return None
    keys = [k for k in done[0] if k not in ("trial_id", "status", objective) and not k.startswith("tuner/")]
    varied = [k for k in keys if len({str(r.get(k)) for r in done}) > 1]
    plt = _pyplot()
    panels = 1 + len(varied)
    columns = min(panels, 3)
    lines = (panels + columns - 1) // columns
    figure, axes = plt.subplots(lines, columns, figsize=(4.5 * columns, 3.4 * lines), squeeze=False)
    flat = axes.ravel()
    scores = [r[objective] for r in done]
    flat[0].bar(range(len(done)), scores, color="tab:blue")
    flat[0].set_xticks(range(len(done)), [str(r["trial_id"]) for r in done], rotation=90, fontsize=7)
    flat[0].set_title(f"{objective} per trial")
    for axis, key in zip(flat[1:], varied):
        values = [r.get(key) for r in done]
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            axis.scatter(values, scores)
        else:
            labels = sorted({str(v) for v in values})
            axis.scatter([labels.index(str(v)) for v in values], scores)
            axis.set_xticks(range(len(labels)), labels, rotation=30)
        axis.set_title(key)
        axis.set_ylabel(objective)
        axis.grid(alpha=0.3)
    for axis in flat[panels:]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_attention(weights: np.ndarray, positions: list[list[str]], titles: list[str], path: Path) -> Path:
    """One row per example: the attention weight of each time step (token or image row)."""
    plt = _pyplot()
    figure, axes = plt.subplots(len(weights), 1, figsize=(10, 1.3 * len(weights) + 0.6), squeeze=False)
    for axis, row, labels, title in zip(axes[:, 0], weights, positions, titles):
        shown = len(labels)
        axis.imshow(row[None, :shown], aspect="auto", cmap="viridis", vmin=0.0, vmax=max(float(row.max()), 1e-6))
        axis.set_xticks(range(shown), labels, rotation=45, ha="right", fontsize=7)
        axis.set_yticks([])
        axis.set_title(title, fontsize=8, loc="left")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
