"""Reproductions of the classic deep-learning claims, measured through the project's own code.

`run_study(name, quick=..., seeds=...)` runs one study (or "all") once per seed.
Each study logs one MLflow parent run in the experiment "studies", a child run per
seed and, under each, a run per grid cell; it writes `reports/<study>.md` and
`reports/<study>.json` (plus PNG figures of the first seed), where every figure is
the mean over seeds with a 95% t-interval and the per-seed values, and every claim
is judged on those intervals (see studies.report). Nothing here imports
TensorFlow until a study runs. `python -m studies NAME [--quick] [--seeds N]` does
the same from a shell, as does `pipeline study`.

| study | grid |
| --- | --- |
| batchnorm | 3x100 sigmoid MLP +-BN, Glorot and N(0, 0.01^2) init |
| init | 5x100 ReLU MLP, 16 weight stds, no BN / BN eps 1e-6 / 1e-3 |
| dropout | 2x512 ReLU MLP on 1,000 images, 5 dropout rates |
| dropout_regime | the paper's MNIST recipe (all images, input and hidden dropout, max-norm), scaled |
| cells | SimpleRNN/LSTM/GRU on the adding problem, T = 50, 100, 200 |
| attention | GRU encoder-decoder reversing digit strings, +-attention |
| optimizers | SGD, momentum, Nesterov, Adam over learning rates: MLP and a kappa-1000 quadratic |
| whitening | no normalisation vs BN vs ZCA whitening (DBN); seconds per step at widths 64-512 |

Quick sizes use fewer cells, examples and epochs (see QUICK in each module) and one
seed; full sizes use three. Times per study are in the README's studies section.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

STUDIES = ("batchnorm", "init", "dropout", "dropout_regime", "cells", "attention", "optimizers", "whitening")
ALL = "all"  # runs every study in STUDIES order
FULL_SEEDS = 3  # seeds of a full-size study unless told otherwise
QUICK_SEEDS = 1  # seeds of a quick study unless told otherwise


def run_study(
    name: str,
    *,
    quick: bool,
    reports_dir: Path | None = None,
    data_dir: str | None = None,
    seeds: int | None = None,
) -> dict[str, Any]:
    """Run study `name` over seeds 0..seeds-1 and return its JSON payload (for "all": {study: payload}).

    quick sizes each study for a minute or two per seed on two CPU cores; seeds defaults to
    QUICK_SEEDS or FULL_SEEDS; reports_dir defaults to `<repo>/reports`; data_dir is the TFDS
    data_dir the synthetic builders prepare into (and the first place fashion_mnist is looked for;
    None: TFDS's default, which is TFDS_DATA_DIR when set).
    """
    if name == ALL:
        return {
            study: run_study(study, quick=quick, reports_dir=reports_dir, data_dir=data_dir, seeds=seeds)
            for study in STUDIES
        }
    if name not in STUDIES:
        raise ValueError(f"study must be one of {(*STUDIES, ALL)}, got {name!r}")
    count = seeds if seeds is not None else QUICK_SEEDS if quick else FULL_SEEDS
    if count < 1:
        raise ValueError(f"seeds must be >= 1, got {count!r}")
    from studies.common import conduct, default_reports_dir

    module = importlib.import_module(f"studies.{name}")
    return conduct(
        module,
        name,
        quick=quick,
        reports_dir=Path(reports_dir) if reports_dir is not None else default_reports_dir(),
        data_dir=data_dir,
        seeds=tuple(range(count)),
    )


__all__ = ["ALL", "FULL_SEEDS", "QUICK_SEEDS", "STUDIES", "run_study"]
