"""Pairwise double-margin loss, summed per anchor in chunks.

GrokNet trains its embedding with the margin loss of Wu et al. on
L2-normalised embeddings. For anchors `i` and references `j` with
`D_ij = sqrt(||e_i - e_j||^2 + eps)`:

    positive pair (same id, i != j):   loss_ij = relu(D_ij - (beta - alpha))
    negative pair (different ids):     loss_ij = relu((beta + alpha) - D_ij)

Rows with an id below 0 take part in no pair. The loss is the mean over the
active pairs (`loss_ij > 0`), as in the paper's code:
`sum_ij loss_ij / #{ij: loss_ij > 0}` (0 when no pair is active).

`pairwise_double_margin_sums` returns the per-anchor sums
`S_i = sum_j loss_ij` and active counts `c_i`; the caller normalises (see
`grok_tf.model.layers.cross_replica_pairwise_loss` for the cross-replica mean).
It loops over chunks of anchors inside a `tf.custom_gradient` whose
backward pass recomputes each chunk's distances, so memory stays
O(chunk * N) instead of autodiff's saved O(n * N) intermediates:

    dD_ij/de_i = (e_i - e_j) / D_ij = -dD_ij/de_j
    dloss_ij/dD_ij = +1 (active positive), -1 (active negative), 0 else
    dloss_ij/dbeta = -dloss_ij/dD_ij

Optional distance-weighted negative sampling (Wu et al., section 4) keeps
`k` negatives per anchor drawn without replacement with probability
proportional to `1 / q(D)`, where
`q(d) ∝ d^(n-2) (1 - d^2/4)^((n-3)/2)` is the density of distances between
uniform points on the unit sphere in `n` dimensions; `D` is clipped below
at `cutoff` (which bounds the weights, the paper's `lambda`), and pairs with
`D >= nonzero_loss_cutoff` are never drawn. Sampling is Gumbel-top-k on the
log weights with noise from a counter-based hash of (seed, anchor's global
row, reference's global row): stateless, identical in the forward and the
backward pass, for any chunk size and any number of replicas.

TensorFlow-specific (custom gradient, while loop): this module is the math
behind `CrossReplicaPairwiseLoss`. Float32 throughout.

Reference:
    Wu, Manmatha, Smola, Krähenbühl, "Sampling Matters in Deep Embedding
    Learning", ICCV 2017; Bell et al., "GrokNet: Unified Computer Vision
    Model Trunk and Embeddings For Commerce", KDD 2020.
"""

import dataclasses

import keras
import tensorflow as tf

DEFAULT_ALPHA = 0.2
DEFAULT_BETA = 1.2
DEFAULT_CHUNK_SIZE = 1024

# Added to the squared distance inside the sqrt: the gradient (e_i - e_j)/D
# stays finite for coincident embeddings (the paper's code uses 1e-8 too).
DISTANCE_EPSILON = 1e-8

# 1 - d^2/4 is clipped below at this value before its log (d can reach 2).
_LOG_FLOOR = 1e-12

# Constants of the "lowbias32" integer hash (C. Wellons, hash-prospector)
# and three odd offsets separating the hash streams.
_MIX_1 = 0x21F0AAAD
_MIX_2 = 0x735A2D97
_SEED_SALT = 0x9E3779B9
_ROW_SALT = 0x85EBCA6B
_COLUMN_SALT = 0xC2B2AE35


