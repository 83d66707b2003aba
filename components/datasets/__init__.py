"""TFDS dataset builders the project ships.

Importing this package registers the builders with TFDS, so `tfds.load("digits")`
works like any catalogue dataset, through TFDS's own download-and-prepare path.
"""

from components.datasets.digits import Digits

__all__ = ["Digits"]
