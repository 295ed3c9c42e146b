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

`init="itq"` starts a linear Catalyzer (`hidden_layers=0`, `f(x) =
normalize(W x + b)`) at ITQ's projection (`itq_start`): its codes before
training are exactly ITQ's, and training moves `W` from there. It is the
hasher's default (`CatalyzerHasher`) because an MLP trained from scratch on
a few thousand embeddings does not keep their geometry (see the package
docstring); `init="random"` with 2 hidden layers is the paper's network.

Reference:
    Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for similarity
    search", ICLR 2019 (arXiv:1806.03198); Gong, Lazebnik, "Iterative
    Quantization", CVPR 2011 (the ITQ start).
"""

import keras
import numpy as np

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import code_bytes
from grok_tf.compression.hashers.base import HasherFitError
from grok_tf.compression.hashers.catalyzer.layer import build_catalyzer
from grok_tf.compression.hashers.catalyzer.losses import DEFAULT_LAMBDA_KOLEO
from grok_tf.compression.hashers.catalyzer.losses import CatalyzerLoss
from grok_tf.compression.neighbors import nearest_neighbors
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss

# The paper's negative rank and training set size: rank 50 of 500k.
PAPER_NEGATIVE_RANK = 50
PAPER_TRAINING_SIZE = 500_000
TRAINER_INPUTS = ("anchor", "positive", "negative")
INITS = ("random", "itq")
# With product ids: the probability that a positive is a same-id photo
# rather than an input-space neighbour.
DEFAULT_LABEL_SHARE = 0.5


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


def sample_positives(input_neighbors, rng, labels=None, label_share=1.0):
    """Each row's positive: an input-space neighbour or a same-id row.

    Without `labels`, one of each row's input-space neighbours, uniformly.
    With `labels` (product ids, -1: none), a row whose id has other rows
    draws, with probability `label_share`, one of those rows uniformly
    (a photo of the same product), else an input-space neighbour; rows
    without an id, or alone with theirs, always take a neighbour.

    Args:
        input_neighbors: int `[N, k_pos]` input-space neighbours.
        rng: a `np.random.Generator`.
        labels: optional int `[N]` ids, -1 for none.
        label_share: the probability of a same-id positive. Defaults to 1.

    Returns:
        int64 `[N]` row indices.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> neighbours = np.array([[1], [0], [3], [2]])
    >>> sample_positives(neighbours, rng, np.array([7, -1, 7, 5])).tolist()
    [2, 0, 0, 2]
    """
    rows = np.arange(len(input_neighbors))
    choice = rng.integers(input_neighbors.shape[1], size=len(rows))
    positives = input_neighbors[rows, choice].astype(np.int64)
    if labels is None or label_share <= 0:
        return positives
    labels = np.asarray(labels)
    draw = rng.random(len(rows)) < label_share
    for label in np.unique(labels[labels >= 0]):
        group = np.flatnonzero(labels == label)
        if len(group) < 2:
            continue
        # A uniform other member: skip the anchor's own place.
        pick = rng.integers(len(group) - 1, size=len(group))
        pick += pick >= np.arange(len(group))
        chosen = draw[group]
        positives[group[chosen]] = group[pick[chosen]]
    return positives


def mine_negatives(outputs, input_neighbors, k_neg, labels=None):
    """Each row's `k_neg`-th output-space neighbour that is not a positive.

    Ranks all other outputs by distance to `outputs_i`, skips the row's
    input-space neighbours (`input_neighbors_i`, its candidate positives)
    and, with `labels`, every row with the same id (-1: no id, nothing
    skipped for it), and returns the `k_neg`-th remaining one (the farthest
    remaining one of the ranked window when fewer remain).

    Args:
        outputs: float32 `[N, b]` Catalyzer outputs of the training set.
        input_neighbors: int `[N, k_pos]` input-space neighbours.
        k_neg: the rank of the negative (1 = nearest), `k_neg + k_pos < N`.
        labels: optional int `[N]` product ids, -1 for none.

    Returns:
        int64 `[N]` row indices.

    Example:

    >>> x = np.array([[0.0], [1.0], [3.0], [7.0]], "float32")
    >>> neighbours = np.array([[1], [0], [3], [2]])
    >>> mine_negatives(x, neighbours, 1).tolist()
    [2, 2, 1, 1]
    >>> mine_negatives(x, neighbours, 1, np.array([0, 0, 0, -1])).tolist()
    [3, 3, 3, 1]
    """
    window = k_neg + input_neighbors.shape[1]
    if labels is not None:
        labels = np.asarray(labels)
        counts = (
            np.bincount(labels[labels >= 0]) if (labels >= 0).any() else [1]
        )
        window += int(np.max(counts)) - 1
    window = min(window, len(outputs) - 1)
    candidates = nearest_neighbors(outputs, outputs, window, exclude_self=True)
    skipped = (candidates[:, :, None] == input_neighbors[:, None]).any(-1)
    if labels is not None:
        same = (labels[candidates] == labels[:, None]) & (labels[:, None] >= 0)
        skipped |= same
    kept = ~skipped
    rank = np.cumsum(kept, axis=1)
    column = np.argmax(kept & (rank == k_neg), axis=1)
    # Fewer than k_neg kept in the window: the farthest kept one.
    short = rank[:, -1] < k_neg
    if short.any():
        last_kept = window - 1 - np.argmax(kept[:, ::-1], axis=1)
        column = np.where(short, last_kept, column)
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
    hidden_layers=2,
    init="random",
    labels=None,
    label_share=DEFAULT_LABEL_SHARE,
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
        hidden_layers: hidden layers of the network (2 in the paper; 0:
            linear). Defaults to 2.
        init: `"random"` (Glorot, the paper's) or `"itq"`: the output layer
            starts at ITQ's projection (`itq_start`), so the codes before
            training are ITQ's; needs `hidden_layers=0`. When ITQ cannot
            fit (bits > d, or fewer independent rows than bits) the start
            is random. Defaults to "random".
        labels: optional int `[N]` product ids of the embeddings (-1: no
            id). Then a negative never has the anchor's id, and a positive
            is a photo of the same product with probability `label_share`
            (`sample_positives`); rows without an id keep the paper's
            input-space neighbours. None: the paper's unsupervised triplets.
        label_share: see `labels`. Defaults to 0.5.

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
    check_init(init)
    if init == "itq" and hidden_layers:
        raise ValueError(
            f"init='itq' starts a linear Catalyzer: hidden_layers must be 0, "
            f"got {hidden_layers}"
        )
    if k_neg is None:
        rows = np.shape(embeddings)[0] if np.ndim(embeddings) else 0
        k_neg = default_negative_rank(rows)
    _check_positive(
        epochs=epochs, batch_size=batch_size, k_pos=k_pos, k_neg=k_neg
    )
    x = check_embeddings(
        embeddings, "embeddings", min_rows=k_pos + k_neg + 1, dtype="float32"
    )
    if labels is not None:
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if len(labels) != len(x):
            raise ValueError(
                f"labels has {len(labels)} rows, embeddings {len(x)}"
            )
    if not 0.0 <= label_share <= 1.0:
        raise ValueError(f"label_share must be in [0, 1], got {label_share}")
    if batch_size > len(x):
        raise ValueError(f"batch_size={batch_size} exceeds N={len(x)} rows")
    rng = np.random.default_rng(seed)
    catalyzer = build_catalyzer(
        x.shape[1], bits, hidden, seed=seed, hidden_layers=hidden_layers
    )
    start = itq_start(x, bits, seed) if init == "itq" else None
    if start is not None:
        catalyzer.get_layer("mlp").output_layer.set_weights(start)
    trainer = build_catalyzer_trainer(catalyzer, lambda_koleo, margin)
    trainer.compile(
        optimizer=keras.optimizers.Adam(learning_rate), loss=PerExampleLoss()
    )
    input_neighbors = nearest_neighbors(x, x, k_pos, exclude_self=True)
    for epoch in range(epochs):
        triplets = epoch_triplets(
            catalyzer,
            x,
            input_neighbors,
            k_neg,
            batch_size,
            rng,
            labels,
            label_share,
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


def check_init(init):
    """Raises a one-line ValueError unless `init` is one of `INITS`."""
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")


def itq_start(embeddings, bits, seed=0):
    """A linear Catalyzer's output layer at ITQ's hash: `(W, b)` or None.

    With ITQ's mean `mu` and projection `P` (`ITQHasher(bits, seed=seed)`
    fitted on `embeddings`), `W = P / s` and `b = -mu P / s`, `s` the root
    mean square of `(x - mu) P` over the embeddings: `sign(W x + b)` is
    ITQ's code of `x`, and the outputs before normalisation have unit
    scale, so Adam's steps are of the same size for every embedding width.

    Args:
        embeddings: float32 `[N, d]` training embeddings.
        bits: the code length.
        seed: ITQ's seed (its initial rotation).

    Returns:
        `[kernel [d, bits], bias [bits]]` float32, or None when ITQ cannot
        fit the embeddings (bits > d, or fewer independent rows than bits).

    Example:

    >>> x = np.random.default_rng(0).normal(size=(50, 16))
    >>> kernel, bias = itq_start(x, 8)
    >>> kernel.shape, bias.shape, itq_start(x, 24)
    ((16, 8), (8,), None)
    """
    # Imported here: importing the module registers ITQ, which must come
    # after the Catalyzer and LSH in the registry.
    from grok_tf.compression.hashers.itq import ITQHasher

    try:
        itq = ITQHasher(bits, seed=seed).fit(embeddings)
    except HasherFitError:
        return None
    x = np.asarray(embeddings, np.float64)
    scale = np.sqrt(np.mean(((x - itq.mean) @ itq.projection) ** 2))
    kernel = itq.projection / scale
    return [kernel.astype("float32"), (-itq.mean @ kernel).astype("float32")]


def epoch_triplets(
    catalyzer,
    x,
    input_neighbors,
    k_neg,
    batch_size,
    rng,
    labels=None,
    label_share=1.0,
):
    """One epoch of training triplets, in a random order, as trainer inputs.

    Every row is an anchor once (the last `N % batch_size` rows of the
    random order are left out, so each batch has `batch_size` anchors for
    KoLeo), with a positive from `sample_positives` (an input-space
    neighbour, or a same-id row when `labels` are given) and the negative
    mined from the current outputs (`mine_negatives`, never a same-id row).

    Returns:
        `{"anchor", "positive", "negative"}` float32 `[rows, d]` arrays.
    """
    outputs = catalyzer.predict(x, batch_size=1024, verbose=0)
    negatives = mine_negatives(outputs, input_neighbors, k_neg, labels)
    positives = sample_positives(input_neighbors, rng, labels, label_share)
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
