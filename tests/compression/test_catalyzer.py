import keras
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.compression.binary_codes import hamming_distances
from grok_tf.compression.hashers.catalyzer import Catalyzer
from grok_tf.compression.hashers.catalyzer import CatalyzerHasher
from grok_tf.compression.hashers.catalyzer import CatalyzerLoss
from grok_tf.compression.hashers.catalyzer import build_catalyzer
from grok_tf.compression.hashers.catalyzer import build_catalyzer_trainer
from grok_tf.compression.hashers.catalyzer import catalyzer_codes
from grok_tf.compression.hashers.catalyzer import default_negative_rank
from grok_tf.compression.hashers.catalyzer import itq_start
from grok_tf.compression.hashers.catalyzer import koleo_loss
from grok_tf.compression.hashers.catalyzer import koleo_terms
from grok_tf.compression.hashers.catalyzer import mine_negatives
from grok_tf.compression.hashers.catalyzer import sample_positives
from grok_tf.compression.hashers.catalyzer import train_catalyzer
from grok_tf.compression.hashers.catalyzer import triplet_rank_loss
from grok_tf.compression.hashers.itq import ITQHasher
from grok_tf.compression.hashers.lsh import LSHHasher
from grok_tf.compression.neighbors import nearest_neighbors
from grok_tf.evaluation.retrieval_metrics import retrieval_metrics
from grok_tf.model.losses.pairwise_double_margin import PerExampleLoss
from tests.harness import check_config_round_trip
from tests.harness import check_fit_save_and_replicas
from tests.harness import run_layer_test

EPS = 1e-8


def numpy_koleo_terms(x):
    """-log(rho_i + eps), rho_i the distance to the nearest OTHER row."""
    x = np.asarray(x, np.float64)
    distances = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(distances, np.inf)  # exclude self
    return -np.log(distances.min(axis=1) + EPS)


def numpy_rank_loss(a, p, n, margin):
    a, p, n = (np.asarray(v, np.float64) for v in (a, p, n))
    gap = margin + ((a - p) ** 2).sum(-1) - ((a - n) ** 2).sum(-1)
    return np.maximum(gap, 0.0)


def unit_rows(rows, width, seed):
    x = np.random.default_rng(seed).normal(size=(rows, width))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


def test_koleo_matches_numpy_and_excludes_self():
    x = unit_rows(12, 5, seed=0)
    np.testing.assert_allclose(koleo_terms(x), numpy_koleo_terms(x), rtol=1e-5)
    np.testing.assert_allclose(
        koleo_loss(x), numpy_koleo_terms(x).mean(), rtol=1e-5
    )


def test_koleo_against_gathered_references_uses_the_global_rows():
    x = unit_rows(10, 4, seed=1)
    terms = koleo_terms(x[6:], references=x, offset=6)
    np.testing.assert_allclose(terms, numpy_koleo_terms(x)[6:], rtol=1e-5)


def test_koleo_with_duplicates_is_finite_with_finite_gradients():
    x = tf.constant(np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], "float32"))
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = koleo_loss(x)
    gradient = tape.gradient(loss, x)
    expected = np.array([-np.log(EPS), -np.log(EPS), -np.log(np.sqrt(2.0))])
    np.testing.assert_allclose(loss, expected.mean(), rtol=1e-4)
    assert np.isfinite(gradient.numpy()).all()


def test_koleo_spreading_lowers_the_loss():
    clumped = unit_rows(16, 8, seed=2) * 0.1 + np.eye(8)[0]
    spread = unit_rows(16, 8, seed=2)
    assert float(koleo_loss(spread)) < float(koleo_loss(clumped))


@pytest.mark.parametrize("margin", [0.0, 0.3])
def test_triplet_rank_loss_matches_numpy(margin):
    a, p, n = (unit_rows(20, 6, seed=s) for s in (3, 4, 5))
    np.testing.assert_allclose(
        triplet_rank_loss(a, p, n, margin),
        numpy_rank_loss(a, p, n, margin),
        rtol=1e-5,
        atol=1e-6,
    )
    assert (numpy_rank_loss(a, p, n, margin) == 0).any()  # hinge active
    assert (numpy_rank_loss(a, p, n, margin) > 0).any()


