"""Search-query labels from interaction logs: the queries that led to a product.

GrokNet's multi-label ArcFace head learns, for each product, the search
queries after which people interacted with it (clicked it, messaged the
seller, bought it). This module turns such an interaction log into query
labels per product; a spec feed `{column: <product column>, query_log:
{file: ..., ...}}` (`grok_tf.spec.loader`) then gives every image the
queries of its product.

Log format
----------
A CSV or TSV file, UTF-8 with or without BOM (`grok_tf.io.text_files`):
TSV when its name ends in `.tsv`, CSV when it ends in `.csv`, otherwise
TSV if the header line holds a tab and CSV if not. The first non-blank line
is a header naming the columns `query`, `product_id` and `interactions`
(any order, any letter case; other columns, a date say, are ignored). Each
row holds a query as typed, a product id (an integer or a name: the tokens
of the feed's `column`, like the keys of a tag table) and how many
interactions followed (an integer >= 0). A (query, product) pair may fill
many rows (one per day, say): their interactions add up. CSV fields are
quoted as Python's `csv` reads them (a query with a comma is quoted); TSV
fields are split at tabs, without quoting. Blank lines are skipped.

Queries are normalised (`normalize_query`): Unicode NFKC, case folded,
punctuation (Unicode categories P*: `-`, `!`, `'`, `%`, ...) made spaces,
format characters (category Cf: soft hyphens, zero-width spaces) removed,
runs of whitespace collapsed to one space, ends stripped. `"  Red-Plate!! "`,
`"RED PLATE"` and `"red  plate"` are one query, `red plate`.

Thresholds, in this order (what each one counts):

1. `min_interactions`, per (query, product) pair: a pair is kept when the
   interactions of all its rows add up to at least this many, so a single
   wrong click (a query with an unrelated product) makes no label;
2. `min_products`, per query: a query is kept when at least this many
   products kept a pair with it (after 1.);
3. `max_queries`: of those, the queries with the most interactions (summed
   over their kept pairs) are kept, at most this many; ties are broken by
   the query text (ascending, code point order), so the choice is
   deterministic.

A product's labels are the kept queries of its kept pairs; a product of
the data without any (or absent from the log) gets no labels (weight 0 on
the head, as any image without labels); a product of the log absent from
the data is fine.

Weighting (`weighting:`): `none` gives every label of an image the same
weight (the multi-hot of any multi-label feed); `interactions` weights
each label by its share of the product's kept interactions (pair count /
sum of the product's kept pair counts; an image of several products
pools their counts), so the multi-label losses' target follows what
people did (`grok_tf.data.sources.tags.LabelTable.labels_of`).

Malformed rows are skipped: a line longer than
`grok_tf.io.text_files.MAX_LINE_BYTES`, bad CSV quoting, a field count
other than the header's, an empty `product_id`, `interactions` that is not
an integer >= 0, a query that is empty once normalised or longer than
`MAX_QUERY_CHARACTERS` (so `max_pairs` bounds memory). One
`MalformedRowsWarning` per read reports their count and the first few as
`FILE:LINE: reason`. A `SpecError` naming the file stops the read for what
is not a row's fault: no header or a header without a required column,
text that is not UTF-8 (or holds a NUL byte), no valid row at all, or more
distinct (query, product) pairs than `max_pairs`.

The file is streamed, never read whole: memory grows with the distinct
(query, product) pairs (`max_pairs` bounds it) and one line. Nothing in the
log is executed or unpickled.
"""

import csv
import dataclasses
import functools
import unicodedata
import warnings
from pathlib import Path

from grok_tf.errors import SpecError
from grok_tf.io import text_files
from grok_tf.io.text_files import parse_int
from grok_tf.io.text_files import read_lines

