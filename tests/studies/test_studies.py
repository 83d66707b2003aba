"""Every study at quick size, seed 0: the JSON's shape, the MLflow runs, the report, and each claim's direction.

The direction asserted for a claim is the verdict the issue expects at quick size with seed 0; a
claim whose effect does not show at this size (dropout's error at 1,000 images, GRU's speed on a
CPU, DBN's steps) is left to the report, which says so, and only its shape is checked.
"""

from __future__ import annotations

import pytest

from studies import STUDIES, run_study
from studies.report import HELD, HELD_PREFIX, INCONCLUSIVE, NOT_HELD

VERDICTS = (HELD, NOT_HELD, INCONCLUSIVE)


def check_payload(run, seeds: int = 1) -> None:
    """Seeds, every measure as mean with interval and per-seed values, claims with rules and verdicts."""
    payload = run.payload
    assert payload["seeds"] == list(range(seeds))
    assert payload["measures"]
    for name, figure in payload["measures"].items():
        assert set(figure) == {"mean", "interval_95", "values"}, name
        assert len(figure["values"]) == seeds and len(figure["interval_95"]) == 2, name
        if figure["mean"] is not None:
            low, high = figure["interval_95"]
            assert low <= figure["mean"] <= high, name
    for claim in payload["claims"]:
        assert claim["verdict"] in VERDICTS and claim["rule"].startswith("held when"), claim
    assert [entry["seed"] for entry in payload["per_seed"]] == payload["seeds"]
    written = run.report_json()
    assert {key: written[key] for key in ("seeds", "claims", "measures")} == {
        key: payload[key] for key in ("seeds", "claims", "measures")}
    report = run.report()
    lines = [line for line in report.splitlines() if line.startswith(HELD_PREFIX)]
    assert len(lines) == len(payload["claims"]) >= 1
    assert "95% t-interval" in report and "## Every figure over seeds" in report
    for name in payload["figures"]:
        assert (run.reports_dir / name).is_file()


def check_tracking(run, cells: int, seeds: int = 1) -> None:
    """One child run per seed under the parent, the grid's cells under each seed, all finished."""
    assert run.parent().info.status == "FINISHED"
    seed_runs = run.children(run.payload["mlflow"]["parent_run_id"])
    assert sorted(r.data.params["seed"] for r in seed_runs) == [str(s) for s in range(seeds)]
    for seed_run in seed_runs:
        assert seed_run.info.status == "FINISHED"
        cell_runs = run.children(seed_run.info.run_id)
        assert len(cell_runs) == cells and all(r.info.status == "FINISHED" for r in cell_runs)
    assert run.payload["mlflow"]["runs"] == 1 + seeds * (1 + cells)
    study = run.payload["study"]
    artifacts = {item.path for item in run.client().list_artifacts(run.payload["mlflow"]["parent_run_id"])}
    assert {f"{study}.md", f"{study}.json", *run.payload["figures"]} <= artifacts


@pytest.mark.slow
def test_batchnorm_reaches_the_target_in_fewer_steps(run_quick):
    from studies.batchnorm import QUICK

    run = run_quick("batchnorm", seeds=2)
    check_payload(run, seeds=2)
    check_tracking(run, cells=2 * len(QUICK.init_stds), seeds=2)
    assert run.verdicts() == {"BN speeds training": HELD}
    speedups = run.payload["measures"]["speed-up with BN, glorot init"]["values"]
    assert len(speedups) == 2 and min(speedups) > 1


@pytest.mark.slow
def test_init_more_scales_learn_with_batchnorm(run_quick):
    from studies.init import QUICK

    run = run_quick("init")
    check_payload(run)
    check_tracking(run, cells=QUICK.num_scales * (1 + len(QUICK.bn_epsilons)))
    assert run.verdicts() == {"BN frees training from careful initialisation": HELD}


@pytest.mark.slow
def test_dropout_narrows_the_gap_and_too_much_underfits(run_quick):
    from studies.dropout import QUICK

    run = run_quick("dropout")
    check_payload(run)
    check_tracking(run, cells=len(QUICK.rates))
    verdicts = run.verdicts()
    assert verdicts["dropout reduces overfitting"] == HELD
    assert verdicts["too much dropout underfits"] == HELD
    assert verdicts["one scaled deterministic pass stands in for the average of thinned nets"] == HELD


