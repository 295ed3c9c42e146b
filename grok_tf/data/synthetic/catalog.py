"""A synthetic product catalogue: the embedded default dataset of grok_tf.

GrokNet learns one embedding from many commerce tasks at once: object
category, attributes such as colour and material, product identity and
free-text search queries. This module makes a small stand-in for such data,
deterministically from a seed and in a few seconds, so that the whole
pipeline (readers, heads, losses, retrieval) can be exercised without
downloading anything.

The catalogue holds `num_products` product identities. A product is an
object category (a distinct silhouette: plate = disc, tile = square,
pennant = triangle, badge = star, ring = annulus, cross), a colour (eight
distinct hues), a pattern or material (plain, striped, dotted, checked,
zigzag, speckled) and a few product-specific details (aspect ratio, the
secondary tone of the pattern, pattern angle and period, speckle texture),
so two products of the same category, colour and pattern still look
different. Each product is "photographed" `photos_per_product` times at a
random position, scale, rotation, background (plain, gradient, noisy or a
table edge), lighting and colour cast, sometimes partly off-frame, with
mild blur and sensor noise. The last `val_photos_per_product` photos of
every product go to the validation split, the others to the training split,
so every product appears in both (needed by retrieval and product-id heads).

Each photo also has multi-label "query" labels: the phrases a shopper might
type to find it, built from the attributes ("red", "striped", "plate",
"red plate").

Layout written into `root` (a real dataset, read by the same readers as
real data)::

    images/p003_07.jpg    photo 7 of product 3 (RGB JPEG, image_size^2)
    train.txt, val.txt    one photo per line, see below
    categories.txt        vocabularies: one name per line, line index = id
    colours.txt
    patterns.txt
    products.txt          e.g. "red striped plate #3"
    queries.txt           e.g. "red", "striped", "plate", "red plate"
    README.txt            describes the columns
    catalog.json          config, format version and counts

A line of `train.txt` / `val.txt` (comma + space separated; the last column
holds `|`-joined query ids)::

    images/p003_07.jpg, 3, 1, 3, 3, 1|11|17|29

i.e. `path, category_id, colour_id, pattern_id, product_id, query_ids`
(here an "orange checked badge" with queries orange, checked, badge and
"orange badge").
Label column 0 is the category, 1 the colour, 2 the pattern, 3 the product
and 4 the queries. Lines are shuffled deterministically in rounds (each
round holds one photo of every product in a random order), so any prefix
of at least `num_products` lines covers every product, category, colour
and pattern.

Example:
    >>> from grok_tf.data.synthetic.catalog import CatalogConfig
    >>> from grok_tf.data.synthetic.catalog import generate_synthetic_catalog
    >>> root = generate_synthetic_catalog("/tmp/catalog")  # doctest: +SKIP
    >>> small = CatalogConfig(seed=1, num_products=24, photos_per_product=4,
    ...                       val_photos_per_product=1, image_size=64)
    >>> generate_synthetic_catalog("/tmp/small", small)  # doctest: +SKIP
    PosixPath('/tmp/small')
"""

from __future__ import annotations

import colorsys
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from PIL import ImageFilter

from grok_tf.io.atomic_files import atomic_directory

__all__ = [
    "CATALOG_VERSION",
    "CATEGORY_NAMES",
    "COLOUR_NAMES",
    "PATTERN_NAMES",
    "CatalogConfig",
    "generate_synthetic_catalog",
    "product_queries",
    "query_names",
]

CATALOG_VERSION = 1

# The vocabulary file of each label column of the list files, in order.
VOCABULARY_FILES = (
    "categories.txt",
    "colours.txt",
    "patterns.txt",
    "products.txt",
    "queries.txt",
)
"""Format version written to `catalog.json`; bump when the output changes."""

CATEGORY_NAMES = ("plate", "tile", "pennant", "badge", "ring", "cross")
"""Object categories; each is drawn as a distinct silhouette."""

COLOUR_NAMES = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "pink",
)
"""Colour names, in the order of their ids."""

