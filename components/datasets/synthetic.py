"""`synthetic_images`: generated 32x32 colour images in ten classes, at sizes for scale tests.

Each class is a fixed random 8x8x3 pattern, upsampled to 32x32, and each image
is its class pattern, shifted by up to two pixels, plus Gaussian pixel noise,
clipped to 8-bit levels. The classes are easy to tell apart (a small MLP
separates them within one epoch): the dataset exists to measure how time and
memory grow with the data, not accuracy. Every example is a pure function of
(config, split, block of 1,024 examples), so any machine prepares the same
bytes without a network, holding one block in memory at a time.

One BuilderConfig per size: `x1` has 2,048 train and 256 test images (about
7 MB of raw pixels), `x8` eight times that, `x32` thirty-two times (65,536
train images, about 200 MB raw and 800 MB as normalised float32): the size the
benchmarks use to show that a pipeline run's memory does not grow with the data.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow_datasets as tfds

# Fixed forever: changing it changes every config's data, so bump VERSION too.
_SEED = 20261130
_SPLIT_INDEX = {"train": 0, "test": 1}
_BLOCK = 1024  # examples generated per seeded block
_SIDE, _CHANNELS, _CLASSES = 32, 3, 10
_NOISE = 48.0  # standard deviation of the pixel noise, in 8-bit levels


@dataclasses.dataclass(eq=False)
class SyntheticConfig(tfds.core.BuilderConfig):
    """How many examples one size of `synthetic_images` has."""

    multiple: int = 1  # the size relative to x1
    num_train: int = 2048  # examples in the train split at x1
    num_test: int = 256  # examples in the test split at x1


def _size_config(multiple: int) -> SyntheticConfig:
    return SyntheticConfig(name=f"x{multiple}", multiple=multiple,
                           description=f"{2048 * multiple:,} train and {256 * multiple:,} test images.")


def _patterns() -> np.ndarray:
    rng = np.random.default_rng([_SEED, 0])
    small = rng.uniform(40, 215, size=(_CLASSES, 8, 8, _CHANNELS))
    return np.repeat(np.repeat(small, 4, axis=1), 4, axis=2)  # (classes, 32, 32, 3)


def generate_block(multiple: int, split: str, block: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images (count, 32, 32, 3) uint8 and labels (count,) of one seeded block."""
    rng = np.random.default_rng([_SEED, multiple, _SPLIT_INDEX[split], block])
    labels = rng.integers(0, _CLASSES, size=count)
    shifts = rng.integers(-2, 3, size=(count, 2))
    patterns = _patterns()
    images = np.empty((count, _SIDE, _SIDE, _CHANNELS), dtype=np.uint8)
    noise = rng.normal(0.0, _NOISE, size=images.shape)
    for index in range(count):
        shifted = np.roll(patterns[labels[index]], tuple(shifts[index]), axis=(0, 1))
        images[index] = np.clip(shifted + noise[index], 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64)


class SyntheticImages(tfds.core.GeneratorBasedBuilder):
    """Generated colour images in ten classes, in sizes x1, x8 and x32."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [_size_config(multiple) for multiple in (1, 8, 32)]

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Shifted class patterns plus pixel noise, 32x32x3, ten classes; generated from a fixed seed.",
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Tensor(shape=(_SIDE, _SIDE, _CHANNELS), dtype=np.uint8),
                "label": tfds.features.ClassLabel(num_classes=_CLASSES),
            }),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # generated locally
        config = self.builder_config
        return {
            "train": self._generate_examples("train", config.num_train * config.multiple),
            "test": self._generate_examples("test", config.num_test * config.multiple),
        }

    def _generate_examples(self, split: str, count: int):
        multiple = self.builder_config.multiple
        for block, start in enumerate(range(0, count, _BLOCK)):
            images, labels = generate_block(multiple, split, block, min(_BLOCK, count - start))
            for offset in range(len(labels)):
                yield start + offset, {"image": images[offset], "label": labels[offset]}
