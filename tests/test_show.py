"""`pipeline show`: the summary of a pipeline run, read back from MLflow (JSON on stdout, a table on stderr);
and the quiet start-up of the commands that read the default run's results.

Reads the session's real default run (tests/conftest.py): the latest pipeline run
is the cached re-run; the first run is given by id.
"""

from __future__ import annotations

import json
import math

import pytest

from pipeline.names import STAGES, TAG_KIND, TAG_STAGE

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recorded(default_run):
    """The two pipeline runs (first, cached re-run) and the first run's stage runs, from MLflow."""
    client = default_run.store.client()
    experiment = client.get_experiment_by_name("digits")
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                 order_by=["attributes.start_time ASC"])
    assert len(parents) == 2
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parents[0].info.run_id}'")
    stages = {r.data.tags[TAG_STAGE]: r for r in children if r.data.tags.get(TAG_KIND) == "stage"}
    return parents, stages


def _show_json(store, *args: str) -> dict:
    result = store.cli("show", *args, "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Downloading artifacts" not in result.stderr  # no progress bars around the data
    return json.loads(result.stdout)  # stdout is exactly one JSON document


def _check_summary(summary: dict, parent, cached: bool) -> None:
    assert summary["run_id"] == parent.info.run_id
    assert summary["experiment_id"] == parent.info.experiment_id
    assert summary["status"] == "FINISHED"
    assert summary["error"] is None

    assert [row["stage"] for row in summary["stages"]] == list(STAGES)  # seven, in pipeline order
    for row in summary["stages"]:
        assert row["status"] == "FINISHED", row
        assert row["cached"] is cached, row
        assert isinstance(row["seconds"], (int, float)) and row["seconds"] >= 0, row
        assert isinstance(row["result"], str) and row["result"], row
        assert len(row["run_id"]) == 32, row

    accuracy = summary["metrics"]["accuracy"]
    assert isinstance(accuracy, float) and math.isfinite(accuracy) and 0.9 <= accuracy <= 1.0
    assert summary["metrics"]["examples"] > 0

    best = summary["best_hyperparameters"]
    assert isinstance(best, dict) and "encoder" in best, best

    blessing = summary["blessing"]
    assert blessing["blessed"] is True
    assert blessing["reason"].startswith("blessed:") and "min_accuracy" in blessing["reason"]

    assert summary["push"]["alias"] == "champion" and summary["push"]["version"] == 1


def test_show_json_summarises_the_latest_run(default_run, recorded):
    parents, stages = recorded
    summary = _show_json(default_run.store)
    _check_summary(summary, parents[1], cached=True)  # the latest run is the cached re-run
    # A cached stage shows the metrics of the run that computed them: the same test accuracy.
    assert summary["metrics"]["accuracy"] == pytest.approx(stages["evaluate"].data.metrics["accuracy"], abs=1e-12)


def test_show_json_of_a_given_run_id(default_run, recorded):
    parents, stages = recorded
    summary = _show_json(default_run.store, parents[0].info.run_id)
    _check_summary(summary, parents[0], cached=False)
    assert {row["stage"]: row["run_id"] for row in summary["stages"]} == {
        name: run.info.run_id for name, run in stages.items()}
    assert summary["metrics"]["accuracy"] == pytest.approx(stages["evaluate"].data.metrics["accuracy"], abs=1e-12)
    tune_seconds = next(row["seconds"] for row in summary["stages"] if row["stage"] == "tune")
    assert tune_seconds > 1  # the first run really searched


def test_show_prints_the_table_on_stderr(default_run, recorded):
    parents, _ = recorded
    result = default_run.store.cli("show", timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == ""  # the human summary is for the terminal, not for pipes
    lines = result.stderr.splitlines()
    assert f"pipeline run {parents[1].info.run_id}: FINISHED" in lines
    header = next(line for line in lines if line.startswith("stage "))
    assert header.split() == ["stage", "status", "cached", "seconds", "result"]
    table = lines[lines.index(header) + 2:lines.index(header) + 2 + len(STAGES)]  # after the ---- rule
    assert [line.split()[0] for line in table] == list(STAGES)
    assert all(line.split()[1:3] == ["FINISHED", "True"] for line in table), table
    assert any(line.startswith("best hyperparameters: {") for line in lines)
    assert any(line.startswith("blessing: blessed:") for line in lines)
    assert "Downloading artifacts" not in result.stderr and "Traceback" not in result.stderr


def test_show_unknown_run_id_exits_2(default_run):
    result = default_run.store.cli("show", "0123456789abcdef0123456789abcdef", timeout=300)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "error: no run '0123456789abcdef0123456789abcdef'" in result.stderr
    assert "Traceback" not in result.stderr
    result = default_run.store.cli("show", "not-a-run", "--json", timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert "error: no run 'not-a-run'" in result.stderr and "Traceback" not in result.stderr


def test_show_a_stage_run_id_exits_2_and_names_its_pipeline_run(default_run, recorded):
    parents, stages = recorded
    result = default_run.store.cli("show", stages["tune"].info.run_id, timeout=300)
    assert result.returncode == 2 and result.stdout == ""
    assert "is a stage run, not a pipeline run" in result.stderr
    assert parents[0].info.run_id in result.stderr  # where to look instead
    assert "Traceback" not in result.stderr


# One UCI handwritten "0", as `pipeline predict` takes raw digits input: 8x8 grey levels 0-16.
DIGIT_ZERO = ("[[[0,0,5,13,9,1,0,0],[0,0,13,15,10,15,5,0],[0,3,15,2,0,11,8,0],[0,4,12,0,0,8,8,0],"
              "[0,5,8,0,0,9,8,0],[0,4,11,0,1,12,7,0],[0,2,14,5,10,12,0,0],[0,0,6,13,10,0,0,0]]]")
# What TensorFlow writes to stderr while it loads, before any log level applies.
START_UP_NOISE = ("oneDNN", "All log messages before absl")


def test_predict_on_the_champion_starts_quietly_unless_verbose(default_run):
    quiet = default_run.store.cli("predict", DIGIT_ZERO, timeout=300)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout.startswith("#0: "), quiet.stdout  # one line for the one input
    assert not [line for line in quiet.stderr.splitlines() if any(n in line for n in START_UP_NOISE)], quiet.stderr
    # The lines are really there to hide: --verbose shows them.
    verbose = default_run.store.cli("predict", DIGIT_ZERO, "--verbose", timeout=300)
    assert verbose.returncode == 0, verbose.stderr[-3000:]
    assert any(n in verbose.stderr for n in START_UP_NOISE), verbose.stderr[-3000:]
