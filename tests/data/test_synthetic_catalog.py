"""Tests of grok_tf.data.synthetic, the embedded default dataset."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grok_tf.data.synthetic import catalog
from grok_tf.data.synthetic.catalog import CATALOG_VERSION
from grok_tf.data.synthetic.catalog import generate_synthetic_catalog
from grok_tf.data.synthetic.config import CatalogConfig

SMALL = CatalogConfig(
    seed=1,
    image_size=64,
    num_products=24,
    photos_per_product=4,
    val_photos_per_product=1,
)
VOCABS = ("categories", "colours", "patterns", "products", "queries")


def read_vocab(root: Path, name: str) -> list[str]:
    return (root / f"{name}.txt").read_text(encoding="utf-8").splitlines()


def read_split(root: Path, split: str) -> list[dict]:
    rows = []
    for line in (root / f"{split}.txt").read_text().splitlines():
        cols = line.split(", ")
        assert len(cols) == 6, line
        rows.append(
            {
                "path": cols[0],
                "category": int(cols[1]),
                "colour": int(cols[2]),
                "pattern": int(cols[3]),
                "product": int(cols[4]),
                "queries": [int(q) for q in cols[5].split("|")],
            }
        )
    return rows


def file_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def load_images(root: Path, rows: list[dict]) -> np.ndarray:
    return np.stack(
        [np.asarray(Image.open(root / r["path"]).convert("RGB")) for r in rows]
    )


def colour_histograms(images: np.ndarray) -> np.ndarray:
    """sqrt of a normalised 4x4x4 RGB histogram per image."""
    q = images.astype(np.int64) // 64
    idx = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(len(q), -1)
    hist = np.stack([np.bincount(i, minlength=64) for i in idx]).astype(float)
    return np.sqrt(hist / hist.sum(1, keepdims=True))


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    return generate_synthetic_catalog(
        tmp_path_factory.mktemp("small") / "catalog", SMALL
    )


@pytest.fixture(scope="module")
def default(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("default") / "catalog"
    return generate_synthetic_catalog(root)


def test_layout_and_catalog_json(small):
    for name in ("train.txt", "val.txt", "README.txt", "catalog.json"):
        assert (small / name).is_file()
    info = json.loads((small / "catalog.json").read_text())
    assert info["version"] == CATALOG_VERSION
    assert info["config"] == dataclasses.asdict(SMALL)
    counts = info["counts"]
    assert counts["train"] == 24 * 3 and counts["val"] == 24
    for name in VOCABS:
        assert counts[name] == len(read_vocab(small, name))
    assert "category_id" in (small / "README.txt").read_text()
    assert not list(small.parent.glob(".*"))  # no temporary sibling left


def test_list_files_parse_and_ids_in_range(small):
    sizes = {name: len(read_vocab(small, name)) for name in VOCABS}
    assert sizes["categories"] == 6 and sizes["colours"] == 8
    assert sizes["patterns"] == 6 and sizes["products"] == 24
    assert 30 <= sizes["queries"] <= 80
    seen = {}
    for split in ("train", "val"):
        rows = read_split(small, split)
        for r in rows:
            assert 0 <= r["category"] < sizes["categories"]
            assert 0 <= r["colour"] < sizes["colours"]
            assert 0 <= r["pattern"] < sizes["patterns"]
            assert 0 <= r["product"] < sizes["products"]
            assert all(0 <= q < sizes["queries"] for q in r["queries"])
            assert r["path"].startswith(f"images/p{r['product']:03d}_")
            labels = (r["category"], r["colour"], r["pattern"], r["queries"])
            # A product's labels are the same on every line.
            assert seen.setdefault(r["product"], labels) == labels
        # Every value of every attribute occurs in both splits.
        for key, n in (("category", 6), ("colour", 8), ("pattern", 6)):
            assert {r[key] for r in rows} == set(range(n)), (split, key)
        assert {r["product"] for r in rows} == set(range(24)), split
        # Shuffled in rounds: the first num_products lines hold every
        # product, and the file is not in product order.
        assert {r["product"] for r in rows[:24]} == set(range(24))
        assert [r["product"] for r in rows] != sorted(
            r["product"] for r in rows
        )


def test_train_and_val_are_disjoint_photos(small):
    train = {r["path"] for r in read_split(small, "train")}
    val = {r["path"] for r in read_split(small, "val")}
    assert len(train) == 72 and len(val) == 24 and not train & val
    on_disk = {f"images/{p.name}" for p in (small / "images").iterdir()}
    assert on_disk == train | val


def test_queries_match_attributes(small):
    categories = read_vocab(small, "categories")
    colours = read_vocab(small, "colours")
    patterns = read_vocab(small, "patterns")
    products = read_vocab(small, "products")
    queries = read_vocab(small, "queries")
    assert len(set(queries)) == len(queries)
    for r in read_split(small, "train") + read_split(small, "val"):
        colour = colours[r["colour"]]
        pattern = patterns[r["pattern"]]
        category = categories[r["category"]]
        phrases = {queries[q] for q in r["queries"]}
        assert 3 <= len(phrases) <= 5
        assert {colour, pattern, category, f"{colour} {category}"} <= phrases
        # Every phrase only uses the photo's own attribute words.
        for phrase in phrases:
            assert set(phrase.split()) <= {colour, pattern, category}
        assert products[r["product"]].startswith(
            f"{colour} {pattern} {category} #"
        )


def test_images_decode_to_declared_size(small):
    for path in sorted((small / "images").iterdir()):
        with Image.open(path) as image:
            assert image.format == "JPEG"
            assert image.mode == "RGB"
            assert image.size == (64, 64)
    # Photos are not blank: the object and background differ.
    rows = read_split(small, "val")
    images = load_images(small, rows).astype(np.float32)
    assert (images.reshape(len(images), -1).std(axis=1) > 10).all()


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path, small):
    again = generate_synthetic_catalog(tmp_path / "again", SMALL)
    assert file_bytes(again) == file_bytes(small)
    other = generate_synthetic_catalog(
        tmp_path / "other", dataclasses.replace(SMALL, seed=2)
    )
    a, b = file_bytes(small), file_bytes(other)
    assert a.keys() == b.keys()
    images = [k for k in a if k.startswith("images")]
    assert sum(a[k] != b[k] for k in images) == len(images)
    assert a["train.txt"] != b["train.txt"]
    # The products (attributes) depend on num_products only.
    assert a["products.txt"] == b["products.txt"]


def test_second_call_is_idempotent(small):
    before = mtimes(small)
    assert generate_synthetic_catalog(str(small), SMALL) == small
    assert mtimes(small) == before


def test_mismatching_config_raises(small):
    before = mtimes(small)
    other = dataclasses.replace(SMALL, seed=5)
    with pytest.raises(FileExistsError, match=str(small)) as err:
        generate_synthetic_catalog(small, other)
    assert "seed=1" in str(err.value)
    assert mtimes(small) == before


def test_refuses_to_overwrite_user_data(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "mine.jpg").write_bytes(b"not mine to delete")
    with pytest.raises(FileExistsError, match="not a synthetic catalogue"):
        generate_synthetic_catalog(folder, SMALL)
    assert [p.name for p in folder.iterdir()] == ["mine.jpg"]
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        generate_synthetic_catalog(a_file, SMALL)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "photos"]


def test_empty_folder_and_missing_parents_are_fine(tmp_path):
    tiny = dataclasses.replace(SMALL, num_products=6, photos_per_product=2)
    empty = tmp_path / "empty"
    empty.mkdir()
    assert generate_synthetic_catalog(empty, tiny) == empty
    assert (empty / "catalog.json").is_file()
    nested = generate_synthetic_catalog(tmp_path / "a" / "b" / "c", tiny)
    assert len(read_split(nested, "val")) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "empty"]


def test_crash_leaves_no_partial_catalogue(tmp_path, monkeypatch):
    calls = []
    render = catalog.render_photo

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise RuntimeError("disk on fire")
        return render(*args, **kwargs)

    monkeypatch.setattr(catalog, "render_photo", failing)
    with pytest.raises(RuntimeError, match="disk on fire"):
        generate_synthetic_catalog(tmp_path / "catalog", SMALL)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(catalog, "render_photo", render)
    root = generate_synthetic_catalog(tmp_path / "catalog", SMALL)
    assert [p.name for p in tmp_path.iterdir()] == ["catalog"]
    assert len(list((root / "images").iterdir())) == 96


def test_config_is_frozen_and_validated():
    config = CatalogConfig()
    assert (config.seed, config.image_size, config.num_products) == (0, 96, 72)
    assert (config.photos_per_product, config.val_photos_per_product) == (
        12,
        3,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    with pytest.raises(ValueError, match="val_photos_per_product"):
        CatalogConfig(photos_per_product=3, val_photos_per_product=3)
    with pytest.raises(ValueError, match="val_photos_per_product"):
        CatalogConfig(val_photos_per_product=0)
    with pytest.raises(ValueError, match="image_size"):
        CatalogConfig(image_size=8)
    with pytest.raises(ValueError, match="seed"):
        CatalogConfig(seed=1.5)
    with pytest.raises(TypeError, match="CatalogConfig"):
        generate_synthetic_catalog("/nonexistent/never", {"seed": 0})


def test_verbose_shows_progress(tmp_path, capsys):
    tiny = dataclasses.replace(SMALL, num_products=3, photos_per_product=2)
    generate_synthetic_catalog(tmp_path / "c", tiny, verbose=True)
    assert "6/6" in capsys.readouterr().out


def test_default_catalogue_counts_and_balance(default):
    root = default
    train, val = read_split(root, "train"), read_split(root, "val")
    assert len(train) == 72 * 9 and len(val) == 72 * 3
    assert len(read_vocab(root, "queries")) == 68
    products = {r["product"]: r for r in train}
    for key, n, each in (("colour", 8, 9), ("pattern", 6, 12)):
        counts = np.bincount([r[key] for r in products.values()], minlength=n)
        assert (counts == each).all(), (key, counts)
    # Every category comes in every colour.
    pairs = {(r["category"], r["colour"]) for r in products.values()}
    assert len(pairs) == 6 * 8
    with Image.open(root / train[0]["path"]) as image:
        assert image.size == (96, 96)


def test_colour_is_learnable_from_pixels(default):
    """Nearest-centroid on colour histograms is far above chance (1/8)."""
    root = default
    train, val = read_split(root, "train"), read_split(root, "val")
    x_train = colour_histograms(load_images(root, train))
    x_val = colour_histograms(load_images(root, val))
    y_train = np.array([r["colour"] for r in train])
    y_val = np.array([r["colour"] for r in val])
    centroids = np.stack([x_train[y_train == c].mean(0) for c in range(8)])
    distances = ((x_val[:, None] - centroids[None]) ** 2).sum(-1)
    accuracy = (distances.argmin(1) == y_val).mean()
    assert accuracy > 0.6, accuracy


def test_no_temp_dirs_left(tmp_path):
    tiny = dataclasses.replace(SMALL, num_products=6, photos_per_product=2)
    generate_synthetic_catalog(tmp_path / "x", tiny)
    leftovers = [p for p in tmp_path.iterdir() if p.name != "x"]
    assert leftovers == []


def test_incomplete_catalogue_is_not_returned(tmp_path):
    tiny = dataclasses.replace(SMALL, num_products=6, photos_per_product=2)
    root = generate_synthetic_catalog(tmp_path / "c", tiny)
    (root / "train.txt").unlink()
    with pytest.raises(FileExistsError, match="incomplete"):
        generate_synthetic_catalog(root, tiny)


def test_interaction_log_is_the_clean_phrases_as_people_type_them(small):
    """Typed variants, rare misspellings and wrong clicks; the thresholds
    of a query-log feed give back nearly every clean phrase."""
    from grok_tf.data.query_log import normalize_query
    from grok_tf.data.query_log import read_query_log
    from grok_tf.data.synthetic.interactions import COMMON_MISSPELLINGS

    names = read_vocab(small, "queries")
    phrases = {
        r["product"]: {names[q] for q in r["queries"]}
        for r in read_split(small, "train")
    }
    lines = (small / "interactions.tsv").read_text().splitlines()
    assert lines[0] == "day\tquery\tproduct_id\tinteractions"
    found = {"clean": 0, "misspelt": 0, "other": 0}
    variants = 0
    for line in lines[1:]:
        day, typed, product, interactions = line.split("\t")
        product, interactions = int(product), int(interactions)
        assert 1 <= int(day) <= 7 and interactions >= 1 and product in phrases
        query = normalize_query(typed)
        variants += typed != query
        misspelt = {
            " ".join(COMMON_MISSPELLINGS.get(w, w) for w in p.split())
            for p in phrases[product]
        }
        kind = "clean" if query in phrases[product] else "other"
        kind = "misspelt" if query in misspelt - phrases[product] else kind
        found[kind] += interactions
    total = sum(found.values())
    counts = json.loads((small / "catalog.json").read_text())["counts"]
    assert counts["interaction_rows"] == len(lines) - 1
    assert counts["interactions"] == total
    assert variants > 0.3 * (len(lines) - 1)  # case, spaces, punctuation
    assert 0.8 < found["clean"] / total < 0.95
    assert 0 < found["misspelt"] / total < 0.05
    assert 0.03 < found["other"] / total < 0.15  # wrong clicks, typos
    log = read_query_log({"file": str(small / "interactions.tsv")})
    assert log.stats.malformed == 0 and log.stats.labelled_products == 24
    kept = [(q, p) for p, queries in log.labels.items() for q, _ in queries]
    clean = sum(q in phrases[p] for q, p in kept)
    assert clean >= 0.95 * 4 * 24  # nearly every clean phrase
    assert clean >= 0.8 * len(kept)  # most labels are clean
    assert clean < len(kept)  # but not all: the log is noisy
