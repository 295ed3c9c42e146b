"""Build/query time and memory: 256-bit binary hashes vs 400-d float vectors.

    python benchmarks/binary_index.py [--sizes 100000 1000000]
        [--queries 1000] [--k 10] [--runs 3] [--rounds 2] [--threads N]

Exhaustive (exact) search over random items, as in GrokNet's exact-product
search, three ways:

- binary: `faiss.IndexBinaryFlat(256)`, Hamming distance on uint8 [n, 32];
- HashIndex: the same inside `grok_tf.search.hash_index.HashIndex`, plus its id
  map (ids "sku-0000123", paths "images/0000123.jpg");
- float: `faiss.IndexFlatIP(400)`, inner product of L2-normalised float32
  [n, 400] (cosine similarity).

Each (size, index) runs in a fresh subprocess, so peaks do not mask each
other. Build is the wall time of `add`; query is the median wall time of
`--runs` searches of all `--queries` queries (k nearest), after one warm-up
search, and CPU s the CPU time of all its threads. Each figure is the best
over `--rounds` rounds that interleave the indexes: when another process
shares the CPU, OpenMP threads wait for each other and wall times swing
several-fold. Stored MB is the bytes of the stored codes (`ntotal *
code_size`); peak MB is the rise of the process's peak RSS (`ru_maxrss`)
from after the random items were generated to after the searches: the
index's copy of the codes, the search buffers and, for HashIndex, the id and
path strings.
"""

import argparse
import json
import os
import resource
import statistics
import time

from child_process import measure_in_child

KINDS = ("binary", "HashIndex", "float")
BITS, DIM = 256, 400


def measure(kind, size, queries, k, runs, threads):
    """Runs in the child process; returns the measurements as a dict."""
    import faiss
    import numpy as np

    from grok_tf.search.hash_index import HashIndex

    faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(0)
    if kind == "float":
        items = rng.standard_normal((size, DIM), dtype=np.float32)
        probes = rng.standard_normal((queries, DIM), dtype=np.float32)
        faiss.normalize_L2(items)  # in place: no [size, DIM] temporary
        faiss.normalize_L2(probes)
    else:
        items = rng.integers(0, 256, (size, BITS // 8), dtype=np.uint8)
        probes = rng.integers(0, 256, (queries, BITS // 8), dtype=np.uint8)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    if kind == "HashIndex":
        ids = [f"sku-{i:07d}" for i in range(size)]
        paths = [f"images/{i:07d}.jpg" for i in range(size)]
        start = time.perf_counter()
        store = HashIndex(BITS)
        store.add(items, ids, paths)
        build = time.perf_counter() - start
        del ids, paths
        index = store._index
        search = store.search_arrays
    else:
        start = time.perf_counter()
        index = faiss.IndexBinaryFlat(BITS)
        if kind == "float":
            index = faiss.IndexFlatIP(DIM)
        index.add(items)
        build = time.perf_counter() - start

        def search(probes, k):
            return index.search(probes, k)

    search(probes[:10], k)  # warm-up
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        distances, positions = search(probes, k)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    assert positions.shape == (queries, k) and (positions >= 0).all()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "build_s": build,
        "query_s": statistics.median(wall),
        "query_cpu_s": statistics.median(cpu),
        "stored_mb": index.ntotal * index.code_size / 2**20,
        "peak_mb": (peak - baseline) / 1024,  # ru_maxrss is in KiB
    }


def run_child(kind, size, args):
    """Measures one configuration in a fresh Python process."""
    return measure_in_child(
        __file__,
        [
            kind,
            str(size),
            f"--queries={args.queries}",
            f"--k={args.k}",
            f"--runs={args.runs}",
            f"--threads={args.threads}",
        ],
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[100_000, 1_000_000]
    )
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, size = args.child[0], int(args.child[1])
        result = measure(
            kind, size, args.queries, args.k, args.runs, args.threads
        )
        print(json.dumps(result))
        return

    import faiss

    print(
        f"exact k={args.k} search of {args.queries} queries, faiss "
        f"{faiss.__version__}, faiss.omp_set_num_threads({args.threads}); "
        f"query s: best of {args.rounds} rounds of the median of {args.runs} "
        "runs"
    )
    header = (
        f"{'items':>9} {'index':>14} {'build s':>8} {'query s':>8} "
        f"{'CPU s':>7} {'ms/query':>9} {'stored MB':>10} {'peak MB':>8}"
    )
    print(header)
    print("-" * len(header))
    for size in args.sizes:
        results = {}
        for _ in range(args.rounds):
            for kind in KINDS:
                result = run_child(kind, size, args)
                best = results.setdefault(kind, result)
                for key, value in result.items():
                    best[key] = min(best[key], value)
        for kind, r in results.items():
            print(
                f"{size:>9} {kind:>14} {r['build_s']:>8.3f} "
                f"{r['query_s']:>8.3f} {r['query_cpu_s']:>7.3f} "
                f"{1000 * r['query_s'] / args.queries:>9.3f} "
                f"{r['stored_mb']:>10.1f} {r['peak_mb']:>8.1f}"
            )
        f, b = results["float"], results["binary"]
        print(
            f"{size:>9} {'float/binary':>14} "
            f"{f['build_s'] / b['build_s']:>7.1f}x "
            f"{f['query_s'] / b['query_s']:>7.1f}x "
            f"{f['query_cpu_s'] / b['query_cpu_s']:>6.1f}x {'':>9} "
            f"{f['stored_mb'] / b['stored_mb']:>9.1f}x "
            f"{f['peak_mb'] / max(b['peak_mb'], 0.1):>7.1f}x"
        )


if __name__ == "__main__":
    main()
