"""`grok-tf compare`: one unified model against single-task models.

GrokNet's central claim (Bell et al. 2020) is that one model trained on
every dataset and head at once does as well as separate models, each
trained for one task. `compare` measures that on the user's own spec:

    OUT/
      unified/             the spec as it is: every head, every dataset
      single/<name>/       one single-task model per dataset (`by="dataset"`)
                           or per head (`by="head"`)
      training_seconds.json  how long each run trained here
      compare.json         every run's evaluation, the per-head comparison
      compare.png          unified vs single-task bars, one group per row

Single-task specs are derived from the spec's YAML mapping (heads, datasets
and feeds filtered, nothing else changed: same trunk, same training
settings, same steps, same `images_per_batch` per dataset, so a head sees
as many images per step as in the unified model), then parsed with the
original spec's path so relative paths and `${VARS}` resolve as before.
`--epochs` / `--steps-per-epoch` are written into every derived spec, so a
run directory's `spec.yaml` records exactly how it was trained.

- `by="dataset"`: one model per dataset with the heads it feeds. A
  dataset that trains on another dataset's catalogue (`source: catalogue`,
  `of: X`) belongs to X's vertical and joins X's model (`vertical_of`).
- `by="head"`: one model per head with the datasets that feed it, their
  feeds restricted to that head.

A dataset keeps its `catalogue:` only while it still feeds the catalogue's
head (the id head it names with `head:`, else the dataset's one id head).
A single-task model that cannot be compared is skipped, with its reason in
`compare.json`: its derived spec does not parse, none of its datasets has
the evaluation split, or it is the unified model itself.

Runs are resumable: a run whose `model.keras` exists and whose `spec.yaml`
is the derived spec's text is reused, not retrained; an interrupted one
resumes from its last finished epoch (`grok_tf.training.fit.train`); a
directory holding a run of other settings is refused before any training.

With `by="dataset"`, a head fed by several datasets is measured in each
single-task model on that model's datasets only, and in the unified model
on all of them: every row gives both example counts.
"""

import copy
import json
import time
from pathlib import Path

import yaml

from grok_tf.errors import SpecError
from grok_tf.io.atomic_files import write_atomically
from grok_tf.io.atomic_files import write_json
from grok_tf.run_dir import MODEL_FILE
from grok_tf.run_dir import SPEC_FILE
from grok_tf.spec.loader import load_spec
from grok_tf.spec.loader import parse_spec

BY = ("dataset", "head")
UNIFIED = "unified"
SINGLE = "single"
COMPARE_JSON = "compare.json"
COMPARE_PNG = "compare.png"
TRAINING_JSON = "training_seconds.json"
#: Retrieval searches compared, with the float embedding's Recall@1.
SEARCHES = ("photo_to_photo", "photo_to_catalogue")


def vertical_of(dataset):
    """The dataset whose vertical (product ids) a raw dataset belongs to.

    A catalogue-source dataset (`source: catalogue`, `of: X`) trains on X's
    catalogue images, with X's product ids: it belongs to X. Any other
    dataset is its own vertical.

    Args:
        dataset: one entry of a spec's raw `datasets:` list.

    Returns:
        A dataset name.

    Example:

    >>> vertical_of({"name": "shop", "source": "catalogue", "of": "photos"})
    'photos'
    >>> vertical_of({"name": "photos", "source": "image_list"})
    'photos'
    """
    if dataset.get("source") == "catalogue" and "of" in dataset:
        return dataset["of"]
    return dataset["name"]


