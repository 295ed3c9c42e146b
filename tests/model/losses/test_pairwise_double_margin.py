import numpy as np
import pytest
import tensorflow as tf

from grok_tf.model.losses.pairwise_double_margin import DistanceWeightedSampling
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss
from grok_tf.model.losses.pairwise_double_margin import pair_terms
from grok_tf.model.losses.pairwise_double_margin import pairwise_distances
from grok_tf.model.losses.pairwise_double_margin import (
    pairwise_double_margin_sums,
)
from tests.harness import check_config_round_trip
from tests.helpers import numpy_pair_losses

ALPHA, BETA = 0.2, 1.2
CHUNK_SIZES = [None, 1, 5, 24, 100]  # 5 does not divide 24


def unit_rows(rng, n, dim):
    x = rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


RNG = np.random.default_rng(0)
# 16-d unit vectors: D is about sqrt(2) +- 0.25, so both positive and
# negative pairs are active; ids repeat and some rows have none.
X = unit_rows(RNG, 24, 16)
IDS = np.array(
    [0, 1, 2, 3, 0, -1, 1, 4, 2, 0, 5, 3, -1, 6, 4, 1, 7, 2, 5, 0, -1, 6, 7, 3]
)
UPSTREAM = RNG.normal(size=24).astype("float32")


def autodiff_gradients(
    anchors, anchor_ids, refs, ref_ids, beta, offset=0, **kw
):
    """Plain autodiff of `sum_i v_i S_i` through the full pair matrix."""
    anchors, refs, beta = map(tf.constant, (anchors, refs, beta))
    rows = offset + tf.range(tf.shape(anchors)[0])
    with tf.GradientTape() as tape:
        tape.watch([anchors, refs, beta])
        loss, _, _ = pair_terms(
            anchors,
            tf.constant(anchor_ids, tf.int32),
            rows,
            refs,
            tf.constant(ref_ids, tf.int32),
            beta,
            ALPHA,
            **kw,
        )
        total = tf.reduce_sum(tf.reduce_sum(loss, 1) * UPSTREAM[: len(rows)])
    return tape.gradient(total, [anchors, refs, beta])


def chunked_gradients(anchors, anchor_ids, refs, ref_ids, beta, offset=0, **kw):
    anchors, refs, beta = map(tf.constant, (anchors, refs, beta))
    with tf.GradientTape() as tape:
        tape.watch([anchors, refs, beta])
        sums, _ = pairwise_double_margin_sums(
            anchors, anchor_ids, refs, ref_ids, beta, ALPHA, offset, **kw
        )
        total = tf.reduce_sum(sums * UPSTREAM[: len(anchor_ids)])
    return tape.gradient(total, [anchors, refs, beta])


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_sums_counts_and_mean_match_numpy(chunk_size):
    expected = numpy_pair_losses(X, IDS, X, IDS, BETA)
    sums, counts = pairwise_double_margin_sums(
        X, IDS, X, IDS, BETA, ALPHA, chunk_size=chunk_size
    )
    np.testing.assert_allclose(sums, expected.sum(1), atol=1e-5)
    np.testing.assert_array_equal(counts, (expected > 0).sum(1))
    positives = (IDS[:, None] == IDS[None, :]) & (IDS >= 0)[:, None]
    assert ((expected > 0) & positives).any()  # both kinds are active
    assert ((expected > 0) & ~positives).any()
    assert (sums.numpy()[IDS < 0] == 0).all()
    np.testing.assert_allclose(
        np.sum(sums) / np.sum(counts),
        expected.sum() / (expected > 0).sum(),
        rtol=1e-5,
    )


