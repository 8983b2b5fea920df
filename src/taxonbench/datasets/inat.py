"""The iNaturalist 2017, 2018 and 2021 datasets, read from the upstream competition files.

Source format (https://github.com/visipedia/inat_comp, the 2017 README and
the 2018/ and 2021/ READMEs, *Annotation Format*): COCO-style JSON files
``{"images": [{"id", "file_name", ...}], "annotations": [{"id", "image_id",
"category_id"}], "categories": [...], ...}``; ``file_name`` is relative to the
dataset root.

=============  ======================================  ==============================================
``version``    annotation files under ``root``         image folders under ``root``
=============  ======================================  ==============================================
``2017``       ``train2017.json``, ``val2017.json``    ``train_val_images/<super category>/<name>/*.jpg``
``2018``       ``train2018.json``, ``val2018.json``,   ``train_val2018/<super category>/<id>/*.jpg``
               ``categories.json``
``2021``       ``train.json``, ``val.json``            ``train/<NNNNN_Kingdom_..._epithet>/*.jpg``,
                                                       ``val/...``
``2021_mini``  ``train_mini.json``, ``val.json``       ``train_mini/...``, ``val/...``
=============  ======================================  ==============================================

iNat2017's categories carry only ``supercategory`` (13 of them) and ``name``
(the species' binomial, kept whole: there is no genus rank to hold the
genus), so its tree has the two ranks of :data:`RANKS_2017`, as the
HiMulCon paper uses it (§4.1: "579K train, 2 levels"). iNat2018's own files
carry obfuscated taxon names; the real ones are in
``categories.json`` (released after the competition), whose entries carry
``kingdom, phylum, class, order, family, genus`` and ``name`` (the species'
binomial). iNat2021's ``categories`` entries carry the same six ranks plus
``specific_epithet`` (and ``name``, the binomial).

**Taxonomy.** A root and the seven ranks of :data:`RANKS_7` (iNat2017: the
two of :data:`RANKS_2017`). A taxon is
identified by its whole path from the kingdom down, so two taxa with the same
name under different parents (e.g. the plant genus *Morus* and the bird genus
*Morus*) are different nodes. Nodes are numbered rank by rank, each rank in
the lexicographic order of the paths; the species are the leaves, and leaf
``i`` is the category with the ``i``-th smallest ``id``. As everywhere in
taxonbench a species node is named by its epithet alone (``corax``; the
``scientific`` prompt style writes "Corvus corax"): iNat2021's
``specific_epithet``, and for iNat2018 the ``name`` with its leading genus
removed (the whole ``name`` when it does not start with the genus). A category
lacking one of the rank fields is an error naming the file, the category id
and the field. For the full iNat2021 category list (10,000 species) the node
counts per rank must be 3 / 13 / 51 / 273 / 1103 / 4900 / 10000.

**Splits.** ``train`` is the official training file (``train2017``,
``train2018``, ``train`` or ``train_mini``). iNaturalist publishes no test
labels, so the official validation file is split in two: ``test`` takes a
fraction ``f`` of it and ``val`` the rest, stratified by species: each
species' ``n`` validation images (in image-id order) are shuffled with a
generator seeded by the dataset ``seed``, ``floor(f n)`` of them go to
``test`` and the rest to ``val``, except that a seeded draw ``u ~ U[0, 1)``
gives one more to ``test`` when ``u < f n - floor(f n)``. ``f = 1/2`` for 2018
and 2021 (a seeded coin for an odd ``n``); for 2017 ``f = 0.2``: ``test`` is
the HiMulCon paper's retrieval *query* set ("20 % of the validation set")
and ``val`` its *gallery* (the rest), so a HiMulCon config sets
``eval_split: test`` and ``gallery_split: val``. The split is a
deterministic function of ``(seed, val file)``.

**Images.** The stored form of :mod:`taxonbench.datasets.images`: RGB, the
central square scaled to ``image_size`` (the same picture as scaling the short
side and center-cropping), JPEG quality 90, decoded and resized in the
dataset's ``workers`` processes. A missing image is an error naming the file
and the annotation id; an undecodable one stops the run the same way, or with
``on_corrupt_image: skip`` is left out and listed. Each row keeps its
``file_name`` in the extra ``source_path`` column.

**Download.** With ``download: true`` the missing upstream archives are fetched
into ``root`` with :func:`taxonbench.download.fetch` (verified against the
published MD5 sums) and extracted there with
:func:`taxonbench.download.extract`; files already in place are left alone.
iNat2018's ``categories.json.tar.gz`` and iNat2017's ``train_val2017.zip``
(the two annotation files) have no published checksum and are therefore not
fetched unless ``allow_unverified: true``: otherwise place ``categories.json``
(``train2017.json`` and ``val2017.json``) in ``root`` yourself. With
``download: false`` (the default) a missing file is an error saying which
files to place where.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFile
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import RANKS_7, Taxonomy

SPLITS = ("train", "val", "test")
RANKS_2017 = ("supercategory", "species")
"""The two ranks of iNat2017's categories (``supercategory``, then the species ``name``)."""
INAT21_RANK_COUNTS = (3, 13, 51, 273, 1103, 4900, 10000)
"""Nodes per rank (kingdom ... species) of the full iNat2021 category list."""


