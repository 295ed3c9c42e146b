"""Multi-dataset tf.data pipelines: GrokNet's fixed per-dataset batch mix.

GrokNet samples a fixed number of images from each dataset into every
batch. `training_batches` builds one pipeline per dataset (shuffle, parallel
guarded decode, augmentation, labels for every head), batches each to its
share and concatenates them, so a batch always holds exactly
`images_per_batch` images of every dataset: `[dataset 0 rows | dataset 1
rows | ...]`. A dataset's `augmentation:` overrides the spec's `training:`
augmentation for its images only. Under a distribution strategy each
replica builds its own pipeline with `images_per_batch / num_replicas`
images of every dataset (`distributed_training_batches`).

Every element is `(images, labels, weights)`:

- `images`: float32 [B, S, S, 3] in [0, 255].
- `labels[head]`: int32 [B] class id (-1 when absent) for softmax heads;
  float32 [B, C] multi-hot (all zero when absent) for multi-label heads.
  In training batches, a head whose labels are weighted (a query log with
  `weighting: interactions`, `Split.label_weights`) holds each label's
  weight instead of 1 (the multi-label losses spread their target in
  proportion); evaluation batches keep the multi-hot.
- `weights[head]`: float32 [B], 1 where the example has a label for the head
  and 0 where its dataset does not feed it (or the label is missing). In
  training batches, a dataset's `loss_weight` scales the weights of its
  images (pseudo-labelled crops count less than true labels).
"""

import dataclasses

import tensorflow as tf

from grok_tf.data.images import EvalPreprocessor
from grok_tf.data.images import ImageDecoder
from grok_tf.data.images import augment_for_training
from grok_tf.data.images import describe_skipped
from grok_tf.data.images import keep_or_record
from grok_tf.errors import SpecError

AUTOTUNE = tf.data.AUTOTUNE


def decoded_examples(
    spec, split, log, prepare, arrange=None, weighted=False, decoder=None
):
    """A `Split` as `(image, labels, weights)` elements for every head.

    Args:
        spec: a resolved `Spec`; its model's `ImageDecoder` decodes.
        split: a `Split`.
        log: a `CorruptImageLog`; unreadable images are dropped and
            recorded, and an image it holds already is not read again.
        prepare: `fn(uint8 image) -> float32 [S, S, 3]` (augment or resize).
        arrange: optional `fn(dataset) -> dataset` applied to the references
            before decoding (shard, repeat, shuffle: cheap on strings).
        weighted: multi-label heads with `split.label_weights` get their
            label weights (training); otherwise every label weighs 1.
        decoder: the `ImageDecoder` (default: the spec's, for training).
    """
    ds = _encoded(split, weighted)
    if arrange is not None:
        ds = arrange(ds)
    decoder = decoder or ImageDecoder.for_spec(spec)

    def load(ref, data, fed):  # prepared in the same map: no full-size
        image, ok = decoder.load_or_flag(ref, data, log)  # image waits
        return prepare(image), fed, ok, ref

    def finish(image, fed, ok, ref):
        labels, weights = complete_labels(spec, fed)
        return image, labels, weights

    ds = ds.map(load, num_parallel_calls=AUTOTUNE)
    ds = ds.filter(lambda image, fed, ok, ref: keep_or_record(ref, ok, log))
    return ds.map(finish, num_parallel_calls=AUTOTUNE)


