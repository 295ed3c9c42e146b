"""Tests of `grok_tf.evaluation.retrieval_metrics`: hand-computed cases, a
loop-based reference on random data, batching invariance and error messages."""

import math

import numpy as np
import pytest

from grok_tf.evaluation import retrieval_metrics as rm
from grok_tf.evaluation.retrieval_metrics import map_at_r
from grok_tf.evaluation.retrieval_metrics import rank_gallery
from grok_tf.evaluation.retrieval_metrics import recall_at_k
from grok_tf.evaluation.retrieval_metrics import retrieval_metrics

# The gallery is the 5 one-hot vectors e_0..e_4, so a query's cosine with
# item j is its j-th weight over its norm: the weights spell the ranking.
HAND_GALLERY = np.eye(5)
HAND_GALLERY_IDS = [10, 20, 10, 30, 20]
HAND_QUERIES = np.array(
    [
        [0.9, 0.5, 0.7, 0.1, 0.3],  # id 10: ranks 0 2 1 4 3
        [0.1, 0.8, 0.2, 0.9, 0.5],  # id 20: ranks 3 1 4 2 0
        [0.6, 0.9, 0.3, 0.4, 0.8],  # id 30: ranks 1 4 0 3 2
    ]
)
HAND_QUERY_IDS = [10, 20, 30]


def test_hand_computed_recall_and_map_at_r():
    # Relevance along each ranking (gallery ids 10 20 10 30 20):
    #   query id 10: 0+ 2+ 1- 4- 3-   R = 2
    #   query id 20: 3- 1+ 4+ 2- 0-   R = 2
    #   query id 30: 1- 4- 0- 3+ 2-   R = 1
    # R@1: only the first query -> 1/3.
    # R@3: first (rank 1), second (rank 2); the third's match is 4th -> 2/3.
    # R@5: everyone -> 1.
    # AP@R: first: top 2 = ++ -> (1/1 + 2/2) / 2 = 1.
    #       second: top 2 = -+ -> (1/2) / 2 = 0.25.
    #       third: top 1 = - -> 0.
    # MAP@R = (1 + 0.25 + 0) / 3.
    report = retrieval_metrics(
        HAND_QUERIES,
        HAND_QUERY_IDS,
        HAND_GALLERY,
        HAND_GALLERY_IDS,
        ks=(1, 3, 5),
    )
    assert report == {
        "recall@1": 1 / 3,
        "recall@3": 2 / 3,
        "recall@5": 1.0,
        "map@r": 1.25 / 3,
        "queries": 3,
        "queries_without_match": 0,
    }
    np.testing.assert_array_equal(
        rank_gallery(HAND_QUERIES, HAND_GALLERY),
        [[0, 2, 1, 4, 3], [3, 1, 4, 2, 0], [1, 4, 0, 3, 2]],
    )
    np.testing.assert_array_equal(
        rank_gallery(HAND_QUERIES, HAND_GALLERY, top=2),
        [[0, 2], [3, 1], [1, 4]],
    )


def test_default_ks_and_k_beyond_the_gallery():
    # K = 10 > 5 items: every query with a match counts.
    report = retrieval_metrics(
        HAND_QUERIES, HAND_QUERY_IDS, HAND_GALLERY, HAND_GALLERY_IDS
    )
    assert list(report) == [
        "recall@1",
        "recall@5",
        "recall@10",
        "map@r",
        "queries",
        "queries_without_match",
    ]
    assert report["recall@5"] == report["recall@10"] == 1.0


def test_recall_and_map_from_relevance_rows():
    relevance = [
        [1, 0, 1, 1, 0],  # R = 3: (1/1 + 2/3) / 3 = 5/9; hit at 1
        [0, 0, 1, 0, 0],  # R = 1: top 1 misses -> 0; hit at 3
        [0, 1, 0, 0, 1],  # R = 2: (1/2) / 2 = 1/4; hit at 2
        [0, 0, 0, 0, 0],  # R = 0: excluded
    ]
    assert recall_at_k(relevance, 1) == 1 / 3
    assert recall_at_k(relevance, 2) == 2 / 3
    assert recall_at_k(relevance, 3) == 1.0
    assert map_at_r(relevance) == pytest.approx((5 / 9 + 0 + 1 / 4) / 3)
    # Truncated rows with the true R: the last query had a match further
    # down (R = 1), so it now counts, as a miss.
    top2 = np.array(relevance, bool)[:, :2]
    assert recall_at_k(top2, 2, num_relevant=[3, 1, 2, 1]) == 2 / 4
    assert map_at_r(top2[:, :1], num_relevant=[1, 1, 0, 0]) == 0.5
    assert recall_at_k(np.zeros((2, 3), bool), 1) is None
    assert map_at_r(np.zeros((2, 3), bool)) is None


