"""The synthetic catalogue's interaction log: what shoppers typed and clicked.

`interactions.tsv` stands in for a search log (`grok_tf.data.query_log`
reads it): tab-separated rows `day, query, product_id, interactions`, one
per (day, query as typed, product), counting the interactions (clicks,
messages, purchases) with the product after that query on that day.

It is derived from each product's clean query phrases (`product_queries`,
the labels of list column 4): every phrase is searched `1 + Poisson(rate)`
times (single words more often than "colour category" phrases, popular
products more often than others) and each search is typed as people type:

- mostly as is, else in title case, upper case, with extra spaces or
  with punctuation (`"Red Plate"`, `"RED PLATE"`, `" red  plate "`,
  `"red-plate!"`): normalisation makes them the clean phrase again;
- now and then with a common misspelling of one word (`stripped`,
  `purpel`): a recurring wrong query that may pass the thresholds;
- rarely with a random typo (a letter dropped, doubled, swapped or
  replaced): a query seen about once.

Each search may also bring a wrong click: the same typed query with a
random product that does not have the phrase, one interaction. Rows are
shuffled. Everything is drawn from `config.seed`, so equal configs give
byte-identical logs.
"""

from __future__ import annotations

import numpy as np

from grok_tf.data.synthetic.config import CatalogConfig
from grok_tf.data.synthetic.vocabulary import Product
from grok_tf.data.synthetic.vocabulary import product_queries
from grok_tf.data.synthetic.vocabulary import query_names

INTERACTIONS_FILE = "interactions.tsv"
"""The log's file name in the catalogue folder."""
HEADER = ("day", "query", "product_id", "interactions")
"""The log's columns (`query`, `product_id`, `interactions` are read)."""
DAYS = 7
"""Rows are per day: day 1 .. DAYS."""
WORD_RATE = 12.0
"""Mean searches of a one-word phrase that end on one of its products."""
PHRASE_RATE = 8.0
"""Mean searches of a "colour category" phrase."""
WRONG_CLICK_RATE = 0.08
"""Probability that a search also brings a click on an unrelated product."""
# How a search is typed: as is, title case, upper case, extra spaces,
# punctuation, a common misspelling, a random typo.
TYPING = (
    ("as_is", 0.56),
    ("title", 0.14),
    ("upper", 0.07),
    ("spaces", 0.08),
    ("punctuation", 0.08),
    ("misspelling", 0.05),
    ("typo", 0.02),
)
COMMON_MISSPELLINGS = {
    "striped": "stripped",
    "speckled": "speckeled",
    "purple": "purpel",
    "yellow": "yelow",
    "pennant": "pennent",
    "checked": "cheked",
    "orange": "ornage",
    "zigzag": "zig zag",
}
"""Recurring misspellings; a phrase without such a word is typed as is."""

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def typed(phrase: str, how: str, rng: np.random.Generator) -> str:
    """`phrase` typed the way `how` (a name of `TYPING`) says.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> typed("red plate", "title", rng), typed("red plate", "upper", rng)
    ('Red Plate', 'RED PLATE')
    >>> typed("purple ring", "misspelling", rng)
    'purpel ring'
    """
    words = phrase.split()
    if how == "title":
        return phrase.title()
    if how == "upper":
        return phrase.upper()
    if how == "spaces":
        return "  " + "   ".join(words) + " "
    if how == "punctuation":
        joiner = ("-", ", ", " ")[int(rng.integers(3))]
        end = ("!", "?", "...", "")[int(rng.integers(4))]
        return joiner.join(words) + end
    if how == "misspelling":
        return " ".join(COMMON_MISSPELLINGS.get(w, w) for w in words)
    if how == "typo":
        return _typo(phrase, rng)
    return phrase


def _typo(phrase: str, rng: np.random.Generator) -> str:
    """One random edit of a letter: drop, double, swap or replace it."""
    positions = [i for i, c in enumerate(phrase) if c.isalpha()]
    i = positions[int(rng.integers(len(positions)))]
    edit = int(rng.integers(4))
    if edit == 0:
        return phrase[:i] + phrase[i + 1 :]
    if edit == 1:
        return phrase[:i] + phrase[i] + phrase[i:]
    if edit == 2 and i + 1 < len(phrase) and phrase[i + 1].isalpha():
        return phrase[:i] + phrase[i + 1] + phrase[i] + phrase[i + 2 :]
    letter = _LETTERS[int(rng.integers(len(_LETTERS)))]
    return phrase[:i] + letter + phrase[i + 1 :]


def interaction_rows(
    products: list[Product], config: CatalogConfig
) -> list[tuple[int, str, int, int]]:
    """The log's rows `(day, typed query, product id, interactions)`.

    Args:
        products: the catalogue's products (`make_products`).
        config: the catalogue config; its seed draws everything.

    Returns:
        Rows in their (shuffled) file order.
    """
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 4]))
    names = query_names()
    phrases = [
        [names[q] for q in product_queries(p.category, p.colour, p.pattern)]
        for p in products
    ]
    holders = {}  # phrase -> ids of the products that have it
    for product, found in zip(products, phrases, strict=True):
        for phrase in found:
            holders.setdefault(phrase, set()).add(product.product_id)
    kinds = [name for name, _ in TYPING]
    odds = np.array([p for _, p in TYPING])
    counts = {}  # (day, typed, product) -> interactions

    def add(day, text, product):
        key = (day, text, product)
        counts[key] = counts.get(key, 0) + 1

    for product, found in zip(products, phrases, strict=True):
        popularity = float(rng.lognormal(0.0, 0.4))
        for phrase in found:
            rate = WORD_RATE if " " not in phrase else PHRASE_RATE
            for _ in range(1 + int(rng.poisson(rate * popularity))):
                how = kinds[int(rng.choice(len(kinds), p=odds / odds.sum()))]
                text = typed(phrase, how, rng)
                day = 1 + int(rng.integers(DAYS))
                add(day, text, product.product_id)
                if rng.random() < WRONG_CLICK_RATE:
                    others = [
                        p.product_id
                        for p in products
                        if p.product_id not in holders[phrase]
                    ]
                    if others:
                        add(day, text, others[int(rng.integers(len(others)))])
    rows = [(day, text, pid, n) for (day, text, pid), n in counts.items()]
    order = rng.permutation(len(rows))
    return [rows[int(i)] for i in order]


def interaction_lines(rows: list[tuple[int, str, int, int]]) -> list[str]:
    """The TSV lines of the log: its header, then one line per row.

    Example:

    >>> interaction_lines([(3, "Red Plate", 7, 2)])
    ['day\\tquery\\tproduct_id\\tinteractions', '3\\tRed Plate\\t7\\t2']
    """
    return ["\t".join(HEADER)] + [
        "\t".join(str(value) for value in row) for row in rows
    ]
