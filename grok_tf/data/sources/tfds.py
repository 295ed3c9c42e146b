"""`tfds`: a TensorFlow Datasets catalogue, images streamed still encoded."""

from typing import Any

import numpy as np

from grok_tf.data.sources.base import DatasetSource
from grok_tf.data.sources.base import SpecReader
from grok_tf.data.sources.registry import register_source
from grok_tf.data.sources.tokens import Tokens
from grok_tf.errors import SpecError


@register_source
class TfdsSource(DatasetSource):
    """A TensorFlow Datasets catalogue, e.g. `oxford_flowers102`.

    Split entries use tfds split syntax (`train[:80%]`), checked by tfds
    when read. Feed column = a feature name (`ClassLabel` or a sequence of
    them), whose names become the head's inferred classes. Images stay
    encoded (`tfds.decode.SkipDecoding`) and are streamed, never held in
    memory, so they go through the same decoder as files; `image_key`
    names the image feature (default `image`), `data_dir` the tfds data
    folder (relative to the spec's folder).

    Example:

    ```yaml
    - name: flowers
      source: tfds
      catalog: oxford_flowers102
      data_dir: ${GROK_DATA}/tfds
      splits: {train: train, val: validation}
      images_per_batch: 8
      feeds: {species: label}
    ```
    """

    name = "tfds"
    keys = frozenset({"catalog", "data_dir", "image_key"})
    required_keys = frozenset({"catalog"})
    split_entries = "opaque"

    def check(
        self, reader: SpecReader, field: str, raw: dict[str, Any]
    ) -> dict[str, Any]:
        """Checks the names; resolves `data_dir` to an absolute path."""
        options = super().check(reader, field, raw)
        for key in ("catalog", "image_key"):
            value = options.get(key)
            if key in options and (not isinstance(value, str) or not value):
                reader.fail(f"{field}.{key}", f"must be a name, got {value!r}")
        if "data_dir" in options:
            options["data_dir"] = str(
                reader.path_of(
                    f"{field}.data_dir", options["data_dir"], must_exist=False
                )
            )
        return options

    def read(self, spec, dataset, ref, who) -> Tokens:
        import tensorflow_datasets as tfds

        catalog = dataset.options["catalog"]
        image_key = dataset.options.get("image_key", "image")

        def load():
            builder = tfds.builder(
                catalog, data_dir=dataset.options.get("data_dir")
            )
            ds = builder.as_dataset(
                split=ref,
                shuffle_files=False,
                decoders={image_key: tfds.decode.SkipDecoding()},
                read_config=tfds.ReadConfig(add_tfds_id=True),
            )
            return builder, ds

        try:
            builder, ds = load()
        except Exception as error:  # tfds raises many unrelated error types
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}: cannot read tfds "
                f"catalogue {catalog!r} split {ref!r}: {error}"
            ) from error
        features = builder.info.features
        if image_key not in features:
            raise SpecError(
                f"{spec.path.name}: datasets.{dataset.name}.image_key: "
                f"{catalog} has no feature {image_key!r}"
            )
        vocabularies = {}
        for head, column in dataset.feeds.items():
            if column not in features:
                raise SpecError(
                    f"{spec.path.name}: datasets.{dataset.name}.feeds.{head}: "
                    f"{catalog} has no feature {column!r} (has "
                    f"{', '.join(features.keys())})"
                )
            feature = features[column]
            feature = getattr(feature, "feature", feature)
            names = getattr(feature, "names", None)
            if names:
                vocabularies[head] = tuple(names)
        prefix = f"tfds:{catalog}/"
        refs = []
        tokens = {head: [] for head in dataset.feeds}
        labels_only = ds.map(
            lambda example: {
                "tfds_id": example["tfds_id"],
                **{
                    column: example[column] for column in dataset.feeds.values()
                },
            }
        )
        for example in tfds.as_numpy(labels_only):
            refs.append(prefix + example["tfds_id"].decode())
            for head, column in dataset.feeds.items():
                value = np.atleast_1d(example[column])
                tokens[head].append(tuple(int(v) for v in value if v >= 0))

        def image_stream():
            return load()[1].map(
                lambda example: (
                    prefix + example["tfds_id"],
                    example[image_key],
                )
            )

        return Tokens(
            refs=refs,
            tokens=tokens,
            where=list(refs),
            image_stream=image_stream,
            vocabularies=vocabularies,
        )
