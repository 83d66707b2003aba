"""Processes the benchmarks start: pipeline commands and workers, in temporary stores, with their peak memory.

Everything runs from a snapshot of the project's source taken when the
benchmark starts (other people may edit the working tree meanwhile, and a
changed source file changes stage fingerprints: a "cached" re-run would then
recompute). Every MLflow store and TFDS directory is temporary; the
repository's mlruns/ is never touched.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import machine

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ("pipeline", "components", "models", "studies", "benchmarks", "pyproject.toml")
SAMPLE_EVERY_S = 0.2


@dataclass(frozen=True)
class Finished:
    """One finished process: exit code, wall seconds, peak memory, output files, load before/after."""

    returncode: int
    seconds: float
    cpu_seconds: float  # user + system CPU time of the process (all its threads)
    maxrss_mib: float  # the largest single process's peak RSS (kernel's wait4 figure)
    tree_peak_mib: float  # the largest sampled sum of RSS over the process and its children
    stdout: Path
    stderr: Path
    load: tuple[tuple[float, float, float], tuple[float, float, float]]

    def check(self, what: str) -> "Finished":
        if self.returncode != 0:
            tail = self.stderr.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{what} exited {self.returncode}; its stderr ends with:\n{tail}")
        return self


class Workspace:
    """A temporary directory holding the source snapshot, the stores and the logs of one benchmark run."""

    def __init__(self, keep: bool = False) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="deeplearning-tf-bench-"))
        self.keep = keep
        self.src = self.root / "src"
        self.logs = self.root / "logs"
        self.logs.mkdir()
        self.tfds = self.root / "tfds"  # TFDS_DATA_DIR for the project's own builders (digits)
        self.tfds.mkdir()
        self._count = 0
        self.finished: list[Finished] = []
        for name in SOURCE:
            origin = ROOT / name
            if origin.is_dir():
                shutil.copytree(origin, self.src / name, ignore=shutil.ignore_patterns("results", "*.md"))
            else:
                shutil.copy2(origin, self.src / name)

    def close(self) -> None:
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def mark(self) -> int:
        """A position in the list of finished processes, for load_span."""
        return len(self.finished)

    def load_span(self, since: int) -> str:
        """The 1-minute load average, lowest..highest, seen before and after each process since `since`."""
        values = [v for done in self.finished[since:] for v in (done.load[0][0], done.load[1][0])]
        return f"{min(values):.1f}-{max(values):.1f}" if values else ""

    def store(self, name: str) -> Path:
        path = self.root / "stores" / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    def env(self, store: Path) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TFDS_", "PIPELINE_"))}
        env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}", "TFDS_DATA_DIR": str(self.tfds),
                    "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
        return env

    def _files(self, label: str) -> tuple[Path, Path]:
        self._count += 1
        stem = self.logs / f"{self._count:02d}-{label}"
        return stem.with_suffix(".out"), stem.with_suffix(".err")

    def pipeline(self, store: Path, *args: str, label: str) -> Finished:
        """`pipeline ARGS` as a user runs it (the console script is `python -m pipeline.cli`)."""
        return self.spawn([sys.executable, "-m", "pipeline.cli", *args], store, label)

    def show(self, store: Path, name: str) -> dict[str, Any]:
        """`pipeline show --json`: the latest pipeline run's stages, with their seconds and cached flags."""
        done = self.pipeline(store, "show", "--json", "--name", name, label=f"show-{name}").check("pipeline show")
        return json.loads(done.stdout.read_text())

    def worker(self, store: Path, task: str, request: dict[str, Any], label: str) -> dict[str, Any]:
        request_file = self.logs / f"{label}-request.json"
        result_file = self.logs / f"{label}-result.json"
        request_file.write_text(json.dumps(request, indent=2))
        self.spawn([sys.executable, "-m", "benchmarks.worker", task, str(request_file), str(result_file)],
                   store, label).check(f"benchmark worker {task}")
        return json.loads(result_file.read_text())

    def spawn(self, command: list[str], store: Path, label: str) -> Finished:
        stdout, stderr = self._files(label)
        load_before = machine.load()
        started = time.perf_counter()
        with open(stdout, "w") as out, open(stderr, "w") as err:
            process = subprocess.Popen(command, cwd=self.src, env=self.env(store), stdout=out, stderr=err)
            sampler = _TreeSampler(process.pid)
            sampler.start()
            # wait4 rather than Popen.wait: it hands back the child's rusage, whose ru_maxrss is its peak RSS.
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
            sampler.stop()
        done = Finished(process.returncode, seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, sampler.peak / 2**20, stdout, stderr,
                        (load_before, machine.load()))
        self.finished.append(done)
        return done


class _TreeSampler(threading.Thread):
    """Samples the summed RSS of a process and all its descendants (psutil) until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            parent = psutil.Process(self.pid)
        except psutil.Error:
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                for process in [parent, *parent.children(recursive=True)]:
                    try:
                        total += process.memory_info().rss
                    except psutil.Error:
                        continue
            except psutil.Error:
                return
            self.peak = max(self.peak, total)
            self._stop_event.wait(SAMPLE_EVERY_S)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