def test_catalyzer_loss_is_rank_plus_lambda_koleo():
    a, p, n = (unit_rows(10, 6, seed=s) for s in (6, 7, 8))
    out = CatalyzerLoss(lambda_koleo=0.2, margin=0.1)([a, p, n])
    expected = numpy_rank_loss(a, p, n, 0.1) + 0.2 * numpy_koleo_terms(a)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_catalyzer_layer_output_is_unit_norm():
    out = build_catalyzer(10, bits=16, hidden=32, seed=0)(
        np.random.default_rng(0).normal(size=(5, 10)).astype("float32")
    )
    assert out.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_catalyzer_layer_through_the_harness(tmp_path):
    # synchronized BatchNorm: two replicas then equal one device.
    kwargs = {"bits": 8, "hidden": 16, "synchronized": True, "seed": 1}
    run_layer_test(
        Catalyzer,
        kwargs,
        (6, 5),
        (6, 8),
        tmp_path,
        # 2 hidden kernels, 2 x BatchNorm (gamma, beta), output kernel, bias.
        expected_num_trainable_weights=8,
        expected_num_non_trainable_weights=4,  # BatchNorm moving stats
        expected_mixed_precision_dtype="float16",
    )


def test_catalyzer_trainer_fit_save_and_two_replicas(tmp_path):
    """KoLeo over the global batch: 2 replicas must equal 1 device.

    Each replica all-gathers the anchors, so a row's nearest other anchor
    may sit on the other replica (with per-replica KoLeo the losses and
    the SGD step would differ).
    """
    width, rows = 6, 8
    check_config_round_trip(CatalyzerLoss(lambda_koleo=0.3, margin=0.2))
    x = {
        name: unit_rows(rows, width, seed)
        for seed, name in enumerate(("anchor", "positive", "negative"))
    }

    def build():
        catalyzer = build_catalyzer(
            width, bits=8, hidden=16, synchronized=True, seed=3
        )
        return build_catalyzer_trainer(catalyzer, lambda_koleo=0.5, margin=1.0)

    def compile_kwargs():
        return {
            "optimizer": keras.optimizers.SGD(0.5),
            "loss": PerExampleLoss(),
        }

    y = np.zeros(rows, "float32")
    check_fit_save_and_replicas(
        build,
        compile_kwargs,
        x,
        y,
        tmp_path,
        # the shared Catalyzer: 2 hidden kernels, 2 x BatchNorm (gamma,
        # beta), output kernel and bias; its BatchNorm moving statistics.
        expected_num_trainable_weights=8,
        expected_num_non_trainable_weights=4,
    )


def test_negatives_are_the_k_neg_th_output_neighbour_that_is_no_positive():
    rng = np.random.default_rng(10)
    outputs = rng.normal(size=(30, 4)).astype("float32")
    positives = np.array([rng.choice(30, 3, replace=False) for _ in range(30)])
    positives[positives == np.arange(30)[:, None]] = 0  # any, not self
    negatives = mine_negatives(outputs, positives, k_neg=5)
    for row in range(30):
        distances = ((outputs - outputs[row]) ** 2).sum(-1)
        ranked = [j for j in np.argsort(distances) if j != row]
        candidates = [j for j in ranked if j not in positives[row]]
        assert negatives[row] == candidates[4]


def test_train_catalyzer_is_seeded_and_saves_to_keras(tmp_path):
    x = np.random.default_rng(11).normal(size=(120, 12)).astype("float32")
    kwargs = {"bits": 16, "hidden": 32, "epochs": 2, "batch_size": 40}
    model = train_catalyzer(x, seed=4, verbose=0, **kwargs)
    codes = catalyzer_codes(model, x)
    assert codes.shape == (120, 2) and codes.dtype == np.uint8
    again = train_catalyzer(x, seed=4, verbose=0, **kwargs)
    np.testing.assert_array_equal(catalyzer_codes(again, x), codes)
    model.save(tmp_path / "catalyzer.keras")
    loaded = keras.saving.load_model(tmp_path / "catalyzer.keras")
    np.testing.assert_array_equal(catalyzer_codes(loaded, x), codes)
    assert catalyzer_codes(loaded, x[:0]).shape == (0, 2)


def test_bad_inputs_are_clear_errors():
    x = np.random.default_rng(12).normal(size=(100, 8)).astype("float32")
    with pytest.raises(ValueError, match="embeddings needs at least 61 rows"):
        train_catalyzer(
            x[:60], bits=8, hidden=8, epochs=1, batch_size=8, k_neg=50
        )
    with pytest.raises(ValueError, match="embeddings must be \\[N, d\\]"):
        train_catalyzer(x[0], bits=8, hidden=8)
    bad = x.copy()
    bad[5, 1] = np.nan
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        train_catalyzer(bad, bits=8, hidden=8, epochs=1, batch_size=8)
    with pytest.raises(ValueError, match="multiple of 8, got 12"):
        train_catalyzer(x, bits=12, hidden=8)
    with pytest.raises(ValueError, match="batch_size=200 exceeds N=100"):
        train_catalyzer(x, bits=8, hidden=8, batch_size=200)
    model = build_catalyzer(8, bits=8, hidden=8)
    with pytest.raises(ValueError, match="embeddings must have width 8, got 5"):
        catalyzer_codes(model, x[:, :5])


