"""`catalogue`: another dataset's catalogue images as training data.

GrokNet trains product ids on catalogue photos and user photos together.
A dataset's `catalogue:` (a CSV of reference images per product, e.g.
grocery's one "iconic" image per product) is what photo -> catalogue
retrieval searches; a `catalogue` dataset feeds those same images to the
heads, as a dataset of its own with its own images per batch and,
usually, stronger augmentation (one studio shot per product is few).
"""

import dataclasses
from pathlib import Path

from grok_tf.data.sources.base import DatasetSource
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.slices import apply_slice
from grok_tf.data.sources.slices import split_slice
from grok_tf.data.sources.tokens import Tokens
from grok_tf.data.sources.tokens import collect_tokens
from grok_tf.data.sources.tokens import table_labels
from grok_tf.errors import SpecError
from grok_tf.io.text_files import dataset_path
from grok_tf.io.text_files import read_table


def catalogue_rows(spec, dataset, bounds=None):
    """The rows of `dataset`'s `catalogue:` CSV, image paths checked.

    Args:
        spec: the `Spec`.
        dataset: a `DatasetSpec` with a `catalogue` option.
        bounds: an optional `[a:b]` slice of the rows
            (`grok_tf.data.sources.slices`).

    Returns:
        `(header, rows)`: the CSV's column names, and a list of
        `(image path relative to the dataset's root, "file:line", row)`,
        the row a `{column: text}` dict. A leading `/` of an image path
        means the dataset's root.

    Raises:
        SpecError: a missing column or a bad path, naming file and line.
    """
    settings = dataset.options["catalogue"]
    path = Path(settings["file"])
    field = f"{spec.path.name}: datasets.{dataset.name}.catalogue"
    table = read_table(path, f"{field}.file")
    for key in ("image", "id"):
        if settings[key] not in table.header:
            raise SpecError(
                f"{field}.{key}: column {settings[key]!r} not in {path.name} "
                f"(has {table.header})"
            )
    rows = []
    for number, row in apply_slice(table.rows, bounds):
        origin = f"{path}:{number}"
        image = dataset_path(row[settings["image"]], origin, root_relative=True)
        rows.append((image, origin, row))
    return table.header, rows


@register_source
class CatalogueSource(DatasetSource):
    """The catalogue images of another dataset of the spec, as training data.

    `of:` names a dataset of the spec that has a `catalogue:`; its CSV's
    image column gives the images and a feed column is any column of that
    CSV (the product id column, a coarse class column, ...). The dataset's
    ids are the same products as `of`'s (`id_space`), so the product
    heads learn that a catalogue shot and the photos of its product are
    one product. Its split is `train: catalogue` (the default; `[a:b]`
    slices allowed); give it no `val`, since photo -> catalogue retrieval
    evaluates with these images as the gallery.

    Example:

    ```yaml
    - name: grocery_catalogue
      source: catalogue
      of: grocery                   # a dataset with a `catalogue:`
      images_per_batch: 8
      feeds: {product: Class ID (int), coarse_class: Coarse Class ID (int)}
      augmentation: {crop_area: [0.15, 1.0], brightness: 0.4}
    ```
    """

    name = "catalogue"
    keys = frozenset({"of"})
    required_keys = frozenset({"of"})
    split_entries = "opaque"
    default_splits = {"train": "catalogue"}

    def check(self, reader, field, raw):
        for split, ref in raw.get("splits", self.default_splits).items():
            try:
                name, _ = split_slice(ref)
            except ValueError as error:
                reader.fail(f"{field}.splits.{split}", str(error))
            if name != "catalogue":
                reader.fail(
                    f"{field}.splits.{split}",
                    f"a catalogue dataset's split is 'catalogue' (optionally "
                    f"sliced, e.g. catalogue[:50%]), got {ref!r}",
                )
        if not isinstance(raw["of"], str):
            reader.fail(f"{field}.of", "must name a dataset of the spec")
        return super().check(reader, field, raw)

    def check_spec(self, reader, field, dataset, datasets):
        names = {d.name: d for d in datasets}
        parent = names.get(dataset.options["of"])
        if parent is None:
            reader.fail(
                f"{field}.of",
                f"no dataset {dataset.options['of']!r} in the spec "
                f"(has {', '.join(names)})",
            )
        if "catalogue" not in parent.options:
            reader.fail(
                f"{field}.of",
                f"dataset {parent.name!r} names no `catalogue:` to train on",
            )

    def id_space(self, dataset):
        return dataset.options["of"]

    def read(self, spec, dataset, ref, who) -> Tokens:
        of = dataset.options["of"]
        parent = next(d for d in spec.datasets if d.name == of)
        header, rows = catalogue_rows(spec, parent, split_slice(ref)[1])
        table = Path(parent.options["catalogue"]["file"]).name
        label_of = table_labels(spec, dataset, header, table)
        located = dataclasses.replace(dataset, root=parent.root)
        return collect_tokens(spec, located, iter(rows), label_of)
