"""`grok-tf demo`: synthetic catalogue -> train -> evaluate, in minutes.

Uses the shipped `data_specs/demo.yaml`: the synthetic catalogue is
generated on first use (into `${GROK_CACHE:-~/.cache/grok_tf}`), the small
CNN trunk trains on CPU, and the summary compares every head with chance.
"""

import importlib.resources
import json
import time
from pathlib import Path

from grok_tf.evaluation import evaluate_run
from grok_tf.training import train


def demo_spec_path():
    """The shipped demo spec (`data_specs/demo.yaml`)."""
    return Path(str(importlib.resources.files("grok_tf.data_specs"))) / (
        "demo.yaml"
    )


def run_demo(out, epochs=None, steps_per_epoch=None, verbose="auto"):
    """Trains and evaluates GrokNet on the synthetic catalogue.

    Args:
        out: the run directory.
        epochs: overrides the demo spec (for quick smoke runs).
        steps_per_epoch: overrides the demo spec.
        verbose: Keras `fit` verbosity.

    Returns:
        The evaluation report (see `grok_tf.evaluation.evaluate_run`).

    Example:

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
    report = evaluate_run(out, split="val")
    report["seconds"] = round(time.perf_counter() - start, 1)
    (Path(out) / "evaluation_val.json").write_text(
        json.dumps(report, indent=2, sort_keys=True) + "\n"
    )
    print(summary_table(report))
    return report


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
    skipped = report["corrupt_images"]["skipped"]
    if skipped:
        lines.append(f"{skipped} unreadable images were skipped")
    return "\n".join(lines)
