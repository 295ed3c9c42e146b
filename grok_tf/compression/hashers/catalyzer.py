"""The Catalyzer: an MLP that spreads embeddings before 256-bit hashing.

GrokNet compresses its embeddings to 256-bit codes with the Catalyzer of
Sablayrolles et al.: a small network `f` maps an embedding `x` to the unit
sphere in `bits` dimensions, trained so that (1) neighbours in the input
space stay neighbours and (2) the outputs spread uniformly; the code is
then the signs of `f(x)` (`catalyzer_codes`). Written from the paper:

    f(x)     = normalize(W3 relu(BN(W2 relu(BN(W1 x))))),   widths
               d -> hidden -> hidden -> bits
    L        = L_rank + lambda * L_koleo
    L_rank   = mean_i relu(margin + ||f(x_i) - f(x_i+)||^2
                                  - ||f(x_i) - f(x_i-)||^2)
    L_koleo  = -mean_i log(rho_i + eps),  rho_i = min_{j != i} ||f(x_i)
                                                   - f(x_j)||

with `x_i+` drawn among the `k_pos` nearest neighbours of `x_i` in the
input space (precomputed once over the training set) and `x_i-` the
`k_neg`-th nearest neighbour of `f(x_i)` among the outputs of the whole
training set, recomputed at the start of each epoch. The paper's rank
loss has no margin; `margin` defaults to 0. Here the count towards `k_neg`
skips `x_i` itself and its `k_pos` input neighbours, so a negative is never
one of the anchor's candidate positives (this moves the rank by at most
`k_pos` places). KoLeo runs over the anchors of the (global) batch.

Two defaults differ from the paper's code, both because GrokNet trains the
Catalyzer on thousands of embeddings rather than the paper's 500k:

- `k_neg` scales with the training set (`default_negative_rank`): the
  paper's rank 50 among 500k vectors is the nearest 0.01%; the same
  fraction of N (at least 1, at most 50). With rank 50 among 2640
  grocery-photo embeddings only 1-2% of the triplets violate the hinge,
  so the rank loss gives almost no gradient, KoLeo alone drives training
  and it spreads apart photos of the same product.
- BatchNorm's moving-average momentum is 0.9 (Keras: 0.99). With N / batch
  ~10 steps per epoch, 0.99 leaves the moving statistics far from the batch
  statistics after 10 epochs (variance measured 30x too large), so the
  network used for inference and for mining negatives is not the one
  trained.

Measured limitation: on 2640 real GrokNet embeddings (81 products, 400-d)
the Catalyzer's 256-bit sign codes still retrieve worse than ITQ's (val
k-NN recall@10 0.75 vs 0.83 with these defaults, 0.62 before): the MLP,
trained from scratch on so few points, does not keep the input geometry
(even its float outputs lose it: recall 0.79) and training longer makes it
worse. Started at ITQ's projection through a linear skip path (tried, not
kept), it fits the training neighbours better while val recall falls
(0.83 to 0.74 in 10 epochs): too few points to learn a map that
generalises.

Prefer `ITQHasher` on small training sets; the Catalyzer is the paper's
method for large ones.

Pieces: `Catalyzer` (the MLP as a layer), `build_catalyzer` (it as a
model), `koleo_loss` / `koleo_terms` and `triplet_rank_loss` (the losses),
`CatalyzerLoss` (their per-example sum, across replicas),
`build_catalyzer_trainer` (the siamese training model), `train_catalyzer`
(`model.fit` with neighbours refreshed per epoch) and `catalyzer_codes`.

Reference:
    Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for similarity
    search", ICLR 2019 (arXiv:1806.03198); Bell et al., "GrokNet: Unified
    Computer Vision Model Trunk and Embeddings For Commerce", KDD 2020.
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import code_bytes
from grok_tf.compression.binary_codes import pack_bits
from grok_tf.compression.binary_codes import sign_bits
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss

DEFAULT_LAMBDA_KOLEO = 0.05
# BatchNorm moving-average momentum (Keras's 0.99 is too slow for the
# ~100 steps of 10 epochs on a few thousand embeddings).
DEFAULT_BN_MOMENTUM = 0.9
# The paper's negative rank and training set size: rank 50 of 500k.
PAPER_NEGATIVE_RANK = 50
PAPER_TRAINING_SIZE = 500_000
# Added to rho inside KoLeo's log: a finite loss for coincident outputs.
KOLEO_EPSILON = 1e-8
# rho is sqrt(max(squared distance, this)): a finite gradient at 0.
_SQUARED_FLOOR = 1e-24
TRAINER_INPUTS = ("anchor", "positive", "negative")
# Rows of queries per block in `nearest_neighbors` (bounds its memory).
_KNN_BLOCK = 1024


@keras.saving.register_keras_serializable(package="grok_tf")
class Catalyzer(keras.layers.Layer):
    """The Catalyzer MLP: embeddings to points on the unit sphere.

    `f(x) = normalize(W_out h_L)`, `h_0 = x`,
    `h_l = relu(BN(W_l h_{l-1}))` with `hidden` units for `l = 1..L`
    (`L = hidden_layers`, 2 in the paper), then a linear map to `bits`
    dimensions and L2 normalisation. The hidden Dense layers have no bias
    (BatchNorm's offset replaces it). The sign of each output component
    is one bit of the code. BatchNorm's moving averages use momentum 0.9
    by default, so that they reach the batch statistics within the few
    hundred steps of a small training set (see the module docstring).

    Args:
        bits: the output width (the code length). Defaults to 256.
        hidden: the hidden width. Defaults to 1024.
        hidden_layers: the number of hidden layers. Defaults to 2.
        synchronized: whether BatchNorm uses the statistics of the global
            batch under a distribution strategy. Defaults to False.
        seed: seed of the kernel initialisers (None: unseeded).
        bn_momentum: momentum of BatchNorm's moving mean and variance.
            Defaults to 0.9.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[batch, d]` embeddings.
        training: whether BatchNorm uses batch statistics.

    Returns:
        float `[batch, bits]`, rows of L2 norm 1.

    Example:

    >>> import numpy as np
    >>> layer = Catalyzer(bits=32, hidden=64, seed=0)
    >>> out = layer(np.ones((4, 16), "float32"))
    >>> tuple(out.shape), round(float(np.linalg.norm(out[0])), 4)
    ((4, 32), 1.0)

    Reference:
        Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for
        similarity search", ICLR 2019 (the catalyzer network).
    """

    def __init__(
        self,
        bits=256,
        hidden=1024,
        hidden_layers=2,
        synchronized=False,
        seed=None,
        bn_momentum=DEFAULT_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("bits", bits), ("hidden", hidden)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if hidden_layers < 0:
            raise ValueError(f"hidden_layers must be >= 0, got {hidden_layers}")
        self.bits = int(bits)
        self.hidden = int(hidden)
        self.hidden_layers = int(hidden_layers)
        self.synchronized = bool(synchronized)
        self.seed = None if seed is None else int(seed)
        self.bn_momentum = float(bn_momentum)
        self.dense_layers = [
            keras.layers.Dense(
                self.hidden,
                use_bias=False,
                kernel_initializer=self._initializer(index),
                name=f"dense_{index}",
            )
            for index in range(self.hidden_layers)
        ]
        self.norm_layers = [
            keras.layers.BatchNormalization(
                momentum=self.bn_momentum,
                synchronized=self.synchronized,
                name=f"batch_norm_{index}",
            )
            for index in range(self.hidden_layers)
        ]
        self.output_layer = keras.layers.Dense(
            self.bits,
            kernel_initializer=self._initializer(self.hidden_layers),
            name="output",
        )

    def _initializer(self, index):
        seed = None if self.seed is None else self.seed + index
        return keras.initializers.GlorotUniform(seed=seed)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense, norm in zip(
            self.dense_layers, self.norm_layers, strict=True
        ):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            norm.build(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for dense, norm in zip(
            self.dense_layers, self.norm_layers, strict=True
        ):
            x = ops.relu(norm(dense(x), training=training))
        return ops.normalize(self.output_layer(x), axis=-1, order=2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.bits)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bits": self.bits,
                "hidden": self.hidden,
                "hidden_layers": self.hidden_layers,
                "synchronized": self.synchronized,
                "seed": self.seed,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


def build_catalyzer(
    input_dim,
    bits=256,
    hidden=1024,
    synchronized=False,
    seed=None,
    bn_momentum=DEFAULT_BN_MOMENTUM,
):
    """The Catalyzer as a model: `[N, input_dim]` -> unit `[N, bits]`.

    Args:
        input_dim: the embedding width d.
        bits: the output width (code length). Defaults to 256.
        hidden: the hidden width. Defaults to 1024.
        synchronized: BatchNorm over the global batch under a strategy.
        seed: seed of the initial weights (None: unseeded).
        bn_momentum: BatchNorm's moving-average momentum. Defaults to 0.9.

    Returns:
        a `keras.Model` named "catalyzer" with one `Catalyzer` layer.

    Example:

    >>> build_catalyzer(400, bits=256).output_shape
    (None, 256)
    """
    inputs = keras.Input((int(input_dim),), name="embedding")
    outputs = Catalyzer(
        bits,
        hidden,
        synchronized=synchronized,
        seed=seed,
        bn_momentum=bn_momentum,
        name="mlp",
    )(inputs)
    return keras.Model(inputs, outputs, name="catalyzer")


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


def build_catalyzer_trainer(
    catalyzer, lambda_koleo=DEFAULT_LAMBDA_KOLEO, margin=0.0
):
    """The siamese training model around a Catalyzer model.

    Inputs: a dict of float `[batch, d]` embeddings "anchor", "positive",
    "negative", each sent through the same `catalyzer`; output: the
    per-example `CatalyzerLoss` (compile with `PerExampleLoss`, targets
    ignored). Training it trains `catalyzer` (shared weights).

    Args:
        catalyzer: a model from `build_catalyzer`.
        lambda_koleo: the KoLeo weight lambda. Defaults to 0.05.
        margin: the rank loss margin. Defaults to 0.

    Returns:
        a `keras.Model` named "catalyzer_trainer".

    Example:

    >>> trainer = build_catalyzer_trainer(build_catalyzer(8, 16, 32))
    >>> trainer.output_shape
    (None,)
    """
    width = catalyzer.input_shape[-1]
    inputs = {name: keras.Input((width,), name=name) for name in TRAINER_INPUTS}
    outputs = [catalyzer(inputs[name]) for name in TRAINER_INPUTS]
    loss = CatalyzerLoss(lambda_koleo, margin, name="catalyzer_loss")(outputs)
    return keras.Model(inputs, loss, name="catalyzer_trainer")


def nearest_neighbors(queries, database, k, exclude_self=False):
    """Indices of the `k` nearest database rows (L2) of each query, exact.

    Computed a block of queries at a time from
    `||q||^2 + ||x||^2 - 2 q.x`, nearest first; with `exclude_self` the
    queries are the database and row i never lists itself.

    Args:
        queries: float32 `[Q, d]`.
        database: float32 `[N, d]`.
        k: neighbours per query, `k <= N` (`N - 1` with `exclude_self`).
        exclude_self: whether query i is database row i, to be skipped.

    Returns:
        int64 `[Q, k]`.

    Example:

    >>> import numpy as np
    >>> x = np.array([[0.0], [1.0], [3.0]], "float32")
    >>> nearest_neighbors(x, x, 1, exclude_self=True).ravel().tolist()
    [1, 0, 1]
    """
    available = len(database) - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k must be in 1..{available}, got {k}")
    squared_norms = np.sum(np.square(database), axis=1)
    blocks = []
    for start in range(0, len(queries), _KNN_BLOCK):
        block = queries[start : start + _KNN_BLOCK]
        distances = squared_norms - 2.0 * (block @ database.T)
        if exclude_self:
            rows = np.arange(len(block))
            distances[rows, start + rows] = np.inf
        top = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distances, top, 1), axis=1)
        blocks.append(np.take_along_axis(top, order, 1))
    return np.concatenate(blocks) if blocks else np.zeros((0, k), np.int64)


def sample_positives(input_neighbors, rng):
    """One of each row's input-space neighbours, uniformly, `[N]` int64."""
    choice = rng.integers(input_neighbors.shape[1], size=len(input_neighbors))
    return input_neighbors[np.arange(len(input_neighbors)), choice]


def mine_negatives(outputs, input_neighbors, k_neg):
    """Each row's `k_neg`-th output-space neighbour that is not a positive.

    Ranks all other outputs by distance to `outputs_i`, skips the row's
    input-space neighbours (`input_neighbors_i`, its candidate positives)
    and returns the `k_neg`-th remaining one.

    Args:
        outputs: float32 `[N, b]` Catalyzer outputs of the training set.
        input_neighbors: int `[N, k_pos]` input-space neighbours.
        k_neg: the rank of the negative (1 = nearest), `k_neg + k_pos < N`.

    Returns:
        int64 `[N]` row indices.
    """
    candidates = nearest_neighbors(
        outputs, outputs, k_neg + input_neighbors.shape[1], exclude_self=True
    )
    is_positive = (candidates[:, :, None] == input_neighbors[:, None]).any(-1)
    kept = ~is_positive
    rank = np.cumsum(kept, axis=1)
    column = np.argmax(kept & (rank == k_neg), axis=1)
    return candidates[np.arange(len(candidates)), column]


def default_negative_rank(rows):
    """The paper's negative rank scaled to `rows` training embeddings.

    Sablayrolles et al. take the 50th output-space neighbour among 500k
    training vectors (the nearest 0.01%); this keeps that fraction:
    `round(50 * rows / 500k)`, clipped to 1..50. On a few thousand rows a
    fixed rank 50 gives triplets that almost all satisfy the hinge already
    (no rank-loss gradient; KoLeo alone drives training).

    Example:

    >>> [default_negative_rank(n) for n in (2640, 100_000, 500_000, 10**7)]
    [1, 10, 50, 50]
    """
    scaled = round(PAPER_NEGATIVE_RANK * int(rows) / PAPER_TRAINING_SIZE)
    return int(min(max(scaled, 1), PAPER_NEGATIVE_RANK))


def train_catalyzer(
    embeddings,
    bits=256,
    hidden=1024,
    epochs=10,
    batch_size=256,
    lambda_koleo=DEFAULT_LAMBDA_KOLEO,
    margin=0.0,
    k_pos=10,
    k_neg=None,
    learning_rate=1e-3,
    seed=0,
    verbose="auto",
):
    """Trains a Catalyzer on `embeddings` with `model.fit`; returns it.

    Once: the `k_pos` nearest neighbours of every embedding in the input
    space (exact L2). Each epoch: the Catalyzer's outputs on all
    embeddings, the negatives (`mine_negatives`), a random positive per
    anchor and a random order, then one `fit` epoch of the siamese
    `build_catalyzer_trainer` model (Adam) on those triplets (see
    `epoch_triplets`). Deterministic for a given `seed` on one device.

    Args:
        embeddings: float `[N, d]` training embeddings, finite,
            `N > k_pos + k_neg`.
        bits: the code length (a multiple of 8). Defaults to 256.
        hidden: the hidden width. Defaults to 1024.
        epochs: passes over the data. Defaults to 10.
        batch_size: anchors per step (at most N). Defaults to 256.
        lambda_koleo: the KoLeo weight lambda. Defaults to 0.05.
        margin: the rank loss margin. Defaults to 0 (as in the paper).
        k_pos: input-space neighbours that may be positives. Defaults to 10.
        k_neg: the output-space rank of the negatives (after skipping the
            `k_pos` candidate positives). Defaults to
            `default_negative_rank(N)`: the paper's 50 for its 500k
            training vectors, scaled to N (1 below ~15k rows).
        learning_rate: Adam's learning rate. Defaults to 1e-3.
        seed: seed of the weights, the positives and the order.
        verbose: Keras's `fit` verbosity ("auto", 0, 1 or 2).

    Returns:
        the trained model from `build_catalyzer` (float `[N, bits]`
        outputs); pass it to `catalyzer_codes`.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(300, 16))
    >>> model = train_catalyzer(x, 32, 64, epochs=1, batch_size=100,
    ...                         verbose=0)
    >>> catalyzer_codes(model, x).shape
    (300, 4)
    """
    code_bytes(bits)
    if k_neg is None:
        rows = np.shape(embeddings)[0] if np.ndim(embeddings) else 0
        k_neg = default_negative_rank(rows)
    _check_positive(
        epochs=epochs, batch_size=batch_size, k_pos=k_pos, k_neg=k_neg
    )
    x = check_embeddings(
        embeddings, "embeddings", min_rows=k_pos + k_neg + 1, dtype="float32"
    )
    if batch_size > len(x):
        raise ValueError(f"batch_size={batch_size} exceeds N={len(x)} rows")
    rng = np.random.default_rng(seed)
    catalyzer = build_catalyzer(x.shape[1], bits, hidden, seed=seed)
    trainer = build_catalyzer_trainer(catalyzer, lambda_koleo, margin)
    trainer.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=PerExampleLoss()
    )
    input_neighbors = nearest_neighbors(x, x, k_pos, exclude_self=True)
    for epoch in range(epochs):
        triplets = epoch_triplets(
            catalyzer, x, input_neighbors, k_neg, batch_size, rng
        )
        trainer.fit(
            triplets,
            np.zeros(len(triplets["anchor"]), "float32"),
            batch_size=batch_size,
            epochs=epochs,  # the progress bar shows "Epoch e/epochs"
            initial_epoch=epoch,
            shuffle=False,
            verbose=verbose,
            callbacks=[_StopAfterOneEpoch()],
        )
    return catalyzer


def epoch_triplets(catalyzer, x, input_neighbors, k_neg, batch_size, rng):
    """One epoch of training triplets, in a random order, as trainer inputs.

    Every row is an anchor once (the last `N % batch_size` rows of the
    random order are left out, so each batch has `batch_size` anchors for
    KoLeo), with a positive drawn among its input-space neighbours and the
    negative mined from the current outputs (`mine_negatives`).

    Returns:
        `{"anchor", "positive", "negative"}` float32 `[rows, d]` arrays.
    """
    outputs = catalyzer.predict(x, batch_size=1024, verbose=0)
    negatives = mine_negatives(outputs, input_neighbors, k_neg)
    positives = sample_positives(input_neighbors, rng)
    order = rng.permutation(len(x))[: len(x) // batch_size * batch_size]
    rows = {
        "anchor": order,
        "positive": positives[order],
        "negative": negatives[order],
    }
    return {name: x[indices] for name, indices in rows.items()}


class _StopAfterOneEpoch(keras.callbacks.Callback):
    """Ends `fit` after its first epoch (negatives change every epoch)."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def catalyzer_codes(model, embeddings, batch_size=1024):
    """Packed sign codes of `model(embeddings)`, uint8 `[N, bits // 8]`.

    `pack_bits(sign_bits(f(x)))`: bit j is `f(x)_j > 0`, in faiss's bit
    order (see `grok_tf.compression.binary_codes`), ready for
    `faiss.IndexBinaryFlat`.

    Args:
        model: a Catalyzer model (`build_catalyzer` / `train_catalyzer`).
        embeddings: float `[N, d]` with d the model's input width.
        batch_size: rows per inference batch. Defaults to 1024.

    Returns:
        uint8 `np.ndarray` `[N, bits // 8]`.
    """
    width, bits = model.input_shape[-1], model.output_shape[-1]
    x = check_embeddings(embeddings, "embeddings", width, dtype="float32")
    if not len(x):
        return np.zeros((0, code_bytes(bits)), np.uint8)
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(pack_bits(sign_bits(outputs)))


def _check_positive(**values):
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
