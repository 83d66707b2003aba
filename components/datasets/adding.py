"""`adding_problem`: the long-memory regression task of Hochreiter & Schmidhuber (1997).

Each example is a sequence of T steps with two channels: channel 0 holds values
drawn uniformly from [0, 1]; channel 1 is 0 except for two markers set to 1,
one in the first half of the sequence and one in the second half (the variant
of Le et al. 2015 and Arjovsky et al. 2016). The target is the sum of the two
marked values. Predicting the constant 1 scores an MSE of Var(U + U') = 1/6,
about 0.167: the baseline a model must beat to show it carries information
across the sequence.

One BuilderConfig per sequence length (`adding_problem/t50`, `t100`, `t200`,
`t400`). The data are generated locally from a fixed seed per config and split,
so preparing needs no network and every machine gets the same examples. A
config with other sizes can be passed directly:
`tfds.builder("adding_problem", config=AddingConfig(name="t100_small", length=100, num_train=2_000, num_test=500))`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

# Fixed forever: changing it changes every config's data, so bump VERSION too.
_SEED = 19970101
_SPLIT_INDEX = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class AddingConfig(tfds.core.BuilderConfig):
    """Sequence length and example counts of one `adding_problem` config."""

    length: int = 100  # time steps T per sequence
    num_train: int = 10_000  # examples in the train split
    num_test: int = 1_000  # examples in the test split

    def __post_init__(self) -> None:
        if self.length < 2:
            raise ValueError(f"length must be >= 2 (one marker per half), got {self.length!r}")
        if self.num_train < 1 or self.num_test < 1:
            raise ValueError(
                f"num_train and num_test must be >= 1, got {self.num_train!r} and {self.num_test!r}"
            )


def _length_config(length: int) -> AddingConfig:
    return AddingConfig(
        name=f"t{length}",
        description=f"Sequences of {length} steps; 10,000 train and 1,000 test examples.",
        length=length,
    )


def generate(length: int, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """`count` sequences (count, length, 2) float32 and their targets (count,) float32."""
    values = rng.uniform(0.0, 1.0, size=(count, length)).astype(np.float32)
    half = length // 2
    first = rng.integers(0, half, size=count)
    second = rng.integers(half, length, size=count)
    rows = np.arange(count)
    markers = np.zeros((count, length), dtype=np.float32)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    targets = values[rows, first] + values[rows, second]
    return np.stack([values, markers], axis=-1), targets.astype(np.float32)


class AddingProblem(tfds.core.GeneratorBasedBuilder):
    """The adding problem: sum the two marked values of a long sequence."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: seeded, one marker in each half."}
    BUILDER_CONFIGS = [_length_config(length) for length in (50, 100, 200, 400)]

    def _info(self) -> tfds.core.DatasetInfo:
        length = self.builder_config.length
        return self.dataset_info_from_configs(
            description=(
                "Two-channel sequences (value, marker); the target is the sum of the two "
                "values whose marker is 1. Predicting 1 always scores MSE 1/6."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "sequence": tfds.features.Tensor(shape=(length, 2), dtype=np.float32),
                    "target": tfds.features.Scalar(dtype=np.float32),
                }
            ),
            supervised_keys=("sequence", "target"),
            citation=(
                "Hochreiter, S. and Schmidhuber, J. (1997). Long Short-Term Memory. "
                "Neural Computation 9(8)."
            ),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # generated locally
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train),
            "test": self._generate_examples("test", config.num_test),
        }

    def _generate_examples(self, split: str, count: int):
        config = self.builder_config
        rng = np.random.default_rng([_SEED, config.length, _SPLIT_INDEX[split]])
        sequences, targets = generate(config.length, count, rng)
        for index in range(count):
            yield index, {"sequence": sequences[index], "target": targets[index]}
