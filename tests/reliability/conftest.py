"""Shared pieces of the reliability suite and its one-line summary.

Every test here records what it proved into one tally; at the end of the session
pytest prints, for instance:
`reliability: 30 bad inputs -> 30 clear errors; 0 runs left RUNNING; 0 corrupt artifacts used`.
"""

from __future__ import annotations

from collections import Counter

import pytest

TALLY: Counter = Counter()


@pytest.fixture
def tally() -> Counter:
    return TALLY


@pytest.fixture
def count_running():
    return runs_left_running


def runs_left_running(store) -> int:
    """RUNNING runs in a store once every pipeline process on it has ended."""
    if not (store.root / "mlflow.db").exists():
        return 0
    client = store.client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return len(client.search_runs(experiments, filter_string="attributes.status = 'RUNNING'", max_results=1000))


def pytest_terminal_summary(terminalreporter) -> None:
    if TALLY["bad_inputs"] or TALLY["stores_checked"]:
        terminalreporter.write_line(
            f"reliability: {TALLY['bad_inputs']} bad inputs -> {TALLY['clear_errors']} clear errors; "
            f"{TALLY['left_running']} runs left RUNNING; {TALLY['corrupt_used']} corrupt artifacts used"
        )
