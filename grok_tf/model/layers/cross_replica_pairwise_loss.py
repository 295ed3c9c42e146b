"""The pairwise double-margin loss over the global batch of all replicas."""

import keras
import tensorflow as tf

from grok_tf.model.losses.pairwise_double_margin import DEFAULT_ALPHA
from grok_tf.model.losses.pairwise_double_margin import DEFAULT_BETA
from grok_tf.model.losses.pairwise_double_margin import DEFAULT_CHUNK_SIZE
from grok_tf.model.losses.pairwise_double_margin import DistanceWeightedSampling
from grok_tf.model.losses.pairwise_double_margin import (
    pairwise_double_margin_sums,
)


@keras.saving.register_keras_serializable(package="grok_tf")
class CrossReplicaPairwiseLoss(keras.layers.Layer):
    """Per-example pairwise double-margin loss over the global batch.

    Each replica all-gathers the embeddings and ids of every replica and
    scores its `n` local anchors against the `N` gathered references
    (`n * N` pairs here, `N^2` over all replicas). With
    `D_ij = ||e_i - e_j||`, `m_pos = beta - alpha`, `m_neg = beta + alpha`:

        loss_ij = relu(D_ij - m_pos)   same id, i != j
                  relu(m_neg - D_ij)   different ids
        L       = sum_ij loss_ij / A,  A = #{ij: loss_ij > 0} (L = 0 if A = 0)

    Rows with an id below 0 take part in no pair. `A` is summed over the
    replicas with `all_reduce` (and treated as a constant: it is piecewise
    constant). The layer returns per-example values

        out_i = n * R * S_i / A,   S_i = sum_j loss_ij

    for `R` replicas, to be compiled with `PerExampleLoss` (the default
    reduction "sum_over_batch_size"): Keras takes `mean_i(out_i) / R` on
    each replica and sums the gradients over the replicas, which gives
    exactly `L` and its gradient; and `mean_i(out_i)` averaged over the
    replicas, which Keras logs per step, is `L` too. When the replicas hold
    equal shares (`n * R = N`) `out_i = N * S_i / A`.

    The collectives run on every replica at every step (no branch around
    them). `all_gather`'s gradient all-reduces the upstream gradients, so
    other replicas' pairs reach the local embeddings. Keras's symbolic
    trace in cross-replica context, and a single device, use the local
    batch (`R = 1`). Pairs are computed in chunks of `chunk_size` anchors
    with a hand-written gradient (memory O(chunk_size * N)); see
    `grok_tf.model.losses.pairwise_double_margin`.

    With `distance_weighted=True`, each anchor keeps all its positives and
    `negatives_per_anchor` negatives drawn with probability proportional to
    `1/q(D)` (see `DistanceWeightedSampling`). The draw is a stateless hash
    of `[seed, step]` and the pair's global rows, where `step` is the
    non-trainable weight `sampling_step`, advanced by one at each training
    call: the forward and backward passes, every chunk and every replica
    see the same draw, a new one at every training step; inference calls
    reuse the current step.

    Computes in float32 whatever the dtype policy. With `learn_beta=True`,
    `beta` is a trainable scalar weight (keep it out of weight decay).

    Args:
        alpha: half the gap between the margins, >= 0. Defaults to 0.2.
        beta: the (initial) margin centre. Defaults to 1.2.
        learn_beta: whether `beta` is trained. Defaults to False.
        distance_weighted: whether to sample negatives by distance.
            Defaults to False (all negatives).
        negatives_per_anchor: negatives kept per anchor when sampling.
            Defaults to 4 (the paper's k - 1 with k = 5 images per class).
        cutoff: distances are clipped below at this value in the sampling
            weights. Defaults to 0.5.
        nonzero_loss_cutoff: negatives at or beyond this distance are
            never drawn. Defaults to 1.4.
        chunk_size: anchors per chunk, or None for a single chunk.
            Defaults to 1024.
        seed: seed of the sampling. Defaults to 0.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: `[embeddings, ids]`: L2-normalised embeddings `[batch, d]`
            and int ids `[batch]` (< 0: no id).
        training: whether this is a training call (advances the sampling
            step).

    Returns:
        float32 `[batch]` per-example losses whose mean, with Keras's
        replica scaling, is the loss over the global batch.

    Example:

    >>> import numpy as np
    >>> e = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], "float32")
    >>> ids = np.array([0, 0, -1])
    >>> out = CrossReplicaPairwiseLoss()([e, ids])
    >>> round(float(out.numpy().mean()), 4)  # sqrt(2) - 1.0, one pair
    0.4142

    Reference:
        Wu, Manmatha, Smola, Krähenbühl, "Sampling Matters in Deep
        Embedding Learning", ICCV 2017; Bell et al., "GrokNet: Unified
        Computer Vision Model Trunk and Embeddings For Commerce", KDD 2020.
    """

    def __init__(
        self,
        alpha=DEFAULT_ALPHA,
        beta=DEFAULT_BETA,
        learn_beta=False,
        distance_weighted=False,
        negatives_per_anchor=4,
        cutoff=0.5,
        nonzero_loss_cutoff=1.4,
        chunk_size=DEFAULT_CHUNK_SIZE,
        seed=0,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if chunk_size is not None and chunk_size < 1:
            raise ValueError(
                f"chunk_size must be >= 1 or None, got {chunk_size}"
            )
        self.alpha = float(alpha)
        self.initial_beta = float(beta)
        self.learn_beta = bool(learn_beta)
        self.distance_weighted = bool(distance_weighted)
        self.negatives_per_anchor = int(negatives_per_anchor)
        self.cutoff = float(cutoff)
        self.nonzero_loss_cutoff = float(nonzero_loss_cutoff)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        self.seed = int(seed)
        self.sampling = None
        if self.distance_weighted:
            self.sampling = DistanceWeightedSampling(
                self.negatives_per_anchor, self.cutoff, self.nonzero_loss_cutoff
            )

    def build(self, input_shape):
        self.beta = self.add_weight(
            name="beta",
            shape=(),
            initializer=keras.initializers.Constant(self.initial_beta),
            trainable=self.learn_beta,
            dtype="float32",
        )
        if self.distance_weighted:
            self.sampling_step = self.add_weight(
                name="sampling_step",
                shape=(),
                initializer="zeros",
                trainable=False,
                dtype="int64",
                aggregation="only_first_replica",
            )

    def call(self, inputs, training=None):
        embeddings, ids = inputs
        embeddings = tf.cast(embeddings, tf.float32)
        ids = tf.reshape(tf.cast(ids, tf.int32), [-1])
        local = tf.shape(embeddings)[0]
        # Keras's symbolic trace under a strategy runs in cross-replica
        # context, without a replica context: it scores the local batch.
        context = None
        references, reference_ids, offset, replicas = embeddings, ids, 0, 1
        if not tf.distribute.in_cross_replica_context():
            context = tf.distribute.get_replica_context()
            references = context.all_gather(embeddings, axis=0)
            reference_ids = context.all_gather(ids, axis=0)
            sizes = context.all_gather(local[None], axis=0)
            offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
            replicas = context.num_replicas_in_sync
        seed = (0, 0)
        if self.distance_weighted:
            # Read before the increment (tf.identity orders the read).
            step = tf.identity(self.sampling_step.value)
            seed = tf.stack([tf.constant(self.seed, tf.int64), step])
            if training:
                self.sampling_step.assign_add(1)
        sums, counts = pairwise_double_margin_sums(
            embeddings,
            ids,
            references,
            reference_ids,
            beta=tf.convert_to_tensor(self.beta),
            alpha=self.alpha,
            anchor_offset=offset,
            chunk_size=self.chunk_size,
            sampling=self.sampling,
            seed=seed,
        )
        active = tf.reduce_sum(tf.stop_gradient(counts))
        if context is not None:
            active = context.all_reduce(tf.distribute.ReduceOp.SUM, active)
        scale = tf.cast(local * replicas, tf.float32) / tf.maximum(active, 1.0)
        return sums * scale

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "alpha": self.alpha,
                "beta": self.initial_beta,
                "learn_beta": self.learn_beta,
                "distance_weighted": self.distance_weighted,
                "negatives_per_anchor": self.negatives_per_anchor,
                "cutoff": self.cutoff,
                "nonzero_loss_cutoff": self.nonzero_loss_cutoff,
                "chunk_size": self.chunk_size,
                "seed": self.seed,
            }
        )
        return config
