"""Shared fixtures: one real default pipeline run per session, in a temporary store.

The session runs the README's pipeline command (`pipeline run` on the embedded
default) twice into a temporary MLflow store: the first run does all the work,
the second must find every stage cached. Many tests only read the results.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipeline.artifacts import Artifact
from pipeline.config import DataConfig

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = [sys.executable, "-m", "pipeline.cli"]


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Store:
    """A temporary MLflow store plus the environment that points the CLI at it."""

    root: Path
    env: dict[str, str]

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.root / 'mlflow.db'}"

    def cli(self, *args: str, timeout: float = 1200, extra_env: dict[str, str] | None = None) -> Result:
        started = time.perf_counter()
        done = subprocess.run([*PIPELINE, *args], cwd=ROOT, env={**self.env, **(extra_env or {})},
                              capture_output=True, text=True, timeout=timeout)
        return Result(done.returncode, done.stdout, done.stderr, time.perf_counter() - started)

    def popen(self, *args: str) -> subprocess.Popen:
        """A pipeline process whose output (stdout and stderr together) the test reads as it comes.

        It starts with Ctrl-C's default handling, as from a terminal: a test session started in the
        background (`make test &`, nohup) ignores SIGINT, the child would inherit that, and the Ctrl-C
        test would then interrupt nothing.
        """
        return subprocess.Popen([*PIPELINE, *args], cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint)

    def client(self):
        import mlflow

        mlflow.set_tracking_uri(self.uri)
        return mlflow.MlflowClient(self.uri)


def outputs_of(processes: list[subprocess.Popen], timeout: float = 900) -> list[str]:
    """Wait for processes that work together (a chief and its workers); each one's output. Any still running
    when one times out or the test fails are killed, so no process outlives its test."""
    try:
        return [process.communicate(timeout=timeout)[0] for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def ingested(root: Path, data: DataConfig) -> Artifact:
    """The real ingest component on `data`, recorded in a throwaway MLflow store under `root`."""
    import mlflow

    from components import ingest

    out = root / "examples"
    out.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        with mlflow.start_run():
            ingest.run(data, out)
    return Artifact("Examples", str(out), "test", "test")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_store(root: Path, tfds_dir: Path) -> Store:
    root.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "TFDS_"))}
    # As with an activated virtual environment: `mlflow models serve` starts `uvicorn` from PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update({"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "TFDS_DATA_DIR": str(tfds_dir),
                "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"})
    return Store(root, env)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory) -> Path:
    """A TFDS data_dir for the project's own builders (prepared on first use)."""
    return tmp_path_factory.mktemp("tfds")


@pytest.fixture
def store(tmp_path, tfds_dir) -> Store:
    return make_store(tmp_path / "store", tfds_dir)


@dataclass(frozen=True)
class DefaultRun:
    store: Store
    first: Result
    second: Result


@pytest.fixture(scope="session")
def default_run(tmp_path_factory, tfds_dir) -> DefaultRun:
    """`pipeline run` on the default config, then the same command again."""
    store = make_store(tmp_path_factory.mktemp("default") / "store", tfds_dir)
    first = store.cli("run")
    assert first.returncode == 0, first.stderr[-4000:]
    second = store.cli("run")
    assert second.returncode == 0, second.stderr[-4000:]
    sys.stderr.write(f"\ndefault pipeline run: first {first.seconds:.1f}s, cached re-run {second.seconds:.1f}s\n")
    return DefaultRun(store, first, second)


# A quick configuration for tests that need their own pipeline runs: no search, few epochs.
FAST_ARGS = ("--set", "tune.enabled=false", "--set", "train.epochs=3", "--set", "evaluate.min_accuracy=0", "-q")


@pytest.fixture
def fast() -> tuple[str, ...]:
    return FAST_ARGS