def derive_single_task(raw, by="dataset"):
    """Single-task spec mappings derived from a spec's YAML mapping.

    Args:
        raw: the spec's mapping (`yaml.safe_load` of its text); not changed.
        by: `"dataset"`: one spec per vertical (a dataset and the
            catalogue-source datasets `of` it) with the heads they feed;
            `"head"`: one spec per head with the datasets feeding it, each
            with its feeds restricted to that head.

    Returns:
        `{name: mapping}` in the spec's order, named after the dataset or
        the head. Every other section (`model`, `training`) is copied as is;
        a dataset keeps its `catalogue:` only if it still feeds the
        catalogue's head.

    Example:

    >>> raw = {
    ...     "heads": [
    ...         {"name": "a", "type": "softmax"},
    ...         {"name": "b", "type": "softmax"},
    ...     ],
    ...     "datasets": [
    ...         {"name": "x", "feeds": {"a": 0}},
    ...         {"name": "y", "feeds": {"a": 0, "b": 1}},
    ...     ],
    ... }
    >>> [d["name"] for d in derive_single_task(raw, "head")["a"]["datasets"]]
    ['x', 'y']
    >>> derive_single_task(raw, "head")["b"]["datasets"][0]["feeds"]
    {'b': 1}
    >>> [h["name"] for h in derive_single_task(raw)["y"]["heads"]]
    ['a', 'b']
    """
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, got {by!r}")
    datasets = raw["datasets"]
    if by == "dataset":
        groups = {}
        for dataset in datasets:
            groups.setdefault(vertical_of(dataset), []).append(dataset)
        selections = {name: (members, None) for name, members in groups.items()}
    else:
        selections = {
            head["name"]: (
                [d for d in datasets if head["name"] in d["feeds"]],
                head["name"],
            )
            for head in raw["heads"]
        }
    return {
        name: _derived(raw, members, only)
        for name, (members, only) in selections.items()
    }


def _derived(raw, members, only_head):
    """`raw` with the datasets `members`, their feeds restricted to
    `only_head` (None: all), and the heads they feed."""
    kept = []
    for dataset in members:
        dataset = copy.deepcopy(dataset)
        if only_head is not None:
            dataset["feeds"] = {only_head: dataset["feeds"][only_head]}
        if "catalogue" in dataset and not _keeps_catalogue(raw, dataset):
            del dataset["catalogue"]
        kept.append(dataset)
    fed = {head for dataset in kept for head in dataset["feeds"]}
    derived = copy.deepcopy(raw)
    derived["heads"] = [h for h in derived["heads"] if h["name"] in fed]
    derived["datasets"] = kept
    return derived


def _keeps_catalogue(raw, dataset):
    """Whether a dataset whose feeds were filtered still feeds its
    catalogue's head: the one it names (`head:`), else its one id head."""
    from grok_tf.model.heads import head_type

    named = dataset["catalogue"].get("head")
    if named is not None:
        return named in dataset["feeds"]
    kinds = {h["name"]: h["type"] for h in raw["heads"]}
    return any(head_type(kinds[h]).identity for h in dataset["feeds"])


def comparison_specs(
    spec_path, by="dataset", split="val", epochs=None, steps_per_epoch=None
):
    """The unified and single-task `Spec`s of a comparison, parsed.

    Args:
        spec_path: the data spec (YAML).
        by: `"dataset"` or `"head"` (see `derive_single_task`).
        split: the evaluation split every compared model needs.
        epochs: written into every spec's `training.epochs`.
        steps_per_epoch: written into every spec's `training.steps_per_epoch`.

    Returns:
        `(specs, skipped)`: `{run name: Spec}` (`"unified"`, then
        `"single/<name>"`), and `{run name: reason}` for the single-task
        models that cannot be compared.

    Raises:
        SpecError: the spec is invalid, no dataset has `split`, or no
            single-task model is left to compare.

    Example:

    >>> from grok_tf.demo import demo_spec_path
    >>> specs, skipped = comparison_specs(demo_spec_path(), epochs=2)
    >>> list(specs)
    ['unified', 'single/catalog_photos', 'single/attribute_photos']
    >>> [h.name for h in specs["single/attribute_photos"].heads]
    ['colour', 'pattern']
    >>> specs["single/catalog_photos"].training.epochs
    2
    """
    spec_path = Path(spec_path)
    spec = load_spec(spec_path)  # validates, with the file's own errors
    raw = yaml.safe_load(spec.text)
    schedule = {"epochs": epochs, "steps_per_epoch": steps_per_epoch}
    schedule = {k: v for k, v in schedule.items() if v is not None}
    if schedule:
        raw["training"] = {**(raw.get("training") or {}), **schedule}
    # Unchanged, the unified model is the spec file itself: its run is the
    # one `grok-tf train --spec S` writes, comments and all.
    unified = parse_mapping(raw, spec_path) if schedule else spec
    if not _has_split(unified, split):
        raise SpecError(
            f"{spec_path.name}: no dataset has a '{split}' split to compare "
            f"on ({', '.join(unified.split_names())})"
        )
    specs, skipped = {UNIFIED: unified}, {}
    for name, derived in derive_single_task(raw, by).items():
        run = f"{SINGLE}/{name}"
        single, reason = _single_task_spec(derived, raw, spec_path, split)
        if reason:
            skipped[run] = reason
        else:
            specs[run] = single
    if len(specs) == 1:
        reasons = "; ".join(f"{k}: {v}" for k, v in skipped.items())
        raise SpecError(
            f"{spec_path.name}: no single-task model to compare by {by} "
            f"({reasons})"
        )
    return specs, skipped


