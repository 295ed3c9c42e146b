"""The Catalyzer's losses: KoLeo spreading and triplet rank, per example.

    L        = L_rank + lambda * L_koleo
    L_rank   = mean_i relu(margin + ||f(x_i) - f(x_i+)||^2
                                  - ||f(x_i) - f(x_i-)||^2)
    L_koleo  = -mean_i log(rho_i + eps),  rho_i = min_{j != i} ||f(x_i)
                                                   - f(x_j)||

`koleo_terms` / `koleo_loss` and `triplet_rank_loss` are the two terms;
`CatalyzerLoss` is their per-example sum over the global batch (KoLeo
across replicas), compiled with `PerExampleLoss`.

Reference:
    Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for similarity
    search", ICLR 2019 (arXiv:1806.03198).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

DEFAULT_LAMBDA_KOLEO = 0.05
# Added to rho inside KoLeo's log: a finite loss for coincident outputs.
KOLEO_EPSILON = 1e-8
# rho is sqrt(max(squared distance, this)): a finite gradient at 0.
_SQUARED_FLOOR = 1e-24


def koleo_terms(anchors, references=None, offset=0, epsilon=KOLEO_EPSILON):
    """Per-anchor KoLeo terms `-log(rho_i + eps)`.

    `rho_i = min_{j != offset + i} ||anchors_i - references_j||`: anchor
    `i` is row `offset + i` of `references` (the default references are the
    anchors, offset 0), and that row is excluded. The nearest row is found
    from the expanded squared distances, then `rho_i` is recomputed from
    the difference (no cancellation), as `sqrt(max(d^2, 1e-24))` so the
    gradient is finite for coincident points; `eps` keeps the log finite.
    With fewer than two references the terms are 0.

    Args:
        anchors: float `[n, b]`.
        references: float `[N, b]` containing the anchors at rows
            `offset .. offset + n - 1` (None: the anchors).
        offset: the anchors' first row in `references`.
        epsilon: added to `rho` inside the log. Defaults to 1e-8.

    Returns:
        float32 `[n]`.

    Example:

    >>> import numpy as np
    >>> x = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]], "float32")
    >>> [round(float(t), 4) for t in koleo_terms(x)]  # -log 3, -log 4, -log 3
    [-1.0986, -1.3863, -1.0986]
    """
    anchors = ops.cast(anchors, "float32")
    references = anchors if references is None else references
    references = ops.cast(references, "float32")
    count = ops.shape(references)[0]
    squared = (
        ops.sum(ops.square(anchors), axis=1)[:, None]
        + ops.sum(ops.square(references), axis=1)[None, :]
        - 2.0 * ops.matmul(anchors, ops.transpose(references))
    )
    rows = ops.arange(ops.shape(anchors)[0]) + offset
    is_self = ops.cast(ops.one_hot(rows, count), "bool")
    squared = ops.where(is_self, np.inf, squared)
    # One-hot selection rather than a gather: a dense gradient.
    selection = ops.one_hot(ops.argmin(squared, axis=1), count)
    nearest = ops.matmul(selection, references)
    distance = ops.sum(ops.square(anchors - nearest), axis=1)
    rho = ops.sqrt(ops.maximum(distance, _SQUARED_FLOOR))
    return ops.where(count > 1, -ops.log(rho + epsilon), 0.0)


def koleo_loss(outputs, epsilon=KOLEO_EPSILON):
    """The KoLeo spreading loss of a batch, `-mean_i log(rho_i + eps)`.

    `rho_i` is the distance from row i to its nearest other row: the
    Kozachenko-Leonenko estimator of the differential entropy is, up to
    constants, `mean_i log rho_i`; minimising the loss spreads the rows.
    See `koleo_terms`.

    Args:
        outputs: float `[n, b]`, n >= 2.
        epsilon: added to `rho` inside the log. Defaults to 1e-8.

    Returns:
        float32 scalar.

    Example:

    >>> import numpy as np
    >>> x = np.array([[1.0, 0.0], [-1.0, 0.0]], "float32")
    >>> round(float(koleo_loss(x)), 4)  # -log 2
    -0.6931

    Reference:
        Sablayrolles et al., "Spreading vectors for similarity search",
        ICLR 2019 (the KoLeo regulariser); Kozachenko, Leonenko, "Sample
        estimate of the entropy of a random vector", 1987.
    """
    return ops.mean(koleo_terms(outputs, epsilon=epsilon))


def triplet_rank_loss(anchor, positive, negative, margin=0.0):
    """Per-triplet rank loss `relu(m + ||a - p||^2 - ||a - n||^2)`.

    The Catalyzer's neighbourhood-preserving term (the paper's `L_rank`,
    with `m = 0`): the anchor's output must be nearer its input-space
    neighbour's output than its output-space negative's.

    Args:
        anchor: float `[n, b]` outputs f(x).
        positive: float `[n, b]` outputs f(x+).
        negative: float `[n, b]` outputs f(x-).
        margin: the margin m. Defaults to 0 (the paper's choice).

    Returns:
        float32 `[n]`, one loss per triplet (take the mean for `L_rank`).

    Example:

    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0]], "float32")
    >>> p = np.array([[0.0, 1.0]], "float32")
    >>> [float(v) for v in triplet_rank_loss(a, p, a, margin=0.5)]
    [2.5]

    Reference:
        Sablayrolles et al., "Spreading vectors for similarity search",
        ICLR 2019 (the rank preserving loss).
    """
    anchor, positive, negative = (
        ops.cast(value, "float32") for value in (anchor, positive, negative)
    )
    to_positive = ops.sum(ops.square(anchor - positive), axis=-1)
    to_negative = ops.sum(ops.square(anchor - negative), axis=-1)
    return ops.relu(margin + to_positive - to_negative)


@keras.saving.register_keras_serializable(package="grok_tf")
class CatalyzerLoss(keras.layers.Layer):
    """Per-example Catalyzer loss `rank_i + lambda * koleo_i`, all replicas.

    For anchor outputs `a`, positives `p` and negatives `n`:

        out_i = relu(m + ||a_i - p_i||^2 - ||a_i - n_i||^2)
                - lambda * log(rho_i + eps)

    with `rho_i` the distance from `a_i` to the nearest other anchor of the
    global batch: under a distribution strategy every replica all-gathers
    the anchors and scores its own against all of them (the gather's
    gradient carries the other replicas' terms back). The mean of `out`
    over the global batch is `L_rank + lambda * L_koleo`; compile with
    `PerExampleLoss`. Keras's symbolic trace in cross-replica context and a
    single device use the local batch. Computes in float32.

    Args:
        lambda_koleo: the weight lambda of the KoLeo term. Defaults to 0.05.
        margin: the rank loss margin m. Defaults to 0 (as in the paper).
        epsilon: added to rho inside KoLeo's log. Defaults to 1e-8.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: `[anchor, positive, negative]` outputs, float `[batch, b]`.

    Returns:
        float32 `[batch]` per-example losses.

    Example:

    >>> import numpy as np
    >>> a = np.array([[1.0, 0.0], [0.0, 1.0]], "float32")
    >>> out = CatalyzerLoss(lambda_koleo=1.0)([a, a, a[::-1]])
    >>> [round(float(v), 4) for v in out]  # -log(sqrt 2)
    [-0.3466, -0.3466]

    Reference:
        Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for
        similarity search", ICLR 2019.
    """

    def __init__(
        self,
        lambda_koleo=DEFAULT_LAMBDA_KOLEO,
        margin=0.0,
        epsilon=KOLEO_EPSILON,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if lambda_koleo < 0:
            raise ValueError(f"lambda_koleo must be >= 0, got {lambda_koleo}")
        self.lambda_koleo = float(lambda_koleo)
        self.margin = float(margin)
        self.epsilon = float(epsilon)

    def call(self, inputs):
        anchor, positive, negative = (
            tf.cast(value, tf.float32) for value in inputs
        )
        references, offset = anchor, 0
        # Keras's symbolic trace under a strategy has no replica context.
        if not tf.distribute.in_cross_replica_context():
            context = tf.distribute.get_replica_context()
            references = context.all_gather(anchor, axis=0)
            sizes = context.all_gather(tf.shape(anchor)[:1], axis=0)
            offset = tf.reduce_sum(sizes[: context.replica_id_in_sync_group])
        rank = triplet_rank_loss(anchor, positive, negative, self.margin)
        koleo = koleo_terms(anchor, references, offset, self.epsilon)
        return rank + self.lambda_koleo * koleo

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "lambda_koleo": self.lambda_koleo,
                "margin": self.margin,
                "epsilon": self.epsilon,
            }
        )
        return config
