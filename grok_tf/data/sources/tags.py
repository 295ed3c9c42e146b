"""Tag and query-log feeds: each image gets the labels of its product.

A tag feed (`feeds: {queries: {column: 0, tags: {file: products.csv,
...}}}`) reads a product id from the feed's `column` and replaces it by
the product's tags from its tag table (`grok_tf.data.query_mining`). A
query-log feed (`{column: 0, query_log: {file: interactions.tsv, ...}}`)
replaces it by the queries that led to the product in an interaction log
(`grok_tf.data.query_log`), optionally weighted by their interactions.
"""

import dataclasses

from grok_tf.errors import SpecError


@dataclasses.dataclass(frozen=True)
class LabelTable:
    """The labels of each product, for a tag or query-log feed.

    Attributes:
        labels: product id -> sorted tuple of its labels.
        vocabulary: every label of the table, sorted.
        counts: product id -> the interactions of each of its labels (in
            the order of `labels`) when labels are weighted by them, else
            None.
        listed: every product of the data must have a row (tag tables);
            when false (query logs) a product without one has no labels.
    """

    labels: dict
    vocabulary: tuple[str, ...]
    counts: dict | None = None
    listed: bool = True

    def labels_of(self, products, head: str, origin: str):
        """The labels of an image of `products` (ids of the table).

        Args:
            products: the image's product ids (tokens of the feed column).
            head: the head's name, for errors.
            origin: the image's `file:line`, for errors.

        Returns:
            `(labels, weights)`: the sorted union of the products' labels
            and, for a weighted table, each label's share of the products'
            interactions (summing to 1), else None.

        Raises:
            SpecError: a product without a row in a `listed` table.

        Example:

        >>> table = LabelTable({1: ("plate", "red")}, ("plate", "red"),
        ...                    counts={1: (3, 1)}, listed=False)
        >>> table.labels_of((1, 2), "queries", "train.txt:1")
        (('plate', 'red'), (0.75, 0.25))
        >>> table.labels_of((2,), "queries", "train.txt:2")
        ((), ())
        """
        found = {}
        for product in products:
            if product not in self.labels:
                if not self.listed:
                    continue
                raise SpecError(
                    f"{origin}: head '{head}': product {product!r} has no row "
                    "in its tag table"
                )
            counts = self.counts[product] if self.counts else None
            for i, label in enumerate(self.labels[product]):
                found[label] = found.get(label, 0) + (
                    counts[i] if counts else 1
                )
        labels = tuple(sorted(found))
        if self.counts is None:
            return labels, None
        total = sum(found.values())
        return labels, tuple(found[label] / total for label in labels)


def tag_tables(spec, dataset) -> dict:
    """Head -> `LabelTable` for the dataset's tag and query-log feeds."""
    tables = {}
    for head, column in dataset.feeds.items():
        if not isinstance(column, dict):
            continue
        kind = "query_log" if "query_log" in column else "tags"
        try:
            tables[head] = _read_table(kind, column[kind], dataset.root)
        except ValueError as error:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.feeds.{head}"
                f".{kind}: {error}"
            ) from None
    return tables


def _read_table(kind, settings, root):
    if kind == "tags":
        from grok_tf.data.query_mining import read_tag_table

        return LabelTable(*read_tag_table(settings, root))
    from grok_tf.data.query_log import read_query_log

    log = read_query_log(settings)
    labels = {
        product: tuple(query for query, _ in found)
        for product, found in log.labels.items()
    }
    counts = None
    if settings["weighting"] == "interactions":
        counts = {
            product: tuple(n for _, n in found)
            for product, found in log.labels.items()
        }
    return LabelTable(labels, log.vocabulary, counts, listed=False)
