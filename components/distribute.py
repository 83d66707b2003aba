"""How `fit` spreads over devices and machines: `train.distribution`, and TF_CONFIG for multi_worker.

- "none": TensorFlow's default strategy, one device.
- "mirrored": `tf.distribute.MirroredStrategy` over this machine's devices (its GPUs; one CPU otherwise).
- "multi_worker": `tf.distribute.MultiWorkerMirroredStrategy` over the machines the TF_CONFIG environment
  variable names, as TensorFlow defines it, e.g.
  `{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}`.
  The chief (task "chief" 0, or "worker" 0 where the cluster has no chief) runs and records the
  pipeline; every other worker only trains in step with it and records nothing.

Synchronous data parallelism: `train.batch_size` stays the global batch. Every worker reads the same
seeded stream and keeps its own slice of each global batch (tf.data's DATA sharding), gradients are
summed across all replicas at every step, so all workers hold the same weights throughout.

TensorFlow configures collective ops when the strategy is created and refuses once the process has run
anything else ("Collective ops must be configured at program startup"): `join` is called before any
other TensorFlow work of the process, and blocks until every task of the cluster has joined. From then
on the tasks meet at rendezvous points, all-reduces in which each task adds a number for where it is:
where training starts (`rendezvous`) and where each process ends (registered by `join`). So no process
leaves while the others still need it, and a task that ends early (a failed stage, an error) is seen
by the others at their next rendezvous instead of leaving them waiting.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterator

from pipeline.config import ConfigError

TF_CONFIG = "TF_CONFIG"
JOBS = ("chief", "worker")  # the task types a MultiWorkerMirroredStrategy cluster trains with
EXAMPLE = '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}'
_ADDRESS = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")

_TRAINING, _LEAVING = 1.0, 2.0  # what a task adds at a rendezvous: where it is

_joined: Any = None  # this process's MultiWorkerMirroredStrategy, once created
_tasks = 0  # how many tasks the joined cluster has


class ClusterError(RuntimeError):
    """Not every task of the cluster reached the same rendezvous: one of them ended or failed first."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in the TF_CONFIG cluster."""

    task_type: str  # "chief" or "worker"
    index: int  # this task's index within its type
    tasks: int  # how many processes train together (chief and workers)
    chief: str  # the chief's "type:index"

    @property
    def name(self) -> str:
        return f"{self.task_type}:{self.index}"

    @property
    def is_chief(self) -> bool:
        return self.name == self.chief


def tf_config_set() -> bool:
    return bool(os.environ.get(TF_CONFIG, "").strip())


def cluster_from_env(environ: dict[str, str] | None = None) -> Cluster:
    """The cluster TF_CONFIG describes; a ConfigError (exit 2) names what is wrong with it and how to fix it."""
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "").strip()
    fix = f"set it as TensorFlow defines it, e.g. {TF_CONFIG}='{EXAMPLE}'"
    if not text:
        raise ConfigError(f'train.distribution = "multi_worker" needs the {TF_CONFIG} environment variable '
                          f'(the cluster and this process\'s task): {fix}, or set train.distribution = "none"')
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{TF_CONFIG} is not valid JSON ({exc}): {fix}") from None
    if not (isinstance(spec, dict) and isinstance(spec.get("cluster"), dict) and isinstance(spec.get("task"), dict)):
        raise ConfigError(f'{TF_CONFIG} needs a "cluster" object and a "task" object: {fix}')
    cluster, task = spec["cluster"], spec["task"]
    _check_jobs(cluster, fix)
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster:
        raise ConfigError(f'{TF_CONFIG} task type {task_type!r} is not a job of its cluster ({", ".join(cluster)}): '
                          f'set "task": {{"type": ..., "index": ...}} to this process\'s place in the cluster')
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ConfigError(f"{TF_CONFIG} task index {index!r} is not an index of the cluster's {task_type!r} list "
                          f"(0 to {len(cluster[task_type]) - 1}): give each process its own index")
    chief = "chief:0" if "chief" in cluster else "worker:0"
    return Cluster(task_type=task_type, index=index, tasks=sum(len(cluster[job]) for job in cluster), chief=chief)


def _check_jobs(cluster: dict[str, Any], fix: str) -> None:
    others = [job for job in cluster if job not in JOBS]
    if others:
        raise ConfigError(f"{TF_CONFIG} names the job {others[0]!r}: multi_worker training takes only 'chief' "
                          f"(at most one) and 'worker' tasks (no parameter servers or evaluators); {fix}")
    if not cluster:
        raise ConfigError(f"{TF_CONFIG} has an empty cluster: {fix}")
    seen: set[str] = set()
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses:
            raise ConfigError(f'{TF_CONFIG} cluster job {job!r} must be a list of "host:port" addresses: {fix}')
        if job == "chief" and len(addresses) != 1:
            raise ConfigError(f"{TF_CONFIG} has {len(addresses)} chief addresses: a cluster has at most one chief; "
                              "list the others under 'worker'")
        for address in addresses:
            match = _ADDRESS.match(address) if isinstance(address, str) else None
            if match is None or not 0 < int(match.group(2)) < 65536:
                raise ConfigError(f'{TF_CONFIG} cluster address {address!r} of job {job!r} is not "host:port" '
                                  "with a port from 1 to 65535")
            if address in seen:
                raise ConfigError(f"{TF_CONFIG} lists {address!r} twice: every task needs its own host:port")
            seen.add(address)


