"""Baseline binary hashes to compare the Catalyzer with: LSH and ITQ.

Both map a float embedding `x` (width `d`) to `bits` sign bits,
`b = [P(x) > 0]`, packed eight to a byte by `grok_tf.compression.binary_codes`:

- `LSHHasher`, sign random projections (Charikar 2002):
  `P(x) = (x - mu) W`, with `W` a seeded `[d, bits]` Gaussian matrix and
  `mu` the training mean (`center=False` keeps `mu = 0`, plain SimHash).
  Two vectors at angle `theta` (about `mu`) differ in each bit with
  probability `theta / pi`.
- `ITQHasher`, iterative quantisation (Gong & Lazebnik 2011):
  `P(x) = (x - mu) W_pca R`, the PCA projection to `bits` dimensions then
  an orthogonal rotation `R` learned to minimise the quantisation error
  `||B - V R||_F^2` over codes `B` in {-1, 1} (see `ITQHasher`).

Both are NumPy only, seeded, and saved to / loaded from one `.npz` file so
a run directory can keep them next to the Catalyzer.
"""

import numpy as np

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import code_bytes
from grok_tf.compression.binary_codes import pack_bits


class _SignHasher:
    """Shared parts: a learned affine projection followed by sign bits."""

    kind = None

    def __init__(self, bits, seed):
        code_bytes(bits)  # validates bits
        self.bits = int(bits)
        self.seed = int(seed)
        self.mean = None
        self.projection = None

    @property
    def input_dim(self):
        """The embedding width seen by `fit` (None before)."""
        return None if self.projection is None else len(self.projection)

    def project(self, embeddings):
        """The float projection `(x - mu) P`, `[N, bits]` float64."""
        self._check_fitted()
        x = check_embeddings(embeddings, "embeddings", self.input_dim)
        return (x - self.mean) @ self.projection

    def bits_of(self, embeddings):
        """Sign bits `[N, bits]` bool (True where the projection is > 0)."""
        return self.project(embeddings) > 0

    def codes(self, embeddings):
        """Packed codes `[N, bits // 8]` uint8 (faiss bit order)."""
        return np.asarray(pack_bits(self.bits_of(embeddings)))

    def save(self, path):
        """Writes the hasher to `path` (an `.npz`; NumPy adds the suffix)."""
        self._check_fitted()
        np.savez(path, kind=self.kind, **self._arrays())

    def _check_fitted(self):
        if self.projection is None:
            raise RuntimeError(f"{type(self).__name__}: call fit() first")

    def _arrays(self):
        return {
            "bits": self.bits,
            "seed": self.seed,
            "mean": self.mean,
            "projection": self.projection,
        }

    @classmethod
    def load(cls, path):
        """Reads a hasher written by `save`."""
        with np.load(path, allow_pickle=False) as data:
            if str(data["kind"]) != cls.kind:
                raise ValueError(
                    f"{path} holds a {data['kind']} hasher, not {cls.kind}"
                )
            return cls._from_arrays(data)


class LSHHasher(_SignHasher):
    """Sign random projections (locality-sensitive hashing for angles).

    `b_k(x) = [(x - mu) . w_k > 0]` for `k < bits`, with `w_k` the columns
    of a Gaussian `[d, bits]` matrix drawn from `seed` and `mu` the mean of
    the training embeddings (`center=True`) or 0. The bits of two vectors at
    angle `theta` (about `mu`) differ with probability `theta / pi` each.

    Args:
        bits: the code length, a positive multiple of 8. Defaults to 256.
        seed: seed of the projection. Defaults to 0.
        center: whether `fit` subtracts the training mean. Defaults to True.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 16))
    >>> LSHHasher(bits=32, seed=1).fit(x).codes(x).shape
    (100, 4)

    Reference:
        Charikar, "Similarity Estimation Techniques from Rounding
        Algorithms", STOC 2002.
    """

    kind = "lsh"

    def __init__(self, bits=256, seed=0, center=True):
        super().__init__(bits, seed)
        self.center = bool(center)

    def fit(self, embeddings):
        """Draws the projection for the width of `embeddings`; returns self."""
        x = check_embeddings(embeddings, "embeddings", min_rows=1)
        rng = np.random.default_rng(self.seed)
        self.projection = rng.standard_normal((x.shape[1], self.bits))
        self.mean = x.mean(0) if self.center else np.zeros(x.shape[1])
        return self

    def _arrays(self):
        return {**super()._arrays(), "center": self.center}

    @classmethod
    def _from_arrays(cls, data):
        hasher = cls(int(data["bits"]), int(data["seed"]), bool(data["center"]))
        hasher.mean, hasher.projection = data["mean"], data["projection"]
        return hasher