def test_local_anchors_against_gathered_references():
    # Rows 7..14 of the batch as one replica's anchors: self pairs are
    # found through the offset.
    sums, counts = pairwise_double_margin_sums(
        X[7:15], IDS[7:15], X, IDS, BETA, ALPHA, anchor_offset=7, chunk_size=3
    )
    expected = numpy_pair_losses(X, IDS, X, IDS, BETA)[7:15]
    np.testing.assert_allclose(sums, expected.sum(1), atol=1e-5)
    np.testing.assert_array_equal(counts, (expected > 0).sum(1))


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_gradients_match_autodiff(chunk_size):
    # Separate anchor and reference tensors (one replica's view) ...
    args = (X[5:20], IDS[5:20], X, IDS, np.float32(BETA), 5)
    for got, want in zip(
        chunked_gradients(*args, chunk_size=chunk_size),
        autodiff_gradients(*args),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)
    # ... and one tensor in both roles (a single device).
    x, beta = tf.constant(X), tf.constant(BETA)
    with tf.GradientTape() as tape:
        tape.watch([x, beta])
        sums, _ = pairwise_double_margin_sums(
            x, IDS, x, IDS, beta, ALPHA, chunk_size=chunk_size
        )
        total = tf.reduce_sum(sums * UPSTREAM)
    got = tape.gradient(total, [x, beta])
    anchors, refs, d_beta = autodiff_gradients(X, IDS, X, IDS, np.float32(BETA))
    np.testing.assert_allclose(got[0], anchors + refs, atol=1e-5)
    np.testing.assert_allclose(got[1], d_beta, atol=1e-5)


def test_gradients_match_numpy_finite_differences():
    rng = np.random.default_rng(5)
    x = unit_rows(rng, 6, 3).astype(np.float64)
    ids = np.array([0, 1, 0, 1, 2, -1])
    v = rng.normal(size=6)

    def objective(x, beta):
        return numpy_pair_losses(x, ids, x, ids, beta).sum(1) @ v

    distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
    kinks = np.abs(distances[..., None] - [BETA - ALPHA, BETA + ALPHA])
    assert kinks.min() > 1e-3  # central differences stay on one side
    h = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(*x.shape):
        step = np.zeros_like(x)
        step[index] = h
        numeric[index] = (
            objective(x + step, BETA) - objective(x - step, BETA)
        ) / (2 * h)
    numeric_beta = (objective(x, BETA + h) - objective(x, BETA - h)) / (2 * h)

    for chunk_size in (None, 1, 4):
        xt, beta = tf.constant(x, tf.float32), tf.constant(BETA)
        with tf.GradientTape() as tape:
            tape.watch([xt, beta])
            sums, _ = pairwise_double_margin_sums(
                xt, ids, xt, ids, beta, ALPHA, chunk_size=chunk_size
            )
            total = tf.reduce_sum(sums * v.astype("float32"))
        d_x, d_beta = tape.gradient(total, [xt, beta])
        np.testing.assert_allclose(d_x, numeric, atol=1e-5)
        np.testing.assert_allclose(d_beta, numeric_beta, atol=1e-5)


def test_beta_gradient_counts_active_negatives_minus_positives():
    beta = tf.constant(BETA)
    with tf.GradientTape() as tape:
        tape.watch(beta)
        sums, _ = pairwise_double_margin_sums(
            X, IDS, X, IDS, beta, chunk_size=7
        )
        total = tf.reduce_sum(sums)
    active = numpy_pair_losses(X, IDS, X, IDS, BETA) > 0
    positives = IDS[:, None] == IDS[None, :]
    expected = (active & ~positives).sum() - (active & positives).sum()
    assert tape.gradient(total, beta).numpy() == expected


@pytest.mark.parametrize(
    "x, ids",
    [
        (X[:4], np.full(4, -1)),  # no ids
        (np.eye(4, dtype="float32"), np.arange(4)),  # negatives at sqrt(2)
    ],
)
def test_no_active_pair_gives_zero_and_finite_gradient(x, ids):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        sums, counts = pairwise_double_margin_sums(x, ids, x, ids, chunk_size=3)
        total = tf.reduce_sum(sums)
    assert total.numpy() == 0.0 and counts.numpy().sum() == 0
    gradient = tape.gradient(total, x).numpy()
    assert np.isfinite(gradient).all() and (gradient == 0).all()


