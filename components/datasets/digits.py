"""`digits`: the UCI handwritten digits that scikit-learn bundles, as a TFDS dataset.

1,797 grey-level 8x8 images of the digits 0-9 (pixel values 0-16). The data ship
inside scikit-learn, so preparing this dataset needs no network: it is the
pipeline's embedded default.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

_TEST_FRACTION = 0.2
_SPLIT_SEED = 20150601  # fixed forever: changing it changes the dataset, so bump VERSION too


class Digits(tfds.core.GeneratorBasedBuilder):
    """UCI ML hand-written digits (Alpaydin & Kaynak 1998), 8x8, 10 classes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: seeded 80/20 train/test split, stratified by class."}

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="8x8 grey-level images of handwritten digits (pixel values 0-16), from scikit-learn.",
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Tensor(shape=(8, 8), dtype=np.uint8),
                    "label": tfds.features.ClassLabel(names=[str(d) for d in range(10)]),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
            citation="Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits. UCI ML Repository.",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # the data are bundled with scikit-learn
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = bunch.images.astype(np.uint8)
        labels = bunch.target.astype(np.int64)
        rng = np.random.default_rng(_SPLIT_SEED)
        test_index: list[int] = []
        for digit in range(10):
            members = np.flatnonzero(labels == digit)
            chosen = rng.choice(members, size=round(len(members) * _TEST_FRACTION), replace=False)
            test_index.extend(int(i) for i in chosen)
        test_set = set(test_index)
        train_index = [i for i in range(len(labels)) if i not in test_set]
        return {
            "train": self._generate_examples(images, labels, train_index),
            "test": self._generate_examples(images, labels, sorted(test_index)),
        }

    def _generate_examples(self, images: np.ndarray, labels: np.ndarray, index: list[int]):
        for i in index:
            yield i, {"image": images[i], "label": int(labels[i])}
