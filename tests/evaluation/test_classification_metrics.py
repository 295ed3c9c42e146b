"""Tests of `grok_tf.evaluation.classification_metrics.balanced_accuracy`
against a per-class loop, on hand-made and random unbalanced heads."""

import numpy as np

from grok_tf.evaluation.classification_metrics import balanced_accuracy
from grok_tf.evaluation.classification_metrics import top1_accuracy


def per_class_recall_mean(logits, labels, weights):
    """The definition, one class at a time, in plain Python."""
    rows = [i for i in range(len(labels)) if weights[i] > 0]
    recalls = []
    for c in sorted({int(labels[i]) for i in rows}):
        mine = [i for i in rows if labels[i] == c]
        right = sum(int(np.argmax(logits[i])) == c for i in mine)
        recalls.append(right / len(mine))
    return sum(recalls) / len(recalls)


def test_balanced_accuracy_matches_a_per_class_loop_on_random_heads():
    rng = np.random.default_rng(4)
    for trial in range(20):
        n, classes = 150, 7
        # Unbalanced: class 0 is about half the rows; class 6 never occurs.
        labels = rng.choice(6, n, p=[0.5, 0.2, 0.1, 0.1, 0.05, 0.05])
        logits = rng.normal(size=(n, classes))
        logits[np.arange(n), labels] += rng.uniform(0, 2)  # some signal
        weights = (rng.uniform(size=n) < 0.8).astype("float32")
        labels = np.where(weights > 0, labels, -1)
        want = per_class_recall_mean(logits, labels, weights)
        got = balanced_accuracy(logits, labels, weights)
        assert abs(got - want) < 1e-12, trial


def test_the_majority_class_gets_one_over_the_present_classes():
    # 8 of 10 labelled rows are class 2, one each class 0 and 4; class 1
    # and 3 are absent (not averaged in); always answering 2:
    labels = np.array([2] * 8 + [0, 4, -1])
    weights = np.array([1.0] * 10 + [0.0])
    logits = np.tile(np.eye(5)[2], (11, 1))
    assert top1_accuracy(logits, labels, weights) == 0.8
    assert balanced_accuracy(logits, labels, weights) == 1 / 3


def test_a_perfect_head_is_one_and_no_labelled_row_is_none():
    labels = np.array([0, 1, 1, 2])
    logits = np.eye(3)[labels]
    assert balanced_accuracy(logits, labels, np.ones(4)) == 1.0
    assert balanced_accuracy(logits, labels, np.zeros(4)) is None