@pytest.mark.slow
def test_dropout_regime_runs_both_variants_on_every_test_image(run_quick, fashion_mnist_dir):
    import tensorflow_datasets as tfds

    run = run_quick("dropout_regime")
    check_payload(run)
    check_tracking(run, cells=2)
    test_images = tfds.builder("fashion_mnist", data_dir=fashion_mnist_dir).info.splits["test"].num_examples
    assert f"test (all {test_images:,})" in run.payload["data"]
    errors = [run.payload["measures"][f"test_error %, {v}"]["mean"] for v in ("standard", "dropout")]
    assert all(0 < error < 50 for error in errors)  # both learned: well under chance's 90%


@pytest.mark.slow
def test_cells_gated_cells_solve_the_adding_problem_and_gru_is_smaller(run_quick):
    from studies.cells import CELLS, QUICK

    run = run_quick("cells")
    check_payload(run)
    check_tracking(run, cells=len(QUICK.lengths) * len(CELLS))
    verdicts = run.verdicts()
    assert verdicts["gated cells learn what a tanh RNN cannot"] == HELD
    assert verdicts["the tanh RNN's gradient vanishes towards early steps"] == HELD
    assert verdicts["GRU has fewer weights than LSTM, with comparable results"] == HELD
    # Speed is its own claim, whichever way it goes on this machine.
    speed = {"GRU is faster than LSTM per epoch", "GRU reaches the solved level sooner than LSTM in time"}
    assert speed < set(verdicts)


@pytest.mark.slow
def test_attention_beats_no_attention_on_the_longest_strings(run_quick):
    run = run_quick("attention")
    check_payload(run)
    check_tracking(run, cells=2)
    assert run.verdicts() == {"attention removes the fixed-length bottleneck": HELD}


@pytest.mark.slow
def test_optimizers_momentum_wins_by_far_on_the_ill_conditioned_quadratic(run_quick):
    from studies.optimizers import OPTIMIZERS, QUICK

    run = run_quick("optimizers")
    check_payload(run)
    check_tracking(run, cells=len(OPTIMIZERS) * (len(QUICK.learning_rates) + 1))
    verdicts = run.verdicts()
    assert verdicts["momentum beats gradient descent by far on an ill-conditioned problem"] == HELD
    assert verdicts["momentum's advantage is larger on the ill-conditioned problem than on the MLP"] == HELD
    accuracy = run.payload["measures"]["MLP final val accuracy, sgd, lr 0.1"]["mean"]
    assert accuracy > QUICK.target_accuracy - 0.05


@pytest.mark.slow
def test_whitening_is_costlier_per_step_than_batchnorm(run_quick):
    from studies.whitening import NORMS, QUICK, TIMED

    run = run_quick("whitening")
    check_payload(run)
    check_tracking(run, cells=len(NORMS) + len(TIMED) * len(QUICK.widths))
    verdicts = run.verdicts()
    assert verdicts["BN reaches the target in fewer steps than no normalisation"] == HELD
    assert verdicts["whitening costs more per step than BN, and more so as layers widen"] == HELD


def test_the_whitening_layer_whitens_each_group():
    import keras
    import numpy as np

    from studies.whitening import whitening_layer

    rng = np.random.default_rng(0)
    inputs = (rng.normal(size=(200, 40)) @ rng.normal(size=(40, 40))).astype("float32")
    outputs = keras.ops.convert_to_numpy(whitening_layer(20, momentum=0.9, epsilon=1e-5)(inputs, training=True))
    for group in (outputs[:, :20], outputs[:, 20:]):
        np.testing.assert_allclose(np.cov(group.T, bias=True), np.eye(20), atol=1e-2)
    with pytest.raises(ValueError, match="got 16"):
        whitening_layer(16, momentum=0.9, epsilon=1e-3)(inputs, training=True)


def test_unknown_study_and_seed_counts_are_value_errors():
    with pytest.raises(ValueError, match="'bn'"):
        run_study("bn", quick=True)
    with pytest.raises(ValueError, match="got 0"):
        run_study("batchnorm", quick=True, seeds=0)
    assert {"optimizers", "whitening", "dropout_regime"} < set(STUDIES)
