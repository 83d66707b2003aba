"""Trials in several processes: KerasTuner's oracle served by the tune stage, local worker processes.

The tune stage (components/tune.py) decides what a search is; this module holds what running its
trials in parallel needs from the machine: how many workers `tune.workers` means here, a free
loopback port for the oracle, the oracle's server with a prompt end, and worker processes that
end with the pipeline and are stopped cleanly when the search stops early. Workers can be started
before the tune stage (`prestart`): they import TensorFlow and open the tracking store while the
pipeline checks its dataset and runs the stages before tune, then wait for their job on stdin.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent import futures
from contextlib import contextmanager
from typing import Any, Callable

WORKER_JOB = "PIPELINE_TUNE_WORKER"  # the environment variable a local worker process reads its job from
JOB_ON_STDIN = "stdin"  # WORKER_JOB for a prestarted worker: its job comes as one JSON line on stdin
WORKER_VERBOSE = "PIPELINE_TUNE_WORKER_VERBOSE"  # a prestarted worker's verbosity, before its job says it
_prestarted: list[subprocess.Popen] = []  # workers started ahead of the tune stage, waiting for a job
TUNER_VARIABLES = ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_count(setting: int | str) -> int:
    """`tune.workers` as a number: "auto" is one per usable core, as many as free memory holds
    (each worker is a TensorFlow process of about 1.5 GiB)."""
    if setting != "auto":
        return int(setting)
    import psutil

    return max(1, min(usable_cores(), int(psutil.virtual_memory().available // (1536 * 2**20))))


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def kerastuner_variables():
    """KerasTuner's distribution variables as they were before the block, whatever it set."""
    saved = {name: os.environ.get(name) for name in TUNER_VARIABLES}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _spawn(variables: dict[str, str], **popen: Any) -> subprocess.Popen:
    """`python -m components.tune` with these variables, outside this process's KerasTuner role."""
    environment = {**os.environ, **variables}
    for name in TUNER_VARIABLES:
        environment.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "components.tune"], env=environment, preexec_fn=_end_with_parent,
                            **popen)


def prestart(count: int, verbose: int) -> None:
    """Start `count` workers now, so their TensorFlow import overlaps the stages before tune; `start_workers`
    hands them their jobs. Workers nobody takes are stopped by `release_prestarted`: the runner calls it
    when a run ends, and it runs at exit otherwise."""
    import mlflow

    if not _prestarted:
        atexit.register(release_prestarted)
    # The tracking store the job will name, so that the worker can open it while it waits.
    variables = {WORKER_JOB: JOB_ON_STDIN, WORKER_VERBOSE: str(verbose),
                 "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    for _ in range(count):
        _prestarted.append(_spawn(variables, stdin=subprocess.PIPE, text=True))


def start_workers(jobs: list[dict[str, Any]]) -> list[subprocess.Popen]:
    """A worker process for each job: a prestarted one while there is one alive, else a new one."""
    processes = []
    for job in jobs:
        process = None
        while process is None and _prestarted:
            candidate = _prestarted.pop(0)
            try:
                candidate.stdin.write(json.dumps(job) + "\n")
                candidate.stdin.close()
                process = candidate
            except OSError:  # it died while it waited (its error is on stderr): start a fresh one instead
                candidate.wait()
        processes.append(process or _spawn({WORKER_JOB: json.dumps(job)}))
    return processes


def release_prestarted() -> None:
    """Stop the prestarted workers that got no job (the pipeline failed, or ended before tune): they hold no
    state and no MLflow run yet, so they are killed rather than left to finish importing TensorFlow."""
    waiting, _prestarted[:] = list(_prestarted), []
    for process in waiting:
        process.kill()
        process.wait()
        process.stdin.close()


def _end_with_parent() -> None:
    """In a worker before it starts (Linux): the kernel kills it when the pipeline process dies, even by kill -9."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere a worker ends when the oracle it talks to is gone


def stop(processes: list[subprocess.Popen]) -> None:
    """Workers still running (the search failed or was interrupted) end their trial runs and exit."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def failure_of(processes: tuple[subprocess.Popen, ...]) -> Callable[[], str | None]:
    """A check for the trial loops: why the search cannot finish (a local worker process failed), or None."""
    def failure() -> str | None:
        for index, process in enumerate(processes):
            code = process.poll()
            if code not in (None, 0):
                return (f"tuning worker process {index + 1} stopped with exit code {code} before the search ended; "
                        "its error is printed above")
        return None

    return failure


@contextmanager
def serving(tuner, host: str, port: int, failure: Callable[[], str | None]):
    """The chief's side of KerasTuner's distributed mode: serve the oracle until the search is over.

    KerasTuner's own loop (`search` on the chief) polls once a second, and once the oracle has no
    new trial it sleeps 20 s at a time until every worker has finished: up to 20 s idle at the end of
    each search. This serves with KerasTuner's servicer and end condition in a background thread
    while the body runs, then polls every 0.1 s, and stops with an error when a local worker process
    fails instead of waiting for it forever.
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    class Servicer(oracle_chief.OracleServicer):
        def EndTrial(self, request, context):
            response = super().EndTrial(request, context)
            self.oracle.save()  # see trial_tracking: the state KerasTuner saved still had this trial running
            return response

    tuner.save()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))  # one request at a time, as KerasTuner's
    servicer = Servicer(tuner.oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise RuntimeError(f"the tuning oracle cannot listen on {host}:{port}: the port is taken or the address "
                           "is not this machine's; choose another --oracle")
    server.start()
    try:
        yield
        while not (servicer.stop_triggered and oracle_chief.exit_chief(tuner.oracle)):
            time.sleep(0.1)
            reason = failure()
            if reason:
                raise RuntimeError(reason)
    finally:
        server.stop(grace=1)
