"""A synthetic folder of photo-like JPEGs shared by bench/prepare.py and bench/loader.py.

``<root>/train/<group>/<class>/<k>.jpg``: smooth random colour fields with
edges and noise (so JPEG decoding does real work, unlike flat images),
``width`` x ``height`` pixels, quality 90, deterministic for a seed. The
``image_folder`` source reads this layout (group/class = a 2-level taxonomy);
torchvision's ``ImageFolder`` reads the flat class view :func:`flat_view` makes
of the same files.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter


def make_jpeg_folder(root: Path, n_images: int, width: int = 500, height: int = 375, n_classes: int = 20,
                     seed: int = 0) -> list[Path]:
    """Write ``n_images`` JPEGs spread over ``n_classes`` classes in 4 groups; return their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(n_images):
        c = k % n_classes
        path = root / "train" / f"group{c % 4}" / f"class{c:02d}" / f"{k:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        coarse = rng.integers(0, 256, (height // 25 + 1, width // 25 + 1, 3), dtype=np.uint8)
        img = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
        noise = rng.normal(0, 12, (height, width, 3))
        arr = np.clip(np.asarray(img, dtype=np.float64) + noise, 0, 255).astype(np.uint8)
        Image.fromarray(arr).filter(ImageFilter.EDGE_ENHANCE).save(path, format="JPEG", quality=90)
        paths.append(path)
    return paths


def flat_view(root: Path, out: Path) -> Path:
    """``out/<class>/<file>`` symlinks to the images: the one-level layout ImageFolder expects."""
    for path in sorted((root / "train").rglob("*.jpg")):
        link = out / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink(path, link)
    return out
