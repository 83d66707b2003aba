"""TFDS dataset builders the project ships.

Importing this package registers the builders with TFDS, so `tfds.load("digits")`
works like any catalogue dataset, through TFDS's own download-and-prepare path.
`adding_problem` and `digit_reversal` are generated locally from fixed seeds
for the studies (see studies/).
"""

from components.datasets.adding import AddingProblem
from components.datasets.digits import Digits
from components.datasets.reversal import DigitReversal

__all__ = ["AddingProblem", "DigitReversal", "Digits"]
