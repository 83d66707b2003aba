"""A private tracking server for the session: PostgreSQL plus `mlflow server` with basic auth.

One PostgreSQL cluster (initdb + pg_ctl on a free loopback port) holds MLflow's
tracking tables and its auth tables; one `mlflow server` on another free loopback
port serves them with HTTP basic auth and proxies artifacts into a local folder,
so the pipeline's processes need nothing but `MLFLOW_TRACKING_URI=http://...` and
MLflow's own credential variables. Both start once per session and are torn down
at its end. A machine without PostgreSQL fails here, loudly: CI installs it
(`.ci/run`), and a skip would hide that the server path went untested.
"""

from __future__ import annotations

import configparser
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest

LOOPBACK = "127.0.0.1"
# Bounds on every wait, so a server that never comes up fails the session instead of hanging it.
START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
# The pipeline's MLflow user; the admin only creates it (as a team's administrator would).
USERNAME = "pipeline-user"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def _postgres_bin(name: str) -> str:
    """A PostgreSQL server program: on PATH, else in Debian's versioned directory (not on PATH there)."""
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if found is None:
        pytest.fail(f"PostgreSQL's {name} was not found: install PostgreSQL (Debian: apt-get install postgresql; "
                    ".ci/run does it) to run the tracking-server tests", pytrace=False)
    return found


def _as_owner() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its programs as the `postgres` user the package creates."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root and there is no `postgres` user to run PostgreSQL as", pytrace=False)
    return ["runuser", "-u", "postgres", "--"]


def _run(command: list[str], what: str, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT_S, env=env)
    if done.returncode != 0:
        pytest.fail(f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}", pytrace=False)


@dataclass(frozen=True)
class Postgres:
    port: int
    user: str
    password: str

    def uri(self, database: str) -> str:
        """The SQLAlchemy URI MLflow takes. The password stays out of it (and out of `ps`): libpq reads PGPASSWORD."""
        return f"postgresql+psycopg2://{self.user}@{LOOPBACK}:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """A throwaway cluster listening on loopback only, with password authentication as a real one would use."""
    owner = _as_owner()
    # Outside pytest's tmp_path: its parent folders are private to the test user, and `postgres` must reach the cluster.
    root = Path(tempfile.mkdtemp(prefix="pipeline-pg-"))
    if owner:
        shutil.chown(root, user="postgres", group="postgres")
    data, log = root / "data", root / "server.log"
    server = Postgres(port=free_port(), user="mlflow", password=secrets.token_urlsafe(16))
    password_file = root / "password"
    password_file.write_text(server.password)
    if owner:
        shutil.chown(password_file, user="postgres", group="postgres")
    _run([*owner, _postgres_bin("initdb"), "-D", str(data), "-U", server.user, "--auth=scram-sha-256",
          f"--pwfile={password_file}", "-E", "UTF8", "--no-instructions"], "initdb")
    # -k puts the Unix socket in the cluster's own folder, not the system's /var/run/postgresql.
    options = f"-h {LOOPBACK} -p {server.port} -k {root}"
    _run([*owner, _postgres_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w",
          "-t", str(START_TIMEOUT_S), "start"], "pg_ctl start")
    try:
        env = {**os.environ, "PGPASSWORD": server.password}
        for database in ("mlflow", "mlflow_auth"):
            _run([_postgres_bin("createdb"), "-h", LOOPBACK, "-p", str(server.port), "-U", server.user, database],
                 f"createdb {database}", env=env)
        yield server
    finally:
        subprocess.run([*owner, _postgres_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                        "-t", str(STOP_TIMEOUT_S), "stop"], capture_output=True, timeout=STOP_TIMEOUT_S + 10)
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class TrackingServer:
    uri: str
    username: str
    password: str
    artifacts: Path  # where the server writes the artifacts it proxies
    log: Path

    def env(self) -> dict[str, str]:
        """What a client sets: the server's address and MLflow's own credential variables."""
        return {"MLFLOW_TRACKING_URI": self.uri, "MLFLOW_TRACKING_USERNAME": self.username,
                "MLFLOW_TRACKING_PASSWORD": self.password}


def _wait_healthy(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"mlflow server exited ({process.returncode}):\n{log.read_text()[-4000:]}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"mlflow server did not answer /health within {START_TIMEOUT_S}s:\n{log.read_text()[-4000:]}",
                pytrace=False)


def _create_user(url: str, admin_password: str, username: str, password: str) -> None:
    """The pipeline's user, created through MLflow's auth API as an administrator would."""
    from mlflow.server.auth.client import AuthServiceClient

    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ.update({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": admin_password})
    try:
        AuthServiceClient(url).create_user(username, password)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _stop(process: subprocess.Popen) -> None:
    """The server and its workers: they share the process group the server was started in."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture(scope="session")
def tracking_server(postgres: Postgres, tmp_path_factory) -> Iterator[TrackingServer]:
    root = tmp_path_factory.mktemp("tracking-server")
    artifacts, log = root / "artifacts", root / "server.log"
    # MLflow ships no default admin password: the auth app creates the admin from this on first start.
    admin_password = secrets.token_urlsafe(16)
    auth = configparser.ConfigParser()
    auth["mlflow"] = {"default_permission": "READ", "database_uri": postgres.uri("mlflow_auth"),
                      "admin_username": "admin", "admin_password": admin_password,
                      "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
                      # Checking a password (scrypt) costs about 0.1 s of CPU, on every request, and a pipeline
                      # makes hundreds; with the cache the server checks each user's password once a minute.
                      "auth_cache_ttl_seconds": "60"}
    config = root / "basic_auth.ini"
    with open(config, "w") as handle:
        auth.write(handle)
    port = free_port()
    url = f"http://{LOOPBACK}:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"MLFLOW_AUTH_CONFIG_PATH": str(config), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(16),
                "PGPASSWORD": postgres.password,
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"})
    command = [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
               "--backend-store-uri", postgres.uri("mlflow"), "--artifacts-destination", artifacts.as_uri(),
               "--host", LOOPBACK, "--port", str(port),
               # One worker process: each imports the whole app (half a minute on a busy 2-core machine), and
               # one already serves concurrent requests from its thread pool.
               "--workers", "1"]
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        _wait_healthy(process, url, log)
        server = TrackingServer(uri=url, username=USERNAME, password=secrets.token_urlsafe(16),
                                artifacts=artifacts, log=log)
        _create_user(url, admin_password, server.username, server.password)
        yield server
    finally:
        _stop(process)


@pytest.fixture
def server_store(store, tracking_server: TrackingServer):
    """The suite's temporary store with tracking moved to the server; stage artifacts stay under its root."""
    return replace(store, env={**store.env, **tracking_server.env(), "PIPELINE_STORE_DIR": str(store.root)})


@pytest.fixture
def server_client(tracking_server: TrackingServer, monkeypatch):
    """An MLflow client in the test process, logged in as the pipeline's user through MLflow's variables."""
    import mlflow

    for key, value in tracking_server.env().items():
        monkeypatch.setenv(key, value)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_server.uri)
    yield mlflow.MlflowClient(tracking_server.uri)
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def loopback_port() -> int:
    """A free port on 127.0.0.1, e.g. for KerasTuner's oracle."""
    return free_port()
