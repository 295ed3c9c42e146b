"""The hasher family: float embeddings -> packed binary codes, by name.

A `Hasher` maps float embeddings `[N, d]` to `bits` sign bits packed eight
to a byte in faiss's order (`grok_tf.compression.binary_codes`), uint8
`[N, bits // 8]`. Every hasher is registered under its `name`:
`grok-tf compress` fits each registered one on a run's embeddings and saves
it to `RUN_DIR/hashes/` (`grok_tf.compression.compress`), `grok-tf
evaluate` compares their retrieval side by side, and product search and
the SavedModel take one by name (the Catalyzer by default, as in the
paper). Built in: `catalyzer`, `lsh` and `itq` (`grok_tf.compression.
hashers.catalyzer`, `.lsh`, `.itq`).

A new hasher is a short subclass, registered from anywhere before
`compress_run` runs:

    @register_hasher
    class RotationHasher(Hasher):
        name = "rotation"
        file_name = "rotation.npz"
        ...  # fit, fitted, codes, weights, save, load

`fit` raises `HasherFitError` when the method cannot fit the embeddings
(ITQ with more bits than dimensions): `compress_run` then records the
hasher as skipped, with the message, and fits the others.
"""

import abc
from pathlib import Path
from typing import Any
from typing import ClassVar
from typing import Self

import numpy as np
from numpy.typing import ArrayLike

from grok_tf.compression.binary_codes import code_bytes
from grok_tf.registry import ClassRegistry


class HasherFitError(ValueError):
    """A hasher cannot fit these embeddings, e.g. ITQ with bits > d.

    Raised by `Hasher.fit` for a limit of the method, in one line;
    `compress_run` records the message under `skipped` and goes on.
    """


class Hasher(abc.ABC):
    """Float embeddings `[N, d]` -> packed sign codes `uint8 [N, bits/8]`.

    A subclass sets `name` (its registry key) and `file_name` (what `save`
    writes in a folder, `load` reads back), and implements `fit`, `fitted`,
    `codes`, `weights`, `save` and `load`. It may implement `tf_codes`, the
    same codes as graph ops, with `trackables` the TF objects holding its
    parameters: then it can run inside the exported SavedModel.

    Args:
        bits: the code length, a positive multiple of 8. Defaults to 256.
        seed: seed of whatever `fit` draws at random. Defaults to 0.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(100, 16))
    >>> lsh = hasher_class("lsh")(bits=32, seed=1).fit(x)
    >>> lsh.codes(x).shape, lsh.codes(x).dtype
    ((100, 4), dtype('uint8'))
    """

    name: ClassVar[str] = ""
    file_name: ClassVar[str] = ""
    # A supervised hasher's `fit` also takes `labels=`: int `[N]` product
    # ids of the embeddings (-1: none), which `compress_run` passes.
    supervised: ClassVar[bool] = False
    # A hasher that learns from views also takes `groups=`: int `[N]`, rows
    # of one group are views of one photo (`compress_run(views=...)`).
    learns_from_views: ClassVar[bool] = False

    def __init__(self, bits: int = 256, seed: int = 0) -> None:
        code_bytes(bits)  # validates bits
        self.bits = int(bits)
        self.seed = int(seed)

    @abc.abstractmethod
    def fit(self, embeddings: ArrayLike, verbose: int = 0) -> Self:
        """Learns the hasher from float `[N, d]` embeddings; returns self.

        Args:
            embeddings: float `[N, d]` training embeddings, finite.
            verbose: 1 shows progress (hashers trained by epochs).

        Raises:
            HasherFitError: the method cannot fit these embeddings.
        """

    @property
    @abc.abstractmethod
    def fitted(self) -> bool:
        """Whether the hasher has parameters (`fit` or `load` done)."""

    @abc.abstractmethod
    def codes(self, embeddings: ArrayLike) -> np.ndarray:
        """Packed codes of float `[N, d]` embeddings, uint8 `[N, bits/8]`."""

    def tf_codes(self, embeddings: Any) -> Any:
        """`codes` as graph ops: float `[N, d]` tensor -> uint8 tensor.

        Needed to serve the hasher in the SavedModel; call `trackables()`
        before tracing (it creates the TF variables this reads).
        """
        can = ", ".join(servable_hasher_names())
        raise NotImplementedError(
            f"the {self.name} hasher has no TF graph (tf_codes), so it "
            f"cannot be served; hashers that can: {can}"
        )

    @property
    def servable(self) -> bool:
        """Whether `tf_codes` is implemented (see `tf_codes`)."""
        return type(self).tf_codes is not Hasher.tf_codes

    def trackables(self) -> list[Any]:
        """The TF / Keras objects holding what `tf_codes` reads."""
        return []

    @abc.abstractmethod
    def weights(self) -> list[np.ndarray]:
        """Every parameter the codes depend on, in a fixed order.

        With `name` and `bits`, what a search index fingerprints
        (`grok_tf.search.product_search.product_hasher_fingerprint`): two
        hashers with equal weights make the same codes.
        """

    @abc.abstractmethod
    def save(self, folder: str | Path) -> Path:
        """Writes the hasher to `path(folder)`; returns that path.

        The folder exists; atomicity is the caller's (`compress_run` writes
        into a partial directory renamed into place).
        """

    @classmethod
    @abc.abstractmethod
    def load(cls, folder: str | Path) -> Self:
        """Reads the hasher that `save` wrote in `folder`."""

    @classmethod
    def path(cls, folder: str | Path) -> Path:
        """The file (or folder) `save` writes in `folder`."""
        return Path(folder) / cls.file_name

    def check_fitted(self) -> None:
        """Raises a RuntimeError when the hasher has no parameters yet."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__}: call fit() first")

    def __repr__(self) -> str:
        state = "fitted" if self.fitted else "not fitted"
        return f"<{type(self).__name__} {self.name!r} bits={self.bits} {state}>"


_HASHERS = ClassRegistry(Hasher, "hasher")


def register_hasher(cls: type[Hasher]) -> type[Hasher]:
    """Class decorator: registers a `Hasher` subclass under its `name`.

    Raises:
        TypeError: `cls` is not a concrete `Hasher` subclass.
        ValueError: its `name` or `file_name` is missing, malformed or
            taken by another registered hasher.

    Example:

    >>> @register_hasher
    ... class Half(hasher_class("lsh")):
    ...     name, file_name = "half", "half.npz"
    >>> "half" in hasher_names()
    True
    >>> _ = unregister_hasher("half")
    """
    return _HASHERS.add(cls, ("name", "file_name"), _check_file_name)


def _check_file_name(cls: type[Hasher]) -> None:
    if not isinstance(cls.file_name, str) or not cls.file_name:
        raise ValueError(
            f"register_hasher: {cls.__qualname__}.file_name must name the "
            f"file save() writes, got {cls.file_name!r}"
        )


def unregister_hasher(name: str) -> type[Hasher]:
    """Removes a registered hasher (e.g. a test's); returns its class."""
    return _HASHERS.remove(name)


def hasher_class(name: str) -> type[Hasher]:
    """The registered hasher class called `name`.

    Raises:
        ValueError: no hasher has that name (the message lists them).
    """
    return _HASHERS.get(name)


def hasher_names() -> list[str]:
    """The registered hashers' names, in registration order (the order of
    reports)."""
    return _HASHERS.names()


def servable_hasher_names() -> list[str]:
    """The registered hashers that implement `tf_codes`."""
    return [
        cls.name
        for cls in _HASHERS.classes()
        if cls.tf_codes is not Hasher.tf_codes
    ]