def clustered_sheets(seed=0, clusters=20, per_cluster=20, width=32):
    """20 tight clusters in 32-d, each a random 2-d sheet plus noise.

    Inside a cluster the neighbours follow the 2-d sheet coordinates: a
    known structure at a scale (0.15) much finer than the distance between
    cluster centres (about 8), which random hyperplanes through the data
    mean rarely cut.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, width))
    sheets = np.linalg.qr(rng.normal(size=(clusters, width, 2)))[0]
    labels = np.repeat(np.arange(clusters), per_cluster)
    coordinates = 0.15 * rng.normal(size=(len(labels), 2))
    x = centres[labels] + np.einsum("nwc,nc->nw", sheets[labels], coordinates)
    x += 0.02 * rng.normal(size=x.shape)
    return x.astype("float32"), labels


def recall_at_k(codes, x, k=10):
    """Mean fraction of each row's true k-NN among its k Hamming-nearest.

    Rows tied with the k-th Hamming distance count fractionally (the
    expected recall under random tie-breaking).
    """
    true = nearest_neighbors(x, x, k, exclude_self=True)
    hamming = hamming_distances(codes, codes).astype(float)
    np.fill_diagonal(hamming, np.inf)
    kth = np.sort(hamming, axis=1)[:, k - 1 : k]
    closer = (hamming < kth).sum(1, keepdims=True)
    tied = (hamming == kth).sum(1, keepdims=True)
    found = np.take_along_axis(hamming, true, axis=1)
    hits = (found < kth) + (found == kth) * (k - closer) / tied
    return float(hits.sum(1).mean() / k)


def test_catalyzer_codes_keep_neighbours_better_than_lsh_and_itq():
    x, labels = clustered_sheets()
    bits = 32
    lsh = [
        recall_at_k(LSHHasher(bits, seed=s).fit(x).codes(x), x)
        for s in range(5)
    ]
    itq = recall_at_k(ITQHasher(bits, seed=0).fit(x).codes(x), x)
    model = train_catalyzer(
        x,
        bits=bits,
        hidden=64,
        epochs=40,
        batch_size=32,
        learning_rate=1e-2,
        k_pos=5,  # the 5 nearest of 19 cluster mates
        k_neg=10,
        seed=0,
        verbose=0,
    )
    codes = catalyzer_codes(model, x)
    catalyzer = recall_at_k(codes, x)
    print(f"recall@10 catalyzer {catalyzer:.3f} itq {itq:.3f} lsh", lsh)
    assert catalyzer > max(lsh) + 0.05
    assert catalyzer > np.mean(lsh) + 0.08
    assert catalyzer > itq + 0.1
    # The clusters themselves stay apart: the Hamming-nearest row is in
    # the same cluster.
    hamming = hamming_distances(codes, codes).astype(float)
    np.fill_diagonal(hamming, np.inf)
    assert np.mean(labels[hamming.argmin(1)] == labels) > 0.95


def test_default_negative_rank_scales_the_papers_rank_50_of_500k():
    assert default_negative_rank(2640) == 1  # clipped to at least 1
    assert default_negative_rank(100_000) == 10
    assert default_negative_rank(500_000) == 50  # the paper's setting
    assert default_negative_rank(10**8) == 50


def test_batch_norm_moving_statistics_follow_the_batches():
    """Momentum 0.9: after ~100 steps the moving variance is the batch one.

    Unit-norm 400-d embeddings give pre-activation variances ~1e-3; with
    Keras's momentum 0.99 the moving variance stayed near its initial 1
    after 10 short epochs, so inference ran a different network.
    """
    layer = Catalyzer(bits=8, hidden=16, seed=0)
    assert layer.get_config()["bn_momentum"] == 0.9
    x = unit_rows(64, 12, seed=13)
    for _ in range(60):
        layer(x, training=True)
    norm, dense = layer.norm_layers[0], layer.dense_layers[0]
    batch_variance = np.var(np.asarray(dense(x)), axis=0)
    np.testing.assert_allclose(norm.moving_variance, batch_variance, rtol=0.05)


def test_itq_start_gives_exactly_the_itq_codes():
    """A linear Catalyzer at `itq_start`: sign(W x + b) is ITQ's code."""
    x = np.random.default_rng(14).normal(size=(200, 24)).astype("float32")
    start = itq_start(x, 16, seed=2)
    itq = ITQHasher(16, seed=2).fit(x)
    projected = (x.astype(np.float64) - itq.mean) @ itq.projection
    scale = np.sqrt(np.mean(projected**2))
    np.testing.assert_allclose(start[0], itq.projection / scale, rtol=1e-5)
    model = build_catalyzer(24, bits=16, hidden_layers=0, seed=0)
    model.get_layer("mlp").output_layer.set_weights(start)
    np.testing.assert_array_equal(catalyzer_codes(model, x), itq.codes(x))
    # Unit scale: the pre-normalisation outputs have RMS 1.
    rms = np.sqrt(np.mean((x @ start[0] + start[1]) ** 2))
    assert rms == pytest.approx(1.0, rel=1e-4)
    assert itq_start(x, 32) is None  # bits > d: ITQ cannot fit
    assert itq_start(x[:10], 16) is None  # fewer rows than bits


