"""DeepFashion In-Shop Clothes Retrieval, read from the benchmark's published files.

Source: the In-Shop Clothes Retrieval Benchmark of DeepFashion (Liu et al.,
CVPR 2016; http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html,
files on Google Drive). Under ``root``:

- ``Eval/list_eval_partition.txt``: line 1 the number of images, line 2 the
  header ``image_name item_id evaluation_status``, then one row per image, e.g.
  ``img/WOMEN/Blouses_Shirts/id_00000001/02_1_front.jpg id_00000001 train``;
  ``evaluation_status`` is ``train``, ``query`` or ``gallery``;
- ``img/<GENDER>/<category>/<item id>/<variation>_<pose>_<view>.jpg``: the
  images (``img.zip``, extracted by the adapter when ``img/`` is missing);
  ``Anno/list_item_inshop.txt`` (count, header
  ``item_id``, one id per line) is checked against the partition when present.

**Taxonomy** (HiMulConE, Zhang et al. CVPR 2022, §1 and §4.1: "category,
product ID and variation"). Ranks ``category → product → variation``; the
images are the samples. The category is the clothing folder with the genders
merged, as HiMulConE's released code does (``name.split('/')[2]``, 17
categories; ``merge_genders: false`` keeps ``MEN_Denim`` and ``WOMEN_Denim``
apart); the product is the item id; the variation is the first field of the
file name (``02`` in ``02_1_front.jpg``: a colour or sub-style of the
product). Taxa are path-keyed (a product id listed under two categories gives
two nodes; ``drop_repeating_products: true`` drops such products instead, as
HiMulConE's code drops the ids of a "repeating product ids" file it does not
publish). ``leaf_level`` picks the leaves: ``variation`` (default, the whole
hierarchy), ``product`` or ``category``. Leaf ``i`` is the ``i``-th path in
lexicographic order. Rows keep ``product``, ``variation``, ``gender`` and
``source_path`` (the partition's ``image_name``) as extra columns.

**Splits.** ``train``, ``query`` and ``gallery`` are the official partition.
``val`` is the gallery and ``test`` the query set: HiMulConE's released code
reads its "val" list from the gallery rows and its "test" list from the query
rows. HiMulConE §4.5 also splits the categories into a *seen* part (the
encoder is trained on it) and an *unseen* part without saying how; taxonbench
uses this seeded rule: the categories are sorted, ``floor(unseen_fraction *
n)`` of them are drawn without replacement by a generator seeded with
``(seed, crc32("deepfashion-unseen"))`` (or given by ``unseen_categories``),
and the rest are seen. ``seen_train`` / ``seen_query`` / ``seen_gallery`` and
``unseen_*`` restrict the official partition to each part. ``part: seen`` or
``part: unseen`` restricts the whole dataset (taxonomy and every split) to one
part, so that the pipeline's ``train`` split is the seen training set.
``splits`` chooses which splits are written (the derived ones repeat rows).

**Images.** The In-Shop images are 256 x 256 JPEGs; they are scaled so the
short side is ``image_size`` and center-cropped (a no-op at 256), stored as
JPEG (quality 90). A missing or undecodable image stops the run naming it and
its partition line.

**Download.** None: the files are on Google Drive behind a request form and
no checksum is published; place them under ``root`` yourself.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFile
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

PARTITION = "Eval/list_eval_partition.txt"
ITEMS = "Anno/list_item_inshop.txt"
HEADER = ("image_name", "item_id", "evaluation_status")
STATUSES = ("train", "query", "gallery")
RANKS = ("category", "product", "variation")
PARTS = ("all", "seen", "unseen")
BASE_SPLITS = ("train", "val", "test", "query", "gallery")
PART_SPLITS = tuple(f"{p}_{s}" for p in ("seen", "unseen") for s in STATUSES)
_NAME = re.compile(r"img/(?P<gender>[^/]+)/(?P<category>[^/]+)/(?P<item>[^/]+)/"
                   r"(?P<variation>\d+)_(?P<pose>\d+)_(?P<view>[A-Za-z]+)\.jpg")


# ------------------------------------------------------------ shared helpers
def pick_unseen(categories: Sequence[str], fraction: float, seed: int, salt: bytes) -> list[str]:
    """``floor(fraction * n)`` of the sorted ``categories``, drawn without replacement by a seeded generator."""
    ordered = sorted(categories)
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(salt)]))
    n = int(np.floor(fraction * len(ordered) + 1e-9))
    return sorted(ordered[i] for i in rng.choice(len(ordered), size=n, replace=False))


def check_part_options(adapter: FileDatasetAdapter, base_splits: Sequence[str], part_splits: Sequence[str]) -> None:
    """Validate ``part``, ``unseen_fraction``, ``unseen_categories`` and ``splits``; set ``adapter.split_names``."""
    o, where = adapter.options, adapter.where
    if o.part not in PARTS:
        raise TaxonbenchError(f"{where}.part: expected one of {', '.join(PARTS)}, got {o.part!r}")
    if not 0.0 <= o.unseen_fraction < 1.0:
        raise TaxonbenchError(f"{where}.unseen_fraction: expected a number in [0, 1), got {o.unseen_fraction!r}")
    if o.unseen_categories is not None and (
            not isinstance(o.unseen_categories, (list, tuple))
            or not all(isinstance(c, str) and c for c in o.unseen_categories)):
        raise TaxonbenchError(f"{where}.unseen_categories: expected a list of category names, "
                              f"got {o.unseen_categories!r}")
    available = list(base_splits) + (list(part_splits) if o.part == "all" else [])
    if o.splits is not None:
        if not isinstance(o.splits, (list, tuple)) or not o.splits:
            raise TaxonbenchError(f"{where}.splits: expected a non-empty list of split names, got {o.splits!r}")
        for s in o.splits:
            if s not in available:
                raise TaxonbenchError(f"{where}.splits: {s!r} is not a split of part {o.part!r}; "
                                      f"expected some of {', '.join(available)}")
        if len(set(o.splits)) != len(o.splits):
            raise TaxonbenchError(f"{where}.splits: a split is listed twice: {list(o.splits)}")
    adapter.split_names = list(o.splits) if o.splits is not None else available


def unseen_categories(adapter: FileDatasetAdapter, categories: Sequence[str], source: str, salt: bytes) -> list[str]:
    """The unseen categories: ``unseen_categories`` (checked to exist) or the seeded pick."""
    o = adapter.options
    if o.unseen_categories is None:
        return pick_unseen(categories, o.unseen_fraction, adapter.seed, salt)
    unknown = sorted(set(o.unseen_categories) - set(categories))
    if unknown:
        raise TaxonbenchError(f"{adapter.where}.unseen_categories: {', '.join(unknown)} not among the categories "
                              f"of {source} ({', '.join(sorted(categories))})")
    return sorted(set(o.unseen_categories))


# ---------------------------------------------------------------- parsing
@dataclass(frozen=True)
class Entry:
    """One row of the partition file."""

    line: int  # 1-based line number in the partition file
    image_name: str  # img/<GENDER>/<category>/<item id>/<file>.jpg
    gender: str
    category: str  # the clothing folder (genders merged or not, per options)
    product: str  # the item id
    variation: str
    status: str  # train / query / gallery


def parse_partition(path: Path, merge_genders: bool) -> list[Entry]:
    """The rows of ``list_eval_partition.txt``; errors name the file, the line and the field."""
    lines = path.read_text().splitlines()
    if len(lines) < 2:
        raise TaxonbenchError(f"{path}: expected a count line and the header {' '.join(HEADER)!r}")
    try:
        count = int(lines[0].strip())
    except ValueError:
        raise TaxonbenchError(f"{path}: line 1: expected the number of images, got {lines[0]!r}") from None
    if tuple(lines[1].split()) != HEADER:
        raise TaxonbenchError(f"{path}: line 2: expected the header {' '.join(HEADER)!r}, got {lines[1]!r}")
    entries = []
    for k, text in enumerate(lines[2:], start=3):
        if not text.strip():
            continue
        fields = text.split()
        if len(fields) != len(HEADER):
            missing = HEADER[len(fields)] if len(fields) < len(HEADER) else None
            what = f"missing field {missing!r}" if missing else f"{len(fields)} fields, expected {len(HEADER)}"
            raise TaxonbenchError(f"{path}: line {k}: {what} ({text.strip()!r})")
        name, item, status = fields
        m = _NAME.fullmatch(name)
        if m is None:
            raise TaxonbenchError(f"{path}: line {k}: image_name {name!r} is not "
                                  f"img/<GENDER>/<category>/<item id>/<variation>_<pose>_<view>.jpg")
        if item not in (m["item"], m["item"].removeprefix("id_")):
            raise TaxonbenchError(f"{path}: line {k}: item_id {item!r} differs from the image's folder "
                                  f"{m['item']!r}")
        if status not in STATUSES:
            raise TaxonbenchError(f"{path}: line {k}: evaluation_status {status!r}: expected one of "
                                  f"{', '.join(STATUSES)}")
        category = m["category"] if merge_genders else f"{m['gender']}_{m['category']}"
        entries.append(Entry(k, name, m["gender"], category, m["item"], m["variation"], status))
    if count != len(entries):
        raise TaxonbenchError(f"{path}: line 1 announces {count} images, the file lists {len(entries)} "
                              f"(truncated?)")
    seen: set[str] = set()
    for e in entries:
        if e.image_name in seen:
            raise TaxonbenchError(f"{path}: line {e.line}: image {e.image_name} is listed twice")
        seen.add(e.image_name)
    return entries


def check_items(path: Path, entries: list[Entry]) -> None:
    """Every item id of the partition must be listed in ``list_item_inshop.txt``."""
    lines = path.read_text().split()
    if len(lines) < 2 or lines[1] != "item_id":
        raise TaxonbenchError(f"{path}: expected a count line and the header 'item_id'")
    items = set(lines[2:])
    if str(len(items)) != lines[0]:
        raise TaxonbenchError(f"{path}: line 1 announces {lines[0]} items, the file lists {len(items)}")
    missing = sorted({e.product for e in entries} - items)
    if missing:
        raise TaxonbenchError(f"{path}: item {missing[0]} of the partition is not listed"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


# ------------------------------------------------------------------ adapter
@dataclass(frozen=True)
class DeepFashionOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: deepfashion_inshop`` dataset."""

    root: str = "data/raw/deepfashion_inshop"
    leaf_level: str = "variation"  # "variation", "product" or "category"
    merge_genders: bool = True  # one category for MEN/Denim and WOMEN/Denim (HiMulConE's 17 categories)
    drop_repeating_products: bool = False  # drop item ids listed under more than one category
    part: str = "all"  # "all", or only the "seen" / "unseen" categories
    unseen_fraction: float = 0.5  # share of the categories drawn (seeded) as unseen
    unseen_categories: list | None = None  # explicit unseen categories instead of the seeded draw
    splits: list | None = None  # the splits to write (default: all of the part's splits)


