"""ModelNet40 as rendered views: the 12-view shaded renders of the multi-view CNN work.

Source: the ModelNet40 CAD models (Wu et al., "3D ShapeNets", CVPR 2015;
12,311 models of 40 categories, official train/test lists) rendered from 12
viewpoints around the upright axis, as published with "A Deeper Look at 3D
Shape Classifiers" (Su et al., 2018; https://github.com/jongchyisu/mvcnn_pytorch,
README: "Shaded Images", ``shaded_images.tar.gz``, to be placed under
``modelnet40_images_new_12x``). This is the rendering supported here; its
layout under ``root``::

    modelnet40_images_new_12x/<category>/<train|test>/<category>_<NNNN>.obj.shaded_v<VVV>.png

with ``NNNN`` the ModelNet model number and ``VVV`` the view 001 … 012 (e.g.
``night_stand/test/night_stand_0201.obj.shaded_v007.png``). Files starting
with a dot (macOS ``._*`` resource forks) are ignored; any other file whose
name does not follow the pattern is an error naming it, and so is a model with
a number of views other than ``n_views`` (12; 0 disables the check).

**Taxonomy** (HiMulConE, Zhang et al. CVPR 2022, §4.1: "two-level hierarchical
labels: category and CAD image ID"). Ranks ``category → model``; the model
node is named ``<category>_<NNNN>`` and its views are its images.
``leaf_level: category`` keeps only the categories (the model is still in the
``model`` column). Leaf ``i`` is the ``i``-th path in lexicographic order.
Rows carry ``model``, ``view`` (1 … 12) and ``source_path``.

**Splits.** ``test`` is the official test set. HiMulConE §4.4 splits ModelNet
into train, validation and test sets without saying how; here ``val`` is a
seeded holdout of whole official-train models: per category, the models (in
number order) are permuted by a generator seeded with ``(seed,
crc32("modelnet40-val"))`` and the first ``floor(val_fraction * n)`` go to
``val``, the rest (all 12 views of each) to ``train``. The seen / unseen
category split of HiMulConE §4.5 (also unstated there) is drawn as for
DeepFashion: ``floor(unseen_fraction * 40)`` categories drawn with a generator
seeded by ``(seed, crc32("modelnet40-unseen"))``, or ``unseen_categories``;
``seen_train`` … ``unseen_test`` restrict the splits, and ``part: seen`` /
``unseen`` restricts the whole dataset to one part.

**Images.** The renders are stored at ``image_size`` (224, their native size,
by default), center-cropped square, as PNG (``codec: png``, lossless; ``jpeg``
is smaller). A missing or undecodable image stops the run naming it.

**Download.** With ``download: true`` and ``allow_unverified: true`` the
archive is fetched from the address in the README and extracted into ``root``
(no checksum is published, and the server has been reported unreachable since
2025, jongchyisu/mvcnn_pytorch issue #37): otherwise place the folder yourself.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.deepfashion import check_part_options, unseen_categories
from taxonbench.datasets.images import ImageFile, ImageFormat
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

RANKS = ("category", "model")
OFFICIAL = ("train", "test")
BASE_SPLITS = ("train", "val", "test")
PART_SPLITS = tuple(f"{p}_{s}" for p in ("seen", "unseen") for s in BASE_SPLITS)
CODECS = ("png", "jpeg")
N_CATEGORIES = 40


@dataclass(frozen=True)
class View:
    """One rendered view."""

    category: str
    model: str  # <category>_<NNNN>
    view: int
    official: str  # train / test
    rel: str  # path relative to the image folder


def scan(folder: Path) -> list[View]:
    """Every view under ``folder``, sorted by (category, model, view); errors name the file or folder."""
    categories = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not categories:
        raise TaxonbenchError(f"{folder}: no category folders")
    views: list[View] = []
    where: dict[str, str] = {}
    for cat in categories:
        pattern = re.compile(rf"{re.escape(cat)}_(\d{{4}})\.obj\.shaded_v(\d{{3}})\.png")
        for official in OFFICIAL:
            sub = folder / cat / official
            if not sub.is_dir():
                raise TaxonbenchError(f"{sub}: missing (each category folder holds train/ and test/)")
            for f in sorted(sub.iterdir()):
                if f.name.startswith("."):
                    continue
                m = pattern.fullmatch(f.name)
                if m is None or not f.is_file():
                    raise TaxonbenchError(f"{f}: not a view named {cat}_<NNNN>.obj.shaded_v<VVV>.png")
                model = f"{cat}_{m[1]}"
                if where.setdefault(model, official) != official:
                    raise TaxonbenchError(f"{f}: model {model} is in both train/ and test/ of {folder / cat}")
                views.append(View(cat, model, int(m[2]), official, f"{cat}/{official}/{f.name}"))
    return sorted(views, key=lambda v: (v.category, v.model, v.view))


@dataclass(frozen=True)
class ModelNetOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: modelnet40_views`` dataset."""

    root: str = "data/raw/modelnet40"
    image_size: int = 224  # the renders' native size
    images_dir: str = "modelnet40_images_new_12x"  # the rendered-view folder under root
    n_views: int = 12  # views each model must have (0: no check)
    codec: str = "png"  # "png" (lossless) or "jpeg"
    leaf_level: str = "model"  # "model" or "category"
    val_fraction: float = 0.1  # share of each category's official-train models held out as val
    part: str = "all"  # "all", or only the "seen" / "unseen" categories
    unseen_fraction: float = 0.5
    unseen_categories: list | None = None
    splits: list | None = None


