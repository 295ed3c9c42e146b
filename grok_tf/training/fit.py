"""Training: spec -> data -> GrokNet -> `model.fit` into a run directory.

The run directory's layout is `grok_tf.run_dir`'s; `load_run` reads it back.

Weight decay (AdamW) skips GeM's `p`, biases and batch-norm parameters.
"""

import dataclasses
import json
import shutil
import sys
import warnings
from pathlib import Path

import keras

from grok_tf.data.batch_mixer import distributed_training_batches
from grok_tf.data.batch_mixer import evaluation_batches
from grok_tf.data.batch_mixer import per_replica_images
from grok_tf.data.batch_mixer import require_readable
from grok_tf.data.batch_mixer import training_batches
from grok_tf.data.images import CorruptImageLog
from grok_tf.data.images import ImageDecoder
from grok_tf.data.images import describe_skipped
from grok_tf.data.sources import read_split
from grok_tf.data.sources import resolve_vocabularies
from grok_tf.io.atomic_files import save_atomically
from grok_tf.io.atomic_files import write_json
from grok_tf.model.groknet import build_groknet
from grok_tf.model.layers import GeMPooling
from grok_tf.run_dir import check_run_dir
from grok_tf.run_dir import start_run
from grok_tf.spec.loader import load_spec
from grok_tf.spec.schema import Spec
from grok_tf.training.distribution import is_chief
from grok_tf.training.distribution import training_strategy
from grok_tf.training.distribution import worker_index
from grok_tf.training.training_model import compile_arguments
from grok_tf.training.training_model import model_inputs
from grok_tf.training.training_model import training_model

VALIDATION_SPLIT = "val"


def train(
    spec_path,
    run_dir,
    *,
    epochs=None,
    steps_per_epoch=None,
    replicas=1,
    callbacks=(),
    verbose="auto",
):
    """Trains GrokNet on the datasets of a spec.

    Args:
        spec_path: the data spec (YAML), or an already loaded `Spec`
            (e.g. one derived from another spec by
            `grok_tf.compare`); its `text` is what the run records.
        run_dir: the run directory (created; an interrupted run in it is
            resumed from its last finished epoch).
        epochs: overrides the spec's `training.epochs`.
        steps_per_epoch: overrides the spec's `training.steps_per_epoch`.
        replicas: train under `MirroredStrategy` with this many replicas
            (logical CPU devices when there is no GPU). With several
            workers in `TF_CONFIG`, training runs under
            `MultiWorkerMirroredStrategy` instead and only worker 0 writes
            `run_dir` (the others keep their state in `run_dir/.worker_<i>`,
            removed when training ends).
        callbacks: extra Keras callbacks, after the run's own.
        verbose: Keras `fit` verbosity; "auto" is a progress bar on a
            terminal and one line per epoch otherwise (logs, CI).

    Returns:
        The Keras `History.history` dict.

    Example (not run: trains a model):

    >>> train("data_specs/demo.yaml", "runs/demo", epochs=1)  # doctest: +SKIP
    """
    strategy = training_strategy(replicas)  # before any other TF work
    if not isinstance(spec_path, Spec):
        spec_path = load_spec(spec_path)
    spec = resolve_vocabularies(spec_path)
    overrides = {
        k: v
        for k, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch))
        if v is not None
    }
    settings = dataclasses.replace(spec.training, **overrides)
    per_replica_images(spec, strategy.num_replicas_in_sync)
    chief = is_chief(strategy)
    run_dir = Path(run_dir)
    if not chief:
        run_dir = run_dir / f".worker_{worker_index(strategy)}"
    check_run_dir(run_dir, spec)
    # Every check of the spec and its data before anything is written, so
    # a failed start leaves no run behind to refuse the corrected one.
    log = CorruptImageLog(ImageDecoder.for_spec(spec))
    train_splits = {d.name: read_split(spec, d, "train") for d in spec.datasets}
    val_splits = [
        read_split(spec, d, VALIDATION_SPLIT)
        for d in spec.datasets
        if VALIDATION_SPLIT in d.splits
    ]
    for split in [*train_splits.values(), *val_splits]:
        require_readable(spec, split, log)
    start_run(run_dir, spec, strategy.num_replicas_in_sync)
    with strategy.scope():
        groknet = build_groknet(spec)
        model = training_model(groknet, spec)
        model.compile(
            optimizer=make_optimizer(groknet, settings),
            **compile_arguments(spec),
        )
    to_model = model_inputs(spec)
    if strategy.num_replicas_in_sync > 1:
        data = distributed_training_batches(
            strategy, spec, train_splits, log, to_model
        )
    else:
        data = training_batches(spec, train_splits, log).map(to_model)
    validation = None
    if val_splits:
        validation = evaluation_batches(
            spec, val_splits, log, batch_size=_batch_size(spec)
        ).map(to_model)
    with warnings.catch_warnings():
        # Keras warns whenever a dataset of unknown length ends: validation
        # always does (skipped images make its length unknown); the
        # training stream is endless.
        warnings.filterwarnings("ignore", "Your input ran out of data")
        history = model.fit(
            data,
            epochs=settings.epochs,
            steps_per_epoch=settings.steps_per_epoch,
            validation_data=validation,
            validation_steps=settings.validation_steps,
            shuffle=False,  # the pipelines shuffle; Keras cannot shuffle them
            callbacks=[*_callbacks(run_dir, log), *callbacks],
            verbose=fit_verbosity(verbose),
        )
    save_atomically(groknet, run_dir / "model.keras")
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
    return history.history


