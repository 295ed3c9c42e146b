"""The Catalyzer as a registered `Hasher` (`"catalyzer"`, the default)."""

from pathlib import Path
from typing import Any
from typing import Self

import keras
from numpy.typing import ArrayLike

from grok_tf.compression.binary_codes import pack_bits
from grok_tf.compression.binary_codes import sign_bits
from grok_tf.compression.hashers.base import Hasher
from grok_tf.compression.hashers.base import register_hasher
from grok_tf.compression.hashers.catalyzer.layer import catalyzer_codes
from grok_tf.compression.hashers.catalyzer.training import train_catalyzer

# Anchors per Catalyzer training step (fewer when there are fewer rows).
DEFAULT_BATCH_SIZE = 256


@register_hasher
class CatalyzerHasher(Hasher):
    """The learned Catalyzer hash: the signs of `f(x)` on the unit sphere.

    `fit` trains a Catalyzer model with `train_catalyzer`; the code of `x`
    is `pack_bits(sign_bits(f(x)))` (`catalyzer_codes`), and `tf_codes`
    runs the same model in the graph (the SavedModel's `hash` output).
    Registered as `"catalyzer"`, saved to `catalyzer.keras`.

    Args:
        bits: the code length, a positive multiple of 8. Defaults to 256.
        seed: seed of the weights, positives and order. Defaults to 0.
        hidden: the hidden width. Defaults to 1024.
        epochs: training epochs. Defaults to 10.
        batch_size: anchors per step; None: 256, or N when N < 256.
        model: a trained Catalyzer model to wrap (e.g. from
            `train_catalyzer`); `bits` is then its output width.
        **training: other `train_catalyzer` arguments (`lambda_koleo`,
            `margin`, `k_pos`, `k_neg`, `learning_rate`).

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(300, 16))
    >>> hasher = CatalyzerHasher(bits=32, hidden=64, epochs=1).fit(x)
    >>> hasher.codes(x).shape
    (300, 4)
    """

    name = "catalyzer"
    file_name = "catalyzer.keras"

    def __init__(
        self,
        bits: int = 256,
        seed: int = 0,
        hidden: int = 1024,
        epochs: int = 10,
        batch_size: int | None = None,
        model: keras.Model | None = None,
        **training: Any,
    ) -> None:
        if model is not None:
            bits = int(model.output_shape[-1])
        super().__init__(bits, seed)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.batch_size = batch_size
        self.training = training
        self.model = model

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def fit(self, embeddings: ArrayLike, verbose: int = 0) -> Self:
        """Trains the Catalyzer on `embeddings`; returns self."""
        rows = len(embeddings)
        self.model = train_catalyzer(
            embeddings,
            bits=self.bits,
            hidden=self.hidden,
            epochs=self.epochs,
            batch_size=self.batch_size or min(DEFAULT_BATCH_SIZE, rows),
            seed=self.seed,
            verbose=verbose,
            **self.training,
        )
        return self

    def codes(self, embeddings: ArrayLike) -> Any:
        self.check_fitted()
        return catalyzer_codes(self.model, embeddings)

    def tf_codes(self, embeddings: Any) -> Any:
        """`pack_bits(sign_bits(f(x)))` with the model in the graph."""
        self.check_fitted()
        return pack_bits(sign_bits(self.model(embeddings, training=False)))

    def trackables(self) -> list[Any]:
        self.check_fitted()
        return [self.model]

    def weights(self) -> list[Any]:
        """`model.get_weights()`: kernels and batch-norm statistics."""
        self.check_fitted()
        return self.model.get_weights()

    def save(self, folder: str | Path) -> Path:
        """Writes `folder/catalyzer.keras` (Keras's format)."""
        self.check_fitted()
        path = self.path(folder)
        self.model.save(path)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> Self:
        return cls(model=keras.saving.load_model(cls.path(folder)))
