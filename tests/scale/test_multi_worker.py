"""Multi-worker training: two `pipeline run` processes on localhost, one TF_CONFIG cluster, one shared store.

As a team would run it on two hosts: the same command on each, each with its own TF_CONFIG task, against
the tracking server of tests/scale/conftest.py (PostgreSQL, basic auth, proxied artifacts) and one stage
store (PIPELINE_STORE_DIR). The chief runs and records the pipeline; the other worker trains in step with
it and records nothing. Ports are free loopback ports; every process is killed at the end of its test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

import pytest

from components import distribute
from pipeline import artifacts
from pipeline.config import ConfigError
from pipeline.names import TAG_ARTIFACT_DIR, TAG_KIND, TAG_STAGE
from tests.conftest import PIPELINE, ROOT
from tests.scale.conftest import LOOPBACK, free_port

# The default digits pipeline, shrunk: no search, a sliver of the data, two workers.
SMALL = ("--set", "data.max_examples=400", "--set", "tune.enabled=false", "--set", "evaluate.min_accuracy=0",
         "--set", "train.distribution=multi_worker")
TIMEOUT_S = 900
WORKER_LINE = re.compile(r"worker:1: trained (\d+) epochs in step with the chief \(weights sha256 ([0-9a-f]{64})\)")


def _tf_config(addresses: list[str], index: int) -> str:
    return json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}})


def _start_cluster(store, *args: str) -> list[subprocess.Popen]:
    """`pipeline run ARGS` as worker 0 (the chief) and worker 1, on two free loopback ports."""
    addresses = [f"{LOOPBACK}:{free_port()}", f"{LOOPBACK}:{free_port()}"]
    return [subprocess.Popen([*PIPELINE, "run", *args], cwd=ROOT, text=True, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env={**store.env, "TF_CONFIG": _tf_config(addresses, index)})
            for index in range(2)]


def _finish(processes: list[subprocess.Popen]) -> list[str]:
    """Each process's output once it has ended; none outlives this (a worker left waiting is killed)."""
    try:
        return [process.communicate(timeout=TIMEOUT_S)[0] for process in processes]
    finally:
        _kill(processes)


