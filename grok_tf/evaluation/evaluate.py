"""Evaluation of a trained run: each head's metric, and retrieval.

Each head reports its type's metric (`HeadType.evaluation_metric`,
`grok_tf.model.heads`) over the images that have a label for it: top-1
accuracy for one-label heads (softmax, ArcFace), mAP for multi-label heads
(the mean over classes with at least one positive of the average precision
of the head's probabilities). One-label heads also report
`balanced_top1`, the mean per-class recall (`balanced_accuracy`), which a
majority class cannot inflate. Id heads (`HeadType.identity`: ArcFace,
pairwise) also report retrieval with the embedding: Recall@1/5/10 and
mAP@R, photo -> photo and photo -> catalogue, with the float embedding
and, once the run is compressed (`grok-tf compress`), with its Catalyzer,
LSH and ITQ hashes side by side. With `figures`, retrieval grids and
confusion matrices are drawn too (`grok_tf.evaluation.figures`).
"""

import numpy as np

from grok_tf.data.sources import read_catalogues
from grok_tf.evaluation.classification_metrics import balanced_accuracy
from grok_tf.evaluation.classification_metrics import mean_average_precision
from grok_tf.evaluation.classification_metrics import top1_accuracy
from grok_tf.evaluation.figures import figures_folder
from grok_tf.evaluation.figures import write_figures
from grok_tf.evaluation.retrieval_metrics import retrieval_metrics
from grok_tf.inference import kept_refs
from grok_tf.inference import predict
from grok_tf.inference import read_splits
from grok_tf.run_dir import load_run

__all__ = [
    "balanced_accuracy",
    "evaluate_run",
    "mean_average_precision",
    "retrieval_report",
    "top1_accuracy",
]


def retrieval_report(spec, model, outputs, labels, batch_size=64, hashers=None):
    """Recall@1/5/10 and mAP@R of every id head's photos, as queries.

    `photo_to_photo`: each labelled photo against the others (itself
    excluded); `photo_to_catalogue`: against the catalogue images of the
    datasets that name one (see `grok_tf.data.sources.read_catalogue`). Each is
    measured with the float embedding (`float`, cosine) and with every
    hasher's binary codes (Hamming), side by side, with the memory of one
    item in `bytes_per_item`. A head with the same ids as an earlier one
    (ArcFace and pairwise on one product id) gets `{"same_as": that head}`.

    Args:
        hashers: optional `name -> Hasher` whose `codes` give uint8 codes
            (`grok_tf.compression.compress.load_hashers`).
    """
    representations = {"float": (lambda x: x, "cosine")}
    for name, hasher in (hashers or {}).items():
        representations[name] = (hasher.codes, "hamming")
    report = {}
    for head in spec.heads:
        if not head.kind.identity:
            continue
        ids = labels[head.name]
        twin = next(
            (
                name
                for name in report
                if "same_as" not in report[name]
                and np.array_equal(labels[name], ids)
            ),
            None,
        )
        if twin:  # same ids, same embedding: the same retrieval
            report[head.name] = {"same_as": twin}
            continue
        queries, query_ids = outputs["embedding"][ids >= 0], ids[ids >= 0]
        if not len(query_ids):
            continue
        searches = {"photo_to_photo": (queries, query_ids, True)}
        catalogues = read_catalogues(spec, head.name)
        if catalogues:
            gallery, gallery_labels, _, _ = predict(
                spec, model, catalogues, batch_size
            )
            searches["photo_to_catalogue"] = (
                gallery["embedding"],
                gallery_labels[head.name],
                False,
            )
        entry = {search: {} for search in searches}
        entry["bytes_per_item"] = {}
        for name, (encode, metric) in representations.items():
            encoded = encode(queries)
            entry["bytes_per_item"][name] = int(encoded[0].nbytes)
            for search, (gallery, gallery_ids, is_self) in searches.items():
                entry[search][name] = retrieval_metrics(
                    encoded,
                    query_ids,
                    encoded if is_self else encode(gallery),
                    gallery_ids,
                    metric=metric,
                    exclude_self=is_self,
                )
        report[head.name] = entry
    return report


def evaluate_run(run_dir, split="val", batch_size=64, verbose=0, figures=None):
    """Evaluates a finished run on one split.

    Args:
        run_dir: a run directory written by `grok_tf.training.fit.train`.
        split: the split name.
        batch_size: images per forward pass.
        verbose: show a progress bar.
        figures: optional folder: writes there the retrieval grids and
            confusion matrices of `grok_tf.evaluation.figures.write_figures`.

    Returns:
        A JSON-ready dict: `{"split", "images", "heads": {name: {"type",
        "metric", "value", "examples", "classes", "chance"}, plus
        "balanced_top1" for one-label heads}, "retrieval",
        "corrupt_images"}`, and with `figures` the PNG paths written
        (`"figures"`).

    Example (not run: needs a trained run in runs/demo):

    >>> report = evaluate_run("runs/demo")  # doctest: +SKIP
    >>> report["heads"]["category"]["value"]  # doctest: +SKIP
    0.93
    """
    from grok_tf.compression.stored import load_hashers

    if figures is not None:  # before the long part
        figures = figures_folder(figures)
    spec, model = load_run(run_dir)
    splits = read_splits(spec, split)
    outputs, labels, weights, log = predict(
        spec, model, splits, batch_size, verbose
    )
    heads = {}
    for head in spec.heads:
        if head.name not in outputs:  # a training-only head (pairwise)
            continue
        w = weights[head.name]
        metric, value, chance = head.kind.evaluation_metric(
            head, outputs[head.name], labels[head.name], w
        )
        heads[head.name] = {
            "type": head.type,
            "metric": metric,
            "value": value,
            "examples": int((w > 0).sum()),
            "classes": head.num_classes,
            "chance": chance,
        }
        if not head.kind.multilabel:
            logits = np.asarray(head.kind.logits(head, outputs[head.name]))
            heads[head.name]["balanced_top1"] = balanced_accuracy(
                logits, labels[head.name], w
            )
    corrupt = log.summary()
    report = {
        "split": split,
        "images": int(len(outputs["embedding"])),
        "heads": heads,
        "retrieval": retrieval_report(
            spec, model, outputs, labels, batch_size, load_hashers(run_dir)
        ),
        "corrupt_images": corrupt,
    }
    if figures is not None:
        id_heads = [
            name
            for name, entry in report["retrieval"].items()
            if "same_as" not in entry
        ]
        written = write_figures(
            spec,
            model,
            outputs,
            labels,
            weights,
            kept_refs(splits, corrupt["files"]),
            splits,
            figures,
            id_heads,
            split_name=split,
            batch_size=batch_size,
        )
        report["figures"] = [str(path) for path in written]
    return report
