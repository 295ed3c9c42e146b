"""LSH: sign random projections, the hashing baseline with no training."""

from typing import Any
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.hashers.base import register_hasher
from grok_tf.compression.hashers.sign_projection import SignProjectionHasher


@register_hasher
class LSHHasher(SignProjectionHasher):
    """Sign random projections (locality-sensitive hashing for angles).

    `b_k(x) = [(x - mu) . w_k > 0]` for `k < bits`, with `w_k` the columns
    of a Gaussian `[d, bits]` matrix drawn from `seed` and `mu` the mean of
    the training embeddings (`center=True`) or 0 (plain SimHash). The bits
    of two vectors at angle `theta` (about `mu`) differ with probability
    `theta / pi` each. Registered as `"lsh"`, saved to `lsh.npz`.

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

    name = "lsh"
    file_name = "lsh.npz"

    def __init__(self, bits: int = 256, seed: int = 0, center: bool = True):
        super().__init__(bits, seed)
        self.center = bool(center)

    def fit(self, embeddings: ArrayLike, verbose: int = 0) -> Self:
        """Draws the projection for the width of `embeddings`; returns self."""
        x = check_embeddings(embeddings, "embeddings", min_rows=1)
        rng = np.random.default_rng(self.seed)
        projection = rng.standard_normal((x.shape[1], self.bits))
        mean = x.mean(0) if self.center else np.zeros(x.shape[1])
        self.set_projection(mean, projection)
        return self

    def _arrays(self) -> dict[str, Any]:
        return {**super()._arrays(), "center": self.center}

    @classmethod
    def _from_arrays(cls, data: Any) -> Self:
        return cls(int(data["bits"]), int(data["seed"]), bool(data["center"]))
