"""The ETH Entomological Collection (ETHEC) butterfly dataset, read from its published files.

Source: the ETHEC dataset released by ETH Zurich in the Research Collection
(https://www.research-collection.ethz.ch/handle/20.500.11850/365379; Dhall's
thesis "Learning Representations For Images With Hierarchical Labels", 2019,
§1.2.1 and §2.3.3, uses **v0.1**). The archive unpacks to ``ETHEC_dataset/``
holding

- ``splits/train.json``, ``splits/val.json``, ``splits/test.json``: one JSON
  object per split mapping a token (a UUID) to one image record
  ``{"token", "image_path", "image_name", "family", "subfamily", "genus",
  "specific_epithet", "subspecific_epithet", "infraspecific_epithet",
  "author", "country", "primary_division", "dec_lat", "dec_long",
  "barcode"}`` (the per-record schema of the split files the thesis author
  publishes in ``ankitdhall/learning_embeddings``, ``splits/ETHEC/*.json``);
- ``IMAGO_build_test_resized/<image_path>/<image_name>``: the images (the
  thesis: specimens centred, visual label leaks removed, 448 x 448).

The two folders are options (``splits_dir``, ``images_dir``) because the
layout inside the archive could not be checked offline (see
``docs/datasets_ethec_deepfashion_modelnet.md``).

**Taxonomy ("ETHEC Merged", thesis §2.3.3).** A specific epithet is not unique
across genera (*Colias staudingeri* and *Cupido staudingeri*), so the thesis
uses four levels family → subfamily → genus → genus + specific epithet, which
is a tree: 6 / 21 / 135 / 561 labels (723 in all). Here a taxon is identified
by its whole path, the ranks are ``family, subfamily, genus, species`` and, as
everywhere in taxonbench, the species node is named by its epithet alone (the
``scientific`` prompt style writes "<genus> <epithet>", i.e. the merged
label). Nodes are numbered rank by rank in path order; leaf ``i`` is the
``i``-th (family, subfamily, genus, epithet) path in lexicographic order over
the three split files. When the files hold at least :data:`FULL_MIN_RECORDS`
records (the published files, not a hand-made subset) the node counts per
rank must be exactly 6 / 21 / 135 / 561.

**ETHEC Small** (``subset: small``, thesis §2.3.3 and Table 2.1): the records
whose genus + specific epithet is one of the twelve labels of Table 2.1
(:data:`SMALL_SPECIES`), which gives 5 families, 6 subfamilies, 9 genera and
12 leaves; with the full files present the names per rank must be exactly
those of Table 2.1.

**Splits.** ``train``, ``val`` and ``test`` are the three published split
files (the thesis: 80 / 10 / 10 per label, labels with fewer than 10 images
spread equally). Rows are in token order; a row's ``id`` is its token and its
``source_path`` is ``<image_path>/<image_name>``.

**Images.** Decoded with Pillow, scaled so the short side is ``image_size``,
center-cropped square and stored as JPEG (quality 90). A missing or
undecodable image stops the run naming the file and the token.

**Download.** The v0.1 archive's address in the Research Collection is not
known to taxonbench: place the files under ``root`` yourself. For ``version:
v0.2`` the archive ``ETHEC_dataset_v0.2.zip`` can be fetched with ``download:
true``, but ETH publishes no checksum for it, so this also needs
``allow_unverified: true``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFile
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

RANKS = ("family", "subfamily", "genus", "species")
LABEL_FIELDS = ("family", "subfamily", "genus", "specific_epithet")
SPLITS = ("train", "val", "test")
SUBSETS = ("merged", "small")
VERSIONS = ("v0.1", "v0.2")
MERGED_RANK_COUNTS = (6, 21, 135, 561)
"""Labels per level of ETHEC Merged (thesis §1.2.1 and §2.3.3)."""
FULL_MIN_RECORDS = 40_000
"""Records in the three files from which they are taken to be the published ones (47,978 specimens)."""
SMALL_SPECIES = (
    ("Ochlodes", "venata"), ("Hesperia", "comma"), ("Pyrgus", "alveus"), ("Spialia", "sertorius"),
    ("Hamearis", "lucina"), ("Polycaena", "tamerlana"), ("Agriades", "lehanus"),
    ("Parnassius", "jacquemonti"), ("Aporia", "crataegi"), ("Aporia", "procris"), ("Aporia", "potanini"),
    ("Aporia", "nabellica"),
)
"""The genus + specific epithet labels of ETHEC Small (thesis Table 2.1)."""
SMALL_NAMES = {
    "family": {"Hesperiidae", "Riodinidae", "Lycaenidae", "Papilionidae", "Pieridae"},
    "subfamily": {"Hesperiinae", "Pyrginae", "Nemeobiinae", "Polyommatinae", "Parnassiinae", "Pierinae"},
    "genus": {"Ochlodes", "Hesperia", "Pyrgus", "Spialia", "Hamearis", "Polycaena", "Agriades", "Parnassius",
              "Aporia"},
    "species": {e for _, e in SMALL_SPECIES},
}
"""The names per level of ETHEC Small (thesis Table 2.1)."""
_ARCHIVE = {"v0.2": ("ethec/ETHEC_dataset_v0.2.zip", "ETHEC_dataset")}  # version: (SOURCES key, target)


@dataclass(frozen=True)
class Record:
    """One image record of a split file."""

    token: str
    path: tuple[str, str, str, str]  # family, subfamily, genus, specific epithet
    source_path: str  # <image_path>/<image_name>, relative to the image folder


def _string(path: Path, token: str, rec: Any, field: str, allow_empty: bool = False) -> str:
    if not isinstance(rec, dict) or field not in rec:
        raise TaxonbenchError(f"{path}: record {token}: missing field {field!r}")
    value = rec[field]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise TaxonbenchError(f"{path}: record {token}: field {field!r} should be a non-empty string, "
                              f"got {value!r}")
    return value.strip()


def parse_split(path: Path) -> list[Record]:
    """The records of one split file, in token order; errors name the file, the token and the field."""
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise TaxonbenchError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TaxonbenchError(f"{path}: expected a JSON object mapping tokens to image records")
    records = []
    for token in sorted(data):
        rec = data[token]
        labels = tuple(_string(path, token, rec, f) for f in LABEL_FIELDS)
        folder = _string(path, token, rec, "image_path", allow_empty=True)
        name = _string(path, token, rec, "image_name")
        records.append(Record(token, labels, f"{folder}/{name}" if folder else name))  # type: ignore[arg-type]
    return records


@dataclass(frozen=True)
class EthecOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: ethec`` dataset."""

    root: str = "data/raw/ethec"
    version: str = "v0.1"  # the release; v0.1 is the thesis' (download only for v0.2, unverified)
    subset: str = "merged"  # "merged" (ETHEC Merged, 723 labels) or "small" (ETHEC Small, Table 2.1)
    splits_dir: str = "ETHEC_dataset/splits"  # folder of train.json / val.json / test.json under root
    images_dir: str = "ETHEC_dataset/IMAGO_build_test_resized"  # image folder under root


