"""Validate's statistics as an Apache Beam pipeline: the same accumulators, combined by a Beam runner.

`[beam] runner` chooses where validate's full pass runs: "none" reads every split in this process
(components/validate.py); "direct" runs Beam's DirectRunner on this machine (in one process, in
threads, or in worker processes); any other value is handed to Beam as `--runner` (FlinkRunner,
SparkRunner, DataflowRunner, PortableRunner), with `[beam] options` passed through as pipeline
options. Apache Beam is imported only here, and only when a Beam runner is asked for.

The pipeline wraps the in-process pass's own `SplitAccumulator` (components/split_statistics.py) in a `beam.CombineFn`; nothing is computed
twice. Each split is cut into PARTS disjoint parts (whole shards, or every n-th batch of records
of a shard), each part is combined on whichever worker reads it, and the parts of a split are then
merged in part order. The quantile reservoirs draw random numbers when they merge, so a merge
order left to the runner's bundling would change quantiles from run to run; with the order fixed,
every runner and worker count gives the same statistics. They differ from the in-process pass only
where sampling and summation order can: float moments by rounding, quantiles by the reservoir's
sampling error (see tests/scale/test_beam.py).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import pickle
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

from components import examples as ex
from components import records
from components.split_statistics import SplitAccumulator, split_accumulator, summarize
from pipeline.artifacts import Artifact
from pipeline.config_rules import require_beam
from pipeline.names import SPLITS

PARTS = 8  # parts each split is cut into: the most workers one split can keep busy (fixed, so results are too)
BATCH = 1024  # records per batch a worker reads and adds to its accumulator
HARNESS_LOG_LEVEL = "ERROR"  # what Beam workers log unless [beam] options say otherwise


class BeamSettings(Protocol):
    """What the `[beam]` config section holds (pipeline/config.py defines it)."""

    runner: str  # "none" | "direct" | a Beam runner name
    direct_num_workers: int  # DirectRunner only
    direct_running_mode: str  # DirectRunner only: in_memory | multi_threading | multi_processing
    options: Sequence[str]  # further Beam pipeline options, e.g. "--flink_master=host:8081"


def pipeline_args(settings: BeamSettings) -> list[str]:
    """The Beam command-line options `[beam]` stands for: the runner, DirectRunner's settings, the rest as given."""
    if settings.runner in ("direct", "DirectRunner"):
        args = ["--runner=DirectRunner", f"--direct_num_workers={settings.direct_num_workers}",
                f"--direct_running_mode={settings.direct_running_mode}"]
    else:
        args = [f"--runner={settings.runner}"]
    # Workers log every bundle at INFO; errors still reach the stage's output. A later option wins.
    return [*args, f"--default_sdk_harness_log_level={HARNESS_LOG_LEVEL}", *settings.options]


@contextlib.contextmanager
def _quiet_workers() -> Iterator[None]:
    """Beam's job service relays each local worker's warnings, and each worker's TensorFlow prints its start-up
    line, into the stage's output: keep both to errors while a pipeline runs, unless the user set them."""
    relay = logging.getLogger("apache_beam")
    level = relay.level
    relay.setLevel(logging.ERROR)
    added = "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    if added:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"  # inherited by the worker processes DirectRunner starts
    try:
        yield
    finally:
        relay.setLevel(level)
        if added:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)


def pipeline_options(settings: BeamSettings):
    """`pipeline_args` as Beam's PipelineOptions (what TFDS's DownloadConfig takes as beam_options)."""
    _import_beam(settings)
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(pipeline_args(settings))


def _import_beam(settings: BeamSettings):
    """apache_beam, without the warning its BigQuery client logs on import (root logger, once per process)."""
    require_beam(settings.runner)
    root = logging.getLogger()
    # A handler keeps logging.warning from configuring the root logger as a side effect of the import.
    guard, level = logging.NullHandler(), root.level
    root.addHandler(guard)
    root.setLevel(logging.ERROR)
    try:
        import apache_beam
    finally:
        root.removeHandler(guard)
        root.setLevel(level)
    return apache_beam


@dataclass(frozen=True)
class Part:
    """One unit of work: a split's shard files, of which every `count`-th batch from the `index`-th."""

    split: str
    number: int  # position among the split's parts: the order parts merge in
    paths: tuple[str, ...]
    index: int
    count: int


def parts(directory: Path, spec: dict[str, Any], split: str) -> list[Part]:
    """About PARTS parts of a split: whole shards when it has that many, else each shard cut by batches."""
    paths = [str(path) for path in ex.paths(directory, spec, split)]
    if not paths:
        return []
    if len(paths) >= PARTS:
        groups = [paths[number::PARTS] for number in range(PARTS)]
        return [Part(split, number, tuple(group), 0, 1) for number, group in enumerate(groups)]
    per_shard = math.ceil(PARTS / len(paths))
    return [Part(split, shard * per_shard + index, (path,), index, per_shard)
            for shard, path in enumerate(paths) for index in range(per_shard)]


