"""Retrieval metrics for product-id datasets: Recall@K and MAP@R.

Each query embedding ranks the gallery embeddings; a gallery item is
relevant to a query when it has the query's product id. Two similarities:

- `"cosine"`: float embeddings, L2-normalised here, ranked by dot product
  (higher is closer). Scores are computed in float64 and rounded to float32
  before ranking, so in practice the ranking does not depend on the batch
  size or the BLAS summation order; scores equal in float32 are ties.
- `"hamming"`: binary codes packed into uint8 bytes (`np.packbits`), ranked
  by the number of differing bits (lower is closer).

Ties: items are ranked by distance (or score), then by gallery index,
lowest first (a stable sort); of the items tied at the last rank kept,
the lowest indices are kept. It is the rule of
`grok_tf.search.hash_index.HashIndex.search`, whose positions are the gallery
indices in the order items were added.

Ids below 0 mean "no id": such queries are not evaluated and such gallery
items are dropped from the gallery (they neither match nor get in the
way). With `exclude_self=True` the queries and the gallery are the same
set, and query `i` never retrieves gallery item `i`.

Queries are ranked `batch_size` at a time: a batch holds one 8-byte sort key
per (query, gallery item), about `8 * batch_size * len(gallery)` bytes
(0.8 GB for 1024 queries against 100k items), and keeps only the top
`max(max(ks), R)` of each row, R being the batch's largest number of
relevant items.
"""

import math

import numpy as np

METRICS = ("cosine", "hamming")

_INDEX_BITS = 32
_INDEX_MASK = np.uint64(2**_INDEX_BITS - 1)
# High bits of an excluded item's key: above every real rank value.
_EXCLUDED = np.uint64(2**_INDEX_BITS - 1) << np.uint64(_INDEX_BITS)
_CHUNK_ELEMENTS = 2**22  # bounds the temporaries of one gallery chunk


