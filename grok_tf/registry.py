"""Registries of named subclasses: the extension points' shared machinery.

An extension point (hashers, detectors) is an abstract base class and a
`ClassRegistry` of its concrete subclasses, each registered under its
`name` attribute by a class decorator of the extension point
(`register_hasher`, `register_detector`).
"""

import inspect
import re
from collections.abc import Callable

_NAME = re.compile(r"[a-z][a-z0-9_]*")


class ClassRegistry:
    """Concrete subclasses of `base` by name, in registration order.

    Args:
        base: the abstract base class every entry subclasses.
        kind: what one entry is called in messages, e.g. `"hasher"`.

    Example:

    >>> import abc
    >>> class Shape(abc.ABC):
    ...     @abc.abstractmethod
    ...     def area(self): ...
    >>> shapes = ClassRegistry(Shape, "shape")
    >>> class Unit(Shape):
    ...     name = "unit"
    ...     def area(self):
    ...         return 1
    >>> shapes.add(Unit) is Unit, shapes.names(), shapes.get("unit")().area()
    (True, ['unit'], 1)
    >>> shapes.get("disc")
    Traceback (most recent call last):
    ...
    ValueError: unknown shape 'disc': registered shapes are unit
    """

    def __init__(self, base: type, kind: str) -> None:
        self.base = base
        self.kind = kind
        self._classes: dict[str, type] = {}

    def add(
        self,
        cls: type,
        unique: tuple[str, ...] = ("name",),
        check: Callable[[type], None] | None = None,
    ) -> type:
        """Registers `cls` under `cls.name`; registering it again is a no-op.

        Args:
            cls: a concrete subclass of `base` with a `name` of lowercase
                letters, digits and `_`, starting with a letter.
            unique: attributes no two registered classes may share.
            check: more checks of the extension point, run after the
                subclass and name checks (raises to refuse `cls`).

        Raises:
            TypeError: `cls` is not a concrete subclass of `base`.
            ValueError: its name is malformed, or a `unique` attribute is
                taken by another registered class.
        """
        who = f"register_{self.kind}"
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise TypeError(
                f"{who}: {cls!r} is not a {self.base.__name__} subclass"
            )
        if inspect.isabstract(cls):
            missing = ", ".join(sorted(cls.__abstractmethods__))
            raise TypeError(
                f"{who}: {cls.__qualname__} does not implement {missing}"
            )
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(
                f"{who}: {cls.__qualname__}.name must be lowercase letters, "
                f"digits and '_' (starting with a letter), got {name!r}"
            )
        if check is not None:
            check(cls)
        for other in self._classes.values():
            for attribute in unique:
                value = getattr(cls, attribute)
                if other is not cls and getattr(other, attribute) == value:
                    raise ValueError(
                        f"{who}: {attribute} {value!r} of {_qualified(cls)} "
                        f"is taken by {_qualified(other)}"
                    )
        self._classes[name] = cls
        return cls

    def remove(self, name: str) -> type:
        """Removes a registered class (e.g. a test's); returns it."""
        cls = self.get(name)
        del self._classes[name]
        return cls

    def get(self, name: str) -> type:
        """The class registered as `name`.

        Raises:
            ValueError: none is (the message lists the registered names).
        """
        if name not in self._classes:
            raise ValueError(
                f"unknown {self.kind} {name!r}: registered {self.kind}s are "
                f"{', '.join(self._classes)}"
            )
        return self._classes[name]

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._classes)

    def classes(self) -> list[type]:
        """The registered classes, in registration order."""
        return list(self._classes.values())


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"