def test_exclude_self_on_a_symmetric_set():
    # Unit vectors at these angles (degrees) with ids 1 1 2 2 3; cosine
    # order is angular distance. Without self:
    #   0 deg (id 1):   30+ 45- 100- 220-        R = 1: R@1 hit, AP 1
    #   30 deg (id 1):  45- 0+ 100- 220-         R = 1: R@2 hit, AP 0
    #   45 deg (id 2):  30- 0- 100+ 220-         R = 1: R@3 hit, AP 0
    #   100 deg (id 2): 45+ 30- 0- 220-          R = 1: R@1 hit, AP 1
    #   220 deg (id 3): no other id 3            -> without match
    # R@1 = 2/4, R@2 = 3/4, MAP@R = 2/4.
    angles = np.radians([0, 30, 45, 100, 220])
    points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    ids = [1, 1, 2, 2, 3]
    report = retrieval_metrics(
        points, ids, points, ids, ks=(1, 2), exclude_self=True
    )
    assert report == {
        "recall@1": 0.5,
        "recall@2": 0.75,
        "map@r": 0.5,
        "queries": 4,
        "queries_without_match": 1,
    }
    np.testing.assert_array_equal(
        rank_gallery(points, points, exclude_self=True),
        [[1, 2, 3, 4], [2, 0, 3, 4], [1, 0, 3, 4], [2, 1, 0, 4], [3, 0, 1, 2]],
    )
    # Keeping self, each query finds itself first, and R is one higher:
    # AP@2 of the first four is 1 (++), 1/2 (+-), 1/2 (+-), 1 (++); the
    # last query (R = 1, itself) now counts, with AP 1. MAP@R = 4/5.
    kept = retrieval_metrics(points, ids, points, ids, ks=(1,))
    assert kept == {
        "recall@1": 1.0,
        "map@r": 0.8,
        "queries": 5,
        "queries_without_match": 0,
    }


def test_exclude_self_when_every_item_matches():
    # R = 3 of 4 items and K = 10: the rankings reach the gallery's end,
    # where self sits, and self must still not count.
    points = np.random.default_rng(0).normal(size=(4, 3))
    report = retrieval_metrics(
        points, [1] * 4, points, [1] * 4, ks=(1, 10), exclude_self=True
    )
    assert report["recall@1"] == report["recall@10"] == 1.0
    assert report["map@r"] == 1.0 and report["queries"] == 4


def test_negative_ids_are_ignored():
    queries = np.array([[1.0, 0.0], [0.0, 1.0]])
    gallery = np.array([[1.0, 0.05], [1.0, 0.5], [0.0, 1.0]])
    # Gallery item 0 (id -1) is the first query's nearest; it is dropped,
    # so the query's match, item 1, comes first. The second query (id -1)
    # is not evaluated at all.
    report = retrieval_metrics(queries, [1, -1], gallery, [-1, 1, 2], ks=(1,))
    assert report == {
        "recall@1": 1.0,
        "map@r": 1.0,
        "queries": 1,
        "queries_without_match": 0,
    }
    assert report == retrieval_metrics(
        queries[:1], [1], gallery[1:], [1, 2], ks=(1,)
    )
    # With an id, item 0 would have been in the way.
    blocked = retrieval_metrics(queries, [1, -1], gallery, [3, 1, 2], ks=(1,))
    assert blocked["recall@1"] == 0.0 and blocked["map@r"] == 0.0


def test_queries_without_match_are_counted_and_excluded():
    # A 4th query (id 99) has no match; the other three score as before.
    queries = np.vstack([HAND_QUERIES, HAND_QUERIES[:1]])
    report = retrieval_metrics(
        queries, [*HAND_QUERY_IDS, 99], HAND_GALLERY, HAND_GALLERY_IDS
    )
    assert report["queries"] == 3 and report["queries_without_match"] == 1
    assert report["recall@1"] == 1 / 3 and report["map@r"] == 1.25 / 3
    none = retrieval_metrics(queries[:1], [99], HAND_GALLERY, HAND_GALLERY_IDS)
    assert none == {
        "recall@1": None,
        "recall@5": None,
        "recall@10": None,
        "map@r": None,
        "queries": 0,
        "queries_without_match": 1,
    }
    # A gallery without ids: every query is without match.
    no_ids = retrieval_metrics(queries, [1, 2, 3, 4], HAND_GALLERY, [-1] * 5)
    assert no_ids["queries"] == 0 and no_ids["queries_without_match"] == 4