def retrieval_metrics(
    query_embeddings,
    query_ids,
    gallery_embeddings,
    gallery_ids,
    ks=(1, 5, 10),
    exclude_self=False,
    metric="cosine",
    batch_size=1024,
):
    """Recall@K and MAP@R of query -> gallery retrieval by product id.

    Recall@K is the fraction of queries with at least one gallery item of
    their id among the K nearest. AP@R of a query with R relevant gallery
    items is `(1/R) * sum_{i=1..R} P(i) * rel(i)` over its top R, with
    `P(i)` the precision of the top i; MAP@R is its mean. Queries with no
    relevant gallery item (R = 0) are excluded from both and counted in
    `"queries_without_match"`.

    Args:
        query_embeddings: `[Q, D]` float embeddings (`metric="cosine"`) or
            `[Q, bytes]` uint8 packed codes (`metric="hamming"`).
        query_ids: `[Q]` integer product ids; below 0 means no id (the
            query is ignored).
        gallery_embeddings: `[G, D]` or `[G, bytes]`, as the queries.
        gallery_ids: `[G]` integer product ids; items below 0 are dropped.
        ks: the K values of Recall@K, positive integers.
        exclude_self: queries and gallery are the same set (Q == G): query
            `i` does not retrieve gallery item `i`, nor count it in its R.
        metric: `"cosine"` or `"hamming"`.
        batch_size: queries ranked at once; bounds the memory.

    Returns:
        A JSON-ready dict `{"recall@K": float for each K, "map@r": float,
        "queries": int, "queries_without_match": int}`, `"queries"` being
        the number of evaluated queries (id >= 0 and R > 0). The metric
        values are None when no query is evaluated.

    Raises:
        ValueError: on inputs of the wrong shape, type or length, an empty
            input, or an unknown metric; the message names the argument.

    Example:

    Query 0 (id 7) ranks the gallery 2, 0, 1: its one match, item 0, is
    second (R@1 miss, R@2 hit, AP@1 = 0). Query 1 (id 8) ranks 1, 0, 2:
    its matches are items 1 and 2 (R = 2), and its top 2 holds one of them,
    first (AP@2 = (1/1) / 2 = 0.5).

    >>> queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    >>> gallery = np.array([[0.6, 0.8], [0.0, 1.0], [1.0, 0.1]])
    >>> report = retrieval_metrics(queries, [7, 8], gallery, [7, 8, 8],
    ...                            ks=(1, 2))
    >>> report["recall@1"], report["recall@2"], report["map@r"]
    (0.5, 1.0, 0.25)
    >>> report["queries"], report["queries_without_match"]
    (2, 0)

    References:
        Musgrave, Belongie, Lim. "A Metric Learning Reality Check",
        ECCV 2020 (MAP@R). Song, Xiang, Jegelka, Savarese. "Deep Metric
        Learning via Lifted Structured Feature Embedding", CVPR 2016
        (Recall@K).
    """
    _check_metric(metric)
    ks = _check_ks(ks)
    batch_size = _check_positive_int(batch_size, "batch_size")
    queries = _check_embeddings(query_embeddings, "query_embeddings", metric)
    gallery = _check_embeddings(
        gallery_embeddings, "gallery_embeddings", metric
    )
    _check_widths(queries, gallery, metric)
    query_ids = _check_ids(query_ids, "query_ids", queries, "query_embeddings")
    gallery_ids = _check_ids(
        gallery_ids, "gallery_ids", gallery, "gallery_embeddings"
    )
    _check_exclude_self(exclude_self, queries, gallery)

    kept = np.flatnonzero(gallery_ids >= 0)
    kept_ids = gallery_ids[kept]
    self_position = np.full(len(queries), -1, np.int64)
    if exclude_self:
        self_position[kept] = np.arange(len(kept))
    num_relevant = _count_matches(query_ids, kept_ids)
    if exclude_self:
        num_relevant -= (self_position >= 0) & (gallery_ids == query_ids)
    has_id = query_ids >= 0
    evaluated = np.flatnonzero(has_id & (num_relevant > 0))
    without_match = int(np.count_nonzero(has_id & (num_relevant == 0)))

    hits = np.zeros(len(ks), np.int64)
    precisions = np.zeros(len(evaluated))
    if len(evaluated):
        prepared_queries = _prepare(queries, metric)
        prepared_gallery = _prepare(gallery[kept], metric)
    for start in range(0, len(evaluated), batch_size):
        rows = evaluated[start : start + batch_size]
        r = num_relevant[rows]
        top = min(max(max(ks), int(r.max())), len(kept))
        ranked = _rank(
            prepared_queries[rows],
            prepared_gallery,
            metric,
            top,
            self_position[rows],
        )
        # Self ranks last, after all R other matches, so even when `top`
        # reaches it, it changes neither a hit (R > 0) nor the top R.
        relevance = kept_ids[ranked] == query_ids[rows, None]
        for i, k in enumerate(ks):
            hits[i] += np.count_nonzero(relevance[:, :k].any(axis=1))
        precisions[start : start + len(rows)] = _average_precision_at_r(
            relevance, r
        )

    n = len(evaluated)
    report = {
        f"recall@{k}": float(h) / n if n else None
        for k, h in zip(ks, hits, strict=True)
    }
    report["map@r"] = math.fsum(precisions) / n if n else None
    report["queries"] = n
    report["queries_without_match"] = without_match
    return report