def parse_mapping(raw, spec_path):
    """The `Spec` of a spec mapping derived from the file at `spec_path`.

    Its text is the mapping dumped as YAML (what a run's `spec.yaml`
    records); relative paths and `${VARS}` resolve as in the original.
    """
    text = yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
    return parse_spec(yaml.safe_load(text), spec_path, text)


def _has_split(spec, split):
    return any(split in d.splits for d in spec.datasets)


def _single_task_spec(derived, raw, spec_path, split):
    """`(Spec, None)` of a derived mapping, or `(None, why it cannot be
    compared)`."""
    if derived == raw:
        return None, "the same model as the unified one"
    names = {d["name"] for d in derived["datasets"]}
    for dataset in derived["datasets"]:
        parent = vertical_of(dataset)
        if parent not in names:
            return None, (
                f"dataset {dataset['name']} trains on the catalogue of "
                f"{parent}, which this model does not keep"
            )
    try:
        spec = parse_mapping(derived, spec_path)
    except SpecError as error:
        return None, f"its derived spec is invalid: {error}"
    if not _has_split(spec, split):
        return None, f"none of its datasets has a '{split}' split"
    return spec, None


def compare(
    spec_path,
    out,
    by="dataset",
    split="val",
    epochs=None,
    steps_per_epoch=None,
    verbose="auto",
):
    """Trains the unified and the single-task models, evaluates, compares.

    Args:
        spec_path: the data spec (YAML).
        out: the output folder (see the module docstring for its layout).
        by: `"dataset"` or `"head"`: what each single-task model keeps.
        split: the split every run is evaluated on.
        epochs: overrides the spec's `training.epochs`, in every run.
        steps_per_epoch: overrides `training.steps_per_epoch`, in every run.
        verbose: Keras `fit` verbosity of the trainings.

    Each run is trained and evaluated after `keras.utils.clear_session()`,
    so the models do not pile up in memory.

    Returns:
        What `compare.json` holds: `spec`, `by`, `split`, `epochs`,
        `steps_per_epoch`, `steps`, `runs` (`{name: {"dir", "heads",
        "datasets", "training", "evaluation"}}`, `evaluation` being
        `grok_tf.evaluation.evaluate_run`'s report), `skipped`
        (`{name: reason}`) and `rows` (see `comparison_rows`).

    Raises:
        SpecError: an invalid spec, nothing to compare, or a run directory
            holding a run of other settings.

    Example (not run: trains several models):

    >>> result = compare("data_specs/demo.yaml", "runs/cmp")  # doctest: +SKIP
    >>> print(comparison_table(result))  # doctest: +SKIP
    """
    import keras

    from grok_tf.evaluation.evaluate import evaluate_run
    from grok_tf.training.fit import train

    out = Path(out)
    specs, skipped = comparison_specs(
        spec_path, by, split, epochs, steps_per_epoch
    )
    for name, spec in specs.items():  # before hours of training
        _check_reusable(out / name, spec)
    timings_path = out / TRAINING_JSON
    timings = (
        json.loads(timings_path.read_text()) if timings_path.exists() else {}
    )
    training = {}
    for i, (name, spec) in enumerate(specs.items(), 1):
        run_dir = out / name
        if _finished(run_dir, spec):
            # Seconds are known when this folder's compare trained it.
            known = {"seconds": None, "resumed": None, **timings.get(name, {})}
            training[name] = {**known, "reused": True}
            print(f"grok-tf compare: {name} already trained, reused")
            continue
        resumed = (run_dir / SPEC_FILE).exists()
        print(
            f"grok-tf compare: training {name} ({i}/{len(specs)})"
            + (", resuming" if resumed else ""),
            flush=True,
        )
        keras.utils.clear_session()  # the last run's graphs and memory
        start = time.perf_counter()
        train(spec, run_dir, verbose=verbose)
        timings[name] = {
            "seconds": round(time.perf_counter() - start, 1),
            "resumed": resumed,
        }
        write_json(timings_path, timings)
        training[name] = {**timings[name], "reused": False}
    runs = {}
    for name, spec in specs.items():
        keras.utils.clear_session()
        runs[name] = {
            "dir": name,
            "heads": [h.name for h in spec.heads],
            "datasets": [d.name for d in spec.datasets],
            "training": training[name],
            "evaluation": evaluate_run(out / name, split=split),
        }
    unified = specs[UNIFIED]
    settings = unified.training
    result = {
        "spec": str(Path(spec_path).resolve()),
        "by": by,
        "split": split,
        "epochs": settings.epochs,
        "steps_per_epoch": settings.steps_per_epoch,
        "steps": settings.epochs * settings.steps_per_epoch,
        "runs": runs,
        "skipped": skipped,
        "rows": comparison_rows(runs),
    }
    write_json(out / COMPARE_JSON, result)
    comparison_chart(result, out / COMPARE_PNG)
    return result


