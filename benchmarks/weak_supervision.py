"""Does weak supervision help? Grocery with 30% of its labels.

    python benchmarks/weak_supervision.py --out runs/weak_supervision \
        [--spec data_specs/grocery.yaml] [--labelled 0.3] \
        [--epochs 5 --steps-per-epoch 80] [--detector whole] \
        [--precision 0.9] [--pseudo-images 16 --pseudo-weight 0.5] \
        [--table-detector tflite:../shared/models/ssd_mobilenet_v1]

GrokNet pseudo-labels detected objects of unlabelled photos with the
nearest labelled product (`grok_tf.weak_supervision`). This script
measures it on grocery, whose labels are all known:

1. `labelled`: the spec's training photos are split per product (seeded),
   `--labelled` of each product's photos keep their labels, the rest are
   treated as unlabelled (their labels hidden from training, kept to score
   the pseudo-labels). A model trains on the labelled part only.
2. That model pseudo-labels the unlabelled photos (`pseudo_label`, the
   threshold chosen for `--precision` on val crops).
3. `labelled+pseudo`: the same training with the accepted crops as a
   second dataset (`pseudo_labels` source) of `--pseudo-images` images per
   batch (the labelled dataset gives up as many, so every batch holds the
   same number of images) and loss weight `--pseudo-weight`.
4. `all labels`: the same training on every training photo, labelled.

Every run has the same trunk, schedule and seed, and is evaluated on val:
fine class and product (ArcFace) top-1, photo -> catalogue and photo ->
photo Recall@1. The script also prints the pseudo-labels' precision
against the hidden labels and their coverage, per distance threshold, for
`--detector` and for `--table-detector` (e.g. the SSD-MobileNet of
`../shared/models`), with the crops each detector makes per second.
Finished runs are reused; everything goes under `--out`, and the figures
to `OUT/weak_supervision.json`.
"""

import argparse
import collections
import copy
import csv
import json
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reused_runs import train_or_reuse  # noqa: E402

from grok_tf.compare import parse_mapping  # noqa: E402
from grok_tf.io.atomic_files import write_json  # noqa: E402
from grok_tf.io.text_files import read_list  # noqa: E402
from grok_tf.spec.loader import load_spec  # noqa: E402

THRESHOLDS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)


def split_labels(spec, dataset, fraction, seed, folder):
    """Writes `labelled.txt` (list lines kept) and `unlabelled.txt`
    (absolute paths); returns `{absolute path: product id}` of the
    unlabelled photos (the hidden labels)."""
    source = dataset.root / dataset.splits["train"]
    by_product = collections.defaultdict(list)
    for _, fields in read_list(source):
        by_product[int(fields[1])].append(fields)
    rng = np.random.default_rng(seed)
    labelled, hidden = [], {}
    for product in sorted(by_product):
        rows = by_product[product]
        order = rng.permutation(len(rows))
        keep = max(1, round(fraction * len(rows)))
        for rank, k in enumerate(order):
            if rank < keep:
                labelled.append(", ".join(rows[k]))
            else:
                hidden[str(dataset.root / rows[k][0])] = product
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "labelled.txt").write_text("\n".join(labelled) + "\n")
    (folder / "unlabelled.txt").write_text("\n".join(hidden) + "\n")
    return hidden


def specs(raw, name, splits, pseudo_dir, args):
    """The three spec mappings: labelled, labelled + pseudo, all labels."""
    labelled = copy.deepcopy(raw)
    photos = next(d for d in labelled["datasets"] if d["name"] == name)
    photos["splits"]["train"] = str(splits / "labelled.txt")
    pseudo = copy.deepcopy(labelled)
    photos = next(d for d in pseudo["datasets"] if d["name"] == name)
    photos["images_per_batch"] -= args.pseudo_images
    id_feeds = {
        head: "product"
        for head, column in photos["feeds"].items()
        if column == photos["feeds"][args.head]
    }
    pseudo["datasets"].append(
        {
            "name": "pseudo",
            "source": "pseudo_labels",
            "root": str(pseudo_dir),
            "of": name,
            "images_per_batch": args.pseudo_images,
            "loss_weight": args.pseudo_weight,
            "feeds": id_feeds,
        }
    )
    return {
        "labelled": labelled,
        "labelled+pseudo": pseudo,
        "all labels": copy.deepcopy(raw),
    }


def train_once(mapping, spec_path, folder, args):
    return train_or_reuse(
        parse_mapping(mapping, spec_path),
        folder,
        epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        verbose=2,
    )


def label_photos(run, images, out, detector_text, args):
    """Pseudo-labels (reusing a finished output); returns its report and
    the crops per second of detection + cropping alone."""
    from grok_tf.weak_supervision.crops import cut_crops
    from grok_tf.weak_supervision.detectors import make_detector
    from grok_tf.weak_supervision.pseudo_label import REPORT_FILE
    from grok_tf.weak_supervision.pseudo_label import pseudo_label

    detector = make_detector(detector_text)
    if not (out / REPORT_FILE).exists():
        pseudo_label(
            run, images, out, detector, precision=args.precision, verbose=1
        )
    report = json.loads((out / REPORT_FILE).read_text())
    sample = [line for line in images.read_text().split("\n") if line][:200]
    timing = out.parent / f".{out.name}_timing"
    start = time.perf_counter()
    crops, _ = cut_crops(sample, detector, timing)
    seconds = time.perf_counter() - start
    for crop in crops:
        (timing / crop.file).unlink()
    return report, {
        "photos": len(sample),
        "crops": len(crops),
        "photos_per_second": round(len(sample) / seconds, 1),
        "crops_per_second": round(len(crops) / seconds, 1),
    }


