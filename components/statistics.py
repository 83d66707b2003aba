"""Mergeable accumulators for one streaming pass over a split: what validate's statistics are made of.

Each accumulator takes batches (`update`) and combines with another of its kind (`merge`), so a
split can be summarised batch by batch in one process or shard by shard by parallel workers, in
memory that does not grow with the split: moments by Chan et al.'s parallel update, value counts,
and a fixed-size uniform reservoir for quantiles.

Two of them are the train split's analyzers for preprocess: `ChannelMoments` (what a per-channel
`Normalization` adapts to) and `KerasTokenCounts` (the vocabulary a `TextVectorization` adapts to),
so the preprocessing layers are built from the statistics, without a second pass over train.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

_TOKEN_RE = re.compile(r"[a-z0-9']+")
RESERVOIR = 20_000  # values kept per feature for quantiles: error about 1/sqrt(RESERVOIR) in rank
QUANTILES = (0.01, 0.5, 0.99)
# TextVectorization's "lower_and_strip_punctuation": it lower-cases ASCII letters only (tf.strings.lower),
# deletes these 32 ASCII characters (its regex's class is exactly string.punctuation), then splits on
# runs of ASCII whitespace (tf.strings.split); bytes.lower, bytes.translate and bytes.split do the same.
_KERAS_PUNCTUATION = string.punctuation.encode("ascii")
KERAS_RESERVED = ("", "[UNK]")  # TextVectorization's mask and OOV tokens: never in a learned vocabulary
LOOKUP_RESERVED = (-1, "[UNK]")  # IntegerLookup's and StringLookup's OOV tokens (FeatureSpace keeps no mask)


def rank_by_count(counts: Counter, reserved: tuple) -> list:
    """The values of `counts` as Keras's lookup layers rank them when they adapt: by count, then by value,
    both descending (a lexsort on (value, count), reversed; for text, UTF-8 byte order is code-point
    order), without the layer's reserved tokens."""
    return [value for _, value in sorted(((n, value) for value, n in counts.items() if value not in reserved),
                                         reverse=True)]


def tokenize(text: str) -> list[str]:
    """The whitespace-and-punctuation split the text statistics use (lower-cased)."""
    return _TOKEN_RE.findall(text.lower())


def keras_tokens(text: str) -> list[str]:
    """The tokens TextVectorization(standardize="lower_and_strip_punctuation") makes of `text`.

    Not `tokenize`: that split feeds the report's lengths and OOV rates, which must stay as they are;
    this one must match what the preprocessing layer will see, byte for byte.
    """
    standardized = text.encode("utf-8").lower().translate(None, _KERAS_PUNCTUATION)
    return [token.decode("utf-8") for token in standardized.split()]


@dataclass
class Moments:
    """Count, mean, variance, min, max, zeros and NaNs of every value seen (NaNs excluded from the rest)."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    low: float = np.inf
    high: float = -np.inf
    zeros: int = 0
    nans: int = 0
    values: int = 0  # all values, NaNs included

    def update(self, batch: np.ndarray) -> None:
        values = np.asarray(batch, dtype=np.float64).reshape(-1)
        finite = values[np.isfinite(values)]
        self.values += values.size
        self.nans += int(np.isnan(values).sum())
        self.zeros += int((values == 0).sum())
        if finite.size:
            other = Moments(finite.size, float(finite.mean()), float(((finite - finite.mean()) ** 2).sum()),
                            float(finite.min()), float(finite.max()))
            self._merge_moments(other)

    def merge(self, other: "Moments") -> None:
        self.values += other.values
        self.nans += other.nans
        self.zeros += other.zeros
        self._merge_moments(other)

    def _merge_moments(self, other: "Moments") -> None:
        if other.count == 0:
            return
        total = self.count + other.count
        delta = other.mean - self.mean
        self.mean += delta * other.count / total
        self.m2 += other.m2 + delta**2 * self.count * other.count / total
        self.count = total
        self.low, self.high = min(self.low, other.low), max(self.high, other.high)

    def summary(self) -> dict[str, Any]:
        finite = self.count > 0
        return {
            "min": self.low if finite else None,
            "max": self.high if finite else None,
            "mean": self.mean if finite else None,
            "std": float(np.sqrt(self.m2 / self.count)) if finite else None,
            "zeros_share": self.zeros / self.values if self.values else 0.0,
            "nan_count": self.nans,
        }


@dataclass
class ChannelMoments:
    """Count, mean and squared deviations of each channel (last axis) of a vector or sequence feature.

    What `Normalization(axis=-1).adapt` computes: each channel over every example and time step.
    Chan et al.'s parallel update per channel, in float64, so parts of a split merge in any order.
    """

    count: int = 0
    mean: np.ndarray | None = None  # per channel; None until the first batch gives the channel count
    m2: np.ndarray | None = None  # per channel: sum of squared deviations from the mean

    def update(self, batch: np.ndarray) -> None:
        values = np.asarray(batch, dtype=np.float64)
        values = values.reshape(-1, values.shape[-1])
        if values.shape[0]:
            mean = values.mean(axis=0)
            self._combine(values.shape[0], mean, ((values - mean) ** 2).sum(axis=0))

    def merge(self, other: "ChannelMoments") -> None:
        if other.count:
            self._combine(other.count, other.mean, other.m2)

    def _combine(self, count: int, mean: np.ndarray, m2: np.ndarray) -> None:
        if self.count == 0:
            self.count, self.mean, self.m2 = count, mean.copy(), m2.copy()
            return
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / total
        self.m2 = self.m2 + m2 + delta**2 * self.count * count / total
        self.count = total

    def summary(self) -> dict[str, Any]:
        """Per-channel mean and (population, as adapt computes it) variance; empty lists for an empty split."""
        if not self.count:
            return {"channel_mean": [], "channel_variance": []}
        return {"channel_mean": self.mean.tolist(), "channel_variance": (self.m2 / self.count).tolist()}


@dataclass
class KerasTokenCounts:
    """How often each token (as TextVectorization splits text) occurs: the train vocabulary, mergeable."""

    counts: Counter = field(default_factory=Counter)

    def update(self, batch: np.ndarray) -> None:
        for text in np.asarray(batch).reshape(-1):
            self.counts.update(keras_tokens(text.decode("utf-8") if isinstance(text, bytes) else str(text)))

    def merge(self, other: "KerasTokenCounts") -> None:
        self.counts.update(other.counts)

    def summary(self) -> dict[str, Any]:
        """Every token in the order TextVectorization's adapt ranks them."""
        return {"vocabulary": rank_by_count(self.counts, KERAS_RESERVED)}