@dataclasses.dataclass(frozen=True)
class DistanceWeightedSampling:
    """Distance-weighted sampling of negatives (Wu et al., section 4).

    For each anchor, `negatives_per_anchor` negatives are drawn without
    replacement (Gumbel-top-k) with probability proportional to

        w(D) = 1 / q(max(D, cutoff)),   w = 0 where D >= nonzero_loss_cutoff
        log q(d) = (n - 2) log d + (n - 3)/2 log(1 - d^2/4)

    in an `n`-dimensional embedding. Anchors with fewer candidates keep
    them all. With `k = 1` this is exactly the categorical draw
    `p_j = w_j / sum_j w_j` of the paper's code.

    Attributes:
        negatives_per_anchor: `k`, negatives kept per anchor.
        cutoff: distances are clipped below at this value. Defaults to 0.5.
        nonzero_loss_cutoff: negatives at or beyond this distance are never
            drawn (their loss is 0 when `beta + alpha` is below it).
            Defaults to 1.4.
    """

    negatives_per_anchor: int
    cutoff: float = 0.5
    nonzero_loss_cutoff: float = 1.4

    def __post_init__(self):
        if self.negatives_per_anchor < 1:
            raise ValueError(
                "negatives_per_anchor must be >= 1, got "
                f"{self.negatives_per_anchor}"
            )
        if not 0.0 < self.cutoff < self.nonzero_loss_cutoff:
            raise ValueError(
                "need 0 < cutoff < nonzero_loss_cutoff, got "
                f"{self.cutoff} and {self.nonzero_loss_cutoff}"
            )

    def log_weights(self, distances, dim):
        """`log w = -log q(max(D, cutoff))`, up to a constant.

        Args:
            distances: float32 `[anchors, references]`.
            dim: the embedding dimension `n` (a scalar).

        Returns:
            float32 log weights, same shape as `distances`.
        """
        dim = tf.cast(dim, tf.float32)
        d = tf.maximum(distances, self.cutoff)
        log_q = (dim - 2.0) * tf.math.log(d) + 0.5 * (dim - 3.0) * tf.math.log(
            tf.maximum(1.0 - 0.25 * tf.square(d), _LOG_FLOOR)
        )
        return -log_q

    def mask(self, distances, negatives, anchor_rows, seed, dim):
        """Which negative pairs are drawn.

        Args:
            distances: float32 `[anchors, references]`.
            negatives: bool, the negative pairs to draw from.
            anchor_rows: int32 `[anchors]`, each anchor's global row (its
                index among the references when it is one of them).
            seed: int `[2]` (the layer passes `[seed, step]`).
            dim: the embedding dimension.

        Returns:
            bool `[anchors, references]`: `min(k, #candidates)` drawn pairs
            per anchor, all with `D < nonzero_loss_cutoff`.
        """
        candidates = negatives & (distances < self.nonzero_loss_cutoff)
        noise = gumbel_noise(seed, anchor_rows, tf.shape(distances)[1])
        keys = tf.where(
            candidates,
            self.log_weights(distances, dim) + noise,
            float("-inf"),
        )
        k = tf.minimum(self.negatives_per_anchor, tf.shape(keys)[1])
        # The k-th largest key per row; -inf when fewer than k candidates.
        threshold = tf.reduce_min(
            tf.math.top_k(keys, k).values, axis=1, keepdims=True
        )
        return candidates & (keys >= threshold)


def gumbel_noise(seed, rows, columns):
    """Standard Gumbel noise `[len(rows), columns]` from a stateless hash.

    Element `(r, j)` depends only on `seed`, `rows[r]` and `j`, so a chunk
    of anchors, or one replica's anchors, draws the same noise as the
    whole batch does.

    Args:
        seed: int `[2]`.
        rows: int32 `[r]` global row indices.
        columns: number of columns.

    Returns:
        float32 `[r, columns]`.
    """
    seed = tf.cast(tf.reshape(seed, [2]), tf.uint32)
    key = _mix(_xor(_mix(_xor(seed[0], _SEED_SALT)), seed[1]))
    row_hash = _mix(_xor(key, _mix(_xor(tf.cast(rows, tf.uint32), _ROW_SALT))))
    column_hash = _mix(
        _xor(tf.cast(tf.range(columns), tf.uint32), _COLUMN_SALT)
    )
    bits = _mix(_xor(row_hash[:, None], column_hash[None, :]))
    # 24 random bits -> uniform in (0, 1), exactly representable.
    high = _shift(bits, 8)
    uniform = (tf.cast(high, tf.float32) + 0.5) * (1.0 / (1 << 24))
    return -tf.math.log(-tf.math.log(uniform))


def _mix(x):
    """The lowbias32 integer hash on uint32 tensors (wraps mod 2^32)."""
    x = _xor(x, _shift(x, 16))
    x = x * tf.constant(_MIX_1, tf.uint32)
    x = _xor(x, _shift(x, 15))
    x = x * tf.constant(_MIX_2, tf.uint32)
    return _xor(x, _shift(x, 15))


def _xor(x, y):
    return tf.bitwise.bitwise_xor(x, tf.cast(y, tf.uint32))


def _shift(x, bits):
    return tf.bitwise.right_shift(x, tf.constant(bits, tf.uint32))


def pairwise_distances(anchors, references):
    """`D_ij = sqrt(max(||a_i||^2 + ||r_j||^2 - 2 a_i.r_j, 0) + eps)`.

    Args:
        anchors: float32 `[n, d]`.
        references: float32 `[N, d]`.

    Returns:
        float32 `[n, N]`.
    """
    squared = (
        tf.reduce_sum(tf.square(anchors), axis=1, keepdims=True)
        + tf.reduce_sum(tf.square(references), axis=1)[None, :]
        - 2.0 * tf.matmul(anchors, references, transpose_b=True)
    )
    return tf.sqrt(tf.maximum(squared, 0.0) + DISTANCE_EPSILON)


