import math

import numpy as np
import pytest
import tensorflow as tf

from grok_tf.model.losses import ArcFaceLoss
from grok_tf.model.losses import MultiLabelArcFaceLoss
from tests.harness import run_loss_test


def numpy_arcface(cos, positives, s, m):
    """The ArcFace loss written out per element, in float64."""
    cos = np.clip(cos.astype(np.float64), -1 + 1e-7, 1 - 1e-7)
    logits = s * cos.copy()
    for b, c in zip(*np.nonzero(positives), strict=True):
        if cos[b, c] > math.cos(math.pi - m):
            logits[b, c] = s * math.cos(math.acos(cos[b, c]) + m)
        else:
            logits[b, c] = s * (cos[b, c] - m * math.sin(math.pi - m))
    z = logits - logits.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    count = positives.sum(-1, keepdims=True)
    target = np.divide(
        positives, count, out=np.zeros_like(log_p), where=count > 0
    )
    return -(target * log_p).sum(-1)


RNG = np.random.default_rng(0)
COS = RNG.uniform(-1, 1, (6, 5)).astype("float32")
COS[0, 2] = 1.0  # clipped before acos
COS[1, 3] = -0.95  # theta + m > pi: the fallback branch
LABELS = np.array([2, 3, 0, -1, 4, 1])


def test_arcface_matches_numpy_with_margin_clipping_and_fallback():
    got = ArcFaceLoss(scale=16.0, margin=0.5, reduction=None)(LABELS, COS)
    hot = np.eye(5)[np.maximum(LABELS, 0)] * (LABELS >= 0)[:, None]
    np.testing.assert_allclose(
        got, numpy_arcface(COS, hot, 16.0, 0.5), rtol=1e-5, atol=1e-5
    )
    assert got[3] == 0.0  # unlabelled row


def test_margin_lowers_the_true_logit():
    cos = np.array([[0.8, 0.1]], "float32")
    plain = ArcFaceLoss(scale=8.0, margin=0.0, reduction=None)([0], cos)
    margined = ArcFaceLoss(scale=8.0, margin=0.3, reduction=None)([0], cos)
    assert margined[0] > plain[0]


def test_gradient_is_finite_at_cos_one():
    cos = tf.Variable([[1.0, 0.0, -1.0]])
    with tf.GradientTape() as tape:
        loss = ArcFaceLoss()([0], cos)
    assert np.isfinite(tape.gradient(loss, cos).numpy()).all()


def test_multilabel_arcface_matches_numpy():
    positives = (RNG.random((6, 5)) < 0.4).astype("float32")
    positives[2] = 0  # no positive: loss 0
    got = MultiLabelArcFaceLoss(scale=10.0, margin=0.4, reduction=None)(
        positives, COS
    )
    np.testing.assert_allclose(
        got, numpy_arcface(COS, positives, 10.0, 0.4), rtol=1e-5, atol=1e-5
    )
    assert got[2] == 0.0


def test_multilabel_arcface_weighted_labels_match_numpy():
    """Query-log weights: the margin on every label > 0, however small its
    weight; the target in proportion to the weights."""
    weights = RNG.random((6, 5)).astype("float32")
    weights *= RNG.random((6, 5)) < 0.5
    weights[0, 2], weights[1, 3] = 0.05, 0.3  # clipped cos; fallback branch
    weights[2] = 0
    got = MultiLabelArcFaceLoss(scale=10.0, margin=0.4, reduction=None)(
        weights, COS
    )
    np.testing.assert_allclose(
        got, numpy_arcface(COS, weights, 10.0, 0.4), rtol=1e-5, atol=1e-5
    )
    hot = (weights > 0).astype("float32")
    assert not np.allclose(got, numpy_arcface(COS, hot, 10.0, 0.4))


def test_multilabel_with_one_positive_equals_arcface():
    hot = np.eye(5, dtype="float32")[[2, 3, 0, 1, 4, 1]]
    labels = np.array([2, 3, 0, 1, 4, 1])
    np.testing.assert_allclose(
        MultiLabelArcFaceLoss(reduction=None)(hot, COS),
        ArcFaceLoss(reduction=None)(labels, COS),
        rtol=1e-6,
    )


def test_rejects_a_margin_beyond_pi_over_two():
    with pytest.raises(ValueError, match="margin must be in"):
        ArcFaceLoss(margin=2.0)


def test_arcface_harness(tmp_path):
    run_loss_test(
        ArcFaceLoss,
        {"scale": 4.0, "margin": 0.3},
        np.array([0, 2, 1, 2]),
        tmp_path,
    )


def test_multilabel_arcface_harness(tmp_path):
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]], "float32")
    run_loss_test(
        MultiLabelArcFaceLoss, {"scale": 4.0, "margin": 0.3}, y, tmp_path
    )
