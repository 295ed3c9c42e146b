"""Data specs: the YAML file that names the model, the heads and the datasets.

A spec is validated when it is loaded. Every mistake raises `SpecError` with
one line that names the spec file and the field, e.g.::

    grocery.yaml: datasets[0].images_per_batch: must be a positive integer,
    got -4

Layout of a spec (see `data_specs/*.yaml` for complete examples)::

    model:                      # all optional
      trunk: small_cnn          # resnext101_32x4d | resnet50 | ...
      weights: null             # or imagenet
      input_size: 64
      embedding_size: 400
      pooling: gem              # or average
      gem_p: 3.0                # GeM's initial exponent
      learn_gem_p: true         # false: p stays gem_p
      sync_batch_norm: false    # batch statistics over all replicas
      max_image_pixels: 40000000  # larger images are skipped / invalid
    training:                   # all optional; CLI flags override
      epochs: 3
      steps_per_epoch: 50
    heads:
      - name: category
        type: softmax           # a registered head type: softmax,
                                # multilabel_softmax, arcface,
                                # multilabel_arcface, pairwise
        classes: inferred       # or [a, b, c] or {file: f.txt}
                                # or {file: f.csv, column: C, id_column: I}
        loss_weight: 1.0
    datasets:
      - name: photos
        source: image_list      # image_folder | csv_tags | tfds | synthetic
        root: ${GROK_DATA}/grocery
        splits: {train: train.txt, val: val.txt}
        images_per_batch: 16
        feeds: {category: 0}    # head -> label column of this source
        augmentation: {crop_area: [0.2, 1.0]}  # overrides training's
        loss_weight: 1.0        # scales the training weight of its images
        # A multi-label head may take the query tags of each image's
        # product, mined from a product table (grok_tf.data.query_mining):
        #   queries: {column: 0, tags: {file: products.csv, key: id,
        #             text: [name, description], min_products: 2,
        #             max_share: 0.25}}
        # or the search queries that led to it in an interaction log of
        # `query, product_id, interactions` rows (grok_tf.data.query_log):
        #   queries: {column: 0, query_log: {file: interactions.tsv,
        #             min_interactions: 2, min_products: 1,
        #             max_queries: 10000, max_pairs: 5000000,
        #             weighting: none}}     # or interactions

Strings expand `${VAR}` and `${VAR:-default}` environment variables and `~`;
relative paths are relative to the spec file's folder. Vocabulary files and
split files must exist when the spec is loaded. Every text file (the spec,
list files, CSV tables, class files) is UTF-8, with or without BOM, read by
`grok_tf.io.text_files`, whose errors name the file and line. Heads whose
classes are `inferred` are resolved from the data by `grok_tf.data.sources`.
"""

import dataclasses
import difflib
import math
import os
import re
from pathlib import Path

import yaml

from grok_tf.data.query_log import QUERY_LOG_DEFAULTS
from grok_tf.data.query_log import WEIGHTINGS
from grok_tf.data.sources import source as dataset_source
from grok_tf.data.sources import source_names
from grok_tf.data.sources import split_slice
from grok_tf.errors import SpecError
from grok_tf.io.text_files import parse_int
from grok_tf.io.text_files import read_lines
from grok_tf.io.text_files import read_table
from grok_tf.io.text_files import read_text
from grok_tf.spec.schema import RESERVED_OUTPUT_NAMES
from grok_tf.spec.schema import DatasetSpec
from grok_tf.spec.schema import HeadSpec
from grok_tf.spec.schema import ModelSpec
from grok_tf.spec.schema import Spec
from grok_tf.spec.schema import TrainingSpec

_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


# The tag mining defaults of tag feeds. What each dataset source accepts
# is declared by the source (`grok_tf.data.sources`).
_TAG_DEFAULTS = {"min_products": 2, "max_share": 0.25}
# The keys of a feed mapping that name its label table, one per feed:
# query tags mined from product texts, or an interaction log's queries.
_LABEL_TABLES = ("tags", "query_log")
_HEAD_KEYS = {"name", "type", "classes", "loss_weight"}

