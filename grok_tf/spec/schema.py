"""The loaded form of a data spec: frozen dataclasses, one per section.

`grok_tf.spec.loader.load_spec` builds them from the YAML file and checks
every field; the other stages only read them.
"""

import dataclasses
from pathlib import Path
from typing import Any

RESERVED_OUTPUT_NAMES = ("embedding", "features")


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The `model:` section: trunk and embedding geometry."""

    trunk: str = "small_cnn"
    weights: str | None = None
    input_size: int = 64
    embedding_size: int = 400
    # Global pooling of the trunk's feature map: GrokNet's GeM (learnable
    # p, initialised to gem_p) or plain average pooling, to measure GeM.
    pooling: str = "gem"
    gem_p: float = 3.0
    learn_gem_p: bool = True
    sync_batch_norm: bool = False
    # Most pixels one image may decode to (after JPEG DCT scaling), in
    # training, evaluation and serving: grok_tf.data.images.
    max_image_pixels: int = 40_000_000


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """The `training:` section: defaults for `grok-tf train`."""

    epochs: int = 5
    steps_per_epoch: int = 100
    validation_steps: int | None = None
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    shuffle_buffer: int = 2048
    seed: int = 0
    crop_area: tuple[float, float] = (0.35, 1.0)
    flip: bool = True
    brightness: float = 0.15
    contrast: float = 0.15
    saturation: float = 0.15
    hue: float = 0.0


@dataclasses.dataclass(frozen=True)
class HeadSpec:
    """One output head: a label group with its loss.

    `type` names a registered head type (`grok_tf.model.heads`), `kind`
    is that type. `classes` is `None` while the vocabulary is still to be
    inferred from the data (see `grok_tf.data.sources.resolve_vocabularies`).
    `options` holds the type's settings with defaults filled in
    (`HeadType.options`).
    """

    name: str
    type: str
    classes: tuple[str, ...] | None
    loss_weight: float = 1.0
    options: dict = dataclasses.field(default_factory=dict)

    @property
    def kind(self):
        """The registered `HeadType` named `type`."""
        # Lazy: the head types build Keras layers; the spec stays light.
        from grok_tf.model.heads import head_type

        return head_type(self.type)

    @property
    def multilabel(self):
        """Several labels per image (multi-hot), from the head's type."""
        return self.kind.multilabel

    @property
    def num_classes(self):
        return len(self.classes)

    @classmethod
    def from_record(cls, record):
        """The head of a `run.json` record (`dataclasses.asdict` of one)."""
        return cls(**{**record, "classes": tuple(record["classes"])})


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset: where its images are and which heads it feeds.

    `feeds` maps a head name to the label column of the source: an int
    column of a list file, a CSV column or tfds feature name, `class_folder`
    for image folders, or `path:K` for the K-th component of the image path;
    or, for a multi-label head, a tag feed `{"column": <product column>,
    "tags": {...}}` giving each image the query tags mined for its product
    (`grok_tf.data.query_mining.read_tag_table`).
    `options` holds source-specific settings (`catalog`, `data_dir`,
    `image_key` for tfds; `seed` and `config` for synthetic; `of` for a
    catalogue source), the checked `catalogue` of retrieval evaluation and
    `augmentation`: the `training:` augmentation settings this dataset
    overrides (e.g. stronger crops for catalogue images).
    `loss_weight` scales the training weight of every image of the
    dataset on every head it feeds (e.g. 0.5 for pseudo-labelled crops,
    whose labels are noisier than true ones). Losses average over the
    weights of a batch, so it weighs the dataset against the other
    datasets feeding the same head; a head fed by this dataset alone is
    unchanged. Heads that score pairs (pairwise) take no weights: a
    dataset feeding one keeps weight 1.
    """

    name: str
    source: str
    root: Path | None
    splits: dict[str, str]
    images_per_batch: int
    feeds: dict[str, Any]
    options: dict[str, Any]
    loss_weight: float = 1.0


@dataclasses.dataclass(frozen=True)
class Spec:
    """A loaded, validated data spec."""

    path: Path
    model: ModelSpec
    training: TrainingSpec
    heads: tuple[HeadSpec, ...]
    datasets: tuple[DatasetSpec, ...]
    text: str

    def head(self, name):
        for head in self.heads:
            if head.name == name:
                return head
        raise KeyError(name)

    def split_names(self):
        return sorted({s for d in self.datasets for s in d.splits})

    def replace_heads(self, heads):
        return dataclasses.replace(self, heads=tuple(heads))

    def where(self, field):
        """The `file: field` prefix used by every error about this spec."""
        return f"{self.path.name}: {field}"