def rank_gallery(
    query_embeddings,
    gallery_embeddings,
    metric="cosine",
    top=None,
    exclude_self=False,
    batch_size=1024,
):
    """Gallery indices of each query's nearest items, nearest first.

    Args:
        query_embeddings: `[Q, D]` float embeddings (`metric="cosine"`) or
            `[Q, bytes]` uint8 packed codes (`metric="hamming"`).
        gallery_embeddings: `[G, D]` or `[G, bytes]`, as the queries.
        metric: `"cosine"` (higher dot product of the L2-normalised
            embeddings is closer) or `"hamming"` (fewer differing bits is
            closer). Ties are broken by gallery index, lowest first, also
            at the cut-off `top`.
        top: how many items per query; None (default) ranks the whole
            gallery. Capped at the gallery size (minus one with
            `exclude_self`).
        exclude_self: queries and gallery are the same set (Q == G): query
            `i` never retrieves item `i`.
        batch_size: queries ranked at once; bounds the memory.

    Returns:
        An int64 array `[Q, top]` of gallery indices.

    Raises:
        ValueError: on inputs of the wrong shape, type or length, an empty
            input, or an unknown metric; the message names the argument.

    Example:

    >>> codes = np.packbits([[0, 0, 0, 0], [1, 1, 1, 0], [1, 0, 0, 0]],
    ...                     axis=1, bitorder="little")
    >>> rank_gallery(codes, codes, metric="hamming")
    array([[0, 2, 1],
           [1, 2, 0],
           [2, 0, 1]])
    >>> rank_gallery(codes, codes, metric="hamming", exclude_self=True)
    array([[2, 1],
           [2, 0],
           [0, 1]])
    """
    _check_metric(metric)
    batch_size = _check_positive_int(batch_size, "batch_size")
    queries = _check_embeddings(query_embeddings, "query_embeddings", metric)
    gallery = _check_embeddings(
        gallery_embeddings, "gallery_embeddings", metric
    )
    _check_widths(queries, gallery, metric)
    _check_exclude_self(exclude_self, queries, gallery)
    available = len(gallery) - (1 if exclude_self else 0)
    top = available if top is None else _check_positive_int(top, "top")
    top = min(top, available)

    self_position = np.full(len(queries), -1, np.int64)
    if exclude_self:
        self_position[:] = np.arange(len(queries))
    prepared_queries = _prepare(queries, metric)
    prepared_gallery = _prepare(gallery, metric)
    ranked = np.empty((len(queries), top), np.int64)
    for start in range(0, len(queries), batch_size):
        stop = min(start + batch_size, len(queries))
        ranked[start:stop] = _rank(
            prepared_queries[start:stop],
            prepared_gallery,
            metric,
            top,
            self_position[start:stop],
        )
    return ranked


def recall_at_k(relevance, k, num_relevant=None):
    """Recall@K: the fraction of queries with a relevant item in the top K.

    Args:
        relevance: `[Q, L]` booleans, `relevance[q, i]` true when the i-th
            ranked gallery item of query q is relevant (has its id).
        k: a positive integer; rows shorter than k count whole.
        num_relevant: `[Q]` R, the number of relevant gallery items of each
            query; by default the row sums of `relevance` (right when the
            rows rank the whole gallery). Queries with R = 0 are excluded.

    Returns:
        A float, or None when no query has a relevant item.

    Example:

    >>> recall_at_k([[0, 1, 0], [1, 0, 0], [0, 0, 1]], k=2)
    0.6666666666666666

    References:
        Song, Xiang, Jegelka, Savarese. "Deep Metric Learning via Lifted
        Structured Feature Embedding", CVPR 2016.
    """
    k = _check_positive_int(k, "k")
    relevance, r = _check_relevance(relevance, num_relevant)
    keep = r > 0
    if not keep.any():
        return None
    return float(np.mean(relevance[keep, :k].any(axis=1)))


def map_at_r(relevance, num_relevant=None):
    """MAP@R: the mean over queries of AP@R (Musgrave et al. 2020).

    For a query with R relevant gallery items, `AP@R = (1/R) * sum_{i=1..R}
    P(i) * rel(i)`, with `rel(i)` the relevance of the i-th ranked item and
    `P(i)` the precision of the top i. Unlike AP it only looks at the top R,
    and it is 1 only when the R relevant items are ranked first.

    Args:
        relevance: `[Q, L]` booleans, `relevance[q, i]` true when the i-th
            ranked gallery item of query q is relevant; L must reach every
            evaluated query's R.
        num_relevant: `[Q]` R of each query; by default the row sums of
            `relevance` (right when the rows rank the whole gallery).
            Queries with R = 0 are excluded.

    Returns:
        A float, or None when no query has a relevant item.

    Example:

    R = 3 and the top 3 is relevant, not, relevant: (1/1 + 2/3) / 3.

    >>> round(map_at_r([[1, 0, 1, 1, 0]]), 4)
    0.5556

    References:
        Musgrave, Belongie, Lim. "A Metric Learning Reality Check",
        ECCV 2020, section 3.2.
    """
    relevance, r = _check_relevance(relevance, num_relevant)
    keep = r > 0
    if not keep.any():
        return None
    if r.max() > relevance.shape[1]:
        raise ValueError(
            f"relevance has {relevance.shape[1]} ranked items per query "
            f"but a query has R={int(r.max())} relevant ones: MAP@R needs "
            "at least the top R of every query"
        )
    precisions = _average_precision_at_r(relevance[keep], r[keep])
    return math.fsum(precisions) / int(keep.sum())