def test_itq_started_training_moves_gently_from_itq():
    x, _ = clustered_sheets()
    itq = ITQHasher(16, seed=0).fit(x).codes(x)
    kwargs = {"bits": 16, "batch_size": 100, "verbose": 0, "hidden_layers": 0}
    model = train_catalyzer(
        x, epochs=1, init="itq", learning_rate=1e-4, **kwargs
    )
    assert model.get_layer("mlp").dense_layers == []  # linear
    kernel = model.get_layer("mlp").output_layer.get_weights()[0]
    assert not np.allclose(kernel, itq_start(x, 16)[0])  # trained
    bits = np.unpackbits(catalyzer_codes(model, x) ^ itq).mean()
    assert bits < 0.02  # but still (almost) ITQ's codes
    scratch = train_catalyzer(x, epochs=1, init="random", **kwargs)
    assert np.unpackbits(catalyzer_codes(scratch, x) ^ itq).mean() > 0.3
    with pytest.raises(ValueError, match="hidden_layers must be 0, got 2"):
        train_catalyzer(x, bits=16, init="itq")
    with pytest.raises(ValueError, match="init must be one of"):
        train_catalyzer(x, bits=16, init="pca")


def test_catalyzer_hasher_defaults_are_the_linear_itq_start():
    hasher = CatalyzerHasher()
    assert (hasher.hidden_layers, hasher.init) == (0, "itq")
    assert (hasher.epochs, hasher.learning_rate) == (3, 1e-3)
    assert hasher.training["lambda_koleo"] == 0.02
    assert hasher.label_share is None and hasher.supervised
    assert CatalyzerHasher(learning_rate=0.5).learning_rate == 0.5
    with pytest.raises(ValueError, match="init must be one of"):
        CatalyzerHasher(init="pca")
    x, labels = clustered_sheets()
    fitted = CatalyzerHasher(bits=16, epochs=1).fit(x)
    assert fitted.model.get_layer("mlp").hidden_layers == 0
    # label_share None: the ids are ignored, the same model as without.
    ignored = CatalyzerHasher(bits=16, epochs=1).fit(x, labels=labels)
    np.testing.assert_array_equal(ignored.codes(x), fitted.codes(x))


def test_views_of_one_photo_are_positives_like_ids():
    """`fit(groups=)` trains as ids with `label_share=view_share` would;
    ids, when used, take precedence over the groups."""
    x, labels = clustered_sheets()
    by_ids = CatalyzerHasher(bits=16, epochs=1, label_share=0.7)
    by_ids.fit(x, labels=labels)
    by_views = CatalyzerHasher(bits=16, epochs=1, view_share=0.7)
    by_views.fit(x, groups=labels)
    np.testing.assert_array_equal(by_views.codes(x), by_ids.codes(x))
    plain = CatalyzerHasher(bits=16, epochs=1).fit(x)
    kernel, plain_kernel = by_views.weights()[0], plain.weights()[0]
    assert not np.allclose(kernel, plain_kernel, atol=1e-6)
    other = np.arange(len(x))
    both = CatalyzerHasher(bits=16, epochs=1, label_share=0.7)
    both.fit(x, labels=labels, groups=other)
    np.testing.assert_array_equal(both.codes(x), by_ids.codes(x))
    with pytest.raises(ValueError, match="view_share must be in"):
        CatalyzerHasher(view_share=1.5)


