"""TFDS dataset builders the project ships.

Importing this package registers the builders with TFDS, so `tfds.load("digits")`
works like any catalogue dataset, through TFDS's own download-and-prepare path.
`adding_problem` and `digit_reversal` are generated locally from fixed seeds
for the studies (see studies/); `synthetic_images` (x1, x8, x32) for the scale
benchmarks (see benchmarks/).
"""

from components.datasets.adding import AddingProblem
from components.datasets.digits import Digits
from components.datasets.reversal import DigitReversal
from components.datasets.synthetic import SyntheticImages

__all__ = ["AddingProblem", "DigitReversal", "Digits", "SyntheticImages"]
