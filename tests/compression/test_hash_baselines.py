import numpy as np
import pytest

from grok_tf.compression.hashers.baselines import ITQHasher
from grok_tf.compression.hashers.baselines import LSHHasher
from grok_tf.compression.hashers.baselines import itq_rotation_step
from grok_tf.compression.hashers.baselines import quantization_error
from grok_tf.compression.hashers.baselines import random_rotation


def embeddings(rows=300, width=24, seed=0):
    """Anisotropic data (ITQ's rotation matters when variances differ)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, width)) * np.linspace(3.0, 0.2, width) + 1.0


def test_lsh_shapes_and_bit_order():
    x = embeddings()
    lsh = LSHHasher(bits=32, seed=3).fit(x)
    bits = lsh.bits_of(x)
    assert bits.shape == (300, 32) and bits.dtype == bool
    codes = lsh.codes(x)
    assert codes.shape == (300, 4) and codes.dtype == np.uint8
    np.testing.assert_array_equal(
        codes, np.packbits(bits, axis=-1, bitorder="little")
    )


def test_lsh_is_deterministic_by_seed():
    x = embeddings()
    first = LSHHasher(bits=64, seed=5).fit(x).codes(x)
    np.testing.assert_array_equal(first, LSHHasher(64, seed=5).fit(x).codes(x))
    assert not np.array_equal(first, LSHHasher(64, seed=6).fit(x).codes(x))


def test_lsh_bits_differ_with_probability_angle_over_pi():
    theta = 1.0
    pair = np.array([[1.0, 0.0], [np.cos(theta), np.sin(theta)]])
    lsh = LSHHasher(bits=8192, seed=0, center=False).fit(pair)
    bits = lsh.bits_of(pair)
    differ = np.mean(bits[0] != bits[1])
    # Binomial(8192, 1/pi): standard deviation 0.005.
    assert abs(differ - theta / np.pi) < 0.02


def test_lsh_centres_on_the_training_mean():
    x = embeddings() + 4.0
    bits = LSHHasher(bits=256, seed=1).fit(x).bits_of(x)
    uncentred = LSHHasher(bits=256, seed=1, center=False).fit(x).bits_of(x)
    # The data lie far from 0: uncentred bits are mostly constant.
    assert np.abs(bits.mean(0) - 0.5).mean() < 0.1
    assert np.abs(uncentred.mean(0) - 0.5).mean() > 0.3


def test_itq_rotation_is_orthogonal():
    itq = ITQHasher(bits=16, seed=2).fit(embeddings())
    np.testing.assert_allclose(
        itq.rotation @ itq.rotation.T, np.eye(16), atol=1e-10
    )
    np.testing.assert_allclose(itq.pca.T @ itq.pca, np.eye(16), atol=1e-10)


def test_itq_lowers_the_quantization_error():
    x = embeddings()
    itq = ITQHasher(bits=16, iterations=50, seed=2).fit(x)
    start = itq.quantization_error(x, random_rotation(16, 2))
    pca_sign = itq.quantization_error(x, np.eye(16))
    trained = itq.quantization_error(x)
    assert trained < 0.95 * start
    assert trained < 0.95 * pca_sign


def test_each_itq_step_does_not_raise_the_error():
    x = embeddings()
    reduced = (x - x.mean(0)) @ ITQHasher(bits=16).fit(x).pca
    rotation = random_rotation(16, 0)
    errors = [quantization_error(reduced, rotation)]
    for _ in range(10):
        rotation = itq_rotation_step(reduced, rotation)
        errors.append(quantization_error(reduced, rotation))
    assert np.all(np.diff(errors) <= 1e-9)


def test_itq_hash_is_the_sign_of_the_rotated_pca_projection():
    x = embeddings()
    itq = ITQHasher(bits=8, seed=0).fit(x)
    projected = (x - x.mean(0)) @ itq.pca @ itq.rotation
    np.testing.assert_array_equal(itq.bits_of(x), projected > 0)


def test_itq_with_more_bits_than_dimensions_is_a_clear_error():
    with pytest.raises(ValueError, match="bits=32 > d=24"):
        ITQHasher(bits=32).fit(embeddings())


@pytest.mark.parametrize(
    "hasher", [LSHHasher(bits=40, seed=4), ITQHasher(bits=16, seed=4)]
)
def test_save_load_round_trip_gives_identical_codes(hasher, tmp_path):
    x = embeddings()
    hasher.fit(x)
    path = tmp_path / "hasher.npz"
    hasher.save(path)
    loaded = type(hasher).load(path)
    queries = embeddings(50, seed=9)
    np.testing.assert_array_equal(loaded.codes(queries), hasher.codes(queries))
    assert (loaded.bits, loaded.seed) == (hasher.bits, hasher.seed)


def test_loading_the_wrong_kind_fails(tmp_path):
    LSHHasher(bits=8).fit(embeddings()).save(tmp_path / "lsh.npz")
    with pytest.raises(ValueError, match="holds a lsh hasher, not itq"):
        ITQHasher.load(tmp_path / "lsh.npz")


def test_bad_inputs_are_clear_errors():
    x = embeddings()
    with pytest.raises(ValueError, match="multiple of 8, got 30"):
        LSHHasher(bits=30)
    with pytest.raises(RuntimeError, match="call fit"):
        ITQHasher(bits=8).codes(x)
    with pytest.raises(RuntimeError, match="call fit"):
        LSHHasher(bits=8).save("unused.npz")
    lsh = LSHHasher(bits=8).fit(x)
    with pytest.raises(ValueError, match="embeddings must have width 24"):
        lsh.codes(x[:, :5])
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        ITQHasher(bits=8).fit(bad)
