"""`image_folder`: `root/<split>/<class>/*.jpg`."""

from grok_tf.data.sources.base import FileSource
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.slices import apply_slice
from grok_tf.data.sources.tokens import Tokens
from grok_tf.data.sources.tokens import collect_tokens
from grok_tf.errors import SpecError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@register_source
class ImageFolderSource(FileSource):
    """Images in one folder per class.

    A split entry is a folder under `root` holding `<class>/<image>` files
    (suffixes `IMAGE_SUFFIXES`, any case), read in sorted order and
    optionally sliced: `train[:90%]`. Feed column `class_folder` is the
    class folder's name; `path:K` the K-th component of the image's path
    relative to `root`.

    Example:

    ```yaml
    - name: folders
      source: image_folder
      root: data/flowers
      splits: {train: train, val: val}
      images_per_batch: 8
      feeds: {species: class_folder}
    ```
    """

    name = "image_folder"
    split_entries = "folder"

    def read(self, spec, dataset, ref, who) -> Tokens:
        folder, bounds = self.split_path(dataset, ref)
        files = sorted(
            p
            for p in folder.glob("*/*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        files = apply_slice(files, bounds)

        def rows():
            for file in files:
                yield (
                    file.relative_to(dataset.root),
                    str(file),
                    file.parent.name,
                )

        def label_of(row, column, origin):
            if column != "class_folder":
                raise SpecError(
                    f"{spec.path.name}: datasets.{dataset.name}.feeds: an "
                    "image_folder column is 'class_folder' or 'path:K', got "
                    f"{column!r}"
                )
            return (row,)

        return collect_tokens(spec, dataset, rows(), label_of)
