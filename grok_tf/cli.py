"""The `grok-tf` command line.

    grok-tf train --spec SPEC --out RUN_DIR [--epochs N]
                  [--steps-per-epoch N] [--replicas N]
                  [--workers HOST:PORT,... --worker-index I]
    grok-tf evaluate --run RUN_DIR [--split NAME] [--report FILE]
                     [--figures DIR]
    grok-tf compress --run RUN_DIR [--bits 256] [--split train]
    grok-tf index --run RUN_DIR --images LIST_OR_FOLDER --out INDEX_DIR
                  [--hasher catalyzer] [--kind auto|flat|ivf|hnsw]
                  [--nlist N] [--nprobe N] [--M N] [--ef-construction N]
                  [--ef-search N] [--shard-size N]
    grok-tf search --run RUN_DIR --index INDEX_DIR IMAGE... [-k 10]
                   [--hasher catalyzer] [--nprobe N] [--ef-search N]
    grok-tf calibrate --run RUN_DIR [--split val]
    grok-tf export --run RUN_DIR --model-dir saved_models/NAME [--top-k 5]
                   [--hasher catalyzer]
    grok-tf predict --model saved_models/NAME IMAGE...
    grok-tf convert-weights efficientnet_lite0 [--force]
    grok-tf demo [--out DIR] [--model-dir saved_models/demo]
    grok-tf compare --spec SPEC --out DIR [--by dataset|head] [--split val]
                    [--epochs N] [--steps-per-epoch N]
    grok-tf pseudo-label --run RUN_DIR --images LIST_OR_FOLDER --out DIR
                         [--detector whole|tflite:PATH|saved_model:PATH]
                         [--threshold D | --precision P] [--head NAME]
                         [--gallery LIST_OR_FOLDER]
                         [--min-score S] [--classes A,B] [--min-box PX]
                         [--max-boxes N] [--box-padding F]

Heavy imports happen after the arguments are parsed, so `--help` is instant
and `--replicas` can split the CPU into logical devices before TensorFlow
initialises.
"""

import argparse
import json
import os
import sys
from pathlib import Path


