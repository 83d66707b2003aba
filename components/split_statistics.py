"""One split's statistics: an accumulator for every column of the examples, and their summary.

What validate's full pass is made of, in a module of its own because two engines share it: the
in-process pass (components/validate.py) and the Beam pipeline (components/beam_statistics.py).
Batches go into a `SplitAccumulator` with `update`; accumulators of parts of a split combine with
`merge`; `summarize` turns the result into the split's statistics. The train split also carries the
analyzer preprocess builds its layer from (per-channel moments of vectors and sequences, the token
counts of text), and a tabular train split the ranked values of its categorical columns, so the
preprocessing layers need no second pass over train.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from components import examples as ex
from components.statistics import (LOOKUP_RESERVED, CategoryStats, ChannelMoments, KerasTokenCounts, NumericStats,
                                   TextStats, rank_by_count)


def _feature_accumulators(spec: dict[str, Any], train_vocabulary: frozenset[str] | None, split: str) -> dict[str, Any]:
    """One accumulator per feature column: text, numeric, or (tabular) categorical."""
    accumulators: dict[str, Any] = {}
    for column in ex.feature_columns(spec):
        if spec["kind"] == "text":
            accumulators[column.name] = TextStats(vocabulary=Counter() if split == "train" else None,
                                                  known=train_vocabulary)
        elif spec["tabular"].get(column.name.removeprefix(ex.TABULAR_PREFIX), "numeric") != "numeric":
            accumulators[column.name] = CategoryStats()
        else:
            accumulators[column.name] = NumericStats()
    return accumulators


def _analyzer(spec: dict[str, Any], split: str) -> ChannelMoments | KerasTokenCounts | None:
    """What preprocess needs of the train split besides the statistics (images use the feature's own moments)."""
    if split != "train":
        return None
    if spec["kind"] in ("vector", "sequence"):
        return ChannelMoments()
    return KerasTokenCounts() if spec["kind"] == "text" else None


@dataclass
class SplitAccumulator:
    """Everything one split's statistics are made of: per-column accumulators, the label's, the count."""

    features: dict[str, Any]
    label: CategoryStats | None
    label_moments: NumericStats = field(default_factory=NumericStats)
    count: int = 0
    analyzer: ChannelMoments | KerasTokenCounts | None = None  # train only: see _analyzer

    def update(self, batch: dict[str, np.ndarray]) -> None:
        self.count += len(batch[ex.LABEL])
        for name, accumulator in self.features.items():
            accumulator.update(batch[name])
        if self.analyzer is not None:
            self.analyzer.update(batch[ex.FEATURE])
        self.label_moments.update(batch[ex.LABEL])
        if self.label is not None:
            self.label.update(batch[ex.LABEL])

    def merge(self, other: "SplitAccumulator") -> None:
        self.count += other.count
        for name, accumulator in self.features.items():
            accumulator.merge(other.features[name])
        if self.analyzer is not None:
            self.analyzer.merge(other.analyzer)
        self.label_moments.merge(other.label_moments)
        if self.label is not None:
            self.label.merge(other.label)


def split_accumulator(spec: dict[str, Any], split: str, train_vocabulary: frozenset[str] | None) -> SplitAccumulator:
    """An empty accumulator for one split of the examples `spec` describes."""
    return SplitAccumulator(_feature_accumulators(spec, train_vocabulary, split),
                            CategoryStats() if spec["task"] == "classification" else None,
                            analyzer=_analyzer(spec, split))


def summarize(accumulator: SplitAccumulator, spec: dict[str, Any],
              split: str) -> tuple[dict[str, Any], frozenset[str] | None]:
    """A split's statistics from its accumulator, and (text, train only) the vocabulary other splits' OOV uses."""
    features, label, count = accumulator.features, accumulator.label, accumulator.count
    vocabulary = None
    if spec["kind"] == "tabular":
        feature = {"shape": spec["shape"], "dtype": "dict",
                   "columns": {name.removeprefix(ex.TABULAR_PREFIX): acc.summary() for name, acc in features.items()}}
        if split == "train":  # what preprocess builds the categorical columns' lookups from
            for name, acc in features.items():
                if isinstance(acc, CategoryStats):
                    feature["columns"][name.removeprefix(ex.TABULAR_PREFIX)]["vocabulary"] = rank_by_count(
                        acc.counts, LOOKUP_RESERVED)
        numeric = [c for c in feature["columns"].values() if "nan_count" in c]
        feature["nan_count"] = sum(c["nan_count"] for c in numeric)
    else:
        column = features[ex.FEATURE]
        feature = {"shape": spec["shape"], "dtype": spec["dtype"], **column.summary()}
        if spec["kind"] == "text" and split == "train":
            vocabulary = frozenset(column.vocabulary)
        if accumulator.analyzer is not None:
            feature.update(accumulator.analyzer.summary())
    moments = accumulator.label_moments.summary()
    label_stats: dict[str, Any] = {"dtype": "int64" if label is not None else "float32",
                                   "min": moments["min"], "max": moments["max"]}
    if label is not None:
        shares = np.zeros(spec["num_classes"])
        for value, n in label.counts.items():
            if 0 <= value < spec["num_classes"]:
                shares[int(value)] = n
        label_stats["distribution"] = (shares / max(count, 1)).tolist()
    else:
        label_stats.update({"mean": moments["mean"], "std": moments["std"], "quantiles": moments["quantiles"],
                            "distribution": []})
    return {"count": count, "feature": feature, "label": label_stats}, vocabulary
