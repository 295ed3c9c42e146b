"""Per-head metrics of a split: top-1 accuracy, mAP and their chance levels.

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


def mean_average_precision(scores, multi_hot, weights):
    """Macro mAP over classes that have a positive among weighted rows.

    >>> y = np.array([[1, 0], [0, 1], [1, 0]])
    >>> s = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    >>> round(mean_average_precision(s, y, np.ones(3)), 4)  # (5/6 + 1/2) / 2
    0.6667
    """
    keep = weights > 0
    y, s = multi_hot[keep], scores[keep]
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
    """
    present = multi_hot.sum(0) > 0
    return float(multi_hot[:, present].mean()) if present.any() else None
