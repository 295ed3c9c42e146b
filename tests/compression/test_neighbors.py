import numpy as np
import pytest

from grok_tf.compression.neighbors import nearest_neighbors


def test_nearest_neighbors_match_brute_force():
    # 1500 queries: two blocks of 1024, self exclusion across the seam.
    x = np.random.default_rng(9).normal(size=(1500, 3)).astype("float32")
    distances = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(distances, np.inf)
    expected = np.argsort(distances, axis=1)[:, :4]
    np.testing.assert_array_equal(
        nearest_neighbors(x, x, 4, exclude_self=True), expected
    )


def test_other_queries_and_bad_k():
    database = np.array([[0.0], [1.0], [3.0]], "float32")
    queries = np.array([[2.9], [-5.0]], "float32")
    np.testing.assert_array_equal(
        nearest_neighbors(queries, database, 2), [[2, 1], [0, 1]]
    )
    assert nearest_neighbors(queries[:0], database, 2).shape == (0, 2)
    with pytest.raises(ValueError, match=r"k must be in 1\.\.2, got 3"):
        nearest_neighbors(database, database, 3, exclude_self=True)