@DATASETS.register("deepfashion_inshop")
class DeepFashionInShop(FileDatasetAdapter):
    """DeepFashion In-Shop Clothes Retrieval (see the module docstring)."""

    Options = DeepFashionOptions
    label = "DeepFashion In-Shop"

    def validate_options(self) -> None:
        if self.options.leaf_level not in RANKS:
            raise TaxonbenchError(f"{self.where}.leaf_level: expected one of {', '.join(RANKS)}, "
                                  f"got {self.options.leaf_level!r}")
        check_part_options(self, BASE_SPLITS, PART_SPLITS)

    def required(self) -> list[str]:
        return [PARTITION, "img/"]

    @cached_property
    def files(self) -> Path:
        """``root`` checked; a manually downloaded ``img.zip`` is extracted there first (safely, staged)."""
        zipped = self.root / "img.zip"
        if zipped.is_file() and not (self.root / "img").exists():
            download.extract(zipped, self.root)
        return FileDatasetAdapter.files.func(self)

    def manual_note(self) -> str:
        return ("no automated download: request the In-Shop Clothes Retrieval Benchmark on "
                "http://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html (Google Drive), "
                "put img.zip (or the img/ it holds) and Eval/list_eval_partition.txt in root")

    @cached_property
    def _entries(self) -> tuple[list[Entry], list[str]]:
        """(entries of this part, unseen categories)."""
        root = self.files
        entries = parse_partition(root / PARTITION, self.options.merge_genders)
        if (root / ITEMS).exists():
            check_items(root / ITEMS, entries)
        if self.options.drop_repeating_products:
            cats: dict[str, set[str]] = {}
            for e in entries:
                cats.setdefault(e.product, set()).add(e.category)
            entries = [e for e in entries if len(cats[e.product]) == 1]
        categories = sorted({e.category for e in entries})
        unseen = unseen_categories(self, categories, str(root / PARTITION), b"deepfashion-unseen")
        if self.options.part != "all":
            keep = set(unseen) if self.options.part == "unseen" else set(categories) - set(unseen)
            entries = [e for e in entries if e.category in keep]
            if not entries:
                raise TaxonbenchError(f"{self.where}.part: no {self.options.part} category "
                                      f"(unseen: {', '.join(unseen) or 'none'})")
        return entries, unseen

    def _path(self, e: Entry) -> tuple[str, ...]:
        full = (e.category, e.product, e.variation)
        return full[:RANKS.index(self.options.leaf_level) + 1]

    @cached_property
    def _leaves(self) -> list[tuple[str, ...]]:
        return sorted({self._path(e) for e in self._entries[0]})

    def taxonomy(self) -> Taxonomy:
        return Taxonomy.from_paths(self._leaves, RANKS, source=str(self.files / PARTITION))

    def splits(self) -> list[str]:
        return list(self.split_names)

    def entries(self, split: str) -> list[Entry]:
        self.check_split(split)
        entries, unseen = self._entries
        part, _, status = split.rpartition("_")
        status = {"val": "gallery", "test": "query"}.get(status, status)
        if part:
            wanted = set(unseen)
            entries = [e for e in entries if (e.category in wanted) == (part == "unseen")]
        return [e for e in entries if e.status == status]

    def rows(self, split: str) -> Iterator[Rows]:
        leaf_of = {p: i for i, p in enumerate(self._leaves)}
        entries, root = self.entries(split), self.files
        yield from row_batches(entries, lambda e: {
            "id": e.image_name.removeprefix("img/").removesuffix(".jpg"),
            "image": ImageFile(str(root / e.image_name), f"{PARTITION} line {e.line}"),
            "leaf": leaf_of[self._path(e)],
            "product": e.product,
            "variation": e.variation,
            "gender": e.gender,
            "source_path": e.image_name,
        })

    def info(self) -> dict:
        entries, unseen = self._entries
        return {
            **super().info(),
            "leaf_level": self.options.leaf_level,
            "part": self.options.part,
            "unseen_categories": unseen,
            "seen_categories": sorted({e.category for e in entries} - set(unseen)),
            "split_counts": {s: len(self.entries(s)) for s in self.split_names},
            "val_is": "the official gallery set", "test_is": "the official query set",
        }
