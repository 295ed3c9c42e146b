"""One vertical of a spec, trained with and without two of GrokNet's choices.

    python benchmarks/vertical_ablations.py --spec data_specs/groknet.yaml \
        --vertical grocery --out runs/groknet_compare [--split val]

Takes the single-task model of one vertical that `grok-tf compare --by
dataset` trains (the dataset, the catalogue datasets `of` it and the heads
they feed: `grok_tf.compare.derive_single_task`) and trains two variants
of it, everything else equal (trunk, steps, images per batch, seed):

- `no_catalogue`: without the catalogue-source datasets, so the product
  ids learn from user photos only (what photo -> catalogue retrieval
  gains from training on catalogue images);
- `average_pooling`: `model.pooling: average` instead of GeM.

The base model is `OUT/single/<vertical>`, the very run `grok-tf compare`
trains there (reused when it is finished; trained here otherwise); the
variants go to `OUT/ablations/<vertical>/<variant>/`. Every run is
evaluated on `--split` (`grok_tf.evaluation.evaluate_run`) and the script
prints per head its metric and, per id head, photo -> photo and photo ->
catalogue Recall@1 and mAP@R of the float embedding, one column per run,
and writes them to `OUT/ablations/<vertical>.json`. A finished run is
reused, an interrupted one resumed.
"""

import argparse
import copy
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import yaml  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reused_runs import train_or_reuse  # noqa: E402

from grok_tf.compare import SINGLE  # noqa: E402
from grok_tf.compare import derive_single_task  # noqa: E402
from grok_tf.compare import parse_mapping  # noqa: E402
from grok_tf.io.atomic_files import write_json  # noqa: E402
from grok_tf.spec.loader import load_spec  # noqa: E402


def variants(raw, vertical):
    """`{run name: spec mapping}`: the vertical's model and its variants."""
    base = derive_single_task(raw, "dataset")[vertical]
    no_catalogue = copy.deepcopy(base)
    no_catalogue["datasets"] = [
        d for d in base["datasets"] if d.get("source") != "catalogue"
    ]
    fed = {h for d in no_catalogue["datasets"] for h in d["feeds"]}
    no_catalogue["heads"] = [h for h in base["heads"] if h["name"] in fed]
    average = copy.deepcopy(base)
    average["model"] = {**(base.get("model") or {}), "pooling": "average"}
    runs = {f"{SINGLE}/{vertical}": base, "average_pooling": average}
    if no_catalogue != base:
        runs["no_catalogue"] = no_catalogue
    return runs


def run_dir(out, vertical, name):
    if name.startswith(f"{SINGLE}/"):
        return out / name
    return out / "ablations" / vertical / name


def measures(report):
    """`{row label: value}` of one evaluation report."""
    rows = {}
    for head, entry in report["heads"].items():
        rows[f"{head} {entry['metric']}"] = entry["value"]
        if "balanced_top1" in entry:
            rows[f"{head} balanced_top1"] = entry["balanced_top1"]
    for head, entry in report["retrieval"].items():
        for search in ("photo_to_photo", "photo_to_catalogue"):
            if search in entry:
                found = entry[search]["float"]
                rows[f"{head} {search} R@1"] = found["recall@1"]
                rows[f"{head} {search} mAP@R"] = found["map@r"]
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True)
    parser.add_argument("--vertical", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--split", default="val")
    args = parser.parse_args(argv)

    from grok_tf.evaluation.evaluate import evaluate_run

    spec_path, out = Path(args.spec), Path(args.out)
    raw = yaml.safe_load(load_spec(spec_path).text)
    runs, results = variants(raw, args.vertical), {}
    for name, mapping in runs.items():
        spec = parse_mapping(mapping, spec_path)
        folder = run_dir(out, args.vertical, name)
        seconds = train_or_reuse(spec, folder)
        report = evaluate_run(folder, split=args.split)
        results[name] = {
            "dir": str(folder),
            "training_seconds": seconds,
            "measures": measures(report),
        }
    labels = list(
        dict.fromkeys(k for r in results.values() for k in r["measures"])
    )
    width = max(map(len, labels))
    print(f"{args.vertical}, {args.split}:")
    print(" " * width + "".join(f"{n[-18:]:>20}" for n in results))
    for label in labels:
        values = [r["measures"].get(label) for r in results.values()]
        cells = "".join(
            f"{'-' if v is None else f'{v:.3f}':>20}" for v in values
        )
        print(f"{label:<{width}}{cells}")
    write_json(
        out / "ablations" / f"{args.vertical}.json",
        {"spec": str(spec_path.resolve()), "split": args.split, **results},
    )
    print(json.dumps({n: r["training_seconds"] for n, r in results.items()}))


if __name__ == "__main__":
    main()
