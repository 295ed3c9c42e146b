import numpy as np
import pytest

from grok_tf.compression.hashers.lsh import LSHHasher


def embeddings(rows=300, width=24, seed=0):
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


def test_save_load_keeps_the_settings(tmp_path):
    LSHHasher(bits=16, seed=7, center=False).fit(embeddings()).save(tmp_path)
    loaded = LSHHasher.load(tmp_path)
    assert (loaded.bits, loaded.seed, loaded.center) == (16, 7, False)
    assert not loaded.mean.any()


def test_loading_another_kind_under_this_name_fails(tmp_path):
    from grok_tf.compression.hashers.itq import ITQHasher

    ITQHasher(bits=8).fit(embeddings()).save(tmp_path)
    (tmp_path / "itq.npz").rename(tmp_path / "lsh.npz")
    with pytest.raises(ValueError, match="holds a itq hasher, not lsh"):
        LSHHasher.load(tmp_path)


def test_bad_inputs_are_clear_errors(tmp_path):
    x = embeddings()
    with pytest.raises(ValueError, match="multiple of 8, got 30"):
        LSHHasher(bits=30)
    with pytest.raises(RuntimeError, match="call fit"):
        LSHHasher(bits=8).save(tmp_path)
    assert not list(tmp_path.iterdir())
    lsh = LSHHasher(bits=8).fit(x)
    with pytest.raises(ValueError, match="embeddings must have width 24"):
        lsh.codes(x[:, :5])
