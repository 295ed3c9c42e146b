"""Binary codes: sign bits, byte packing and Hamming distances.

GrokNet compresses each embedding to 256 bits (32 bytes). The bits are the
signs of a float vector (the Catalyzer's output, or an LSH / ITQ
projection, see `grok_tf.compression.hashers`), packed
eight to a byte in faiss's order: bit `j` goes to byte `j // 8`, at
position `j % 8` counted from the least significant bit

    byte_k = sum_{t=0..7} bit_{8k+t} * 2^t

which is `np.packbits(bits, axis=-1, bitorder="little")` and what
`faiss.real_to_binary` writes, so packed codes go straight into a
`faiss.IndexBinaryFlat`. The Hamming distance between two codes is the
number of set bits of their XOR.

`sign_bits`, `pack_bits` and `unpack_bits` are graph ops (they run inside a
`tf.function` or a SavedModel signature, for any batch size including 0);
`hamming_distances` is a NumPy search helper for evaluation.
"""

import numpy as np
from keras import ops

BITS_PER_BYTE = 8

# Place value of each bit within its byte, least significant first.
_PLACE_VALUES = tuple(1 << t for t in range(BITS_PER_BYTE))

# Query rows per block in `hamming_distances` (bounds the XOR's memory).
_QUERY_BLOCK = 256


def code_bytes(bits):
    """Bytes of a packed code of `bits` bits (`bits // 8`).

    Args:
        bits: the code length in bits, a positive multiple of 8.

    Returns:
        int, `bits // 8`.

    Example:

    >>> code_bytes(256)
    32
    """
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)):
        raise TypeError(f"bits must be an int, got {bits!r}")
    if bits <= 0 or bits % BITS_PER_BYTE:
        raise ValueError(
            f"bits must be a positive multiple of {BITS_PER_BYTE}, got {bits}"
        )
    return int(bits) // BITS_PER_BYTE


def sign_bits(x):
    """The sign bits of `x`: True where `x > 0`.

    A component exactly 0 gives bit 0 (False), as in
    `faiss.real_to_binary`; NaN gives 0 too.

    Args:
        x: float array or tensor `[..., bits]`.

    Returns:
        bool tensor of the shape of `x`.

    Example:

    >>> sign_bits([[0.5, 0.0, -2.0]]).numpy().tolist()
    [[True, False, False]]
    """
    return ops.greater(x, 0)


def pack_bits(bits):
    """Packs bits eight to a byte, least significant bit first (faiss order).

    Bit `j` of a row goes to byte `j // 8` at position `j % 8`:
    `byte_k = sum_t bit_{8k+t} 2^t`, the same as
    `np.packbits(bits, axis=-1, bitorder="little")`. Works inside a
    `tf.function` with an unknown batch size, and for a batch of 0.

    Args:
        bits: bool or 0/1 integer `[N, B]`, `B` a known multiple of 8.

    Returns:
        uint8 tensor `[N, B // 8]`.

    Example:

    >>> import numpy as np
    >>> pack_bits(np.array([[1, 0, 0, 0, 0, 0, 0, 1]], bool)).numpy()
    array([[129]], dtype=uint8)
    """
    bits = ops.convert_to_tensor(bits)
    width = _static_width(bits, "bits")
    code_bytes(width)  # validates the width
    grouped = ops.reshape(
        ops.cast(bits, "int32"), (-1, width // BITS_PER_BYTE, BITS_PER_BYTE)
    )
    place = ops.convert_to_tensor(_PLACE_VALUES, dtype="int32")
    return ops.cast(ops.sum(grouped * place, axis=-1), "uint8")


def unpack_bits(codes):
    """Unpacks uint8 codes to bits, the inverse of `pack_bits`.

    Bit `j` is bit `j % 8` (from the least significant) of byte `j // 8`,
    as `np.unpackbits(codes, axis=-1, bitorder="little")`.

    Args:
        codes: uint8 `[N, C]`, `C` known.

    Returns:
        bool tensor `[N, 8 * C]`.

    Example:

    >>> import numpy as np
    >>> unpack_bits(np.array([[129]], np.uint8)).numpy().astype(int)
    array([[1, 0, 0, 0, 0, 0, 0, 1]])
    """
    codes = ops.convert_to_tensor(codes)
    if codes.dtype != "uint8":
        raise TypeError(f"codes must be uint8, got {codes.dtype}")
    width = _static_width(codes, "codes")
    place = ops.convert_to_tensor(_PLACE_VALUES, dtype="uint8")
    set_bits = ops.bitwise_and(ops.expand_dims(codes, -1), place)
    return ops.reshape(ops.greater(set_bits, 0), (-1, width * BITS_PER_BYTE))


def hamming_distances(queries, database):
    """All Hamming distances between two sets of packed codes (NumPy).

    `D[q, n] = popcount(queries[q] XOR database[n])`, computed with
    `np.bitwise_count` on the codes viewed as unsigned 64-bit words when the
    code length allows it (else on bytes), a block of queries at a time.

    Args:
        queries: uint8 `[Q, C]` packed codes.
        database: uint8 `[N, C]` packed codes.

    Returns:
        int32 `[Q, N]` Hamming distances.

    Example:

    >>> import numpy as np
    >>> a = np.array([[0b1011]], np.uint8)
    >>> b = np.array([[0], [0b1000]], np.uint8)
    >>> hamming_distances(a, b).tolist()
    [[3, 2]]
    """
    queries = _as_codes(queries, "queries")
    database = _as_codes(database, "database")
    if queries.shape[1] != database.shape[1]:
        raise ValueError(
            f"queries have {queries.shape[1]} bytes per code, database "
            f"{database.shape[1]}"
        )
    words = "<u8" if queries.shape[1] % 8 == 0 else np.uint8
    queries, database = queries.view(words), database.view(words)
    out = np.empty((len(queries), len(database)), np.int32)
    for start in range(0, len(queries), _QUERY_BLOCK):
        block = queries[start : start + _QUERY_BLOCK, None, :]
        xor = np.bitwise_xor(block, database[None])
        out[start : start + _QUERY_BLOCK] = np.bitwise_count(xor).sum(-1)
    return out


def check_embeddings(embeddings, name, width=None, min_rows=0, dtype="float64"):
    """A `[N, d]` NumPy copy of `embeddings`, or a ValueError naming `name`.

    Args:
        embeddings: float array-like `[N, d]`.
        name: the argument name used in error messages.
        width: the required `d`, or None for any.
        min_rows: the least `N` accepted.
        dtype: the returned dtype. Defaults to float64.

    Returns:
        `np.ndarray` `[N, d]` of `dtype`, all values finite.
    """
    x = np.asarray(embeddings, dtype=dtype)
    if x.ndim != 2:
        raise ValueError(f"{name} must be [N, d], got shape {x.shape}")
    if width is not None and x.shape[1] != width:
        raise ValueError(f"{name} must have width {width}, got {x.shape[1]}")
    if len(x) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got {len(x)}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _static_width(tensor, name):
    """The known last dimension of a rank-2 tensor, with clear errors."""
    if len(tensor.shape) != 2:
        raise ValueError(
            f"{name} must have rank 2 [N, width], got shape {tensor.shape}"
        )
    width = tensor.shape[-1]
    if width is None:
        raise ValueError(f"{name} must have a known width, got {tensor.shape}")
    return int(width)


def _as_codes(codes, name):
    codes = np.ascontiguousarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2:
        raise ValueError(
            f"{name} must be uint8 [N, bytes], got {codes.dtype} {codes.shape}"
        )
    return codes