def require_readable(spec, split, log):
    """Checks that at least one image of `split` can be decoded.

    Reads the split in order up to its first readable image (usually the
    first image), recording the unreadable ones met on the way in `log`,
    which later pipelines then skip without reading them again. Without
    this check, a training stream whose images are all unreadable would
    filter forever without producing a batch.

    Raises:
        SpecError: no image of the split can be read; the message names the
            spec, dataset and split, and summarises why.
    """
    decoder = ImageDecoder.for_spec(spec)

    def readable(ref, data, fed):
        return ref, decoder.load_or_flag(ref, data, log)[1]

    ds = _encoded(split).map(readable, num_parallel_calls=AUTOTUNE)
    ds = ds.filter(lambda ref, ok: keep_or_record(ref, ok, log)).take(1)
    if any(True for _ in ds):
        return
    refs = set(split.refs)
    files = {k: v for k, v in log.summary()["files"].items() if k in refs}
    raise SpecError(
        f"{spec.path.name}: dataset '{split.dataset}', split "
        f"'{split.split}': none of its {len(split)} images can be read: "
        + describe_skipped(files)
    )


def _encoded(split, weighted=False):
    """`(ref, encoded bytes or b"", labels)` of every image of a `Split`;
    with `weighted`, a head of `split.label_weights` has `(ids, weights)`."""
    labels = dict(split.labels)
    if weighted:
        for head, weights in split.label_weights.items():
            labels[head] = (labels[head], weights)
    if split.image_stream is None:  # files: read by the decoder from refs
        return tf.data.Dataset.from_tensor_slices(
            (split.refs, [b""] * len(split), labels)
        )
    # Encoded bytes streamed in the order of the refs.
    labelled = tf.data.Dataset.from_tensor_slices((split.refs, labels))
    return tf.data.Dataset.zip(labelled, split.image_stream()).map(_aligned)


def complete_labels(spec, fed):
    """Labels and weights for every head of the spec from the fed subset.

    `fed[head]` is a class id, padded ids, or `(padded ids, their weights)`
    for weighted multi-label heads: the target then holds each label's
    weight, not 1 (ids are distinct within an example).
    """
    labels, weights = {}, {}
    for head in spec.heads:
        if head.multilabel:
            if head.name in fed and isinstance(fed[head.name], tuple):
                ids, label_weights = fed[head.name]
                hot = tf.one_hot(ids, head.num_classes, dtype=tf.float32)
                value = tf.reduce_sum(hot * label_weights[:, None], axis=0)
            elif head.name in fed:
                ids = fed[head.name]
                hot = tf.one_hot(ids, head.num_classes, dtype=tf.float32)
                value = tf.reduce_max(hot, axis=0)
            else:
                value = tf.zeros([head.num_classes], tf.float32)
            weight = tf.cast(tf.reduce_sum(value) > 0, tf.float32)
        else:
            value = fed.get(head.name, tf.constant(-1, tf.int32))
            weight = tf.cast(value >= 0, tf.float32)
        labels[head.name] = value
        weights[head.name] = weight
    return labels, weights


def per_replica_images(spec, num_replicas):
    """`{dataset: images per replica batch}`, checking divisibility."""
    shares = {}
    for i, dataset in enumerate(spec.datasets):
        if dataset.images_per_batch % num_replicas:
            raise SpecError(
                spec.where(f"datasets[{i}].images_per_batch")
                + f": {dataset.images_per_batch} images cannot be shared "
                f"equally by {num_replicas} replicas"
            )
        shares[dataset.name] = dataset.images_per_batch // num_replicas
    return shares