@dataclass
class Reservoir:
    """A uniform sample of at most `size` of the values seen (Algorithm R, vectorised per batch)."""

    size: int = RESERVOIR
    seen: int = 0
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0))
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def update(self, batch: np.ndarray) -> None:
        values = np.asarray(batch, dtype=np.float64).reshape(-1)
        values = values[np.isfinite(values)]
        room = max(0, self.size - self.sample.size)
        if room:
            self.sample = np.concatenate([self.sample, values[:room]])
        rest = values[room:]
        if rest.size:
            # Value number t (0-based) replaces a random slot with probability size / (t + 1).
            positions = self.seen + room + np.arange(rest.size)
            keep = self.rng.random(rest.size) < self.size / (positions + 1)
            self.sample[self.rng.integers(0, self.size, int(keep.sum()))] = rest[keep]
        self.seen += values.size

    def merge(self, other: "Reservoir") -> None:
        """Combine two samples in proportion to the values each has seen."""
        total = self.seen + other.seen
        if total == 0:
            return
        mine = int(round(self.size * self.seen / total))
        pick = lambda sample, k: sample if sample.size <= k else self.rng.choice(sample, k, replace=False)  # noqa: E731
        self.sample = np.concatenate([pick(self.sample, mine), pick(other.sample, self.size - mine)])
        self.seen = total

    def quantiles(self) -> dict[str, float]:
        if not self.sample.size:
            return {}
        return {f"p{int(q * 100):02d}": float(np.quantile(self.sample, q)) for q in QUANTILES}


@dataclass
class NumericStats:
    """Moments and quantiles of a numeric feature, label or column."""

    moments: Moments = field(default_factory=Moments)
    reservoir: Reservoir = field(default_factory=Reservoir)

    def update(self, batch: np.ndarray) -> None:
        self.moments.update(batch)
        self.reservoir.update(batch)

    def merge(self, other: "NumericStats") -> None:
        self.moments.merge(other.moments)
        self.reservoir.merge(other.reservoir)

    def summary(self) -> dict[str, Any]:
        return {**self.moments.summary(), "quantiles": self.reservoir.quantiles()}


@dataclass
class CategoryStats:
    """Value counts of a categorical column or a class label."""

    counts: Counter = field(default_factory=Counter)

    def update(self, batch: np.ndarray) -> None:
        values, counts = np.unique(np.asarray(batch).reshape(-1), return_counts=True)
        self.counts.update(dict(zip(values.tolist(), counts.tolist())))

    def merge(self, other: "CategoryStats") -> None:
        self.counts.update(other.counts)

    def summary(self, top: int = 20) -> dict[str, Any]:
        return {"distinct": len(self.counts), "top": [[str(v), c] for v, c in self.counts.most_common(top)]}


@dataclass
class TextStats:
    """Token-length counts, empty texts, and (for train) the vocabulary; OOV against a given vocabulary."""

    lengths: Counter = field(default_factory=Counter)
    vocabulary: Counter | None = None  # kept for train only
    known: frozenset[str] | None = None  # the train vocabulary, for the OOV rate of other splits
    tokens: int = 0
    oov: int = 0

    def update(self, batch: np.ndarray) -> None:
        for text in np.asarray(batch).reshape(-1):
            tokens = tokenize(str(text))
            self.lengths[len(tokens)] += 1
            self.tokens += len(tokens)
            if self.vocabulary is not None:
                self.vocabulary.update(tokens)
            if self.known is not None:
                self.oov += sum(token not in self.known for token in tokens)

    def merge(self, other: "TextStats") -> None:
        self.lengths.update(other.lengths)
        self.tokens += other.tokens
        self.oov += other.oov
        if self.vocabulary is not None and other.vocabulary is not None:
            self.vocabulary.update(other.vocabulary)

    def _percentile(self, q: float) -> float:
        total = sum(self.lengths.values())
        running = 0
        for length in sorted(self.lengths):
            running += self.lengths[length]
            if running >= q * total:
                return float(length)
        return 0.0

    def summary(self) -> dict[str, Any]:
        total = sum(self.lengths.values())
        stats: dict[str, Any] = {
            "shape": [],
            "dtype": "string",
            "length_min": min(self.lengths) if total else 0,
            "length_mean": sum(k * v for k, v in self.lengths.items()) / total if total else 0.0,
            "length_p50": self._percentile(0.5) if total else 0.0,
            "length_p95": self._percentile(0.95) if total else 0.0,
            "length_max": max(self.lengths) if total else 0,
            "empty_count": self.lengths.get(0, 0),
        }
        if self.vocabulary is not None:
            stats["vocabulary_size"] = len(self.vocabulary)
        if self.known is not None:
            stats["oov_rate"] = self.oov / self.tokens if self.tokens else 0.0
        return stats