def test_views_of_a_photo_without_id_share_an_id_of_their_own(monkeypatch):
    from grok_tf.compression.hashers.catalyzer import hasher as module

    seen = {}

    def spy(embeddings, **kwargs):
        seen.update(kwargs)
        return "trained"

    monkeypatch.setattr(module, "train_catalyzer", spy)
    labels = np.array([4, -1, -1, 4, -1, -1])  # 3 photos, 2 passes
    groups = np.array([0, 1, 2, 0, 1, 2])
    CatalyzerHasher(label_share=0.5).fit(
        np.zeros((6, 3)), labels=labels, groups=groups
    )
    np.testing.assert_array_equal(seen["labels"], [4, 6, 7, 4, 6, 7])
    assert seen["label_share"] == 0.5


def numpy_negatives(outputs, neighbours, k_neg, labels):
    """The k_neg-th nearest other row that is no neighbour and no same id."""
    out = []
    for i, row in enumerate(outputs):
        order = np.argsort(np.sum((outputs - row) ** 2, axis=1), kind="stable")
        kept = [
            j
            for j in order
            if j != i
            and j not in neighbours[i]
            and not (labels[i] >= 0 and labels[j] == labels[i])
        ]
        out.append(kept[k_neg - 1])
    return np.array(out)


def test_labelled_negatives_and_positives_match_numpy():
    rng = np.random.default_rng(3)
    outputs = rng.normal(size=(60, 5)).astype("float32")
    labels = rng.integers(-1, 6, size=60)
    neighbours = nearest_neighbors(outputs, outputs, 3, exclude_self=True)
    for k_neg in (1, 4):
        np.testing.assert_array_equal(
            mine_negatives(outputs, neighbours, k_neg, labels),
            numpy_negatives(outputs, neighbours, k_neg, labels),
        )
    # No ids: the paper's mining, unchanged.
    np.testing.assert_array_equal(
        mine_negatives(outputs, neighbours, 2, np.full(60, -1)),
        mine_negatives(outputs, neighbours, 2),
    )
    counts = np.bincount(labels[labels >= 0])
    for share in (1.0, 0.0):
        positives = sample_positives(neighbours, rng, labels, share)
        rows = np.arange(60)
        has_partner = (labels >= 0) & (counts[np.maximum(labels, 0)] > 1)
        assert not np.any(positives == rows)
        same = labels[positives] == labels
        from_neighbours = (positives[:, None] == neighbours).any(1)
        if share == 1.0:  # every row with a partner draws a same-id row
            assert same[has_partner].all()
        else:
            assert from_neighbours.all()
        assert from_neighbours[~has_partner].all()
    # Half the rows with a partner draw one at share 0.5 (200 rounds).
    draws = np.mean(
        [
            (sample_positives(neighbours, rng, labels, 0.5) != neighbours.T)
            .all(0)[has_partner]
            .mean()
            for _ in range(200)
        ]
    )
    assert 0.35 < draws < 0.55  # same-id partners can also be neighbours


def nuisance_products(seed, products=12, per_product=30, width=24):
    """Products told apart by 4 dimensions, under 20 dimensions of noise.

    Input-space neighbours are mostly other products (the noise is 4x the
    spacing of the product centres); a linear map that drops the noise
    dimensions finds them.
    """
    rng = np.random.default_rng(seed)
    centres = np.zeros((products, width))
    centres[:, :4] = rng.normal(size=(products, 4))
    labels = np.repeat(np.arange(products), per_product)
    x = centres[labels] + 0.1 * rng.normal(size=(len(labels), width))
    x[:, 4:] += 1.5 * rng.normal(size=(len(labels), width - 4))
    return x.astype("float32"), labels


def test_supervised_positives_beat_input_neighbours_on_labelled_data():
    """Same-id positives teach the map to drop the noise dimensions; input
    neighbours (mostly other products) cannot: held-out products (another
    seed) are then retrieved far better."""
    x, labels = nuisance_products(0)
    held_out, held_out_labels = nuisance_products(1)
    recall = {}
    for share in (None, 1.0):
        hasher = CatalyzerHasher(
            bits=16,
            epochs=8,
            batch_size=120,
            init="random",
            learning_rate=1e-2,
            label_share=share,
        ).fit(x, labels=labels)
        codes = hasher.codes(held_out)
        recall[share] = retrieval_metrics(
            codes,
            held_out_labels,
            codes,
            held_out_labels,
            metric="hamming",
            exclude_self=True,
        )["recall@1"]
    assert recall[1.0] > recall[None] + 0.15, recall
