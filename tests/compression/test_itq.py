import numpy as np
import pytest

from grok_tf.compression.hashers import HasherFitError
from grok_tf.compression.hashers.itq import ITQHasher
from grok_tf.compression.hashers.itq import itq_rotation_step
from grok_tf.compression.hashers.itq import quantization_error
from grok_tf.compression.hashers.itq import random_rotation


def embeddings(rows=300, width=24, seed=0):
    """Anisotropic data (ITQ's rotation matters when variances differ)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, width)) * np.linspace(3.0, 0.2, width) + 1.0


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


@pytest.mark.parametrize(
    "rows, bits, message",
    [
        (300, 32, r"^ITQ needs bits <= the embedding width: bits=32 > d=24 "),
        (12, 16, r"^ITQ needs at least bits=16 independent rows, got 12 "),
    ],
)
def test_what_itq_cannot_fit_is_a_hasher_fit_error(rows, bits, message):
    itq = ITQHasher(bits=bits)
    with pytest.raises(HasherFitError, match=message) as error:
        itq.fit(embeddings(rows))
    assert "\n" not in str(error.value)
    assert not itq.fitted


def test_save_load_keeps_pca_and_rotation(tmp_path):
    itq = ITQHasher(bits=16, iterations=3, seed=4).fit(embeddings())
    itq.save(tmp_path)
    loaded = ITQHasher.load(tmp_path)
    assert (loaded.bits, loaded.iterations, loaded.seed) == (16, 3, 4)
    np.testing.assert_array_equal(loaded.pca, itq.pca)
    np.testing.assert_array_equal(loaded.rotation, itq.rotation)
    x = embeddings(20, seed=3)
    assert loaded.quantization_error(x) == itq.quantization_error(x)


def test_bad_inputs_are_clear_errors():
    x = embeddings()
    with pytest.raises(ValueError, match="iterations must be >= 0, got -1"):
        ITQHasher(bits=8, iterations=-1)
    with pytest.raises(RuntimeError, match="call fit"):
        ITQHasher(bits=8).codes(x)
    with pytest.raises(RuntimeError, match="call fit"):
        ITQHasher(bits=8).quantization_error(x)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="embeddings contains NaN"):
        ITQHasher(bits=8).fit(bad)
