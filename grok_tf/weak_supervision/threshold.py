"""Distance thresholds of pseudo-labels: precision and coverage.

A crop takes the product of its nearest labelled image when their distance
is at most a threshold. On crops of labelled photos (a val split) each
threshold has a precision (the fraction of accepted crops whose nearest
product is the true one) and a coverage (the fraction of crops accepted):
`precision_coverage` tabulates both, and `threshold_for_precision` picks
the largest threshold whose precision reaches a target.
"""

import numpy as np


def precision_coverage(distances, correct, thresholds):
    """Precision and coverage of accepting `distance <= t`, per threshold.

    Args:
        distances: `[N]` distances of crops to their nearest labelled image.
        correct: `[N]` bools, whether that image's product is the crop's.
        thresholds: the thresholds `t` to tabulate.

    Returns:
        A list of `{"threshold", "accepted", "precision", "coverage"}`
        dicts, one per threshold; `precision` is None where nothing is
        accepted.

    Example:

    >>> rows = precision_coverage([0.1, 0.2, 0.4], [True, False, True],
    ...                           [0.15, 0.3, 0.5])
    >>> [(r["accepted"], r["precision"], round(r["coverage"], 3))
    ...  for r in rows]
    [(1, 1.0, 0.333), (2, 0.5, 0.667), (3, 0.667, 1.0)]
    """
    distances = np.asarray(distances, np.float64)
    correct = np.asarray(correct, bool)
    rows = []
    for threshold in thresholds:
        accepted = distances <= threshold
        count = int(accepted.sum())
        precision = float(correct[accepted].mean()) if count else None
        rows.append(
            {
                "threshold": float(threshold),
                "accepted": count,
                "precision": None if precision is None else round(precision, 3),
                "coverage": count / max(len(distances), 1),
            }
        )
    return rows


def threshold_for_precision(distances, correct, precision):
    """The largest distance threshold whose accepted crops reach `precision`.

    Crops are accepted when their distance is at most the threshold; the
    threshold is one of the crops' distances (all crops at that distance
    are accepted together), the largest at which the precision of the
    accepted crops is still at least `precision`.

    Args:
        distances: `[N]` distances of labelled crops to their nearest
            labelled image.
        correct: `[N]` bools, whether that image's product is the crop's.
        precision: the target precision, in (0, 1].

    Returns:
        `(threshold, reached)`: the threshold and the precision it gives.

    Raises:
        ValueError: there is no crop, or no threshold reaches `precision`
            (the message gives the best precision measured).

    Example:

    >>> threshold_for_precision([0.1, 0.2, 0.3, 0.4],
    ...                         [True, True, False, True], 0.75)
    (0.4, 0.75)
    >>> threshold_for_precision([0.1, 0.2, 0.3, 0.4],
    ...                         [True, True, False, True], 0.9)
    (0.2, 1.0)
    """
    distances = np.asarray(distances, np.float64)
    correct = np.asarray(correct, bool)
    if not len(distances):
        raise ValueError("no labelled crop to choose a threshold from")
    order = np.argsort(distances, kind="stable")
    distances, correct = distances[order], correct[order]
    # Only the last crop of a run of equal distances is a valid cut.
    last = np.append(distances[1:] != distances[:-1], True)
    cumulative = np.cumsum(correct) / np.arange(1, len(correct) + 1)
    reaching = np.flatnonzero(last & (cumulative >= precision - 1e-12))
    if not len(reaching):
        best = float(cumulative[last].max())
        raise ValueError(
            f"no distance threshold reaches precision {precision} on "
            f"{len(distances)} labelled crops (best {best:.3f})"
        )
    cut = reaching[-1]
    return float(distances[cut]), round(float(cumulative[cut]), 6)