#: The columns a log's header must name.
COLUMNS = ("query", "product_id", "interactions")
#: How a feed's labels are weighted (see the module docstring).
WEIGHTINGS = ("none", "interactions")
#: The settings of a `query_log` feed when the spec leaves them out.
QUERY_LOG_DEFAULTS = {
    "min_interactions": 2,
    "min_products": 1,
    "max_queries": 10_000,
    "max_pairs": 5_000_000,
    "weighting": "none",
}
#: Malformed rows quoted in the warning (all of them are counted).
REPORTED_ROWS = 5
#: The longest query kept, in characters once normalised; a longer one is a
#: malformed row (no one types it, and it would make `max_pairs` no bound).
MAX_QUERY_CHARACTERS = 512


class MalformedRowsWarning(UserWarning):
    """Rows of an interaction log were skipped; the message says which."""


@dataclasses.dataclass(frozen=True)
class QueryLogStats:
    """What a read found in a log.

    Attributes:
        rows: data rows (non-blank lines after the header).
        malformed: rows skipped as malformed.
        interactions: interactions of the valid rows, summed.
        queries: distinct normalised queries of the valid rows.
        pairs: distinct (normalised query, product) pairs.
        products: distinct products of the valid rows.
        kept_pairs: pairs kept as labels (every threshold passed).
        kept_queries: queries kept (the vocabulary's size).
        labelled_products: products with at least one kept query.
    """

    rows: int
    malformed: int
    interactions: int
    queries: int
    pairs: int
    products: int
    kept_pairs: int
    kept_queries: int
    labelled_products: int


@dataclasses.dataclass(frozen=True)
class QueryLog:
    """The query labels of an interaction log.

    Attributes:
        labels: product id (int or str) -> `((query, interactions), ...)`
            of its kept pairs, sorted by query; labelled products only.
        vocabulary: every kept query, sorted.
        stats: a `QueryLogStats`.
        malformed: the first `REPORTED_ROWS` malformed rows, each
            `FILE:LINE: reason`.
    """

    labels: dict
    vocabulary: tuple[str, ...]
    stats: QueryLogStats
    malformed: tuple[str, ...]


def _character_class(char):
    """' ' for punctuation and whitespace, '' for format characters."""
    category = unicodedata.category(char)
    if category[0] == "P" or char.isspace():
        return " "
    if category == "Cf":
        return ""
    return char


_ASCII = str.maketrans({chr(i): _character_class(chr(i)) for i in range(128)})


