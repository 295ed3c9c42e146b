"""ITQ: PCA, then a rotation fitted to the signs (iterative quantisation)."""

from typing import Any
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.blas import single_threaded_blas
from grok_tf.compression.hashers.base import HasherFitError
from grok_tf.compression.hashers.base import register_hasher
from grok_tf.compression.hashers.sign_projection import SignProjectionHasher


@register_hasher
class ITQHasher(SignProjectionHasher):
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
    directions), nor the number of independent training rows: `fit`
    raises a `HasherFitError` then. Registered as `"itq"`, saved to
    `itq.npz`.

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

    name = "itq"
    file_name = "itq.npz"

    def __init__(self, bits: int = 256, iterations: int = 50, seed: int = 0):
        super().__init__(bits, seed)
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        self.iterations = int(iterations)
        self.pca: np.ndarray | None = None
        self.rotation: np.ndarray | None = None

    def fit(self, embeddings: ArrayLike, verbose: int = 0) -> Self:
        """Learns the mean, PCA and rotation; returns self."""
        x = check_embeddings(embeddings, "embeddings", min_rows=2)
        if self.bits > x.shape[1]:
            raise HasherFitError(
                f"ITQ needs bits <= the embedding width: bits={self.bits} > "
                f"d={x.shape[1]} (PCA has at most d directions)"
            )
        # One BLAS thread: far faster next to TensorFlow (see `blas`).
        with single_threaded_blas():
            mean = x.mean(0)
            self.pca = principal_directions(x - mean, self.bits)
            reduced = (x - mean) @ self.pca
            rotation = random_rotation(self.bits, self.seed)
            for _ in range(self.iterations):
                rotation = itq_rotation_step(reduced, rotation)
        self.rotation = rotation
        self.set_projection(mean, self.pca @ rotation)
        return self

    def quantization_error(
        self, embeddings: ArrayLike, rotation: np.ndarray | None = None
    ) -> float:
        """Mean `||B - V R||^2` per row on `embeddings` (`R`: fitted one)."""
        self.check_fitted()
        x = check_embeddings(embeddings, "embeddings", self.input_dim)
        rotation = self.rotation if rotation is None else rotation
        return quantization_error((x - self.mean) @ self.pca, rotation)

    def _arrays(self) -> dict[str, Any]:
        return {
            **super()._arrays(),
            "iterations": self.iterations,
            "pca": self.pca,
            "rotation": self.rotation,
        }

    @classmethod
    def _from_arrays(cls, data: Any) -> Self:
        hasher = cls(
            int(data["bits"]), int(data["iterations"]), int(data["seed"])
        )
        hasher.pca, hasher.rotation = data["pca"], data["rotation"]
        return hasher


def principal_directions(centred: np.ndarray, count: int) -> np.ndarray:
    """The top `count` principal directions of centred data, `[d, count]`.

    Raises:
        HasherFitError: the data have fewer than `count` rows.
    """
    # Right singular vectors, by decreasing singular value.
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    if len(vt) < count:
        raise HasherFitError(
            f"ITQ needs at least bits={count} independent rows, got "
            f"{len(vt)} (fit on more embeddings)"
        )
    return vt[:count].T


def random_rotation(size: int, seed: int) -> np.ndarray:
    """A random orthogonal `[size, size]` matrix (QR of a Gaussian)."""
    gaussian = np.random.default_rng(seed).standard_normal((size, size))
    q, r = np.linalg.qr(gaussian)
    return q * np.sign(np.diag(r))  # uniform (Haar) over rotations


def itq_rotation_step(reduced: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """One ITQ round: `B = sign(V R)`, then the Procrustes `R` for `B`."""
    codes = np.where(reduced @ rotation >= 0, 1.0, -1.0)
    u, _, vt = np.linalg.svd(codes.T @ reduced)
    return vt.T @ u.T


def quantization_error(reduced: np.ndarray, rotation: np.ndarray) -> float:
    """Mean over rows of `||sign(V R) - V R||^2`."""
    rotated = reduced @ rotation
    codes = np.where(rotated >= 0, 1.0, -1.0)
    return float(np.mean(np.sum((codes - rotated) ** 2, axis=1)))