def pseudo_label_quality(out, hidden, threshold):
    """Precision against the hidden labels and coverage, per threshold."""
    with open(out / "pseudo_labels.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["distance"]]
    truth = np.array([hidden[r["source"]] for r in rows])
    guess = np.array([int(r["product_id"]) for r in rows])
    distance = np.array([float(r["distance"]) for r in rows])
    sources = np.array([r["source"] for r in rows])
    table = []
    for t in sorted({*THRESHOLDS, threshold}):
        kept = distance <= t
        table.append(
            {
                "threshold": round(t, 4),
                "chosen": math.isclose(t, threshold),
                "crops_accepted": int(kept.sum()),
                "precision": round(float((guess == truth)[kept].mean()), 3)
                if kept.any()
                else None,
                "crop_coverage": round(float(kept.mean()), 3),
                "photo_coverage": round(
                    len(set(sources[kept])) / len(hidden), 3
                ),
            }
        )
    return table


def measures(report, heads):
    rows = {}
    for head in heads:
        rows[f"{head} top-1"] = report["heads"][head]["value"]
    for head, entry in report["retrieval"].items():
        for search in ("photo_to_catalogue", "photo_to_photo"):
            if search in entry:
                rows[f"{head} {search} R@1"] = entry[search]["float"][
                    "recall@1"
                ]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--spec", default="data_specs/grocery.yaml")
    parser.add_argument("--dataset", default="grocery")
    parser.add_argument("--head", default="product", help="the id head")
    parser.add_argument("--labelled", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps-per-epoch", type=int, default=80)
    parser.add_argument("--detector", default="whole")
    parser.add_argument("--table-detector")
    parser.add_argument("--precision", type=float, default=0.9)
    parser.add_argument("--pseudo-images", type=int, default=16)
    parser.add_argument("--pseudo-weight", type=float, default=0.5)
    args = parser.parse_args(argv)

    from grok_tf.evaluation.evaluate import evaluate_run

    spec_path, out = Path(args.spec), Path(args.out)
    spec = load_spec(spec_path)
    raw = yaml.safe_load(spec.text)
    dataset = next(d for d in spec.datasets if d.name == args.dataset)
    hidden = split_labels(
        spec, dataset, args.labelled, args.seed, out / "splits"
    )
    print(
        f"{len(hidden)} photos unlabelled, "
        f"{(out / 'splits/labelled.txt').read_text().count(chr(10))} "
        "labelled",
        flush=True,
    )
    mappings = specs(raw, args.dataset, out / "splits", out / "pseudo", args)
    results, seconds, detectors = {}, {}, {}
    runs = {name: out / name.replace(" ", "_") for name in mappings}
    seconds["labelled"] = train_once(
        mappings["labelled"], spec_path, runs["labelled"], args
    )
    unlabelled = out / "splits/unlabelled.txt"
    report, speed = label_photos(
        runs["labelled"], unlabelled, out / "pseudo", args.detector, args
    )
    detectors[args.detector] = {
        "report": {k: report[k] for k in ("crops", "accepted", "threshold")},
        "speed": speed,
        "quality": pseudo_label_quality(
            out / "pseudo", hidden, report["threshold"]
        ),
    }
    if args.table_detector:
        other, speed = label_photos(
            runs["labelled"],
            unlabelled,
            out / "pseudo_table_detector",
            args.table_detector,
            args,
        )
        detectors[args.table_detector] = {
            "report": {k: other[k] for k in ("crops", "accepted", "threshold")},
            "speed": speed,
            "quality": pseudo_label_quality(
                out / "pseudo_table_detector", hidden, other["threshold"]
            ),
        }
    for name in ("labelled+pseudo", "all labels"):
        seconds[name] = train_once(mappings[name], spec_path, runs[name], args)
    heads = ["fine_class", args.head]
    for name, folder in runs.items():
        results[name] = measures(evaluate_run(folder, split="val"), heads)

    for detector, entry in detectors.items():
        print(f"\npseudo-labels by {detector} ({entry['speed']}):")
        print(
            f"{'threshold':>10}{'accepted':>10}{'precision':>11}"
            f"{'crops':>8}{'photos':>8}"
        )
        for row in entry["quality"]:
            mark = " <- chosen" if row["chosen"] else ""
            precision = row["precision"]
            print(
                f"{row['threshold']:>10.3f}{row['crops_accepted']:>10}"
                f"{'-' if precision is None else f'{precision:.3f}':>11}"
                f"{row['crop_coverage']:>8.3f}{row['photo_coverage']:>8.3f}"
                f"{mark}"
            )
    labels = list(dict.fromkeys(k for r in results.values() for k in r))
    width = max(map(len, labels))
    print("\nval:" + " " * (width - 4) + "".join(f"{n:>17}" for n in results))
    for label in labels:
        cells = "".join(f"{r[label]:>17.3f}" for r in results.values())
        print(f"{label:<{width}}{cells}")
    write_json(
        out / "weak_supervision.json",
        {
            "args": vars(args),
            "unlabelled_photos": len(hidden),
            "training_seconds": seconds,
            "detectors": detectors,
            "val": results,
        },
    )


if __name__ == "__main__":
    main()
