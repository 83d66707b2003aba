"""Validate's statistics on Apache Beam's DirectRunner equal the in-process ones, on slices of real datasets.

Ingest writes a small slice of fashion_mnist (images) and of clinc_oos (text) as the pipeline does;
validate's statistics are then computed in this process and by a Beam pipeline: in one process
(in_memory) and in two worker processes (multi_processing). What must agree, and how closely:

- counts, min, max, zero shares, NaN counts, label distributions, text lengths, vocabulary sizes,
  OOV rates, the train vocabulary preprocess builds its TextVectorization from (tokens and their
  order) and the ranked values of tabular categorical columns its lookups take: exactly (they are sums and extremes of integers);
- means and standard deviations, and the train split's per-channel means and variances of vectors and
  sequences (what preprocess builds its Normalization from): to a relative 1e-9 (the same values
  summed in another order);
- quantiles: Beam and the in-process pass keep different uniform samples (RESERVOIR values) of
  the same data, so each must lie within QUANTILE_RANK_TOLERANCE in rank of the exact quantile of
  all the values; the bound is about five standard errors of a sample quantile at the median
  (sqrt(0.25 / RESERVOIR) = 0.0035), so it fails on a wrong reservoir, not on sampling luck;
- Beam in one process and Beam in two worker processes: identical, quantiles included, since the
  parts of a split merge in a fixed order whatever the runner does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from components import beam_statistics, examples, records, validate
from components.statistics import RESERVOIR
from pipeline.artifacts import Artifact
from pipeline.config import load_config
from pipeline.names import SPLITS
from tests.conftest import ROOT, ingested

SHARED_TFDS = Path(os.environ.get("TFDS_DATA_DIR") or ROOT.parent / "shared" / "tfds")
CONFIGS = ROOT / "pipeline" / "configs"
SLICE = 600  # examples per split: 470,400 pixels, far more than a quantile reservoir holds
QUANTILE_RANK_TOLERANCE = 5 * math.sqrt(0.25 / RESERVOIR)
EXACT_FEATURE_KEYS = ("shape", "dtype", "min", "max", "zeros_share", "nan_count", "length_min", "length_mean",
                      "length_p50", "length_p95", "length_max", "empty_count", "vocabulary_size", "oov_rate",
                      "vocabulary")


@dataclass(frozen=True)
class Beam:
    """The [beam] settings the component reads."""

    runner: str = "direct"
    direct_num_workers: int = 1
    direct_running_mode: str = "in_memory"
    options: tuple[str, ...] = ()


def _ingest(tmp_path_factory, config_name: str) -> Artifact:
    """The real ingest component on a slice of a real dataset, recorded in a throwaway MLflow store."""
    root = tmp_path_factory.mktemp(config_name)
    data = replace(load_config(CONFIGS / f"{config_name}.toml").data, data_dir=str(SHARED_TFDS), max_examples=SLICE)
    return ingested(root, data)


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> Artifact:
    return _ingest(tmp_path_factory, "fashion_mnist")


@pytest.fixture(scope="module")
def clinc(tmp_path_factory) -> Artifact:
    return _ingest(tmp_path_factory, "clinc_oos")


def _values(artifact: Artifact, split: str) -> np.ndarray:
    spec = examples.spec(artifact)
    batches = records.iterate(examples.paths(artifact.path, spec, split), examples.columns(spec))
    return np.concatenate([batch[examples.FEATURE].reshape(-1).astype(np.float64) for batch in batches])


def _assert_quantiles_near_exact(quantiles: dict[str, float], values: np.ndarray, what: str) -> None:
    ordered = np.sort(values)
    for name, value in quantiles.items():
        q = int(name[1:]) / 100
        # The reported value's span of ranks among all the values (ties make it an interval).
        low = np.searchsorted(ordered, value, side="left") / ordered.size
        high = np.searchsorted(ordered, value, side="right") / ordered.size
        distance = max(low - q, q - high, 0.0)
        assert distance <= QUANTILE_RANK_TOLERANCE, f"{what} {name} = {value} lies {distance:.4f} in rank from {q}"


def _assert_same(expected: dict, found: dict, what: str) -> None:
    """Exact where the statistic is integer arithmetic, rel 1e-9 for float moments (quantiles: see the callers)."""
    assert found["count"] == expected["count"], what
    assert found["label"] == expected["label"], what  # classification: class shares of integer counts
    feature, beam = expected["feature"], found["feature"]
    assert set(beam) == set(feature), what
    for key in EXACT_FEATURE_KEYS:
        assert beam.get(key) == feature.get(key), f"{what}: {key}"
    for key in ("mean", "std"):
        if key in feature:
            assert beam[key] == pytest.approx(feature[key], rel=1e-9), f"{what}: {key}"
    for key in ("channel_mean", "channel_variance"):
        if key in feature:
            np.testing.assert_allclose(beam[key], feature[key], rtol=1e-9, err_msg=f"{what}: {key}")


def test_image_statistics_on_beam_equal_the_in_process_pass(fashion):
    spec = examples.spec(fashion)
    assert spec["counts"] == {split: SLICE for split in SPLITS}
    in_process = validate.compute_statistics(fashion, spec)
    one = beam_statistics.compute_statistics(fashion, spec, Beam())
    two = beam_statistics.compute_statistics(fashion, spec, Beam(direct_num_workers=2,
                                                                 direct_running_mode="multi_processing"))
    assert two == one  # parts merge in a fixed order: the worker count changes nothing, quantiles included
    for split in SPLITS:
        _assert_same(in_process[split], one[split], f"{split} in one process")
        values = _values(fashion, split)
        assert one[split]["feature"]["max"] == values.max() and one[split]["feature"]["min"] == values.min()
        for name, stats in (("in-process", in_process[split]), ("beam", one[split])):
            assert set(stats["feature"]["quantiles"]) == {"p01", "p50", "p99"}
            _assert_quantiles_near_exact(stats["feature"]["quantiles"], values, f"{split} {name}")


def test_text_statistics_on_beam_equal_the_in_process_pass(clinc):
    """Text runs two Beam pipelines (train's vocabulary first): vocabulary sizes, OOV rates and the ranked
    train vocabulary must match."""
    spec = examples.spec(clinc)
    assert spec["kind"] == "text"
    in_process = validate.compute_statistics(clinc, spec)
    beam = beam_statistics.compute_statistics(clinc, spec, Beam())
    assert beam["train"]["feature"]["vocabulary_size"] > 100
    assert beam["validation"]["feature"]["oov_rate"] > 0
    assert len(beam["train"]["feature"]["vocabulary"]) > 100 and "vocabulary" not in beam["test"]["feature"]
    for split in SPLITS:
        _assert_same(in_process[split], beam[split], split)


@pytest.fixture(scope="module")
def sequences(tmp_path_factory) -> Artifact:
    """fashion_mnist slices stored as 28-step sequences of 28 channels (tests/test_preprocess_analyzers.py)."""
    from tests.test_preprocess_analyzers import numeric_data, numeric_fashion_dir

    directory = numeric_fashion_dir(tmp_path_factory.mktemp("numeric-tfds"))
    return ingested(tmp_path_factory.mktemp("sequences"), numeric_data(directory, "rows"))


def test_sequence_channel_moments_on_beam_equal_the_in_process_pass(sequences):
    spec = examples.spec(sequences)
    assert spec["kind"] == "sequence"
    in_process = validate.compute_statistics(sequences, spec)
    beam = beam_statistics.compute_statistics(sequences, spec, Beam(direct_num_workers=2,
                                                                    direct_running_mode="multi_processing"))
    assert len(beam["train"]["feature"]["channel_variance"]) == 28
    for split in SPLITS:
        _assert_same(in_process[split], beam[split], split)


@pytest.fixture(scope="module")
def passengers(tmp_path_factory) -> Artifact:
    from tests.test_preprocess_analyzers import passengers_examples

    return passengers_examples(tmp_path_factory)[0]


def test_tabular_columns_on_beam_equal_the_in_process_pass(passengers):
    """Each column's statistics, the ranked values preprocess builds its lookups from included."""
    spec = examples.spec(passengers)
    in_process = validate.compute_statistics(passengers, spec)
    beam = beam_statistics.compute_statistics(passengers, spec, Beam())
    assert beam["train"]["feature"]["columns"]["sex"]["vocabulary"]
    for split in SPLITS:
        _assert_same(in_process[split], beam[split], split)
        columns, beam_columns = in_process[split]["feature"]["columns"], beam[split]["feature"]["columns"]
        assert set(beam_columns) == set(columns)
        for name, stats in columns.items():
            rest = {key for key in stats if key not in ("mean", "std", "quantiles")}
            assert {key: beam_columns[name][key] for key in rest} == {key: stats[key] for key in rest}, name
            for key in ("mean", "std"):
                if key in stats:
                    assert beam_columns[name][key] == pytest.approx(stats[key], rel=1e-9), f"{split} {name}: {key}"


def test_every_part_is_read_once_and_the_parts_cover_the_split(fashion):
    spec = examples.spec(fashion)
    for split in SPLITS:
        units = beam_statistics.parts(fashion.path, spec, split)
        assert [unit.number for unit in units] == list(range(len(units)))
        seen = sum(len(batch[examples.LABEL]) for unit in units
                   for batch in records.iterate(unit.paths, examples.columns(spec), batch_size=64,
                                                part=(unit.index, unit.count)))
        assert seen == SLICE


def test_beam_settings_become_pipeline_options_and_user_options_come_last():
    direct = beam_statistics.pipeline_args(Beam(direct_num_workers=2, direct_running_mode="multi_processing",
                                                options=("--default_sdk_harness_log_level=INFO",)))
    assert direct[:3] == ["--runner=DirectRunner", "--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    assert direct[-1] == "--default_sdk_harness_log_level=INFO"
    flink = beam_statistics.pipeline_args(Beam(runner="FlinkRunner", options=("--flink_master=localhost:8081",)))
    assert flink[0] == "--runner=FlinkRunner" and "--flink_master=localhost:8081" in flink
    assert not any(arg.startswith("--direct") for arg in flink)


def test_asking_for_beam_without_it_installed_names_the_install_command(monkeypatch):
    """On load (exit 2, before anything runs) and where the component imports Beam."""
    import importlib.util

    from pipeline.config import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "apache_beam" else real(name, *a))
    assert load_config(None).beam.runner == "none"  # the default run needs no Beam
    with pytest.raises(ConfigError, match=r"apache_beam is not installed; run `pip install 'deeplearning-tf\[beam\]'`"):
        load_config(None, ["beam.runner=direct"])
    with pytest.raises(ConfigError, match=r"pip install 'deeplearning-tf\[beam\]'"):
        beam_statistics.pipeline_options(Beam())


def test_the_default_path_never_imports_beam():
    """The README's commands run without Beam installed: no stage module imports it until a runner is asked for."""
    import subprocess
    import sys

    code = ("import sys\n"
            "sys.modules['apache_beam'] = None  # as if not installed: importing it raises\n"
            "from pipeline.config import load_config\n"
            "import pipeline.runner, pipeline.stages, components.ingest, components.validate, components.preprocess\n"
            "import components.beam_statistics\n"
            "assert load_config(None).beam.runner == 'none'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_beam_settings_are_checked_when_the_config_loads():
    from pipeline.config import ConfigError

    config = load_config(None, ["beam.runner=direct", "beam.direct_num_workers=2", "beam.direct_running_mode=multi_processing",
                                'beam.options=["--direct_runner_bundle_repeat=0"]'])
    assert config.beam.direct_num_workers == 2 and config.beam.options == ["--direct_runner_bundle_repeat=0"]
    for overrides, message in ((["beam.direct_running_mode=threads"], "beam.direct_running_mode = 'threads' is not one"),
                               (["beam.direct_num_workers=-1"], "beam.direct_num_workers = -1 is out of range"),
                               (["beam.runner=direct", "beam.direct_num_workers=2"], "in_memory runs one worker"),
                               (['beam.options=["flink_master=host:8081"]'], "write each as Beam's command line does"),
                               (['beam.runner=" "'], "beam.runner is empty"),
                               (["beam.runers=direct"], "did you mean beam.runner")):
        with pytest.raises(ConfigError, match=message):
            load_config(None, overrides)


def _beam_prepared_builder(data_dir: Path):
    """A tiny TFDS dataset whose examples TFDS generates with an Apache Beam pipeline (as large catalogue
    datasets such as wikipedia do)."""
    import tensorflow_datasets as tfds

    class BeamPreparedSquares(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"x": tfds.features.Tensor(shape=(2,), dtype=np.float32),
                                                     "y": tfds.features.ClassLabel(num_classes=2)}),
                supervised_keys=("x", "y"))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(40)}

        def _generate_examples(self, count):
            beam = tfds.core.lazy_imports.apache_beam
            return beam.Create(range(count)) | beam.Map(lambda i: (i, {"x": [i, i * i], "y": i % 2}))

    return BeamPreparedSquares(data_dir=str(data_dir))


