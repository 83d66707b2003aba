"""The blessing decision at its edges: each threshold and the champion comparison, at and just past the limit.

The figures are exact in binary (0.75, 0.125, ...), so "equal to the limit" really is equal.
"""

from __future__ import annotations

import math

import pytest

from components.evaluate import decide
from pipeline.config import Config, EvaluateConfig


def _rules(**values) -> Config:
    return Config(evaluate=EvaluateConfig(**values))


def _below(value: float) -> float:
    return math.nextafter(value, -math.inf)


def _above(value: float) -> float:
    return math.nextafter(value, math.inf)


def _champion(version: str = "3", **metrics) -> dict:
    return {"version": version, "metrics": metrics}


# Classification: accuracy against min_accuracy, then against the champion's accuracy.

def test_accuracy_equal_to_min_accuracy_is_blessed_and_just_below_is_not():
    rules = _rules(min_accuracy=0.75)
    at = decide({"accuracy": 0.75}, None, rules, "classification")
    assert at["blessed"] is True and at["threshold_ok"] is True
    assert at["reason"] == "blessed: accuracy 0.7500 >= min_accuracy 0.75; no champion yet: thresholds alone decide"
    below = decide({"accuracy": _below(0.75)}, None, rules, "classification")
    assert below["blessed"] is False and below["threshold_ok"] is False
    assert below["reason"].startswith("not blessed: ") and "< min_accuracy 0.75" in below["reason"]


def test_worse_than_the_champion_by_exactly_max_regression_is_blessed_and_by_more_is_not():
    rules = _rules(min_accuracy=0.5, max_regression=0.125)
    at = decide({"accuracy": 0.625}, _champion(accuracy=0.75), rules, "classification")
    assert at["blessed"] is True
    assert at["worse_by"] == 0.125 and at["champion"] == 0.75 and at["champion_version"] == "3"
    assert "worse than champion version 3 (accuracy 0.7500) by 0.1250, within max_regression 0.125" in at["reason"]
    beyond = decide({"accuracy": _below(0.625)}, _champion(accuracy=0.75), rules, "classification")
    assert beyond["blessed"] is False and beyond["threshold_ok"] is True
    assert "beyond max_regression 0.125" in beyond["reason"]


def test_no_regression_allowed_still_blesses_a_tie_with_the_champion():
    rules = _rules(max_regression=0.0)
    assert decide({"accuracy": 0.75}, _champion(accuracy=0.75), rules, "classification")["blessed"] is True
    assert decide({"accuracy": _below(0.75)}, _champion(accuracy=0.75), rules, "classification")["blessed"] is False


def test_better_than_the_champion_is_not_worse_and_reports_no_negative_gap():
    verdict = decide({"accuracy": 0.875}, _champion(accuracy=0.75), _rules(max_regression=0.0), "classification")
    assert verdict["blessed"] is True and verdict["worse_by"] == -0.125
    assert "not worse than champion version 3 (accuracy 0.7500) by 0.0000" in verdict["reason"]


def test_a_candidate_below_min_accuracy_is_not_blessed_even_when_it_beats_the_champion():
    verdict = decide({"accuracy": 0.5}, _champion(accuracy=0.25), _rules(min_accuracy=0.75), "classification")
    assert verdict["blessed"] is False and verdict["threshold_ok"] is False and verdict["worse_by"] < 0


# Regression: MAE is the key metric (lower is better); max_loss, max_mae and min_r2 are thresholds.

REGRESSION = {"mse": 0.25, "mae": 0.5, "r2": 0.75}


@pytest.mark.parametrize(("rule", "limit", "metric", "past", "holds", "fails"), [
    ("max_loss", 0.25, "mse", _above(0.25), "mse 0.2500 <= max_loss 0.25", "mse 0.2500 > max_loss 0.25"),
    ("max_mae", 0.5, "mae", _above(0.5), "mae 0.5000 <= max_mae 0.5", "mae 0.5000 > max_mae 0.5"),
    ("min_r2", 0.75, "r2", _below(0.75), "r2 0.7500 >= min_r2 0.75", "r2 0.7500 < min_r2 0.75"),
])
def test_each_regression_threshold_holds_at_its_limit_and_fails_just_past_it(rule, limit, metric, past, holds, fails):
    rules = _rules(**{rule: limit})
    at = decide(dict(REGRESSION), None, rules, "regression")
    assert at["blessed"] is True and at["metric"] == "mae"
    assert holds in at["reason"]
    beyond = decide({**REGRESSION, metric: past}, None, rules, "regression")
    assert beyond["blessed"] is False and beyond["threshold_ok"] is False
    assert fails in beyond["reason"]


def test_regression_thresholds_must_all_hold():
    rules = _rules(max_mae=0.5, min_r2=0.75, max_loss=0.25)
    assert decide(dict(REGRESSION), None, rules, "regression")["blessed"] is True
    verdict = decide({**REGRESSION, "r2": 0.5}, None, rules, "regression")
    assert verdict["blessed"] is False
    assert "mae 0.5000 <= max_mae 0.5" in verdict["reason"] and "r2 0.5000 < min_r2 0.75" in verdict["reason"]


def test_no_regression_threshold_set_leaves_the_decision_to_the_champion():
    verdict = decide({"mse": 1e6, "mae": 1e3, "r2": -5.0}, None, _rules(), "regression")
    assert verdict["blessed"] is True and "no regression threshold set" in verdict["reason"]


def test_a_higher_mae_than_the_champion_by_exactly_max_regression_is_blessed_and_by_more_is_not():
    rules = _rules(max_regression=0.125)
    at = decide({**REGRESSION, "mae": 0.625}, _champion(mae=0.5), rules, "regression")
    assert at["blessed"] is True and at["worse_by"] == 0.125
    beyond = decide({**REGRESSION, "mae": _above(0.625)}, _champion(mae=0.5), rules, "regression")
    assert beyond["blessed"] is False and "beyond max_regression 0.125" in beyond["reason"]
    # A lower MAE than the champion's is better, however large the gap.
    assert decide({**REGRESSION, "mae": 0.125}, _champion(mae=0.5), rules, "regression")["worse_by"] == -0.375