def training_batches(spec, splits, log, input_context=None):
    """Endless mixed training batches for one replica (or one machine).

    Args:
        spec: a resolved `Spec`.
        splits: `{dataset name: Split}` of the training split.
        log: a `CorruptImageLog` for images that fail to decode.
        input_context: the `tf.distribute.InputContext` when called from
            `distribute_datasets_from_function`, else None.

    Returns:
        A `tf.data.Dataset` of `(images, labels, weights)` batches.

    Example (not run: needs a spec and its images):

    >>> log = CorruptImageLog()  # doctest: +SKIP
    >>> batches = training_batches(spec, splits, log)  # doctest: +SKIP
    >>> images, labels, weights = next(iter(batches))  # doctest: +SKIP
    """
    replicas = input_context.num_replicas_in_sync if input_context else 1
    shares = per_replica_images(spec, replicas)
    training = spec.training
    streams = []
    for i, dataset in enumerate(spec.datasets):
        split = splits[dataset.name]
        if not len(split):
            raise SpecError(
                spec.where(f"datasets[{i}]")
                + f": dataset '{dataset.name}' has no training images"
            )
        seed = training.seed * 1000 + i
        if input_context:
            seed += 100 * input_context.input_pipeline_id

        def arrange(ds, split=split, seed=seed):
            if input_context and input_context.num_input_pipelines > 1:
                ds = ds.shard(
                    input_context.num_input_pipelines,
                    input_context.input_pipeline_id,
                )
            buffer = min(len(split), training.shuffle_buffer)
            return ds.repeat().shuffle(buffer, seed=seed)

        ds = decoded_examples(
            spec,
            split,
            log,
            _augmentation(spec, dataset),
            arrange,
            weighted=True,
        )
        if dataset.loss_weight != 1.0:
            ds = ds.map(
                lambda image, labels, weights, w=dataset.loss_weight: (
                    image,
                    labels,
                    {head: w * weight for head, weight in weights.items()},
                )
            )
        streams.append(ds.batch(shares[dataset.name], drop_remainder=True))
    mixed = tf.data.Dataset.zip(tuple(streams)).map(_concatenate)
    return mixed.prefetch(AUTOTUNE)


def distributed_training_batches(strategy, spec, splits, log, transform=None):
    """`training_batches` for every replica of `strategy`.

    `transform`, if given, maps each replica's batches (e.g. to the model's
    inputs, `grok_tf.model.groknet.model_inputs`).
    """
    per_replica_images(spec, strategy.num_replicas_in_sync)

    def batches(context):
        ds = training_batches(spec, splits, log, context)
        return ds if transform is None else ds.map(transform)

    return strategy.distribute_datasets_from_function(batches)


def evaluation_batches(spec, splits, log, batch_size=64, augment=False):
    """One ordered pass over every given split, prepared for evaluation.

    Each image goes through the spec's `EvalPreprocessor`, the one the
    serving signature uses: served outputs equal evaluated ones. With
    `augment`, each image is instead a random view of it, made as in
    training (`augment_for_training` with its dataset's augmentation):
    the same rows in the same order, e.g. extra views of the training
    photos for the Catalyzer (`compress_run(views=...)`).

    Args:
        spec: a resolved `Spec`.
        splits: a list of `Split`s (one per dataset having the split).
        log: a `CorruptImageLog`.
        batch_size: images per batch.
        augment: random training views instead of the evaluation crop.

    Returns:
        A finite `tf.data.Dataset` of `(images, labels, weights)`.
    """
    preprocessor = EvalPreprocessor.for_spec(spec)
    parts = []
    for split in splits:
        if augment:
            (dataset,) = (d for d in spec.datasets if d.name == split.dataset)
            prepare = _augmentation(spec, dataset)
            decoder = None  # the training decoder: the crop may be small
        else:
            prepare, decoder = preprocessor.resize, preprocessor.decoder
        parts.append(
            decoded_examples(spec, split, log, prepare, decoder=decoder)
        )
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def _augmentation(spec, dataset):
    """`fn(uint8 image) -> float32 view`: the spec's training augmentation
    with the dataset's `augmentation:` overrides."""
    augmentation = dataclasses.replace(
        spec.training, **dataset.options.get("augmentation", {})
    )
    size = spec.model.input_size
    return lambda image: augment_for_training(image, size, augmentation)


def _aligned(labelled, streamed):
    (ref, labels), (streamed_ref, data) = labelled, streamed
    check = tf.debugging.assert_equal(
        ref, streamed_ref, message="image stream out of step with labels"
    )
    with tf.control_dependencies([check]):
        return tf.identity(ref), data, labels


def _concatenate(*batches):
    return tf.nest.map_structure(lambda *xs: tf.concat(xs, axis=0), *batches)