_TOP_KEYS = {"model", "training", "heads", "datasets"}

#: The global pooling choices of `model.pooling` (`grok_tf.model.groknet`).
POOLINGS = ("gem", "average")
#: The `training:` settings a dataset's `augmentation:` may override.
AUGMENTATION_KEYS = (
    "crop_area",
    "flip",
    "brightness",
    "contrast",
    "saturation",
    "hue",
)


class _Reader:
    """Walks the parsed YAML, raising `SpecError` at the first mistake."""

    def __init__(self, path):
        self.path = path
        self.folder = path.parent

    def fail(self, field, message):
        raise SpecError(f"{self.path.name}: {field}: {message}")

    def check_keys(self, field, mapping, allowed, required=()):
        if not isinstance(mapping, dict):
            self.fail(field, f"must be a mapping, got {_kind(mapping)}")
        for key in mapping:
            if key not in allowed:
                hint = difflib.get_close_matches(str(key), sorted(allowed), 1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                where = f"{field}.{key}" if field else str(key)
                self.fail(where, f"unknown key{extra}")
        for key in required:
            if key not in mapping:
                where = f"{field}.{key}" if field else str(key)
                self.fail(where, "missing required field")

    def expand(self, field, value):
        if not isinstance(value, str):
            self.fail(field, f"must be a string, got {_kind(value)}")

        def substitute(match):
            name, default = match.group(1), match.group(2)
            if name in os.environ and os.environ[name]:
                return os.environ[name]
            if default is not None:
                return default
            self.fail(
                field,
                f"environment variable {name} is not set (use "
                f"${{{name}:-default}} for a fallback)",
            )

        return os.path.expanduser(_VARIABLE.sub(substitute, value))

    def path_of(self, field, value, must_exist=True, kind="file"):
        path = Path(self.expand(field, value))
        if not path.is_absolute():
            path = (self.folder / path).resolve()
        if must_exist:
            self.check_exists(field, path, kind)
        return path

    def check_exists(self, field, path, kind="file", what=None):
        """Fails unless `path` is an existing file (or folder)."""
        what = what or kind
        if not path.exists():
            self.fail(field, f"{what} not found: {path}")
        is_kind = path.is_dir() if kind == "folder" else path.is_file()
        if not is_kind:
            self.fail(field, f"not a {kind}: {path}")

    def flag(self, field, value):
        if not isinstance(value, bool):
            self.fail(field, f"must be true or false, got {value!r}")
        return value

    def positive_int(self, field, value, minimum=1):
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(field, f"must be an integer, got {_kind(value)}")
        if value < minimum:
            word = "positive" if minimum == 1 else f">= {minimum}"
            self.fail(field, f"must be a {word} integer, got {value}")
        return value

    def number(self, field, value, positive=False):
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(field, f"must be a number, got {_kind(value)}")
        if not math.isfinite(value):
            self.fail(field, f"must be a finite number, got {value}")
        if positive and value <= 0:
            self.fail(field, f"must be positive, got {value}")
        if value < 0:
            self.fail(field, f"must not be negative, got {value}")
        return float(value)

    def name(self, field, value):
        if not isinstance(value, str) or not _NAME_PATTERN.match(value):
            self.fail(
                field,
                f"must be an identifier (letters, digits, _), got {value!r}",
            )
        return value

    def section(self, field, raw, cls, checks):
        raw = {} if raw is None else raw
        names = {f.name for f in dataclasses.fields(cls)}
        self.check_keys(field, raw, names)
        values = {}
        for key, value in raw.items():
            values[key] = checks.get(key, lambda f, v: v)(
                f"{field}.{key}", value
            )
        return cls(**values)

    def model(self, raw):
        from grok_tf.model.trunks import trunk_names

        def trunk(field, value):
            if value not in trunk_names():
                self.fail(
                    field,
                    f"unknown trunk {value!r}; choose one of "
                    f"{', '.join(trunk_names())}",
                )
            return value

        def weights(field, value):
            if value not in (None, "imagenet"):
                self.fail(field, f"must be null or 'imagenet', got {value!r}")
            return value

        def pooling(field, value):
            if value not in POOLINGS:
                self.fail(
                    field,
                    f"must be {' or '.join(POOLINGS)}, got {value!r}",
                )
            return value

        return self.section(
            "model",
            raw,
            ModelSpec,
            {
                "trunk": trunk,
                "weights": weights,
                "input_size": lambda f, v: self.positive_int(f, v, 32),
                "embedding_size": self.positive_int,
                "pooling": pooling,
                "gem_p": lambda f, v: self.number(f, v, positive=True),
                "learn_gem_p": self.flag,
                "sync_batch_norm": self.flag,
                "max_image_pixels": self.positive_int,
            },
        )

    def training(self, raw):
        return self.section(
            "training", raw, TrainingSpec, self._training_checks()
        )

    def augmentation(self, field, raw):
        """A dataset's overrides of the `training:` augmentation settings."""
        if not isinstance(raw, dict):
            self.fail(field, f"must be a mapping, got {_kind(raw)}")
        self.check_keys(field, raw, set(AUGMENTATION_KEYS))
        checks = self._training_checks()
        return {
            key: checks[key](f"{field}.{key}", value)
            for key, value in raw.items()
        }

    def _training_checks(self):
        """`{key: check(field, value) -> value}` of the `training:` keys."""

        def crop_area(field, value):
            if (
                not isinstance(value, list | tuple)
                or len(value) != 2
                or not 0 < self.number(field, value[0]) <= value[1] <= 1
            ):
                self.fail(field, f"must be [min, max] in (0, 1], got {value}")
            return (float(value[0]), float(value[1]))

        def hue(field, value):
            if self.number(field, value) > 0.5:
                self.fail(field, f"must be in [0, 0.5], got {value}")
            return float(value)

        def optional_int(field, value):
            return None if value is None else self.positive_int(field, value)

        checks = {
            "epochs": self.positive_int,
            "steps_per_epoch": self.positive_int,
            "validation_steps": optional_int,
            "learning_rate": lambda f, v: self.number(f, v, positive=True),
            "shuffle_buffer": self.positive_int,
            "seed": lambda f, v: self.positive_int(f, v, 0),
            "crop_area": crop_area,
            "flip": self.flag,
        }
        for key in ("weight_decay", "brightness", "contrast", "saturation"):
            checks[key] = self.number
        checks["hue"] = hue
        return checks

    def classes(self, field, value):
        if value is None or value == "inferred":
            return None
        if isinstance(value, list):
            names = tuple(str(v) for v in value)
            if not names:
                self.fail(field, "must list at least one class")
            duplicates = sorted({n for n in names if names.count(n) > 1})
            if duplicates:
                self.fail(field, f"duplicate class names: {duplicates}")
            return names
        if isinstance(value, dict):
            self.check_keys(
                field, value, {"file", "column", "id_column"}, ("file",)
            )
            path = self.path_of(f"{field}.file", value["file"])
            return _read_vocabulary(
                self, field, path, value.get("column"), value.get("id_column")
            )
        self.fail(
            field,
            "must be 'inferred', a list of names or {file: ...}, got "
            f"{_kind(value)}",
        )

    def head(self, field, raw):
        if not isinstance(raw, dict):
            self.fail(field, f"must be a mapping, got {_kind(raw)}")
        kind = raw.get("type")
        names = _head_type_names()
        if kind is not None and kind not in names:
            self.fail(
                f"{field}.type",
                f"unknown head type {kind!r}; choose one of {', '.join(names)}",
            )
        options = _head_type(kind).options if kind in names else {}
        allowed = _HEAD_KEYS | set(options)
        self.check_keys(field, raw, allowed, ("name", "type"))
        name = self.name(f"{field}.name", raw["name"])
        if name in RESERVED_OUTPUT_NAMES:
            self.fail(f"{field}.name", f"{name!r} is reserved for the model")
        return HeadSpec(
            name=name,
            type=kind,
            classes=self.classes(f"{field}.classes", raw.get("classes")),
            loss_weight=self.number(
                f"{field}.loss_weight", raw.get("loss_weight", 1.0)
            ),
            options=self.head_options(field, kind, raw),
        )

    def head_options(self, field, kind, raw):
        """The head type's options: defaults, overridden by `raw`'s values,
        each checked by its default's type, then by the type's rules."""
        from grok_tf.model.heads import HeadOptionError

        head_type = _head_type(kind)
        options = dict(head_type.options)
        for key, default in head_type.options.items():
            if key in raw:
                options[key] = self.option(f"{field}.{key}", default, raw[key])
        try:
            head_type.check_options(options)
        except HeadOptionError as error:
            self.fail(f"{field}.{error.option}", error.message)
        return options

    def option(self, field, default, value):
        """A head option's value, checked against its default's type."""
        if isinstance(default, bool):
            return self.flag(field, value)
        if isinstance(default, int):
            return None if value is None else self.positive_int(field, value)
        if isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                self.fail(field, f"must be a number, got {_kind(value)}")
            return float(value)
        if isinstance(default, str) and not isinstance(value, str):
            self.fail(field, f"must be a string, got {_kind(value)}")
        return value

    def dataset(self, field, raw, heads):
        """One dataset; `heads` maps the spec's head names to their types.

        What a source accepts (keys, split entries, tag feeds, catalogues)
        is declared by its `DatasetSource` (`grok_tf.data.sources`).
        """
        if not isinstance(raw, dict):
            self.fail(field, f"must be a mapping, got {_kind(raw)}")
        source = raw.get("source")
        if source not in source_names():
            self.fail(
                f"{field}.source",
                f"unknown source {source!r}; choose one of "
                f"{', '.join(source_names())}"
                if source is not None
                else "missing required field",
            )
        source = dataset_source(source)
        required = {"name", "images_per_batch", "feeds"}
        required |= source.required_keys
        if source.default_splits is None:
            required.add("splits")
        self.check_keys(field, raw, source.accepted_keys(), sorted(required))
        name = self.name(f"{field}.name", raw["name"])
        images_per_batch = self.positive_int(
            f"{field}.images_per_batch", raw["images_per_batch"]
        )
        loss_weight = self.number(
            f"{field}.loss_weight", raw.get("loss_weight", 1.0), positive=True
        )
        root = None
        if "root" in raw:
            root = self.path_of(
                f"{field}.root",
                raw["root"],
                must_exist=not source.generated,
                kind="folder",
            )
        splits = raw.get("splits", source.default_splits)
        if not isinstance(splits, dict) or not splits:
            self.fail(f"{field}.splits", "must map split names to files")
        for split, ref in splits.items():
            where = f"{field}.splits.{split}"
            if not isinstance(ref, str):
                self.fail(where, "must be a string")
            if source.split_entries == "opaque":
                continue  # the source's own syntax (tfds), checked when read
            try:
                file = split_slice(ref)[0]
            except ValueError as error:
                self.fail(where, str(error))
            if not source.generated:
                self.check_exists(
                    where, root / file, source.split_entries, "split file"
                )
        feeds = raw["feeds"]
        if not isinstance(feeds, dict) or not feeds:
            self.fail(f"{field}.feeds", "must map head names to label columns")
        for head, column in feeds.items():
            if head not in heads:
                hint = difflib.get_close_matches(str(head), sorted(heads), 1)
                extra = f" (did you mean '{hint[0]}'?)" if hint else ""
                self.fail(f"{field}.feeds.{head}", f"no such head{extra}")
            if isinstance(column, dict):
                if "column" not in column:
                    continue  # tag_feed names the missing key
                column = column["column"]
            self.feed_column(f"{field}.feeds.{head}", column)
        feeds = {
            head: self.tag_feed(f"{field}.feeds.{head}", column, root, source)
            if isinstance(column, dict)
            else column
            for head, column in feeds.items()
        }
        for head, column in feeds.items():
            if (
                isinstance(column, dict)
                and not _head_type(heads[head]).multilabel
            ):
                multilabel = _head_type_names(lambda t: t.multilabel)
                kind = "query-log" if "query_log" in column else "tag"
                self.fail(
                    f"{field}.feeds.{head}",
                    f"a {kind} feed gives several labels per image; head "
                    f"'{head}' is {heads[head]} "
                    f"(use {' or '.join(multilabel)})",
                )
        if loss_weight != 1.0:
            for head in feeds:
                if not _head_type(heads[head]).sample_weighted:
                    self.fail(
                        f"{field}.loss_weight",
                        f"head '{head}' ({heads[head]}) does not weigh "
                        "examples; feed it from this dataset at weight 1, "
                        "or not at all",
                    )
        options = source.check(self, field, raw)
        if "catalogue" in raw:
            options["catalogue"] = self.catalogue(
                f"{field}.catalogue", raw["catalogue"], root, feeds, heads
            )
        if "augmentation" in raw:
            options["augmentation"] = self.augmentation(
                f"{field}.augmentation", raw["augmentation"]
            )
        return DatasetSpec(
            name=name,
            source=source.name,
            root=root,
            splits=dict(splits),
            images_per_batch=images_per_batch,
            feeds=dict(feeds),
            options=options,
            loss_weight=loss_weight,
        )

    def feed_column(self, field, column):
        """Checks what all sources share: no booleans, `path:K` with int K."""

        if isinstance(column, bool) or column is None:
            self.fail(field, f"must be a label column, got {_kind(column)}")
        if (
            isinstance(column, str)
            and column.startswith("path:")
            and parse_int(column[len("path:") :]) is None
        ):
            self.fail(
                field,
                f"{column!r}: K of 'path:K' must be an integer, e.g. path:1",
            )

    def tag_feed(self, field, raw, root, source):
        """A feed of labels per product: query tags mined from product texts
        (`tags:`, query_mining) or an interaction log's queries
        (`query_log:`, query_log); one of the two.

        `source` is the dataset's `DatasetSource`.
        """
        if not source.tag_feeds:
            names = [n for n in source_names() if dataset_source(n).tag_feeds]
            self.fail(
                field,
                f"tag feeds need a file source ({', '.join(names)}), "
                f"not {source.name}",
            )
        self.check_keys(field, raw, {"column", *_LABEL_TABLES}, ("column",))
        kinds = [kind for kind in _LABEL_TABLES if kind in raw]
        if len(kinds) != 1:
            self.fail(
                field,
                "a feed mapping has `tags` (query tags mined from product "
                "texts) or `query_log` (an interaction log), "
                + ("not both" if kinds else "one of them"),
            )
        if kinds == ["query_log"]:
            return self.query_log_feed(field, raw, root, source)
        tags = raw["tags"]
        self.check_keys(
            f"{field}.tags",
            tags,
            set(_TAG_DEFAULTS) | {"file", "key", "text"},
            ("file", "key", "text"),
        )
        path = root / self.expand(f"{field}.tags.file", tags["file"])
        if not source.generated:  # a generated dataset's, once made
            self.check_exists(f"{field}.tags.file", path)
        text = tags["text"]
        text = [text] if isinstance(text, str) else text
        if not isinstance(text, list) or not text:
            self.fail(f"{field}.tags.text", "must name one or more columns")
        settings = {**_TAG_DEFAULTS, **tags, "file": str(path), "text": text}
        self.positive_int(
            f"{field}.tags.min_products", settings["min_products"]
        )
        share = self.number(f"{field}.tags.max_share", settings["max_share"])
        if not 0 < share <= 1:
            self.fail(
                f"{field}.tags.max_share", f"must be in (0, 1], got {share}"
            )
        return {"column": raw["column"], "tags": settings}

    def query_log_feed(self, field, raw, root, source):
        """`{column, query_log}`: the queries of an interaction log
        (`grok_tf.data.query_log`); a generated dataset's log is checked
        when the dataset is made, not here."""
        field = f"{field}.query_log"
        log = raw["query_log"]
        self.check_keys(field, log, {"file", *QUERY_LOG_DEFAULTS}, ("file",))
        path = root / self.expand(f"{field}.file", log["file"])
        if not source.generated:
            self.check_exists(f"{field}.file", path)
        settings = {**QUERY_LOG_DEFAULTS, **log, "file": str(path)}
        for key in QUERY_LOG_DEFAULTS:
            if key != "weighting":
                self.positive_int(f"{field}.{key}", settings[key])
        if settings["weighting"] not in WEIGHTINGS:
            self.fail(
                f"{field}.weighting",
                f"must be {' or '.join(WEIGHTINGS)}, got "
                f"{settings['weighting']!r}",
            )
        return {"column": raw["column"], "query_log": settings}

    def catalogue(self, field, raw, root, feeds, heads):
        """A CSV of catalogue images and their ids, for retrieval.

        Its ids are those of one id head the dataset feeds: `head:` names
        it when the dataset feeds several (ArcFace and pairwise, say).
        """
        self.check_keys(
            field, raw, {"file", "image", "id", "head"}, ("file", "image", "id")
        )
        path = root / self.expand(f"{field}.file", raw["file"])
        self.check_exists(f"{field}.file", path)
        id_heads = [h for h in feeds if _head_type(heads[h]).identity]
        identity = ", ".join(_head_type_names(lambda t: t.identity))
        if "head" in raw:
            if raw["head"] not in id_heads:
                self.fail(
                    f"{field}.head",
                    f"{raw['head']!r} is not an id head ({identity}) this "
                    f"dataset feeds ({', '.join(id_heads) or 'none'})",
                )
            id_heads = [raw["head"]]
        if len(id_heads) != 1:
            self.fail(
                field,
                "a catalogue needs the dataset to feed exactly one id head "
                f"({identity}), it feeds {len(id_heads)}"
                + (": name one with `head:`" if id_heads else ""),
            )
        return {
            "file": str(path),
            "image": raw["image"],
            "id": raw["id"],
            "head": id_heads[0],
        }


def load_spec(path):
    """Loads and validates a data spec.

    Args:
        path: the YAML file.

    Returns:
        A `Spec`. Heads with `classes: inferred` have `classes=None` until
        `grok_tf.data.sources.resolve_vocabularies` fills them in.

    Raises:
        SpecError: naming the file and the field of the first mistake.

    Example:

    >>> from grok_tf.demo import demo_spec_path
    >>> spec = load_spec(demo_spec_path())
    >>> [h.name for h in spec.heads]
    ['category', 'colour', 'pattern', 'queries', 'product', 'product_pairs']
    """

    path = Path(path)
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    text = read_text(path, f"{path}: spec file")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f"line {mark.line + 1}" if mark else "YAML"
        raise SpecError(f"{path.name}: {line}: invalid YAML") from error
    return parse_spec(raw, path, text)


def parse_spec(raw, path, text=""):
    """Validates an already parsed spec mapping (see `load_spec`)."""
    path = Path(path)
    reader = _Reader(path)
    reader.check_keys("", raw, _TOP_KEYS, ("heads", "datasets"))
    for key in ("heads", "datasets"):
        if not isinstance(raw[key], list) or not raw[key]:
            reader.fail(key, "must be a non-empty list")
    heads = [reader.head(f"heads[{i}]", h) for i, h in enumerate(raw["heads"])]
    _check_unique(reader, "heads", [h.name for h in heads])
    types = {h.name: h.type for h in heads}
    datasets = [
        reader.dataset(f"datasets[{i}]", d, types)
        for i, d in enumerate(raw["datasets"])
    ]
    _check_unique(reader, "datasets", [d.name for d in datasets])
    for i, dataset in enumerate(datasets):
        dataset_source(dataset.source).check_spec(
            reader, f"datasets[{i}]", dataset, datasets
        )
    for i, head in enumerate(heads):
        if not any(head.name in d.feeds for d in datasets):
            reader.fail(
                f"heads[{i}]", f"head '{head.name}' is fed by no dataset"
            )
    return Spec(
        path=path,
        model=reader.model(raw.get("model")),
        training=reader.training(raw.get("training")),
        heads=tuple(heads),
        datasets=tuple(datasets),
        text=text,
    )


def _check_unique(reader, field, names):
    seen = set()
    for i, name in enumerate(names):
        if name in seen:
            reader.fail(f"{field}[{i}].name", f"duplicate name {name!r}")
        seen.add(name)


def _read_vocabulary(reader, field, path, column, id_column):
    """Reads class names from a text file or a column of a CSV file.

    A text file (UTF-8, see `grok_tf.io.text_files`) holds one name per line,
    stripped, blank lines skipped. A CSV file gives one name per record in
    `column`, in order, or at the integer ids of `id_column` (0..N-1; a
    record may repeat an id with the same name, e.g. a coarse class beside
    each of its fine classes). Names are unique and not empty.
    """

    who = f"{reader.path.name}: {field}.file"
    if column is None:
        if id_column is not None:
            reader.fail(f"{field}.id_column", "needs a `column` of names")
        rows = [(n, text.strip()) for n, text in read_lines(path, who)]
        rows = [(n, name) for n, name in rows if name]
    else:
        table = read_table(path, who)
        for key, name in ((column, "column"), (id_column, "id_column")):
            if key is not None and key not in table.header:
                reader.fail(
                    f"{field}.{name}",
                    f"column {key!r} not in {path.name} (has {table.header})",
                )
        for n, row in table.rows:
            if not row[column]:
                raise SpecError(
                    f"{path}:{n}: empty class name in column {column!r}"
                )
        if id_column is not None:
            rows = _names_by_id(reader, field, path, table, column, id_column)
        else:
            rows = [(n, row[column]) for n, row in table.rows]
    names, line_of = [], {}
    for n, name in rows:
        if name in line_of:
            raise SpecError(
                f"{path}:{n}: class name {name!r} repeats line {line_of[name]}"
            )
        line_of[name] = n
        names.append(name)
    if not names:
        reader.fail(f"{field}.file", f"no class names in {path}")
    return tuple(names)


def _names_by_id(reader, field, path, table, column, id_column):
    """`(line, name)` for ids 0..N-1 of a class table with an id column."""

    name_of, line_of, id_of = {}, {}, {}
    for n, row in table.rows:
        name, text = row[column], row[id_column]
        i = parse_int(text)
        if i is None:
            raise SpecError(
                f"{path}:{n}: column {id_column!r}: a class id is an integer, "
                f"got {text!r}"
            )
        if name_of.get(i, name) != name:
            raise SpecError(
                f"{path}:{n}: class id {i} is {name!r} here but "
                f"{name_of[i]!r} on line {line_of[i]}"
            )
        if id_of.get(name, i) != i:
            raise SpecError(
                f"{path}:{n}: class {name!r} has id {i} here but "
                f"{id_of[name]} on line {line_of[id_of[name]]}"
            )
        name_of.setdefault(i, name)
        line_of.setdefault(i, n)
        id_of.setdefault(name, i)
    missing = [i for i in range(len(name_of)) if i not in name_of]
    if missing:
        reader.fail(
            f"{field}.id_column",
            f"ids in {path.name} are not 0..{len(name_of) - 1} (no "
            f"{missing[0]}, but {max(name_of)})",
        )
    return [(line_of[i], name_of[i]) for i in range(len(name_of))]


def _kind(value):
    return "null" if value is None else type(value).__name__


def _head_type(name):
    """The registered head type `name` (`grok_tf.model.heads`, imported
    here: its types build Keras layers, the spec does not)."""
    from grok_tf.model.heads import head_type

    return head_type(name)


def _head_type_names(where=None):
    """Names of the registered head types (`where`: a filter on them)."""
    from grok_tf.model.heads import head_type_names

    return head_type_names(where)