def test_a_tfds_builder_that_prepares_with_beam_runs_on_the_configured_runner(tmp_path):
    from components import ingest

    data = replace(load_config(None).data, manual_dir=str(tmp_path))  # a catalogue-like builder: offline, manual
    builder = _beam_prepared_builder(tmp_path / "unknown-runner")
    # The runner reaches TFDS's Beam pipeline: an unknown one fails there, naming itself.
    with pytest.raises(Exception, match="NoSuchRunner"):
        ingest.ensure_prepared(ingest.Source(builder, "beam_prepared_squares"), data, Beam(runner="NoSuchRunner"))
    assert not builder.is_prepared()
    builder = _beam_prepared_builder(tmp_path / "direct")
    ingest.ensure_prepared(ingest.Source(builder, "beam_prepared_squares"), data, Beam())
    assert builder.is_prepared() and builder.info.splits["train"].num_examples == 40



# -- the pipeline: [beam] in the config ---------------------------------------------------------------------------

BEAM_RUN = ("--set", "beam.runner=direct", "--set", "beam.direct_num_workers=2",
            "--set", "beam.direct_running_mode=multi_processing")
UP_TO_PREPROCESS = ("--set", "tune.enabled=false", "-q")


def _stage_dir(store, stage: str) -> Path:
    (found,) = [path for path in (store.root / "pipeline" / "digits" / stage).iterdir()
                if path.is_dir() and not path.name.endswith(".partial")]
    return found


