"""The Catalyzer network: embeddings to points on the unit sphere.

`f(x) = normalize(W3 relu(BN(W2 relu(BN(W1 x)))))`, widths
`d -> hidden -> hidden -> bits`; the code of `x` is the signs of `f(x)`
(`catalyzer_codes`). BatchNorm's moving-average momentum is 0.9 (Keras:
0.99): with N / batch ~10 steps per epoch on a few thousand embeddings,
0.99 leaves the moving statistics far from the batch statistics after 10
epochs (variance measured 30x too large), so the network used for
inference and for mining negatives would not be the one trained.

Reference:
    Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for similarity
    search", ICLR 2019 (arXiv:1806.03198).
"""

import keras
import numpy as np
from keras import ops

from grok_tf.compression.binary_codes import check_embeddings
from grok_tf.compression.binary_codes import code_bytes
from grok_tf.compression.binary_codes import pack_bits
from grok_tf.compression.binary_codes import sign_bits

# BatchNorm moving-average momentum (Keras's 0.99 is too slow for the
# ~100 steps of 10 epochs on a few thousand embeddings).
DEFAULT_BN_MOMENTUM = 0.9


@keras.saving.register_keras_serializable(package="grok_tf")
class Catalyzer(keras.layers.Layer):
    """The Catalyzer MLP: embeddings to points on the unit sphere.

    `f(x) = normalize(W_out h_L)`, `h_0 = x`,
    `h_l = relu(BN(W_l h_{l-1}))` with `hidden` units for `l = 1..L`
    (`L = hidden_layers`, 2 in the paper), then a linear map to `bits`
    dimensions and L2 normalisation. The hidden Dense layers have no bias
    (BatchNorm's offset replaces it). The sign of each output component
    is one bit of the code. BatchNorm's moving averages use momentum 0.9
    by default, so that they reach the batch statistics within the few
    hundred steps of a small training set (see the module docstring).

    Args:
        bits: the output width (the code length). Defaults to 256.
        hidden: the hidden width. Defaults to 1024.
        hidden_layers: the number of hidden layers. Defaults to 2.
        synchronized: whether BatchNorm uses the statistics of the global
            batch under a distribution strategy. Defaults to False.
        seed: seed of the kernel initialisers (None: unseeded).
        bn_momentum: momentum of BatchNorm's moving mean and variance.
            Defaults to 0.9.
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: float `[batch, d]` embeddings.
        training: whether BatchNorm uses batch statistics.

    Returns:
        float `[batch, bits]`, rows of L2 norm 1.

    Example:

    >>> import numpy as np
    >>> layer = Catalyzer(bits=32, hidden=64, seed=0)
    >>> out = layer(np.ones((4, 16), "float32"))
    >>> tuple(out.shape), round(float(np.linalg.norm(out[0])), 4)
    ((4, 32), 1.0)

    Reference:
        Sablayrolles, Douze, Schmid, Jégou, "Spreading vectors for
        similarity search", ICLR 2019 (the catalyzer network).
    """

    def __init__(
        self,
        bits=256,
        hidden=1024,
        hidden_layers=2,
        synchronized=False,
        seed=None,
        bn_momentum=DEFAULT_BN_MOMENTUM,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("bits", bits), ("hidden", hidden)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if hidden_layers < 0:
            raise ValueError(f"hidden_layers must be >= 0, got {hidden_layers}")
        self.bits = int(bits)
        self.hidden = int(hidden)
        self.hidden_layers = int(hidden_layers)
        self.synchronized = bool(synchronized)
        self.seed = None if seed is None else int(seed)
        self.bn_momentum = float(bn_momentum)
        self.dense_layers = [
            keras.layers.Dense(
                self.hidden,
                use_bias=False,
                kernel_initializer=self._initializer(index),
                name=f"dense_{index}",
            )
            for index in range(self.hidden_layers)
        ]
        self.norm_layers = [
            keras.layers.BatchNormalization(
                momentum=self.bn_momentum,
                synchronized=self.synchronized,
                name=f"batch_norm_{index}",
            )
            for index in range(self.hidden_layers)
        ]
        self.output_layer = keras.layers.Dense(
            self.bits,
            kernel_initializer=self._initializer(self.hidden_layers),
            name="output",
        )

    def _initializer(self, index):
        seed = None if self.seed is None else self.seed + index
        return keras.initializers.GlorotUniform(seed=seed)

    def build(self, input_shape):
        shape = tuple(input_shape)
        for dense, norm in zip(
            self.dense_layers, self.norm_layers, strict=True
        ):
            dense.build(shape)
            shape = dense.compute_output_shape(shape)
            norm.build(shape)
        self.output_layer.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for dense, norm in zip(
            self.dense_layers, self.norm_layers, strict=True
        ):
            x = ops.relu(norm(dense(x), training=training))
        return ops.normalize(self.output_layer(x), axis=-1, order=2)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.bits)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "bits": self.bits,
                "hidden": self.hidden,
                "hidden_layers": self.hidden_layers,
                "synchronized": self.synchronized,
                "seed": self.seed,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config


def build_catalyzer(
    input_dim,
    bits=256,
    hidden=1024,
    synchronized=False,
    seed=None,
    bn_momentum=DEFAULT_BN_MOMENTUM,
    hidden_layers=2,
):
    """The Catalyzer as a model: `[N, input_dim]` -> unit `[N, bits]`.

    Args:
        input_dim: the embedding width d.
        bits: the output width (code length). Defaults to 256.
        hidden: the hidden width. Defaults to 1024.
        hidden_layers: hidden layers (2 in the paper; 0: the linear
            Catalyzer `normalize(W x + b)`). Defaults to 2.
        synchronized: BatchNorm over the global batch under a strategy.
        seed: seed of the initial weights (None: unseeded).
        bn_momentum: BatchNorm's moving-average momentum. Defaults to 0.9.

    Returns:
        a `keras.Model` named "catalyzer" with one `Catalyzer` layer.

    Example:

    >>> build_catalyzer(400, bits=256).output_shape
    (None, 256)
    """
    inputs = keras.Input((int(input_dim),), name="embedding")
    outputs = Catalyzer(
        bits,
        hidden,
        hidden_layers=hidden_layers,
        synchronized=synchronized,
        seed=seed,
        bn_momentum=bn_momentum,
        name="mlp",
    )(inputs)
    return keras.Model(inputs, outputs, name="catalyzer")


def catalyzer_codes(model, embeddings, batch_size=1024):
    """Packed sign codes of `model(embeddings)`, uint8 `[N, bits // 8]`.

    `pack_bits(sign_bits(f(x)))`: bit j is `f(x)_j > 0`, in faiss's bit
    order (see `grok_tf.compression.binary_codes`), ready for
    `faiss.IndexBinaryFlat`.

    Args:
        model: a Catalyzer model (`build_catalyzer` / `train_catalyzer`).
        embeddings: float `[N, d]` with d the model's input width.
        batch_size: rows per inference batch. Defaults to 1024.

    Returns:
        uint8 `np.ndarray` `[N, bits // 8]`.
    """
    width, bits = model.input_shape[-1], model.output_shape[-1]
    x = check_embeddings(embeddings, "embeddings", width, dtype="float32")
    if not len(x):
        return np.zeros((0, code_bytes(bits)), np.uint8)
    outputs = model.predict(x, batch_size=batch_size, verbose=0)
    return np.asarray(pack_bits(sign_bits(outputs)))
