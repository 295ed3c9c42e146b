"""Distribution strategies: N replicas on one machine.

`replica_strategy(n)` returns a `MirroredStrategy` over `n` devices: the
machine's GPUs when there are enough, else `n` logical CPU devices (which
must be configured before TensorFlow initialises its runtime: the CLI calls
this before building anything). With `n == 1` it returns the default
strategy.

`training_strategy(n)` is what `grok-tf train` uses. Several machines
(`MultiWorkerMirroredStrategy`, named by `TF_CONFIG`) are refused with a
clear error until Keras 3's `fit` supports them (keras-team/keras#20585).
"""

import functools
import json
import os

import tensorflow as tf


class DistributionError(RuntimeError):
    """The requested distribution cannot run here; the message says why."""


def cluster_workers():
    """The worker addresses named by `TF_CONFIG` (empty when unset)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    return list(config.get("cluster", {}).get("worker", []))


def training_strategy(replicas=1):
    """The strategy `grok-tf train` uses: `replicas` devices on this machine.

    Call it before any other TensorFlow work (logical CPU devices must exist
    before the runtime starts).

    Raises:
        DistributionError: when `TF_CONFIG` names several workers. Keras 3's
            `fit` does not run under `MultiWorkerMirroredStrategy` yet
            (keras-team/keras#20585); training on one machine instead would
            silently ignore the cluster.
    """
    workers = cluster_workers()
    if len(workers) > 1:
        raise DistributionError(
            f"TF_CONFIG names {len(workers)} workers, but multi-worker "
            "training is not supported yet: Keras 3 model.fit fails under "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585). Unset "
            "TF_CONFIG to train on this machine (--replicas N)."
        )
    return replica_strategy(replicas)


def replica_strategy(replicas):
    """A strategy with `replicas` replicas on this machine.

    Args:
        replicas: number of replicas (>= 1).

    Returns:
        `tf.distribute.get_strategy()` for 1, else a `MirroredStrategy`.

    Raises:
        DistributionError: when logical CPU devices are needed but
            TensorFlow was already initialised with fewer.

    Example:

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
