"""Hashers that are the signs of an affine projection: LSH and ITQ.

`b = [(x - mu) P > 0]`, with `mu` a `[d]` mean and `P` a `[d, bits]`
projection learned by `fit` (`grok_tf.compression.hashers.lsh`, `.itq`),
packed eight to a byte by `grok_tf.compression.binary_codes`. NumPy
computes it in float64; `tf_codes` does the same in the graph (float64
variables, so served codes equal `codes`), which lets the SavedModel
serve these hashers too. Saved as one `.npz` of the parameters.
"""

from pathlib import Path
from typing import Any
from typing import Self

import numpy as np
import tensorflow as tf
from numpy.typing import ArrayLike

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import pack_bits
from grok_tf.compression.binary_codes import sign_bits
from grok_tf.compression.hashers.base import Hasher


class SignProjectionHasher(Hasher):
    """The shared parts of a sign-of-projection hasher.

    Subclasses learn `mean` `[d]` and `projection` `[d, bits]` in `fit`
    (through `set_projection`), and list their other saved values in
    `_arrays` / `_from_arrays`.

    Args:
        bits: the code length, a positive multiple of 8.
        seed: seed of what `fit` draws.
    """

    def __init__(self, bits: int = 256, seed: int = 0) -> None:
        super().__init__(bits, seed)
        self.mean: np.ndarray | None = None
        self.projection: np.ndarray | None = None
        self._graph: _Projection | None = None

    def set_projection(self, mean: np.ndarray, projection: np.ndarray) -> None:
        """Sets the learned `mu` and `P` (and forgets the TF copies)."""
        self.mean, self.projection = mean, projection
        self._graph = None

    @property
    def fitted(self) -> bool:
        return self.projection is not None

    @property
    def input_dim(self) -> int | None:
        """The embedding width seen by `fit` (None before)."""
        return None if self.projection is None else len(self.projection)

    def project(self, embeddings: ArrayLike) -> np.ndarray:
        """The float projection `(x - mu) P`, `[N, bits]` float64."""
        self.check_fitted()
        x = check_embeddings(embeddings, "embeddings", self.input_dim)
        return (x - self.mean) @ self.projection

    def bits_of(self, embeddings: ArrayLike) -> np.ndarray:
        """Sign bits `[N, bits]` bool (True where the projection is > 0)."""
        return self.project(embeddings) > 0

    def codes(self, embeddings: ArrayLike) -> np.ndarray:
        """Packed codes `[N, bits // 8]` uint8 (faiss bit order)."""
        return np.asarray(pack_bits(self.bits_of(embeddings)))

    def tf_codes(self, embeddings: Any) -> Any:
        """`codes` in the graph: `pack_bits((x - mu) P > 0)`, float64."""
        graph = self._projection_variables()
        x = tf.cast(embeddings, tf.float64)
        return pack_bits(sign_bits(tf.matmul(x - graph.mean, graph.projection)))

    def trackables(self) -> list[Any]:
        return [self._projection_variables()]

    def _projection_variables(self) -> "_Projection":
        self.check_fitted()
        if self._graph is None:
            self._graph = _Projection(self.mean, self.projection, self.name)
        return self._graph

    def weights(self) -> list[np.ndarray]:
        self.check_fitted()
        return [self.mean, self.projection]

    def save(self, folder: str | Path) -> Path:
        """Writes `folder/<file_name>`, an `.npz` of the parameters."""
        self.check_fitted()
        path = self.path(folder)
        np.savez(path, kind=self.name, **self._arrays())
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        path = cls.path(folder)
        with np.load(path, allow_pickle=False) as data:
            if str(data["kind"]) != cls.name:
                raise ValueError(
                    f"{path} holds a {data['kind']} hasher, not {cls.name}"
                )
            hasher = cls._from_arrays(data)
            hasher.set_projection(data["mean"], data["projection"])
        return hasher

    def _arrays(self) -> dict[str, Any]:
        return {
            "bits": self.bits,
            "seed": self.seed,
            "mean": self.mean,
            "projection": self.projection,
        }

    @classmethod
    def _from_arrays(cls, data: Any) -> Self:
        """A hasher with the settings of an `.npz` (parameters set after)."""
        return cls(bits=int(data["bits"]), seed=int(data["seed"]))


class _Projection(tf.Module):
    """`mu` and `P` as float64 TF variables, for `tf_codes` and export."""

    def __init__(self, mean: np.ndarray, projection: np.ndarray, name: str):
        super().__init__(name=f"{name}_projection")
        self.mean = tf.Variable(
            np.asarray(mean, np.float64), trainable=False, name="mean"
        )
        self.projection = tf.Variable(
            np.asarray(projection, np.float64),
            trainable=False,
            name="projection",
        )
