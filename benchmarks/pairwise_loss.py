"""Time and peak memory of the pairwise double-margin loss with its gradient.

    python benchmarks/pairwise_loss.py [--batches 512 2048 8192] [--dim 400]
        [--chunk-size 1024] [--runs 5] [--warmup 2] [--rounds 2]

One device, the global batch as both anchors and references
(N_local = N_global). Modes:

- chunked: `pairwise_double_margin_sums` with `chunk_size` anchors per
  chunk and its hand-written gradient (memory O(chunk * N));
- unchunked: the same with `chunk_size=None` (one [N, N] chunk);
- autodiff: plain autodiff through `pair_terms` on the full matrix, which
  keeps its intermediates for the backward pass (for reference).

Each (batch, mode) runs in a fresh subprocess: ms per forward + backward
(wall clock, and CPU time of all threads) is the median of `--runs` timed
runs after `--warmup` untimed ones, the best over `--rounds` rounds that
interleave the modes (wall times vary when the CPU is shared; CPU times
much less); peak memory is the increase of the process's
peak RSS (`ru_maxrss`) over its value after the inputs were built and the
function traced (on CPU, `tf.config.experimental.get_memory_info("CPU:0")`
reports zeros).
Configurations whose estimated peak exceeds `--max-gb` are skipped.
"""

import argparse
import json
import os
import resource
import statistics
import time

from child_process import measure_in_child

MODES = ("chunked", "unchunked", "autodiff")
# Rough float32 [rows, N] matrices alive at the peak, per mode.
MATRICES = {"chunked": 12, "unchunked": 12, "autodiff": 24}


def estimated_gb(batch, mode, chunk_size):
    rows = min(chunk_size, batch) if mode == "chunked" else batch
    return MATRICES[mode] * rows * batch * 4 / 2**30


def measure(batch, mode, dim, chunk_size, runs, warmup):
    """Runs in the child process; returns the measurements as a dict."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf

    from grok_tf.model.losses.pairwise_double_margin import pair_terms
    from grok_tf.model.losses.pairwise_double_margin import (
        pairwise_double_margin_sums,
    )

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, dim)).astype("float32")
    x = tf.constant(x / np.linalg.norm(x, axis=1, keepdims=True))
    ids = tf.constant(rng.integers(0, max(batch // 4, 1), batch), tf.int32)
    beta = tf.Variable(1.2)

    @tf.function
    def loss_and_gradients(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            if mode == "autodiff":
                loss, _, _ = pair_terms(x, ids, tf.range(batch), x, ids, beta)
                sums = tf.reduce_sum(loss, axis=1)
                counts = tf.reduce_sum(tf.cast(loss > 0, tf.float32), axis=1)
            else:
                sums, counts = pairwise_double_margin_sums(
                    x,
                    ids,
                    x,
                    ids,
                    beta,
                    chunk_size=chunk_size if mode == "chunked" else None,
                )
            total = tf.reduce_sum(sums) / tf.maximum(tf.reduce_sum(counts), 1)
        d_x, d_beta = tape.gradient(total, [x, beta])
        return total, d_x, d_beta

    loss_and_gradients.get_concrete_function(x)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    wall, cpu = [], []
    for run in range(warmup + runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        total, d_x, _ = loss_and_gradients(x)
        total.numpy(), d_x.numpy()
        if run >= warmup:
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "ms": 1000 * statistics.median(wall),
        "cpu_ms": 1000 * statistics.median(cpu),
        "peak_mb": (peak - baseline) / 1024,  # ru_maxrss is in KiB
        "loss": float(total),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--batches", type=int, nargs="+", default=[512, 2048, 8192]
    )
    parser.add_argument("--dim", type=int, default=400)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-gb", type=float, default=16.0)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        batch, mode = int(args.child[0]), args.child[1]
        result = measure(
            batch, mode, args.dim, args.chunk_size, args.runs, args.warmup
        )
        print(json.dumps(result))
        return

    print(
        f"pairwise double-margin loss + gradient, d={args.dim}, chunk "
        f"{args.chunk_size}, one device; ms: best of {args.rounds} rounds "
        f"of the median of {args.runs} runs"
    )
    header = (
        f"{'batch':>6} {'mode':>10} {'ms':>8} {'CPU ms':>8} {'peak MB':>8} "
        f"{'ms/unch.':>8} {'CPU/unch.':>9} {'MB/unch.':>8} {'loss':>8}"
    )
    print(header)
    print("-" * len(header))
    for batch in args.batches:
        results = {}
        # Rounds interleave the modes: the CPU may be shared.
        for _ in range(args.rounds):
            for mode in MODES:
                if estimated_gb(batch, mode, args.chunk_size) > args.max_gb:
                    continue
                result = run_child(batch, mode, args)
                best = results.setdefault(mode, result)
                for key in ("ms", "cpu_ms"):
                    best[key] = min(best[key], result[key])
                best["peak_mb"] = min(best["peak_mb"], result["peak_mb"])
        for mode in MODES:
            if mode not in results:
                print(f"{batch:>6} {mode:>10}  skipped: over {args.max_gb} GB")
        reference = results.get("unchunked")
        for mode, result in results.items():
            ratios = f"{'-':>8} {'-':>9} {'-':>8}"
            if reference:
                ratios = (
                    f"{result['ms'] / reference['ms']:>8.2f} "
                    f"{result['cpu_ms'] / reference['cpu_ms']:>9.2f} "
                    f"{result['peak_mb'] / max(reference['peak_mb'], 1):>8.2f}"
                )
            print(
                f"{batch:>6} {mode:>10} {result['ms']:>8.1f} "
                f"{result['cpu_ms']:>8.1f} {result['peak_mb']:>8.0f} {ratios} "
                f"{result['loss']:>8.5f}"
            )


def run_child(batch, mode, args):
    """Measures one configuration in a fresh Python process."""
    return measure_in_child(
        __file__,
        [
            str(batch),
            mode,
            f"--dim={args.dim}",
            f"--chunk-size={args.chunk_size}",
            f"--runs={args.runs}",
            f"--warmup={args.warmup}",
        ],
    )


if __name__ == "__main__":
    main()