def test_ties_are_broken_by_gallery_index():
    # Items 0 and 1 are the same vector: item 0 ranks first.
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    query = np.array([[1.0, 0.1]])
    first = retrieval_metrics(query, [6], gallery, [5, 6, 7], ks=(1, 2))
    assert (first["recall@1"], first["recall@2"], first["map@r"]) == (
        0.0,
        1.0,
        0.0,
    )
    swapped = retrieval_metrics(query, [6], gallery, [6, 5, 7], ks=(1,))
    assert swapped["recall@1"] == 1.0
    # A zero query ties with everything (cosine 0, no NaN): index order.
    np.testing.assert_array_equal(
        rank_gallery(np.zeros((1, 2)), gallery), [[0, 1, 2]]
    )
    # Hamming: equal codes (items 0 and 2), then distances 1 and 2.
    codes = np.packbits(
        [[1, 0, 1], [1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 1, 0]],
        axis=1,
        bitorder="little",
    )
    np.testing.assert_array_equal(
        rank_gallery(codes[:1], codes, metric="hamming"), [[0, 2, 1, 3, 4]]
    )


def test_ties_at_the_cut_off_keep_the_lowest_gallery_indices():
    # 300 items of 3 distinct codes: every rank is a tie, also at `top`.
    rng = np.random.default_rng(4)
    base = rng.integers(0, 256, (3, 4), dtype=np.uint8)
    codes = base[rng.integers(0, 3, 300)]
    distances = _hamming_bit_by_bit(codes, codes, 32)
    for top in (1, 7, 150):
        ranked = rank_gallery(codes, codes, metric="hamming", top=top)
        expected = np.argsort(distances, axis=1, kind="stable")[:, :top]
        np.testing.assert_array_equal(ranked, expected)
        # exclude_self: self ranks out, the rule holds for the others.
        ranked = rank_gallery(
            codes, codes, metric="hamming", top=top, exclude_self=True
        )
        np.fill_diagonal(distances, 10**6)
        expected = np.argsort(distances, axis=1, kind="stable")[:, :top]
        np.fill_diagonal(distances, 0)
        np.testing.assert_array_equal(ranked, expected)


def test_cosine_sort_keys_follow_the_scores():
    # The float32 -> uint32 key map behind the ranking: descending scores
    # give ascending keys, and -0.0 ties with 0.0.
    scores = np.array([1.0, 0.5, 1e-30, 0.0, -0.0, -1e-30, -0.5, -1.0])
    keys = rm._descending_keys(scores.astype(np.float32))
    assert keys.dtype == np.uint32
    assert (np.diff(keys.astype(np.int64)) > 0).sum() == len(scores) - 2
    assert keys[3] == keys[4] and (np.diff(keys.astype(np.int64)) >= 0).all()


def _clusters(rng, clusters=8, per_cluster=6, dims=64, noise=0.15):
    centres = rng.normal(size=(clusters, dims))
    ids = np.repeat(np.arange(clusters), per_cluster)
    points = centres[ids] + noise * rng.normal(size=(len(ids), dims))
    return points, ids


def _hamming_bit_by_bit(query_codes, gallery_codes, bits):
    q = np.unpackbits(query_codes, axis=1, bitorder="little")[:, :bits]
    g = np.unpackbits(gallery_codes, axis=1, bitorder="little")[:, :bits]
    return (q[:, None, :] != g[None, :, :]).sum(axis=2)


@pytest.mark.parametrize("bits", [37, 64, 96])
def test_hamming_ranking_matches_brute_force_and_float(bits):
    rng = np.random.default_rng(bits)
    points, ids = _clusters(rng, dims=bits)
    codes = np.packbits(points > 0, axis=1, bitorder="little")
    assert codes.dtype == np.uint8 and codes.shape[1] == math.ceil(bits / 8)

    # The same ranking as bit-by-bit distances with a stable sort.
    distances = _hamming_bit_by_bit(codes, codes, bits)
    expected = np.argsort(distances, axis=1, kind="stable")
    np.testing.assert_array_equal(
        rank_gallery(codes, codes, metric="hamming"), expected
    )

    # Well-separated clusters: both orderings put a point's cluster first.
    by_hamming = rank_gallery(codes, codes, "hamming", exclude_self=True)
    by_cosine = rank_gallery(points, points, "cosine", exclude_self=True)
    size = np.count_nonzero(ids == 0) - 1
    assert (ids[by_hamming[:, :size]] == ids[:, None]).all()
    np.testing.assert_array_equal(
        np.sort(by_hamming[:, :size], axis=1),
        np.sort(by_cosine[:, :size], axis=1),
    )
    for metric, x in [("hamming", codes), ("cosine", points)]:
        report = retrieval_metrics(
            x, ids, x, ids, ks=(1, 5), exclude_self=True, metric=metric
        )
        assert report["recall@1"] == report["map@r"] == 1.0
        assert report["queries"] == len(ids)