def _read(part: Part, columns: tuple[records.Column, ...]) -> Iterator[tuple[tuple[str, int], tuple[str, dict]]]:
    """A part's batches, keyed by (split, part number); each value says its split, so an accumulator can start."""
    for batch in records.iterate(part.paths, columns, batch_size=BATCH, part=(part.index, part.count)):
        yield (part.split, part.number), (part.split, batch)


def _combine_fn(spec: dict[str, Any], vocabulary: frozenset[str] | None):
    """The split accumulator as a beam.CombineFn (a factory, so Beam is imported only when used)."""
    import apache_beam as beam

    class SplitStatisticsFn(beam.CombineFn):
        """(split, batch) values in, one SplitAccumulator per key out. An accumulator starts empty (None)
        and takes its split's kind of accumulators from the first batch, since a CombineFn's
        create_accumulator is not told the key."""

        def create_accumulator(self) -> SplitAccumulator | None:
            return None

        def add_input(self, accumulator: SplitAccumulator | None, value: tuple[str, dict]) -> SplitAccumulator:
            split, batch = value
            accumulator = accumulator or split_accumulator(spec, split, vocabulary)
            accumulator.update(batch)
            return accumulator

        def merge_accumulators(self, accumulators) -> SplitAccumulator | None:
            merged = None
            for accumulator in accumulators:
                if accumulator is None:
                    continue
                if merged is None:
                    merged = accumulator
                else:
                    merged.merge(accumulator)
            return merged

        def extract_output(self, accumulator: SplitAccumulator | None) -> SplitAccumulator | None:
            return accumulator

    return SplitStatisticsFn()


def _merge_parts(split_and_parts: tuple[str, Any]) -> tuple[str, SplitAccumulator]:
    """A split's part accumulators merged in part order, so the quantile reservoirs merge the same way each run."""
    split, numbered = split_and_parts
    ordered = [accumulator for _, accumulator in sorted(numbered, key=lambda item: item[0])]
    merged = ordered[0]
    for other in ordered[1:]:
        merged.merge(other)
    return split, merged


def _save(result: tuple[str, SplitAccumulator], directory: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    split, accumulator = result
    with FileSystems.create(f"{directory}/{split}.pickle") as out:
        out.write(pickle.dumps(accumulator))


def _results_directory(args: list[str]) -> str:
    """Where workers leave the merged accumulators: under Beam's --temp_location if given (a cluster's shared
    storage), else in a local temporary folder (DirectRunner)."""
    from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

    temp = PipelineOptions(args).view_as(GoogleCloudOptions).temp_location
    return f"{temp.rstrip('/')}/validate-statistics-{uuid.uuid4().hex}" if temp else tempfile.mkdtemp(prefix="beam-stats-")


def _combine_splits(examples: Artifact, spec: dict[str, Any], splits: Sequence[str], settings: BeamSettings,
                    vocabulary: frozenset[str] | None) -> dict[str, SplitAccumulator]:
    """One Beam pipeline over `splits`: batches combined per (split, part), then each split's parts merged in order."""
    beam = _import_beam(settings)
    args = pipeline_args(settings)
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    units = [part for split in splits for part in parts(examples.path, spec, split)]
    directory = _results_directory(args)
    with _quiet_workers(), beam.Pipeline(options=PipelineOptions(args)) as pipeline:
        (pipeline
         | "Parts" >> beam.Create(units)
         | "Read" >> beam.FlatMap(_read, ex.columns(spec))
         | "Combine parts" >> beam.CombinePerKey(_combine_fn(spec, vocabulary))
         | "Key by split" >> beam.Map(lambda item: (item[0][0], (item[0][1], item[1])))
         | "Group parts" >> beam.GroupByKey()
         | "Merge parts" >> beam.Map(_merge_parts)
         | "Save" >> beam.Map(_save, directory))
    results: dict[str, SplitAccumulator] = {}
    for split in splits:
        path = f"{directory}/{split}.pickle"
        if FileSystems.exists(path):
            with FileSystems.open(path) as saved:
                results[split] = pickle.loads(saved.read())
        else:  # a split without examples has no part to combine: its statistics say it is empty
            results[split] = split_accumulator(spec, split, vocabulary)
    FileSystems.delete([directory])
    return results


def compute_statistics(examples: Artifact, spec: dict[str, Any], settings: BeamSettings) -> dict[str, Any]:
    """Every split's statistics, as validate.compute_statistics returns them, from a Beam pipeline.

    Text needs train's vocabulary before the other splits' OOV rates, so text runs two pipelines
    (train, then the others); every other kind runs one over all splits.
    """
    accumulators: dict[str, SplitAccumulator] = {}
    vocabulary: frozenset[str] | None = None
    statistics: dict[str, Any] = {}
    rounds = [["train"], [s for s in SPLITS if s != "train"]] if spec["kind"] == "text" else [list(SPLITS)]
    for splits in rounds:
        accumulators.update(_combine_splits(examples, spec, splits, settings, vocabulary))
        for split in splits:
            statistics[split], found = summarize(accumulators[split], spec, split)
            vocabulary = found if split == "train" else vocabulary
    return {split: statistics[split] for split in SPLITS}