def _parser():
    parser = argparse.ArgumentParser(
        prog="grok-tf",
        description="GrokNet in TensorFlow/Keras: train, evaluate, demo.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a model from a spec")
    train.add_argument("--spec", required=True, help="data spec (YAML)")
    train.add_argument("--out", required=True, help="run directory")
    _add_schedule(train)
    train.add_argument(
        "--replicas",
        type=_positive,
        default=1,
        help="MirroredStrategy replicas (logical CPU devices without GPUs)",
    )
    train.add_argument(
        "--workers",
        help="host:port,host:port,... of every worker (sets TF_CONFIG for "
        "MultiWorkerMirroredStrategy); run the same command on each",
    )
    train.add_argument(
        "--worker-index",
        type=int,
        default=0,
        help="this machine's position in --workers (0 writes the run)",
    )

    evaluate = commands.add_parser("evaluate", help="evaluate a run")
    evaluate.add_argument("--run", required=True, help="run directory")
    evaluate.add_argument("--split", default="val", help="split name")
    evaluate.add_argument("--report", help="also write the JSON here")
    evaluate.add_argument(
        "--figures",
        metavar="DIR",
        help="also draw retrieval grids and confusion matrices (PNG) here",
    )

    compress = commands.add_parser(
        "compress",
        help="train the Catalyzer (and LSH / ITQ baselines) that compress "
        "the run's embeddings to binary hashes",
    )
    compress.add_argument("--run", required=True, help="run directory")
    compress.add_argument(
        "--bits", type=_positive, default=256, help="hash length (256)"
    )
    compress.add_argument(
        "--split", default="train", help="split to train on (train)"
    )
    compress.add_argument(
        "--epochs",
        type=_positive,
        default=None,
        help="Catalyzer epochs (its default, 3)",
    )
    compress.add_argument(
        "--views",
        type=_non_negative,
        default=None,
        help="random training views of each image the Catalyzer also "
        "learns from (0)",
    )

    index = commands.add_parser(
        "index", help="hash a list or folder of images into a search index"
    )
    index.add_argument("--run", required=True, help="compressed run directory")
    index.add_argument(
        "--images",
        required=True,
        help="a folder of images, or a file of 'path[, id]' lines",
    )
    index.add_argument("--out", required=True, help="index directory")
    _add_hasher(index)
    index.add_argument(
        "--kind",
        default="auto",
        help="flat (exact), ivf or hnsw (approximate, fast on large "
        "catalogues); auto (default): flat up to 200k images, else ivf",
    )
    index.add_argument(
        "--nlist", type=_positive, help="ivf lists (default ~sqrt(images))"
    )
    index.add_argument("--M", type=_positive, help="hnsw links a node (32)")
    index.add_argument(
        "--ef-construction",
        type=_positive,
        dest="efConstruction",
        help="hnsw build queue (40)",
    )
    index.add_argument(
        "--shard-size",
        type=_positive,
        help="build a sharded index, this many images a shard",
    )
    _add_search_settings(index)

    search = commands.add_parser(
        "search", help="nearest indexed products of images (JSON)"
    )
    search.add_argument("--run", required=True, help="compressed run directory")
    search.add_argument("--index", required=True, help="index directory")
    search.add_argument("images", nargs="+", metavar="IMAGE")
    search.add_argument(
        "-k", type=_positive, default=10, help="results per image (10)"
    )
    _add_hasher(search)
    _add_search_settings(search)

    calibrate = commands.add_parser(
        "calibrate",
        help="fit isotonic calibration of every head on a held-out split",
    )
    calibrate.add_argument("--run", required=True, help="run directory")
    calibrate.add_argument("--split", default="val", help="held-out split")

    export = commands.add_parser(
        "export", help="write the next TF Serving SavedModel version"
    )
    export.add_argument(
        "--run", required=True, help="trained, calibrated, compressed run"
    )
    export.add_argument(
        "--model-dir", required=True, help="e.g. saved_models/NAME"
    )
    export.add_argument(
        "--top-k", type=_positive, default=5, help="labels per head (5)"
    )
    _add_hasher(export)

    predict = commands.add_parser(
        "predict", help="run the newest exported version on images (JSON)"
    )
    predict.add_argument(
        "--model", required=True, help="model dir (saved_models/NAME)"
    )
    predict.add_argument("images", nargs="+", metavar="IMAGE")

    convert = commands.add_parser(
        "convert-weights",
        help="convert and cache pretrained weights (done on first use too)",
    )
    convert.add_argument("trunk", choices=["efficientnet_lite0"])
    convert.add_argument(
        "--force", action="store_true", help="convert again over the cache"
    )

    demo = commands.add_parser(
        "demo",
        help="synthetic catalogue -> train -> calibrate -> compress -> "
        "evaluate -> export -> predict",
    )
    demo.add_argument("--out", default="runs/demo", help="run directory")
    demo.add_argument(
        "--model-dir",
        default="saved_models/demo",
        help="where the SavedModel versions go",
    )
    _add_schedule(demo)

    compare = commands.add_parser(
        "compare",
        help="unified model vs single-task models on the same spec "
        "(GrokNet's claim, on your data)",
    )
    compare.add_argument("--spec", required=True, help="data spec (YAML)")
    compare.add_argument(
        "--out", required=True, help="folder of the runs and the comparison"
    )
    compare.add_argument(
        "--by",
        choices=["dataset", "head"],
        default="dataset",
        help="one single-task model per dataset (default) or per head",
    )
    compare.add_argument("--split", default="val", help="split name (val)")
    _add_schedule(compare)

    label = commands.add_parser(
        "pseudo-label",
        help="product ids for the objects of unlabelled photos, from their "
        "nearest labelled images (weak supervision)",
    )
    label.add_argument("--run", required=True, help="trained run directory")
    label.add_argument(
        "--images", required=True, help="unlabelled photos: folder or list"
    )
    label.add_argument("--out", required=True, help="output folder")
    label.add_argument(
        "--detector",
        default="whole",
        help="whole (the photo itself, default), tflite:PATH (an SSD .tflite "
        "or its folder) or saved_model:PATH (TF Object Detection API)",
    )
    cut = label.add_mutually_exclusive_group()
    cut.add_argument(
        "--threshold",
        type=float,
        help="accept crops at most this cosine distance from their nearest "
        "labelled image",
    )
    cut.add_argument(
        "--precision",
        type=float,
        help="choose the threshold reaching this precision on crops of the "
        "labelled --split (default 0.9)",
    )
    label.add_argument("--split", default="val", help="for --precision (val)")
    label.add_argument("--head", help="id head naming the products (first)")
    label.add_argument(
        "--gallery",
        help="labelled images to compare crops with: a list of `path, "
        "product` lines or a folder of <product>/ folders (default: the "
        "run's training photos and catalogue images)",
    )
    label.add_argument(
        "--min-score", type=float, default=0.3, help="detector score (0.3)"
    )
    label.add_argument(
        "--classes", help="comma-separated detector classes to keep (all)"
    )
    label.add_argument(
        "--min-box", type=int, default=32, help="shorter box side, px (32)"
    )
    label.add_argument(
        "--max-boxes", type=_positive, default=5, help="per photo (5)"
    )
    label.add_argument(
        "--box-padding", type=float, default=0.1, help="per side (0.1)"
    )
    return parser


