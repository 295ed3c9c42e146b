"""`grok-tf pseudo-label`: product ids for objects in unlabelled photos.

GrokNet's weak supervision: an object detector finds the objects of
unlabelled photos; the trained model embeds each crop; a crop takes the
product id of its nearest labelled image (the run's training photos and
catalogue images) when their distance is small enough; the accepted crops
become one more training dataset, whose noisier labels count less
(a `pseudo_labels` dataset with a `loss_weight`, see
`grok_tf.data.sources.pseudo_labels`).

The distance is the cosine distance `1 - cos` of L2-normalised
embeddings, in [0, 2]. The threshold is given (`threshold`), or chosen
(`precision`) as the largest one at which crops of a labelled split (val
by default), pseudo-labelled the same way, are right at least that often.

Output folder (published atomically: a failure leaves the previous one)::

    OUT/
      pseudo_labels.csv   one row per crop: image (crops/...), product
                          (class name), product_id (class id), distance,
                          accepted (1/0), source photo, box (ymin xmin
                          ymax xmax, normalised), score, detector label
      crops/              the crops, as JPEGs
      report.json         counts, threshold, precision/coverage table,
                          unreadable photos with reasons
      distances.png       histogram of distances, threshold marked
"""

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from grok_tf.compression.neighbors import nearest_neighbors
from grok_tf.io.atomic_files import atomic_directory
from grok_tf.weak_supervision.crops import cut_crops
from grok_tf.weak_supervision.gallery import id_head
from grok_tf.weak_supervision.gallery import labelled_images
from grok_tf.weak_supervision.gallery import listed_gallery
from grok_tf.weak_supervision.gallery import training_gallery
from grok_tf.weak_supervision.threshold import precision_coverage
from grok_tf.weak_supervision.threshold import threshold_for_precision

LIST_FILE = "pseudo_labels.csv"
REPORT_FILE = "report.json"
HISTOGRAM_FILE = "distances.png"
COLUMNS = (
    "image",
    "product",
    "product_id",
    "distance",
    "accepted",
    "source",
    "box",
    "score",
    "detector_label",
)
#: Precision of the threshold chosen when neither is given.
DEFAULT_PRECISION = 0.9
#: Unreadable photos named in the report (the count is always complete).
LISTED_UNREADABLE = 100


@dataclasses.dataclass
class Labelled:
    """Crops of photos with their nearest labelled product.

    Attributes:
        crops: the `Crop`s written.
        unreadable: `{photo: reason}` of photos that could not be decoded.
        ids: `[N]` class id of each crop's nearest labelled image.
        distances: `[N]` its cosine distance (inf for an unreadable crop).
    """

    crops: list
    unreadable: dict
    ids: np.ndarray
    distances: np.ndarray


class NearestLabelled:
    """Exact cosine nearest neighbours among labelled embeddings.

    Args:
        embeddings: `[N, d]` L2-normalised float32 embeddings.
        ids: `[N]` class ids of those images.

    Example:

    >>> gallery = NearestLabelled(np.eye(3, dtype="float32"), [7, 8, 9])
    >>> ids, distances = gallery.search(np.array([[0.0, 0.8, 0.6]], "float32"))
    >>> ids, distances.round(4)
    (array([8]), array([0.2], dtype=float32))
    """

    def __init__(self, embeddings, ids):
        self.embeddings = np.asarray(embeddings, np.float32)
        if not len(self.embeddings):
            raise ValueError("the labelled gallery holds no readable image")
        self.ids = np.asarray(ids, np.int64)

    def search(self, embeddings):
        """`(ids, distances)` of the nearest labelled image of each row.

        On unit vectors the nearest by L2 is the nearest by cosine, so the
        exact L2 search of `grok_tf.compression.neighbors` finds it.
        """
        embeddings = np.asarray(embeddings, np.float32)
        if not len(embeddings):
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        index = nearest_neighbors(embeddings, self.embeddings, 1)[:, 0]
        similarity = np.sum(embeddings * self.embeddings[index], axis=1)
        distance = np.clip(1.0 - similarity, 0.0, 2.0)
        return self.ids[index], distance.astype(np.float32)