def _average_precision_at_r(relevance, num_relevant):
    """AP@R of each row; every R > 0 and within the row length.

    The row sums are sequential (cumsum), so columns beyond R, whatever
    their number, cannot change the rounding: results do not depend on how
    queries are batched.
    """
    relevance = relevance[:, : int(num_relevant.max())]
    positions = np.arange(1, relevance.shape[1] + 1)
    precision = np.cumsum(relevance, axis=1) / positions
    counted = relevance & (positions <= num_relevant[:, None])
    terms = np.where(counted, precision, 0.0)
    return np.cumsum(terms, axis=1)[:, -1] / num_relevant


def _count_matches(query_ids, gallery_ids):
    """Number of gallery items with each query's id."""
    values, counts = np.unique(gallery_ids, return_counts=True)
    if not len(values):
        return np.zeros(len(query_ids), np.int64)
    at = np.minimum(np.searchsorted(values, query_ids), len(values) - 1)
    return np.where(values[at] == query_ids, counts[at], 0).astype(np.int64)


def _prepare(embeddings, metric):
    """Cosine: float64 unit rows (zero rows stay zero). Hamming: uint64."""
    if metric == "cosine":
        x = embeddings.astype(np.float64)
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.where(norms > 0, norms, 1.0)
    # Zero bytes change no XOR popcount; 8-byte words are fewer to count.
    pad = -embeddings.shape[1] % 8
    codes = np.pad(embeddings, ((0, 0), (0, pad)))
    return np.ascontiguousarray(codes).view(np.uint64)