@dataclass(frozen=True)
class Layout:
    """What one iNat version consists of under ``root``."""

    train: str  # training annotation file
    val: str  # validation annotation file (split into val and test)
    categories: str | None  # separate category file (iNat2018), else the train file's categories
    species_field: str  # the category field naming the species
    image_dirs: tuple[str, ...]  # top-level image folders
    archives: tuple[tuple[str, str], ...]  # (download.SOURCES key, what it extracts to under root)
    ranks: tuple[str, ...] = RANKS_7  # the tree's ranks; all but the last are category fields
    test_fraction: float = 0.5  # the share of each species' validation images that goes to test


VERSIONS: dict[str, Layout] = {
    "2017": Layout(
        train="train2017.json", val="val2017.json", categories=None, species_field="name",
        image_dirs=("train_val_images",),
        archives=(("inat2017/train_val2017.zip", "train2017.json"),
                  ("inat2017/train_val2017.zip", "val2017.json"),
                  ("inat2017/train_val_images.tar.gz", "train_val_images")),
        ranks=RANKS_2017, test_fraction=0.2,
    ),
    "2018": Layout(
        train="train2018.json", val="val2018.json", categories="categories.json", species_field="name",
        image_dirs=("train_val2018",),
        archives=(("inat2018/categories.json.tar.gz", "categories.json"),
                  ("inat2018/train2018.json.tar.gz", "train2018.json"),
                  ("inat2018/val2018.json.tar.gz", "val2018.json"),
                  ("inat2018/train_val2018.tar.gz", "train_val2018")),
    ),
    "2021": Layout(
        train="train.json", val="val.json", categories=None, species_field="specific_epithet",
        image_dirs=("train", "val"),
        archives=(("inat2021/train.json.tar.gz", "train.json"),
                  ("inat2021/val.json.tar.gz", "val.json"),
                  ("inat2021/train.tar.gz", "train"),
                  ("inat2021/val.tar.gz", "val")),
    ),
    "2021_mini": Layout(
        train="train_mini.json", val="val.json", categories=None, species_field="specific_epithet",
        image_dirs=("train_mini", "val"),
        archives=(("inat2021/train_mini.json.tar.gz", "train_mini.json"),
                  ("inat2021/val.json.tar.gz", "val.json"),
                  ("inat2021/train_mini.tar.gz", "train_mini"),
                  ("inat2021/val.tar.gz", "val")),
    ),
}


@dataclass(frozen=True)
class Record:
    """One annotated image: what a shard row is made from."""

    image_id: int
    annotation_id: int
    file_name: str
    category_id: int


# --------------------------------------------------------------- JSON input
def _load_json(path: Path) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise TaxonbenchError(f"{path}: not valid JSON ({exc})") from None


