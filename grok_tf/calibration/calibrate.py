"""`grok-tf calibrate`: fits, measures and saves every head's calibration.

The flow: `calibrate_run` predicts a held-out split, fits one
`CalibrationTable` per head (`grok_tf.calibration.table.fit_isotonic`),
measures ECE and Brier before and after (`grok_tf.calibration.metrics`,
after cross-fitting so the tables never judge their own rows), draws
reliability diagrams (`grok_tf.calibration.plots`) and writes it all to
`RUN_DIR/calibration/`. `load_calibration` reads the tables back, for
`grok_tf.calibration.layer.IsotonicCalibration` in the served graph.
"""

from pathlib import Path

import numpy as np

from grok_tf.calibration.metrics import brier_score
from grok_tf.calibration.metrics import expected_calibration_error
from grok_tf.calibration.plots import reliability_diagram
from grok_tf.calibration.table import CalibrationTable
from grok_tf.calibration.table import fit_isotonic
from grok_tf.inference import predict_split
from grok_tf.io.atomic_files import atomic_directory
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import CALIBRATION
from grok_tf.run_dir import load_run


def calibrate_run(run_dir, split="val", batch_size=64, bins=15, verbose=0):
    """`grok-tf calibrate`: fits every head's calibration on a held-out split.

    Every head with an output (softmax, ArcFace and multi-label heads)
    gets a `CalibrationTable` fitted by `fit_isotonic` on its probabilities
    (`HeadType.probabilities`, `grok_tf.model.heads`) over the split's
    labelled images.
    ECE and Brier are reported before and after calibration; "after" is
    cross-fitted (two folds: each half calibrated by tables fitted on the
    other half), so the gain is measured on images the tables never saw.
    Written atomically to `RUN_DIR/calibration/`: `<head>.npz`,
    `<head>_reliability.png` (before vs after) and `report.json`.

    Args:
        run_dir: a run directory written by `grok_tf.training.fit.train`.
        split: the held-out split. Defaults to `val`.
        batch_size: images per forward pass.
        bins: ECE and reliability-diagram bins. Defaults to 15.
        verbose: 1 shows a progress bar.

    Returns:
        The report: `{"split", "images", "heads": {name: {"metric",
        "examples", "columns", "fitted_columns", "ece": {"before",
        "after"}, "brier": {"before", "after"}}}}`.

    Example (not run: needs a trained run in runs/demo):

    >>> calibrate_run("runs/demo")["heads"]["category"]["ece"]
    ... # doctest: +SKIP
    {'before': 0.112, 'after': 0.041}
    """
    run_dir = Path(run_dir)
    spec, model = load_run(run_dir)
    outputs, labels, weights, _ = predict_split(
        spec, model, split, batch_size, verbose
    )
    report = {"split": split, "images": len(outputs["embedding"]), "heads": {}}
    with atomic_directory(run_dir / CALIBRATION) as partial:
        for head in spec.heads:
            if head.name not in outputs:  # pairwise: no output to calibrate
                continue
            output = outputs[head.name]
            scores = np.asarray(head.kind.probabilities(head, output))
            targets, w = labels[head.name], weights[head.name]
            table = fit_isotonic(scores, targets, w)
            table.save(partial / f"{head.name}.npz")
            after = cross_fitted(scores, targets, w)
            kind = {"bins": bins, "weights": w, "multilabel": head.multilabel}
            # The served top label: the best calibrated probability, ties
            # to the model's best (grok_tf.serving.export.top_k_calibrated).
            ranked = {**kind, "ranking": after + 1e-9 * scores}
            report["heads"][head.name] = {
                "metric": "one-vs-rest" if head.multilabel else "top-label",
                "examples": int((w > 0).sum()),
                "columns": table.num_columns,
                "fitted_columns": int(table.fitted.sum()),
                "ece": {
                    "before": expected_calibration_error(
                        scores, targets, **kind
                    ),
                    "after": expected_calibration_error(
                        after, targets, **ranked
                    ),
                },
                "brier": {
                    "before": brier_score(scores, targets, w),
                    "after": brier_score(after, targets, w),
                },
            }
            if (w > 0).any():
                reliability_diagram(
                    scores,
                    after,
                    targets,
                    partial / f"{head.name}_reliability.png",
                    f"{head.name} ({split}, held-out folds)",
                    **kind,
                )
        write_json(partial / "report.json", report)
    return report


def cross_fitted(scores, targets, weights, folds=2, seed=0):
    """Calibrated scores where each row's table never saw that row.

    The labelled rows are shuffled (seeded) into `folds` parts; each part
    is calibrated by `fit_isotonic` on the other parts. Unlabelled rows
    keep their scores.

    Returns:
        `[N, C]` float64 calibrated scores.
    """
    labelled = np.flatnonzero(np.asarray(weights) > 0)
    parts = np.array_split(
        np.random.default_rng(seed).permutation(labelled), folds
    )
    calibrated = np.array(scores, dtype=np.float64)
    for k, part in enumerate(parts):
        rest = np.concatenate([p for j, p in enumerate(parts) if j != k])
        table = fit_isotonic(scores[rest], targets[rest], weights[rest])
        calibrated[part] = table.predict(scores[part])
    return calibrated


def load_calibration(run_dir):
    """`head name -> CalibrationTable` of a calibrated run.

    Raises:
        FileNotFoundError: the run has not been calibrated yet.
    """
    folder = Path(run_dir) / CALIBRATION
    if not (folder / "report.json").exists():
        raise FileNotFoundError(
            f"{folder} not found: run `grok-tf calibrate --run {run_dir}` first"
        )
    return {
        path.stem: CalibrationTable.load(path)
        for path in sorted(folder.glob("*.npz"))
    }