def _finished(run_dir, spec):
    copy_ = run_dir / SPEC_FILE
    return (
        (run_dir / MODEL_FILE).exists()
        and copy_.exists()
        and copy_.read_text() == spec.text
    )


def _check_reusable(run_dir, spec):
    copy_ = run_dir / SPEC_FILE
    if copy_.exists() and copy_.read_text() != spec.text:
        raise SpecError(
            f"{run_dir} holds a run of other settings (a changed spec, "
            "--epochs or --steps-per-epoch); choose another --out"
        )


def comparison_rows(runs):
    """Per single-task run and head: the unified and single-task numbers.

    A row per head metric (top-1 or mAP, `evaluate_run`'s `heads`) and, for
    id heads, per retrieval search (photo -> photo, photo -> catalogue:
    Recall@1 with the float embedding). A head whose retrieval is
    `{"same_as": other}` (same ids, same embedding) takes the other's.

    Args:
        runs: `{name: {"heads": [...], "evaluation": report}}` with a
            `"unified"` run.

    Returns:
        A list of `{"head", "measure", "run", "unified", "single",
        "difference", "unified_examples", "single_examples"}`;
        `difference` is unified minus single (None when either is None).

    Example:

    >>> def run(value, n):
    ...     heads = {"a": {"metric": "top1", "value": value, "examples": n}}
    ...     return {"heads": ["a"], "evaluation": {"heads": heads,
    ...             "retrieval": {}}}
    >>> runs = {"unified": run(0.75, 8), "single/a": run(0.5, 8)}
    >>> rows = comparison_rows(runs)
    >>> rows[0]["difference"], rows[0]["measure"]
    (0.25, 'top1')
    """
    unified = runs[UNIFIED]["evaluation"]
    rows = []
    for name, run in runs.items():
        if name == UNIFIED:
            continue
        single = run["evaluation"]
        for head in run["heads"]:
            pairs = []
            if head in single["heads"]:
                entry = single["heads"][head]
                other = unified["heads"].get(head, {})
                pairs.append(
                    (
                        entry["metric"],
                        (other.get("value"), other.get("examples")),
                        (entry["value"], entry["examples"]),
                    )
                )
            for search in SEARCHES:
                u = _recall_at_1(unified, head, search)
                s = _recall_at_1(single, head, search)
                if u or s:
                    measure = f"{search} recall@1"
                    pairs.append(
                        (measure, u or (None, None), s or (None, None))
                    )
            for measure, (u_value, u_n), (s_value, s_n) in pairs:
                both = u_value is not None and s_value is not None
                rows.append(
                    {
                        "head": head,
                        "measure": measure,
                        "run": name,
                        "unified": u_value,
                        "single": s_value,
                        "difference": u_value - s_value if both else None,
                        "unified_examples": u_n,
                        "single_examples": s_n,
                    }
                )
    return rows


def _recall_at_1(report, head, search):
    """`(Recall@1, queries)` of a head's search with the float embedding,
    or None when the report has no such search."""
    entry = report.get("retrieval", {}).get(head)
    if entry and "same_as" in entry:
        entry = report["retrieval"][entry["same_as"]]
    if not entry or search not in entry:
        return None
    metrics = entry[search]["float"]
    return metrics["recall@1"], metrics["queries"]


