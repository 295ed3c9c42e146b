"""`grok-tf demo`: the whole GrokNet flow on the synthetic catalogue.

train -> calibrate -> compress -> evaluate -> export -> predict, in a few
minutes on CPU. Uses the shipped `data_specs/demo.yaml`: the synthetic
catalogue is generated on first use (into `${GROK_CACHE:-~/.cache/grok_tf}`)
and the small CNN trunk trains on CPU. The summary compares every head with
chance, shows calibration (ECE before / after) and retrieval with the float
embedding and the 256-bit hashes, then runs the exported SavedModel on two
validation photos.
"""

import importlib.resources
import time
from pathlib import Path

from grok_tf.calibration.calibrate import calibrate_run
from grok_tf.compression.compress import compress_run
from grok_tf.evaluation.evaluate import evaluate_run
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import load_run
from grok_tf.serving.export import export_run
from grok_tf.serving.export import predict_images
from grok_tf.training.fit import train


def demo_spec_path():
    """The shipped demo spec (`data_specs/demo.yaml`)."""
    return Path(str(importlib.resources.files("grok_tf.data_specs"))) / (
        "demo.yaml"
    )


def run_demo(
    out,
    model_dir="saved_models/demo",
    epochs=None,
    steps_per_epoch=None,
    verbose="auto",
):
    """Trains, calibrates, compresses, evaluates, exports and predicts.

    Args:
        out: the run directory.
        model_dir: where the SavedModel versions go.
        epochs: overrides the demo spec (for quick smoke runs).
        steps_per_epoch: overrides the demo spec.
        verbose: Keras `fit` verbosity.

    Returns:
        The evaluation report (see `grok_tf.evaluation.evaluate_run`) with
        `calibration`, `export` and `predictions` added.

    Example (not run: trains for minutes):

    >>> report = run_demo("runs/demo")  # doctest: +SKIP
    """
    start = time.perf_counter()
    train(
        demo_spec_path(),
        out,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        verbose=verbose,
    )
    calibration = calibrate_run(out, split="val")
    compress_run(out, verbose=0)
    report = evaluate_run(out, split="val")
    report["calibration"] = calibration["heads"]
    version = export_run(out, model_dir)
    report["export"] = str(version)
    spec, _ = load_run(out)
    photos = _validation_photos(spec, count=2)
    report["predictions"] = predict_images(model_dir, photos)
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_json(Path(out) / "evaluation_val.json", report)
    print(summary_table(report))
    return report


def _validation_photos(spec, count):
    from grok_tf.data.sources import read_split

    dataset = next(d for d in spec.datasets if "val" in d.splits)
    return read_split(spec, dataset, "val").refs[:count]


def summary_table(report):
    """A few lines comparing each head's metric with chance."""
    lines = [
        f"GrokNet demo: {report['images']} validation images, "
        f"{report.get('seconds', '?')} s",
        f"{'head':<12} {'type':<20} {'metric':<6} {'value':>7} "
        f"{'chance':>7} {'x chance':>8}",
    ]
    for name, head in report["heads"].items():
        value, chance = head["value"], head["chance"]
        ratio = value / chance if value is not None and chance else float("nan")
        lines.append(
            f"{name:<12} {head['type']:<20} {head['metric']:<6} "
            f"{value if value is not None else float('nan'):>7.3f} "
            f"{chance:>7.3f} {ratio:>8.1f}"
        )
    for head, entry in report.get("retrieval", {}).items():
        if "same_as" in entry:
            continue
        lines.append(
            f"{head + ' retrieval':<32} {'R@1':>6} {'R@5':>6} {'mAP@R':>6} "
            f"{'bytes':>6}"
        )
        sizes = entry["bytes_per_item"]
        for search in ("photo_to_photo", "photo_to_catalogue"):
            for name, metrics in entry.get(search, {}).items():
                lines.append(
                    f"  {search + ' ' + name:<30} {metrics['recall@1']:>6.3f} "
                    f"{metrics['recall@5']:>6.3f} {metrics['map@r']:>6.3f} "
                    f"{sizes[name]:>6}"
                )
    for name, entry in report.get("calibration", {}).items():
        ece = entry["ece"]
        lines.append(
            f"{name} calibration ({entry['metric']} ECE, held-out): "
            f"{ece['before']:.3f} -> {ece['after']:.3f}"
        )
    if "export" in report:
        lines.append(f"SavedModel: {report['export']} (grok-tf predict):")
    for prediction in report.get("predictions", []):
        best = ", ".join(
            f"{head} {values[0]['label']} {values[0]['score']:.2f}"
            for head, values in prediction.items()
            if isinstance(values, list) and values
        )
        lines.append(
            f"  {Path(prediction['image']).name}: {best}; "
            f"hash {prediction['hash'][:16]}..."
        )
    skipped = report["corrupt_images"]["skipped"]
    if skipped:
        lines.append(f"{skipped} unreadable images were skipped")
    return "\n".join(lines)
