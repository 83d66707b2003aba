"""Keras still needs components/keras_fixes.py: each check FAILS once upstream Keras behaves.

Each runs tests/scale/keras_fixes_probe.py in fresh processes (a strategy's collective ops are set up
once per process, and the fixes patch Keras for the whole process): the same fit on the unpatched Keras,
then with the fixes. When an assertion about the unpatched Keras fails, Keras no longer fails that way:
delete that fix from components/keras_fixes.py (and the module with its last fix), and its check here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from tests.scale.conftest import LOOPBACK, free_port

pytestmark = pytest.mark.slow

PROBE = ROOT / "tests" / "scale" / "keras_fixes_probe.py"
TIMEOUT_S = 300


def _probe(mode: str, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra_env}
    return subprocess.Popen([sys.executable, str(PROBE), mode], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _results(processes: list[subprocess.Popen]) -> list[dict]:
    try:
        outputs = [process.communicate(timeout=TIMEOUT_S) for process in processes]
    finally:
        for process in processes:  # a worker left waiting for its peer must not outlive the test
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    return [json.loads(stdout.strip().splitlines()[-1]) for stdout, _ in outputs]


def test_without_fix_2_a_strategy_fit_stops_at_its_second_validation():
    (result,) = _results([_probe("mirrored", {})])
    unpatched = result["unpatched_fit"]
    assert unpatched is not None and unpatched["type"] == "StopIteration", (
        f"Keras now fits under MirroredStrategy with validation_steps over a finite stream ({unpatched}): "
        "remove fix 2 from components/keras_fixes.py and this check")
    assert result["patched"]["epochs"] == 2


def test_without_fixes_1_and_3_a_two_worker_fit_fails_and_with_them_the_workers_agree():
    cluster = {"worker": [f"{LOOPBACK}:{free_port()}", f"{LOOPBACK}:{free_port()}"]}
    processes = [_probe("multi_worker", {"TF_CONFIG": json.dumps({"cluster": cluster,
                                                                 "task": {"type": "worker", "index": index}})})
                 for index in range(2)]
    results = _results(processes)
    for result in results:
        fit, reduction = result["unpatched_fit"], result["unpatched_metric_reduction"]
        assert fit is not None and "Attempt to convert a value (PerReplica" in fit["message"], (
            f"Keras now starts a MultiWorkerMirroredStrategy fit ({fit}): keras-team/keras#20585 may be fixed; "
            "remove fix 1 from components/keras_fixes.py and its check")
        assert reduction is not None and "Invalid reduction dimension" in reduction["message"], (
            f"Keras now reduces scalar metrics across workers ({reduction}): remove fix 3 from "
            "components/keras_fixes.py and its check")
        assert result["patched"]["epochs"] == 2
    assert results[0]["patched"]["weights_sha256"] == results[1]["patched"]["weights_sha256"]
