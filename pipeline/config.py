"""The pipeline's configuration: TOML files loaded into frozen dataclasses.

Every key has a one-line comment with its meaning. Validation happens on load, before
any MLflow run or artifact exists, so a typo costs a message and exit code 2,
never a half-finished run; the rules each value is checked against are in
`pipeline/config_rules.py`.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

from pipeline.config_rules import ConfigError, check_beam, check_space, check_value, coerce
from pipeline.names import STAGES

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "digits.toml"


@dataclass(frozen=True)
class PipelineConfig:
    name: str = "digits"  # experiment and registered-model name
    seed: int = 42  # seeds data shuffling, initialisation, dropout and the tuner


@dataclass(frozen=True)
class DataConfig:
    name: str = "digits"  # TFDS name ("name/config:version") or a prepared TFDS directory
    data_dir: str = ""  # TFDS data_dir; empty = TFDS default / TFDS_DATA_DIR
    manual_dir: str = ""  # folder with a dataset's downloaded files, so TFDS prepares it offline
    train_split: str = "train[:80%]"  # TFDS split expression for training
    validation_split: str = "train[80%:90%]"  # TFDS split expression for validation
    test_split: str = "train[90%:]"  # TFDS split expression for the final test
    feature: str = ""  # feature key; empty = from the dataset's supervised_keys
    label: str = ""  # label key; empty = from the dataset's supervised_keys
    slice_feature: str = ""  # extra feature kept for sliced evaluation (e.g. clinc_oos "domain")
    task: str = "auto"  # auto (from the label's TFDS type: class labels and integers classify, floats regress) | classification | regression
    categorical: list[str] = field(default_factory=list)  # tabular: integer columns to treat as categories (ClassLabel and text columns always are)
    crosses: list[str] = field(default_factory=list)  # tabular: feature crosses such as "sex*pclass" (hashed into the model's input)
    image_size: list[int] = field(default_factory=list)  # [height, width] to resize images to in the stream (needed for variable-size images)
    max_examples: int = 0  # cap on examples per split, 0 = all (for quick runs and tests)
    vocab_size: int = 10000  # text only: TextVectorization vocabulary size
    sequence_length: int = 32  # text only: tokens per example after padding/truncation
    max_label_drift: float = 0.2  # L-infinity distance of train vs test label shares that fails validation


@dataclass(frozen=True)
class ModelConfig:
    encoder: str = "mlp"  # mlp | cnn | simple_rnn | lstm | gru
    attention: str = "none"  # none | additive | dot (recurrent encoders only)
    units: int = 64  # width of each hidden layer / recurrent state size
    layers: int = 2  # number of hidden (dense, conv or recurrent) layers
    batch_norm: bool = True  # batch normalization between affine transform and nonlinearity
    dropout: float = 0.2  # dropout rate after each hidden layer, in [0, 1)
    activation: str = "relu"  # relu | sigmoid | tanh
    bidirectional: bool = False  # wrap recurrent layers in Bidirectional
    embedding_dim: int = 64  # text only: token embedding size
    init_std: float = 0.0  # > 0: normal weight init with this std; 0 = Keras defaults
    bn_momentum: float = 0.99  # BN moving-statistics momentum
    bn_epsilon: float = 0.001  # BN variance epsilon


@dataclass(frozen=True)
class TrainConfig:
    optimizer: str = "adam"  # sgd | momentum | adam
    learning_rate: float = 0.001  # initial learning rate
    momentum: float = 0.9  # momentum coefficient (optimizer = "momentum" only)
    nesterov: bool = False  # Nesterov momentum (optimizer = "momentum" only)
    schedule: str = "constant"  # constant | cosine learning-rate schedule
    clipnorm: float = 0.0  # > 0: clip gradients by this global norm (useful for recurrent nets)
    batch_size: int = 64  # examples per gradient step
    epochs: int = 10  # maximum epochs
    early_stopping_patience: int = 3  # epochs without improvement of `monitor` before stopping, 0 = off
    shuffle_buffer: int = 10000  # examples held to shuffle the streamed training data (capped at 64 MiB)
    monitor: str = "val_loss"  # val_loss | val_accuracy: what early stopping watches and restores the best of
    distribution: str = "none"  # none | mirrored (this machine's devices) | multi_worker (the machines TF_CONFIG names)


@dataclass(frozen=True)
class TuneConfig:
    enabled: bool = True  # false = train straight from [model]/[train]
    algorithm: str = "hyperband"  # random | bayesian | hyperband | grid
    objective: str = "val_accuracy"  # val_accuracy (maximised) | val_loss (minimised)
    max_trials: int = 12  # trial budget (random, bayesian, grid)
    max_epochs: int = 6  # epochs per trial (hyperband: the largest bracket)
    executions_per_trial: int = 1  # models trained per trial, averaged
    early_stopping_patience: int = 2  # early stopping inside a trial, 0 = off
    workers: int | str = 1  # trials run at once, each in a process of its own; "auto" = one per usable core
    space: dict[str, Any] = field(default_factory=dict)  # [model]/[train] key -> choices or [low, high]


@dataclass(frozen=True)
class EvaluateConfig:
    min_accuracy: float = 0.0  # a candidate below this test accuracy is not blessed
    max_loss: float = 0.0  # regression only: a candidate above this test MSE is not blessed, 0 = no limit
    max_mae: float = 0.0  # regression only: a candidate above this test mean absolute error is not blessed, 0 = no limit
    min_r2: float = -1e9  # regression only: a candidate below this test R^2 is not blessed (default: no limit)
    max_regression: float = 0.01  # how much worse than the champion a candidate may be (accuracy, or MSE)
    top_k: int = 3  # k of the top-k accuracy metric


@dataclass(frozen=True)
class PushConfig:
    serving_dir: str = ""  # TF-Serving export root; empty = <store>/serving


@dataclass(frozen=True)
class TrackingConfig:
    # Not part of any stage's fingerprint: how a run is observed never changes what it computes.
    system_metrics: bool = True  # sample CPU, memory, disk (and GPU) on tune/train/evaluate runs (MLflow's sampler)
    system_metrics_interval_s: float = 10.0  # seconds between two system-metric samples
    artifact_store: str = "local"  # where stage artifacts live: local (this machine's store) | mlflow (also the stage run's MLflow artifacts, for every machine)


@dataclass(frozen=True)
class BeamConfig:
    # Where validate's full pass runs (components/beam_statistics.py); in no stage's fingerprint: every runner
    # computes the same statistics. A runner other than "none" needs `pip install 'deeplearning-tf[beam]'`.
    runner: str = "none"  # none (in the pipeline's process) | direct (Beam's DirectRunner) | a Beam runner, e.g. FlinkRunner
    direct_num_workers: int = 1  # DirectRunner's parallel workers; 0 = one per CPU core
    direct_running_mode: str = "in_memory"  # DirectRunner: in_memory | multi_threading | multi_processing
    options: list[str] = field(default_factory=list)  # more Beam pipeline options, as given, e.g. "--flink_master=host:8081"


@dataclass(frozen=True)
class Config:
    pipeline: PipelineConfig = field(default_factory=PipelineConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tune: TuneConfig = field(default_factory=TuneConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    push: PushConfig = field(default_factory=PushConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    beam: BeamConfig = field(default_factory=BeamConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)


_SECTION_TYPES = {
    "pipeline": PipelineConfig,
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "tune": TuneConfig,
    "evaluate": EvaluateConfig,
    "push": PushConfig,
    "tracking": TrackingConfig,
    "beam": BeamConfig,
}

def _build_section(section: str, raw: Any) -> Any:
    cls = _SECTION_TYPES[section]
    if not isinstance(raw, dict):
        raise ConfigError(f"[{section}] must be a table of keys, got {raw!r}")
    hints = get_type_hints(cls)
    known = [f.name for f in fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in hints:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"did you mean {section}.{close[0]}? " if close else ""
            raise ConfigError(f"unknown key {section}.{key}; {hint}the keys of [{section}] are: {', '.join(known)}")
        expected = hints[key]
        if section == "tune" and key == "space":
            expected = dict
        values[key] = coerce(section, key, value, expected)
        check_value(section, key, values[key])
    return cls(**values)


def _check_consistency(config: Config) -> None:
    model = config.model
    if model.attention != "none" and model.encoder not in ("simple_rnn", "lstm", "gru"):
        raise ConfigError(
            f"model.attention = {model.attention!r} needs a recurrent encoder (simple_rnn, lstm, gru), "
            f"but model.encoder = {model.encoder!r}; set model.attention = \"none\" or change the encoder"
        )
    check_beam(config.beam)
    if config.tune.enabled:
        check_space(config.tune.space, lambda section, key: get_type_hints(_SECTION_TYPES[section])[key])


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse one `--set section.key=value` into (section, key, TOML value)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r} has no '='; write --set section.key=value, e.g. --set train.epochs=5")
    path, raw_value = text.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) < 2 or not all(parts):
        raise ConfigError(f"--set {text!r}: the key must be section.key, e.g. train.epochs")
    raw_value = raw_value.strip()
    try:
        value = tomllib.loads(f"v = {raw_value}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw_value  # a bare word such as lstm is taken as a string
    return parts[0], ".".join(parts[1:]), value


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist; pass an existing file to --config")
    if not path.is_file():
        raise ConfigError(f"config file {path} is not a file; pass a TOML file to --config")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"config file {path} cannot be read ({exc.strerror}); check its permissions") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8 TOML") from None
    if not text.strip():
        raise ConfigError(f"config file {path} is empty; start from pipeline/configs/digits.toml")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Config:
    """Load a TOML config, apply `--set` overrides, validate, and return a frozen Config."""
    raw = _read_toml(Path(path) if path else DEFAULT_CONFIG)
    for override in overrides:
        section, key, value = parse_override(override)
        if section not in _SECTION_TYPES:
            raise ConfigError(f"unknown section [{section}] in --set {override!r}; sections are: {', '.join(_SECTION_TYPES)}")
        target = raw.setdefault(section, {})
        if section == "tune" and key.startswith("space."):
            target.setdefault("space", {})[key.split(".", 1)[1]] = value
        else:
            target[key] = value
    for section in raw:
        if section not in _SECTION_TYPES:
            raise ConfigError(f"unknown section [{section}]; sections are: {', '.join(_SECTION_TYPES)}")
    config = Config(**{name: _build_section(name, raw.get(name, {})) for name in _SECTION_TYPES})
    _check_consistency(config)
    return config


def parse_address(address: str, what: str = "--oracle") -> tuple[str, int]:
    """HOST:PORT as (host, port); a ConfigError naming `what` for anything else."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} {address!r} is not HOST:PORT, e.g. 127.0.0.1:8000")
    return host, int(port)


def from_dict(data: dict[str, dict[str, Any]]) -> Config:
    """A Config from `Config.to_dict()` output (another process's resolved config), validated again."""
    config = Config(**{name: _build_section(name, data.get(name, {})) for name in _SECTION_TYPES})
    _check_consistency(config)
    return config


def check_stage(name: str) -> str:
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; stages are: {', '.join(STAGES)}")
    return name


def flatten(config: Config) -> dict[str, Any]:
    """The whole resolved config as flat `section.key` params for MLflow."""
    flat: dict[str, Any] = {}
    for section, values in config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, dict):
                for sub, subvalue in value.items():
                    flat[f"{section}.{key}.{sub}"] = subvalue
            else:
                flat[f"{section}.{key}"] = value
    return flat
