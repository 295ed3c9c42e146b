"""The embedded default dataset: a synthetic product catalogue.

Example:

>>> root = generate_synthetic_catalog("/tmp/catalog")  # doctest: +SKIP
"""

from grok_tf.data.synthetic.catalog import CatalogConfig
from grok_tf.data.synthetic.catalog import generate_synthetic_catalog

__all__ = ["CatalogConfig", "generate_synthetic_catalog"]
