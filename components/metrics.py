"""Evaluation metrics from predicted probabilities, in NumPy: the numbers evaluate reports."""

from __future__ import annotations

from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true.astype(np.int64), y_pred.astype(np.int64)), 1)
    return matrix


def expected_calibration_error(probabilities: np.ndarray, y_true: np.ndarray, bins: int = 15) -> float:
    """ECE (Guo et al. 2017): |accuracy - confidence| averaged over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y_true
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = 0.0
    for low, high in zip(edges[:-1], edges[1:]):
        members = (confidence > low) & (confidence <= high)
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def classification_metrics(probabilities: np.ndarray, y_true: np.ndarray, *, top_k: int = 3) -> dict[str, Any]:
    """Loss, accuracy, top-k, per-class precision/recall/F1, macro averages, ECE and the confusion matrix."""
    num_classes = probabilities.shape[1]
    y_true = y_true.astype(np.int64)
    y_pred = probabilities.argmax(axis=1)
    picked = np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-12, 1.0)
    k = min(top_k, num_classes)
    top = np.argsort(-probabilities, axis=1)[:, :k]
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    true_positive = np.diag(matrix).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    actual = matrix.sum(axis=1).astype(np.float64)
    precision = np.divide(true_positive, predicted, out=np.zeros(num_classes), where=predicted > 0)
    recall = np.divide(true_positive, actual, out=np.zeros(num_classes), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(num_classes),
                   where=(precision + recall) > 0)
    present = actual > 0
    return {
        "loss": float(-np.mean(np.log(picked))),
        "accuracy": float(np.mean(y_pred == y_true)),
        f"top_{k}_accuracy": float(np.mean((top == y_true[:, None]).any(axis=1))),
        "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
        "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "ece": expected_calibration_error(probabilities, y_true),
        "examples": int(len(y_true)),
        "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                      "support": actual.astype(int).tolist()},
        "confusion_matrix": matrix.tolist(),
    }


def regression_metrics(predictions: np.ndarray, y_true: np.ndarray) -> dict[str, Any]:
    error = predictions.reshape(-1) - y_true.reshape(-1).astype(np.float64)
    return {"mse": float(np.mean(error**2)), "mae": float(np.mean(np.abs(error))), "examples": int(len(error))}


def sliced_metrics(probabilities: np.ndarray, y_true: np.ndarray, slices: np.ndarray) -> list[dict[str, Any]]:
    """Accuracy, loss and size per value of a slicing feature, as TFMA's slice table."""
    rows = []
    for value in np.unique(slices):
        members = slices == value
        picked = np.clip(probabilities[members][np.arange(members.sum()), y_true[members].astype(np.int64)], 1e-12, 1)
        rows.append({"slice": str(value), "examples": int(members.sum()),
                     "accuracy": float(np.mean(probabilities[members].argmax(axis=1) == y_true[members])),
                     "loss": float(-np.mean(np.log(picked)))})
    return rows