def _random_case(rng, metric, exclude_self):
    """Random embeddings with few ids (R varies, some ids < 0 or absent)."""
    n_query, n_gallery = (60, 60) if exclude_self else (50, 80)
    if metric == "cosine":
        queries = rng.normal(size=(n_query, 6)).astype(np.float32)
        gallery = rng.normal(size=(n_gallery, 6)).astype(np.float32)
    else:  # 20-bit codes: many ties
        queries = rng.integers(0, 256, size=(n_query, 3), dtype=np.uint8)
        gallery = rng.integers(0, 256, size=(n_gallery, 3), dtype=np.uint8)
        queries[:, 2] &= 0x0F
        gallery[:, 2] &= 0x0F
    query_ids = rng.integers(-1, 14, size=n_query)
    gallery_ids = rng.integers(-1, 12, size=n_gallery)
    query_ids[:3] = [100, 101, 102]  # ids with no other item
    if exclude_self:
        gallery = queries
        # Mostly the same ids, some changed or dropped on one side only.
        gallery_ids = np.where(
            rng.random(n_gallery) < 0.8, query_ids, gallery_ids
        )
        gallery_ids[:3] = query_ids[:3]
    return queries, query_ids, gallery, gallery_ids


def _reference(queries, query_ids, gallery, gallery_ids, ks, exclude, metric):
    """Recall@K and MAP@R the slow, obvious way."""
    hits = dict.fromkeys(ks, 0)
    precisions = []
    without_match = 0
    for i, query in enumerate(queries):
        if query_ids[i] < 0:
            continue
        keys = {}
        for j, item in enumerate(gallery):
            if gallery_ids[j] < 0 or (exclude and i == j):
                continue
            if metric == "cosine":
                dot = sum(
                    float(a) * float(b)
                    for a, b in zip(query, item, strict=True)
                )
                norms = math.sqrt(sum(float(a) ** 2 for a in query))
                norms *= math.sqrt(sum(float(b) ** 2 for b in item))
                # Higher is closer; the module ranks float32 scores.
                keys[j] = (-float(np.float32(dot / norms)), j)
            else:
                q_bits = np.unpackbits(query, bitorder="little")
                g_bits = np.unpackbits(item, bitorder="little")
                differing = 0
                for a, b in zip(q_bits, g_bits, strict=True):
                    differing += int(a != b)
                keys[j] = (differing, j)
        ranking = sorted(keys, key=keys.__getitem__)
        relevant = [gallery_ids[j] == query_ids[i] for j in ranking]
        r = sum(relevant)
        if r == 0:
            without_match += 1
            continue
        for k in ks:
            hits[k] += any(relevant[:k])
        found, total = 0, 0.0
        for position in range(r):
            if relevant[position]:
                found += 1
                total += found / (position + 1)
        precisions.append(total / r)
    n = len(precisions)
    report = {f"recall@{k}": hits[k] / n for k in ks}
    report["map@r"] = sum(precisions) / n
    report["queries"] = n
    report["queries_without_match"] = without_match
    return report


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("metric", ["cosine", "hamming"])
def test_matches_a_loop_reference_on_random_data(metric, exclude_self):
    rng = np.random.default_rng(7 + exclude_self)
    case = _random_case(rng, metric, exclude_self)
    ks = (1, 2, 5, 10)
    report = retrieval_metrics(
        *case, ks=ks, exclude_self=exclude_self, metric=metric, batch_size=16
    )
    expected = _reference(*case, ks, exclude_self, metric)
    assert report["queries"] == expected["queries"] >= 30
    assert expected["queries_without_match"] > 0
    assert report == pytest.approx(expected, rel=1e-12, abs=0)