def _add_schedule(parser):
    parser.add_argument("--epochs", type=_positive, help="override the spec")
    parser.add_argument(
        "--steps-per-epoch", type=_positive, help="override the spec"
    )


def _add_hasher(parser):
    parser.add_argument(
        "--hasher",
        default="catalyzer",
        help="the run's hasher making the codes: catalyzer (default), lsh, "
        "itq or any registered one, or best (the one that measured best on "
        "the val split at compress time)",
    )


def _add_search_settings(parser):
    parser.add_argument(
        "--nprobe",
        type=_positive,
        help="ivf lists scanned a query (default: stored with the index)",
    )
    parser.add_argument(
        "--ef-search",
        type=_positive,
        dest="efSearch",
        help="hnsw search queue (default: stored with the index)",
    )


def _positive(text, least=1):
    value = int(text)
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def _non_negative(text):
    return _positive(text, least=0)


def main(argv=None):
    parser = _parser()
    args = parser.parse_args(argv)
    if getattr(args, "workers", None):
        workers = args.workers.split(",")
        if not 0 <= args.worker_index < len(workers):
            parser.error(f"--worker-index must be in 0..{len(workers) - 1}")
        if args.replicas > 1:
            parser.error("--replicas is for one machine, not with --workers")
    # TensorFlow's C++ log would print a line per broken image decoded
    # ("Premature end of JPEG data") and start-up noise; grok-tf reports
    # what matters itself. TF_CPP_MIN_LOG_LEVEL=0 brings the log back.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from grok_tf.errors import SpecError
    from grok_tf.training.distribution import DistributionError

    try:
        return _run(args)
    except (
        SpecError,
        DistributionError,
        FileNotFoundError,
        FileExistsError,
        ValueError,  # bad input files (image lists, indexes), named
    ) as error:
        print(f"grok-tf: error: {error}", file=sys.stderr)
        return 2


