"""Any dataset laid out as folders: ``<root>/<split>/<taxon>/<sub-taxon>/.../<image>``.

The way to bring one's own data: each split is a directory under ``root``
(``train``, ``val``, ``test``, or the names given in ``splits``); below it, the
directories down to an image spell the image's taxon path from the top rank to
the leaf (``train/Animalia/Chordata/Aves/.../corax/0001.jpg``), as
``torchvision.datasets.ImageFolder`` reads a flat class folder. Files with the
extensions of :data:`EXTENSIONS` (any case) are images; other files are ignored.

**Taxonomy.** :meth:`~taxonbench.taxonomy.Taxonomy.from_paths` over the union
of the leaf paths of all splits, leaves in sorted path order; ``ranks`` names
the depths (default ``level1``, ``level2``, ...). A folder holding images and
also sub-folders with images is an error (a leaf with children).

**Rows.** ``id`` = ``<split>/<path relative to the split>``, in sorted order;
``source_path`` the same; images scaled and center-cropped to ``image_size``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFile
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


@dataclass(frozen=True)
class ImageFolderOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: image_folder`` dataset."""

    root: str = "data/raw/images"
    splits: list | None = None  # split directories under root; None = train, val, test (those present)
    ranks: list | None = None  # rank name of each depth; None = level1, level2, ...


@DATASETS.register("image_folder")
class ImageFolder(FileDatasetAdapter):
    """Folders of images whose directory path is the taxon path (module docstring)."""

    Options = ImageFolderOptions
    label = "image folder"

    def validate_options(self) -> None:
        for key in ("splits", "ranks"):
            value = getattr(self.options, key)
            if value is not None and not (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
                raise TaxonbenchError(f"{self.where}.{key}: expected a non-empty list of names, got {value!r}")

    def manual_note(self) -> str:
        return "folders you make: <root>/<split>/<taxon>/.../<image>"

    def _split_names(self) -> list[str]:
        if self.options.splits is not None:
            return list(self.options.splits)
        present = [s for s in ("train", "val", "test") if (self.root / s).is_dir()]
        return present or ["train"]

    def required(self) -> list[str]:
        return [s + "/" for s in self._split_names()]

    @cached_property
    def _images(self) -> dict[str, list[tuple[str, tuple[str, ...]]]]:
        """Per split: (path relative to the split directory, taxon path) of every image, sorted."""
        out = {}
        for split in self._split_names():
            base = self.files / split
            found = []
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames.sort()
                rel_dir = Path(dirpath).relative_to(base)
                for name in sorted(filenames):
                    if name.lower().endswith(EXTENSIONS):
                        if not rel_dir.parts:
                            raise TaxonbenchError(f"{base / name}: an image directly under the split folder has "
                                                  f"no taxon; place it in <taxon>/.../ folders")
                        found.append(((rel_dir / name).as_posix(), rel_dir.parts))
            if not found:
                raise TaxonbenchError(f"{self.where}.root: no images under {base}")
            out[split] = sorted(found)
        return out

    @cached_property
    def _leaf_paths(self) -> list[tuple[str, ...]]:
        return sorted({path for images in self._images.values() for _, path in images})

    def taxonomy(self) -> Taxonomy:
        depth = max(len(p) for p in self._leaf_paths)
        ranks = self.options.ranks or [f"level{d}" for d in range(1, depth + 1)]
        if len(ranks) < depth:
            raise TaxonbenchError(f"{self.where}.ranks: {len(ranks)} names for folders {depth} deep under "
                                  f"{self.root}")
        return Taxonomy.from_paths(self._leaf_paths, ranks, source=str(self.root))

    def splits(self) -> list[str]:
        return self._split_names()

    def rows(self, split: str) -> Iterator[Rows]:
        leaf_of = {path: i for i, path in enumerate(self._leaf_paths)}
        images, base = self._images[split], self.files / split
        yield from row_batches(images, lambda item: {
            "id": f"{split}/{item[0]}",
            "image": ImageFile(str(base / item[0])),
            "leaf": leaf_of[item[1]],
            "source_path": f"{split}/{item[0]}",
        })

    def info(self) -> dict:
        return {**super().info(), "split_counts": {s: len(v) for s, v in self._images.items()}}
