"""Every study at quick size: the direction of each classic claim, its MLflow runs and its report.

The assertions are the claims' directions as the issue states them; the
studies' settings (see each module's QUICK) are what makes them show at this
size, and the reports say so.
"""

from __future__ import annotations

import pytest

from studies import STUDIES, run_study
from studies.report import HELD_PREFIX


def check_tracking_and_report(run, expected_cells: int) -> None:
    payload = run.payload
    assert run.parent().info.status == "FINISHED"
    assert len(run.children()) == expected_cells == payload["mlflow"]["child_runs"]
    logged = []
    for child in run.children():
        assert child.info.status == "FINISHED"
        steps = sorted(m.step for m in _client(run).get_metric_history(child.info.run_id, "loss"))
        # epoch_logger skips a non-finite loss, so a diverged cell logs a prefix of its epochs.
        assert steps == list(range(len(steps)))
        logged.append(len(steps) > 0)
    assert sum(logged) > len(logged) / 2
    report = run.report()
    held_lines = [line for line in report.splitlines() if line.startswith(HELD_PREFIX)]
    assert len(held_lines) == len(payload["claims"]) >= 1
    assert all(line.split()[2] in ("yes", "no") for line in held_lines)
    assert run.report_json()["claims"] == payload["claims"]
    for name in payload["figures"]:
        assert (run.reports_dir / name).is_file()
    artifacts = {item.path for item in _client(run).list_artifacts(payload["mlflow"]["parent_run_id"])}
    assert {f"{payload['study']}.md", f"{payload['study']}.json", *payload["figures"]} <= artifacts


def _client(run):
    import mlflow

    return mlflow.MlflowClient(run.tracking_uri)


@pytest.mark.slow
def test_batchnorm_reaches_the_target_in_fewer_steps(run_quick):
    from studies.batchnorm import QUICK

    run = run_quick("batchnorm")
    check_tracking_and_report(run, expected_cells=2 * len(QUICK.init_stds))
    for comparison in run.payload["results"]["comparisons"]:
        assert comparison["steps_bn"] is not None
        assert comparison["steps_plain"] is None or comparison["steps_bn"] < comparison["steps_plain"]


@pytest.mark.slow
def test_init_more_scales_learn_with_batchnorm(run_quick):
    from studies.init import QUICK

    run = run_quick("init")
    check_tracking_and_report(run, expected_cells=QUICK.num_scales * (1 + len(QUICK.bn_epsilons)))
    plain, with_bn = run.payload["results"]["summary"][:2]
    assert with_bn["scales_learned"] > plain["scales_learned"]
    assert "eps=1e-06" in with_bn["variant"]


@pytest.mark.slow
def test_dropout_narrows_the_gap_and_too_much_underfits(run_quick):
    from studies.dropout import QUICK

    run = run_quick("dropout")
    check_tracking_and_report(run, expected_cells=len(QUICK.rates))
    by_rate = {row["rate"]: row for row in run.payload["results"]["rates"]}
    none, moderate, high = by_rate[0.0], by_rate[QUICK.moderate_rate], by_rate[QUICK.high_rate]
    assert none["accuracy_gap"] > moderate["accuracy_gap"]
    assert high["train_accuracy"] < none["train_accuracy"]
    assert moderate["mc_agreement"] >= 0.95


@pytest.mark.slow
def test_cells_gated_cells_solve_the_adding_problem_and_gru_is_smaller(run_quick):
    from studies.cells import BASELINE_MSE, CELLS, QUICK

    run = run_quick("cells")
    check_tracking_and_report(run, expected_cells=len(QUICK.lengths) * len(CELLS))
    longest = max(QUICK.lengths)
    at_longest = {row["cell"]: row for row in run.payload["results"]["runs"] if row["length"] == longest}
    assert at_longest["simple_rnn"]["val_mse"] > 0.75 * BASELINE_MSE
    assert at_longest["lstm"]["val_mse"] < 0.25 * BASELINE_MSE
    assert at_longest["gru"]["val_mse"] < 0.25 * BASELINE_MSE
    assert at_longest["gru"]["params"] < at_longest["lstm"]["params"]
    assert all(row["seconds_per_epoch"] > 0 for row in at_longest.values())
    gradients = run.payload["results"]["gradients"]
    assert {(g["cell"], g["gate_init"]) for g in gradients} == {
        ("simple_rnn", "none"), ("lstm", "chrono"), ("lstm", "keras"), ("gru", "chrono"), ("gru", "keras"),
    }


@pytest.mark.slow
def test_attention_beats_no_attention_on_the_longest_strings(run_quick):
    run = run_quick("attention")
    check_tracking_and_report(run, expected_cells=2)
    longest = run.payload["results"]["buckets"][-1]
    plain, attended = run.payload["results"]["models"]
    assert (plain["attention"], attended["attention"]) == ("none", "additive")
    assert attended["teacher_forced"][longest] > plain["teacher_forced"][longest]


def test_unknown_study_is_a_value_error():
    with pytest.raises(ValueError, match="'bn'"):
        run_study("bn", quick=True)
    assert STUDIES == ("batchnorm", "init", "dropout", "cells", "attention")
