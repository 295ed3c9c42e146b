"""The synthetic catalogue's vocabularies, queries and product identities.

A product is an object category (a distinct silhouette: plate = disc,
tile = square, pennant = triangle, badge = star, ring = annulus, cross), a
colour (eight distinct hues), a pattern or material (plain, striped,
dotted, checked, zigzag, speckled) and a few product-specific details
(aspect ratio, the secondary tone of the pattern, pattern angle and period,
speckle texture), so two products of the same category, colour and
pattern still look different (`make_products`). Each photo also has
multi-label "query" labels: the phrases a shopper might type to find it,
built from the attributes ("red", "striped", "plate", "red plate";
`query_names`, `product_queries`).

Example:
    >>> names = query_names()
    >>> [names[q] for q in product_queries(0, 0, 1)]
    ['red', 'striped', 'plate', 'red plate']
"""

from __future__ import annotations

import dataclasses

import numpy as np

from grok_tf.data.synthetic.config import CatalogConfig

# The vocabulary file of each label column of the list files, in order.
VOCABULARY_FILES = (
    "categories.txt",
    "colours.txt",
    "patterns.txt",
    "products.txt",
    "queries.txt",
)

CATEGORY_NAMES = ("plate", "tile", "pennant", "badge", "ring", "cross")
"""Object categories; each is drawn as a distinct silhouette."""

COLOUR_NAMES = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
)
"""Colour names, in the order of their ids."""

PATTERN_NAMES = (
    "plain",
    "striped",
    "dotted",
    "checked",
    "zigzag",
    "speckled",
)
"""Pattern / material names (adjectives), in the order of their ids."""

# Secondary tones of a pattern: neutral or same-hue, so that the colour of
# a product stays its primary colour whatever the pattern.
SECONDARY_TONES = ("white", "black", "tint", "shade")


@dataclasses.dataclass(frozen=True, eq=False)
class Product:
    """One product identity: its labels and its fixed visual details."""

    product_id: int
    category: int
    colour: int
    pattern: int
    aspect: float
    secondary: int
    angle: float
    period: float
    texture: np.ndarray  # low-resolution noise for the speckle pattern

    @property
    def name(self) -> str:
        return (
            f"{COLOUR_NAMES[self.colour]} {PATTERN_NAMES[self.pattern]} "
            f"{CATEGORY_NAMES[self.category]} #{self.product_id}"
        )


def query_names() -> list[str]:
    """The query vocabulary, in id order.

    Single words (colours, patterns, categories) come first, then every
    "colour category" phrase.

    Example:
        >>> query_names()[:3]
        ['red', 'orange', 'yellow']
        >>> "red plate" in query_names()
        True
    """
    names = [*COLOUR_NAMES, *PATTERN_NAMES, *CATEGORY_NAMES]
    for colour in COLOUR_NAMES:
        for category in CATEGORY_NAMES:
            names.append(f"{colour} {category}")
    return names


def product_queries(category: int, colour: int, pattern: int) -> list[int]:
    """Sorted query ids of a product with these attribute ids.

    Example:
        >>> names = query_names()
        >>> [names[q] for q in product_queries(0, 0, 1)]
        ['red', 'striped', 'plate', 'red plate']
    """
    n_col, n_pat = len(COLOUR_NAMES), len(PATTERN_NAMES)
    n_cat = len(CATEGORY_NAMES)
    combo = n_col + n_pat + n_cat + colour * n_cat + category
    return sorted([colour, n_col + pattern, n_col + n_pat + category, combo])


def assign_attributes(num_products: int) -> list[tuple[int, int, int]]:
    """(category, colour, pattern) of each product, balanced and fixed.

    Product `p` has category `p % 6`; colour and pattern are chosen
    greedily to balance first each category's colours and patterns, then
    the overall colour, pattern and colour-pattern counts (72 products:
    every colour 9 times, every pattern 12 times, every category with all
    8 colours and every pattern twice). (category, colour, pattern)
    triples repeat only once all 288 have been used. The result depends on
    `num_products` only, not on the seed.
    """
    n_cat, n_col = len(CATEGORY_NAMES), len(COLOUR_NAMES)
    n_pat = len(PATTERN_NAMES)
    cat_col = np.zeros((n_cat, n_col), np.int64)
    cat_pat = np.zeros((n_cat, n_pat), np.int64)
    col_pat = np.zeros((n_col, n_pat), np.int64)
    triples = np.zeros((n_cat, n_col, n_pat), np.int64)
    col_count = np.zeros(n_col, np.int64)
    pat_count = np.zeros(n_pat, np.int64)
    out = []
    for p in range(num_products):
        cat = p % n_cat
        best, best_key = (0, 0), None
        for col in range(n_col):
            for pat in range(n_pat):
                # Per-category balance first, global balance second.
                cost = (
                    12 * (cat_col[cat, col] + cat_pat[cat, pat])
                    + col_count[col]
                    + pat_count[pat]
                    + col_pat[col, pat]
                )
                key = (
                    int(triples[cat, col, pat]),
                    int(cost),
                    (col - 3 * p) % n_col,
                    (pat - 5 * p) % n_pat,
                )
                if best_key is None or key < best_key:
                    best, best_key = (col, pat), key
        col, pat = best
        cat_col[cat, col] += 1
        cat_pat[cat, pat] += 1
        col_pat[col, pat] += 1
        triples[cat, col, pat] += 1
        col_count[col] += 1
        pat_count[pat] += 1
        out.append((cat, col, pat))
    return out


def make_products(config: CatalogConfig) -> list[Product]:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    products = []
    for pid, (cat, col, pat) in enumerate(
        assign_attributes(config.num_products)
    ):
        aspect = float(rng.uniform(0.8, 1.25))
        secondary = int(rng.integers(len(SECONDARY_TONES)))
        angle = float(rng.uniform(0.0, np.pi))
        period = float(rng.uniform(0.36, 0.48))
        texture = rng.standard_normal((20, 20)).astype(np.float32)
        products.append(
            Product(
                pid, cat, col, pat, aspect, secondary, angle, period, texture
            )
        )
    return products