class ITQHasher(_SignHasher):
    """Iterative quantisation: PCA, then a rotation fitted to the signs.

    With `V = (X - mu) W_pca` the centred training data projected on its
    top `bits` principal directions, ITQ looks for codes `B` in {-1, 1} and
    an orthogonal `R` minimising the quantisation error

        Q(B, R) = ||B - V R||_F^2

    alternating, from a random orthogonal `R` (seeded):

        B = sign(V R)                     (R fixed)
        S Omega S_hat^T = svd(B^T V),  R = S_hat S^T       (B fixed)

    for `iterations` rounds. Each step cannot raise `Q`. The hash of `x`
    is `[(x - mu) W_pca R > 0]`, stored as one `[d, bits]` projection.
    `bits` cannot exceed the embedding width `d` (PCA gives at most `d`
    directions): `fit` raises a ValueError then.

    Args:
        bits: the code length, a positive multiple of 8, <= d. Defaults to
            256.
        iterations: alternating rounds. Defaults to 50 (as in the paper).
        seed: seed of the initial rotation. Defaults to 0.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(200, 32))
    >>> itq = ITQHasher(bits=16, seed=1).fit(x)
    >>> itq.codes(x).shape
    (200, 2)

    Reference:
        Gong, Lazebnik, "Iterative Quantization: A Procrustean Approach to
        Learning Binary Codes", CVPR 2011.
    """

    kind = "itq"

    def __init__(self, bits=256, iterations=50, seed=0):
        super().__init__(bits, seed)
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.iterations = int(iterations)
        self.pca = None
        self.rotation = None

    def fit(self, embeddings):
        """Learns the mean, PCA and rotation; returns self."""
        x = check_embeddings(embeddings, "embeddings", min_rows=2)
        if self.bits > x.shape[1]:
            raise ValueError(
                f"ITQ needs bits <= the embedding width: bits={self.bits} > "
                f"d={x.shape[1]} (PCA has at most d directions)"
            )
        self.mean = x.mean(0)
        self.pca = principal_directions(x - self.mean, self.bits)
        reduced = (x - self.mean) @ self.pca
        rotation = random_rotation(self.bits, self.seed)
        for _ in range(self.iterations):
            rotation = itq_rotation_step(reduced, rotation)
        self.rotation = rotation
        self.projection = self.pca @ rotation
        return self

    def quantization_error(self, embeddings, rotation=None):
        """Mean `||B - V R||^2` per row on `embeddings` (`R`: fitted one)."""
        x = check_embeddings(embeddings, "embeddings", self.input_dim)
        rotation = self.rotation if rotation is None else rotation
        return quantization_error((x - self.mean) @ self.pca, rotation)

    def _arrays(self):
        return {
            **super()._arrays(),
            "iterations": self.iterations,
            "pca": self.pca,
            "rotation": self.rotation,
        }

    @classmethod
    def _from_arrays(cls, data):
        hasher = cls(
            int(data["bits"]), int(data["iterations"]), int(data["seed"])
        )
        hasher.mean, hasher.projection = data["mean"], data["projection"]
        hasher.pca, hasher.rotation = data["pca"], data["rotation"]
        return hasher


def principal_directions(centred, count):
    """The top `count` principal directions of centred data, `[d, count]`."""
    # Right singular vectors, by decreasing singular value.
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if len(vt) < count:
        raise ValueError(
            f"ITQ needs at least bits={count} independent rows, got "
            f"{len(vt)} (fit on more embeddings)"
        )
    return vt[:count].T


def random_rotation(size, seed):
    """A random orthogonal `[size, size]` matrix (QR of a Gaussian)."""
    gaussian = np.random.default_rng(seed).standard_normal((size, size))
    q, r = np.linalg.qr(gaussian)
    return q * np.sign(np.diag(r))  # uniform (Haar) over rotations


def itq_rotation_step(reduced, rotation):
    """One ITQ round: `B = sign(V R)`, then the Procrustes `R` for `B`."""
    codes = np.where(reduced @ rotation >= 0, 1.0, -1.0)
    u, _, vt = np.linalg.svd(codes.T @ reduced)
    return vt.T @ u.T


def quantization_error(reduced, rotation):
    """Mean over rows of `||sign(V R) - V R||^2`."""
    rotated = reduced @ rotation
    codes = np.where(rotated >= 0, 1.0, -1.0)
    return float(np.mean(np.sum((codes - rotated) ** 2, axis=1)))
