"""The embedded default dataset: a synthetic product catalogue.

`config` (`CatalogConfig`), `vocabulary` (names, queries, products),
`render` (one photo of a product), `interactions` (a noisy search log of
the products' queries) and `catalog` (the files on disk,
`generate_synthetic_catalog`).

Example (not run: writes a catalogue of images):

>>> root = generate_synthetic_catalog("/tmp/catalog")  # doctest: +SKIP
"""

from grok_tf.data.synthetic.catalog import CATALOG_VERSION
from grok_tf.data.synthetic.catalog import generate_synthetic_catalog
from grok_tf.data.synthetic.config import CatalogConfig
from grok_tf.data.synthetic.vocabulary import VOCABULARY_FILES

__all__ = [
    "CATALOG_VERSION",
    "VOCABULARY_FILES",
    "CatalogConfig",
    "generate_synthetic_catalog",
]
