"""Distribution strategies: N replicas on one machine, GPUs or CPU devices.

`replica_strategy(n)` returns a `MirroredStrategy` over `n` devices: the
machine's GPUs when there are enough, else `n` logical CPU devices (which
must be configured before TensorFlow initialises its runtime: the CLI calls
this before building anything). With `n == 1` it returns the default
strategy.
"""

import functools

import tensorflow as tf


def replica_strategy(replicas):
    """A strategy with `replicas` replicas on this machine.

    Args:
        replicas: number of replicas (>= 1).

    Returns:
        `tf.distribute.get_strategy()` for 1, else a `MirroredStrategy`.

    Raises:
        RuntimeError: when logical CPU devices are needed but TensorFlow was
            already initialised with fewer.

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
        raise RuntimeError(
            f"cannot create {count} logical CPU devices: TensorFlow is "
            "already initialised. Ask for the replicas before building any "
            "model or tensor (grok-tf train --replicas does)."
        ) from error
