"""The registry of head types: the names a spec's `heads[i].type` may take."""

from collections.abc import Callable
from typing import TypeVar

from grok_tf.model.heads.base import OPTION_KINDS
from grok_tf.model.heads.base import HeadType

_HEAD_TYPES: dict[str, HeadType] = {}
T = TypeVar("T", type[HeadType], HeadType)


def register_head_type(cls_or_instance: T) -> T:
    """Registers a head type under its `name`; usable as a class decorator.

    Args:
        cls_or_instance: a `HeadType` subclass (instantiated without
            arguments) or instance.

    Returns:
        `cls_or_instance`, unchanged.

    Raises:
        TypeError: not a `HeadType`, or an option default of a kind the
            spec cannot check.
        ValueError: the name is not an identifier or is already taken.

    Example (not run: it would register a head type for the whole process):

    >>> @register_head_type  # doctest: +SKIP
    ... class SigmoidHead(HeadType):
    ...     name = "sigmoid"
    ...     ...
    """
    kind = cls_or_instance
    if isinstance(kind, type) and issubclass(kind, HeadType):
        kind = kind()
    if not isinstance(kind, HeadType):
        raise TypeError(f"not a HeadType: {cls_or_instance!r}")
    name = getattr(kind, "name", None)
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(
            f"{type(kind).__qualname__}.name must be an identifier, "
            f"got {name!r}"
        )
    if name in _HEAD_TYPES:
        raise ValueError(
            f"head type {name!r} is already registered "
            f"({type(_HEAD_TYPES[name]).__qualname__}); unregister it "
            "first or choose another name"
        )
    for option, default in kind.options.items():
        if not isinstance(default, OPTION_KINDS):
            raise TypeError(
                f"head type {name!r}: option {option!r} defaults to a "
                f"{type(default).__name__}; use a bool, int, float, str "
                "or None"
            )
    _HEAD_TYPES[name] = kind
    return cls_or_instance


def unregister_head_type(name: str) -> HeadType:
    """Removes a registered head type and returns it (tests, plugins)."""
    head_type(name)  # the error listing the names
    return _HEAD_TYPES.pop(name)


def head_type(name: str) -> HeadType:
    """The registered head type called `name`.

    Raises:
        ValueError: no such type; the message lists the registered names.
    """
    if name not in _HEAD_TYPES:
        raise ValueError(
            f"unknown head type {name!r}; choose one of "
            f"{', '.join(head_type_names())}"
        )
    return _HEAD_TYPES[name]


def head_type_names(
    where: Callable[[HeadType], bool] | None = None,
) -> tuple[str, ...]:
    """Names of the registered head types, sorted.

    Args:
        where: keep only the types for which it is true, e.g.
            `lambda kind: kind.multilabel`.
    """
    return tuple(
        sorted(
            name
            for name, kind in _HEAD_TYPES.items()
            if where is None or where(kind)
        )
    )
