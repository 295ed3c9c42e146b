"""Hash retrieval quality: float vs Catalyzer vs ITQ vs LSH on val.

    GROK_DATA=/work/shared/datasets python benchmarks/hash_quality.py \\
        --run RUN [--run RUN2 ...] [--views K] [--seeds N] [--reuse]
        [--json hash_quality.json]

For each trained run: `grok_tf.compression.compress_run` with the
package's defaults (every registered hasher, 256 bits, fitted on the train
split), which also measures retrieval on the val split with every hasher
(`validation_report`, the numbers `grok-tf evaluate --split val` reports);
then one table per id head and search (photo -> photo, and photo ->
catalogue where the dataset has one): Recall@1/5/10 and mAP@R of the float
embedding and of each hasher's codes, the Catalyzer minus ITQ, and the
hasher `best_hasher` picks. With `--seeds N`, the Catalyzer and ITQ are
also fitted with each of N seeds (the Catalyzer of seed s starts from ITQ
of seed s) and the benchmark prints the mean, min and max of their paired
differences and ITQ's own spread over seeds: one seed's comparison can be
luck. Compress seconds are the wall time of the whole
`compress_run` (embedding the train split, fitting, measuring val) and of
each hasher's fit. `--views K` passes `compress_run(views=K)`: the
Catalyzer also learns from K random training views of each photo (run it
with 0 and with K to compare). `--reuse` takes a run's existing `hashes/`
when it has a val measure made with those views instead of compressing
again (seconds then as recorded).

Example output (grocery, photo -> photo, abridged):

    representation  recall@1  recall@5  recall@10  map@r
    float             0.8986    0.9628     0.9797  0.7328
    catalyzer         ...
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from grok_tf.compression.compress import DEFAULT_VIEWS
from grok_tf.compression.compress import SUMMARY
from grok_tf.compression.compress import best_hasher
from grok_tf.compression.compress import compress_run
from grok_tf.compression.compress import fit_hashers
from grok_tf.compression.compress import product_ids
from grok_tf.compression.hashers import hasher_class
from grok_tf.evaluation.evaluate import retrieval_report
from grok_tf.inference import predict
from grok_tf.inference import predict_split
from grok_tf.inference import read_splits
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import HASHES
from grok_tf.run_dir import load_run

MEASURES = ("recall@1", "recall@5", "recall@10", "map@r")
ROWS = ("float", "catalyzer", "itq", "lsh")


def compressed(run, reuse, views=None):
    """The run's compression summary (compressing it unless `reuse`) and the
    wall seconds of `compress_run` (None when reused)."""
    path = Path(run) / HASHES / SUMMARY
    wanted = DEFAULT_VIEWS if views is None else views
    if reuse and path.exists():
        summary = json.loads(path.read_text())
        if summary.get("validation") and summary.get("views", 0) == wanted:
            return summary, None
    start = time.perf_counter()
    summary = compress_run(run, verbose=0, views=views)
    return summary, round(time.perf_counter() - start, 1)


def tables(retrieval):
    """`{head: {search: {row: {measure: value}}}}` with a `catalyzer - itq`
    row, from a val retrieval report (`retrieval_report`)."""
    out = {}
    for head, entry in retrieval.items():
        if "same_as" in entry:
            continue
        for search, results in entry.items():
            if search == "bytes_per_item":
                continue
            rows = {
                row: {m: results[row][m] for m in MEASURES}
                for row in ROWS
                if row in results
            }
            if "catalyzer" in rows and "itq" in rows:
                rows["catalyzer - itq"] = {
                    m: rows["catalyzer"][m] - rows["itq"][m] for m in MEASURES
                }
            out.setdefault(head, {})[search] = rows
    return out


def seed_sweep(run, seeds, summary):
    """Catalyzer and ITQ fitted with each seed in `range(seeds)` on the
    embeddings of the split `compress_run` fitted on (package defaults, no
    views), measured on its val split, at its bits (all from `summary`):
    one `tables` per seed. The Catalyzer of seed s starts from ITQ's hash
    of seed s, so each `catalyzer - itq` row is paired."""
    spec, model = load_run(run)
    splits = read_splits(spec, summary["split"])
    outputs, labels, _, _ = predict(spec, model, splits)
    embeddings = outputs["embedding"]
    ids = product_ids(spec, labels, len(embeddings))
    val_split = summary["validation"]["split"]
    val_outputs, val_labels, _, _ = predict_split(spec, model, val_split)
    per_seed = []
    for seed in range(seeds):
        unfitted = {
            name: hasher_class(name)(bits=summary["bits"], seed=seed)
            for name in ("catalyzer", "itq")
        }
        fitted, _, _ = fit_hashers(unfitted, embeddings, ids)
        report = retrieval_report(
            spec, model, val_outputs, val_labels, hashers=fitted
        )
        per_seed.append(tables(report))
    return per_seed


def print_sweep(per_seed):
    print(
        f"\nover hasher seeds 0..{len(per_seed) - 1} (Catalyzer of seed s "
        "from ITQ of seed s):"
    )
    lines = {
        "itq mean": ("itq", np.mean),
        "itq spread (max - min)": ("itq", np.ptp),
        "catalyzer mean": ("catalyzer", np.mean),
        "catalyzer - itq mean": ("catalyzer - itq", np.mean),
        "catalyzer - itq min": ("catalyzer - itq", np.min),
        "catalyzer - itq max": ("catalyzer - itq", np.max),
    }
    for head, searches in per_seed[0].items():
        for search in searches:
            print(f"\n{head} / {search}")
            print(f"{'':<28}" + "".join(f"{m:>11}" for m in MEASURES))
            for label, (row, reduce) in lines.items():
                values = [
                    [table[head][search][row][m] for table in per_seed]
                    for m in MEASURES
                ]
                cells = "".join(f"{float(reduce(v)):>11.4f}" for v in values)
                print(f"{label:<28}{cells}")


def print_run(run, summary, seconds, table):
    print(
        f"\n== {run}  (val: {summary['validation']['split']}, train "
        f"embeddings: {summary['images']}, views: {summary.get('views', 0)}"
        f", {summary['bits']} bits)"
    )
    wall = "reused" if seconds is None else f"{seconds} s"
    fits = ", ".join(f"{k} {v} s" for k, v in summary["seconds"].items())
    print(f"compress: {wall} in all; fits: {fits}")
    for head, searches in table.items():
        for search, rows in searches.items():
            print(f"\n{head} / {search}")
            print(
                f"{'representation':<16}"
                + "".join(f"{m:>11}" for m in MEASURES)
            )
            for row, values in rows.items():
                sign = "+" if row == "catalyzer - itq" else ""
                cells = "".join(f"{values[m]:>{sign}11.4f}" for m in MEASURES)
                print(f"{row:<16}{cells}")
    print(
        f"\nbest_hasher: {best_hasher(run)} (scores: "
        f"{summary['validation']['scores']})"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--run",
        action="append",
        required=True,
        help="trained run directory (repeatable)",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a run's hashes when they have a val measure",
    )
    parser.add_argument(
        "--views",
        type=int,
        default=None,
        help="random training views per photo for the Catalyzer "
        f"(compress's default: {DEFAULT_VIEWS})",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="also fit the Catalyzer and ITQ with seeds 0..N-1 and print "
        "their paired differences and ITQ's spread over seeds",
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    results = {}
    for run in args.run:
        summary, seconds = compressed(run, args.reuse, args.views)
        if not summary.get("validation"):
            raise SystemExit(f"{run}: no val split with an id head to measure")
        table = tables(summary["validation"]["retrieval"])
        print_run(run, summary, seconds, table)
        results[run] = {
            "compress_seconds": seconds,
            "fit_seconds": summary["seconds"],
            "train_embeddings": summary["images"],
            "views": summary.get("views", 0),
            "best_hasher": best_hasher(run),
            "scores": summary["validation"]["scores"],
            "val": table,
        }
        if args.seeds > 1:
            per_seed = seed_sweep(run, args.seeds, summary)
            print_sweep(per_seed)
            results[run]["seeds"] = per_seed
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
