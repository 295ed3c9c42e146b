"""Module paths of grok_tf 0.1 still import, as aliases of their new homes.

grok_tf 0.1 kept every module at the top of the package; they now live in
the stage folders (spec, data, model, training, evaluation, calibration,
compression, search, serving, io). So that code written against 0.1 keeps
working, `install()` (run by `import grok_tf`) adds an import hook that
resolves an old path, and every module below it, to the module that now
holds it, with a `DeprecationWarning` naming the new path. Nothing is
imported until an old path is.

Example:

>>> import warnings
>>> with warnings.catch_warnings():
...     warnings.simplefilter("ignore", DeprecationWarning)
...     from grok_tf.hash_index import HashIndex
>>> from grok_tf.search import hash_index
>>> HashIndex is hash_index.HashIndex
True
"""

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings

#: Old module -> the module that holds its names now. Old packages map
#: their submodules too (`grok_tf.layers.gem_pooling`).
MOVED = {
    "grok_tf.atomic_files": "grok_tf.io.atomic_files",
    "grok_tf.text_files": "grok_tf.io.text_files",
    "grok_tf.sources": "grok_tf.data.sources",
    "grok_tf.batch_mixer": "grok_tf.data.batch_mixer",
    "grok_tf.image_preprocessing": "grok_tf.data.images",
    "grok_tf.synthetic_catalog": "grok_tf.data.synthetic.catalog",
    "grok_tf.query_mining": "grok_tf.data.query_mining",
    "grok_tf.groknet": "grok_tf.model.groknet",
    "grok_tf.heads": "grok_tf.model.heads",
    "grok_tf.layers": "grok_tf.model.layers",
    "grok_tf.losses": "grok_tf.model.losses",
    "grok_tf.trunks": "grok_tf.model.trunks",
    "grok_tf.pretrained": "grok_tf.model.pretrained",
    "grok_tf.distribution": "grok_tf.training.distribution",
    "grok_tf.retrieval_metrics": "grok_tf.evaluation.retrieval_metrics",
    "grok_tf.binary_codes": "grok_tf.compression.binary_codes",
    "grok_tf.catalyzer": "grok_tf.compression.hashers.catalyzer",
    "grok_tf.hash_baselines": "grok_tf.compression.hashers",
    "grok_tf.hash_index": "grok_tf.search.hash_index",
    "grok_tf.product_search": "grok_tf.search.product_search",
}


def new_name(old):
    """The module an old path resolves to, or None if it did not move.

    >>> new_name("grok_tf.layers.gem_pooling")
    'grok_tf.model.layers.gem_pooling'
    >>> new_name("grok_tf.spec") is None
    True
    """
    for prefix, target in MOVED.items():
        if old == prefix or old.startswith(prefix + "."):
            return target + old[len(prefix) :]
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, target):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass  # the target module is already executed


class MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds an old grok_tf module path; loads it as its new module."""

    def find_spec(self, fullname, path=None, target=None):
        if not fullname.startswith("grok_tf."):
            return None  # first on sys.meta_path: every import asks
        moved = new_name(fullname)
        if moved is None:
            return None
        warnings.warn(
            f"{fullname} moved to {moved}; import it from there",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.machinery.ModuleSpec(fullname, _Alias(moved))


def install():
    """Puts the finder first on `sys.meta_path`, once.

    First, because an old package's submodules would otherwise be found
    again by the path finder in the new package's folder (the alias's
    `__path__`) and run a second time, as a second copy.
    """
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedModuleFinder())
