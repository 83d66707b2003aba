"""Importing TensorFlow without its start-up lines, for every process the pipeline starts."""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly(verbose: int) -> None:
    """TensorFlow prints start-up lines straight to fd 2 before any logging setting applies; hide them
    unless --verbose. The runner calls it only when a stage really runs (a fully cached run never imports
    TensorFlow); the CLI calls it first thing for the commands that load a model (predict, study), and a
    local tuning worker as it starts."""
    if verbose >= 2 or "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