@DATASETS.register("modelnet40_views")
class ModelNet40Views(FileDatasetAdapter):
    """ModelNet40 12-view renders (see the module docstring)."""

    Options = ModelNetOptions
    label = "ModelNet40 rendered views"

    def validate_options(self) -> None:
        o = self.options
        for key, valid in (("leaf_level", RANKS), ("codec", CODECS)):
            if getattr(o, key) not in valid:
                raise TaxonbenchError(f"{self.where}.{key}: expected one of {', '.join(valid)}, "
                                      f"got {getattr(o, key)!r}")
        if not 0.0 <= o.val_fraction < 1.0:
            raise TaxonbenchError(f"{self.where}.val_fraction: expected a number in [0, 1), got {o.val_fraction!r}")
        if o.n_views < 0:
            raise TaxonbenchError(f"{self.where}.n_views: expected 0 or more, got {o.n_views}")
        if not o.images_dir or Path(o.images_dir).is_absolute() or ".." in Path(o.images_dir).parts:
            raise TaxonbenchError(f"{self.where}.images_dir: expected a folder relative to root, "
                                  f"got {o.images_dir!r}")
        check_part_options(self, BASE_SPLITS, PART_SPLITS)

    def required(self) -> list[str]:
        return [self.options.images_dir + "/"]

    def fetches(self) -> list[download.Fetch]:
        return [download.Fetch("modelnet40/shaded_images.tar.gz", self.options.images_dir)]

    def image_format(self) -> ImageFormat:
        return ImageFormat(size=self.options.image_size, codec=self.options.codec)

    @cached_property
    def _views(self) -> tuple[dict[str, list[View]], list[str]]:
        """(views per split of this part, unseen categories)."""
        folder = self.files / self.options.images_dir
        views = scan(folder)
        if self.options.n_views:
            per_model: dict[str, list[int]] = {}
            for v in views:
                per_model.setdefault(v.model, []).append(v.view)
            for model, got in per_model.items():
                if sorted(got) != list(range(1, self.options.n_views + 1)):
                    missing = sorted(set(range(1, self.options.n_views + 1)) - set(got))
                    raise TaxonbenchError(
                        f"{folder}: model {model} has views {', '.join(map(str, sorted(got)))}; expected "
                        f"1 to {self.options.n_views}" + (f" (missing {', '.join(map(str, missing))})"
                                                          if missing else ""))
        categories = sorted({v.category for v in views})
        unseen = unseen_categories(self, categories, str(folder), b"modelnet40-unseen")
        if self.options.part != "all":
            keep = set(unseen) if self.options.part == "unseen" else set(categories) - set(unseen)
            views = [v for v in views if v.category in keep]
            if not views:
                raise TaxonbenchError(f"{self.where}.part: no {self.options.part} category")
        val_models = self._val_models(views)
        out = {
            "train": [v for v in views if v.official == "train" and v.model not in val_models],
            "val": [v for v in views if v.model in val_models],
            "test": [v for v in views if v.official == "test"],
        }
        return out, unseen

    def _val_models(self, views: list[View]) -> set[str]:
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(b"modelnet40-val")]))
        models: dict[str, list[str]] = {}
        for v in views:
            if v.official == "train" and (not models.get(v.category) or models[v.category][-1] != v.model):
                models.setdefault(v.category, []).append(v.model)
        held: set[str] = set()
        for cat in sorted(models):
            group = models[cat]
            order = rng.permutation(len(group))
            held.update(group[i] for i in order[:int(np.floor(self.options.val_fraction * len(group) + 1e-9))])
        return held

    def _path(self, v: View) -> tuple[str, ...]:
        return (v.category, v.model) if self.options.leaf_level == "model" else (v.category,)

    @cached_property
    def _leaves(self) -> list[tuple[str, ...]]:
        return sorted({self._path(v) for views in self._views[0].values() for v in views})

    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_paths(self._leaves, RANKS, source=str(self.files / self.options.images_dir))

    def splits(self) -> list[str]:
        return list(self.split_names)

    def views(self, split: str) -> list[View]:
        self.check_split(split)
        per_split, unseen = self._views
        part, _, base = split.rpartition("_")
        views = per_split[base]
        if part:
            views = [v for v in views if (v.category in unseen) == (part == "unseen")]
        return views

    def rows(self, split: str) -> Iterator[Rows]:
        leaf_of = {p: i for i, p in enumerate(self._leaves)}
        views, folder = self.views(split), self.files / self.options.images_dir
        yield from row_batches(views, lambda v: {
            "id": f"{v.model}_v{v.view:03d}",
            "image": ImageFile(str(folder / v.rel)),
            "leaf": leaf_of[self._path(v)],
            "model": v.model,
            "view": v.view,
            "source_path": f"{self.options.images_dir}/{v.rel}",
        })

    def info(self) -> dict:
        per_split, unseen = self._views
        categories = sorted({v.category for views in per_split.values() for v in views})
        if self.options.part == "all" and len(categories) != N_CATEGORIES:
            note = f"{len(categories)} categories (ModelNet40 has {N_CATEGORIES})"
        else:
            note = ""
        return {
            **super().info(),
            "rendering": "modelnet40_images_new_12x (12 shaded views, Su et al. 2018)",
            "leaf_level": self.options.leaf_level,
            "part": self.options.part,
            "unseen_categories": unseen,
            "seen_categories": sorted(set(categories) - set(unseen)),
            "split_counts": {s: len(self.views(s)) for s in self.split_names},
            **({"note": note} if note else {}),
        }
