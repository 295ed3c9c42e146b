"""The Catalyzer as a registered `Hasher` (`"catalyzer"`, the default)."""

from pathlib import Path
from typing import Any
from typing import Self

import keras
import numpy as np
from numpy.typing import ArrayLike

from grok_tf.compression.binary_codes import pack_bits
from grok_tf.compression.binary_codes import sign_bits
from grok_tf.compression.hashers.base import Hasher
from grok_tf.compression.hashers.base import register_hasher
from grok_tf.compression.hashers.catalyzer.layer import catalyzer_codes
from grok_tf.compression.hashers.catalyzer.training import check_init
from grok_tf.compression.hashers.catalyzer.training import train_catalyzer

# Anchors per Catalyzer training step (fewer when there are fewer rows).
DEFAULT_BATCH_SIZE = 256
# The hasher's defaults, measured on the val splits of GrokNet runs on
# grocery (2,721 training embeddings) and cars (5,721): a linear Catalyzer
# started at ITQ, three epochs (see the class docstring). The paper's
# network: `hidden_layers=2, init="random"`.
DEFAULT_EPOCHS = 3
DEFAULT_HIDDEN_LAYERS = 0
DEFAULT_INIT = "itq"
DEFAULT_LEARNING_RATE = 1e-3
# KoLeo's weight: the paper's 0.05 spreads photos of one product apart.
DEFAULT_LAMBDA_KOLEO = 0.02
# The probability that a positive is another view of the anchor's photo.
DEFAULT_VIEW_SHARE = 0.5


