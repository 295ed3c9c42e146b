import faiss
import numpy as np
import pytest
import tensorflow as tf

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import code_bytes
from grok_tf.compression.binary_codes import hamming_distances
from grok_tf.compression.binary_codes import pack_bits
from grok_tf.compression.binary_codes import sign_bits
from grok_tf.compression.binary_codes import unpack_bits


def random_bits(rows, width, seed=0):
    return np.random.default_rng(seed).integers(0, 2, (rows, width)) > 0


def python_hamming(a, b):
    """Differing bits of two byte strings, counted one byte at a time."""
    return sum(bin(x ^ y).count("1") for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("width", [8, 24, 256])
def test_pack_bits_matches_numpy_little_bit_order(width):
    bits = random_bits(7, width)
    expected = np.packbits(bits, axis=-1, bitorder="little")
    np.testing.assert_array_equal(pack_bits(bits), expected)
    np.testing.assert_array_equal(pack_bits(bits.astype("int32")), expected)


def test_bit_j_goes_to_byte_j_div_8_from_the_least_significant_bit():
    bits = np.zeros((1, 16), bool)
    bits[0, [0, 9, 15]] = True
    assert pack_bits(bits).numpy().tolist() == [[1, 2 + 128]]


def test_sign_codes_match_faiss_real_to_binary():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(9, 64)).astype("float32")
    x[0, :5] = 0.0  # ties: 0 gives bit 0 in both
    expected = np.zeros((9, 8), np.uint8)
    faiss.real_to_binary(x.size, faiss.swig_ptr(x), faiss.swig_ptr(expected))
    np.testing.assert_array_equal(pack_bits(sign_bits(x)), expected)


def test_sign_bits_tie_at_zero_is_zero():
    assert sign_bits(np.array([[-1.0, 0.0, 1e-30]])).numpy().tolist() == [
        [False, False, True]
    ]


def test_pack_and_unpack_in_a_function_with_unknown_batch_and_batch_zero():
    x = np.random.default_rng(2).normal(size=(5, 32)).astype("float32")

    @tf.function(input_signature=[tf.TensorSpec([None, 32], tf.float32)])
    def codes(values):
        return pack_bits(sign_bits(values))

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.uint8)])
    def unpack(values):
        return unpack_bits(values)

    packed = codes(x)
    np.testing.assert_array_equal(
        packed, np.packbits(x > 0, axis=-1, bitorder="little")
    )
    np.testing.assert_array_equal(unpack(packed), x > 0)
    assert codes(np.zeros((0, 32), "float32")).shape == (0, 4)
    assert unpack(np.zeros((0, 4), np.uint8)).shape == (0, 32)


def test_pack_bits_in_a_saved_model(tmp_path):
    module = tf.Module()
    module.codes = tf.function(
        lambda values: pack_bits(sign_bits(values)),
        input_signature=[tf.TensorSpec([None, 16], tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path))
    loaded = tf.saved_model.load(str(tmp_path))
    x = np.random.default_rng(3).normal(size=(3, 16)).astype("float32")
    np.testing.assert_array_equal(
        loaded.codes(x), np.packbits(x > 0, axis=-1, bitorder="little")
    )
    assert loaded.codes(np.zeros((0, 16), "float32")).shape == (0, 2)


@pytest.mark.parametrize("width", [8, 40, 256])
def test_unpack_inverts_pack(width):
    bits = random_bits(6, width, seed=width)
    codes = pack_bits(bits)
    np.testing.assert_array_equal(unpack_bits(codes), bits)
    np.testing.assert_array_equal(
        unpack_bits(codes),
        np.unpackbits(codes.numpy(), axis=-1, bitorder="little") > 0,
    )


def test_bad_widths_and_ranks_are_clear_errors():
    with pytest.raises(ValueError, match="multiple of 8, got 12"):
        pack_bits(np.zeros((2, 12), bool))
    with pytest.raises(ValueError, match="bits must have rank 2"):
        pack_bits(np.zeros(16, bool))
    with pytest.raises(TypeError, match="codes must be uint8"):
        unpack_bits(np.zeros((2, 2), np.int32))

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.bool)])
    def unknown_width(bits):
        return pack_bits(bits)

    with pytest.raises(ValueError, match="known width"):
        unknown_width.get_concrete_function()


def test_code_bytes():
    assert code_bytes(256) == 32
    for bad in (0, 12, -8):
        with pytest.raises(ValueError, match="multiple of 8"):
            code_bytes(bad)
    with pytest.raises(TypeError):
        code_bytes(256.0)


@pytest.mark.parametrize("code_length", [3, 32])  # bytes, and 64-bit words
def test_hamming_distances_match_a_python_bit_count(code_length):
    rng = np.random.default_rng(code_length)
    queries = rng.integers(0, 256, (5, code_length), dtype=np.uint8)
    database = rng.integers(0, 256, (300, code_length), dtype=np.uint8)
    expected = [
        [python_hamming(q.tobytes(), d.tobytes()) for d in database]
        for q in queries
    ]
    np.testing.assert_array_equal(
        hamming_distances(queries, database), expected
    )


def test_hamming_distances_match_faiss_binary_flat_search():
    rng = np.random.default_rng(4)
    database = rng.integers(0, 256, (200, 32), dtype=np.uint8)
    queries = rng.integers(0, 256, (300, 32), dtype=np.uint8)  # > 1 block
    index = faiss.IndexBinaryFlat(256)
    index.add(database)
    distances, neighbours = index.search(queries, 10)
    ours = hamming_distances(queries, database)
    np.testing.assert_array_equal(
        np.take_along_axis(ours, neighbours, axis=1), distances
    )
    np.testing.assert_array_equal(np.sort(ours, axis=1)[:, :10], distances)


def test_hamming_distances_errors():
    with pytest.raises(ValueError, match="queries have 2 bytes"):
        hamming_distances(
            np.zeros((1, 2), np.uint8), np.zeros((1, 3), np.uint8)
        )
    with pytest.raises(ValueError, match="database must be uint8"):
        hamming_distances(np.zeros((1, 2), np.uint8), np.zeros((1, 2)))


def test_check_embeddings_names_the_argument():
    with pytest.raises(ValueError, match="vectors must be \\[N, d\\]"):
        check_embeddings(np.zeros(3), "vectors")
    with pytest.raises(ValueError, match="vectors must have width 4, got 3"):
        check_embeddings(np.zeros((2, 3)), "vectors", width=4)
    with pytest.raises(ValueError, match="vectors needs at least 5 rows"):
        check_embeddings(np.zeros((2, 3)), "vectors", min_rows=5)
    with pytest.raises(ValueError, match="vectors contains NaN"):
        check_embeddings(np.array([[0.0, np.nan]]), "vectors")
