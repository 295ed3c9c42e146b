"""Pretrained-weights providers of trunks: who supplies `weights="imagenet"`.

Converters import trunks, never the reverse (keras-hub's
`utils/timm/convert_*.py` pattern): a trunk whose published weights must be
converted (EfficientNet-Lite0) does not import its converter. The
converter module registers a provider here instead, with
`register_pretrained_weights(trunk_name, weights_name, loader)`, and the
trunk asks for `pretrained_weights_path(trunk_name, weights_name)` when it
is built with those weights. `import grok_tf.model` imports
`grok_tf.model.pretrained`, so every provider is registered before any
trunk can be built.

This module imports no trunk and no converter: both sides import it.

Example (not run: it would register a provider for the whole process):
    >>> import grok_tf.model  # registers the converters' providers
    >>> ("efficientnet_lite0", "imagenet") in registered_pretrained_weights()
    True
    >>> register_pretrained_weights(  # in a converter module
    ...     "my_trunk", "imagenet", convert_my_trunk
    ... )  # doctest: +SKIP
"""

import os
from collections.abc import Callable
from pathlib import Path

#: A provider: returns the path of a Keras `.weights.h5` file (converting
#: or downloading it first if needed).
WeightsLoader = Callable[[], str | os.PathLike]

_PROVIDERS: dict[tuple[str, str], WeightsLoader] = {}


def register_pretrained_weights(
    trunk_name: str, weights_name: str, loader: WeightsLoader
) -> None:
    """Registers `loader` as the provider of `weights_name` for a trunk.

    The last registration of a `(trunk_name, weights_name)` pair wins.

    Args:
        trunk_name: The trunk, as in `grok_tf.model.trunks.TRUNKS`.
        weights_name: The `weights` value that selects them, e.g.
            "imagenet".
        loader: `() -> path` of the weights file, called each time a trunk
            is built with these weights (it should cache its work).
    """
    if not callable(loader):
        raise TypeError(f"loader must be callable, got {loader!r}")
    _PROVIDERS[(trunk_name, weights_name)] = loader


def registered_pretrained_weights() -> tuple[tuple[str, str], ...]:
    """The registered `(trunk_name, weights_name)` pairs, sorted."""
    return tuple(sorted(_PROVIDERS))


def pretrained_weights_path(trunk_name: str, weights_name: str) -> Path:
    """The weights file of a registered provider.

    Args:
        trunk_name: The trunk being built.
        weights_name: Its `weights` argument.

    Returns:
        The `Path` returned by the provider's loader.

    Raises:
        ValueError: When no provider is registered for the pair (one line:
            what is registered, and how to build without weights).
    """
    loader = _PROVIDERS.get((trunk_name, weights_name))
    if loader is None:
        known = ", ".join(
            f"{t}/{w}" for t, w in registered_pretrained_weights()
        )
        raise ValueError(
            f"No pretrained weights {weights_name!r} are registered for trunk "
            f"'{trunk_name}' (registered: {known or 'none'}; providers "
            "register on `import grok_tf.model.pretrained`). Use weights=None "
            "(`weights: null` in a spec) to train from random initialisation."
        )
    return Path(loader())