@register_hasher
class CatalyzerHasher(Hasher):
    """The learned Catalyzer hash: the signs of `f(x)` on the unit sphere.

    `fit` trains a Catalyzer model with `train_catalyzer`; the code of `x`
    is `pack_bits(sign_bits(f(x)))` (`catalyzer_codes`), and `tf_codes`
    runs the same model in the graph (the SavedModel's `hash` output).
    Registered as `"catalyzer"`, saved to `catalyzer.keras`.

    By default the Catalyzer is linear, `f(x) = normalize(W x + b)`,
    started at ITQ's hash (`init="itq"`, `itq_start`) and trained with the
    paper's loss (rank + KoLeo, lambda 0.02) on the paper's unsupervised
    triplets (positives: input-space neighbours) for 3 epochs at learning
    rate 1e-3. It learns from the embeddings alone: where ITQ keeps the
    top `bits` principal directions and rotates them, `W` uses all `d`
    input dimensions, and the rank loss pulls neighbours' outputs together
    while KoLeo spreads the rest. On the few thousand embeddings `grok-tf
    compress` sees, the paper's 2-hidden-layer MLP trained from scratch
    hashes worse than ITQ (val photo -> photo mAP@R 0.642 vs 0.714 on
    grocery): too few points to learn a deeper map.

    Product ids as supervision (`label_share`, `fit(labels=)`, which
    `compress_run` passes): a positive is then a photo of the same product
    with probability `label_share`, and a negative is never one. Measured
    on the val splits of GrokNet runs on grocery and cars (256 bits, from
    ITQ), it does not beat the unsupervised triplets: the training
    embeddings of a GrokNet run are already grouped by product (grocery
    train photo -> photo R@1 0.99), and on cars (train R@1 0.36) same-id
    positives over-fit the training photos (val R@5 0.01-0.03 below ITQ
    where the unsupervised triplets are 0.01 above). Hence `label_share`
    defaults to None (ids ignored); pass e.g. 0.5 to use them.

    Views as supervision (`fit(groups=)`, which `compress_run(views=K)`
    passes with K random training views of every photo beside it): a
    positive is another view of the same photo with probability
    `view_share`, and a negative is never one. It needs no label, and
    teaches the hash what the trunk was trained to ignore (crop, flip,
    colour). Product ids, when `label_share` is set, take precedence (the
    views of a photo without id then share an id of their own).

    Args:
        bits: the code length, a positive multiple of 8. Defaults to 256.
        seed: seed of the weights, positives and order. Defaults to 0.
        hidden: the hidden width (when `hidden_layers > 0`). Defaults to
            1024.
        epochs: training epochs. Defaults to 3.
        batch_size: anchors per step; None: 256, or N when N < 256.
        model: a trained Catalyzer model to wrap (e.g. from
            `train_catalyzer`); `bits` is then its output width.
        hidden_layers: hidden layers (2 in the paper). Defaults to 0.
        init: `"itq"` (needs `hidden_layers=0`) or `"random"`. Defaults to
            "itq".
        learning_rate: Adam's; None: 1e-3.
        label_share: None: product ids are ignored; else the probability
            of a same-id positive (`train_catalyzer`'s `label_share`).
        view_share: the probability of a same-photo positive when `fit`
            is given `groups`. Defaults to 0.5.
        **training: other `train_catalyzer` arguments (`lambda_koleo`,
            default 0.02 here, `margin`, `k_pos`, `k_neg`).

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(300, 16))
    >>> hasher = CatalyzerHasher(bits=32, hidden=64, epochs=1).fit(x)
    >>> hasher.codes(x).shape
    (300, 4)
    """

    name = "catalyzer"
    file_name = "catalyzer.keras"
    supervised = True
    learns_from_views = True

    def __init__(
        self,
        bits: int = 256,
        seed: int = 0,
        hidden: int = 1024,
        epochs: int = DEFAULT_EPOCHS,
        batch_size: int | None = None,
        model: keras.Model | None = None,
        hidden_layers: int = DEFAULT_HIDDEN_LAYERS,
        init: str = DEFAULT_INIT,
        learning_rate: float | None = None,
        label_share: float | None = None,
        view_share: float = DEFAULT_VIEW_SHARE,
        **training: Any,
    ) -> None:
        if model is not None:
            bits = int(model.output_shape[-1])
        super().__init__(bits, seed)
        check_init(init)
        self.hidden = int(hidden)
        self.epochs = int(epochs)
        self.batch_size = batch_size
        self.hidden_layers = int(hidden_layers)
        self.init = init
        self.learning_rate = float(
            DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate
        )
        self.label_share = None if label_share is None else float(label_share)
        self.view_share = float(view_share)
        if not 0.0 <= self.view_share <= 1.0:
            raise ValueError(f"view_share must be in [0, 1], got {view_share}")
        training.setdefault("lambda_koleo", DEFAULT_LAMBDA_KOLEO)
        self.training = training
        self.model = model

    @property
    def fitted(self) -> bool:
        return self.model is not None

    def fit(
        self,
        embeddings: ArrayLike,
        verbose: int = 0,
        labels: ArrayLike | None = None,
        groups: ArrayLike | None = None,
    ) -> Self:
        """Trains the Catalyzer on `embeddings`; returns self.

        Args:
            embeddings: float `[N, d]` training embeddings.
            verbose: Keras's `fit` verbosity.
            labels: optional int `[N]` product ids (-1: none), used only
                when `label_share` is set (see the class docstring).
            groups: optional int `[N]`: rows of one group are views of one
                photo (see the class docstring). When `labels` are used,
                the views of a photo without id share an id of their own.
        """
        rows = len(embeddings)
        supervision = {}
        if labels is not None and self.label_share is not None:
            if groups is not None:  # a photo without id: its views as one
                labels = np.asarray(labels, np.int64)
                own = labels.max(initial=-1) + 1 + np.asarray(groups, np.int64)
                labels = np.where(labels >= 0, labels, own)
            supervision = {"labels": labels, "label_share": self.label_share}
        elif groups is not None:
            supervision = {"labels": groups, "label_share": self.view_share}
        self.model = train_catalyzer(
            embeddings,
            bits=self.bits,
            hidden=self.hidden,
            epochs=self.epochs,
            batch_size=self.batch_size or min(DEFAULT_BATCH_SIZE, rows),
            seed=self.seed,
            verbose=verbose,
            hidden_layers=self.hidden_layers,
            init=self.init,
            learning_rate=self.learning_rate,
            **supervision,
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