def pair_terms(
    anchors,
    anchor_ids,
    anchor_rows,
    references,
    reference_ids,
    beta,
    alpha=DEFAULT_ALPHA,
    sampling=None,
    seed=None,
):
    """Loss, slope and distance of every (anchor, reference) pair.

    Plain TensorFlow: differentiating `loss` with autodiff gives the
    reference gradient (keeping O(n * N) intermediates); the chunked
    function below calls this per chunk and differentiates by hand.

    Args:
        anchors: float32 `[n, d]`.
        anchor_ids: int32 `[n]`, < 0 for rows without an id.
        anchor_rows: int32 `[n]`, each anchor's row among the references
            (self pairs are excluded by this index; any value >= N when
            the anchors are not among the references).
        references: float32 `[N, d]`.
        reference_ids: int32 `[N]`.
        beta: float32 scalar.
        alpha: the half-gap between the margins.
        sampling: a `DistanceWeightedSampling`, or None for all negatives.
        seed: int `[2]` for the sampling.

    Returns:
        `(loss, slope, distances)`, float32 `[n, N]` each; `slope` is
        `dloss/dD`: +1 on active positives, -1 on active negatives, else 0.
    """
    distances = pairwise_distances(anchors, references)
    same = tf.equal(anchor_ids[:, None], reference_ids[None, :])
    labelled = (anchor_ids[:, None] >= 0) & (reference_ids[None, :] >= 0)
    columns = tf.range(tf.shape(references)[0])
    positive = same & labelled & (anchor_rows[:, None] != columns[None, :])
    negative = ~same & labelled
    if sampling is not None:
        negative = negative & sampling.mask(
            tf.stop_gradient(distances),
            negative,
            anchor_rows,
            seed,
            tf.shape(references)[1],
        )
    loss = tf.where(
        positive,
        tf.nn.relu(distances - (beta - alpha)),
        tf.where(negative, tf.nn.relu(beta + alpha - distances), 0.0),
    )
    slope = tf.where(loss > 0.0, tf.where(positive, 1.0, -1.0), 0.0)
    return loss, slope, distances


