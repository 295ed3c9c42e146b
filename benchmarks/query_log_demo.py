"""The demo's query head learnt from the search log vs from clean phrases.

    python benchmarks/query_log_demo.py --out runs/query_log_demo \
        [--weighted] [--epochs N] [--steps-per-epoch N]

Trains `data_specs/demo.yaml` twice, everything else equal (seed, steps,
batches, trunk):

- `log`: the spec as shipped: the query head learns from the synthetic
  catalogue's interaction log (`interactions.tsv`: the products' phrases
  as people type them, misspellings and wrong clicks included), through a
  `query_log` feed (`grok_tf.data.query_log`);
- `clean`: the query head fed the clean phrases (list column 4,
  `queries.txt`), what the demo trained on before the log existed;
- with `--weighted`, also `log_weighted`: the log with `weighting:
  interactions`.

Each model's query head is then measured on the validation photos of
`catalog_photos` against the clean phrases: the mAP over the clean phrases
(`queries.txt`), a phrase being the log head's class of the same name (a
phrase the log's thresholds dropped would count AP 0), beside each run's
own `evaluate` mAP (against the labels it trained with, the log's kept
queries for `log`). Also printed: the log's statistics (rows, malformed
rows, pairs, queries kept) and how its labels agree with the clean
phrases (per (product, query) pair). Results go to `OUT/results.json`;
finished runs are reused.
"""

import argparse
import copy
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reused_runs import train_or_reuse  # noqa: E402

from grok_tf.compare import parse_mapping  # noqa: E402
from grok_tf.data.query_log import read_query_log  # noqa: E402
from grok_tf.data.sources import read_split  # noqa: E402
from grok_tf.data.sources import resolve_vocabularies  # noqa: E402
from grok_tf.demo import demo_spec_path  # noqa: E402
from grok_tf.io.atomic_files import write_json  # noqa: E402
from grok_tf.spec.loader import load_spec  # noqa: E402

HEAD = "queries"
DATASET = "catalog_photos"


def variants(raw, weighted):
    """`{run name: spec mapping}`; the demo's `queries` feed varies."""
    (index,) = [
        i for i, d in enumerate(raw["datasets"]) if d["name"] == DATASET
    ]
    feed = raw["datasets"][index]["feeds"][HEAD]
    assert isinstance(feed, dict) and "query_log" in feed, feed
    clean = copy.deepcopy(raw)
    clean["datasets"][index]["feeds"][HEAD] = 4  # list column 4: phrases
    runs = {"log": raw, "clean": clean}
    if weighted:
        heavy = copy.deepcopy(raw)
        heavy["datasets"][index]["feeds"][HEAD]["query_log"]["weighting"] = (
            "interactions"
        )
        runs["log_weighted"] = heavy
    return runs


def clean_phrases(spec, split_name):
    """`(phrases, multi-hot [N, P], product ids [N], refs)` of the clean
    spec's split of `DATASET` (column 4 ids name `queries.txt` lines)."""
    dataset = next(d for d in spec.datasets if d.name == DATASET)
    split = read_split(spec, dataset, split_name)
    phrases = spec.head(HEAD).classes
    ids = split.labels[HEAD]
    hot = np.zeros((len(ids), len(phrases)), np.float32)
    for row, found in enumerate(ids):
        hot[row, found[found >= 0]] = 1.0
    return phrases, hot, split.labels["product"], split.refs


def clean_map(scores, classes, phrases, truth):
    """mAP over the clean phrases with a positive; `(mAP, missing)`, a
    phrase missing from `classes` counting AP 0."""
    from sklearn.metrics import average_precision_score

    column = {name: i for i, name in enumerate(classes)}
    precisions, missing = [], []
    for p, phrase in enumerate(phrases):
        if not truth[:, p].any():
            continue
        if phrase not in column:
            missing.append(phrase)
            precisions.append(0.0)
            continue
        precisions.append(
            average_precision_score(truth[:, p], scores[:, column[phrase]])
        )
    return float(np.mean(precisions)), missing


