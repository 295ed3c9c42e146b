"""Per-head metrics of a split: top-1 (plain, balanced), mAP, chance levels.

Head types (`grok_tf.model.heads.HeadType.evaluation_metric`) pick theirs;
every function takes numpy arrays and a per-row weight (0: unlabelled).
"""

import numpy as np
from sklearn.metrics import average_precision_score


def top1_accuracy(logits, labels, weights):
    """Top-1 accuracy over rows with weight > 0 (None when there are none).

    >>> top1_accuracy(np.eye(3), np.array([0, 2, -1]), np.array([1, 1, 0]))
    0.5
    """
    keep = weights > 0
    if not keep.any():
        return None
    return float(np.mean(np.argmax(logits[keep], -1) == labels[keep]))


def balanced_accuracy(logits, labels, weights):
    """Balanced top-1 accuracy: the mean per-class recall of the argmax.

    Over the rows with weight > 0, each class present among their labels
    gets its recall (the fraction of its rows whose argmax is the class);
    the result is the mean of these recalls, every present class counting
    the same however many rows it has. On an unbalanced split (half the
    fashion photos are T-shirts) it shows what plain accuracy hides: always
    answering the majority class scores 1 / (number of present classes).

    Args:
        logits: `[N, C]` class scores (any monotone transform of the
            logits gives the same argmax).
        labels: `[N]` integer class ids (-1 where unknown, weight 0).
        weights: `[N]` row weights; only rows with weight > 0 count.

    Returns:
        A float, or None when no row has weight > 0.

    Example: class 0 has rows 0, 1, 2 (2 of 3 right), class 1 row 3 (right);
    accuracy 3/4, balanced (2/3 + 1) / 2.

    >>> logits = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 0]])
    >>> labels, weights = np.array([0, 0, 0, 1, -1]), np.array([1, 1, 1, 1, 0])
    >>> round(balanced_accuracy(logits, labels, weights), 4)
    0.8333
    """
    keep = weights > 0
    if not keep.any():
        return None
    truth = labels[keep]
    right = np.argmax(logits[keep], -1) == truth
    classes, position = np.unique(truth, return_inverse=True)
    hits = np.bincount(position, weights=right, minlength=len(classes))
    rows = np.bincount(position, minlength=len(classes))
    return float(np.mean(hits / rows))


def mean_average_precision(scores, multi_hot, weights):
    """Macro mAP over classes that have a positive among weighted rows.

    A positive is any label value > 0 (weighted labels count as positives
    whatever their weight).

    >>> y = np.array([[1, 0], [0, 1], [1, 0]])
    >>> s = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    >>> round(mean_average_precision(s, y, np.ones(3)), 4)  # (5/6 + 1/2) / 2
    0.6667
    >>> round(mean_average_precision(s, y * 0.3, np.ones(3)), 4)
    0.6667
    """
    keep = weights > 0
    y, s = multi_hot[keep] > 0, scores[keep]
    present = y.sum(0) > 0
    if not present.any():
        return None
    return float(
        np.mean(
            [
                average_precision_score(y[:, c], s[:, c])
                for c in np.flatnonzero(present)
            ]
        )
    )


def prevalence(multi_hot):
    """Mean frequency of the present classes: the mAP of a random ranking.

    >>> prevalence(np.array([[1, 0, 0], [1, 1, 0]]))
    0.75
    >>> prevalence(np.array([[0.5, 0, 0], [1, 0.2, 0]]))  # any > 0 counts
    0.75
    """
    positive = multi_hot > 0
    present = positive.any(0)
    return float(positive[:, present].mean()) if present.any() else None