_COLOUR_RGB = np.array(
    [
        (0.86, 0.10, 0.10),  # red
        (0.97, 0.52, 0.06),  # orange
        (0.96, 0.86, 0.10),  # yellow
        (0.12, 0.64, 0.20),  # green
        (0.08, 0.78, 0.84),  # cyan
        (0.12, 0.26, 0.86),  # blue
        (0.52, 0.16, 0.74),  # purple
        (0.98, 0.46, 0.72),  # pink
    ],
    dtype=np.float32,
)

PATTERN_NAMES = (
    "plain",
    "striped",
    "dotted",
    "checked",
    "zigzag",
    "speckled",
)
"""Pattern / material names (adjectives), in the order of their ids."""

# Secondary tones of a pattern: neutral or same-hue, so that the colour of
# a product stays its primary colour whatever the pattern.
_SECONDARY_TONES = ("white", "black", "tint", "shade")

_README = """\
Synthetic product catalogue generated by grok_tf.data.synthetic.catalog
(format version {version}).

{num_products} products over {num_categories} categories, {num_colours} \
colours and {num_patterns} patterns;
{train} training photos and {val} validation photos of {size}x{size} pixels.

train.txt and val.txt hold one photo per line, comma + space separated:

    path, category_id, colour_id, pattern_id, product_id, query_ids

  path         image path relative to this folder (images/p<product>_<k>.jpg)
  category_id  label column 0, line index in categories.txt
  colour_id    label column 1, line index in colours.txt
  pattern_id   label column 2, line index in patterns.txt
  product_id   label column 3, line index in products.txt
  query_ids    label column 4, '|'-joined line indices in queries.txt
               (multi-label: the search phrases that should find the photo)

Every product has photos in both splits. Lines are shuffled in rounds: each
round holds one photo of every product, so any prefix of at least
{num_products} lines covers every product, category, colour and pattern.

catalog.json records the generating config; the catalogue is regenerated
byte-identically from it by grok_tf.data.synthetic.catalog.\
generate_synthetic_catalog.
"""