def _normalization(transform_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    import keras

    from pipeline.names import TRANSFORM_MODEL

    layer = keras.saving.load_model(transform_dir / TRANSFORM_MODEL, safe_mode=True).get_layer("normalization")
    return np.asarray(layer.mean), np.asarray(layer.variance)


def test_a_beam_run_of_validate_and_preprocess_writes_what_the_default_run_writes(tmp_path, tfds_dir):
    """`pipeline tune` up to preprocess on the default digits config, once in-process and once with [beam] on
    two DirectRunner worker processes, each in its own store: the same statistics (as above), schema and
    anomalies, and a transform whose Normalization holds the same mean and variance."""
    import json

    from pipeline.names import ANOMALIES_FILE, SCHEMA_FILE, STATISTICS_FILE, TAG_STAGE
    from tests.conftest import make_store

    stores = {name: make_store(tmp_path / name, tfds_dir) for name in ("default", "beam")}
    for name, extra in (("default", ()), ("beam", BEAM_RUN)):
        done = stores[name].cli("tune", *UP_TO_PREPROCESS, *extra, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    for name, runner in (("default", "none"), ("beam", "direct")):
        (run,) = stores[name].client().search_runs(
            [stores[name].client().get_experiment_by_name("digits").experiment_id],
            filter_string=f"tags.`{TAG_STAGE}` = 'validate'")
        assert run.data.params[validate.STATISTICS_RUNNER_PARAM] == runner
    read = {name: {file: json.loads((_stage_dir(store, "validate") / file).read_text())
                   for file in (STATISTICS_FILE, SCHEMA_FILE, ANOMALIES_FILE)} for name, store in stores.items()}
    assert read["beam"][SCHEMA_FILE] == read["default"][SCHEMA_FILE]
    assert read["beam"][ANOMALIES_FILE] == read["default"][ANOMALIES_FILE]
    examples_artifact = Artifact("Examples", str(_stage_dir(stores["beam"], "ingest")), "test", "test")
    for split in SPLITS:
        default, beam = read["default"][STATISTICS_FILE][split], read["beam"][STATISTICS_FILE][split]
        _assert_same(default, beam, split)
        _assert_quantiles_near_exact(beam["feature"]["quantiles"], _values(examples_artifact, split), split)
    (mean, variance), (beam_mean, beam_variance) = (_normalization(_stage_dir(store, "preprocess"))
                                                    for store in stores.values())
    np.testing.assert_allclose(beam_mean, mean, rtol=1e-6)
    np.testing.assert_allclose(beam_variance, variance, rtol=1e-6)

