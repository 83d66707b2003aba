"""Kubeflow Pipelines: `pipeline compile --target kfp`, its YAML, and that YAML run by KFP's local runner.

The structure tests read the compiled YAML (tasks, their dependencies, the image, the
pipeline parameters, Kubeflow's cache off). The run test compiles the default digits
pipeline with a tiny budget, runs it with KFP's subprocess runner (each task a process
of its own, as a pod would be) and finds in MLflow what `pipeline run` records: one
parent run, seven stage runs, the trials under tune, a registered champion; then
`pipeline run` with the same config finds all seven stages cached. KFP's local runner
runs tasks one after another, so the distributed-tuning tasks (a chief and workers that
must run at once) are run here as concurrent processes calling the tasks' code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.names import ALIAS_CHAMPION, STAGES, TAG_CACHED, TAG_FINGERPRINT, TAG_KIND, TAG_STAGE
from pipeline.stages import STAGE_TABLE
from tests.conftest import ROOT, make_store  # the suite's temporary store, for a store shared by this module
from tests.overrides import DIVERGENT

# The default digits pipeline shrunk: a two-trial search, two epochs, a sliver of the data.
SMALL = ("--set", "data.max_examples=400", "--set", "tune.algorithm=random", "--set", "tune.max_trials=2",
         "--set", "tune.max_epochs=2", "--set", 'tune.space.encoder=["mlp"]',
         "--set", "tune.space.units={ values = [16, 32] }", "--set", "tune.space.batch_norm=[true]",
         "--set", "train.epochs=2", "--set", "evaluate.min_accuracy=0")
IMAGE = "registry.example.com/deeplearning-tf:test"
RUN_TIMEOUT_S = 1500


def _compile(store, out: Path, *args: str) -> dict:
    done = store.cli("compile", "--target", "kfp", "--image", IMAGE, "-o", str(out), *args, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return yaml.safe_load(out.read_text())


def _stage_tasks(spec: dict) -> dict:
    """The tasks inside the exit handler: start and the stages."""
    (group,) = [task for task in spec["root"]["dag"]["tasks"].values() if task["taskInfo"]["name"] == "stages"]
    return spec["components"][group["componentRef"]["name"]]["dag"]["tasks"]


def test_compiled_yaml_has_the_stages_their_inputs_one_image_and_no_kfp_cache(store, tmp_path):
    spec = _compile(store, tmp_path / "pipeline.yaml", *SMALL)
    tasks = _stage_tasks(spec)
    assert set(tasks) == {"start", *STAGES}
    for stage in STAGE_TABLE:  # each stage waits for start (the parent run) and for the stages it consumes
        assert set(tasks[stage.name]["dependentTasks"]) == {"start", *stage.inputs}, stage.name
        assert set(tasks[stage.name]["inputs"]["parameters"]) == {"run", *stage.inputs}
    for task in (*tasks.values(), *spec["root"]["dag"]["tasks"].values()):
        assert not task.get("cachingOptions", {}).get("enableCache"), task["taskInfo"]["name"]
    executors = spec["deploymentSpec"]["executors"]
    assert {e["container"]["image"] for e in executors.values()} == {IMAGE}
    assert not [e for e in executors.values() if "pip install" in json.dumps(e["container"])]  # kfp is in the image
    assert set(spec["root"]["inputDefinitions"]["parameters"]) == {"tracking_uri", "store_dir", "no_cache",
                                                                   "from_stage"}
    # The config is compiled in: the TOML file's text and the --set list, read by every task.
    start = tasks["start"]["inputs"]["parameters"]
    assert start["overrides"]["runtimeValue"]["constant"] == list(SMALL[1::2])
    assert "[tune.space]" in start["config_toml"]["runtimeValue"]["constant"]
    # The exit task ends the parent MLflow run whatever happened to the stages.
    finish = spec["root"]["dag"]["tasks"]["finish"]
    assert finish["triggerPolicy"]["strategy"] == "ALL_UPSTREAM_TASKS_COMPLETED"
    assert "taskFinalStatus" in finish["inputs"]["parameters"]["status"]


def test_distributed_tuning_compiles_to_a_chief_and_n_worker_tasks(store, tmp_path):
    spec = _compile(store, tmp_path / "pipeline.yaml", *SMALL, "--tune-workers", "3", "--oracle-port", "8123")
    tasks = _stage_tasks(spec)
    workers = {name: task for name, task in tasks.items() if task["taskInfo"]["name"].startswith("tune-worker")}
    assert "tune" not in tasks and len(workers) == 3
    chief = tasks["tune-chief"]
    assert set(chief["dependentTasks"]) == {"start", "preprocess"}
    assert chief["inputs"]["parameters"]["oracle_port"]["runtimeValue"]["constant"] == 8123
    # Workers start with the chief (they wait for its oracle), not after it; train takes the chief's search.
    for worker in workers.values():
        assert set(worker["dependentTasks"]) == {"start", "preprocess"}
    ids = [w["inputs"]["parameters"]["tuner_id"]["runtimeValue"]["constant"] for w in workers.values()]
    assert sorted(ids) == ["tuner0", "tuner1", "tuner2"]
    assert set(tasks["train"]["dependentTasks"]) == {"start", "preprocess", "tune-chief"}
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {IMAGE}


def test_compile_refuses_workers_without_a_search_and_writes_nothing(store, tmp_path):
    out = tmp_path / "pipeline.yaml"
    done = store.cli("compile", "-o", str(out), "--tune-workers", "2", "--set", "tune.enabled=false", timeout=300)
    assert done.returncode == 2
    assert "tune.enabled = false" in done.stderr
    assert not out.exists()


def _children(client, experiment_id: str, parent_id: str) -> list:
    return client.search_runs([experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                              max_results=1000)


def _structure(client, experiment_id: str, parent) -> dict:
    """What a pipeline run recorded: each stage's status, fingerprint, cached flag and trial count."""
    stages = {}
    for run in _children(client, experiment_id, parent.info.run_id):
        if run.data.tags.get(TAG_KIND) != "stage":
            continue
        trials = [t for t in _children(client, experiment_id, run.info.run_id) if t.data.tags.get(TAG_KIND) == "trial"]
        stages[run.data.tags[TAG_STAGE]] = {"run_id": run.info.run_id, "status": run.info.status,
                                            "cached": run.data.tags.get(TAG_CACHED),
                                            "fingerprint": run.data.tags[TAG_FINGERPRINT], "trials": len(trials)}
    return stages