def _run(args):
    if args.command == "train":
        from grok_tf.training.distribution import join_cluster
        from grok_tf.training.fit import train

        if args.workers:
            join_cluster(args.workers.split(","), args.worker_index)
        train(
            args.spec,
            args.out,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
            replicas=args.replicas,
        )
        print(f"grok-tf: model saved to {Path(args.out) / 'model.keras'}")
    elif args.command == "evaluate":
        from grok_tf.evaluation.evaluate import evaluate_run

        # The bar only on a terminal: piped stdout must stay valid JSON.
        report = evaluate_run(
            args.run,
            split=args.split,
            verbose=int(sys.stdout.isatty()),
            figures=args.figures,
        )
        text = json.dumps(report, indent=2, sort_keys=True)
        print(text)
        if args.report:
            from grok_tf.io.atomic_files import write_atomically

            data = (text + "\n").encode()
            write_atomically(args.report, lambda f: f.write(data))
    elif args.command == "compress":
        from grok_tf.compression.compress import compress_run

        summary = compress_run(
            args.run,
            bits=args.bits,
            split=args.split,
            epochs=args.epochs,
            verbose=int(sys.stderr.isatty()),
            views=args.views,
        )
        print(json.dumps(summary, indent=2, sort_keys=True))
    elif args.command == "index":
        from grok_tf.search.product_search import ProductHasher
        from grok_tf.search.product_search import build_index

        hasher = ProductHasher(args.run, args.hasher)
        settings = {
            name: getattr(args, name)
            for name in ("nlist", "nprobe", "M", "efConstruction", "efSearch")
            if getattr(args, name) is not None
        }
        index, skipped = build_index(
            hasher,
            args.images,
            args.out,
            verbose=int(sys.stderr.isatty()),
            kind=args.kind,
            shard_size=args.shard_size,
            **settings,
        )
        for path in skipped:
            print(f"grok-tf: skipped unreadable image {path}", file=sys.stderr)
        print(
            f"grok-tf: indexed {len(index)} images ({len(skipped)} skipped) "
            f"in {args.out}: {json.dumps(index.settings)}"
        )
    elif args.command == "search":
        from grok_tf.search.product_search import ProductHasher
        from grok_tf.search.product_search import search_index
        from grok_tf.search.sharded_index import open_index

        index = open_index(args.index)
        index.tune(nprobe=args.nprobe, efSearch=args.efSearch)
        hasher = ProductHasher(args.run, args.hasher)
        results = search_index(hasher, index, args.images, k=args.k)
        print(json.dumps(results, indent=2))
    elif args.command == "calibrate":
        from grok_tf.calibration.calibrate import calibrate_run

        report = calibrate_run(
            args.run, split=args.split, verbose=int(sys.stderr.isatty())
        )
        print(json.dumps(report, indent=2, sort_keys=True))
    elif args.command == "export":
        from grok_tf.serving.export import export_run

        version = export_run(
            args.run, args.model_dir, top_k=args.top_k, hasher=args.hasher
        )
        print(f"grok-tf: exported {version}")
    elif args.command == "predict":
        from grok_tf.serving.export import predict_images

        print(json.dumps(predict_images(args.model, args.images), indent=2))
    elif args.command == "convert-weights":
        from grok_tf.model.pretrained.efficientnet_lite0 import (
            convert_efficientnet_lite0,
        )

        path = convert_efficientnet_lite0(force=args.force)
        print(f"grok-tf: {args.trunk} ImageNet weights cached at {path}")
    elif args.command == "demo":
        from grok_tf.demo import run_demo

        run_demo(
            args.out,
            args.model_dir,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
        )
    elif args.command == "compare":
        from grok_tf.compare import COMPARE_JSON
        from grok_tf.compare import compare
        from grok_tf.compare import comparison_table

        result = compare(
            args.spec,
            args.out,
            by=args.by,
            split=args.split,
            epochs=args.epochs,
            steps_per_epoch=args.steps_per_epoch,
        )
        print(comparison_table(result))
        print(f"grok-tf: comparison written to {Path(args.out) / COMPARE_JSON}")
    elif args.command == "pseudo-label":
        from grok_tf.weak_supervision.detectors import DetectorOptions
        from grok_tf.weak_supervision.detectors import make_detector
        from grok_tf.weak_supervision.pseudo_label import pseudo_label

        classes = None
        if args.classes is not None:
            classes = tuple(
                c.strip() for c in args.classes.split(",") if c.strip()
            )
            if not classes:
                raise ValueError("--classes: name one or more classes")
        options = DetectorOptions(
            min_score=args.min_score,
            classes=classes,
            min_box_size=args.min_box,
            max_boxes=args.max_boxes,
            padding=args.box_padding,
        )
        report = pseudo_label(
            args.run,
            args.images,
            args.out,
            make_detector(args.detector, options),
            threshold=args.threshold,
            precision=args.precision,
            head=args.head,
            split=args.split,
            gallery=args.gallery,
            verbose=int(sys.stderr.isatty()),
        )
        for path, reason in report["unreadable"]["files"].items():
            print(f"grok-tf: skipped {path}: {reason}", file=sys.stderr)
        print(
            f"grok-tf: {report['images']} photos, {report['crops']} crops, "
            f"{report['accepted']} accepted at distance <= "
            f"{report['threshold']} ({report['threshold_from']}); "
            f"{report['unreadable']['count']} unreadable; written to "
            f"{args.out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
