"""`IsotonicCalibration`: a `CalibrationTable` applied in the graph."""

import keras
import numpy as np
import tensorflow as tf

from grok_tf.calibration.table import CalibrationTable


@keras.saving.register_keras_serializable(package="grok_tf")
class IsotonicCalibration(keras.layers.Layer):
    """Applies a `CalibrationTable` to scores, in the graph.

    For each column `c` and score `s`: `v = clip(s, x[c, 0], x[c, -1])`,
    `j = searchsorted(x[c], v, side="right") - 1` (clipped to `[0, T - 2]`)
    and `out = y[c, j] + (y[c, j+1] - y[c, j]) / (x[c, j+1] - x[c, j]) *
    (v - x[c, j])`, with slope 0 where `x[c, j+1] == x[c, j]` (the padding,
    and one-threshold columns, which are constant). This is `np.interp`,
    hence sklearn's `IsotonicRegression.predict`, computed in float64
    (float32 interpolation is off by up to 2.6e-5). The map is monotone and
    piecewise linear, so gradients flow through it (zero on flat pieces and
    beyond the ends).

    The tables are non-trainable float64 variables `x_thresholds`,
    `y_thresholds` `[C, T]` and int32 `lengths` `[C]` (kept so an exported
    model carries the whole table); they are saved with the weights, and
    the config holds only the shapes. Until a table is set, every column is
    the identity on [0, 1]. TensorFlow backend only (`tf.searchsorted` over
    rows has no `keras.ops` counterpart); no Python branch on tensors, so
    it traces with `autograph=False` and any batch size, 0 included.

    Args:
        num_columns: `C`, the width of the scores.
        num_thresholds: `T`, the padded table width (>= 2).
        **kwargs: forwarded to `keras.layers.Layer`.

    Call arguments:
        inputs: `[batch, C]` scores (probabilities).

    Returns:
        `[batch, C]` calibrated probabilities, float32.

    Example:

    >>> table = CalibrationTable.from_thresholds([[0.0, 1.0]], [[0.2, 0.6]])
    >>> layer = IsotonicCalibration.from_table(table)
    >>> np.asarray(layer(np.array([[0.5], [2.0]], "float32"))).round(3)
    array([[0.4],
           [0.6]], dtype=float32)

    Reference:
        Zadrozny, Elkan, "Transforming Classifier Scores into Accurate
        Multiclass Probability Estimates", KDD 2002; Bell et al., "GrokNet:
        Unified Computer Vision Model Trunk and Embeddings For Commerce",
        KDD 2020.
    """

    def __init__(self, num_columns, num_thresholds, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if num_thresholds < 2:
            raise ValueError(f"num_thresholds must be >= 2: {num_thresholds}")
        self.num_columns = int(num_columns)
        self.num_thresholds = int(num_thresholds)
        self.input_spec = keras.layers.InputSpec(
            ndim=2, axes={-1: self.num_columns}
        )

    @classmethod
    def from_table(cls, table: CalibrationTable, **kwargs):
        """A built layer holding `table`."""
        layer = cls(table.num_columns, table.num_thresholds, **kwargs)
        layer.build((None, table.num_columns))
        layer.set_table(table)
        return layer

    def build(self, input_shape):
        shape = (self.num_columns, self.num_thresholds)
        for name in ("x_thresholds", "y_thresholds"):
            variable = self.add_weight(
                name=name,
                shape=shape,
                initializer=_identity_initializer,
                trainable=False,
                autocast=False,  # stay float64 under mixed precision
                dtype="float64",
            )
            setattr(self, name, variable)
        self.lengths = self.add_weight(
            name="lengths",
            shape=(self.num_columns,),
            initializer=keras.initializers.Constant(self.num_thresholds),
            trainable=False,
            dtype="int32",
        )

    def set_table(self, table: CalibrationTable):
        """Assigns a `CalibrationTable` of this layer's shape."""
        if (table.num_columns, table.num_thresholds) != (
            self.num_columns,
            self.num_thresholds,
        ):
            raise ValueError(
                f"table [{table.num_columns}, {table.num_thresholds}] does "
                f"not fit [{self.num_columns}, {self.num_thresholds}]"
            )
        self.x_thresholds.assign(table.x)
        self.y_thresholds.assign(table.y)
        self.lengths.assign(table.lengths.astype("int32"))

    def call(self, inputs):
        x = tf.convert_to_tensor(self.x_thresholds)  # [C, T]
        y = tf.convert_to_tensor(self.y_thresholds)
        values = tf.transpose(tf.cast(inputs, tf.float64))  # [C, N]
        values = tf.minimum(tf.maximum(values, x[:, :1]), x[:, -1:])
        upper = tf.searchsorted(x, values, side="right", out_type=tf.int32)
        lo = tf.clip_by_value(upper - 1, 0, self.num_thresholds - 2)
        x_lo, x_hi = _take(x, lo), _take(x, lo + 1)
        y_lo, y_hi = _take(y, lo), _take(y, lo + 1)
        dx = x_hi - x_lo
        # Divide only where dx > 0: a NaN slope would poison the gradient.
        slope = tf.where(dx > 0, (y_hi - y_lo) / tf.where(dx > 0, dx, 1.0), 0.0)
        calibrated = y_lo + slope * (values - x_lo)
        return tf.cast(tf.transpose(calibrated), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_columns": self.num_columns,
                "num_thresholds": self.num_thresholds,
            }
        )
        return config


def _identity_initializer(shape, dtype=None):
    """Rows `linspace(0, 1, T)`: the identity on [0, 1]."""
    row = np.linspace(0.0, 1.0, shape[-1])
    return tf.constant(np.tile(row, (shape[0], 1)), dtype=dtype)


def _take(table, index):
    """`table[c, index[c, n]]` for `[C, T]` table and `[C, N]` index."""
    return tf.gather(table, index, batch_dims=1)