@pytest.mark.parametrize("exclude_self", [False, True])
@pytest.mark.parametrize("metric", ["cosine", "hamming"])
def test_batching_does_not_change_results(metric, exclude_self, monkeypatch):
    rng = np.random.default_rng(3)
    queries, query_ids, gallery, gallery_ids = _random_case(
        rng, metric, exclude_self
    )
    args = (queries, query_ids, gallery, gallery_ids)
    options = {"ks": (1, 5), "exclude_self": exclude_self, "metric": metric}
    reports = [
        retrieval_metrics(*args, batch_size=size, **options)
        for size in (1, 7, 1000)
    ]
    rankings = [
        rank_gallery(queries, gallery, metric, None, exclude_self, size)
        for size in (1, 7, 1000)
    ]
    # Also rank the gallery in chunks of a few items.
    monkeypatch.setattr(rm, "_CHUNK_ELEMENTS", 40)
    reports.append(retrieval_metrics(*args, batch_size=7, **options))
    rankings.append(rank_gallery(queries, gallery, metric, None, exclude_self))
    for report in reports[1:]:
        assert report == reports[0]
    for ranking in rankings[1:]:
        np.testing.assert_array_equal(ranking, rankings[0])


def _call(**changes):
    args = {
        "query_embeddings": np.ones((3, 4)),
        "query_ids": [1, 2, 3],
        "gallery_embeddings": np.ones((2, 4)),
        "gallery_ids": [1, 2],
    }
    return retrieval_metrics(**{**args, **changes})


CODES = np.zeros((2, 4), np.uint8)

ERRORS = [
    ({"query_ids": [1, 2]}, "query_ids has 2 entries but query_embeddings"),
    ({"gallery_ids": [1, 2, 3]}, "gallery_ids has 3 entries but gallery_emb"),
    ({"query_ids": [[1, 2, 3]]}, "query_ids must be 1-D"),
    ({"query_ids": [1.0, 2.0, 3.0]}, "query_ids must be integer"),
    ({"query_embeddings": np.ones(4)}, r"query_embeddings must be 2-D"),
    ({"gallery_embeddings": np.ones((2, 4, 1))}, "gallery_embeddings must"),
    (
        {"gallery_embeddings": np.ones((2, 3))},
        "query_embeddings has 4 dimensions but gallery_embeddings has 3",
    ),
    (
        {"query_embeddings": np.ones((0, 4)), "query_ids": []},
        "query_embeddings is empty",
    ),
    (
        {"gallery_embeddings": np.ones((2, 0))},
        "gallery_embeddings is empty",
    ),
    ({"metric": "l2"}, "metric must be one of 'cosine', 'hamming', got 'l2'"),
    (
        {"metric": "hamming", "gallery_embeddings": CODES},
        "query_embeddings must be uint8 packed codes .* got dtype float64",
    ),
    (
        {
            "metric": "hamming",
            "query_embeddings": np.zeros((3, 4), np.uint8),
            "gallery_embeddings": CODES.astype(np.int8),
        },
        "gallery_embeddings must be uint8 packed codes .* got dtype int8",
    ),
    (
        {"gallery_embeddings": np.array([[1.0, np.nan, 0, 0], [1, 1, 1, 1]])},
        "gallery_embeddings holds NaN",
    ),
    (
        {"query_embeddings": np.ones((3, 4), complex)},
        "query_embeddings must be real numbers",
    ),
    ({"ks": ()}, "ks must hold at least one K"),
    ({"ks": (1, 0)}, "ks must be a positive integer, got 0"),
    ({"ks": (1.5,)}, "ks must be a positive integer"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"exclude_self": True}, "exclude_self=True needs .* same set"),
]


@pytest.mark.parametrize(("changes", "message"), ERRORS)
def test_error_messages(changes, message):
    with pytest.raises(ValueError, match=message):
        _call(**changes)


def test_error_messages_of_the_other_functions():
    with pytest.raises(ValueError, match="metric must be one of"):
        rank_gallery(np.ones((1, 2)), np.ones((1, 2)), metric="dot")
    with pytest.raises(ValueError, match="top must be a positive integer"):
        rank_gallery(np.ones((1, 2)), np.ones((1, 2)), top=0)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        recall_at_k([[1, 0]], 0)
    with pytest.raises(ValueError, match="relevance must be 2-D"):
        map_at_r([1, 0])
    with pytest.raises(ValueError, match="relevance must be booleans"):
        map_at_r([[0.5, 1.0]])
    with pytest.raises(ValueError, match="MAP@R needs at least the top R"):
        map_at_r([[1, 0]], num_relevant=[3])
    with pytest.raises(ValueError, match="num_relevant is below"):
        recall_at_k([[1, 1]], 1, num_relevant=[1])
    with pytest.raises(ValueError, match="num_relevant must be 1 integers"):
        recall_at_k([[1, 1]], 1, num_relevant=[2, 2])
