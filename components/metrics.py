"""Evaluation metrics accumulated batch by batch: the numbers evaluate reports, in memory that does not grow.

Each accumulator takes (model outputs, labels) one batch at a time and keeps only sums and counts:
a confusion matrix, per-bin calibration sums, per-slice counts, squared and absolute errors. The
figures are identical to computing on the whole split at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ECE_BINS = 15  # equal-width confidence bins of the expected calibration error (Guo et al. 2017)
PLOT_POINTS = 5000  # (prediction, truth) pairs kept for the regression plot


@dataclass
class Classification:
    """Loss, accuracy, top-k, per-class precision/recall/F1, macro averages, ECE and the confusion matrix."""

    num_classes: int
    top_k: int = 3
    matrix: np.ndarray = None  # type: ignore[assignment]
    loss_sum: float = 0.0
    top_hits: int = 0
    bin_count: np.ndarray = None  # type: ignore[assignment]
    bin_confidence: np.ndarray = None  # type: ignore[assignment]
    bin_correct: np.ndarray = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        self.bin_count, self.bin_confidence, self.bin_correct = (np.zeros(ECE_BINS) for _ in range(3))

    def update(self, probabilities: np.ndarray, y_true: np.ndarray) -> None:
        from sklearn.metrics import confusion_matrix

        y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
        predicted = probabilities.argmax(axis=1)
        self.matrix += confusion_matrix(y_true, predicted, labels=np.arange(self.num_classes))
        picked = np.clip(probabilities[np.arange(len(y_true)), np.clip(y_true, 0, self.num_classes - 1)], 1e-12, 1.0)
        self.loss_sum += float(-np.log(picked).sum())
        k = min(self.top_k, self.num_classes)
        top = np.argpartition(-probabilities, k - 1, axis=1)[:, :k]
        self.top_hits += int((top == y_true[:, None]).any(axis=1).sum())
        confidence = probabilities.max(axis=1)
        # Bin b holds confidences in (b/B, (b+1)/B]; a confidence of exactly 0 belongs to no bin.
        bins = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, -1, ECE_BINS - 1)
        member = bins >= 0
        np.add.at(self.bin_count, bins[member], 1)
        np.add.at(self.bin_confidence, bins[member], confidence[member])
        np.add.at(self.bin_correct, bins[member], (predicted == y_true)[member])

    @property
    def examples(self) -> int:
        return int(self.matrix.sum())

    def result(self) -> dict[str, Any]:
        from sklearn.metrics import precision_recall_fscore_support

        n = max(self.examples, 1)
        true_positive = np.diag(self.matrix).astype(np.float64)
        # scikit-learn's per-class figures, from the confusion matrix: each cell is one weighted (true, predicted) pair.
        rows, columns = np.nonzero(self.matrix)
        precision, recall, f1, actual = precision_recall_fscore_support(
            rows, columns, labels=np.arange(self.num_classes), sample_weight=self.matrix[rows, columns],
            zero_division=0.0) if len(rows) else (np.zeros(self.num_classes),) * 4
        present = actual > 0  # macro averages over the classes the split holds
        filled = self.bin_count > 0
        ece = float(np.sum(self.bin_count[filled] / n * np.abs(self.bin_correct[filled] / self.bin_count[filled]
                                                                - self.bin_confidence[filled] / self.bin_count[filled])))
        k = min(self.top_k, self.num_classes)
        return {
            "loss": self.loss_sum / n,
            "accuracy": float(true_positive.sum() / n),
            f"top_{k}_accuracy": self.top_hits / n,
            "macro_precision": float(precision[present].mean()) if present.any() else 0.0,
            "macro_recall": float(recall[present].mean()) if present.any() else 0.0,
            "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
            "ece": ece,
            "examples": self.examples,
            "per_class": {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
                          "support": actual.astype(int).tolist()},
            "confusion_matrix": self.matrix.tolist(),
        }


@dataclass
class Regression:
    """MSE, RMSE, MAE and R^2, plus an evenly spaced sample of (prediction, truth) pairs for the plot."""

    expected: int = 0  # examples the split holds, to space the plot's sample evenly (0: keep the first ones)
    count: int = 0
    squared: float = 0.0
    absolute: float = 0.0
    y_sum: float = 0.0
    y_squared: float = 0.0
    points: list[tuple[float, float]] = field(default_factory=list)

    def update(self, predictions: np.ndarray, y_true: np.ndarray) -> None:
        predicted = np.asarray(predictions, dtype=np.float64).reshape(-1)
        truth = np.asarray(y_true, dtype=np.float64).reshape(-1)
        error = predicted - truth
        stride = max(1, math.ceil(self.expected / PLOT_POINTS)) if self.expected else 1
        positions = self.count + np.arange(len(truth))
        for index in np.flatnonzero(positions % stride == 0):
            if len(self.points) < PLOT_POINTS:
                self.points.append((float(predicted[index]), float(truth[index])))
        self.count += len(truth)
        self.squared += float((error**2).sum())
        self.absolute += float(np.abs(error).sum())
        self.y_sum += float(truth.sum())
        self.y_squared += float((truth**2).sum())

    def result(self) -> dict[str, Any]:
        n = max(self.count, 1)
        total = self.y_squared - self.y_sum**2 / n  # sum of squares around the mean
        mse = self.squared / n
        return {"mse": mse, "rmse": math.sqrt(mse), "mae": self.absolute / n,
                "r2": 1.0 - self.squared / total if total > 0 else 0.0, "examples": self.count}


@dataclass
class Slices:
    """Accuracy, loss and size per value of a slicing feature, as TFMA's slice table."""

    sizes: dict[str, list[float]] = field(default_factory=dict)  # value -> [examples, correct, loss sum]

    def update(self, probabilities: np.ndarray, y_true: np.ndarray, slices: np.ndarray) -> None:
        y_true = np.asarray(y_true).astype(np.int64).reshape(-1)
        correct = probabilities.argmax(axis=1) == y_true
        picked = np.clip(probabilities[np.arange(len(y_true)), y_true], 1e-12, 1.0)
        for value in np.unique(slices):
            members = slices == value
            row = self.sizes.setdefault(str(value), [0, 0, 0.0])
            row[0] += int(members.sum())
            row[1] += int(correct[members].sum())
            row[2] += float(-np.log(picked[members]).sum())

    def result(self) -> list[dict[str, Any]]:
        return [{"slice": value, "examples": int(n), "accuracy": hits / n, "loss": loss / n}
                for value, (n, hits, loss) in sorted(self.sizes.items())]


def for_task(task: str, *, num_classes: int, top_k: int, expected: int):
    """The accumulator of this task's metrics."""
    return Classification(num_classes, top_k) if task == "classification" else Regression(expected)