def _kill(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def _runs(client, name: str) -> list:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no experiment {name!r}"
    return client.search_runs([experiment.experiment_id], max_results=1000)


def _train_runs(client, name: str) -> list:
    return [run for run in _runs(client, name) if run.data.tags.get(TAG_STAGE) == "train"]


def _sealed_train(run) -> artifacts.Artifact:
    return artifacts.load(Path(run.data.tags[TAG_ARTIFACT_DIR]), verify=True)


@pytest.mark.slow
def test_two_workers_train_in_step_and_only_the_chief_records(server_store, server_client):
    name = "digits_multi_worker"
    chief_output, worker_output = _finish(_start_cluster(server_store, *SMALL, "--set", "train.epochs=2",
                                                         "--set", f"pipeline.name={name}"))
    assert "[7/7] push" in chief_output, chief_output[-4000:]
    trained = WORKER_LINE.search(worker_output)
    assert trained, worker_output[-4000:]

    runs = _runs(server_client, name)
    # Every run is the chief's: one pipeline run and its seven stages, all finished; the worker made none.
    assert len(runs) == 8 and all(run.info.status == "FINISHED" for run in runs)
    assert len([run for run in runs if run.data.tags.get(TAG_KIND) == "pipeline"]) == 1
    (train,) = _train_runs(server_client, name)
    model = _sealed_train(train).properties
    assert (model["distribution"], model["replicas"], model["epochs"]) == ("multi_worker", 2, 2)
    # Both workers ended with identical weights: the worker's digest is the one the chief sealed.
    assert (int(trained.group(1)), trained.group(2)) == (2, model["weights_sha256"])
    assert train.data.params["hp.batch_size"] == "32"  # the global batch: the config's, not per worker


@pytest.mark.slow
def test_a_killed_worker_and_a_restarted_cluster_resume_like_one_process(server_store, server_client):
    name = "digits_multi_worker_resume"
    args = (*SMALL, "--set", "train.epochs=6", "--set", "train.early_stopping_patience=0",
            "--set", f"pipeline.name={name}")
    chief, worker = processes = _start_cluster(server_store, *args)
    try:
        _kill_when(worker, "Epoch 3/6", timeout_s=TIMEOUT_S)  # two epochs done and backed up by the chief
        chief_output = chief.communicate(timeout=TIMEOUT_S)[0]
    finally:
        _kill(processes)
    assert chief.returncode == 1, chief_output[-4000:]  # its train stage failed with the lost worker
    (failed,) = _train_runs(server_client, name)
    assert failed.info.status == "FAILED"

    chief_output, worker_output = _finish(_start_cluster(server_store, *args))
    assert "train: resuming from the last completed epoch" in chief_output, chief_output[-4000:]
    trained = WORKER_LINE.search(worker_output)
    assert trained, worker_output[-4000:]
    (resumed,) = [run for run in _train_runs(server_client, name) if run.info.status == "FINISHED"]
    assert resumed.data.tags.get("pipeline.resumed") == "true"
    model = _sealed_train(resumed).properties
    # Both resumed at the chief's epoch, trained the rest in step, and ended with identical weights.
    assert 1 <= model["epochs"] < 6
    assert (int(trained.group(1)), trained.group(2)) == (model["epochs"], model["weights_sha256"])


def _kill_when(process: subprocess.Popen, text: str, *, timeout_s: float) -> None:
    """kill -9 the process as soon as a line of its output contains `text`."""
    seen = threading.Event()

    def watch() -> None:
        for line in process.stdout:
            if text in line:
                seen.set()
                return

    threading.Thread(target=watch, daemon=True).start()
    assert seen.wait(timeout_s), f"{text!r} never appeared in the worker's output"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()


GOOD = {"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 1}}


@pytest.mark.parametrize(("tf_config", "problem", "fix"), [
    (None, "needs the TF_CONFIG environment variable", 'set train.distribution = "none"'),
    ("{cluster", "TF_CONFIG is not valid JSON", "TF_CONFIG='{\"cluster\""),
    ({"cluster": GOOD["cluster"]}, 'needs a "cluster" object and a "task" object', "set it as TensorFlow defines it"),
    ({**GOOD, "cluster": {"worker": ["host1:2222"], "ps": ["host2:2222"]}}, "names the job 'ps'",
     "takes only 'chief' (at most one) and 'worker' tasks"),
    ({**GOOD, "task": {"type": "evaluator", "index": 0}}, "task type 'evaluator' is not a job of its cluster",
     "this process's place in the cluster"),
    ({**GOOD, "task": {"type": "worker", "index": 2}}, "task index 2 is not an index", "its own index"),
    ({**GOOD, "cluster": {"worker": ["host1", "host2:2222"]}}, "'host1' of job 'worker' is not \"host:port\"",
     "a port from 1 to 65535"),
    ({**GOOD, "cluster": {"worker": ["host1:2222", "host1:2222"]}}, "lists 'host1:2222' twice",
     "its own host:port"),
    ({**GOOD, "cluster": {"chief": ["a:1", "b:1"], "worker": ["c:1"]}}, "has 2 chief addresses",
     "list the others under 'worker'"),
])
def test_a_bad_tf_config_names_the_problem_and_the_fix(tf_config, problem, fix):
    text = tf_config if isinstance(tf_config, str) or tf_config is None else json.dumps(tf_config)
    environ = {} if text is None else {"TF_CONFIG": text}
    with pytest.raises(ConfigError) as error:
        distribute.cluster_from_env(environ)
    message = str(error.value)
    assert problem in message and fix in message and "\n" not in message


def test_the_chief_is_the_chief_task_or_else_worker_0():
    def cluster(spec: dict) -> distribute.Cluster:
        return distribute.cluster_from_env({"TF_CONFIG": json.dumps(spec)})

    assert cluster(GOOD) == distribute.Cluster("worker", 1, tasks=2, chief="worker:0")
    assert not cluster(GOOD).is_chief
    assert cluster({**GOOD, "task": {"type": "worker", "index": 0}}).is_chief
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}
    assert not cluster(with_chief).is_chief and cluster(with_chief).tasks == 3
    assert cluster({**with_chief, "task": {"type": "chief", "index": 0}}).is_chief


@pytest.mark.parametrize(("setting", "tf_config", "expected"), [
    ("train.distribution=multi_worker", "{cluster", "error: TF_CONFIG is not valid JSON"),
    ("train.distribution=multi_worker", None, "error: train.distribution = \"multi_worker\" needs the TF_CONFIG"),
    ("train.distribution=multiworker", None, "error: train.distribution = 'multiworker' is not one of the allowed "
                                             "values: none, mirrored, multi_worker"),
])
def test_the_command_stops_with_exit_2_and_one_line_before_anything_is_recorded(store, setting, tf_config, expected):
    env = {key: value for key, value in store.env.items() if key != "TF_CONFIG"}
    if tf_config is not None:
        env["TF_CONFIG"] = tf_config
    done = subprocess.run([*PIPELINE, "run", "--set", setting], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(expected)
    assert not store.root.exists() or not any(store.root.iterdir())