def comparison_table(result):
    """The comparison as an aligned text table, one line per row.

    Example:

    >>> row = {"head": "a", "measure": "top1", "run": "single/x",
    ...        "unified": 0.75, "single": 0.5, "difference": 0.25,
    ...        "unified_examples": 8, "single_examples": 8}
    >>> result = {"by": "dataset", "split": "val", "epochs": 1,
    ...           "steps_per_epoch": 2, "rows": [row], "skipped": {}}
    >>> print(comparison_table(result))  # doctest: +NORMALIZE_WHITESPACE
    unified vs single-task models (one per dataset), split val,
    1 epochs x 2 steps
    head  measure  single-task run  unified       single        unified-single
    a     top1     x                0.750 (n=8)   0.500 (n=8)   +0.250
    """
    lines = [
        f"unified vs single-task models (one per {result['by']}), split "
        f"{result['split']}, {result['epochs']} epochs x "
        f"{result['steps_per_epoch']} steps"
    ]
    table = [("head", "measure", "single-task run", "unified", "single")]
    table[0] += ("unified-single",)
    for row in result["rows"]:
        table.append(
            (
                row["head"],
                row["measure"],
                row["run"].removeprefix(f"{SINGLE}/"),
                _value(row["unified"], row["unified_examples"]),
                _value(row["single"], row["single_examples"]),
                "-"
                if row["difference"] is None
                else f"{row['difference']:+.3f}",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for r in table:
        lines.append(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
        )
    for name, reason in result["skipped"].items():
        lines.append(f"skipped {name}: {reason}")
    return "\n".join(line.rstrip() for line in lines)


def _value(value, examples):
    if value is None:
        return "-"
    return f"{value:.3f} (n={examples})"


def comparison_chart(result, path):
    """Grouped bars, unified vs single-task, one group per comparison row.

    Bars carry their values; a missing value is an empty bar labelled
    `n/a`. Matplotlib's Agg canvas, no display; written atomically.

    Args:
        result: what `compare` returns (its `rows`, `by`, `split`).
        path: the PNG to write.

    Returns:
        The `Path` written.

    Example (not run: writes a PNG file):

    >>> comparison_chart(result, "compare.png")  # doctest: +SKIP
    PosixPath('compare.png')
    """
    from matplotlib.figure import Figure

    rows = result["rows"]
    repeated = _repeated_labels(rows)
    labels = [
        f"{r['head']}\n{_short(r['measure'])}"
        + (
            f"\n[{r['run'].removeprefix(SINGLE + '/')}]"
            if key in repeated
            else ""
        )
        for r, key in zip(rows, _label_keys(rows), strict=True)
    ]
    figure = Figure(figsize=(max(6.0, 1.6 * len(rows) + 1.5), 4.8))
    figure.set_layout_engine("constrained")
    axes = figure.subplots()
    width = 0.38
    for shift, kind in ((-width / 2, "unified"), (width / 2, "single")):
        values = [r[kind] for r in rows]
        bars = axes.bar(
            [i + shift for i in range(len(rows))],
            [0.0 if v is None else v for v in values],
            width,
            label="unified" if kind == "unified" else "single-task",
        )
        axes.bar_label(
            bars,
            ["n/a" if v is None else f"{v:.3f}" for v in values],
            fontsize=8,
            padding=2,
        )
    axes.set_xticks(range(len(rows)), labels, fontsize=8)
    axes.set(
        ylim=(0, 1.22),
        ylabel="top-1 / mAP / Recall@1",
        title=f"unified vs single-task (one per {result['by']}), "
        f"split {result['split']}",
    )
    axes.legend(loc="upper center", ncols=2)
    write_atomically(path, lambda f: figure.savefig(f, format="png", dpi=100))
    return Path(path)


def _short(measure):
    """`photo_to_catalogue recall@1` -> `photo→catalogue R@1`."""
    return measure.replace("_to_", "→").replace("recall@", "R@")


def _label_keys(rows):
    return [(r["head"], r["measure"]) for r in rows]


def _repeated_labels(rows):
    keys = _label_keys(rows)
    return {k for k in keys if keys.count(k) > 1}