def measure(folder, phrases, truth, refs):
    """The run's query head on the validation photos of `DATASET`."""
    from grok_tf.inference import predict
    from grok_tf.run_dir import load_run

    spec, model = load_run(folder)
    dataset = next(d for d in spec.datasets if d.name == DATASET)
    split = read_split(spec, dataset, "val")
    assert split.refs == refs, "the runs' validation photos differ"
    outputs, labels, weights, _ = predict(spec, model, [split])
    head = spec.head(HEAD)
    scores = np.asarray(head.kind.probabilities(head, outputs[HEAD]))
    value, missing = clean_map(scores, head.classes, phrases, truth)
    _, own, chance = head.kind.evaluation_metric(
        head, outputs[HEAD], labels[HEAD], weights[HEAD]
    )
    return {
        "classes": head.num_classes,
        "clean_phrase_map": value,
        "clean_phrases_missing": missing,
        "own_label_map": own,
        "own_label_chance": chance,
    }


def log_statistics(spec, phrases, products):
    """The log feed's statistics and its labels vs the clean phrases."""
    dataset = next(d for d in spec.datasets if d.name == DATASET)
    settings = dataset.feeds[HEAD]["query_log"]
    log = read_query_log(settings)
    clean = {}  # product id -> its clean phrases
    for product, found in products.items():
        clean[product] = {phrases[i] for i in found}
    kept = {(q, p) for p, found in log.labels.items() for q, _ in found}
    truth = {(q, p) for p, found in clean.items() for q in found}
    right = len(kept & truth)
    return {
        "file": settings["file"],
        "settings": {k: v for k, v in settings.items() if k != "file"},
        **{k: getattr(log.stats, k) for k in log.stats.__dataclass_fields__},
        "label_precision": right / len(kept),
        "label_recall": right / len(truth),
        "extra_queries": [q for q in log.vocabulary if q not in phrases],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--weighted", action="store_true")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--steps-per-epoch", type=int)
    args = parser.parse_args(argv)

    spec_path, out = demo_spec_path(), Path(args.out)
    raw = yaml.safe_load(load_spec(spec_path).text)
    for key, value in (
        ("epochs", args.epochs),
        ("steps_per_epoch", args.steps_per_epoch),
    ):
        if value is not None:
            raw.setdefault("training", {})[key] = value
    runs = variants(raw, args.weighted)
    specs = {name: parse_mapping(m, spec_path) for name, m in runs.items()}
    clean = resolve_vocabularies(specs["clean"])
    phrases, truth, _, refs = clean_phrases(clean, "val")
    train_split = read_split(  # every product's phrases
        clean, next(d for d in clean.datasets if d.name == DATASET), "train"
    )
    products = {}
    for product, found in zip(
        train_split.labels["product"], train_split.labels[HEAD], strict=True
    ):
        products[int(product)] = found[found >= 0].tolist()
    statistics = log_statistics(specs["log"], phrases, products)
    results = {"log_statistics": statistics, "runs": {}}
    for name, spec in specs.items():
        folder = out / name
        seconds = train_or_reuse(spec, folder, verbose=2)
        results["runs"][name] = {
            "dir": str(folder),
            "training_seconds": seconds,
            **measure(folder, phrases, truth, refs),
        }
    print(
        f"log {statistics['file']}: {statistics['rows']} rows, "
        f"{statistics['malformed']} malformed, {statistics['interactions']} "
        f"interactions, {statistics['queries']} queries, "
        f"{statistics['pairs']} pairs -> {statistics['kept_pairs']} pairs, "
        f"{statistics['kept_queries']} queries kept; labels vs clean "
        f"phrases: precision {statistics['label_precision']:.3f}, recall "
        f"{statistics['label_recall']:.3f}; extra queries "
        f"{statistics['extra_queries']}"
    )
    print(
        f"{'run':<14}{'classes':>8}{'clean mAP':>11}{'own mAP':>9}"
        f"{'chance':>8}{'seconds':>9}"
    )
    for name, run in results["runs"].items():
        seconds = run["training_seconds"]
        print(
            f"{name:<14}{run['classes']:>8}{run['clean_phrase_map']:>11.3f}"
            f"{run['own_label_map']:>9.3f}{run['own_label_chance']:>8.3f}"
            f"{'-' if seconds is None else seconds:>9}"
        )
    write_json(out / "results.json", results)
    print(
        json.dumps(
            {n: r["clean_phrase_map"] for n, r in results["runs"].items()}
        )
    )


if __name__ == "__main__":
    main()
