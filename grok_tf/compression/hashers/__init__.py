"""Hashers: float embeddings -> packed binary codes, one registry.

`base` holds the `Hasher` base class and its registry (`register_hasher`,
`hasher_class`, `hasher_names`); each built-in hasher is one module,
registered on import, in this order: `catalyzer` (the paper's, learned,
the default), `lsh` (sign random projections) and `itq` (PCA + iterative
quantisation), the last two sharing `sign_projection`.

Example:

>>> from grok_tf.compression.hashers import hasher_names
>>> hasher_names()[:3]
['catalyzer', 'lsh', 'itq']
"""

from grok_tf.compression.hashers.base import Hasher
from grok_tf.compression.hashers.base import HasherFitError
from grok_tf.compression.hashers.base import hasher_class
from grok_tf.compression.hashers.base import hasher_names
from grok_tf.compression.hashers.base import register_hasher
from grok_tf.compression.hashers.base import unregister_hasher

# Import order is registration order, the order of reports.
# isort: off
from grok_tf.compression.hashers.catalyzer import CatalyzerHasher
from grok_tf.compression.hashers.lsh import LSHHasher
from grok_tf.compression.hashers.itq import ITQHasher

# isort: on

__all__ = [
    "CatalyzerHasher",
    "Hasher",
    "HasherFitError",
    "ITQHasher",
    "LSHHasher",
    "hasher_class",
    "hasher_names",
    "register_hasher",
    "unregister_hasher",
]