def normalize_query(text):
    """The normal form of a typed query (rules in the module docstring).

    Args:
        text: a query as typed.

    Returns:
        The query in normal form; "" when nothing but punctuation,
        whitespace and format characters was typed.

    Example:

    >>> normalize_query("  Red-Plate!! ")
    'red plate'
    >>> normalize_query("ＲＥＤ\\tPLATE")  # full-width letters, a tab
    'red plate'
    >>> normalize_query("Straße, 50%")
    'strasse 50'
    >>> normalize_query("ex\\u00adample")  # a soft hyphen
    'example'
    >>> normalize_query("?!")
    ''
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():
        text = text.translate(_ASCII)
    else:
        text = "".join(_character_class(char) for char in text)
    return " ".join(text.split())


def select_queries(
    pairs, min_interactions=2, min_products=1, max_queries=10_000
):
    """Applies the thresholds of the module docstring to pair counts.

    Args:
        pairs: `{(normalised query, product): interactions}`.
        min_interactions: least interactions of a kept pair.
        min_products: least products of a kept query (kept pairs only).
        max_queries: most queries kept (most interactions first, ties by
            query text).

    Returns:
        `(labels, vocabulary)`: product -> `((query, interactions), ...)`
        sorted by query (labelled products only), and the kept queries,
        sorted.

    Example: ("bleu", 2) and ("plate", 3) are single clicks; "blue" (4
    interactions) loses the third place to "plate" (5).

    >>> pairs = {("red plate", 1): 9, ("red plate", 2): 3, ("plate", 1): 5,
    ...          ("plate", 3): 1, ("bleu", 2): 1, ("blue", 2): 4}
    >>> labels, vocabulary = select_queries(pairs, 2, 1, max_queries=2)
    >>> vocabulary
    ('plate', 'red plate')
    >>> labels
    {1: (('plate', 5), ('red plate', 9)), 2: (('red plate', 3),)}
    >>> select_queries(pairs, 2, min_products=2)[1]
    ('red plate',)
    """
    kept = {pair: n for pair, n in pairs.items() if n >= min_interactions}
    products, totals = {}, {}
    for (query, _), n in kept.items():
        products[query] = products.get(query, 0) + 1
        totals[query] = totals.get(query, 0) + n
    ranked = sorted(
        (q for q, count in products.items() if count >= min_products),
        key=lambda q: (-totals[q], q),
    )
    vocabulary = set(ranked[:max_queries])
    labels = {}
    for (query, product), n in kept.items():
        if query in vocabulary:
            labels.setdefault(product, []).append((query, n))
    labels = {
        product: tuple(sorted(found)) for product, found in labels.items()
    }
    return labels, tuple(sorted(vocabulary))


def read_query_log(settings):
    """Reads an interaction log into query labels (module docstring).

    A log read before with the same settings, unchanged on disk (same size
    and modification time), is not read again: a spec reads it for every
    split.

    Args:
        settings: a `query_log` feed's mapping as `grok_tf.spec.loader`
            checks it: `file` (absolute path), `min_interactions`,
            `min_products`, `max_queries`, `max_pairs`, `weighting`
            (missing ones take `QUERY_LOG_DEFAULTS`).

    Returns:
        A `QueryLog`.

    Raises:
        SpecError: naming the file (and line), see the module docstring.

    Warns:
        MalformedRowsWarning: rows were skipped (counted, first few quoted).

    Example (not run: needs a log file):

    >>> log = read_query_log({"file": "/data/interactions.tsv"})
    ... # doctest: +SKIP
    >>> log.labels[3]  # doctest: +SKIP
    (('plate', 12), ('red plate', 7))
    """
    settings = {**QUERY_LOG_DEFAULTS, **settings}
    path = Path(settings["file"])
    try:
        status = path.stat()
        stamp = (status.st_size, status.st_mtime_ns)
    except OSError:
        stamp = None  # read_lines names the problem
    return _read_query_log(
        str(path),
        stamp,
        settings["min_interactions"],
        settings["min_products"],
        settings["max_queries"],
        settings["max_pairs"],
    )


@functools.lru_cache(maxsize=4)
def _read_query_log(
    path, stamp, min_interactions, min_products, max_queries, max_pairs
):
    pairs, counts, malformed = count_pairs(path, max_pairs)
    labels, vocabulary = select_queries(
        pairs, min_interactions, min_products, max_queries
    )
    if counts["malformed"]:
        more = counts["malformed"] - len(malformed)
        warnings.warn(
            f"{path}: skipped {counts['malformed']} malformed row(s) of "
            f"{counts['rows']}: {'; '.join(malformed)}"
            + (f" (+{more} more)" if more else ""),
            MalformedRowsWarning,
            stacklevel=3,
        )
    stats = QueryLogStats(
        rows=counts["rows"],
        malformed=counts["malformed"],
        interactions=counts["interactions"],
        queries=len({query for query, _ in pairs}),
        pairs=len(pairs),
        products=len({product for _, product in pairs}),
        kept_pairs=sum(len(found) for found in labels.values()),
        kept_queries=len(vocabulary),
        labelled_products=len(labels),
    )
    return QueryLog(labels, vocabulary, stats, tuple(malformed))


def count_pairs(path, max_pairs=5_000_000):
    """Interactions per (normalised query, product) pair of a log file.

    Args:
        path: the CSV or TSV log (format in the module docstring).
        max_pairs: most distinct pairs held in memory.

    Returns:
        `(pairs, counts, malformed)`: `{(query, product): interactions}`;
        `{"rows", "malformed", "interactions"}` counts; the first
        `REPORTED_ROWS` malformed rows as `FILE:LINE: reason`.

    Raises:
        SpecError: naming the file, see the module docstring.
    """
    lines = read_lines(path, what="query log", skip_long_lines=True)
    header_line, header, tabs = _header(path, lines)
    width = len(header)
    where = {name: header.index(name) for name in COLUMNS}
    q, p, n = where["query"], where["product_id"], where["interactions"]
    pairs, queries = {}, {}
    counts = {"rows": 0, "malformed": 0, "interactions": 0}
    malformed = []
    for number, text in lines:
        if text is not None and not text.strip():
            continue
        counts["rows"] += 1
        fields, reason = _fields(text, tabs, width)
        if reason is None:
            query = normalize_query(fields[q])
            product = fields[p].strip()
            interactions = parse_int(fields[n].strip())
            if not product:
                reason = "empty product_id"
            elif interactions is None:
                reason = f"interactions {_short(fields[n])} is not an integer"
            elif interactions < 0:
                reason = f"negative interactions {interactions}"
            elif not query:
                reason = (
                    f"empty query after normalisation ({_short(fields[q])})"
                )
            elif len(query) > MAX_QUERY_CHARACTERS:
                reason = (
                    f"query of {len(query):,} characters, more than "
                    f"{MAX_QUERY_CHARACTERS}"
                )
        if reason is not None:
            counts["malformed"] += 1
            if len(malformed) < REPORTED_ROWS:
                malformed.append(f"{path}:{number}: {reason}")
            continue
        query = queries.setdefault(query, query)  # one string per query
        if parse_int(product) is not None:
            product = parse_int(product)
        pair = (query, product)
        if pair not in pairs and len(pairs) >= max_pairs:
            raise SpecError(
                f"{path}:{number}: more than {max_pairs} distinct (query, "
                "product) pairs; raise the feed's max_pairs (memory grows "
                "with them) or aggregate the log"
            )
        pairs[pair] = pairs.get(pair, 0) + interactions
        counts["interactions"] += interactions
    if len(pairs) == 0:
        raise SpecError(
            f"{path}: no valid row (of {counts['rows']}; "
            f"{counts['malformed']} malformed"
            + (f", e.g. {malformed[0]}" if malformed else "")
            + ")"
        )
    return pairs, counts, malformed


def _header(path, lines):
    """`(line, column names, is TSV)` of the first non-blank line."""
    for number, text in lines:
        if text is None:
            raise SpecError(
                f"{path}:{number}: header line longer than "
                f"{text_files.MAX_LINE_BYTES} bytes"
            )
        if not text.strip():
            continue
        suffix = Path(path).suffix.lower()
        tabs = suffix == ".tsv" or (suffix != ".csv" and "\t" in text)
        fields, reason = _fields(text, tabs, None)
        if reason is not None:
            raise SpecError(f"{path}:{number}: header: {reason}")
        header = [field.strip().lower() for field in fields]
        for name in COLUMNS:
            if header.count(name) != 1:
                problem = "no column" if name not in header else "two columns"
                raise SpecError(
                    f"{path}:{number}: header has {problem} {name!r} (has "
                    f"{header}); a query log needs {', '.join(COLUMNS)} "
                    f"({'tab' if tabs else 'comma'} separated)"
                )
        return number, header, tabs
    raise SpecError(
        f"{path}: empty query log; the first line must be a header naming "
        f"{', '.join(COLUMNS)}"
    )


def _fields(text, tabs, width):
    """`(fields, None)` of one row, or `(None, reason)` when malformed."""
    if text is None:
        return None, f"line longer than {text_files.MAX_LINE_BYTES} bytes"
    if tabs:
        fields = text.split("\t")
    elif '"' not in text:  # what csv does without quotes, but faster
        fields = text.split(",")
    else:
        try:
            fields = next(csv.reader([text], strict=True))
        except csv.Error as error:
            return None, f"bad CSV quoting ({error})"
    if width is not None and len(fields) != width:
        return None, f"{len(fields)} fields, the header has {width}"
    return fields, None


def _short(value, limit=40):
    """`repr` of a field, cut to `limit` characters."""
    value = value.strip()
    if len(value) > limit:
        value = value[:limit] + "..."
    return repr(value)
