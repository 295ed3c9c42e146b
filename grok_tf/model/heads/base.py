"""`HeadType`: what one `type:` of a spec's heads means, at every stage."""

import abc
from collections.abc import Mapping
from typing import Any
from typing import ClassVar
from typing import Protocol

import keras
import numpy as np
from keras import ops


class HeadSpec(Protocol):
    """What a head type reads of a spec's head (`grok_tf.spec.HeadSpec`).

    Declared here rather than imported, so that the model never imports
    the spec, not even for type checking: the spec looks head types up in
    this package, and the two would form an import cycle.
    """

    name: str
    type: str
    classes: tuple[str, ...] | None
    options: Mapping[str, Any]

    @property
    def num_classes(self) -> int: ...


# The kinds of option defaults a spec can check a value against.
OPTION_KINDS = (bool, int, float, str, type(None))


class HeadOptionError(ValueError):
    """An option value that breaks a rule of its head type.

    The spec loader turns it into a `SpecError` naming the head's field.

    Args:
        option: the option's name, e.g. `"margin"`.
        message: what is wrong, e.g. `"must be below pi/2 (radians)"`.
    """

    def __init__(self, option: str, message: str):
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message


class HeadType(abc.ABC):
    """One head type: its options, labels, layers, loss and metrics.

    A head type is stateless: every method takes the `HeadSpec` it acts
    for (name, classes, and `options` with the defaults filled in). A spec
    names it in `heads[i].type`; the model, training, evaluation,
    calibration and serving ask it, never the type's name, what to do.
    Subclass it, set `name`, implement `output` and `loss`, and register
    it with `grok_tf.model.heads.register_head_type`.

    Class attributes:
        name: the `type:` spec heads give.
        options: the settings a head of this type accepts and their
            defaults: the one place they are written. The spec checks a
            value by its default's type (bool: true/false; int: a
            positive integer or null; float: a number; str: a string; None:
            anything), then calls `check_options`.
        multilabel: labels are multi-hot over the classes (several per
            image) rather than one class id (-1 when unknown).
        identity: labels are product ids: retrieval with the embedding is
            evaluated on them and a dataset's catalogue may name the head.
        served: the head's outputs appear in the exported SavedModel.
        sample_weighted: the loss weighs each example by its sample weight
            (so a dataset's `loss_weight` applies to it).

    Example (not run: it would register a head type for the whole process):

    >>> @register_head_type  # doctest: +SKIP
    ... class SigmoidHead(HeadType):
    ...     name = "sigmoid"
    ...     multilabel = True
    ...
    ...     def output(self, head, features, embedding):
    ...         return keras.layers.Dense(
    ...             head.num_classes, dtype="float32", name=head.name
    ...         )(features)
    ...
    ...     def loss(self, head):
    ...         return keras.losses.BinaryCrossentropy(
    ...             from_logits=True, reduction="mean_with_sample_weight"
    ...         )
    ...
    ...     def probabilities(self, head, output):
    ...         return ops.sigmoid(ops.cast(output, "float32"))
    """

    name: ClassVar[str]
    options: ClassVar[Mapping[str, Any]] = {}
    multilabel: ClassVar[bool] = False
    identity: ClassVar[bool] = False
    served: ClassVar[bool] = True
    sample_weighted: ClassVar[bool] = True

    def check_options(self, options: Mapping[str, Any]) -> None:
        """Rules across option values, beyond each value's type.

        Raises:
            HeadOptionError: naming the first option that breaks a rule.
        """
        return None

    @abc.abstractmethod
    def output(
        self,
        head: HeadSpec,
        features: keras.KerasTensor,
        embedding: keras.KerasTensor,
    ) -> keras.KerasTensor | None:
        """The head's inference output, from the trunk's GeM `features` or
        the L2-normalised `embedding`; None for a training-only head."""

    @abc.abstractmethod
    def loss(self, head: HeadSpec) -> keras.losses.Loss:
        """The Keras loss: per-example values, mean over weighted rows."""

    def metrics(self, head: HeadSpec) -> list[keras.metrics.Metric]:
        """Weighted metrics logged in training: top-1 for one-label heads."""
        if self.multilabel:
            return []
        return [keras.metrics.SparseCategoricalAccuracy("top1")]

    def logits(self, head: HeadSpec, output: Any) -> Any:
        """Class logits from the head's output."""
        return output

    def probabilities(self, head: HeadSpec, output: Any) -> Any:
        """Class scores in [0, 1]: the softmax of the logits, in float32.

        For the multi-label softmax heads too (their spread target makes
        the softmax share of a label its score); calibration maps these
        scores to probabilities (`grok_tf.calibration`).
        """
        logits = ops.cast(self.logits(head, output), "float32")
        return ops.softmax(logits, axis=-1)

    def extra_inputs(self, head: HeadSpec) -> dict[str, keras.KerasTensor]:
        """Inputs the training model takes for this head beyond `image`."""
        return {}

    def training_output(
        self,
        head: HeadSpec,
        groknet: keras.Model,
        inputs: Mapping[str, keras.KerasTensor],
    ) -> keras.KerasTensor:
        """The training model's output for the head: its inference output
        unless the head trains without one (`inputs` holds every input)."""
        return groknet.output[head.name]

    def training_targets(
        self, head: HeadSpec, labels: Any, weights: Any
    ) -> tuple[dict[str, Any], Any, Any]:
        """From the batch's labels and weights of the head: the values of
        its `extra_inputs`, and the target and weight its loss gets."""
        return {}, labels, weights

    def evaluation_metric(
        self,
        head: HeadSpec,
        output: np.ndarray,
        labels: np.ndarray,
        weights: np.ndarray,
    ) -> tuple[str, float | None, float | None]:
        """`(metric, value, chance)` on a split's outputs.

        One-label heads: top-1 accuracy of the logits, chance
        1/classes; multi-label heads: mAP of `probabilities`, chance the
        mean prevalence of the present classes.
        """
        from grok_tf.evaluation import classification_metrics as metrics

        if self.multilabel:
            scores = np.asarray(self.probabilities(head, output))
            return (
                "mAP",
                metrics.mean_average_precision(scores, labels, weights),
                metrics.prevalence(labels[weights > 0]),
            )
        logits = np.asarray(self.logits(head, output))
        return (
            "top1",
            metrics.top1_accuracy(logits, labels, weights),
            1.0 / head.num_classes,
        )

    def __repr__(self) -> str:
        return f"<head type {self.name!r}: {type(self).__qualname__}>"
