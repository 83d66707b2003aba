"""What a config value may be: its type, its vocabulary, its range; and the checks that say so.

`pipeline/config.py` holds the sections and the loading; this module holds the rules it checks
every value against. The model and training hyperparameters' vocabularies and ranges are
`models.vocabulary`'s (Keras-free), so the config, the layer builders and the search space agree
by construction rather than by a test that keeps copies in sync.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from models import vocabulary
from models.vocabulary import Range
from pipeline.names import ARTIFACT_STORES, TASKS, TUNE_ALGORITHMS, TUNE_OBJECTIVES


class ConfigError(ValueError):
    """A config problem the user must fix; the CLI prints it and exits 2."""


# How `fit` spreads over devices: one device, tf.distribute.MirroredStrategy over this machine's devices,
# or tf.distribute.MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment variable.
DISTRIBUTIONS = ("none", "mirrored", "multi_worker")

# How Beam's DirectRunner runs a pipeline's workers ([beam] direct_running_mode).
BEAM_RUNNING_MODES = ("in_memory", "multi_threading", "multi_processing")
BEAM_INSTALL = "pip install 'deeplearning-tf[beam]'"

# (section, key) -> allowed values, for string keys with a fixed vocabulary.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("model", "encoder"): vocabulary.ENCODERS,
    ("model", "attention"): vocabulary.ATTENTIONS,
    ("model", "activation"): vocabulary.ACTIVATIONS,
    ("train", "optimizer"): vocabulary.OPTIMIZERS,
    ("train", "schedule"): vocabulary.SCHEDULES,
    ("tune", "algorithm"): TUNE_ALGORITHMS,
    ("tune", "objective"): TUNE_OBJECTIVES,
    ("data", "task"): TASKS,
    ("train", "monitor"): TUNE_OBJECTIVES,
    ("train", "distribution"): DISTRIBUTIONS,
    ("tracking", "artifact_store"): ARTIFACT_STORES,
    ("beam", "direct_running_mode"): BEAM_RUNNING_MODES,
}

# [model] and [train] hold the hyperparameters under their own names.
_MODEL_KEYS = ("dropout", "units", "layers", "embedding_dim", "init_std", "bn_momentum", "bn_epsilon")
_TRAIN_KEYS = ("learning_rate", "momentum", "clipnorm", "batch_size")
# (section, key) -> allowed numbers.
RANGES: dict[tuple[str, str], Range] = {
    **{("model", key): vocabulary.RANGES[key] for key in _MODEL_KEYS},
    **{("train", key): vocabulary.RANGES[key] for key in _TRAIN_KEYS},
    # The config spells "off" as 0 where the builders take None.
    ("model", "init_std"): Range(0.0, math.inf),
    ("train", "clipnorm"): Range(0.0, math.inf),
    ("train", "epochs"): Range(1, 100_000),
    ("train", "early_stopping_patience"): Range(0, 100_000),
    ("train", "shuffle_buffer"): Range(1, 100_000_000),
    ("tune", "max_trials"): Range(1, 100_000),
    ("tune", "max_epochs"): Range(1, 100_000),
    ("tune", "executions_per_trial"): Range(1, 100),
    ("tune", "early_stopping_patience"): Range(0, 100_000),
    ("data", "max_examples"): Range(0, math.inf),
    ("data", "vocab_size"): Range(3, 10_000_000),
    ("data", "sequence_length"): Range(1, 100_000),
    ("data", "max_label_drift"): Range(0.0, 1.0),
    ("pipeline", "seed"): Range(0, 2**31 - 1),
    ("tracking", "system_metrics_interval_s"): Range(0.1, 3600.0),
    ("evaluate", "min_accuracy"): Range(0.0, 1.0),
    ("evaluate", "max_regression"): Range(0.0, 1.0),
    ("evaluate", "max_loss"): Range(0.0, math.inf),
    ("evaluate", "max_mae"): Range(0.0, math.inf),
    ("evaluate", "min_r2"): Range(-math.inf, 1.0),
    ("evaluate", "top_k"): Range(1, 1000),
    ("beam", "direct_num_workers"): Range(0, 1024),
}

_SPLIT_RE = re.compile(
    r"^[A-Za-z_][\w-]*(\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?(\s*\+\s*[A-Za-z_][\w-]*(\[\s*(-?\d+%?)?\s*:\s*(-?\d+%?)?\s*\])?)*$"
)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def coerce(section: str, key: str, value: Any, expected: Any) -> Any:
    """Check a TOML value against the dataclass field type; ints are accepted for floats."""
    where = f"{section}.{key}"
    if expected is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if expected is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if math.isnan(value):
            raise ConfigError(f"{where} must be a number, got nan")
        return float(value)
    if expected is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if expected == list[str] or expected == list[int]:
        item = str if expected == list[str] else int
        if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{where} must be a list of {'strings' if item is str else 'integers'}, got {value!r}")
        return list(value)
    if expected == int | str:  # a count, or "auto"
        if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise ConfigError(f"{where} must be a whole number or \"auto\", got {value!r}")
    if isinstance(value, dict):
        return dict(value)
    raise ConfigError(f"{where} must be a table of hyperparameter choices, got {value!r}")


def check_value(section: str, key: str, value: Any) -> None:
    """Raise a ConfigError if a (type-checked) value is outside its vocabulary, range or format."""
    where = f"{section}.{key}"
    choices = CHOICES.get((section, key))
    if choices is not None and value not in choices:
        raise ConfigError(f"{where} = {value!r} is not one of the allowed values: {', '.join(choices)}")
    allowed = RANGES.get((section, key))
    if allowed is not None and value not in allowed:
        raise ConfigError(f"{where} = {value!r} is out of range: allowed {allowed}")
    if section == "data" and key.endswith("_split"):
        if not _SPLIT_RE.match(value.strip()):
            raise ConfigError(
                f"{where} = {value!r} is not a TFDS split expression; use e.g. 'train', 'test', "
                "'train[:80%]' or 'train[80%:90%]'"
            )
        for pct in re.findall(r"(-?\d+)%", value):
            if not -100 <= int(pct) <= 100:
                raise ConfigError(f"{where} = {value!r}: split percentages must lie in [-100%, 100%]")
    if section == "data" and key == "image_size" and value and (len(value) != 2 or min(value) < 1):
        raise ConfigError(f"{where} = {value!r} must be [height, width] with both >= 1, or [] for no resizing")
    if section == "data" and key == "crosses":
        for cross in value:
            if len([part for part in cross.split("*") if part]) < 2:
                raise ConfigError(f"{where} has {cross!r}; write a cross as two or more column names joined "
                                  "by '*', e.g. \"sex*pclass\"")
    if section == "tune" and key == "workers" and value != "auto" and not 1 <= value <= 256:
        raise ConfigError(f"{where} = {value!r} is out of range: allowed 1 to 256, or \"auto\" (one per usable core)")
    if section == "pipeline" and key == "name" and not _NAME_RE.match(value):
        raise ConfigError(
            f"pipeline.name = {value!r} is not a valid name: use letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )


def check_space(space: dict[str, Any], field_type: Callable[[str, str], Any]) -> None:
    """Check the tuning space without importing Keras: keys, shapes and every choice's type and range.

    `field_type(section, key)` is the config field's type, which each choice must have.
    """
    sections = {**{key: "model" for key in vocabulary.TUNABLE_MODEL_KEYS},
                **{key: "train" for key in vocabulary.TUNABLE_TRAIN_KEYS}}
    for key, spec in space.items():
        if key not in sections:
            raise ConfigError(f"unknown key tune.space.{key}; tunable keys are: {', '.join(sections)}")
        if isinstance(spec, dict):
            values = spec.get("values", [v for k, v in spec.items() if k in ("min", "max")])
        elif isinstance(spec, list):
            values = spec
        else:
            raise ConfigError(f"tune.space.{key} must be a list of choices or [low, high], got {spec!r}")
        if not values:
            raise ConfigError(f"tune.space.{key} is empty; give at least one choice")
        for value in values:
            expected = field_type(sections[key], key)
            try:
                coerce("tune.space", key, value, expected)
                check_value(sections[key], key, expected(value) if expected is float else value)
            except ConfigError as exc:
                raise ConfigError(f"in tune.space: {exc}") from None


def check_beam(beam: Any) -> None:
    """[beam] as a whole: a runner named, options as Beam spells them, DirectRunner's settings that work
    together, and Apache Beam installed when a runner is asked for (checked on load: exit 2, nothing run)."""
    if not beam.runner.strip():
        raise ConfigError('beam.runner is empty; use "none", "direct" or a Beam runner name such as "FlinkRunner"')
    for option in beam.options:
        if not option.startswith("--"):
            raise ConfigError(f"beam.options has {option!r}; write each as Beam's command line does, "
                              "e.g. \"--flink_master=host:8081\"")
    if beam.runner in ("direct", "DirectRunner") and beam.direct_running_mode == "in_memory" \
            and beam.direct_num_workers != 1:
        raise ConfigError(f"beam.direct_num_workers = {beam.direct_num_workers} needs beam.direct_running_mode = "
                          "\"multi_processing\" or \"multi_threading\"; in_memory runs one worker")
    if beam.runner != "none":
        require_beam(beam.runner)


def require_beam(runner: str) -> None:
    """Raise ConfigError naming the install command when a Beam runner is asked for but Beam is not installed."""
    import importlib.util

    if importlib.util.find_spec("apache_beam") is None:
        raise ConfigError(f"beam.runner = {runner!r} asks for Apache Beam, but apache_beam is not installed; "
                          f"run `{BEAM_INSTALL}` or set beam.runner = \"none\"")
