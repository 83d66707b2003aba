"""Processes that join another process's work: a distributed-tuning worker and a multi_worker training task.

Both plan the same fingerprints as the process they join (same command, config and code), wait for
its artifacts, and do their share; neither seals an artifact of its own.
"""

from __future__ import annotations

import time
from dataclasses import replace

from pipeline import artifacts, console, tracking
from pipeline.config import Config, ConfigError, parse_address
from pipeline.names import STAGES, TAG_FINGERPRINT, TAG_STAGE, TAG_TUNE_CHIEF
from pipeline.quiet import import_tensorflow_quietly
from pipeline.runner import EXIT_FAILED, EXIT_OK, Options, plan


def run_worker(config: Config, options: Options) -> int:
    """A distributed-tuning worker: wait for the chief's search, run trials from its oracle, exit."""
    import mlflow

    from components import tune

    experiment_id = tracking.setup(config.pipeline.name)
    client = mlflow.MlflowClient()
    steps = {step.stage.name: step for step in plan(config, Options(until_stage="tune"), client, experiment_id)}
    if not config.tune.enabled:
        raise ConfigError("tune.enabled = false: there is no search for a worker to join")
    deadline = time.monotonic() + options.wait_s
    console.info(f"worker {options.tuner_id}: waiting for the chief's search (tune fingerprint "
                 f"{steps['tune'].fingerprint})")
    while True:
        preprocess = steps["preprocess"]
        transform = preprocess.store.get("preprocess", preprocess.fingerprint)
        chiefs = client.search_runs(
            [experiment_id], filter_string=(f"tags.`{TAG_FINGERPRINT}` = '{steps['tune'].fingerprint}' and "
                                            f"tags.`{TAG_STAGE}` = 'tune' and attributes.status = 'RUNNING'"))
        chiefs = [run for run in chiefs if TAG_TUNE_CHIEF in run.data.tags]
        if transform is not None and chiefs:
            break
        if time.monotonic() > deadline:
            console.error(f"no chief search with this config started within {options.wait_s:.0f}s; start "
                          "`pipeline tune --role chief` with the same --config/--set first")
            return EXIT_FAILED
        time.sleep(2)
    import_tensorflow_quietly(options.verbose)
    distributed = tune.Distributed("worker", options.tuner_id, *parse_address(options.oracle))
    count = tune.work(transform, config, artifacts.partial_dir(steps["tune"].final),
                      chief_run_id=chiefs[0].info.run_id, distributed=distributed,
                      trial_tags=tracking.process_tags("trial"), verbose=options.verbose)
    console.info(f"worker {options.tuner_id}: ran {count} trials; the chief's search is complete")
    return EXIT_OK


def training_cluster(config: Config, options: Options):
    """This process's place in a multi_worker cluster (from TF_CONFIG) when the run reaches train, else None."""
    if STAGES.index(options.until_stage) < STAGES.index("train"):
        return None
    from components import distribute

    if config.train.distribution == "multi_worker":
        return distribute.cluster_from_env()
    if distribute.tf_config_set():
        console.warn(f"{distribute.TF_CONFIG} is set but train.distribution = {config.train.distribution!r}: this "
                     "process runs the whole pipeline on its own; set train.distribution = \"multi_worker\" to train "
                     "with the cluster it names")
    return None


def run_train_worker(config: Config, options: Options, cluster) -> int:
    """A multi_worker task other than the chief: it trains in step with the chief's train stage and records nothing.

    Started with the chief's command and config (its own TF_CONFIG task), it plans the same fingerprints; when
    the chief will not train (train cached) it ends at once. Otherwise it joins the cluster, waits for the
    chief's train stage, reads the chief's preprocess and tune artifacts from the shared store, fits with the
    chief, and waits for the chief's process to end. It creates no MLflow run and seals no artifact.
    """
    import mlflow

    experiment_id = tracking.setup(config.pipeline.name)
    until_train = replace(options, until_stage="train")
    steps = {step.stage.name: step for step in plan(config, until_train, mlflow.MlflowClient(), experiment_id)}
    if steps["train"].cached is not None:
        console.info(f"{cluster.name}: the train stage is cached ({steps['train'].fingerprint}); nothing to train")
        return EXIT_OK
    console.info(f"{cluster.name}: joining the multi_worker cluster; training starts with the chief's train stage")
    import_tensorflow_quietly(options.verbose)
    from components import distribute, train

    strategy = distribute.join(cluster)
    try:
        distribute.rendezvous(strategy)
        inputs = {name: steps[name].store.get(name, steps[name].fingerprint) for name in ("preprocess", "tune")}
        for name, artifact in inputs.items():
            if artifact is None:
                raise FileNotFoundError(f"the chief's {name} artifact is not at {steps[name].final}: every task needs "
                                        "the chief's store (tracking.artifact_store = \"mlflow\", or PIPELINE_STORE_DIR "
                                        "on a filesystem they share) and the chief's command, config and code")
        result = train.follow(inputs["preprocess"], inputs["tune"], config, verbose=options.verbose)
    except Exception as exc:  # one line here; the chief's output says the rest
        first_line = (str(exc).strip().splitlines() or [""])[0]
        console.error(f"{cluster.name}: training stopped: {type(exc).__name__}: {first_line}")
        return EXIT_FAILED
    console.info(f"{cluster.name}: trained {result['epochs']} epochs in step with the chief "
                 f"(weights sha256 {result['weights_sha256']}); waiting for the chief to finish")
    return EXIT_OK

