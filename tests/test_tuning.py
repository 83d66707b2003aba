"""Tuning: the four KerasTuner algorithms, every trial in MLflow, failed trials, resume, distributed workers."""

from __future__ import annotations

import csv
import json
import os
import socket
import threading
import time

import pytest

from pipeline.names import TAG_KIND, TAG_STAGE

pytestmark = pytest.mark.slow

TINY = ("--set", "data.max_examples=400", "--set", "tune.max_epochs=2", "--set", "tune.max_trials=4",
        "--set", 'tune.space.encoder=["mlp", "gru"]', "--set", "tune.space.units={ values = [16, 32] }",
        "--set", "tune.space.dropout={ values = [0.0, 0.3] }", "--set", "tune.space.batch_norm=[true]")


def _tune_runs(client):
    experiment = client.get_experiment_by_name("digits")
    return client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_STAGE}` = 'tune'",
                              order_by=["attributes.start_time ASC"])


def _trials(client, parent_id=None):
    experiment = client.get_experiment_by_name("digits")
    runs = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'trial'",
                              max_results=1000)
    return [r for r in runs if parent_id is None or r.data.tags.get("mlflow.parentRunId") == parent_id]


def _table(store):
    (directory,) = [p for p in (store.root / "pipeline" / "digits" / "tune").iterdir()
                    if p.is_dir() and not p.name.endswith(".partial")]
    with open(directory / "trials.csv") as handle:
        return list(csv.DictReader(handle)), directory


@pytest.mark.parametrize("algorithm", ["random", "bayesian", "hyperband", "grid"])
def test_each_algorithm_records_every_trial(store, algorithm):
    result = store.cli("tune", *TINY, "--set", f"tune.algorithm={algorithm}", "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    client = store.client()
    (tune,) = _tune_runs(client)
    assert tune.info.status == "FINISHED"
    rows, directory = _table(store)
    trials = _trials(client, tune.info.run_id)
    assert len(trials) == len(rows) >= 2
    assert {t.data.tags["pipeline.trial_id"] for t in trials} == {row["trial_id"] for row in rows}
    finished = [t for t in trials if t.info.status == "FINISHED"]
    assert finished and all("objective" in t.data.metrics for t in finished)
    assert all(t.data.params["encoder"] in ("mlp", "gru") for t in trials)
    history = client.get_metric_history(finished[0].info.run_id, "val_accuracy")
    steps = [m.step for m in history]
    assert steps == list(range(steps[0], steps[0] + len(steps)))  # step = epoch
    artifacts = {a.path for a in client.list_artifacts(tune.info.run_id)}
    assert {"best_hyperparameters.json", "trials.csv", "tuning.png", "tensorboard"} <= artifacts
    best = json.loads((directory / "best_hyperparameters.json").read_text())
    assert best["encoder"] in ("mlp", "gru") and best["batch_norm"] is True
    if algorithm == "grid":
        assert len(rows) == 4  # 2 encoders x 2 widths x 2 dropouts, capped by max_trials = 4
    # Only tune and the stages before it ran: `pipeline tune` stops there.
    stages = {r.data.tags.get(TAG_STAGE) for r in client.search_runs(
        [client.get_experiment_by_name("digits").experiment_id]) if r.data.tags.get(TAG_KIND) == "stage"}
    assert stages == {"ingest", "validate", "preprocess", "tune"}


def test_a_diverging_trial_fails_alone_and_the_search_goes_on(store):
    diverging = ("--set", "tune.algorithm=grid", "--set", "tune.max_trials=2", "--set", "tune.max_epochs=2",
                 "--set", "data.max_examples=400", "--set", "model.init_std=1.0", "--set", "model.layers=3",
                 "--set", "tune.space.learning_rate={ values = [10.0, 0.01] }", "--set", "tune.space.optimizer=[\"sgd\"]",
                 "--set", "model.batch_norm=false", "--set", "model.dropout=0", "--set", 'tune.space.encoder=["mlp"]',
                 "--set", "tune.space.batch_norm=[false]", "-q")
    result = store.cli("tune", *diverging)
    assert result.returncode == 0, result.stderr[-3000:]
    client = store.client()
    (tune,) = _tune_runs(client)
    trials = _trials(client, tune.info.run_id)
    by_rate = {float(t.data.params["learning_rate"]): t for t in trials}
    assert by_rate[10.0].info.status == "FAILED"
    assert "diverged" in by_rate[10.0].data.tags["pipeline.error"]
    assert by_rate[0.01].info.status == "FINISHED"
    assert tune.info.status == "FINISHED"
    assert tune.data.metrics["failed_trials"] == 1.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_until(process, marker: str, count: int, timeout: float = 600) -> None:
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    seen = 0
    try:
        for line in process.stdout:
            seen += marker in line
            if seen >= count:
                return
    finally:
        timer.cancel()
    raise AssertionError(f"{marker!r} appeared {seen} times, expected {count}")


def test_a_search_killed_mid_way_resumes_without_retraining(store):
    args = ("tune", *TINY, "--set", "tune.algorithm=random", "--set", "tune.max_trials=5", "--set", "tune.workers=1")
    process = store.popen(*args)
    _read_until(process, "tune: trial ", 2)  # two trials finished
    process.kill()
    process.wait()
    _resume_and_check(store, args, trials=5)


def _resume_and_check(store, args, *, trials: int) -> None:
    """After a kill -9 mid-search: run `args` again; the search finishes without retraining a trial."""
    client = store.client()
    (killed,) = _tune_runs(client)
    before = {t.data.tags["pipeline.trial_id"] for t in _trials(client, killed.info.run_id)
              if t.info.status == "FINISHED"}
    assert len(before) >= 2

    again = store.cli(*args, "-q")
    assert again.returncode == 0, again.stderr[-3000:]
    rows, _ = _table(store)
    resumed = [r for r in _tune_runs(client) if r.info.run_id != killed.info.run_id]
    assert len(resumed) == 1 and resumed[0].info.status == "FINISHED"
    after = [t.data.tags["pipeline.trial_id"] for t in _trials(client, resumed[0].info.run_id)]
    assert not before & set(after), "a completed trial was trained again"
    finished = [t.data.tags["pipeline.trial_id"] for t in _trials(client) if t.info.status == "FINISHED"]
    assert len(finished) == len(set(finished)) == len(rows) == trials  # MLflow and the oracle agree, no duplicates
    assert client.get_run(killed.info.run_id).info.status == "FAILED"  # the killed process's run, cleaned up
    assert {t.info.status for t in _trials(client)} <= {"FINISHED", "FAILED"}  # no trial left RUNNING


def test_distributed_search_with_a_chief_and_two_workers(store):
    port = _free_port()
    args = (*TINY, "--set", "tune.algorithm=random", "--set", "tune.max_trials=6", "--oracle", f"127.0.0.1:{port}")
    chief = store.popen("tune", *args, "--role", "chief")
    workers = [store.popen("tune", *args, "--role", "worker", "--tuner-id", f"tuner{i}") for i in range(2)]
    outputs = [p.communicate(timeout=900)[0] for p in [chief, *workers]]
    for process, output in zip([chief, *workers], outputs):
        assert process.returncode == 0, output[-3000:]
    client = store.client()
    (tune,) = _tune_runs(client)
    assert tune.info.status == "FINISHED"
    trials = _trials(client, tune.info.run_id)
    assert {t.data.tags["pipeline.tuner_id"] for t in trials} == {"tuner0", "tuner1"}
    ids = [t.data.tags["pipeline.trial_id"] for t in trials]
    rows, _ = _table(store)
    assert len(ids) == len(set(ids)) == len(rows) == 6
    assert all(t.info.status == "FINISHED" for t in trials)


PARALLEL = (*TINY, "--set", "tune.algorithm=random", "--set", "tune.max_trials=6", "--set", "tune.workers=2")


def _worker_processes(store) -> list:
    """Local tuning workers still alive that were started for this store."""
    import psutil

    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.info["cmdline"][-2:] == ["-m", "components.tune"] and \
                    process.environ().get("MLFLOW_TRACKING_URI") == store.uri:
                found.append(process)
        except (psutil.Error, TypeError):
            continue
    return found


def test_parallel_trials_run_every_trial_once_across_processes(store):
    result = store.cli("tune", *PARALLEL, "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    client = store.client()
    (tune,) = _tune_runs(client)
    assert tune.info.status == "FINISHED"
    trials = _trials(client, tune.info.run_id)
    assert {t.data.tags["pipeline.tuner_id"] for t in trials} == {"worker0", "worker1"}
    # worker0 is the stage's own process, worker1 a process of its own.
    pids = {t.data.tags["pipeline.tuner_id"]: t.data.tags["pipeline.pid"] for t in trials}
    assert pids["worker0"] == tune.data.tags["pipeline.pid"] != pids["worker1"]
    ids = [t.data.tags["pipeline.trial_id"] for t in trials]
    rows, _ = _table(store)
    assert len(ids) == len(set(ids)) == len(rows) == 6
    assert all(t.info.status == "FINISHED" for t in trials)
    for trial in trials:  # where each trial's time went, as the tuning benchmark reads it
        metrics = trial.data.metrics
        assert metrics["trial_seconds"] >= metrics["epoch_seconds"] > 0
        assert metrics["overhead_seconds"] == pytest.approx(metrics["trial_seconds"] - metrics["epoch_seconds"])
    assert _worker_processes(store) == []


def test_parallel_search_killed_mid_way_takes_its_workers_along_and_resumes(store):
    process = store.popen("tune", *PARALLEL)
    _read_until(process, "tune: trial ", 2)  # two trials finished, in the workers
    process.kill()  # kill -9 of the pipeline process: its workers must not go on alone
    process.wait()
    deadline = time.monotonic() + 30
    while _worker_processes(store) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _worker_processes(store) == []
    _resume_and_check(store, ("tune", *PARALLEL), trials=6)


def test_a_prestarted_worker_takes_its_job_from_stdin(capfd, tmp_path):
    """The pipeline starts tuning workers before its tune stage; the stage hands each its job later."""
    from components import trial_processes

    trial_processes.prestart(1, verbose=0)
    (waiting,) = trial_processes._prestarted
    job = {"transform": str(tmp_path / "no-such-transform"), "config": {}, "directory": str(tmp_path),
           "parent": "0", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "oracle": ["127.0.0.1", 1],
           "trial_tags": {}, "verbose": 0, "threads": 1, "tuner_id": "worker1"}
    (started,) = trial_processes.start_workers([job])
    assert started is waiting and trial_processes._prestarted == []
    assert started.wait(timeout=120) == 1  # the job it read names an artifact that is not there
    assert "no-such-transform" in capfd.readouterr().err


def test_prestarted_workers_nobody_took_are_stopped():
    from components import trial_processes

    trial_processes.prestart(2, verbose=0)
    waiting = list(trial_processes._prestarted)
    assert all(process.poll() is None for process in waiting)
    trial_processes.release_prestarted()
    assert trial_processes._prestarted == []
    assert all(process.poll() is not None for process in waiting)


def test_tune_workers_is_a_count_or_auto():
    from components.trial_processes import worker_count
    from pipeline.config import ConfigError, load_config

    assert worker_count(3) == 3
    assert 1 <= worker_count("auto") <= (os.cpu_count() or 1)
    assert load_config(None, ["tune.workers=auto"]).tune.workers == "auto"
    for bad, said in (("0", "out of range"), ("many", "whole number"), ("1.5", "whole number")):
        with pytest.raises(ConfigError, match=said):
            load_config(None, [f"tune.workers={bad}"])


def test_hparams_file_and_disabled_tuning_skip_the_search(store, tmp_path):
    hparams = tmp_path / "best.json"
    hparams.write_text(json.dumps({"encoder": "gru", "units": 16, "dropout": 0.1}))
    result = store.cli("run", "--hparams", str(hparams), "--set", "data.max_examples=400",
                       "--set", "train.epochs=2", "--set", "evaluate.min_accuracy=0", "-q")
    assert result.returncode == 0, result.stderr[-3000:]
    client = store.client()
    (tune,) = _tune_runs(client)
    assert tune.data.tags["pipeline.tune_source"].startswith("file ")
    assert _trials(client) == []
    experiment = client.get_experiment_by_name("digits")
    (train,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_STAGE}` = 'train'")
    assert train.data.params["hp.encoder"] == "gru" and train.data.params["hp.units"] == "16"

    disabled = store.cli("run", "--set", "tune.enabled=false", "--set", "data.max_examples=400",
                         "--set", "train.epochs=2", "--set", "evaluate.min_accuracy=0", "-q")
    assert disabled.returncode == 0, disabled.stderr[-3000:]
    assert _trials(client) == []
