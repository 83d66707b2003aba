"""Shared pieces of the reliability suite and its one-line summary.

Every test here records what it observed into one tally before it asserts anything, so the
summary pytest prints at the end of the session counts failures too, for instance:
`reliability: 43 bad inputs -> 43 clear errors (6 of 6 also clear in a real pipeline process);
0 runs left RUNNING; 0 corrupt artifacts used`.
"""

from __future__ import annotations

import io
import logging
import os
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

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


@pytest.fixture
def record_bad_input():
    """Counts one bad input as observed: a clear error when nothing was wrong with how it ended.

    Called before the test asserts, so a bad input that was not a clear error is counted as such.
    """

    def record(problems: list[str], store, *, process: bool, repeat: bool = False) -> None:
        """`process`: checked through a real `pipeline` process; `repeat`: a case already counted in-process."""
        clear = not problems
        if not repeat:
            TALLY["bad_inputs"] += 1
            TALLY["clear_errors"] += clear
        if process:
            TALLY["processes"] += 1
            TALLY["processes_clear"] += clear
        TALLY["left_running"] += runs_left_running(store)

    return record


@dataclass(frozen=True)
class Ended:
    """How a command ended: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str
    left_active: bool = False  # an MLflow run was still active in the process when the command returned


@pytest.fixture
def cli_in_process(monkeypatch, store):
    """`pipeline ...` called as `pipeline.cli.main([...])` inside the test process, on `store`.

    What the CLI would set for the rest of its process (environment variables, MLflow's tracking URI,
    the console's verbosity and log handler) is put back afterwards, so later tests see no trace of it.
    """
    import mlflow

    from pipeline import cli, console

    for name in [name for name in os.environ if name.startswith("MLFLOW_")]:
        monkeypatch.delenv(name)  # as in `store.env`: only the store's own tracking URI
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.env["MLFLOW_TRACKING_URI"])
    # The CLI sets these with setdefault; set here, they are restored when the test ends.
    for name, value in (("TF_CPP_MIN_LOG_LEVEL", "2"), ("GRPC_VERBOSITY", "ERROR"), ("NO_GCE_CHECK", "true"),
                        ("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")):
        monkeypatch.setenv(name, os.environ.get(name, value))
    monkeypatch.setattr(console, "_VERBOSITY", console._VERBOSITY)
    logger = logging.getLogger(console.COMPONENT_LOGGER)
    monkeypatch.setattr(logger, "handlers", list(logger.handlers))
    monkeypatch.setattr(logger, "propagate", logger.propagate)
    monkeypatch.setattr(logger, "level", logger.level)

    def call(*args: str) -> Ended:
        stdout, stderr = io.StringIO(), io.StringIO()
        with redirect_stdout(stdout), redirect_stderr(stderr):
            try:
                code = cli.main(list(args))
            except SystemExit as exc:  # argparse's usage errors end the process the same way
                code = exc.code
        left_active = mlflow.active_run() is not None
        while mlflow.active_run() is not None:  # the test reports it; later tests must not inherit it
            mlflow.end_run("FAILED")
        return Ended(code, stdout.getvalue(), stderr.getvalue(), left_active)

    yield call
    mlflow.set_tracking_uri(None)


def pytest_terminal_summary(terminalreporter) -> None:
    if TALLY["bad_inputs"] or TALLY["processes"] or TALLY["stores_checked"]:
        terminalreporter.write_line(
            f"reliability: {TALLY['bad_inputs']} bad inputs -> {TALLY['clear_errors']} clear errors "
            f"({TALLY['processes_clear']} of {TALLY['processes']} also clear in a real pipeline process); "
            f"{TALLY['left_running']} runs left RUNNING; {TALLY['corrupt_used']} corrupt artifacts used"
        )