@dataclasses.dataclass(frozen=True)
class CatalogConfig:
    """Settings of a synthetic catalogue; equal configs give equal files.

    Attributes:
        seed: Seed of every random choice (product details and photos).
        image_size: Width and height of each photo in pixels.
        num_products: Number of product identities, spread evenly over the
            categories (product `p` has category `p % 6`).
        photos_per_product: Photos of each product, both splits together.
        val_photos_per_product: How many of them go to `val.txt` (at least
            one, and fewer than `photos_per_product`).
        jpeg_quality: PIL JPEG quality of the written photos.
        supersample: Render at this multiple of `image_size` and average
            down, which anti-aliases edges and patterns.
        min_object_fraction: Smallest object diameter, as a fraction of the
            frame.
        max_object_fraction: Largest object diameter, as a fraction of the
            frame.
        crop_probability: Probability that a photo shows the object partly
            off-frame.

    Example:
        >>> CatalogConfig().num_products
        72
        >>> CatalogConfig(seed=3, image_size=64).image_size
        64
    """

    seed: int = 0
    image_size: int = 96
    num_products: int = 72
    photos_per_product: int = 12
    val_photos_per_product: int = 3
    jpeg_quality: int = 90
    supersample: int = 2
    min_object_fraction: float = 0.35
    max_object_fraction: float = 0.8
    crop_probability: float = 0.15

    def __post_init__(self) -> None:
        def fail(field: str, why: str) -> None:
            value = getattr(self, field)
            raise ValueError(f"CatalogConfig.{field}: {why}, got {value!r}")

        for field in (
            "seed",
            "image_size",
            "num_products",
            "photos_per_product",
            "val_photos_per_product",
            "jpeg_quality",
            "supersample",
        ):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int):
                fail(field, "must be an integer")
        if self.seed < 0:
            fail("seed", "must be >= 0")
        if self.image_size < 16:
            fail("image_size", "must be >= 16")
        if self.num_products < 1:
            fail("num_products", "must be >= 1")
        if self.photos_per_product < 2:
            fail("photos_per_product", "must be >= 2 (train and val)")
        if not 1 <= self.val_photos_per_product < self.photos_per_product:
            fail(
                "val_photos_per_product",
                "must be >= 1 and < photos_per_product "
                f"({self.photos_per_product})",
            )
        if not 1 <= self.jpeg_quality <= 100:
            fail("jpeg_quality", "must be in [1, 100]")
        if not 1 <= self.supersample <= 4:
            fail("supersample", "must be in [1, 4]")
        if not 0.05 <= self.min_object_fraction <= self.max_object_fraction:
            fail(
                "min_object_fraction",
                "must be >= 0.05 and <= max_object_fraction",
            )
        if self.max_object_fraction > 1.5:
            fail("max_object_fraction", "must be <= 1.5")
        if not 0.0 <= self.crop_probability <= 1.0:
            fail("crop_probability", "must be in [0, 1]")

    @property
    def train_photos_per_product(self) -> int:
        """Photos of each product in `train.txt`."""
        return self.photos_per_product - self.val_photos_per_product

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-ready dict (as stored in `catalog.json`).

        Example:
            >>> CatalogConfig().to_dict()["seed"]
            0
        """
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True, eq=False)
class _Product:
    """One product identity: its labels and its fixed visual details."""

    product_id: int
    category: int
    colour: int
    pattern: int
    aspect: float
    secondary: int
    angle: float
    period: float
    texture: np.ndarray  # low-resolution noise for the speckle pattern

    @property
    def name(self) -> str:
        return (
            f"{COLOUR_NAMES[self.colour]} {PATTERN_NAMES[self.pattern]} "
            f"{CATEGORY_NAMES[self.category]} #{self.product_id}"
        )


def query_names() -> list[str]:
    """The query vocabulary, in id order.

    Single words (colours, patterns, categories) come first, then every
    "colour category" phrase.

    Example:
        >>> query_names()[:3]
        ['red', 'orange', 'yellow']
        >>> "red plate" in query_names()
        True
    """
    names = [*COLOUR_NAMES, *PATTERN_NAMES, *CATEGORY_NAMES]
    for colour in COLOUR_NAMES:
        for category in CATEGORY_NAMES:
            names.append(f"{colour} {category}")
    return names


def product_queries(category: int, colour: int, pattern: int) -> list[int]:
    """Sorted query ids of a product with these attribute ids.

    Example:
        >>> names = query_names()
        >>> [names[q] for q in product_queries(0, 0, 1)]
        ['red', 'striped', 'plate', 'red plate']
    """
    n_col, n_pat = len(COLOUR_NAMES), len(PATTERN_NAMES)
    n_cat = len(CATEGORY_NAMES)
    combo = n_col + n_pat + n_cat + colour * n_cat + category
    return sorted([colour, n_col + pattern, n_col + n_pat + category, combo])


def _assign_attributes(num_products: int) -> list[tuple[int, int, int]]:
    """(category, colour, pattern) of each product, balanced and fixed.

    Product `p` has category `p % 6`; colour and pattern are chosen
    greedily to balance first each category's colours and patterns, then
    the overall colour, pattern and colour-pattern counts (72 products:
    every colour 9 times, every pattern 12 times, every category with all
    8 colours and every pattern twice). (category, colour, pattern)
    triples repeat only once all 288 have been used. The result depends on
    `num_products` only, not on the seed.
    """
    n_cat, n_col = len(CATEGORY_NAMES), len(COLOUR_NAMES)
    n_pat = len(PATTERN_NAMES)
    cat_col = np.zeros((n_cat, n_col), np.int64)
    cat_pat = np.zeros((n_cat, n_pat), np.int64)
    col_pat = np.zeros((n_col, n_pat), np.int64)
    triples = np.zeros((n_cat, n_col, n_pat), np.int64)
    col_count = np.zeros(n_col, np.int64)
    pat_count = np.zeros(n_pat, np.int64)
    out = []
    for p in range(num_products):
        cat = p % n_cat
        best, best_key = (0, 0), None
        for col in range(n_col):
            for pat in range(n_pat):
                # Per-category balance first, global balance second.
                cost = (
                    12 * (cat_col[cat, col] + cat_pat[cat, pat])
                    + col_count[col]
                    + pat_count[pat]
                    + col_pat[col, pat]
                )
                key = (
                    int(triples[cat, col, pat]),
                    int(cost),
                    (col - 3 * p) % n_col,
                    (pat - 5 * p) % n_pat,
                )
                if best_key is None or key < best_key:
                    best, best_key = (col, pat), key
        col, pat = best
        cat_col[cat, col] += 1
        cat_pat[cat, pat] += 1
        col_pat[col, pat] += 1
        triples[cat, col, pat] += 1
        col_count[col] += 1
        pat_count[pat] += 1
        out.append((cat, col, pat))
    return out


def _make_products(config: CatalogConfig) -> list[_Product]:
    rng = np.random.default_rng(np.random.SeedSequence([config.seed, 1]))
    products = []
    for pid, (cat, col, pat) in enumerate(
        _assign_attributes(config.num_products)
    ):
        aspect = float(rng.uniform(0.8, 1.25))
        secondary = int(rng.integers(len(_SECONDARY_TONES)))
        angle = float(rng.uniform(0.0, np.pi))
        period = float(rng.uniform(0.36, 0.48))
        texture = rng.standard_normal((20, 20)).astype(np.float32)
        products.append(
            _Product(
                pid, cat, col, pat, aspect, secondary, angle, period, texture
            )
        )
    return products


# ---------------------------------------------------------------- drawing


def _bilinear(grid: np.ndarray, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Samples `grid` (h, w) at fractional coordinates, clamped at edges."""
    h, w = grid.shape
    yy = np.clip(yy, 0.0, h - 1.0)
    xx = np.clip(xx, 0.0, w - 1.0)
    y0 = np.minimum(yy.astype(np.int64), h - 2)
    x0 = np.minimum(xx.astype(np.int64), w - 2)
    fy = (yy - y0).astype(np.float32)
    fx = (xx - x0).astype(np.float32)
    top = grid[y0, x0] * (1 - fx) + grid[y0, x0 + 1] * fx
    bottom = grid[y0 + 1, x0] * (1 - fx) + grid[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _shape_mask(category: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Silhouette of `category` in object coordinates (fits radius ~1)."""
    name = CATEGORY_NAMES[category]
    if name == "plate":
        return u * u + v * v <= 1.0
    if name == "tile":
        return (np.abs(u) <= 0.8) & (np.abs(v) <= 0.8)
    if name == "pennant":
        # Triangle inscribed in the unit circle, apex up (v < 0 is up).
        inside = v <= 0.55
        for angle in (np.pi / 6, 5 * np.pi / 6):
            inside &= u * np.cos(angle) - v * np.sin(angle) <= 0.55
        return inside
    if name == "badge":
        # Five-pointed star: fold the angle into one half-spike and test
        # against the edge from an outer to an inner vertex.
        r = np.sqrt(u * u + v * v)
        phi = np.arctan2(u, -v)
        sector = 2 * np.pi / 5
        phi = np.abs(np.mod(phi + sector / 2, sector) - sector / 2)
        outer, inner = 1.05, 0.45
        ax, ay = outer, 0.0
        bx = inner * np.cos(sector / 2)
        by = inner * np.sin(sector / 2)
        px, py = r * np.cos(phi), r * np.sin(phi)
        return (bx - ax) * (py - ay) - (by - ay) * (px - ax) >= 0.0
    if name == "ring":
        rr = u * u + v * v
        return (rr <= 1.0) & (rr >= 0.5**2)
    if name == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.32) & (av <= 0.95)) | ((av <= 0.32) & (au <= 0.95))
    raise ValueError(f"unknown category {category}")


def _pattern_mask(
    product: _Product, u: np.ndarray, v: np.ndarray
) -> np.ndarray:
    """Where the secondary tone shows, in object coordinates."""
    name = PATTERN_NAMES[product.pattern]
    period = product.period
    c, s = np.cos(product.angle), np.sin(product.angle)
    a = u * c + v * s
    b = -u * s + v * c
    if name == "plain":
        return np.zeros(u.shape, bool)
    if name == "striped":
        return np.mod(a / period, 1.0) < 0.42
    if name == "dotted":
        da = np.mod(a / period, 1.0) - 0.5
        db = np.mod(b / period, 1.0) - 0.5
        return da * da + db * db < 0.27**2
    if name == "checked":
        cells = np.floor(a / period) + np.floor(b / period)
        return np.mod(cells, 2.0) == 1.0
    if name == "zigzag":
        tri = np.abs(np.mod(b / period, 1.0) - 0.5) * period * 0.9
        return np.mod((a + tri) / period, 1.0) < 0.42
    if name == "speckled":
        g = product.texture.shape[0]
        scale = (g - 1) / 2.6
        noise = _bilinear(product.texture, (b + 1.3) * scale, (a + 1.3) * scale)
        return noise > 0.55
    raise ValueError(f"unknown pattern {product.pattern}")


def _secondary_rgb(product: _Product) -> np.ndarray:
    primary = _COLOUR_RGB[product.colour]
    tone = _SECONDARY_TONES[product.secondary]
    if tone == "white":
        return np.array((0.94, 0.93, 0.90), np.float32)
    if tone == "black":
        return np.array((0.10, 0.10, 0.11), np.float32)
    if tone == "tint":
        return primary * 0.3 + 0.7
    return primary * 0.4


def _hue_of(rgb: np.ndarray) -> float:
    return colorsys.rgb_to_hsv(*(float(x) for x in rgb))[0]


def _background_colour(rng: np.random.Generator, avoid_hue: float):
    """A muted colour whose hue is far from `avoid_hue`."""
    offset = rng.uniform(0.3, 0.7)  # at least ~110 degrees away
    hue = (avoid_hue + offset) % 1.0
    sat = rng.uniform(0.0, 0.35) if rng.random() < 0.75 else 0.0
    val = rng.uniform(0.2, 0.95)
    return np.array(colorsys.hsv_to_rgb(hue, sat, val), np.float32)


def _background(
    rng: np.random.Generator, size: int, avoid_hue: float
) -> np.ndarray:
    """A (size, size, 3) float background: plain, gradient, noise, table."""
    kind = rng.choice(4, p=[0.3, 0.3, 0.2, 0.2])
    c0 = _background_colour(rng, avoid_hue)
    if kind == 0:  # plain
        return np.broadcast_to(c0, (size, size, 3)).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)
    yy, xx = ramp[:, None], ramp[None, :]
    if kind == 1:  # linear gradient between two colours
        c1 = _background_colour(rng, avoid_hue)
        theta = rng.uniform(0, 2 * np.pi)
        t = xx * np.cos(theta) + yy * np.sin(theta)
        t = (t - t.min()) / (t.max() - t.min())
        return c0 + t[..., None] * (c1 - c0)
    if kind == 2:  # low-frequency luminance noise ("fabric", "concrete")
        cells = int(rng.integers(3, 8))
        grid = rng.standard_normal((cells, cells)).astype(np.float32)
        noise = _bilinear(grid, yy * (cells - 1), xx * (cells - 1))
        fine = rng.standard_normal((size, size), dtype=np.float32)
        amp = rng.uniform(0.06, 0.16)
        gain = 1.0 + amp * noise + 0.04 * fine
        return c0 * gain[..., None]
    # table edge: wall above, table top below, soft horizon
    c1 = _background_colour(rng, avoid_hue)
    horizon = rng.uniform(0.25, 0.75)
    tilt = rng.uniform(-0.2, 0.2)
    t = 1 / (1 + np.exp(-(yy - horizon - tilt * (xx - 0.5)) * 60.0))
    return c0 + t[..., None] * (c1 - c0)


def _render_photo(
    product: _Product, config: CatalogConfig, rng: np.random.Generator
) -> np.ndarray:
    """One photo of `product` as a (size, size, 3) uint8 array.

    Smooth parts (background, soft shadow) are drawn at the output size;
    the object is drawn `supersample` times larger inside its bounding box
    and averaged down, which anti-aliases its edges and pattern.
    """
    size = config.image_size
    ss = config.supersample
    primary = _COLOUR_RGB[product.colour]
    image = np.array(_background(rng, size, _hue_of(primary)), np.float32)

    # Pose (in output pixels): diameter as a fraction of the frame, centre,
    # rotation.
    diameter = rng.uniform(
        config.min_object_fraction, config.max_object_fraction
    )
    radius = diameter * size / 2
    lo, hi = radius * 0.95, size - radius * 0.95
    if lo >= hi:
        lo = hi = size / 2
    cx, cy = rng.uniform(lo, hi), rng.uniform(lo, hi)
    if rng.random() < config.crop_probability:
        # Partly off-frame: the centre moves close to one edge (but stays
        # inside), so a minority of the object is cut off.
        edge = rng.uniform(0.35, 0.9) * radius
        side = int(rng.integers(4))
        if side == 0:
            cx = edge
        elif side == 1:
            cx = size - edge
        elif side == 2:
            cy = edge
        else:
            cy = size - edge
    rotation = rng.uniform(0.0, 2 * np.pi)
    stretch = np.sqrt(product.aspect)
    cr, sr = np.cos(rotation), np.sin(rotation)

    def window(scale: int, shift_x: float, shift_y: float, margin: float):
        """Output-pixel box around the (shifted) object, and the object
        coordinates of its pixels sampled `scale` times per pixel."""
        extent = radius * max(stretch, 1 / stretch) * 1.1 + margin
        ccx, ccy = cx + shift_x, cy + shift_y
        x0 = int(np.clip(np.floor(ccx - extent), 0, size))
        x1 = int(np.clip(np.ceil(ccx + extent), 0, size))
        y0 = int(np.clip(np.floor(ccy - extent), 0, size))
        y1 = int(np.clip(np.ceil(ccy + extent), 0, size))
        step = np.float32(1.0 / scale)
        xs = (np.arange(x0 * scale, x1 * scale, dtype=np.float32) + 0.5) * step
        ys = (np.arange(y0 * scale, y1 * scale, dtype=np.float32) + 0.5) * step
        dx = ((xs - ccx) / radius)[None, :]
        dy = ((ys - ccy) / radius)[:, None]
        u = (dx * cr + dy * sr) / stretch
        v = (-dx * sr + dy * cr) * stretch
        return (slice(y0, y1), slice(x0, x1)), u, v

    # Soft drop shadow under the object.
    sdx, sdy = rng.uniform(-0.12, 0.12, size=2) * radius
    blur = max(0.5, radius * 0.08)
    box, su, sv = window(1, sdx, sdy, 2 * blur + 2)
    darkness = rng.uniform(0.15, 0.4)
    if su.size:
        shadow = _shape_mask(product.category, su, sv).astype(np.uint8)
        shadow_img = Image.fromarray(shadow * 255)
        shadow_img = shadow_img.filter(ImageFilter.BoxBlur(blur))
        shadow = np.asarray(shadow_img, np.float32) * (darkness / 255.0)
        image[box] *= (1.0 - shadow)[..., None]

    # The object: pattern in object coordinates, mild directional shading.
    box, u, v = window(ss, 0.0, 0.0, 1.0)
    light_dir = rng.uniform(0, 2 * np.pi)
    light_amp = rng.uniform(0.05, 0.15)
    if u.size:
        mask = _shape_mask(product.category, u, v)
        secondary = _pattern_mask(product, u, v)
        colour = np.where(
            secondary[..., None], _secondary_rgb(product), primary
        )
        shade = 1.0 + light_amp * (
            u * np.cos(light_dir) + v * np.sin(light_dir)
        )
        colour = colour * shade[..., None]
        region = image[box]
        if ss > 1:
            region = np.repeat(np.repeat(region, ss, axis=0), ss, axis=1)
        region = np.where(mask[..., None], colour, region)
        if ss > 1:  # average the supersampled region down
            region = sum(
                region[i::ss, j::ss] for i in range(ss) for j in range(ss)
            ) * np.float32(1.0 / (ss * ss))
        image[box] = region

    # Lighting: brightness, contrast, colour cast; then sensor noise.
    gain = rng.uniform(0.8, 1.15)
    contrast = rng.uniform(0.8, 1.15)
    cast = (1.0 + rng.uniform(-0.07, 0.07, size=3)).astype(np.float32)
    mean = image.mean()
    image = (image - mean) * np.float32(contrast) + mean
    image *= cast * np.float32(gain)
    sigma = np.float32(rng.uniform(0.0, 0.025))
    image += sigma * rng.standard_normal(image.shape, dtype=np.float32)
    out = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        radius_px = rng.uniform(0.3, 0.8) * size / 96
        blurred = Image.fromarray(out).filter(
            ImageFilter.GaussianBlur(radius_px)
        )
        out = np.asarray(blurred)
    return out


# ---------------------------------------------------------------- writing


def _photo_rng(config: CatalogConfig, product: int, k: int):
    return np.random.default_rng(
        np.random.SeedSequence([config.seed, 2, product, k])
    )


def _split_lines(
    products: list[_Product],
    photo_indices: list[int],
    rng: np.random.Generator,
) -> list[str]:
    """List-file lines, shuffled in rounds of one photo per product."""
    per_product = []
    for _ in products:
        order = list(photo_indices)
        rng.shuffle(order)
        per_product.append(order)
    lines = []
    for round_index in range(len(photo_indices)):
        for p in rng.permutation(len(products)):
            product = products[int(p)]
            k = per_product[int(p)][round_index]
            queries = product_queries(
                product.category, product.colour, product.pattern
            )
            lines.append(
                f"images/p{product.product_id:03d}_{k:02d}.jpg, "
                f"{product.category}, {product.colour}, {product.pattern}, "
                f"{product.product_id}, {'|'.join(str(q) for q in queries)}"
            )
    return lines


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _write_catalog(folder: Path, config: CatalogConfig, verbose: bool) -> None:
    products = _make_products(config)
    images = folder / "images"
    images.mkdir(parents=True)
    total = config.num_products * config.photos_per_product
    progbar = None
    if verbose:
        import keras  # imported lazily: slow, and only needed for progress

        progbar = keras.utils.Progbar(total, unit_name="photo")
    done = 0
    for product in products:
        for k in range(config.photos_per_product):
            rng = _photo_rng(config, product.product_id, k)
            pixels = _render_photo(product, config, rng)
            Image.fromarray(pixels).save(
                images / f"p{product.product_id:03d}_{k:02d}.jpg",
                format="JPEG",
                quality=config.jpeg_quality,
            )
            done += 1
            if progbar is not None:
                progbar.update(done)

    n_train = config.train_photos_per_product
    shuffle_rng = np.random.default_rng(
        np.random.SeedSequence([config.seed, 3])
    )
    train = _split_lines(products, list(range(n_train)), shuffle_rng)
    val_indices = list(range(n_train, config.photos_per_product))
    val = _split_lines(products, val_indices, shuffle_rng)
    _write_lines(folder / "train.txt", train)
    _write_lines(folder / "val.txt", val)
    _write_lines(folder / "categories.txt", list(CATEGORY_NAMES))
    _write_lines(folder / "colours.txt", list(COLOUR_NAMES))
    _write_lines(folder / "patterns.txt", list(PATTERN_NAMES))
    _write_lines(folder / "products.txt", [p.name for p in products])
    _write_lines(folder / "queries.txt", query_names())

    counts = {
        "products": config.num_products,
        "categories": len(CATEGORY_NAMES),
        "colours": len(COLOUR_NAMES),
        "patterns": len(PATTERN_NAMES),
        "queries": len(query_names()),
        "train": len(train),
        "val": len(val),
    }
    (folder / "README.txt").write_text(
        _README.format(
            version=CATALOG_VERSION,
            num_products=config.num_products,
            num_categories=len(CATEGORY_NAMES),
            num_colours=len(COLOUR_NAMES),
            num_patterns=len(PATTERN_NAMES),
            train=len(train),
            val=len(val),
            size=config.image_size,
        ),
        encoding="utf-8",
    )
    info = {
        "format": "grok_tf.data.synthetic.catalog",
        "version": CATALOG_VERSION,
        "config": config.to_dict(),
        "counts": counts,
        "columns": [
            "path",
            "category_id",
            "colour_id",
            "pattern_id",
            "product_id",
            "query_ids",
        ],
    }
    # Written last: its presence marks a complete catalogue.
    (folder / "catalog.json").write_text(
        json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )


def _existing_config(root: Path) -> dict[str, Any] | None:
    """The config dict of the catalogue in `root`, or None if it is none."""
    try:
        info = json.loads((root / "catalog.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or info.get("version") != CATALOG_VERSION:
        return None
    config = info.get("config")
    return config if isinstance(config, dict) else None


def _check_existing(root: Path, config: CatalogConfig) -> bool:
    """True if `root` holds this catalogue; raises if it holds other data.

    Returns False when `root` is missing or an empty folder.
    """
    if not root.exists() and not root.is_symlink():
        return False
    if not root.is_dir():
        raise FileExistsError(
            f"{root}: exists and is not a folder; cannot write a synthetic "
            "catalogue there"
        )
    wanted = json.loads(json.dumps(config.to_dict()))
    found = _existing_config(root)
    if found is not None:
        if found == wanted:
            missing = [
                name
                for name in ("train.txt", "val.txt", "images")
                if not (root / name).exists()
            ]
            if missing:
                raise FileExistsError(
                    f"{root}: synthetic catalogue is incomplete (missing "
                    f"{', '.join(missing)}); remove the folder to regenerate"
                )
            return True
        diffs = sorted(
            f"{key}={found.get(key)!r} (wanted {wanted.get(key)!r})"
            for key in set(found) | set(wanted)
            if found.get(key) != wanted.get(key)
        )
        raise FileExistsError(
            f"{root}: holds a synthetic catalogue made with a different "
            f"config ({', '.join(diffs)}); remove it or choose another folder"
        )
    if any(root.iterdir()):
        if (root / "catalog.json").exists():
            why = "its catalog.json is unreadable or of another version"
        else:
            why = "it is a non-empty folder that is not a synthetic catalogue"
        raise FileExistsError(
            f"{root}: {why}; refusing to overwrite it (remove it or choose "
            "another folder)"
        )
    return False


def generate_synthetic_catalog(
    root: str | os.PathLike[str],
    config: CatalogConfig | None = None,
    *,
    verbose: bool = False,
) -> Path:
    """Writes the synthetic product catalogue of `config` into `root`.

    Idempotent: if `root` already holds a catalogue made with the same
    config (and format version), returns at once without touching it.
    Atomic: the catalogue is written into a hidden sibling folder that is
    renamed to `root` only once complete (`grok_tf.io.atomic_files`), so an
    interrupted run never leaves a partial catalogue behind, and the next
    run removes what a killed one left.

    Args:
        root: Folder to write (created, with its parents, if missing; an
            empty folder is fine).
        config: The catalogue settings; `CatalogConfig()` if None.
        verbose: Show a `keras.utils.Progbar` while rendering photos.

    Returns:
        `root` as a `pathlib.Path`.

    Raises:
        FileExistsError: If `root` is a file, holds a catalogue made with a
            different config, or is a non-empty folder that is not a
            catalogue. Nothing is deleted.

    Example:
        >>> from grok_tf.data.synthetic.catalog import CatalogConfig
        >>> root = generate_synthetic_catalog(
        ...     "/tmp/grok_catalog", CatalogConfig(seed=0))  # doctest: +SKIP
        >>> (root / "train.txt").read_text().splitlines()[0]  # doctest: +SKIP
        'images/p030_07.jpg, 0, 7, 5, 30, 7|13|14|62'
    """
    if config is None:
        config = CatalogConfig()
    if not isinstance(config, CatalogConfig):
        raise TypeError(
            f"config must be a CatalogConfig, got {type(config).__name__}"
        )
    root = Path(root).expanduser()
    if _check_existing(root, config):
        return root

    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()  # an empty folder is fine: the catalogue takes its place
    try:
        with atomic_directory(root, replace=False) as partial:
            _write_catalog(partial, config, verbose)
    except FileExistsError:
        # Another process may have finished the same catalogue first.
        if _check_existing(root, config):
            return root
        raise
    return root