def test_coincident_embeddings_have_a_finite_gradient():
    x = tf.constant(np.repeat(X[:2], 2, axis=0))  # rows 0 == 1, 2 == 3
    ids = np.array([0, 1, 1, 0])  # 0-1 and 2-3: coincident negatives
    with tf.GradientTape() as tape:
        tape.watch(x)
        sums, counts = pairwise_double_margin_sums(x, ids, x, ids)
        total = tf.reduce_sum(sums)
    assert counts.numpy().sum() > 0
    assert np.isfinite(tape.gradient(total, x).numpy()).all()


def test_empty_batch():
    sums, counts = pairwise_double_margin_sums(
        np.zeros((0, 4), "float32"),
        np.zeros(0),
        np.zeros((0, 4), "float32"),
        np.zeros(0),
    )
    assert sums.shape == (0,) and counts.shape == (0,)


def test_traces_with_a_dynamic_batch_size():
    @tf.function(
        input_signature=[
            tf.TensorSpec([None, 16]),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def loss_and_gradient(x, ids):
        with tf.GradientTape() as tape:
            tape.watch(x)
            sums, _ = pairwise_double_margin_sums(x, ids, x, ids, chunk_size=5)
            total = tf.reduce_sum(sums)
        return sums, tape.gradient(total, x)

    for n in (24, 11):
        sums, gradient = loss_and_gradient(X[:n], IDS[:n])
        expected = numpy_pair_losses(X[:n], IDS[:n], X[:n], IDS[:n], BETA)
        np.testing.assert_allclose(sums, expected.sum(1), atol=1e-5)
        assert gradient.shape == (n, 16)


# Distance-weighted sampling. In 8 dimensions the weights 1/q(D) vary over
# a few orders of magnitude; in 400 they favour the hardest negatives.
DIM = 8
SX = unit_rows(np.random.default_rng(1), 40, DIM)
SIDS = np.random.default_rng(2).integers(-1, 4, 40)


def sample(sampling, seed, start=0, stop=40):
    """The drawn pairs of anchors `start:stop` against the whole batch."""
    distances = pairwise_distances(SX[start:stop], SX)
    ids = tf.constant(SIDS, tf.int32)
    negatives = (ids[start:stop, None] != ids[None, :]) & (
        (ids[start:stop] >= 0)[:, None] & (ids >= 0)[None, :]
    )
    rows = tf.range(start, stop)
    return (
        sampling.mask(distances, negatives, rows, seed, DIM).numpy(),
        negatives.numpy(),
        distances.numpy(),
    )


def test_sampling_draws_k_negatives_below_the_cutoff():
    sampling = DistanceWeightedSampling(3, cutoff=0.5, nonzero_loss_cutoff=1.4)
    drawn, negatives, distances = sample(sampling, [0, 0])
    candidates = negatives & (distances < 1.4)
    assert not (drawn & ~candidates).any()
    np.testing.assert_array_equal(
        drawn.sum(1), np.minimum(3, candidates.sum(1))
    )
    assert (candidates.sum(1) > 3).any() and (candidates.sum(1) < 3).any()


def test_sampling_frequencies_follow_inverse_sphere_density():
    # 4000 copies of one anchor (independent noise per row) against six
    # negatives: with k = 1 the draw is categorical with p ∝ w.
    rng = np.random.default_rng(3)
    refs = unit_rows(rng, 6, DIM)
    anchor = refs[0] + 0.9 * unit_rows(rng, 1, DIM)[0]
    anchor /= np.linalg.norm(anchor)
    copies = 4000
    sampling = DistanceWeightedSampling(1, cutoff=0.5, nonzero_loss_cutoff=2.0)
    distances = pairwise_distances(np.tile(anchor, (copies, 1)), refs)
    drawn = sampling.mask(
        distances,
        tf.ones([copies, 6], tf.bool),
        tf.range(copies) + 6,
        [7, 0],
        DIM,
    ).numpy()
    assert (drawn.sum(1) == 1).all()
    d = np.maximum(distances.numpy()[0].astype(np.float64), 0.5)
    log_q = (DIM - 2) * np.log(d) + (DIM - 3) / 2 * np.log(1 - d**2 / 4)
    p = np.exp(-log_q - (-log_q).max())
    p /= p.sum()
    assert p.max() < 0.9 and p.min() > 0.01  # an informative comparison
    frequency = drawn.mean(0)
    sigma = np.sqrt(p * (1 - p) / copies)
    assert (np.abs(frequency - p) < 4 * sigma).all(), (frequency, p)


def test_sampling_is_deterministic_per_seed_and_step():
    sampling = DistanceWeightedSampling(2)
    first, _, _ = sample(sampling, [0, 5])
    again, _, _ = sample(sampling, [0, 5])
    next_step, _, _ = sample(sampling, [0, 6])
    other_seed, _, _ = sample(sampling, [1, 5])
    np.testing.assert_array_equal(first, again)
    assert (first != next_step).any() and (first != other_seed).any()
    # A slice of anchors (a chunk, or a replica) draws the same pairs.
    part, _, _ = sample(sampling, [0, 5], start=13, stop=29)
    np.testing.assert_array_equal(part, first[13:29])


@pytest.mark.parametrize("chunk_size", [None, 1, 7])
def test_sampled_loss_is_chunk_invariant_and_gradient_matches(chunk_size):
    sampling = DistanceWeightedSampling(2)
    kw = {"sampling": sampling, "seed": [4, 2]}
    full_loss, _, _ = pair_terms(
        SX,
        tf.constant(SIDS, tf.int32),
        tf.range(40),
        SX,
        tf.constant(SIDS, tf.int32),
        BETA,
        ALPHA,
        **kw,
    )
    sums, counts = pairwise_double_margin_sums(
        SX, SIDS, SX, SIDS, BETA, ALPHA, chunk_size=chunk_size, **kw
    )
    np.testing.assert_allclose(sums, tf.reduce_sum(full_loss, 1), atol=1e-6)
    # Every positive pair is kept; only drawn negatives remain.
    all_pairs = numpy_pair_losses(SX, SIDS, SX, SIDS, BETA)
    positives = (SIDS[:, None] == SIDS[None, :]) & (SIDS >= 0)[:, None]
    np.testing.assert_allclose(
        full_loss.numpy()[positives], all_pairs[positives], atol=1e-6
    )
    assert ((full_loss.numpy() > 0) & ~positives).sum(1).max() <= 2
    assert counts.numpy().sum() < (all_pairs > 0).sum()
    args = (SX[10:30], SIDS[10:30], SX, SIDS, np.float32(BETA), 10)
    for got, want in zip(
        chunked_gradients(*args, chunk_size=chunk_size, **kw),
        autodiff_gradients(*args, **kw),
        strict=True,
    ):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_sampling_rejects_bad_arguments():
    with pytest.raises(ValueError, match="negatives_per_anchor"):
        DistanceWeightedSampling(0)
    with pytest.raises(ValueError, match="cutoff"):
        DistanceWeightedSampling(2, cutoff=1.5, nonzero_loss_cutoff=1.4)
    with pytest.raises(ValueError, match="chunk_size"):
        pairwise_double_margin_sums(X, IDS, X, IDS, chunk_size=0)


def test_per_example_loss_is_the_mean_of_its_input():
    loss = PerExampleLoss()
    check_config_round_trip(loss)
    values = np.array([1.0, 2.0, 6.0], "float32")
    assert float(loss(np.zeros(3), values)) == 3.0
    np.testing.assert_array_equal(
        PerExampleLoss(reduction=None)(np.ones(3), values), values
    )