def _rank(queries, gallery, metric, top, self_position):
    """`[B, top]` gallery indices, nearest first, of prepared queries.

    Every (query, item) pair gets a unique uint64 key, the rank value in the
    high 32 bits and the gallery index in the low 32, so one partial sort
    gives the exact stable ranking. `self_position` (-1 for none) is the
    item each query excludes: its rank value is the maximum, so it ranks
    last.
    """
    n, size = len(queries), len(gallery)
    keys = np.empty((n, size), np.uint64)
    step = max(1, _CHUNK_ELEMENTS // n)
    # Hamming distances: at most 64 bits per word.
    count_type = np.uint16 if queries.shape[1] * 64 < 2**16 else np.uint32
    for lo in range(0, size, step):
        hi = min(lo + step, size)
        chunk = keys[:, lo:hi]
        if metric == "cosine":
            scores = (queries @ gallery[lo:hi].T).astype(np.float32)
            chunk[...] = _descending_keys(scores)
        else:
            counts = np.zeros((n, hi - lo), count_type)
            for word in range(queries.shape[1]):
                differing = np.bitwise_xor.outer(
                    queries[:, word], gallery[lo:hi, word]
                )
                counts += np.bitwise_count(differing)
            chunk[...] = counts
        chunk <<= np.uint64(_INDEX_BITS)
        chunk |= np.arange(lo, hi, dtype=np.uint64)
    rows = np.flatnonzero(self_position >= 0)
    excluded = self_position[rows].astype(np.uint64)
    keys[rows, self_position[rows]] = _EXCLUDED | excluded
    if top == 0:
        return np.empty((n, 0), np.int64)
    if top < size:
        keys.partition(top - 1, axis=1)
        keys = keys[:, :top]
    keys = np.sort(keys, axis=1)
    return (keys & _INDEX_MASK).astype(np.int64)


def _descending_keys(scores):
    """uint32 keys of finite float32 scores, ascending as scores descend."""
    scores += np.float32(0.0)  # -0.0 becomes +0.0, equal to 0.0
    bits = scores.view(np.uint32)
    # Negative scores keep their bits (larger magnitude, larger key);
    # non-negative ones flip all but the sign bit (larger, smaller key).
    flip = bits >> np.uint32(31)
    flip -= np.uint32(1)
    flip &= np.uint32(0x7FFFFFFF)
    bits ^= flip
    return bits


def _check_metric(metric):
    if not isinstance(metric, str) or metric not in METRICS:
        raise ValueError(
            f"metric must be one of {', '.join(map(repr, METRICS))}, "
            f"got {metric!r}"
        )


def _check_ks(ks):
    if isinstance(ks, int | np.integer):
        ks = (ks,)
    ks = tuple(ks)
    if not ks:
        raise ValueError("ks must hold at least one K")
    for k in ks:
        _check_positive_int(k, "ks")
    return tuple(dict.fromkeys(int(k) for k in ks))


def _check_positive_int(value, name):
    if (
        isinstance(value, bool)
        or not isinstance(value, int | np.integer)
        or value < 1
    ):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _check_embeddings(embeddings, name, metric):
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D [N, D], got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty (shape {x.shape})")
    if metric == "hamming":
        if x.dtype != np.uint8:
            raise ValueError(
                f"{name} must be uint8 packed codes (np.packbits) for "
                f"metric='hamming', got dtype {x.dtype}"
            )
        return x
    if not (
        np.issubdtype(x.dtype, np.floating)
        or np.issubdtype(x.dtype, np.integer)
    ):
        raise ValueError(
            f"{name} must be real numbers for metric='cosine', "
            f"got dtype {x.dtype}"
        )
    if not np.isfinite(x).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return x


def _check_widths(queries, gallery, metric):
    if queries.shape[1] != gallery.shape[1]:
        unit = "bytes" if metric == "hamming" else "dimensions"
        raise ValueError(
            f"query_embeddings has {queries.shape[1]} {unit} but "
            f"gallery_embeddings has {gallery.shape[1]}"
        )
    if len(gallery) >= 2**_INDEX_BITS:
        raise ValueError(
            f"gallery_embeddings has {len(gallery)} rows, more than 2**32"
        )


def _check_ids(ids, name, embeddings, embeddings_name):
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {ids.shape}")
    if len(ids) != len(embeddings):
        raise ValueError(
            f"{name} has {len(ids)} entries but {embeddings_name} has "
            f"{len(embeddings)} rows"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(
            f"{name} must be integer product ids (< 0 for none), "
            f"got dtype {ids.dtype}"
        )
    return ids.astype(np.int64)


def _check_exclude_self(exclude_self, queries, gallery):
    if exclude_self and len(queries) != len(gallery):
        raise ValueError(
            "exclude_self=True needs the queries and the gallery to be the "
            f"same set, got {len(queries)} query_embeddings rows and "
            f"{len(gallery)} gallery_embeddings rows"
        )


def _check_relevance(relevance, num_relevant):
    relevance = np.asarray(relevance)
    if relevance.ndim != 2:
        raise ValueError(
            f"relevance must be 2-D [queries, ranked items], got shape "
            f"{relevance.shape}"
        )
    if not (
        relevance.dtype == bool or np.issubdtype(relevance.dtype, np.integer)
    ):
        raise ValueError(
            f"relevance must be booleans (or 0/1), got dtype {relevance.dtype}"
        )
    relevance = relevance != 0
    found = relevance.sum(axis=1)
    if num_relevant is None:
        return relevance, found
    r = np.asarray(num_relevant)
    if r.shape != (len(relevance),) or not np.issubdtype(r.dtype, np.integer):
        raise ValueError(
            f"num_relevant must be {len(relevance)} integers (one per "
            f"relevance row), got shape {r.shape} and dtype {r.dtype}"
        )
    if (r < found).any():
        raise ValueError(
            "num_relevant is below the number of relevant items in a "
            "relevance row"
        )
    return relevance, r.astype(np.int64)
