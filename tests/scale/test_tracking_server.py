"""Every command against an MLflow tracking server on PostgreSQL, with basic auth and proxied artifacts.

The server (tests/scale/conftest.py) is the one a team would run; the pipeline's
processes reach it with `MLFLOW_TRACKING_URI=http://...` and MLflow's own
credential variables only. Each test uses its own pipeline name, so they share
the server without reading each other's runs.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import numpy as np
import pytest

from pipeline.names import STAGES, TAG_CACHED, TAG_KIND, TAG_STAGE
from tests.conftest import outputs_of

pytestmark = pytest.mark.slow

# The default digits pipeline shrunk: a two-trial search, two epochs, a sliver of the data.
SMALL = ("--set", "data.max_examples=400", "--set", "tune.algorithm=random", "--set", "tune.max_trials=2",
         "--set", "tune.max_epochs=2", "--set", 'tune.space.encoder=["mlp"]',
         "--set", "tune.space.units={ values = [16, 32] }", "--set", "tune.space.batch_norm=[true]",
         "--set", "train.epochs=2", "--set", "evaluate.min_accuracy=0", "-q")


# A URL that carries user:password@ (a redacted `***@host` has no colon before its @).
CREDENTIALS_IN_URL = re.compile(r"//[^/\s@]+:[^/\s@]*@")


def _runs(client, name: str, kind: str | None = None) -> list:
    experiment = client.get_experiment_by_name(name)
    assert experiment is not None, f"no experiment {name!r} on the server"
    where = f"tags.`{TAG_KIND}` = '{kind}'" if kind else ""
    return client.search_runs([experiment.experiment_id], filter_string=where, max_results=1000)


def _assert_no_credentials(server, outputs: list[str], client, name: str) -> None:
    """The password, and any user:password@host form, appear in no output and in no run's params or tags."""
    for text in outputs:
        assert server.password not in text
        assert not CREDENTIALS_IN_URL.search(text), CREDENTIALS_IN_URL.search(text)[0]
    runs = _runs(client, name)
    assert runs
    for run in runs:
        recorded = [*run.data.params.values(), *run.data.tags.values()]
        assert not [value for value in recorded if server.password in value], run.info.run_id
    for version in client.search_model_versions(f"name = '{name}'"):
        assert server.password not in json.dumps([version.source, version.tags, version.description or ""])


def test_the_server_refuses_anonymous_requests(tracking_server):
    """Basic auth is really on, so the credential tests below are not vacuous."""
    url = f"{tracking_server.uri}/api/2.0/mlflow/experiments/search?max_results=1"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 401