def fit_verbosity(verbose):
    """Keras verbosity: "auto" means a progress bar only on a terminal."""
    if verbose == "auto":
        return 1 if sys.stdout.isatty() else 2
    return verbose


def make_optimizer(model, settings):
    """AdamW whose weight decay skips GeM p, biases and normalisation.

    The learning rate warms up linearly over the first epoch (at most 10% of
    training), then follows a cosine decay to zero.
    """
    total = settings.epochs * settings.steps_per_epoch
    warmup = min(settings.steps_per_epoch, total // 10)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=settings.learning_rate * 0.1
        if warmup
        else (settings.learning_rate),
        decay_steps=max(total - warmup, 1),
        warmup_target=settings.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule,
        weight_decay=settings.weight_decay,
    )
    optimizer.exclude_from_weight_decay(var_list=no_decay_variables(model))
    return optimizer


_NO_DECAY_LAYERS = (
    GeMPooling,
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)


def no_decay_variables(model):
    """GeM exponents, biases and normalisation scales/offsets of `model`."""
    skip = []
    for layer in _all_layers(model):
        if isinstance(layer, _NO_DECAY_LAYERS):
            skip.extend(layer.trainable_weights)
        elif getattr(layer, "bias", None) is not None:
            skip.append(layer.bias)
    return skip


def _all_layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def _batch_size(spec):
    return sum(d.images_per_batch for d in spec.datasets)


class _RunRecorder(keras.callbacks.Callback):
    """Writes history.json after every epoch and reports corrupt images."""

    def __init__(self, run_dir, log):
        super().__init__()
        self.run_dir = run_dir
        self.log = log
        self.history = {}
        self.reported = 0

    def on_train_begin(self, logs=None):
        path = self.run_dir / "history.json"
        if path.exists():
            self.history = json.loads(path.read_text())

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            values = self.history.setdefault(key, [])
            del values[epoch:]
            values.append(float(value))
        write_json(self.run_dir / "history.json", self.history)
        self._report(final=False)

    def on_train_end(self, logs=None):
        self._report(final=True)

    def _report(self, final):
        summary = self.log.summary()
        write_json(self.run_dir / "corrupt_images.json", summary)
        if summary["skipped"] > self.reported or (final and summary["skipped"]):
            print(
                f"grok-tf: skipped {summary['skipped']} unreadable image "
                f"reads, {describe_skipped(summary['files'])}; see "
                f"{self.run_dir / 'corrupt_images.json'}",
                flush=True,
            )
        self.reported = summary["skipped"]


def _callbacks(run_dir, log):
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    return [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup")),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / "checkpoints" / "epoch_{epoch:03d}.weights.h5"),
            save_weights_only=True,
        ),
        keras.callbacks.TensorBoard(str(run_dir / "logs"), write_graph=False),
        _RunRecorder(run_dir, log),
    ]
