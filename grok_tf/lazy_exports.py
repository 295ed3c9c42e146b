"""Package attributes imported on first use (PEP 562).

A package whose `__init__` re-exported its modules eagerly would run them
whenever any of its submodules is imported: `grok_tf` would load
TensorFlow for `import grok_tf`, and `grok_tf.evaluation` would import the
whole evaluation stage (and with it compression, the run directory and the
spec) for a model-stage module that needs one metric function — a cycle.
`lazy_exports` gives such a package its public names without that.

Example:

>>> getattr_, dir_ = lazy_exports("pkg", {"dumps": "json"})
>>> getattr_("dumps")({"a": 1})
'{"a": 1}'
>>> "dumps" in dir_()
True
"""

import importlib
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`(__getattr__, __dir__)` for a package with lazily imported names.

    Args:
        package: the package's `__name__`, for error messages.
        exports: public name -> the module that defines it.

    Returns:
        The module-level `__getattr__` and `__dir__` functions to assign in
        the package's `__init__`.
    """

    def getattr_(name: str) -> Any:
        if name in exports:
            return getattr(importlib.import_module(exports[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def dir_() -> list[str]:
        return sorted(exports)

    return getattr_, dir_
