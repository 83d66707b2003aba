"""Where things are stored, and the MLflow calls the runner needs.

The store is one directory: `mlflow.db` (MLflow's SQLite tracking backend),
`artifacts/` (MLflow's artifact root), `pipeline/` (the stages' artifacts) and
`serving/` (TF-Serving exports). `MLFLOW_TRACKING_URI` moves the tracking store
as MLflow users expect; with a SQLite URI the rest follows the database file.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import unquote, urlsplit, urlunsplit

from pipeline.locks import exclusive
from pipeline.names import TAG_ERROR, TAG_HOST, TAG_KIND, TAG_PID

# SQLite's default lock wait is 5 s: two pipelines writing to one store at once
# need longer, so the driver waits this long for a lock before "database is locked".
SQLITE_TIMEOUT_S = 60
# Where stage artifacts and SavedModel exports go when the tracking store is not a local SQLite file.
STORE_ENV = "PIPELINE_STORE_DIR"


def project_home() -> Path:
    """The repository root for an editable install, else the working directory."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the project's SQLite store, with a lock timeout added.

    A server URI's user:password moves into MLflow's own credential variables (where those are empty):
    MLflow puts the URI into the links it prints and the errors it raises, so credentials left in it
    would reach the terminal whenever the server is unreachable.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_home() / 'mlruns' / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and "timeout=" not in uri:
        uri += ("&" if "?" in uri else "?") + f"timeout={SQLITE_TIMEOUT_S}"
    if is_server(uri):
        uri = _move_credentials(uri)
    return uri


def _move_credentials(uri: str) -> str:
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    for variable, value in (("MLFLOW_TRACKING_USERNAME", parts.username), ("MLFLOW_TRACKING_PASSWORD", parts.password)):
        if not os.environ.get(variable):
            os.environ[variable] = unquote(value or "")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def store_dir() -> Path:
    """The local directory for artifacts: PIPELINE_STORE_DIR, else next to a SQLite database, else `<home>/mlruns`."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser().resolve()
    db = _sqlite_path(tracking_uri())
    if db is not None:
        return db.resolve().parent
    return project_home() / "mlruns"


def redact_uri(uri: str) -> str:
    """A tracking URI safe to print or log: any user:password is replaced."""
    parts = urlsplit(uri)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host += f":{parts.port}"
        return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
    return uri


def ui_url(host: str = "127.0.0.1", port: int = 5000) -> str:
    return f"http://{host}:{port}"


def setup(experiment: str):
    """Point MLflow at the store and return the experiment id (created on first use)."""
    import mlflow

    uri = tracking_uri()
    # Against a tracking server MLflow prints a link on stdout for every run it ends (each stage, each trial),
    # and the link carries any user:password the URI holds. The pipeline prints its run ids and the store,
    # redacted, itself.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    mlflow.set_tracking_uri(uri)
    # Two pipelines starting on a new SQLite store would both create its tables; one waits for the other.
    with _store_lock():
        client = mlflow.MlflowClient()
        return _ensure_experiment(client, experiment)


@contextmanager
def _store_lock() -> Iterator[None]:
    if _sqlite_path(tracking_uri()) is None:
        yield
        return
    with exclusive(store_dir() / ".setup.lock"):
        yield


def _ensure_experiment(client, experiment: str) -> str:
    import mlflow

    found = client.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        mlflow.set_experiment(experiment_id=found.experiment_id)
        return found.experiment_id
    try:
        experiment_id = client.create_experiment(experiment, artifact_location=_artifact_location(experiment))
    except Exception:
        # Another pipeline created it between our lookup and create.
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise
        experiment_id = found.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def is_server(uri: str) -> bool:
    """Whether the tracking store is an MLflow tracking server (reached over HTTP) rather than a database."""
    return urlsplit(uri).scheme in ("http", "https")


def _artifact_location(experiment: str) -> str | None:
    """Where a new experiment's MLflow artifacts go: beside a local store, or wherever a server says.

    A tracking server started with `--artifacts-destination` proxies artifacts over HTTP; a local
    path chosen here would bypass it and be unreadable from every other machine.
    """
    if is_server(tracking_uri()):
        return None
    return f"{(store_dir() / 'artifacts').resolve().as_uri()}/{experiment}"


def process_tags(kind: str) -> dict[str, str]:
    return {TAG_KIND: kind, TAG_PID: str(os.getpid()), TAG_HOST: socket.gethostname()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_orphaned_runs(experiment_id: str) -> list[str]:
    """Mark FAILED the RUNNING runs whose pipeline process on this host is gone (a kill -9, a crash)."""
    import mlflow

    client = mlflow.MlflowClient()
    host = socket.gethostname()
    orphaned = []
    runs = client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=5000)
    for run in runs:
        tags = run.data.tags
        pid = tags.get(TAG_PID)
        if tags.get(TAG_HOST) != host or pid is None or not pid.isdigit():
            continue
        if int(pid) != os.getpid() and not _pid_alive(int(pid)):
            client.set_tag(run.info.run_id, TAG_ERROR, "the process running it died (killed or crashed)")
            client.set_terminated(run.info.run_id, status="FAILED")
            orphaned.append(run.info.run_id)
    return orphaned


def log_params(params: dict[str, Any]) -> None:
    """Log params in batches (MLflow caps one batch at 100)."""
    import mlflow

    items = [(k, _param_value(v)) for k, v in params.items()]
    for start in range(0, len(items), 100):
        mlflow.log_params(dict(items[start : start + 100]))


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."
