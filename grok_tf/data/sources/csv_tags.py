"""`csv_tags`: a CSV with an `image` column and label columns."""

from grok_tf.data.sources.base import FileSource
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.slices import apply_slice
from grok_tf.data.sources.tokens import Tokens
from grok_tf.data.sources.tokens import collect_tokens
from grok_tf.data.sources.tokens import table_labels
from grok_tf.errors import SpecError
from grok_tf.io.text_files import dataset_path
from grok_tf.io.text_files import read_table


@register_source
class CsvTagsSource(FileSource):
    """Images and their tags in a CSV table.

    The CSV (a file under `root`, optionally sliced: `tags.csv[:90%]`) has
    an `image` column (a path relative to `root`) and label columns of
    `|`-joined class names or ids. Feed column = a CSV column name, or
    `path:K` for the K-th component of the image's path.

    Example:

    ```yaml
    - name: attributes
      source: csv_tags
      root: data/shop
      splits: {train: "tags.csv[:90%]", val: "tags.csv[90%:]"}
      images_per_batch: 8
      feeds: {colour: colour, pattern: pattern}
    ```
    """

    name = "csv_tags"

    def keep(self, dataset, row, origin) -> bool:
        """Whether a row of the CSV is an example (all are, here)."""
        del dataset, row, origin
        return True

    def read(self, spec, dataset, ref, who) -> Tokens:
        path, bounds = self.split_path(dataset, ref)
        table = read_table(path, who)
        header = table.header
        if "image" not in header:
            raise SpecError(f"{path}: no 'image' column (has {header})")
        records = apply_slice(table.rows, bounds)

        def rows():
            for number, row in records:
                origin = f"{path}:{number}"
                if self.keep(dataset, row, origin):
                    yield dataset_path(row["image"], origin), origin, row

        label_of = table_labels(spec, dataset, header, path.name)
        return collect_tokens(spec, dataset, rows(), label_of)
