"""`synthetic`: the package's generated catalogue, read as an image list."""

from typing import Any

from grok_tf.data.sources.base import DatasetSource
from grok_tf.data.sources.base import SpecReader
from grok_tf.data.sources.image_list import ImageListSource
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.slices import split_slice
from grok_tf.data.sources.tokens import Tokens
from grok_tf.errors import SpecError
from grok_tf.io.text_files import read_lines


@register_source
class SyntheticSource(DatasetSource):
    """The synthetic catalogue (`grok_tf.data.synthetic`), made on first use.

    The catalogue is generated into `root` (which need not exist) from
    `seed` and `config` (`CatalogConfig` fields) the first time a split is
    read, then read as an `image_list`; label columns 0.. that have a
    vocabulary file in the catalogue take their classes from it.

    Example:

    ```yaml
    - name: synthetic
      source: synthetic
      root: ${GROK_DATA:-~/.cache/grok_tf}/synthetic
      seed: 0
      config: {num_products: 24, image_size: 64}
      splits: {train: train.txt, val: val.txt}
      images_per_batch: 16
      feeds: {category: 0}
    ```
    """

    name = "synthetic"
    keys = frozenset({"root", "seed", "config"})
    generated = True
    tag_feeds = True

    def check(
        self, reader: SpecReader, field: str, raw: dict[str, Any]
    ) -> dict[str, Any]:
        """Checks `seed` and `config` as the catalogue generator will."""
        options = super().check(reader, field, raw)
        if "seed" in options:
            reader.positive_int(f"{field}.seed", options["seed"], 0)
        config = options.get("config")
        if config is not None and not isinstance(config, dict):
            reader.fail(
                f"{field}.config",
                f"must be a mapping of CatalogConfig fields, got "
                f"{type(config).__name__}",
            )
        try:
            _catalog_config(options)
        except (TypeError, ValueError) as error:
            reader.fail(f"{field}.config", str(error))
        return options

    def read(self, spec, dataset, ref, who) -> Tokens:
        from grok_tf.data.synthetic import VOCABULARY_FILES
        from grok_tf.data.synthetic import generate_synthetic_catalog

        try:
            config = _catalog_config(dataset.options)
        except (TypeError, ValueError) as error:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.config: {error}"
            ) from None
        generate_synthetic_catalog(dataset.root, config)
        if not (dataset.root / split_slice(ref)[0]).exists():
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.splits: split "
                f"file not found: {dataset.root / split_slice(ref)[0]}"
            )
        tokens = ImageListSource().read(spec, dataset, ref, who)
        for head, column in dataset.feeds.items():
            if isinstance(column, int) and 0 <= column < len(VOCABULARY_FILES):
                file = dataset.root / VOCABULARY_FILES[column]
                lines = read_lines(
                    file, f"{spec.path.name}: datasets.{dataset.name}"
                )
                tokens.vocabularies[head] = tuple(text for _, text in lines)
        return tokens


def _catalog_config(options):
    """The `CatalogConfig` of a dataset's options (`seed`, `config`)."""
    from grok_tf.data.synthetic import CatalogConfig

    settings = dict(options.get("config") or {})
    settings.setdefault("seed", options.get("seed", 0))
    return CatalogConfig(**settings)