def pairwise_double_margin_sums(
    anchors,
    anchor_ids,
    references,
    reference_ids,
    beta=DEFAULT_BETA,
    alpha=DEFAULT_ALPHA,
    anchor_offset=0,
    chunk_size=DEFAULT_CHUNK_SIZE,
    sampling=None,
    seed=(0, 0),
):
    """Per-anchor loss sums `S_i` and active-pair counts `c_i`, chunked.

    `S_i = sum_j loss_ij` and `c_i = #{j: loss_ij > 0}` over the references
    (see the module docstring); the mean over active pairs is
    `sum_i S_i / sum_i c_i`. Gradients flow to `anchors`, `references`
    and `beta` through a hand-written backward pass that recomputes each
    chunk (peak memory O(chunk_size * N)); `c_i` has no gradient.

    Args:
        anchors: `[n, d]` embeddings (cast to float32).
        anchor_ids: int `[n]`, < 0 for rows without an id.
        references: `[N, d]` embeddings (may be the same tensor).
        reference_ids: int `[N]`.
        beta: the margin centre (float or float32 scalar tensor).
        alpha: the half-gap: margins `beta - alpha` and `beta + alpha`.
        anchor_offset: row of `anchors[0]` among the references (anchor
            `i` is reference `anchor_offset + i`, excluded as its own
            positive); a scalar int or int32 tensor.
        chunk_size: anchors per chunk, or None for one chunk of all.
        sampling: a `DistanceWeightedSampling`, or None for all negatives.
        seed: int `[2]` seeding the sampling; the noise of pair `(i, j)`
            depends only on it and the global rows.

    Returns:
        `(sums, counts)`, float32 `[n]` each.

    Example:

    >>> import numpy as np
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> s, c = pairwise_double_margin_sums(e, [0, 0], e, [0, 0])
    >>> [round(float(v), 4) for v in s], [float(v) for v in c]
    ([0.4142, 0.4142], [1.0, 1.0])
    """
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1 or None, got {chunk_size}")
    anchors = tf.cast(anchors, tf.float32)
    references = tf.cast(references, tf.float32)
    beta = tf.cast(beta, tf.float32)
    anchor_ids = tf.reshape(tf.cast(anchor_ids, tf.int32), [-1])
    reference_ids = tf.reshape(tf.cast(reference_ids, tf.int32), [-1])
    n = tf.shape(anchors)[0]
    rows = tf.cast(anchor_offset, tf.int32) + tf.range(n)
    chunk = tf.maximum(n if chunk_size is None else chunk_size, 1)
    # At least one (possibly empty) chunk, so an empty batch gives [0].
    num_chunks = tf.maximum((n + chunk - 1) // chunk, 1)

    def chunk_terms(k, anchors, references, beta):
        start = k * chunk
        stop = tf.minimum(start + chunk, n)
        loss, slope, distances = pair_terms(
            anchors[start:stop],
            anchor_ids[start:stop],
            rows[start:stop],
            references,
            reference_ids,
            beta,
            alpha,
            sampling,
            seed,
        )
        return start, stop, loss, slope, distances

    def array(width=None):
        shape = [None] if width is None else [None, width]
        return tf.TensorArray(
            tf.float32,
            size=num_chunks,
            infer_shape=False,
            element_shape=tf.TensorShape(shape),
        )

    @tf.custom_gradient
    def sums_and_counts(anchors, references, beta):
        def body(k, sums, counts):
            _, _, loss, slope, _ = chunk_terms(k, anchors, references, beta)
            sums = sums.write(k, tf.reduce_sum(loss, axis=1))
            counts = counts.write(k, tf.reduce_sum(tf.abs(slope), axis=1))
            return k + 1, sums, counts

        _, sums, counts = tf.while_loop(
            lambda k, *_: k < num_chunks,
            body,
            (tf.constant(0), array(), array()),
            parallel_iterations=1,
        )

        def grad(d_sums, d_counts=None):
            # W_ij = dS_i * slope_ij / D_ij; with dD_ij/de_i = (e_i - e_j)/D:
            #   de_i = e_i sum_j W_ij - sum_j W_ij e_j
            #   de_j = e_j sum_i W_ij - sum_i W_ij e_i
            #   dbeta = -sum_ij dS_i slope_ij
            d_sums = tf.zeros([n]) if d_sums is None else d_sums

            def body(k, d_anchors, d_references, d_beta):
                start, stop, _, slope, distances = chunk_terms(
                    k, anchors, references, beta
                )
                a = anchors[start:stop]
                upstream = slope * d_sums[start:stop, None]
                weights = upstream / distances
                d_anchors = d_anchors.write(
                    k,
                    a * tf.reduce_sum(weights, axis=1, keepdims=True)
                    - tf.matmul(weights, references),
                )
                d_references += references * tf.reduce_sum(weights, axis=0)[
                    :, None
                ] - tf.matmul(weights, a, transpose_a=True)
                d_beta -= tf.reduce_sum(upstream)
                return k + 1, d_anchors, d_references, d_beta

            _, d_anchors, d_references, d_beta = tf.while_loop(
                lambda k, *_: k < num_chunks,
                body,
                (
                    tf.constant(0),
                    array(anchors.shape[-1]),
                    tf.zeros_like(references),
                    tf.zeros([]),
                ),
                parallel_iterations=1,
            )
            d_anchors = tf.reshape(d_anchors.concat(), tf.shape(anchors))
            return d_anchors, d_references, d_beta

        return (sums.concat(), counts.concat()), grad

    return sums_and_counts(anchors, references, beta)


@keras.saving.register_keras_serializable(package="grok_tf")
class PerExampleLoss(keras.losses.Loss):
    """Identity loss: the model's output already is the per-example loss.

    Compiles the output of a loss layer such as `CrossReplicaPairwiseLoss`
    (`y_true` is ignored; pass zeros). With the default reduction
    `"sum_over_batch_size"` Keras takes the mean over each replica's batch
    and divides by the number of replicas, which the layer accounts for.

    Args:
        reduction: Keras loss reduction. Defaults to `"sum_over_batch_size"`.
        name: the loss name.
        **kwargs: forwarded to `keras.losses.Loss`.

    Call arguments:
        y_true: ignored.
        y_pred: per-example losses `[batch]`.

    Example:

    >>> import numpy as np
    >>> loss = PerExampleLoss()
    >>> float(loss(np.zeros(2), np.array([1.0, 3.0], "float32")))
    2.0
    """

    def __init__(
        self, reduction="sum_over_batch_size", name="per_example", **kwargs
    ):
        super().__init__(name=name, reduction=reduction, **kwargs)

    def call(self, y_true, y_pred):
        return tf.cast(y_pred, tf.float32)
