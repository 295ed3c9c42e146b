"""Calibration metrics: reliability bins, expected calibration error, Brier."""

from typing import NamedTuple

import numpy as np

from grok_tf.calibration.table import as_scores
from grok_tf.calibration.table import as_targets


class ReliabilityBins(NamedTuple):
    """Equal-width confidence bins (see `reliability_bins`).

    Attributes:
        edges: `[B + 1]` bin edges, 0 to 1.
        confidence: `[B]` weighted mean predicted probability (NaN if empty).
        accuracy: `[B]` weighted mean target (NaN if empty).
        weight: `[B]` total weight (the count, without weights).
    """

    edges: np.ndarray
    confidence: np.ndarray
    accuracy: np.ndarray
    weight: np.ndarray

    def expected_calibration_error(self):
        """The ECE of these bins (None when they hold no weight)."""
        total = self.weight.sum()
        if total <= 0:
            return None
        full = self.weight > 0
        gaps = np.abs(self.accuracy[full] - self.confidence[full])
        return float(np.sum(self.weight[full] * gaps) / total)


def reliability_bins(
    probabilities,
    targets,
    bins=15,
    weights=None,
    multilabel=False,
    ranking=None,
):
    """Bins (probability, outcome) pairs by probability.

    Top-label (default, softmax heads): one pair per row, the confidence
    `max_c p[i, c]` and whether the target of that argmax class is 1.
    `multilabel=True` (one-vs-rest): one pair `(p[i, c], y[i, c])` per row
    and column, with the row's weight. Bin `b` holds probabilities in
    `(b / B, (b + 1) / B]`, bin 0 also 0 (and anything below), the last bin
    anything above 1.

    Args:
        probabilities: `[N, C]` probabilities.
        targets: `[N, C]` 0/1 targets, or `[N]` integer labels (negative =
            unlabelled, weight 0).
        bins: number of bins `B`. Defaults to 15.
        weights: optional `[N]` row weights.
        multilabel: one-vs-rest pairs instead of top-label.
        ranking: optional `[N, C]` scores that choose each row's top label
            (default: `probabilities`), e.g. to judge calibrated scores on
            the label a server returns when it breaks ties differently.

    Returns:
        `ReliabilityBins`.
    """
    p = as_scores(probabilities)
    y, w = as_targets(targets, p.shape[1], weights)
    if multilabel:
        confidence, outcome = p.ravel(), y.ravel()
        w = np.repeat(w, p.shape[1])
    else:
        top = np.argmax(p if ranking is None else ranking, axis=1)
        confidence = p[np.arange(len(p)), top]
        outcome = y[np.arange(len(p)), top]
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.searchsorted(edges[1:-1], confidence, side="left")
    weight = np.bincount(index, weights=w, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, w * confidence, bins) / weight
        mean_acc = np.bincount(index, w * outcome, bins) / weight
    return ReliabilityBins(edges, mean_conf, mean_acc, weight)


def expected_calibration_error(
    probabilities,
    targets,
    bins=15,
    weights=None,
    multilabel=False,
    ranking=None,
):
    """Expected calibration error over equal-width bins.

    `ECE = sum_b (W_b / W) * |acc_b - conf_b|`, where `W_b` is the weight
    in bin `b`, `conf_b` its weighted mean probability and `acc_b` its
    weighted mean outcome (Guo et al. 2017). Top-label by default (softmax
    heads: confidence = max probability, outcome = the argmax is a correct
    class); `multilabel=True` flattens every (row, column) pair, the
    one-vs-rest ECE of multi-label heads. See `reliability_bins`.

    Args:
        probabilities: `[N, C]` probabilities.
        targets: `[N, C]` 0/1 targets, or `[N]` integer labels.
        bins: number of bins. Defaults to 15.
        weights: optional `[N]` row weights (0 = ignored).
        multilabel: one-vs-rest pairs instead of top-label.
        ranking: optional scores choosing the top label (see
            `reliability_bins`).

    Returns:
        The ECE in [0, 1], or None when no row has weight > 0.

    Example:

    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]])
    >>> round(expected_calibration_error(p, np.array([0, 1, 1]), bins=10), 4)
    0.4

    (One row per bin: gaps |1 - 0.9|, |0 - 0.8|, |1 - 0.7|; (0.1 + 0.8 +
    0.3) / 3 = 0.4.)
    """
    return reliability_bins(
        probabilities, targets, bins, weights, multilabel, ranking
    ).expected_calibration_error()


def brier_score(probabilities, targets, weights=None):
    """Multi-class Brier score (Brier 1950), in [0, 2] for one-hot targets.

    `BS = (1 / W) * sum_i w_i * sum_c (p[i, c] - y[i, c])^2`: summed over
    the columns, averaged over the rows. For one binary column it is the
    usual mean squared error (sklearn's `brier_score_loss`); divide by `C`
    for the mean over (row, column) pairs of a multi-label head.

    Args:
        probabilities: `[N, C]` probabilities.
        targets: `[N, C]` 0/1 targets, or `[N]` integer labels (negative =
            unlabelled, weight 0).
        weights: optional `[N]` row weights.

    Returns:
        The score (lower is better), or None when no row has weight > 0.

    Example:

    >>> p = np.array([[0.9, 0.1], [0.4, 0.6]])
    >>> round(brier_score(p, np.array([0, 0])), 4)
    0.37

    (Rows: 0.1^2 + 0.1^2 = 0.02 and 0.6^2 + 0.6^2 = 0.72; mean 0.37.)
    """
    p = as_scores(probabilities)
    y, w = as_targets(targets, p.shape[1], weights)
    if w.sum() <= 0:
        return None
    return float(np.sum(w * np.sum((p - y) ** 2, axis=1)) / w.sum())
