"""Distribution strategies: N replicas on one machine, or many machines.

`replica_strategy(n)` returns a `MirroredStrategy` over `n` devices: the
machine's GPUs when there are enough, else `n` logical CPU devices (which
must be configured before TensorFlow initialises its runtime: the CLI calls
this before building anything). With `n == 1` it returns the default
strategy.

`training_strategy(n)` is what `grok-tf train` uses: when `TF_CONFIG` names
several workers, TensorFlow's `MultiWorkerMirroredStrategy` (one process
per machine, each started with the same command and its own index),
otherwise `replica_strategy(n)`.

Keras 3's `fit` fails under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585) in two places, both fixed here:

1. the symbolic build reduces a whole nested batch with `strategy.reduce`,
   which that strategy cannot do: `DistributedTrainingModel` builds from
   this worker's first replica's batch instead (only shapes matter);
2. `reduce_per_replica` averages scalar logs over axis 0:
   `_patch_scalar_log_reduction` reduces 0-d values with `axis=None`. The
   patch is installed only when a multi-worker strategy is created and
   changes nothing for other strategies.
"""

import functools
import json
import os

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as _tf_trainer


class DistributionError(RuntimeError):
    """The requested distribution cannot run here; the message says why."""


def cluster_workers():
    """The worker addresses named by `TF_CONFIG` (empty when unset)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return list(config.get("cluster", {}).get("worker", []))


def join_cluster(workers, index):
    """Sets `TF_CONFIG` for worker `index` of `workers` (host:port list)."""
    if not 0 <= index < len(workers):
        raise DistributionError(
            f"worker index {index} is not in 0..{len(workers) - 1}"
        )
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": list(workers)},
            "task": {"type": "worker", "index": index},
        }
    )


def training_strategy(replicas=1):
    """Many workers (`TF_CONFIG`) or `replicas` devices on this machine.

    Call it before any other TensorFlow work: both multi-worker and
    logical-device strategies must exist before the runtime starts.

    Raises:
        DistributionError: for `replicas > 1` with several workers (each
            worker trains one replica, or all of its GPUs).
    """
    if len(cluster_workers()) > 1:
        if replicas > 1:
            raise DistributionError(
                "--replicas is for one machine; with several workers each "
                "worker trains one replica (or all of its GPUs)"
            )
        _patch_scalar_log_reduction()
        return _multi_worker()
    return replica_strategy(replicas)


def is_chief(strategy):
    """Whether this process writes the run (worker 0, or a lone machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0
    )


def worker_index(strategy):
    """This process's worker index (0 on one machine)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver else 0


@keras.saving.register_keras_serializable(package="grok_tf")
class DistributedTrainingModel(keras.Model):
    """A functional model whose `fit` also works on several workers.

    Keras builds a model under a strategy from one distributed batch reduced
    with `strategy.reduce`, which `MultiWorkerMirroredStrategy` refuses for
    a nested batch (keras-team/keras#20585). Only the shapes matter, so this
    builds from this worker's first replica's batch. Used as a functional
    model: `DistributedTrainingModel(inputs, outputs)`.
    """

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if iterator is not None and self._distribute_strategy is not None:
            local = self._distribute_strategy.experimental_local_results
            for _, _, batches in iterator:
                data_batch = tf.nest.map_structure(
                    lambda v: (
                        local(v)[0]
                        if isinstance(v, tf.distribute.DistributedValues)
                        else v
                    ),
                    next(batches),
                )
                break
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )


@functools.cache
def _patch_scalar_log_reduction():
    """Makes Keras average scalar logs across workers with `axis=None`."""
    original = _tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strategy, reduction):
        if reduction not in ("auto", "mean") or not (
            _tf_trainer._collective_all_reduce_multi_worker(strategy)
        ):
            return original(values, strategy, reduction)

        def mean(value):
            if isinstance(value, tf.distribute.DistributedValues):
                rank = strategy.experimental_local_results(value)[0].shape.rank
            elif tf.is_tensor(value):
                rank = value.shape.rank
            else:
                return value
            return strategy.reduce("MEAN", value, axis=None if rank == 0 else 0)

        return keras.tree.map_structure(mean, values)

    _tf_trainer.reduce_per_replica = reduce_per_replica


@functools.cache
def _multi_worker():
    return tf.distribute.MultiWorkerMirroredStrategy()


def replica_strategy(replicas):
    """A strategy with `replicas` replicas on this machine.

    Args:
        replicas: number of replicas (>= 1).

    Returns:
        `tf.distribute.get_strategy()` for 1, else a `MirroredStrategy`.

    Raises:
        DistributionError: when logical CPU devices are needed but
            TensorFlow was already initialised with fewer.

    Example (not run: it would set the process's devices):

    >>> strategy = replica_strategy(2)  # doctest: +SKIP
    >>> strategy.num_replicas_in_sync  # doctest: +SKIP
    2
    """
    if replicas < 1:
        raise ValueError(f"replicas must be >= 1, got {replicas}")
    if replicas == 1:
        return tf.distribute.get_strategy()
    # Physical listings do not initialise the runtime; logical ones do.
    if len(tf.config.list_physical_devices("GPU")) >= replicas:
        return _mirrored(tuple(f"/gpu:{i}" for i in range(replicas)))
    ensure_cpu_devices(replicas)
    cpus = tf.config.list_logical_devices("CPU")[:replicas]
    return _mirrored(tuple(d.name for d in cpus))


@functools.cache
def _mirrored(devices):
    # One strategy per device set and process: two strategies over the same
    # devices reuse collective instance keys and their all-reduces collide.
    return tf.distribute.MirroredStrategy(list(devices))


def ensure_cpu_devices(count):
    """Splits the CPU into at least `count` logical devices if needed."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    configured = tf.config.get_logical_device_configuration(cpu) or []
    if len(configured) >= count:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * count
        )
    except RuntimeError as error:
        raise DistributionError(
            f"cannot create {count} logical CPU devices: TensorFlow is "
            "already initialised. Ask for the replicas before building any "
            "model or tensor (grok-tf train --replicas does)."
        ) from error