def _field(path: Path, obj: Any, key: str, kind: type, what: str) -> Any:
    """``obj[key]``, checked to be a ``kind``; errors name the file and the entry."""
    if not isinstance(obj, dict) or key not in obj:
        raise TaxonbenchError(f"{path}: {what}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise TaxonbenchError(f"{path}: {what}: field {key!r} should be {kind.__name__}, got {value!r}")
    return value


def parse_categories(path: Path, categories: Any, species_field: str,
                     ranks: tuple[str, ...] = RANKS_7) -> list[tuple[int, tuple[str, ...]]]:
    """``(category id, (name per rank, ..., species name))`` sorted by id.

    Every rank but the last is read from the category field of that name, the
    species from ``species_field``. The species name is the epithet where the
    tree has a genus rank (see the module docstring). A missing or empty rank
    field names the file, the category id and the field.
    """
    if not isinstance(categories, list):
        raise TaxonbenchError(f"{path}: expected a list of categories")
    out: dict[int, tuple[str, ...]] = {}
    for k, cat in enumerate(categories):
        cid = _field(path, cat, "id", int, f"category #{k}")
        names = []
        for field in (*ranks[:-1], species_field):
            value = cat.get(field)
            if not isinstance(value, str) or not value.strip():
                raise TaxonbenchError(f"{path}: category {cid}: missing field {field!r}")
            names.append(value.strip())
        if species_field == "name" and "genus" in ranks:  # iNat2018: the binomial; keep the epithet
            genus, binomial = names[-2], names[-1]
            if binomial.startswith(genus + " ") and binomial[len(genus) + 1:].strip():
                names[-1] = binomial[len(genus) + 1:].strip()
        if cid in out:
            raise TaxonbenchError(f"{path}: category id {cid} appears twice")
        out[cid] = tuple(names)
    return sorted(out.items())


def parse_records(path: Path, data: Any, category_ids: set[int]) -> list[Record]:
    """The annotated images of one COCO-style file, sorted by image id."""
    if not isinstance(data, dict):
        raise TaxonbenchError(f"{path}: expected a JSON object with 'images' and 'annotations'")
    images: dict[int, str] = {}
    for k, img in enumerate(_field(path, data, "images", list, "top level")):
        images[_field(path, img, "id", int, f"image #{k}")] = _field(path, img, "file_name", str, f"image #{k}")
    records = []
    for k, ann in enumerate(_field(path, data, "annotations", list, "top level")):
        aid = _field(path, ann, "id", int, f"annotation #{k}")
        image_id = _field(path, ann, "image_id", int, f"annotation {aid}")
        category_id = _field(path, ann, "category_id", int, f"annotation {aid}")
        if image_id not in images:
            raise TaxonbenchError(f"{path}: annotation {aid}: image_id {image_id} is not among the images")
        if category_id not in category_ids:
            raise TaxonbenchError(f"{path}: annotation {aid}: category_id {category_id} is not among the categories")
        records.append(Record(image_id, aid, images[image_id], category_id))
    return sorted(records, key=lambda r: (r.image_id, r.annotation_id))


def split_val_test(records: list[Record], seed: int, test_fraction: float = 0.5) -> tuple[list[Record], list[Record]]:
    """The official validation records split per species into ``(val, test)``, ``test`` taking
    ``floor(f n)`` of a species' ``n`` images plus one more with probability ``f n - floor(f n)``
    (``f = test_fraction``; seeded, see the module docstring)."""
    words = [seed, zlib.crc32(b"inat-val-test")]
    rng = np.random.default_rng(np.random.SeedSequence(words))
    by_category: dict[int, list[Record]] = {}
    for r in records:  # records are in image-id order
        by_category.setdefault(r.category_id, []).append(r)
    val, test = [], []
    for cid in sorted(by_category):
        group = by_category[cid]
        order = rng.permutation(len(group))
        share = test_fraction * len(group)
        n_test = int(np.floor(share)) + (1 if rng.random() < share - np.floor(share) else 0)
        test += [group[i] for i in order[:n_test]]
        val += [group[i] for i in order[n_test:]]
    key = lambda r: (r.image_id, r.annotation_id)  # noqa: E731
    return sorted(val, key=key), sorted(test, key=key)


# ------------------------------------------------------------------ adapter
@dataclass(frozen=True)
class InatOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: inat`` dataset."""

    root: str = "data/raw/inat"
    version: str = "2021_mini"  # "2017", "2018", "2021" or "2021_mini"


@DATASETS.register("inat")
class INaturalist(FileDatasetAdapter):
    """iNaturalist 2017 / 2018 / 2021 / 2021-mini (see the module docstring)."""

    Options = InatOptions
    label = "iNaturalist"

    def validate_options(self) -> None:
        if self.options.version not in VERSIONS:
            raise TaxonbenchError(f"{self.where}.version: expected one of {', '.join(VERSIONS)}, "
                                  f"got {self.options.version!r}")
        self.layout = VERSIONS[self.options.version]
        self.label = f"iNaturalist {self.options.version}"

    def required(self) -> list[str]:
        lay = self.layout
        return [lay.train, lay.val] + ([lay.categories] if lay.categories else []) + [d + "/" for d in lay.image_dirs]

    def fetches(self) -> list[download.Fetch]:
        return [download.Fetch(key, target) for key, target in self.layout.archives]

    @cached_property
    def _annotations(self) -> tuple[list[tuple[int, tuple[str, ...]]], dict[str, list[Record]]]:
        """(categories sorted by id, records per split)."""
        root, lay = self.files, self.layout
        train_path, val_path = root / lay.train, root / lay.val
        train = _load_json(train_path)
        if lay.categories:
            cat_path = root / lay.categories
            cat_data = _load_json(cat_path)
        else:
            cat_path = train_path
            cat_data = _field(train_path, train, "categories", list, "top level")
        categories = parse_categories(cat_path, cat_data, lay.species_field, lay.ranks)
        ids = {cid for cid, _ in categories}
        train_records = parse_records(train_path, train, ids)
        del train
        val_records = parse_records(val_path, _load_json(val_path), ids)
        val, test = split_val_test(val_records, self.seed, lay.test_fraction)
        return categories, {"train": train_records, "val": val, "test": test}

    # ------------------------------------------------------------ adapter
    @cached_property
    def _taxonomy(self) -> Taxonomy:
        categories, _ = self._annotations
        lay = self.layout
        source = str(self.files / (lay.categories or lay.train))
        tax = Taxonomy.from_paths([names for _, names in categories], lay.ranks, source=source)
        if self.options.version.startswith("2021") and len(categories) == INAT21_RANK_COUNTS[-1]:
            counts = tuple(int((tax.depth == d).sum()) for d in range(1, len(RANKS_7) + 1))
            if counts != INAT21_RANK_COUNTS:
                raise TaxonbenchError(
                    f"{source}: the iNat2021 tree should have {' / '.join(map(str, INAT21_RANK_COUNTS))} "
                    f"nodes per rank ({', '.join(RANKS_7)}), found {' / '.join(map(str, counts))}"
                )
        return tax

    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    def splits(self) -> list[str]:
        return list(SPLITS)

    def records(self, split: str) -> list[Record]:
        self.check_split(split)
        return self._annotations[1][split]

    def rows(self, split: str) -> Iterator[Rows]:
        categories, _ = self._annotations
        leaf_of = {cid: i for i, (cid, _) in enumerate(categories)}
        records, root = self.records(split), self.files
        stem = Path(self.layout.train if split == "train" else self.layout.val).stem
        yield from row_batches(records, lambda r: {
            "id": f"{stem}-{r.image_id}",
            "image": ImageFile(str(root / r.file_name), f"annotation id {r.annotation_id}"),
            "leaf": leaf_of[r.category_id],
            "source_path": r.file_name,
        })

    def info(self) -> dict:
        return {
            **super().info(),
            "version": self.options.version,
            "split_counts": {s: len(self.records(s)) for s in SPLITS},
            "test_split": f"a seeded, species-stratified {self.layout.test_fraction:g} of the official "
                          "validation file (val is the rest)",
        }
