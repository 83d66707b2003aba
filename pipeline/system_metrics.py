"""System metrics on the stage runs that do the heavy work, from MLflow's own sampler.

CPU, memory, disk and network (and GPU where present) land on a stage run's System metrics tab.
`[tracking]` in the config switches them and sets the interval; it is outside every fingerprint,
since how a run is observed never changes what it computes.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from pipeline import background, console
from pipeline.config import Config

# The stages worth watching on the System metrics tab: the ones that train, search or predict.
SAMPLED_STAGES = ("tune", "train", "evaluate")
PREFIX = "system/"  # MLflow's sampler names its metrics system/cpu_utilization_percentage, ...


@contextmanager
def sampled(config: Config, stage: str, run_id: str, verbose: int) -> Iterator[None]:
    """MLflow's own system-metrics sampler (CPU, memory, disk, network; GPU where present) on a stage run.

    MLflow drops the samples of an unfinished interval when a run ends, so a stage shorter than one
    interval would show an empty System metrics tab: the sample pending at the end and one closing
    sample are logged too. Stopping the sampler (joining its thread, which reads the run once more) and
    those writes take tens of milliseconds against the store; the background writer does them, so the
    stage does not wait. MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL, where set, wins over the config.
    """
    if not config.tracking.system_metrics or stage not in SAMPLED_STAGES:
        yield
        return
    import logging

    try:  # MLflow leaves psutil, which its sampler needs, out of its own dependencies
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor
    except ImportError as exc:
        console.warn(f"{stage}: no system metrics ({exc}); `pip install psutil`, or set tracking.system_metrics=false")
        yield
        return
    # The sampler reports its start and stop (and a missing GPU) at INFO on stderr; that is for --verbose.
    logging.getLogger("mlflow.system_metrics").setLevel(logging.INFO if verbose >= 2 else logging.WARNING)
    monitor = SystemMetricsMonitor(run_id, sampling_interval=config.tracking.system_metrics_interval_s)
    monitor.start()
    try:
        yield
    finally:
        background.submit(_close, monitor).add_done_callback(
            background.warn_on_failure(f"the last system metrics of the {stage} run"))


def _close(monitor) -> None:
    monitor.finish()
    pending = monitor.aggregate_metrics()
    if pending:
        monitor.publish_metrics(pending)
    monitor.collect_metrics()
    monitor.publish_metrics(monitor.aggregate_metrics())
    monitor.mlflow_logger.flush()
