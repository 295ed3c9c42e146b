import numpy as np

from grok_tf.model.losses import MultiLabelSoftmaxCrossEntropy
from tests.harness import run_loss_test


def reference(y, z):
    z = z - z.max(-1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    count = y.sum(-1, keepdims=True)
    target = np.divide(y, count, out=np.zeros_like(y), where=count > 0)
    return -(target * log_p).sum(-1)


Y = np.array(
    [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], "float32"
)
Z = np.random.default_rng(0).normal(size=(4, 4)).astype("float32") * 3


def test_per_example_values_match_numpy():
    values = MultiLabelSoftmaxCrossEntropy(reduction=None)(Y, Z)
    np.testing.assert_allclose(values, reference(Y, Z), rtol=1e-5)
    assert values[2] == 0.0  # no positives, no loss


def test_weighted_labels_spread_the_target_in_proportion():
    """Query-log weights (shares of interactions): `-sum (y / sum y) log p`,
    the same for any scale of y."""
    y = np.array([[0.25, 0.75, 0, 0], [0, 0, 0, 0], [3, 0, 1, 0]], "float32")
    z = Z[:3]
    values = MultiLabelSoftmaxCrossEntropy(reduction=None)(y, z)
    np.testing.assert_allclose(values, reference(y, z), rtol=1e-5)
    log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
    np.testing.assert_allclose(
        values[0], -(0.25 * log_p[0, 0] + 0.75 * log_p[0, 1]), rtol=1e-5
    )
    np.testing.assert_allclose(
        MultiLabelSoftmaxCrossEntropy(reduction=None)(y * 7, z),
        values,
        rtol=1e-5,
    )


def test_single_positive_is_softmax_cross_entropy():
    z = Z[1:2]
    expected = -np.log(np.exp(z[0, 1]) / np.exp(z[0]).sum())
    got = MultiLabelSoftmaxCrossEntropy(reduction=None)(Y[1:2], z)
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_default_reduction_is_mean_over_weighted_rows():
    weights = np.array([1, 1, 0, 1], "float32")
    got = MultiLabelSoftmaxCrossEntropy()(Y, Z, sample_weight=weights)
    expected = (reference(Y, Z) * weights).sum() / weights.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_gradient_pushes_probability_towards_positives():
    import tensorflow as tf

    z = tf.Variable(np.zeros((1, 4), "float32"))
    with tf.GradientTape() as tape:
        loss = MultiLabelSoftmaxCrossEntropy()(Y[:1], z)
    grad = tape.gradient(loss, z).numpy()[0]
    # d/dz = softmax(z) - target = 0.25 - [0.5, 0, 0.5, 0]
    np.testing.assert_allclose(grad, [-0.25, 0.25, -0.25, 0.25], atol=1e-6)


def test_loss_harness(tmp_path):
    run_loss_test(MultiLabelSoftmaxCrossEntropy, {}, Y, tmp_path)
