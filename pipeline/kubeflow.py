"""`pipeline compile --target kfp`: the pipeline as a Kubeflow Pipelines v2 definition (IR YAML).

The YAML holds one task per stage, wired by the stages' inputs (`pipeline/stages.py`): each hands
its artifact's fingerprint to the tasks that consume it. A first task opens the MLflow parent run,
an exit task ends it whatever happened, and every task runs the project's own code
(`pipeline/kubeflow_tasks.py`) in the project's image. The config is compiled in (the TOML file's
text and the --set list, read by each task exactly as `pipeline run` reads them); the MLflow store
is given when the pipeline runs. Kubeflow's own cache is off for every task: the cache is MLflow's,
by fingerprint, so a stage already in the store is a cached step recorded in MLflow, as in-process.
With `--tune-workers N` the tune stage becomes KerasTuner's chief plus N worker tasks.
"""

import re
from pathlib import Path

from kfp import compiler, dsl

from pipeline.config import DEFAULT_CONFIG, ConfigError, load_config
from pipeline.stages import STAGE_TABLE

DEFAULT_IMAGE = "deeplearning-tf:0.1.0"  # what the README's `docker build` tags
ORACLE_PORT = 8000  # the chief's KerasTuner oracle (gRPC), on its pod's address
TARGETS = ("kfp",)


# Lightweight components. KFP copies each function's source into the YAML and runs it with the inputs of
# its task, so each one only imports the project inside the image and hands those inputs on.

def start(config_toml: str, overrides: list, tracking_uri: str, store_dir: str, no_cache: bool,
          from_stage: str, job: str) -> dict:
    """Checks the config and the dataset, then opens the pipeline's parent MLflow run."""
    from pipeline import kubeflow_tasks

    settings = {"config_toml": config_toml, "overrides": overrides, "tracking_uri": tracking_uri,
                "store_dir": store_dir}
    return kubeflow_tasks.start(settings, no_cache=no_cache, from_stage=from_stage, job=job)


def ingest(run: dict) -> str:
    """Streams the configured TFDS splits into sharded records (Examples)."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "ingest", {})


def validate(run: dict, ingest: str) -> str:
    """Statistics, schema and anomalies of the Examples."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "validate", {"ingest": ingest})


def preprocess(run: dict, ingest: str, validate: str) -> str:
    """Keras preprocessing layers built on train; every split transformed once."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "preprocess", {"ingest": ingest, "validate": validate})


def tune(run: dict, preprocess: str) -> str:
    """The KerasTuner search, every trial a nested MLflow run."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "tune", {"preprocess": preprocess})


def tune_chief(run: dict, preprocess: str, oracle_port: int) -> str:
    """The tune stage as KerasTuner's chief: runs the oracle the worker tasks take trials from."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.tune_chief(run, preprocess, oracle_port)


def tune_worker(run: dict, tuner_id: str):
    """A KerasTuner worker: runs trials from the chief's oracle until the search is done."""
    from pipeline import kubeflow_tasks

    kubeflow_tasks.tune_worker(run, tuner_id)


def train(run: dict, preprocess: str, tune: str) -> str:
    """Trains with the best hyperparameters and logs the model."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "train", {"preprocess": preprocess, "tune": tune})


def evaluate(run: dict, train: str, ingest: str) -> str:
    """Test metrics and the blessing against the thresholds and the current champion."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "evaluate", {"train": train, "ingest": ingest})


def push(run: dict, train: str, evaluate: str) -> str:
    """When blessed: registers the model, moves the alias champion, exports a SavedModel."""
    from pipeline import kubeflow_tasks

    return kubeflow_tasks.stage(run, "push", {"train": train, "evaluate": evaluate})


def finish(config_toml: str, overrides: list, tracking_uri: str, store_dir: str, job: str,
           status: dsl.PipelineTaskFinalStatus):
    """Ends the parent MLflow run (summary, status, pipeline picture), whether the stages succeeded or not."""
    from pipeline import kubeflow_tasks

    settings = {"config_toml": config_toml, "overrides": overrides, "tracking_uri": tracking_uri,
                "store_dir": store_dir}
    kubeflow_tasks.finish(settings, job=job, state=status.state, error=status.error_message or "")


