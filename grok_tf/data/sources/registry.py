"""The registry of dataset sources: `source: <name>` in a spec -> reader.

The built-in sources register themselves when `grok_tf.data.sources` is
imported; a project adds its own with `register_source`, before loading a
spec that names it.
"""

import re

from grok_tf.data.sources.base import DatasetSource

_SOURCES: dict[str, DatasetSource] = {}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def register_source(cls: type[DatasetSource]) -> type[DatasetSource]:
    """Registers a `DatasetSource` subclass under its `name` (a decorator).

    Args:
        cls: the subclass; it is instantiated once, without arguments.

    Returns:
        `cls`, unchanged.

    Raises:
        TypeError: `cls` is not a concrete `DatasetSource` subclass.
        ValueError: its name is taken, or its declaration is inconsistent
            (a required key it does not accept, files under a `root` it
            does not require).

    Example (not run: it would register a source for the whole process):

    >>> @register_source  # doctest: +SKIP
    ... class JsonList(DatasetSource):
    ...     name = "json_list"
    ...     def read(self, spec, dataset, ref, who): ...
    """
    if not (isinstance(cls, type) and issubclass(cls, DatasetSource)):
        raise TypeError(
            f"register_source takes a DatasetSource subclass, got {cls!r}"
        )
    name = getattr(cls, "name", None)
    where = f"dataset source {cls.__module__}.{cls.__qualname__}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"{where}: `name` must be an identifier (letters, digits, _), "
            f"got {name!r}"
        )
    if name in _SOURCES:
        taken = type(_SOURCES[name])
        raise ValueError(
            f"{where}: source name {name!r} is already registered by "
            f"{taken.__module__}.{taken.__qualname__}"
        )
    if not cls.required_keys <= cls.keys:
        raise ValueError(
            f"{where}: required_keys {sorted(cls.required_keys - cls.keys)} "
            "are not in its keys"
        )
    if cls.split_entries not in ("file", "folder", "opaque"):
        raise ValueError(
            f"{where}: split_entries must be 'file', 'folder' or 'opaque', "
            f"got {cls.split_entries!r}"
        )
    needs_root = (
        cls.split_entries != "opaque" or cls.tag_feeds or cls.catalogues
    )
    if needs_root and "root" not in cls.required_keys:
        raise ValueError(
            f"{where}: split files, tag feeds and catalogues live under "
            "`root`: add 'root' to keys and required_keys"
        )
    _SOURCES[name] = cls()  # TypeError if `read` is not implemented
    return cls


def unregister_source(name: str) -> None:
    """Removes a registered source (e.g. a test's own, when it ends)."""
    source(name)  # the error for an unknown name
    del _SOURCES[name]


def source(name: str) -> DatasetSource:
    """The registered source `name`.

    Raises:
        ValueError: no source has that name; the message lists them.
    """
    try:
        return _SOURCES[name]
    except (KeyError, TypeError):  # TypeError: an unhashable name
        raise ValueError(
            f"unknown source {name!r}; choose one of "
            f"{', '.join(source_names())}"
        ) from None


def source_names() -> tuple[str, ...]:
    """Names of the registered sources, in registration order."""
    return tuple(_SOURCES)