def pseudo_label(
    run_dir,
    images,
    out,
    detector,
    threshold=None,
    precision=None,
    head=None,
    split="val",
    gallery=None,
    batch_size=64,
    verbose=0,
):
    """Pseudo-labels the objects of unlabelled photos with a run's model.

    Args:
        run_dir: a finished `grok-tf train` run.
        images: a folder of photos, or a list file (`path[, ...]` lines,
            `grok_tf.search.product_search.read_image_refs`).
        out: the output folder (see the module docstring): a new or empty
            folder, or an earlier output of `pseudo_label`, which is
            replaced atomically.
        detector: a `Detector` (`grok_tf.weak_supervision.detectors`).
        threshold: accept crops at most this cosine distance from their
            nearest labelled image.
        precision: instead, choose the threshold reaching this precision
            on crops of the labelled `split`. With neither given,
            precision 0.9.
        head: the id head whose products label the crops; None: the first.
        split: the labelled split `precision` is measured on.
        gallery: the labelled images crops are compared with: a list file
            of `path, product` lines (a class id or name of `head`) or a
            folder of `<product>/` sub-folders. None: the run's training
            photos and catalogue images of `head`.
        batch_size: images per forward pass.
        verbose: 1 shows progress bars and stage messages.

    Returns:
        The report (also written as `report.json`).

    Raises:
        ValueError: both or a bad `threshold`/`precision`, no id head, no
            photo, no threshold reaching `precision`, or an `out` that is
            neither new nor an earlier output (or holds the run or photos).

    Example (not run: needs a trained run and photos):

    >>> from grok_tf.weak_supervision.detectors import make_detector
    >>> report = pseudo_label(  # doctest: +SKIP
    ...     "runs/grocery", "unlabelled/", "runs/pseudo",
    ...     make_detector("tflite:../shared/models/ssd_mobilenet_v1"),
    ...     precision=0.9)
    >>> report["accepted"], report["threshold"]  # doctest: +SKIP
    (1423, 0.31)
    """
    from grok_tf.inference import embed_images
    from grok_tf.run_dir import load_run
    from grok_tf.search.product_search import read_image_refs

    if threshold is not None and precision is not None:
        raise ValueError("give a threshold or a precision, not both")
    if threshold is None and precision is None:
        precision = DEFAULT_PRECISION
    if threshold is not None and not 0 <= threshold <= 2:
        raise ValueError(f"threshold must be in [0, 2], got {threshold}")
    if precision is not None and not 0 < precision <= 1:
        raise ValueError(f"precision must be in (0, 1], got {precision}")
    say = print if verbose else (lambda *args: None)
    out = Path(out)
    check_output_folder(out, run_dir, images)
    spec, model = load_run(run_dir)
    head = id_head(spec, head)
    paths, _ = read_image_refs(images)
    size = spec.model.input_size
    max_pixels = spec.model.max_image_pixels

    def embed(files):
        return embed_images(model, files, size, batch_size, verbose, max_pixels)

    if gallery is None:
        gallery = training_gallery(spec, head)
    else:
        gallery = listed_gallery(head, gallery)
    say(f"embedding the gallery: {len(gallery.refs)} labelled images")
    vectors, valid = embed(gallery.refs)
    nearest = NearestLabelled(vectors[valid], np.asarray(gallery.ids)[valid])

    def label_crops(photos, folder, prefix=""):
        crops, unreadable = cut_crops(
            photos, detector, folder, 4 * size, max_pixels, prefix, verbose
        )
        vectors, valid = embed([str(folder / c.file) for c in crops])
        ids, distances = nearest.search(vectors)
        distances = np.where(valid, distances, np.inf)
        return Labelled(crops, unreadable, ids, distances)

    with atomic_directory(out) as partial:
        calibration = None
        if precision is not None:
            refs, truth = labelled_images(spec, head, split)
            if not refs:
                raise ValueError(
                    f"{spec.path.name}: no labelled '{split}' images of "
                    f"head '{head.name}' to measure precision on"
                )
            say(f"detecting objects in {len(refs)} '{split}' photos")
            measured = label_crops(refs, partial, f"{split}_")
            threshold, calibration = _calibrated(
                measured, dict(zip(refs, truth, strict=True)), precision
            )
            calibration["split"] = split
            for c in measured.crops:  # measured; not training data
                (partial / c.file).unlink()
        say(f"detecting objects in {len(paths)} photos")
        labelled = label_crops(paths, partial)
        accepted = labelled.distances <= threshold
        _write_list(partial / LIST_FILE, head, labelled, accepted)
        report = _report(spec, head, detector, gallery, paths, labelled)
        report.update(_accepted(labelled, accepted, threshold, calibration))
        _histogram(
            partial / HISTOGRAM_FILE,
            labelled.distances,
            threshold,
            calibration,
            f"{Path(run_dir).name}: {report['accepted']} of "
            f"{report['crops']} crops accepted",
        )
        text = json.dumps(report, indent=2, sort_keys=True) + "\n"
        (partial / REPORT_FILE).write_text(text)
    return report


def check_output_folder(out, *inputs):
    """Refuses an output folder whose replacement would lose data.

    `out` may be missing, an empty folder or an earlier pseudo-label output
    (it holds `pseudo_labels.csv` and `report.json`); it may not be, hold,
    or sit inside any of `inputs` (the run, the photos).

    Raises:
        ValueError: naming `out` and why.
    """
    out = Path(out).resolve()
    for given in inputs:
        given = Path(given).resolve()
        if out == given or out in given.parents or given in out.parents:
            raise ValueError(
                f"--out {out}: overlaps {given}, an input; choose a folder "
                "of its own"
            )
    if out.exists():
        if not out.is_dir():
            raise ValueError(f"--out {out}: exists and is not a folder")
        earlier = (out / LIST_FILE).is_file() and (out / REPORT_FILE).is_file()
        if not earlier and any(out.iterdir()):
            raise ValueError(
                f"--out {out}: a folder that is not empty and not an "
                "earlier pseudo-label output; it would be replaced"
            )


