"""Train-step time of the GrokNet model per trunk, XLA on/off, 1 vs 2 replicas.

    python benchmarks/train_step.py [--trunks small_cnn resnet50] [--size 64]

Prints milliseconds per step (median of timed steps after warm-up) for a
batch of the demo spec's shape, and the ratios. Uses synthetic tensors, so
it measures the model and optimizer, not the input pipeline (which is timed
separately on the demo catalogue).
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from grok_tf.training.distribution import ensure_cpu_devices  # noqa: E402

ensure_cpu_devices(2)

import dataclasses  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from grok_tf.data.batch_mixer import training_batches  # noqa: E402
from grok_tf.data.images import CorruptImageLog  # noqa: E402
from grok_tf.data.sources import read_split  # noqa: E402
from grok_tf.data.sources import resolve_vocabularies  # noqa: E402
from grok_tf.demo import demo_spec_path  # noqa: E402
from grok_tf.model.groknet import build_groknet  # noqa: E402
from grok_tf.spec.loader import load_spec  # noqa: E402
from grok_tf.training.distribution import replica_strategy  # noqa: E402
from grok_tf.training.training_model import compile_arguments  # noqa: E402
from grok_tf.training.training_model import training_model  # noqa: E402


def step_ms(spec, replicas, jit, steps):
    strategy = replica_strategy(replicas)
    batch = sum(d.images_per_batch for d in spec.datasets)
    size = spec.model.input_size
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch, size, size, 3)).astype("float32")
    y, w = {}, {}
    for head in spec.heads:
        if head.multilabel:
            y[head.name] = (rng.random((batch, head.num_classes)) < 0.1) * 1.0
        else:
            y[head.name] = rng.integers(0, head.num_classes, batch)
        w[head.name] = np.ones(batch, "float32")
    data = tf.data.Dataset.from_tensors((x, y, w)).repeat()
    with strategy.scope():
        model = training_model(build_groknet(spec), spec)
        model.compile("adam", jit_compile=jit, **compile_arguments(spec))
    times = []

    class Timer(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(
        data,
        steps_per_epoch=steps + 5,
        epochs=1,
        verbose=0,
        callbacks=[Timer()],
    )
    return 1000 * statistics.median(times[5:])


def pipeline_ms(spec, batches=30):
    splits = {d.name: read_split(spec, d, "train") for d in spec.datasets}
    it = iter(training_batches(spec, splits, CorruptImageLog()))
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return 1000 * (time.perf_counter() - start) / batches


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trunks", nargs="+", default=["small_cnn"])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    spec = resolve_vocabularies(load_spec(demo_spec_path()))
    print(
        f"input pipeline (demo catalogue, batch 64): "
        f"{pipeline_ms(spec):.1f} ms/batch"
    )
    print(
        f"{'trunk':<18} {'size':>4} {'xla':>5} {'replicas':>8} {'ms/step':>8}"
    )
    for trunk in args.trunks:
        model = dataclasses.replace(
            spec.model, trunk=trunk, input_size=args.size
        )
        trunk_spec = dataclasses.replace(spec, model=model)
        base = None
        for jit, replicas in ((False, 1), ("auto", 1), (False, 2)):
            ms = step_ms(trunk_spec, replicas, jit, args.steps)
            base = base or ms
            print(
                f"{trunk:<18} {args.size:>4} {str(jit):>5} {replicas:>8} "
                f"{ms:>8.1f}  ({ms / base:.2f}x)"
            )


if __name__ == "__main__":
    main()
