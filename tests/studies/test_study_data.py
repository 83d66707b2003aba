"""Where the image studies find their data: fashion_mnist through TFDS's default, else the project's digits."""

from __future__ import annotations

import pytest

from studies import common


def test_fashion_mnist_comes_from_tfds_default_data_dir(tmp_path, fashion_mnist_dir):
    if common.fashion_mnist_dir(str(tmp_path)) is None:
        pytest.skip(f"no prepared fashion_mnist where TFDS_DATA_DIR={fashion_mnist_dir!r} points")
    data = common.load_images(num_train=200, num_val=100, data_dir=str(tmp_path))
    assert data.dataset == "fashion_mnist"
    assert data.x_train.shape == (200, 28, 28, 1) and data.x_val.shape == (100, 28, 28, 1)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    # The report names the dataset by TFDS name, version and split, never by a path on this machine.
    assert data.source.startswith("TFDS `fashion_mnist` 3.")
    assert "train[:200]" in data.source and "/" not in data.source
    with pytest.raises(ValueError, match="num_train \\+ num_val"):
        common.load_images(num_train=60_000, num_val=1, data_dir=str(tmp_path))


def test_without_fashion_mnist_the_digits_stand_in_and_the_source_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "nowhere"))
    # TFDS read TFDS_DATA_DIR once, on import (`make test` exports one that holds fashion_mnist).
    monkeypatch.setattr("tensorflow_datasets.core.constants.DATA_DIR", str(tmp_path / "nowhere"))
    data = common.load_images(num_train=100, num_val=50, data_dir=str(tmp_path / "tfds"))
    assert data.dataset == "digits"
    assert data.source.startswith("FALLBACK")
    assert data.x_train.shape == (100, 8, 8) and data.x_val.shape == (50, 8, 8)
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
