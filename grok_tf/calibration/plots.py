"""`reliability_diagram`: before-vs-after calibration curves, as a PNG."""

from pathlib import Path

from grok_tf.calibration.metrics import reliability_bins
from grok_tf.io.atomic_files import write_atomically


def reliability_diagram(
    before,
    after,
    targets,
    path,
    title,
    bins=15,
    weights=None,
    multilabel=False,
):
    """Draws before-vs-after calibration curves into one PNG.

    Top panel: the bin accuracy against the bin confidence for both score
    sets, the diagonal of perfect calibration, ECEs in the legend. Bottom
    panel: the weight (count) per bin. Matplotlib's Agg canvas, no display;
    the file is written atomically (temporary file, then `os.replace`).

    Args:
        before: `[N, C]` uncalibrated probabilities.
        after: `[N, C]` calibrated probabilities.
        targets: `[N, C]` 0/1 targets, or `[N]` integer labels.
        path: the PNG to write.
        title: the figure title.
        bins: number of bins. Defaults to 15.
        weights: optional `[N]` row weights.
        multilabel: one-vs-rest pairs instead of top-label (top-label:
            both curves judge the model's label, the argmax of `before`).

    Returns:
        The `Path` written.

    Raises:
        ValueError: when no row has weight > 0.

    Example (not run: writes a PNG file):

    >>> reliability_diagram(p, q, y, "cat.png", "category")  # doctest: +SKIP
    PosixPath('cat.png')
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 7), layout="constrained")
    curves, counts = figure.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    curves.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    width = 0.4 / bins
    for shift, (name, scores) in zip(
        (-width / 2, width / 2),
        (("before", before), ("after", after)),
        strict=True,
    ):
        stats = reliability_bins(
            scores, targets, bins, weights, multilabel, ranking=before
        )
        ece = stats.expected_calibration_error()
        if ece is None:
            raise ValueError("reliability_diagram: no row has weight > 0")
        full = stats.weight > 0
        curves.plot(
            stats.confidence[full],
            stats.accuracy[full],
            "o-",
            label=f"{name} (ECE {ece:.4f})",
        )
        centres = (stats.edges[:-1] + stats.edges[1:]) / 2
        counts.bar(centres + shift, stats.weight, width=width, label=name)
    curves.set(
        xlim=(0, 1),
        ylim=(0, 1),
        ylabel="accuracy (fraction positive)",
        title=title,
    )
    curves.legend(loc="upper left")
    counts.set(xlabel="confidence (predicted probability)", ylabel="count")
    counts.set_yscale("symlog")
    counts.legend(loc="upper left")
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100))
    return Path(path)
