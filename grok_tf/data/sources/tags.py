"""Tag feeds: each image gets the query tags mined for its product.

A tag feed (`feeds: {queries: {column: 0, tags: {file: products.csv,
...}}}`) reads a product id from the feed's `column` and replaces it by
the product's tags from its tag table (`grok_tf.data.query_mining`).
"""

from grok_tf.errors import SpecError


def tag_tables(spec, dataset) -> dict:
    """Head -> (product -> tags, vocabulary) for the dataset's tag feeds."""
    from grok_tf.data.query_mining import read_tag_table

    tables = {}
    for head, column in dataset.feeds.items():
        if isinstance(column, dict):
            try:
                tables[head] = read_tag_table(column["tags"], dataset.root)
            except ValueError as error:
                raise SpecError(
                    f"{spec.path.name}: datasets.{dataset.name}.feeds.{head}"
                    f".tags: {error}"
                ) from None
    return tables


def tags_of(table, products, head: str, origin: str) -> tuple[str, ...]:
    """The sorted union of the tags of `products` (ids in `table`)."""
    tags = set()
    for product in products:
        if product not in table:
            raise SpecError(
                f"{origin}: head '{head}': product {product!r} has no row in "
                "its tag table"
            )
        tags.update(table[product])
    return tuple(sorted(tags))
