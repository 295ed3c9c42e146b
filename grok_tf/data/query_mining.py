"""Query tags mined from product texts: search-query labels without logs.

GrokNet's multi-label ArcFace head learns the search queries that lead to a
product (from image-query logs). A catalogue without logs still has product
names and descriptions; the words shoppers would type are in them. This
module turns a table of products and their texts into query tags:

1. every text of a product (its name, its description file, ...) is cut
   into lower-case words of letters only, at least `min_length` long, minus
   common English stop words (numbers, units and URLs drop out);
2. a word becomes a tag when it occurs in at least `min_products` products
   (a word of one product only is just its identity, which the id heads
   learn already) and in at most `max_share` of them (words every product
   has, like "taste", say nothing);
3. each product's tags are its words that are tags.

Every image of a product then carries the product's tags: a spec feed
`{column: <product column>, tags: {...}}` (see `grok_tf.spec.loader`), e.g. for
grocery ("Arla-Ecological-Medium-Fat-Milk" -> arla, ecological, fat,
medium, milk, organic, ...).
"""

import collections
import re
from pathlib import Path

from grok_tf.errors import SpecError
from grok_tf.io.text_files import dataset_path
from grok_tf.io.text_files import parse_int
from grok_tf.io.text_files import read_table
from grok_tf.io.text_files import read_text

# Common English function words; the frequency filter removes the words
# that are common in one catalogue only.
_STOP_WORDS_TEXT = """
about after all also and any are bit both but can could does each even
for from good has have how into its just like made make makes may more
most much nice not now off once one only other our out over per said
same should since some such than that the their them then there these
they this those too two under upon use used very was well were what when
where which while who why will with would you your
"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())
_WORD = re.compile(r"[^\W\d_]+")


def text_words(text, min_length=3, stop_words=STOP_WORDS):
    """The set of candidate query words of one text.

    Args:
        text: any text (hyphens, digits and punctuation separate words).
        min_length: shortest word kept.
        stop_words: words never kept.

    Returns:
        A set of lower-case words.

    Example:

    >>> sorted(text_words("Arla-Ecological-Medium-Fat-Milk, 1.5% fat"))
    ['arla', 'ecological', 'fat', 'medium', 'milk']
    """
    return {
        word
        for word in _WORD.findall(text.lower())
        if len(word) >= min_length and word not in stop_words
    }


def mine_query_tags(texts, min_products=2, max_share=0.25):
    """Query tags of each product from its texts (see the module docstring).

    Args:
        texts: product key -> its text (all its texts joined).
        min_products: a tag occurs in at least this many products.
        max_share: a tag occurs in at most this fraction of the products.

    Returns:
        product key -> sorted tuple of its tags (possibly empty).

    Example:

    >>> mine_query_tags({
    ...     "gala": "Gala apple, sweet and red",
    ...     "granny": "Granny Smith apple, sour and green",
    ...     "lime": "Lime, sour and green",
    ...     "milk": "Whole milk",
    ... }, max_share=0.5)
    {'gala': ('apple',), 'granny': ('apple', 'green', 'sour'), \
'lime': ('green', 'sour'), 'milk': ()}
    """
    words = {key: text_words(text) for key, text in texts.items()}
    counts = collections.Counter(w for found in words.values() for w in found)
    most = max_share * len(words)
    tags = {w for w, n in counts.items() if min_products <= n <= most}
    return {key: tuple(sorted(found & tags)) for key, found in words.items()}


def read_tag_table(settings, root):
    """Mines the tag table a spec's tag feed names.

    Args:
        settings: the feed's `tags` mapping, validated by `grok_tf.spec.loader`:
            `file` (a CSV, absolute path), `key` (its product column),
            `text` (a list of columns: a value ending in `.txt` is a text
            file relative to `root`, a leading `/` meaning `root`; other
            values are the text itself), `min_products`, `max_share`.
        root: the dataset root, for the text files.

    The CSV and the text files are UTF-8 (with or without BOM) and read by
    `grok_tf.io.text_files`; quoted fields of the CSV may span lines.

    Returns:
        `(table, vocabulary)`: product key token (int or str, as label
        columns give them) -> tuple of tags; and all tags, sorted.

    Raises:
        SpecError (a ValueError): naming the CSV (and line) for a missing
            column, an empty key, a product listed twice, or a text file
            that cannot be read (named) or leaves `root`.
    """
    path = Path(settings["file"])
    table = read_table(path, multiline=True)
    for column in [settings["key"], *settings["text"]]:
        if column not in table.header:
            raise SpecError(
                f"{path}: no column {column!r} (has {table.header})"
            )
    texts = {}
    for line, row in table.rows:
        key = row[settings["key"]]
        if not key:
            raise SpecError(
                f"{path}:{line}: empty product key in column "
                f"{settings['key']!r}"
            )
        key = key if parse_int(key) is None else parse_int(key)
        if key in texts:
            raise SpecError(f"{path}:{line}: product {key!r} listed twice")
        texts[key] = "\n".join(
            _text_of(row[column], root, f"{path}:{line}")
            for column in settings["text"]
        )
    table = mine_query_tags(
        texts, settings["min_products"], settings["max_share"]
    )
    vocabulary = tuple(sorted({t for tags in table.values() for t in tags}))
    return table, vocabulary


def _text_of(value, root, where):
    value = value.strip()
    if not value.lower().endswith(".txt"):
        return value
    file = Path(root) / dataset_path(value, where, root_relative=True)
    try:
        return read_text(file, where, "text file")
    except SpecError as error:
        message = str(error)
        if message.startswith(f"{where}: "):
            raise
        raise SpecError(f"{where}: text file {message}") from None
