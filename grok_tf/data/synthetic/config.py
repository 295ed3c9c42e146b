"""`CatalogConfig`: the settings of a synthetic catalogue."""

from __future__ import annotations

import dataclasses
from typing import Any


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
