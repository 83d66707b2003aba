"""Estimates over seeds and claims judged on their intervals; committed reports name no machine path."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from studies.report import HELD, INCONCLUSIVE, NOT_HELD, Condition, Rule, estimate

REPORTS = Path(__file__).resolve().parents[2] / "reports"


def test_estimate_is_the_mean_with_a_t_interval():
    figure = estimate([1.0, 2.0, 3.0])
    half = 4.303 * 1.0 / math.sqrt(3)  # t(0.975, 2) * s / sqrt(n), s = 1
    assert figure.mean == 2.0
    assert figure.low == pytest.approx(2.0 - half) and figure.high == pytest.approx(2.0 + half)
    assert figure.values == (1.0, 2.0, 3.0)
    single = estimate([5.0])
    assert (single.low, single.mean, single.high) == (5.0, 5.0, 5.0)
    with pytest.raises(ValueError, match=r"\[\]"):
        estimate([])


def test_a_condition_holds_only_when_the_whole_interval_lies_on_the_claimed_side():
    above = Condition("gap", ">", 0.0)
    assert above.judge(estimate([1.0, 1.1, 1.2])) == HELD
    assert above.judge(estimate([-1.0, 0.5, 2.0])) == INCONCLUSIVE
    assert above.judge(estimate([-1.0, -1.1, -0.9])) == NOT_HELD
    assert Condition("gap", "<", 0.0).judge(estimate([-1.0, -1.1, -0.9])) == HELD
    assert above.judge(estimate([1.0, float("nan")])) == INCONCLUSIVE
    with pytest.raises(ValueError, match="'>='"):
        Condition("gap", ">=", 0.0)


def test_a_claim_is_held_when_every_condition_is_and_not_held_when_any_is_not():
    rule = Rule("both", "paper", (Condition("a", ">", 0.0), Condition("b", ">", 0.0)))
    held, straddles, wrong = estimate([1.0, 1.1, 1.2]), estimate([-1.0, 0.0, 1.0]), estimate([-1.0, -1.1, -1.2])
    assert rule.judge({"a": held, "b": held}).verdict == HELD
    assert rule.judge({"a": held, "b": straddles}).verdict == INCONCLUSIVE
    assert rule.judge({"a": straddles, "b": wrong}).verdict == NOT_HELD
    claim = rule.judge({"a": held, "b": held})
    assert "held when `a` > 0 and `b` > 0" in claim.rule and "a = 1.1 [" in claim.measured


def test_committed_reports_name_no_path_on_the_machine_that_made_them():
    machine_paths = (str(REPORTS.parents[1]), "/home/", "/tmp/", "/root/", "shared/tfds")
    for report in sorted(REPORTS.glob("*.md")) + sorted(REPORTS.glob("*.json")):
        text = report.read_text()
        assert not [path for path in machine_paths if path in text], report.name
