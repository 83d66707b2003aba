"""Crashes, divergence, interrupts, corruption and concurrency: nothing is lost or half-done."""

from __future__ import annotations

import re
import signal
import threading

import pytest

from pipeline.names import STAGES, TAG_CACHED, TAG_KIND, TAG_STAGE
from tests.overrides import DIVERGENT

pytestmark = pytest.mark.slow

# Long enough to be stopped mid-training; early stopping off so the epoch count is known.
LONG = ("--set", "tune.enabled=false", "--set", "train.epochs=60", "--set", "train.early_stopping_patience=0",
        "--set", "evaluate.min_accuracy=0")


def _all_runs(client):
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, max_results=1000)


def _stage_runs(client, name):
    return [r for r in _all_runs(client) if r.data.tags.get(TAG_STAGE) == name]


def _parents(client):
    return [r for r in _all_runs(client) if r.data.tags.get(TAG_KIND) == "pipeline"]


def _run_until(process, marker: str, timeout: float = 300) -> str:
    """Read the process's output until `marker` appears; returns what was read."""
    seen: list[str] = []
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                return "".join(seen)
    finally:
        timer.cancel()
    raise AssertionError(f"{marker!r} never appeared; output:\n{''.join(seen)[-3000:]}")


def test_divergence_fails_train_and_the_pipeline_and_pushes_nothing(store, tally, count_running):
    result = store.cli("run", *DIVERGENT)
    tally["stores_checked"] += 1
    tally["left_running"] += count_running(store)
    assert result.returncode == 1
    assert "training diverged" in result.stderr and "lower train.learning_rate" in result.stderr
    assert "Traceback" not in result.stderr
    client = store.client()
    (train,) = _stage_runs(client, "train")
    (parent,) = _parents(client)
    assert train.info.status == "FAILED" and parent.info.status == "FAILED"
    assert "diverged" in parent.data.tags["pipeline.error"]
    assert not _stage_runs(client, "push")
    assert client.search_registered_models() == []
    assert not (store.root / "serving").exists()
    assert not [p for p in (store.root / "pipeline" / "digits" / "train").iterdir() if p.is_dir()
                and not p.name.endswith(".partial")], "a diverged model was sealed as an artifact"


def test_sigkill_mid_training_resumes_from_the_last_epoch(store, tally, count_running):
    process = store.popen("run", *LONG)
    _run_until(process, "Epoch 5/60")
    process.kill()  # SIGKILL: no handler runs, runs stay RUNNING, the train stage stays partial
    process.wait()
    client = store.client()
    assert {r.info.status for r in _stage_runs(client, "train")} == {"RUNNING"}
    train_dir = store.root / "pipeline" / "digits" / "train"
    assert [p.name for p in train_dir.iterdir() if p.is_dir() and not p.name.endswith(".partial")] == []

    again = store.cli("run", *LONG)
    tally["stores_checked"] += 1
    tally["left_running"] += count_running(store)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from the last completed epoch" in again.stderr
    assert "[5/7] train: done" in again.stderr  # the partial attempt was not taken for a finished artifact
    assert "left RUNNING by a process that died; marked FAILED" in again.stderr
    runs = _stage_runs(client, "train")
    killed = [r for r in runs if r.info.status == "FAILED"]
    resumed = [r for r in runs if r.info.status == "FINISHED"]
    assert len(killed) == 1 and len(resumed) == 1
    assert resumed[0].data.tags.get("pipeline.resumed") == "true"
    steps = [m.step for m in client.get_metric_history(resumed[0].info.run_id, "loss")]
    assert steps[0] >= 3 and steps[-1] == 59, steps  # continued after the last completed epoch, not from 0
    assert len(steps) == 60 - steps[0]
    finals = [p for p in train_dir.iterdir() if p.is_dir() and not p.name.endswith(".partial")]
    assert len(finals) == 1 and (finals[0] / "model.keras").is_file() and (finals[0] / "artifact.json").is_file()


def test_ctrl_c_marks_the_runs_killed_and_exits_130(store, tally, count_running):
    process = store.popen("run", *LONG)
    _run_until(process, "Epoch 3/60")
    process.send_signal(signal.SIGINT)
    output = process.communicate(timeout=120)[0]
    tally["stores_checked"] += 1
    tally["left_running"] += count_running(store)
    assert process.returncode == 130, output[-3000:]
    assert "interrupted" in output and "Traceback" not in output
    client = store.client()
    (parent,) = _parents(client)
    (train,) = _stage_runs(client, "train")
    assert parent.info.status == "KILLED" and train.info.status == "KILLED"


def test_a_corrupted_cached_artifact_is_detected_and_recomputed(store, fast, tally, count_running):
    first = store.cli("run", *fast)
    assert first.returncode == 0, first.stderr[-3000:]
    (examples,) = [p for p in (store.root / "pipeline" / "digits" / "ingest").iterdir() if p.is_dir()]
    target = examples / "train-00000.tfrecord"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))

    again = store.cli("run", *fast)
    used = re.search(r"^ingest\s+True", again.stderr, re.M) is not None  # the summary table's cached column
    tally["corrupt_used"] += int(used)
    tally["stores_checked"] += 1
    tally["left_running"] += count_running(store)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "ingest: cached artifact rejected, recomputing" in again.stderr
    assert "train-00000.tfrecord does not match its sha256" in again.stderr
    assert not used and re.search(r"^ingest\s+False", again.stderr, re.M)
    from pipeline.artifacts import load

    load(examples)  # recomputed in place: verifies again


def test_two_pipelines_on_one_store_at_once_both_finish(store, fast, tally, count_running):
    processes = [store.popen("run", *fast) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    tally["stores_checked"] += 1
    tally["left_running"] += count_running(store)
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]
        assert "database is locked" not in output
    client = store.client()
    parents = _parents(client)
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    for parent in parents:
        children = [r for r in _all_runs(client) if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id
                    and r.data.tags.get(TAG_KIND) == "stage"]
        assert sorted(r.data.tags[TAG_STAGE] for r in children) == sorted(STAGES)
    # Each stage was computed once; the process that waited for it found it cached.
    for stage in STAGES:
        computed = [r for r in _stage_runs(client, stage) if r.data.tags.get(TAG_CACHED) == "false"]
        assert len(computed) == 1, (stage, len(computed))
    assert len(client.search_model_versions("name = 'digits'")) == 1