def _run_local(store, root: Path, *args: str) -> subprocess.CompletedProcess:
    """Compile with these options and run the YAML with KFP's subprocess runner; the store is given as the
    `tracking_uri` pipeline parameter only (the runner's environment has no MLFLOW_TRACKING_URI)."""
    yaml_path = root / "pipeline.yaml"
    _compile(store, yaml_path, *args)
    env = {k: v for k, v in store.env.items() if k != "MLFLOW_TRACKING_URI"}
    script = ("import sys; from pathlib import Path; from pipeline.kubeflow import run_local; "
              "run_local(Path(sys.argv[1]), Path(sys.argv[2]), tracking_uri=sys.argv[3])")
    return subprocess.run([sys.executable, "-c", script, str(yaml_path), str(root / "kfp-root"), store.uri],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)


@pytest.fixture(scope="module")
def kfp_run(tmp_path_factory, tfds_dir):
    """The small digits pipeline run by KFP's local runner into a fresh store."""
    root = tmp_path_factory.mktemp("kfp")
    store = make_store(root / "store", tfds_dir)
    return store, _run_local(store, root, *SMALL)


@pytest.mark.slow
def test_kfp_local_run_records_what_pipeline_run_records(kfp_run):
    store, done = kfp_run
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    assert "finished with status SUCCESS" in output.replace("\x1b[92m", "").replace("\x1b[0m", "")
    client = store.client()
    experiment = client.get_experiment_by_name("digits")
    (parent,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["pipeline.orchestrator"] == "kfp"
    assert parent.data.params["tune.max_trials"] == "2" and parent.data.params["data.max_examples"] == "400"
    assert parent.data.metrics["stages_cached"] == 0 and "test_accuracy" in parent.data.metrics
    assert parent.data.tags["pipeline.blessed"] == "true"
    assert {"pipeline_graph.png", "pipeline_graph.mmd"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    stages = _structure(client, experiment.experiment_id, parent)
    assert sorted(stages) == sorted(STAGES)
    assert all(s["status"] == "FINISHED" and s["cached"] == "false" for s in stages.values())
    assert stages["tune"]["trials"] == 2
    champion = client.get_model_version_by_alias("digits", ALIAS_CHAMPION)
    assert champion.tags["pipeline.run_id"] == parent.info.run_id
    assert champion.tags["pipeline.train_run_id"] == stages["train"]["run_id"]

    # The same config in-process: same fingerprints, so every stage is reused from the KFP run.
    again = store.cli("run", *SMALL, "-q")
    assert again.returncode == 0, again.stderr[-3000:]
    parents = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                 order_by=["attributes.start_time DESC"])
    assert len(parents) == 2 and "pipeline.orchestrator" not in parents[0].data.tags
    in_process = _structure(client, experiment.experiment_id, parents[0])
    assert {s: v["fingerprint"] for s, v in in_process.items()} == {s: v["fingerprint"] for s, v in stages.items()}
    assert all(v["cached"] == "true" for v in in_process.values())


@pytest.mark.slow
def test_a_failing_stage_fails_the_kfp_run_and_its_parent_run_with_the_error(kfp_run, tmp_path):
    """Train diverges: the later tasks do not run, the exit task still ends the parent FAILED with train's
    error, and the stages the first KFP run made are cached steps of this one."""
    store, done = kfp_run
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    failed = _run_local(store, tmp_path, "--set", "data.max_examples=400", *DIVERGENT[:-1])
    output = failed.stdout + failed.stderr
    assert failed.returncode != 0 and "Inner task failed" in output, output[-4000:]
    client = store.client()
    experiment = client.get_experiment_by_name("digits")
    parent = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{TAG_KIND}` = 'pipeline'",
                                order_by=["attributes.start_time DESC"])[0]
    assert parent.info.status == "FAILED" and "diverged" in parent.data.tags["pipeline.error"]
    assert parent.data.params["model.init_std"] == "10.0"
    assert {"pipeline_graph.png", "pipeline_graph.mmd"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    stages = _structure(client, experiment.experiment_id, parent)
    assert sorted(stages) == ["ingest", "preprocess", "train", "tune", "validate"]  # evaluate and push never ran
    assert all(stages[s]["cached"] == "true" for s in ("ingest", "validate", "preprocess"))
    assert stages["train"]["status"] == "FAILED"


def test_start_refuses_a_tracking_uri_with_a_password(store):
    """Pipeline parameters are shown in the Kubeflow UI: credentials belong in MLflow's variables."""
    settings = {"config_toml": "", "overrides": [], "tracking_uri": "http://alice:s3cret@mlflow.example.com:5000",
                "store_dir": ""}
    process = _task(store, "start", settings, no_cache=False, from_stage="", job="refused")
    output = process.communicate(timeout=300)[0]
    assert process.returncode == 2, output[-3000:]
    assert "MLFLOW_TRACKING_PASSWORD" in output and "s3cret" not in output


_TASK = """
import json, sys
from pipeline import kubeflow_tasks
name, args, kwargs = json.loads(sys.argv[1])
print(json.dumps(getattr(kubeflow_tasks, name)(*args, **kwargs)))
"""


def _task(store, name: str, *args, **kwargs) -> subprocess.Popen:
    """One Kubeflow task's code in a process of its own (what a pod runs), reading the settings KFP would hand it."""
    return subprocess.Popen([sys.executable, "-c", _TASK, json.dumps([name, args, kwargs])], cwd=ROOT, env=store.env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen, timeout: float = 900) -> str:
    try:
        output = process.communicate(timeout=timeout)[0]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output[-4000:]
    return output


@pytest.mark.slow
def test_tune_chief_and_worker_tasks_share_one_search(kfp_run, loopback_port):
    """The chief and two worker tasks at once: the workers find the chief's oracle through MLflow, every trial
    runs once under the parent's tune run; the exit task then ends the parent (here: cancelled after tune)."""
    store, done = kfp_run
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    overrides = [*SMALL[1::2], "tune.max_trials=4"]
    settings = {"config_toml": (ROOT / "pipeline" / "configs" / "digits.toml").read_text(), "overrides": overrides,
                "tracking_uri": "", "store_dir": ""}
    run = json.loads(_finish(_task(store, "start", settings, no_cache=False, from_stage="", job="distributed"))
                     .strip().splitlines()[-1])
    fingerprints = {}
    for stage in ("ingest", "validate", "preprocess"):  # reused from the KFP run's store
        inputs = {name: fingerprints[name] for name in next(s for s in STAGE_TABLE if s.name == stage).inputs}
        fingerprints[stage] = json.loads(_finish(_task(store, "stage", run, stage, inputs)).strip().splitlines()[-1])
    processes = [_task(store, "tune_chief", run, fingerprints["preprocess"], loopback_port),
                 *(_task(store, "tune_worker", run, f"tuner{i}") for i in range(2))]
    outputs = [_finish(process) for process in processes]

    client = store.client()
    experiment = client.get_experiment_by_name("digits")
    parent = client.get_run(run["parent_run_id"])
    stages = {r.data.tags[TAG_STAGE]: r for r in _children(client, experiment.experiment_id, parent.info.run_id)}
    assert sorted(stages) == ["ingest", "preprocess", "tune", "validate"]
    assert all(stages[s].data.tags[TAG_CACHED] == "true" for s in ("ingest", "validate", "preprocess"))
    tune = stages["tune"]
    assert tune.info.status == "FINISHED" and tune.data.tags[TAG_CACHED] == "false"
    assert tune.data.tags["pipeline.tune_chief"].endswith(f":{loopback_port}")
    trials = _children(client, experiment.experiment_id, tune.info.run_id)
    ids = [t.data.tags["pipeline.trial_id"] for t in trials]
    assert len(ids) == len(set(ids)) == 4  # every trial once: none lost, none trained twice
    assert {t.data.tags["pipeline.tuner_id"] for t in trials} <= {"tuner0", "tuner1"}
    assert any("ran" in output and "trials" in output for output in outputs[1:])

    _finish(_task(store, "finish", settings, job="distributed", state="CANCELLED", error="stopped after tune"))
    parent = client.get_run(parent.info.run_id)
    assert parent.info.status == "KILLED"
    assert parent.data.tags["pipeline.error"] == "stopped after tune"
