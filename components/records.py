"""Splits as sharded TFRecord files: how every stage writes and reads examples without holding a split.

A split is a list of shard files of `tf.train.Example` records, one record per example. Each column
of a record (the feature, or one column per tabular field, the label, a slice feature) is stored as
one bytes value: a fixed-shape numeric value as its raw little-endian bytes, a string as UTF-8. A
`Column` says how to turn the bytes back into a typed tensor, so a reader parses a whole batch of
records at once (`parse_example` + `decode_raw`) instead of one record at a time in Python.
Shards are written to `<name>.partial` and renamed when complete, and each split's digest is the
sha256 of its shards' contents, so a reader can trust the data the digest names.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.artifacts import sha256_file

STRING = "string"  # Column.dtype of UTF-8 text
SHARD_BYTES = 64 << 20  # aim for shards of about this size: a few files per split, each read in one stream
SHUFFLE_BYTES = 64 << 20  # the most memory a training shuffle buffer may hold, whatever its example count


@dataclass(frozen=True)
class Column:
    """One named value per example: a fixed-shape numeric array or a string."""

    name: str  # key in the record, e.g. "x", "x/age", "y"
    dtype: str  # numpy dtype name ("uint8", "float32", "int64", ...) or "string"
    shape: tuple[int, ...] = ()  # per-example shape; () for a scalar

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Column":
        return cls(data["name"], data["dtype"], tuple(data["shape"]))

    @property
    def nbytes(self) -> int:
        """Bytes one value takes (strings: a rough guess, used only to size shards and buffers)."""
        if self.dtype == STRING:
            return 256
        return int(np.dtype(self.dtype).itemsize * math.prod(self.shape))


def columns_from(data: Sequence[dict[str, Any]]) -> tuple[Column, ...]:
    return tuple(Column.from_dict(item) for item in data)


def _encode(value: Any, column: Column) -> bytes:
    if column.dtype == STRING:
        return value if isinstance(value, bytes) else str(value).encode("utf-8")
    array = np.asarray(value, dtype=column.dtype)
    if array.shape != column.shape:
        raise ValueError(f"column {column.name!r} expects shape {column.shape}, got {array.shape}")
    return array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()


class ShardWriter:
    """Writes examples into `<directory>/<prefix>-NNNNN.tfrecord` shards of about SHARD_BYTES each.

    With `block` > 0 each record holds up to `block` consecutive examples (numeric columns only: each
    column's values concatenated): a reader then handles one tf.data element per block instead of one
    per example, which is what makes streaming as cheap as reading from memory (see `dataset`).
    """

    def __init__(self, directory: Path, prefix: str, columns: Sequence[Column], *, block: int = 0):
        self.directory = Path(directory)
        self.prefix = prefix
        self.columns = tuple(columns)
        self.block = block
        if block and any(column.dtype == STRING for column in self.columns):
            raise ValueError("block records hold numeric columns only")
        per_example = max(1, sum(column.nbytes for column in self.columns))
        self.per_shard = max(1, SHARD_BYTES // (per_example * max(1, block)))
        self._pending: list[dict[str, Any]] = []
        self.files: list[str] = []  # names of the finished shards, relative to directory
        self.count = 0
        self._writer = None
        self._in_shard = 0
        self._partial: Path | None = None

    def __enter__(self) -> "ShardWriter":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None and self._pending:
            self._write_record(self._pending)
        self._close_shard(keep=exc_info[0] is None)

    def write_batch(self, batch: dict[str, np.ndarray]) -> None:
        """Write every example of a batch (a dict of arrays whose first axis is the example)."""
        size = len(batch[self.columns[0].name])
        for index in range(size):
            self.write({column.name: batch[column.name][index] for column in self.columns})

    def write(self, example: dict[str, Any]) -> None:
        self.count += 1
        if not self.block:
            self._write_record([example])
            return
        self._pending.append(example)
        if len(self._pending) >= self.block:
            self._write_record(self._pending)
            self._pending = []

    def _write_record(self, examples: list[dict[str, Any]]) -> None:
        import tensorflow as tf

        if self._writer is None or self._in_shard >= self.per_shard:
            self._close_shard(keep=True)
            self._partial = self.directory / f"{self.prefix}-{len(self.files):05d}.tfrecord.partial"
            self._writer = tf.io.TFRecordWriter(str(self._partial))
            self._in_shard = 0
        features = {column.name: tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[b"".join(_encode(example[column.name], column) for example in examples)]))
            for column in self.columns}
        self._writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString())
        self._in_shard += 1

    def _close_shard(self, *, keep: bool) -> None:
        if self._writer is None:
            return
        self._writer.close()
        self._writer = None
        if keep:
            final = self._partial.with_suffix("")  # drop ".partial"
            os.replace(self._partial, final)
            self.files.append(final.name)
        else:
            self._partial.unlink(missing_ok=True)


def digest(directory: Path, files: Sequence[str]) -> str:
    """A short content digest of a split: sha256 over its shards' sha256s, in order."""
    combined = hashlib.sha256()
    for name in files:
        combined.update(sha256_file(Path(directory) / name).encode())
    return combined.hexdigest()[:16]


def _parse(columns: Sequence[Column]):
    import tensorflow as tf

    spec = {column.name: tf.io.FixedLenFeature([], tf.string) for column in columns}

    def parse(serialized):
        # A batch of per-example records, or one block record: either way rows come out stacked.
        raw = tf.io.parse_example(tf.reshape(serialized, [-1]), spec)
        out = {}
        for column in columns:
            value = raw[column.name]
            if column.dtype != STRING:
                value = tf.reshape(tf.io.decode_raw(value, column.dtype, little_endian=True), [-1, *column.shape])
            out[column.name] = value
        return out

    return parse


def shuffle_buffer(columns: Sequence[Column], examples: int) -> int:
    """Examples a training shuffle buffer holds: the configured count, capped at SHUFFLE_BYTES of memory."""
    per_example = max(1, sum(column.nbytes for column in columns))
    return max(1, min(examples, SHUFFLE_BYTES // per_example))


def dataset(paths: Sequence[Path | str], columns: Sequence[Column], *, batch_size: int, shuffle: int = 0,
            seed: int | None = None, repeat: bool = False, block: int = 0, part: tuple[int, int] = (0, 1)):
    """A tf.data pipeline of dict batches read from shards: bounded memory whatever the split's size.

    With `shuffle` > 0 the shard order and the examples (through a buffer of that many) are drawn
    afresh each pass, from `seed`: two runs with one seed see the same orders. With `repeat` the
    stream is endless (one iterator for a whole fit; pass the steps of one pass as steps_per_epoch),
    and batches run on across passes, so every batch is full: Keras then traces the training step
    for one batch shape, not again for a pass's short last batch (about a second a model).
    With `part` = (index, count) only every count-th batch from the index-th is parsed: one of
    `count` disjoint parts that together are the whole stream (per-example records only).
    """
    import tensorflow as tf

    files = tf.data.Dataset.from_tensor_slices([str(path) for path in paths])
    if shuffle:
        files = files.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True)
    # One shard after another: a parallel interleave cost about twice the CPU per batch on two cores
    # (taken from training); the shuffled shard order and the buffer below mix the examples.
    records = files.flat_map(tf.data.TFRecordDataset)
    if block:
        batches = _blocks(records, columns, batch_size=batch_size, shuffle=shuffle, seed=seed, block=block,
                          repeat=repeat)
        return batches.prefetch(tf.data.AUTOTUNE)
    if shuffle:
        records = records.shuffle(shuffle, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        records = records.repeat()
    batches = records.batch(batch_size)
    index, count = part
    if count > 1:
        batches = batches.shard(count, index)
    batches = batches.map(_parse(columns), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return batches.prefetch(tf.data.AUTOTUNE)


def _blocks(records, columns: Sequence[Column], *, batch_size: int, shuffle: int, seed: int | None, block: int,
            repeat: bool = False):
    """Batches from block records: blocks drawn through a buffer, then rows permuted within windows.

    A quarter of the `shuffle` examples' memory holds shuffled blocks, a quarter a window of rows
    that is permuted afresh each pass (seeded), which leaves room for the window's permuted copy and
    the batches being sliced from it: memory stays within the buffer's bound. tf.data handles one
    element per block and per batch, never per example.
    """
    import tensorflow as tf

    parse = _parse(columns)
    if not shuffle:
        rows = records.map(parse)
        return (rows.repeat() if repeat else rows).rebatch(batch_size)
    window = max(batch_size, shuffle // 4)
    blocks = records.shuffle(max(1, window // block), seed=seed, reshuffle_each_iteration=True).map(parse)
    windows = tf.data.Dataset.zip((blocks.rebatch(window),
                                   tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)))

    def permute(rows, draw):
        count = tf.shape(next(iter(rows.values())))[0]
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count), seed=tf.stack([draw, tf.constant(seed or 0, tf.int64)]))
        return {name: tf.gather(value, order) for name, value in rows.items()}

    windows = windows.map(permute)
    return (windows.repeat() if repeat else windows).rebatch(batch_size)


def iterate(paths: Sequence[Path | str], columns: Sequence[Column], *, batch_size: int = 1024,
            block: int = 0, part: tuple[int, int] = (0, 1)) -> Iterator[dict[str, np.ndarray]]:
    """The split (or one `part` of it, see `dataset`) in order as NumPy batches (strings as Python str)."""
    for batch in dataset(paths, columns, batch_size=batch_size, block=block, part=part).as_numpy_iterator():
        yield {name: _as_text(value) if value.dtype == object else value for name, value in batch.items()}


def _as_text(values: np.ndarray) -> np.ndarray:
    return np.array([value.decode("utf-8") for value in values.reshape(-1)], dtype=object).reshape(values.shape)
