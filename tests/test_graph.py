"""What a run shows at a glance: the pipeline picture on the parent run, system metrics on the stage runs.

The picture is checked by content: the Mermaid text names every stage with its state, seconds, key
figure and the fingerprints MLflow recorded, the PNG is painted in each state's colour, and
`pipeline show --graph` draws the same picture later. Uses the session's default run (tests/conftest.py:
a computing run, then an all-cached re-run) and one failing run of its own.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from pipeline import graph
from pipeline.names import STAGES, TAG_ERROR, TAG_FINGERPRINT, TAG_KIND, TAG_STAGE
from pipeline.system_metrics import PREFIX as SYSTEM_METRICS_PREFIX, SAMPLED_STAGES
from tests.overrides import DIVERGENT  # train fails after four computed stages


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def _painted(png: Path, state: str) -> int:
    """How many pixels carry the fill colour of a state (box interiors are solid)."""
    from PIL import Image

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    return int(np.all(pixels == _rgb(graph.COLOURS[state][0]), axis=-1).sum())


def _node_lines(text: str) -> dict[str, str]:
    """stage -> its Mermaid node label."""
    return {m.group(1): m.group(2) for m in re.finditer(r'^    (\w+)\["(.*)"\]$', text, re.MULTILINE)}


def _pipeline_runs(client):
    experiment = client.get_experiment_by_name("digits")
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                 order_by=["attributes.start_time ASC"])
    return experiment, parents


def _stage_runs(client, experiment, parent) -> dict:
    children = client.search_runs([experiment.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    return {r.data.tags[TAG_STAGE]: r for r in children if r.data.tags.get(TAG_KIND) == "stage"}


def _logged_picture(client, run_id: str, into: Path) -> tuple[str, Path]:
    """The Mermaid text and the PNG logged on a parent run."""
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {graph.GRAPH_PNG, graph.GRAPH_MERMAID} <= names, names
    text = Path(client.download_artifacts(run_id, graph.GRAPH_MERMAID, str(into))).read_text()
    png = Path(client.download_artifacts(run_id, graph.GRAPH_PNG, str(into)))
    return text, png


# -- the picture, from a summary alone (no pipeline run) ---------------------------------------------


def _row(stage: str, status: str = "FINISHED", cached: bool = False, result: str = "ok", error=None) -> dict:
    return {"stage": stage, "status": status, "cached": cached, "seconds": 1.25, "result": result,
            "run_id": "r" * 32, "fingerprint": f"{stage}-fp", "error": error}


def test_a_failed_stage_is_marked_with_its_error_and_stops_the_arrows_after_it():
    error = 'ValueError: bad value "x" for <units>\nsecond line'
    summary = {"run_id": "p" * 32, "status": "FAILED", "error": error,
               "stages": [_row("ingest", cached=True), _row("validate"), _row("preprocess"),
                          _row("tune", status="FAILED", result=error, error=error)]}
    picture = graph.from_summary(summary)
    assert [n.stage for n in picture.nodes] == list(STAGES)  # what the failure kept from running is drawn too
    assert [n.state for n in picture.nodes] == ["cached", "computed", "computed", "failed"] + ["not run"] * 3
    text = graph.mermaid(picture)
    nodes = _node_lines(text)
    assert set(nodes) == set(STAGES)
    # The error on one line, with the characters Mermaid would read as markup escaped.
    assert "ValueError: bad value #quot;x#quot; for #lt;units#gt; second line" in nodes["tune"]
    assert nodes["tune"].startswith("<b>tune</b><br/>failed · 1.2 s")
    assert nodes["push"] == "<b>push</b><br/>not run"
    assert "%% error: ValueError" in text
    # Only stages that finished hand on an artifact: their arrows carry its fingerprint, the others are dotted.
    assert '    preprocess -->|"preprocess-fp"| tune' in text
    assert "    tune -.-> train" in text and "    train -.-> evaluate" in text
    assert "class tune failed" in text and "class train,evaluate,push not_run" in text


def test_a_finished_tune_only_run_draws_the_stages_it_ran(tmp_path):
    summary = {"run_id": "p" * 32, "status": "FINISHED", "error": None,
               "stages": [_row(s) for s in ("ingest", "validate", "preprocess", "tune")]}
    picture = graph.from_summary(summary)
    assert [n.stage for n in picture.nodes] == ["ingest", "validate", "preprocess", "tune"]
    png, source = graph.write(picture, tmp_path)
    assert source.read_text() == graph.mermaid(picture)
    assert _painted(png, "computed") > 4 * 10_000  # four solid boxes
    assert _painted(png, "not run") == 0


# -- the picture of real runs ------------------------------------------------------------------------


@pytest.mark.slow
def test_every_default_run_logs_its_picture_and_show_draws_the_same(default_run, tmp_path):
    client = default_run.store.client()
    experiment, parents = _pipeline_runs(client)
    assert len(parents) == 2
    for parent, state in ((parents[0], "computed"), (parents[1], "cached")):
        text, png = _logged_picture(client, parent.info.run_id, tmp_path / state)
        assert text.startswith(f"%% pipeline run {parent.info.run_id}: FINISHED\n")
        nodes = _node_lines(text)
        assert list(nodes) == list(STAGES)
        stages = _stage_runs(client, experiment, parent)
        for name, label in nodes.items():
            assert label.startswith(f"<b>{name}</b><br/>{state} · "), label
        # The arrows carry the fingerprints MLflow recorded on the producing stage runs.
        fingerprints = {name: run.data.tags[TAG_FINGERPRINT] for name, run in stages.items()}
        assert f'    ingest -->|"{fingerprints["ingest"]}"| evaluate' in text
        assert f'    train -->|"{fingerprints["train"]}"| push' in text
        assert re.search(r"test accuracy 0\.9\d+, blessed", nodes["evaluate"]), nodes["evaluate"]
        assert "version 1 is champion" in nodes["push"]
        assert _painted(png, state) > len(STAGES) * 10_000
        assert _painted(png, "failed") == 0 and _painted(png, "not run") == 0

    # `pipeline show --graph` on the latest run: the same picture, PNG where asked, Mermaid on stdout.
    out = tmp_path / "drawn" / "picture.png"
    result = default_run.store.cli("show", "--graph", "--out", str(out), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    logged, _ = _logged_picture(client, parents[1].info.run_id, tmp_path / "again")
    assert result.stdout == logged
    assert str(out) in result.stderr and _painted(out, "cached") > len(STAGES) * 10_000


@pytest.mark.slow
def test_a_failed_run_logs_its_picture_with_the_failing_stage_and_its_error(store, tmp_path):
    result = store.cli("run", *DIVERGENT, "--set", "tracking.system_metrics=false")
    assert result.returncode == 1, result.stderr[-3000:]
    client = store.client()
    experiment, (parent,) = _pipeline_runs(client)
    assert parent.info.status == "FAILED"
    text, png = _logged_picture(client, parent.info.run_id, tmp_path)
    assert text.startswith(f"%% pipeline run {parent.info.run_id}: FAILED\n")
    assert f"%% error: {' '.join(parent.data.tags[TAG_ERROR].split())}" in text
    nodes = _node_lines(text)
    assert list(nodes) == list(STAGES)
    states = {name: label.split("<br/>")[1].split(" ·")[0] for name, label in nodes.items()}
    assert states == {"ingest": "computed", "validate": "computed", "preprocess": "computed", "tune": "computed",
                      "train": "failed", "evaluate": "not run", "push": "not run"}
    assert "diverged" in nodes["train"]
    assert "    train -.-> evaluate" in text and "    evaluate -.-> push" in text
    assert _painted(png, "failed") > 10_000 and _painted(png, "not run") > 2 * 10_000

    # With the switch off, no stage run samples the machine, not even the one that failed.
    for name, run in _stage_runs(client, experiment, parent).items():
        assert not [k for k in run.data.metrics if k.startswith(SYSTEM_METRICS_PREFIX)], name

    drawn = store.cli("show", parent.info.run_id, "--graph", "--out", str(tmp_path / "f.png"), timeout=300)
    assert drawn.returncode == 0 and drawn.stdout == text


# -- system metrics ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_tune_train_and_evaluate_runs_carry_system_metrics_and_cached_runs_do_not(default_run):
    client = default_run.store.client()
    experiment, parents = _pipeline_runs(client)
    computed, cached = (_stage_runs(client, experiment, p) for p in parents)
    for name in STAGES:
        keys = {k for k in computed[name].data.metrics if k.startswith(SYSTEM_METRICS_PREFIX)}
        if name in SAMPLED_STAGES:
            assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= keys, name
            history = client.get_metric_history(computed[name].info.run_id, "system/system_memory_usage_megabytes")
            # At least the sample pending at the end and the closing one, even for a stage under one interval.
            assert len(history) >= 2 and all(h.value > 0 for h in history), (name, history)
        else:
            assert not keys, name
        # A cached stage copies its metrics from the run that computed it, but not that run's machine figures.
        assert not [k for k in cached[name].data.metrics if k.startswith(SYSTEM_METRICS_PREFIX)], name