_FUNCTIONS = (start, ingest, validate, preprocess, tune, tune_chief, tune_worker, train, evaluate, push, finish)


def build(config_toml: str, overrides: list[str], *, name: str, image: str, tune_workers: int = 0,
          oracle_port: int = ORACLE_PORT):
    """The KFP pipeline function for this config (what kfp's compiler takes)."""
    ops = {function.__name__: dsl.component(function, base_image=image, install_kfp_package=False)
           for function in _FUNCTIONS}

    @dsl.pipeline(name=name, description=f"ingest -> validate -> preprocess -> tune -> train -> evaluate -> push "
                                         f"of '{name}', tracked in MLflow (compiled by `pipeline compile`)")
    def pipeline(tracking_uri: str = "", store_dir: str = "", no_cache: bool = False, from_stage: str = ""):
        compiled = {"config_toml": config_toml, "overrides": list(overrides), "tracking_uri": tracking_uri,
                    "store_dir": store_dir, "job": dsl.PIPELINE_JOB_ID_PLACEHOLDER}
        tasks = [ops["finish"](**compiled)]
        with dsl.ExitHandler(tasks[0], name="stages"):
            begin = ops["start"](**compiled, no_cache=no_cache, from_stage=from_stage)
            tasks.append(begin)
            by_stage = {}
            for stage in STAGE_TABLE:
                inputs = {upstream: by_stage[upstream].output for upstream in stage.inputs}
                if stage.name == "tune" and tune_workers:
                    by_stage["tune"] = ops["tune_chief"](run=begin.output, oracle_port=oracle_port, **inputs)
                    for index in range(tune_workers):
                        worker = ops["tune_worker"](run=begin.output, tuner_id=f"tuner{index}")
                        # Workers start with the chief, not after it: they wait for its oracle.
                        tasks.append(worker.after(by_stage["preprocess"]).set_display_name(f"tune-worker-{index}"))
                else:
                    by_stage[stage.name] = ops[stage.name](run=begin.output, **inputs)
            tasks.extend(by_stage.values())
        for task in tasks:
            task.set_caching_options(enable_caching=False)

    return pipeline


def compile_pipeline(config_path: str | None, overrides: list[str], output: Path, *, image: str = DEFAULT_IMAGE,
                     tune_workers: int = 0, oracle_port: int = ORACLE_PORT) -> Path:
    """Validate the config as `pipeline run` would (exit 2 on an error, nothing written), then write the YAML."""
    config = load_config(config_path, overrides)
    if tune_workers < 0:
        raise ConfigError(f"--tune-workers must be >= 0, got {tune_workers}")
    if tune_workers and not config.tune.enabled:
        raise ConfigError("--tune-workers needs a search, but tune.enabled = false")
    if not 0 < oracle_port < 65536:
        raise ConfigError(f"--oracle-port must be a port number (1-65535), got {oracle_port}")
    if not image.strip():
        raise ConfigError("--image is empty; give the image the project is installed in")
    text = Path(config_path or DEFAULT_CONFIG).read_text()
    # Kubeflow's pipeline names are lower-case letters, digits and dashes.
    name = re.sub(r"[^a-z0-9-]+", "-", config.pipeline.name.lower()).strip("-") or "pipeline"
    output.parent.mkdir(parents=True, exist_ok=True)
    pipeline = build(text, overrides, name=name, image=image, tune_workers=tune_workers, oracle_port=oracle_port)
    compiler.Compiler().compile(pipeline, str(output))
    return output


def run_local(path: Path, pipeline_root: Path, **arguments) -> None:
    """Run a compiled YAML with KFP's local subprocess runner, in this Python (which has the project
    installed), one task after another; raises if a task fails."""
    import warnings

    import kfp.local
    from kfp import components

    # The subprocess runner warns about any image without "python" in its name; here the image is not used.
    warnings.filterwarnings("ignore", message="You may be attemping to run a task", category=RuntimeWarning)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
    components.load_component_from_file(str(path))(**arguments)
