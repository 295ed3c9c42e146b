"""Label tokens: a split as read from its files, before encoding to ids.

A token is a class id (int) or a class name (str); each example has a
tuple of them per head (empty when unlabelled, several for multi-label
heads). `grok_tf.data.sources.labels` turns them into ids.
"""

import dataclasses
from collections.abc import Callable
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from grok_tf.data.sources.tags import tag_tables
from grok_tf.errors import SpecError
from grok_tf.io.text_files import parse_int

Token = int | str


@dataclasses.dataclass
class Tokens:
    """A split before encoding: label tokens per head, with their origin.

    Attributes:
        refs: image references, one per example (absolute file paths, or
            source-specific references with an `image_stream`).
        tokens: head name -> one tuple of label tokens per example.
        where: `file:line` (or another origin) per example, for errors.
        image_stream: `fn() -> tf.data.Dataset` of `(ref, encoded bytes)`
            in the order of `refs`, or None when `refs` are files.
        vocabularies: head name -> class names the source itself defines
            (tfds `ClassLabel`s, tag tables), used for inferred heads.
        label_weights: head name -> one tuple of weights per example, one
            weight per token, for heads whose labels are weighted (a query
            log fed with `weighting: interactions`); other heads' labels
            weigh the same.
    """

    refs: list[str]
    tokens: dict[str, list[tuple[Token, ...]]]
    where: list[str]
    image_stream: Callable[[], Any] | None = None
    vocabularies: dict[str, tuple[str, ...]] = dataclasses.field(
        default_factory=dict
    )
    label_weights: dict[str, list[tuple[float, ...]]] = dataclasses.field(
        default_factory=dict
    )


def parse_token(text: str) -> tuple[Token, ...]:
    """Label tokens of one cell: ints (class ids) or names; -1 is unknown.

    Example:

    >>> parse_token(" 3 | red ")
    (3, 'red')
    >>> parse_token("-1")
    ()
    """
    text = text.strip()
    if not text or text == "-1":
        return ()
    parts = [p.strip() for p in text.split("|") if p.strip()]
    return tuple(p if parse_int(p) is None else parse_int(p) for p in parts)


def table_labels(spec, dataset, header, table):
    """`label_of` for `collect_tokens` over rows of a CSV table: a feed
    column is a column name of `header`; `table` names the file in errors.
    """

    def label_of(row, column, origin):
        if column not in header:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.feeds: column "
                f"{column!r} not in {table} (has {header})"
            )
        return parse_token(row[column])

    return label_of


def collect_tokens(
    spec,
    dataset,
    rows: Iterable[tuple[Any, str, Any]],
    label_of: Callable[[Any, Any, str], tuple[Token, ...]],
) -> Tokens:
    """Builds `Tokens` from the rows of a file source.

    Feeds `path:K` (the K-th component of the image's relative path), tag
    feeds and query-log feeds (`grok_tf.data.sources.tags`) are handled
    here; every other feed column is asked of the source through
    `label_of`.

    Args:
        spec: the `Spec`.
        dataset: a `DatasetSpec` whose images are files under `root`.
        rows: `(relative image path, origin, row)` per example; the path
            is checked not to leave `root` (`grok_tf.io.text_files.
            dataset_path`) by the caller.
        label_of: `fn(row, column, origin) -> tuple of tokens` for a feed
            column of the source.
    """
    refs, where = [], []
    tokens = {head: [] for head in dataset.feeds}
    tables = tag_tables(spec, dataset)
    weights = {h: [] for h, table in tables.items() if table.counts is not None}
    for relative, origin, row in rows:
        refs.append(str(dataset.root / relative))
        where.append(origin)
        for head, column in dataset.feeds.items():
            if head in tables:
                column = column["column"]
            if isinstance(column, str) and column.startswith("path:"):
                value = _path_part(dataset, relative, column, origin)
            else:
                value = label_of(row, column, origin)
            if head in tables:
                value, shares = tables[head].labels_of(value, head, origin)
                if head in weights:
                    weights[head].append(shares)
            tokens[head].append(value)
    vocabularies = {head: table.vocabulary for head, table in tables.items()}
    return Tokens(
        refs=refs,
        tokens=tokens,
        where=where,
        vocabularies=vocabularies,
        label_weights=weights,
    )


def _path_part(dataset, relative, column, where):
    k = parse_int(column.split(":", 1)[1])  # an int: checked by the spec
    try:
        return (Path(relative).parts[k],)
    except (TypeError, IndexError):
        raise SpecError(
            f"{where}: feed {column!r} of dataset '{dataset.name}': the path "
            f"{relative!r} has no component {column.split(':', 1)[1]}"
        ) from None
