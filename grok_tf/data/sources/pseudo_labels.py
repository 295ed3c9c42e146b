"""`pseudo_labels`: crops labelled by `grok-tf pseudo-label`, as training
data whose labels are guesses."""

import math

from grok_tf.data.sources.csv_tags import CsvTagsSource
from grok_tf.data.sources.registry import register_source
from grok_tf.errors import SpecError


@register_source
class PseudoLabelSource(CsvTagsSource):
    """The crops of a `grok-tf pseudo-label` output folder, with their
    pseudo-labels.

    `root` is the output folder; the split is its `pseudo_labels.csv`
    (the default `splits: {train: pseudo_labels.csv}`). A row is an
    example when the pseudo-labeller accepted it, or, with `max_distance`,
    when its distance is at most that (to try another threshold without
    labelling again). Feed columns are the CSV's: `product` (the class name
    of the id head that labelled it) or `product_id` (its class id). `of:`
    names the dataset whose products the ids are, so a head fed by both
    treats them as one id space (`DatasetSource.id_space`). Give the
    dataset a `loss_weight` below 1: its labels are noisier. Prefer the
    `product` column: a name means the same class whatever else the spec
    holds, while `product_id` is the index in the labelling run's head.

    Example:

    ```yaml
    - name: pseudo
      source: pseudo_labels
      root: runs/grocery_pseudo        # grok-tf pseudo-label --out
      of: grocery
      images_per_batch: 8
      loss_weight: 0.5
      feeds: {fine_class: product, product: product}
    ```
    """

    name = "pseudo_labels"
    keys = frozenset({"root", "of", "max_distance"})
    required_keys = frozenset({"root", "of"})
    default_splits = {"train": "pseudo_labels.csv"}
    tag_feeds = False
    catalogues = False

    def check(self, reader, field, raw):
        if not isinstance(raw["of"], str):
            reader.fail(f"{field}.of", "must name a dataset of the spec")
        if "max_distance" in raw:
            reader.number(f"{field}.max_distance", raw["max_distance"])
        return super().check(reader, field, raw)

    def check_spec(self, reader, field, dataset, datasets):
        names = [d.name for d in datasets if d.name != dataset.name]
        if dataset.options["of"] not in names:
            reader.fail(
                f"{field}.of",
                f"no dataset {dataset.options['of']!r} in the spec "
                f"(has {', '.join(names) or 'no other'})",
            )

    def id_space(self, dataset):
        return dataset.options["of"]

    def keep(self, dataset, row, origin) -> bool:
        limit = dataset.options.get("max_distance")
        if limit is None:
            return _field(row, "accepted", origin) == "1"
        text = _field(row, "distance", origin)
        try:
            distance = float(text) if text else math.inf
        except ValueError:
            raise SpecError(
                f"{origin}: distance {text!r} is not a number"
            ) from None
        return distance <= limit


def _field(row, column, origin):
    if column not in row:
        raise SpecError(
            f"{origin}: no {column!r} column: not a grok-tf pseudo-label list"
        )
    return row[column].strip()