@DATASETS.register("ethec")
class Ethec(FileDatasetAdapter):
    """ETHEC Merged / ETHEC Small (see the module docstring)."""

    Options = EthecOptions
    label = "ETHEC"

    def validate_options(self) -> None:
        for key, valid in (("version", VERSIONS), ("subset", SUBSETS)):
            if getattr(self.options, key) not in valid:
                raise TaxonbenchError(f"{self.where}.{key}: expected one of {', '.join(valid)}, "
                                      f"got {getattr(self.options, key)!r}")
        for key in ("splits_dir", "images_dir"):
            value = getattr(self.options, key)
            if not value or Path(value).is_absolute() or ".." in Path(value).parts:
                raise TaxonbenchError(f"{self.where}.{key}: expected a folder relative to root, got {value!r}")
        self.label = f"ETHEC {self.options.version}"

    def required(self) -> list[str]:
        return [f"{self.options.splits_dir}/{s}.json" for s in SPLITS] + [self.options.images_dir + "/"]

    def fetches(self) -> list[download.Fetch]:
        if self.options.version not in _ARCHIVE:
            return []
        key, target = _ARCHIVE[self.options.version]
        return [download.Fetch(key, target)]

    def manual_note(self) -> str:
        return ("download the ETHEC archive from https://www.research-collection.ethz.ch/handle/"
                "20.500.11850/365379 and extract it into root")

    # ------------------------------------------------------------ reading
    @cached_property
    def _records(self) -> dict[str, list[Record]]:
        root = self.files
        records = {s: parse_split(root / self.options.splits_dir / f"{s}.json") for s in SPLITS}
        self._n_all = sum(len(r) for r in records.values())
        if self.options.subset == "small":
            keep = set(SMALL_SPECIES)
            records = {s: [r for r in recs if r.path[2:] in keep] for s, recs in records.items()}
            if not any(records.values()):
                raise TaxonbenchError(f"{root / self.options.splits_dir}: no record of the twelve ETHEC Small "
                                      f"labels (thesis Table 2.1) in {', '.join(f'{s}.json' for s in SPLITS)}")
        return records

    @cached_property
    def _leaves(self) -> list[tuple[str, ...]]:
        return sorted({r.path for recs in self._records.values() for r in recs})

    @cached_property
    def _taxonomy(self) -> Taxonomy:
        source = str(self.files / self.options.splits_dir)
        if not self._leaves:
            raise TaxonbenchError(f"{source}: the split files hold no records")
        tax = Taxonomy.from_paths(self._leaves, RANKS, source=source)
        if self._n_all >= FULL_MIN_RECORDS:
            self._check_full(tax, source)
        return tax

    def _check_full(self, tax: Taxonomy, source: str) -> None:
        """The published files must give the thesis' label counts (Merged) or Table 2.1's names (Small)."""
        if self.options.subset == "merged":
            counts = tuple(int((tax.depth == d).sum()) for d in range(1, len(RANKS) + 1))
            if counts != MERGED_RANK_COUNTS:
                raise TaxonbenchError(
                    f"{source}: ETHEC Merged should have {' / '.join(map(str, MERGED_RANK_COUNTS))} labels per "
                    f"level ({', '.join(RANKS)}; thesis §2.3.3), found {' / '.join(map(str, counts))}")
            return
        for d, rank in enumerate(RANKS, start=1):
            names = {str(tax.name[v]) for v in tax.nodes_at_depth(d)}
            if names != SMALL_NAMES[rank] or (rank == "species" and tax.n_leaves != len(SMALL_SPECIES)):
                raise TaxonbenchError(
                    f"{source}: ETHEC Small should have the {rank} labels of thesis Table 2.1 "
                    f"({', '.join(sorted(SMALL_NAMES[rank]))}), found {', '.join(sorted(names))}")

    # ------------------------------------------------------------ adapter
    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    def splits(self) -> list[str]:
        return list(SPLITS)

    def records(self, split: str) -> list[Record]:
        self.check_split(split)
        return self._records[split]

    def rows(self, split: str) -> Iterator[Rows]:
        leaf_of = {path: i for i, path in enumerate(self._leaves)}
        self.taxonomy()  # checked before any image is read
        records, images = self.records(split), self.files / self.options.images_dir
        yield from row_batches(records, lambda r: {
            "id": r.token,
            "image": ImageFile(str(images / r.source_path), f"token {r.token}"),
            "leaf": leaf_of[r.path],
            "source_path": r.source_path,
        })

    def info(self) -> dict:
        return {
            **super().info(),
            "version": self.options.version,
            "subset": self.options.subset,
            "split_counts": {s: len(self.records(s)) for s in SPLITS},
        }
