"""`digit_reversal`: reverse a string of decimal digits, the attention study's task.

Each example is a random digit string whose length is drawn uniformly from
[min_length, max_length]; the target is the same string reversed. Reversal
needs every source symbol at the decoder step furthest from where the encoder
read it, so a fixed-length encoder summary is strained by long strings while
attention can look the symbol up (Bahdanau et al. 2015).

Encoding: both `source` and `target` are int32 tensors of shape (max_length,)
holding digit d as token d + 1 (1..10) and padded at the end with 0; `length`
is the number of digits. Fixed-length padded tensors (rather than variable
Sequence features) let `tfds.load(..., batch_size=-1)` return plain arrays.
A model that reserves more ids (PAD/START/END) shifts the non-zero tokens.

The data are generated locally from a fixed seed per config and split. The
default config `len5to30` has 20,000 train and 2,000 test examples; pass an
`ReversalConfig` to `tfds.builder` for other sizes.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

PAD_TOKEN = 0  # padding after the last digit
DIGIT_OFFSET = 1  # token = digit + DIGIT_OFFSET, so tokens 1..10 are the digits 0..9
# Fixed forever: changing it changes every config's data, so bump VERSION too.
_SEED = 20150519
_SPLIT_INDEX = {"train": 0, "test": 1}


@dataclasses.dataclass(eq=False)
class ReversalConfig(tfds.core.BuilderConfig):
    """Length range and example counts of one `digit_reversal` config."""

    min_length: int = 5  # shortest digit string
    max_length: int = 30  # longest digit string, and the padded tensor length
    num_train: int = 20_000  # examples in the train split
    num_test: int = 2_000  # examples in the test split

    def __post_init__(self) -> None:
        if not 1 <= self.min_length <= self.max_length:
            raise ValueError(
                f"need 1 <= min_length <= max_length, got {self.min_length!r} and {self.max_length!r}"
            )
        if self.num_train < 1 or self.num_test < 1:
            raise ValueError(
                f"num_train and num_test must be >= 1, got {self.num_train!r} and {self.num_test!r}"
            )


class DigitReversal(tfds.core.GeneratorBasedBuilder):
    """Digit strings and their reversal, padded with 0."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: uniform lengths, tokens digit + 1, 0-padded."}
    BUILDER_CONFIGS = [
        ReversalConfig(
            name="len5to30",
            description="Lengths 5-30; 20,000 train and 2,000 test examples.",
        )
    ]

    def _info(self) -> tfds.core.DatasetInfo:
        max_length = self.builder_config.max_length
        tokens = tfds.features.Tensor(shape=(max_length,), dtype=np.int32)
        return self.dataset_info_from_configs(
            description="Random digit strings (tokens digit + 1, 0-padded) and their reversal.",
            features=tfds.features.FeaturesDict(
                {
                    "source": tokens,
                    "target": tokens,
                    "length": tfds.features.Scalar(dtype=np.int32),
                }
            ),
            supervised_keys=("source", "target"),
            citation=(
                "Bahdanau, D., Cho, K. and Bengio, Y. (2015). Neural Machine Translation by "
                "Jointly Learning to Align and Translate. ICLR."
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
        rng = np.random.default_rng([_SEED, config.min_length, config.max_length, _SPLIT_INDEX[split]])
        lengths = rng.integers(config.min_length, config.max_length + 1, size=count)
        for index, length in enumerate(lengths):
            digits = rng.integers(0, 10, size=length)
            source = np.full(config.max_length, PAD_TOKEN, dtype=np.int32)
            target = np.full(config.max_length, PAD_TOKEN, dtype=np.int32)
            source[:length] = digits + DIGIT_OFFSET
            target[:length] = digits[::-1] + DIGIT_OFFSET
            yield index, {"source": source, "target": target, "length": int(length)}