def test_pipeline_show_predict_and_registry_over_http(server_store, tracking_server, server_client, tfds_dir):
    import mlflow
    import tensorflow_datasets as tfds

    import components.datasets  # noqa: F401  (registers the digits builder with TFDS)

    name = "digits_server"
    run = server_store.cli("run", *SMALL, "--set", f"pipeline.name={name}")
    assert run.returncode == 0, run.stderr[-4000:]
    client = server_client

    # MLflow's artifacts went through the server into its destination, not into a local folder.
    experiment = client.get_experiment_by_name(name)
    assert experiment.artifact_location.startswith("mlflow-artifacts:"), experiment.artifact_location
    assert any(path.is_file() for path in tracking_server.artifacts.rglob("*"))
    assert not (server_store.root / "artifacts").exists()

    (parent,) = _runs(client, name, "pipeline")
    assert parent.info.status == "FINISHED"
    stages = {r.data.tags[TAG_STAGE]: r for r in _runs(client, name, "stage")}
    assert set(stages) == set(STAGES)
    assert all(r.info.status == "FINISHED" for r in stages.values())
    trials = _runs(client, name, "trial")
    assert len(trials) == 2 and all(t.info.status == "FINISHED" for t in trials)

    show = server_store.cli("show", "--name", name, "--json")
    assert show.returncode == 0, show.stderr[-3000:]
    summary = json.loads(show.stdout)
    assert summary["run_id"] == parent.info.run_id and summary["status"] == "FINISHED"
    assert [row["stage"] for row in summary["stages"]] == list(STAGES)
    assert "accuracy" in summary["metrics"]
    assert summary["blessing"]["blessed"] and summary["push"].get("pushed"), (summary["blessing"], summary["push"])

    # The registry: the champion alias, and the model behind it loadable over HTTP in this process.
    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.run_id in {r.info.run_id for r in stages.values()} | {parent.info.run_id}
    model = mlflow.keras.load_model(f"models:/{name}@champion")
    images, _ = tfds.as_numpy(tfds.load("digits", split="test[:8]", data_dir=str(tfds_dir), as_supervised=True,
                                        batch_size=-1))
    local = model.predict(images, verbose=0)

    predict = server_store.cli("predict", "--name", name, "--json", "--top", "10", json.dumps(images.tolist()))
    assert predict.returncode == 0, predict.stderr[-3000:]
    predicted = json.loads(predict.stdout)
    assert [p["top"][0]["index"] for p in predicted] == local.argmax(axis=1).tolist()
    by_index = [{t["index"]: t["probability"] for t in p["top"]} for p in predicted]
    assert np.allclose([[row[i] for i in range(local.shape[1])] for row in by_index], local, atol=1e-5)

    # The same command again finds every stage cached on the server. This time the credentials ride in the
    # URI (user:password@host): the pipeline hands them to MLflow's variables and names the server without them.
    netloc = f"{tracking_server.username}:{tracking_server.password}@{urlsplit(tracking_server.uri).netloc}"
    in_uri = {"MLFLOW_TRACKING_URI": f"http://{netloc}", "MLFLOW_TRACKING_USERNAME": "",
              "MLFLOW_TRACKING_PASSWORD": ""}
    again = server_store.cli("run", *SMALL[:-1], "--set", f"pipeline.name={name}", extra_env=in_uri)
    assert again.returncode == 0, again.stderr[-4000:]
    assert f"({tracking_server.uri})" in again.stdout + again.stderr  # the run's header names the store
    (latest, _) = sorted(_runs(client, name, "pipeline"), key=lambda r: -r.info.start_time)
    cached = [r for r in _runs(client, name, "stage") if r.data.tags.get("mlflow.parentRunId") == latest.info.run_id]
    assert len(cached) == len(STAGES) and all(r.data.tags.get(TAG_CACHED) == "true" for r in cached)

    _assert_no_credentials(tracking_server, [run.stdout, run.stderr, show.stdout, show.stderr, predict.stdout,
                                             predict.stderr, again.stdout, again.stderr], client, name)


def test_credentials_in_the_uri_stay_out_of_errors_when_the_server_is_unreachable(store, loopback_port):
    """MLflow names the URI in its connection errors; credentials written into it must not ride along."""
    password = "not-shown-anywhere"
    unreachable = {"MLFLOW_TRACKING_URI": f"http://someone:{password}@127.0.0.1:{loopback_port}",
                   "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}  # no port listens there: fail at once
    result = store.cli("show", extra_env=unreachable, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"127.0.0.1:{loopback_port}" in output  # the error does name the server it could not reach
    assert password not in output and not CREDENTIALS_IN_URL.search(output)


def test_a_chief_and_two_tuning_workers_share_the_server(server_store, tracking_server, server_client,
                                                         loopback_port):
    """KerasTuner's distributed mode with every process logging to the server: each trial runs once."""
    name = "digits_tuning"
    args = (*SMALL, "--set", f"pipeline.name={name}", "--set", "tune.max_trials=4",
            "--oracle", f"127.0.0.1:{loopback_port}")
    processes = [server_store.popen("tune", *args, "--role", "chief"),
                 *(server_store.popen("tune", *args, "--role", "worker", "--tuner-id", f"tuner{i}") for i in range(2))]
    outputs = outputs_of(processes)
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]

    client = server_client
    (tune,) = [r for r in _runs(client, name, "stage") if r.data.tags[TAG_STAGE] == "tune"]
    assert tune.info.status == "FINISHED"
    trials = [t for t in _runs(client, name, "trial") if t.data.tags.get("mlflow.parentRunId") == tune.info.run_id]
    ids = [t.data.tags["pipeline.trial_id"] for t in trials]
    assert len(ids) == len(set(ids)) == 4  # every trial once: none lost, none trained twice
    assert all(t.info.status == "FINISHED" for t in trials)
    assert {t.data.tags["pipeline.tuner_id"] for t in trials} <= {"tuner0", "tuner1"}
    assert {"best_hyperparameters.json", "trials.csv"} <= {a.path for a in client.list_artifacts(tune.info.run_id)}
    _assert_no_credentials(tracking_server, outputs, client, name)