def join(cluster: Cluster):
    """Create this process's MultiWorkerMirroredStrategy (once), with the Keras workarounds it needs.

    Call it before the process runs anything else in TensorFlow; it returns once every task has joined.
    """
    global _joined, _tasks
    if _joined is None:
        import tensorflow as tf

        from components import keras_fixes

        keras_fixes.apply()
        _joined, _tasks = tf.distribute.MultiWorkerMirroredStrategy(), cluster.tasks
        atexit.register(_leave)
    return _joined


def strategy(distribution: str):
    """The strategy `fit` runs under for `train.distribution`; None for "none" (TensorFlow's default)."""
    if distribution == "none":
        return None
    if distribution == "mirrored":
        import tensorflow as tf

        from components import keras_fixes

        keras_fixes.apply()
        return tf.distribute.MirroredStrategy()
    if distribution == "multi_worker":
        return _joined if _joined is not None else join(cluster_from_env())
    raise ValueError(f"unknown distribution {distribution!r}")


def is_multi_worker(strategy: Any) -> bool:
    return strategy is not None and strategy is _joined


@contextlib.contextmanager
def scope(strategy: Any) -> Iterator[None]:
    """Create variables under `strategy` (mirrored on every replica), or plainly without one."""
    if strategy is None:
        yield
    else:
        with strategy.scope():
            yield


def shard_by_data(dataset):
    """Each worker reads the whole (identically seeded) stream and keeps its slice of every global batch.

    tf.data's default would shard by file, which gives the workers different batches, and fails outright
    when a split has fewer shards than there are workers.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def synchronize_batch_norm(model) -> None:
    """Batch normalization over the global batch (all replicas), as one process would see it.

    Keras 3 keeps each replica's moving statistics apart (aggregation "none"), so with per-replica
    batch statistics every worker would end with moving means and variances of its own. Synchronized,
    the layers normalise with the global batch's moments and update identical moving statistics.
    Keras reads the setting when it traces the step; it is saved in the layer's config, where it does
    nothing outside a strategy.
    """
    import keras

    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
        synchronize_batch_norm(layer)  # layers that hold layers: nested models


def rendezvous(strategy: Any) -> None:
    """Block until every task is ready to train; nothing without multi_worker.

    Called twice per fit on every task: as the chief's train stage begins (the other workers call it
    before they read the chief's artifacts, so they read them only once the chief has sealed them in
    this very run), and again once each task has read its inputs, just before the model is built.
    Raises ClusterError when another task was leaving instead, having ended or failed first.
    """
    if not is_multi_worker(strategy):
        return
    if _all_sum(_TRAINING) != _TRAINING * _tasks:
        raise ClusterError("not every task of the multi_worker cluster reached training: one of them ended or "
                           "failed first (see its output), or they were started with different commands")


def _all_sum(value: float) -> float:
    import tensorflow as tf

    return float(_joined.reduce("SUM", tf.constant(value, tf.float64), axis=None))


def _leave() -> None:
    """At exit: wait for the other tasks, so none leaves while another still trains or records.

    After a failure the collective is already aborted and this returns at once; there is nothing left
    to report then (the failure was), so its error is dropped.
    """
    try:
        _all_sum(_LEAVING)
    except Exception:  # noqa: BLE001  (any TensorFlow error: the process is ending either way)
        pass


def chief_state_callback(strategy: Any, is_chief: bool):
    """A Keras callback: at the start of `fit`, every worker takes the chief's weights, optimizer state and epoch.

    Only the chief backs up the training state. After a restart it restores its backup, and this hands that
    state to the others, so all of them resume at the same epoch with the same weights whatever each
    worker's own disk holds (a replaced machine, a worker killed while the chief was saving). Put it after
    BackupAndRestore: callbacks run in list order, and Keras reads the initial epoch after they have run.
    """
    import keras
    import tensorflow as tf

    def from_chief(value):
        # A sum in which only the chief's term is not zero: the chief's value, on every worker.
        # Integer states go through float64 (exact below 2**53), which every collective implementation sums.
        value = tf.convert_to_tensor(value)
        mine = tf.cast(value, tf.float64) if is_chief else tf.zeros(value.shape, tf.float64)
        return tf.cast(strategy.reduce("SUM", mine, axis=None), value.dtype)

    class ChiefState(keras.callbacks.Callback):
        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            model = self.model
            with strategy.scope():
                for variable in [*model.variables, *(model.optimizer.variables if model.optimizer else [])]:
                    variable.assign(from_chief(variable.value))
            # Where BackupAndRestore leaves the epoch to resume from (a Keras attribute, read after this hook).
            model._initial_epoch = int(from_chief(model._initial_epoch or 0)) or None

    return ChiefState()
