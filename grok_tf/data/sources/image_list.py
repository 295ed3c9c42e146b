"""`image_list`: a text file of `path, label, label, ...` lines."""

from grok_tf.data.sources.base import FileSource
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.slices import apply_slice
from grok_tf.data.sources.tokens import Tokens
from grok_tf.data.sources.tokens import collect_tokens
from grok_tf.data.sources.tokens import parse_token
from grok_tf.errors import SpecError
from grok_tf.io.text_files import dataset_path
from grok_tf.io.text_files import read_list


@register_source
class ImageListSource(FileSource):
    """Images listed in a text file, with their labels.

    Each line is `path, label, label, ...`, the path relative to `root`
    (an absolute path or one leaving `root` is an error). A label is a
    class id, a class name, `|`-joined ids or names for multi-label heads,
    or empty / `-1` when unknown. Feed column `K` is the K-th label after
    the path (0-based); `path:K` the K-th component of the image's path.
    Split entries are files under `root`, optionally sliced:
    `val.txt[:200]`.

    Example:

    ```yaml
    - name: photos
      source: image_list
      root: ${GROK_DATA}/grocery
      splits: {train: train.txt, val: val.txt}
      images_per_batch: 16
      feeds: {fine_class: 0, coarse_class: path:1}
    ```
    """

    name = "image_list"

    def read(self, spec, dataset, ref, who) -> Tokens:
        path, bounds = self.split_path(dataset, ref)
        records = apply_slice(list(read_list(path, who)), bounds)

        def rows():
            for number, fields in records:
                origin = f"{path}:{number}"
                yield dataset_path(fields[0], origin), origin, fields[1:]

        def label_of(row, column, origin):
            if not isinstance(column, int) or column < 0:
                raise SpecError(
                    f"{spec.path.name}: datasets.{dataset.name}.feeds: an "
                    "image_list column is a label index >= 0 or 'path:K', "
                    f"got {column!r}"
                )
            if column >= len(row):
                raise SpecError(
                    f"{origin}: has {len(row)} label columns, feed of "
                    f"dataset '{dataset.name}' asks for column {column}"
                )
            return parse_token(row[column])

        return collect_tokens(spec, dataset, rows(), label_of)
