"""Exact k-nearest neighbours (L2) in NumPy, a block of queries at a time.

The Catalyzer's training mines its positives (input-space neighbours) and
negatives (output-space neighbours) with it; a few thousand embeddings
need no index.
"""

import numpy as np

from grok_tf.compression.blas import single_threaded_blas

# Rows of queries per block in `nearest_neighbors` (bounds its memory).
_KNN_BLOCK = 1024


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
        with single_threaded_blas():  # see `grok_tf.compression.blas`
            distances = squared_norms - 2.0 * (block @ database.T)
        if exclude_self:
            rows = np.arange(len(block))
            distances[rows, start + rows] = np.inf
        top = np.argpartition(distances, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(distances, top, 1), axis=1)
        blocks.append(np.take_along_axis(top, order, 1))
    return np.concatenate(blocks) if blocks else np.zeros((0, k), np.int64)