def _calibrated(measured, truth, precision):
    """`(threshold, calibration)`: the threshold reaching `precision` on
    crops of labelled photos (`truth`: photo -> class id), and the record
    of that measurement (precision/coverage curve, distances, rightness).
    """
    expected = np.array([truth[c.source] for c in measured.crops], np.int64)
    finite = np.isfinite(measured.distances)
    distances = measured.distances[finite]
    correct = (measured.ids == expected)[finite]
    threshold, reached = threshold_for_precision(distances, correct, precision)
    return threshold, {
        "photos": len(truth),
        "crops": len(distances),
        "precision": precision,
        "reached": reached,
        "curve": _curve(distances, correct),
        "distances": distances,
        "correct": correct,
    }


def _curve(distances, correct, points=21):
    """Precision and coverage at evenly spaced distance quantiles."""
    if not len(distances):
        return []
    cuts = np.unique(np.quantile(distances, np.linspace(0, 1, points)))
    return precision_coverage(distances, correct, np.round(cuts, 4))


def _write_list(path, head, labelled, accepted):
    crops, ids, distances = labelled.crops, labelled.ids, labelled.distances
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c, label, distance, ok in zip(
        crops, ids, distances, accepted, strict=True
    ):
        known = np.isfinite(distance)
        writer.writerow(
            [
                c.file,
                head.classes[label] if known else "",
                int(label) if known else -1,
                repr(float(distance)) if known else "",
                int(bool(ok)),
                c.source,
                " ".join(f"{v:.5f}" for v in c.box),
                f"{c.score:.5f}",
                c.label,
            ]
        )
    # Written into the folder `pseudo_label` publishes in one rename.
    path.write_bytes(buffer.getvalue().encode())


def _report(spec, head, detector, gallery, paths, labelled):
    """What was labelled with what: run, detector, gallery, photos, crops."""
    unreadable = labelled.unreadable
    listed = dict(sorted(unreadable.items())[:LISTED_UNREADABLE])
    return {
        "spec": spec.path.name,
        "head": head.name,
        "detector": {
            "name": detector.name,
            "model": detector.describe(),
            "options": dataclasses.asdict(detector.options),
        },
        "gallery": {
            "images": len(gallery.refs),
            "catalogue_images": gallery.catalogue_images,
        },
        "images": len(paths),
        "unreadable": {"count": len(unreadable), "files": listed},
        "crops": len(labelled.crops),
    }


def _accepted(labelled, accepted, threshold, calibration):
    """How many crops the threshold accepted, and where it came from."""
    count = len(labelled.crops)
    photos = {
        c.source for c, ok in zip(labelled.crops, accepted, strict=True) if ok
    }
    found = {
        "accepted": int(accepted.sum()),
        "coverage": round(float(accepted.mean()), 4) if count else 0.0,
        "photos_with_accepted_crops": len(photos),
        "threshold": float(threshold),
        "threshold_from": "given",
    }
    if calibration is not None:
        found["threshold_from"] = (
            f"precision {calibration['precision']} on crops of the "
            f"'{calibration['split']}' split"
        )
        found["calibration"] = {
            k: v
            for k, v in calibration.items()
            if k not in ("distances", "correct")
        }
    return found


def _histogram(path, distances, threshold, calibration, title):
    """Distance histogram: the photos' crops, and (when measured) the
    labelled crops split into right and wrong nearest products."""
    from matplotlib.figure import Figure

    finite = distances[np.isfinite(distances)]
    figure = Figure(figsize=(7, 4), layout="constrained")
    axes = figure.subplots()
    bins = np.linspace(
        0, max(float(finite.max(initial=0)), threshold) + 1e-3, 41
    )
    axes.hist(finite, bins=bins, color="tab:blue", alpha=0.6, label="crops")
    if calibration is not None:
        measured, right = calibration["distances"], calibration["correct"]
        for mask, name, colour in (
            (right, "right product", "tab:green"),
            (~right, "wrong product", "tab:red"),
        ):
            axes.hist(
                measured[mask],
                bins=bins,
                histtype="step",
                lw=2,
                color=colour,
                label=f"{calibration['split']} crops, {name}",
            )
    axes.axvline(
        threshold, color="k", ls="--", label=f"threshold {threshold:.3f}"
    )
    axes.set(
        xlabel="cosine distance to the nearest labelled image",
        ylabel="crops",
        title=title,
    )
    axes.legend()
    figure.savefig(path, format="png", dpi=100)
