"""Rendering: one synthetic "photo" of a product, as pixels.

Each product is "photographed" at a random position, scale, rotation,
background (plain, gradient, noisy or a table edge), lighting and colour
cast, sometimes partly off-frame, with mild blur and sensor noise
(`render_photo`). Deterministic given the random generator.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image
from PIL import ImageFilter

from grok_tf.data.synthetic.config import CatalogConfig
from grok_tf.data.synthetic.vocabulary import CATEGORY_NAMES
from grok_tf.data.synthetic.vocabulary import PATTERN_NAMES
from grok_tf.data.synthetic.vocabulary import SECONDARY_TONES
from grok_tf.data.synthetic.vocabulary import Product

# The RGB of each colour of `COLOUR_NAMES`, in id order.
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


def _pattern_mask(product: Product, u: np.ndarray, v: np.ndarray) -> np.ndarray:
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


def _secondary_rgb(product: Product) -> np.ndarray:
    primary = _COLOUR_RGB[product.colour]
    tone = SECONDARY_TONES[product.secondary]
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


def render_photo(
    product: Product, config: CatalogConfig, rng: np.random.Generator
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
