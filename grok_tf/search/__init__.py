"""Stage 7a, search: images -> hashes -> exact-product neighbours.

Example (not run: needs a trained run in runs/demo):

>>> from grok_tf.search import ProductHasher, build_index
>>> index, _ = build_index(ProductHasher("runs/demo"), "photos/")
... # doctest: +SKIP
"""

from grok_tf.search.hash_index import HashIndex
from grok_tf.search.product_search import ProductHasher
from grok_tf.search.product_search import build_index
from grok_tf.search.product_search import search_index
from grok_tf.search.sharded_index import ShardedIndex
from grok_tf.search.sharded_index import ShardedIndexWriter
from grok_tf.search.sharded_index import open_index

__all__ = [
    "HashIndex",
    "ProductHasher",
    "ShardedIndex",
    "ShardedIndexWriter",
    "build_index",
    "open_index",
    "search_index",
]
