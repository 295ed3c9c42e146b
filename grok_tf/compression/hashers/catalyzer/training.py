"""Training the Catalyzer: triplets mined each epoch, then `model.fit`.

`x_i+` is drawn among the `k_pos` nearest neighbours of `x_i` in the input
space (precomputed once over the training set, exact:
`grok_tf.compression.neighbors`) and `x_i-` is the `k_neg`-th nearest
neighbour of `f(x_i)` among the outputs of the whole training set,
recomputed at the start of each epoch. The paper's rank loss has no
margin; `margin` defaults to 0. Here the count towards `k_neg` skips `x_i`
itself and its `k_pos` input neighbours, so a negative is never one of the
anchor's candidate positives (this moves the rank by at most `k_pos`
places). KoLeo runs over the anchors of the (global) batch.

`k_neg` scales with the training set (`default_negative_rank`), because
GrokNet trains the Catalyzer on thousands of embeddings rather than the
paper's 500k: the paper's rank 50 among 500k vectors is the nearest
0.01%; the same fraction of N (at least 1, at most 50). With rank 50 among
2640 grocery-photo embeddings only 1-2% of the triplets violate the hinge,
so the rank loss gives almost no gradient, KoLeo alone drives training
and it spreads apart photos of the same product.

Reference:
    Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for similarity
    search", ICLR 2019 (arXiv:1806.03198).
"""

import keras
import numpy as np

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import code_bytes
from grok_tf.compression.hashers.catalyzer.layer import build_catalyzer
from grok_tf.compression.hashers.catalyzer.losses import DEFAULT_LAMBDA_KOLEO
from grok_tf.compression.hashers.catalyzer.losses import CatalyzerLoss
from grok_tf.compression.neighbors import nearest_neighbors
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss

# The paper's negative rank and training set size: rank 50 of 500k.
PAPER_NEGATIVE_RANK = 50
PAPER_TRAINING_SIZE = 500_000
TRAINER_INPUTS = ("anchor", "positive", "negative")


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
    >>> model.output_shape
    (None, 32)
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


def _check_positive(**values):
    for name, value in values.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
