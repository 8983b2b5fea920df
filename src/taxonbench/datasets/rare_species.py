"""Rare Species (imageomics), BioCLIP's held-out evaluation set, from its Hugging Face files.

Source format (https://huggingface.co/datasets/imageomics/rare-species, dataset
card *Dataset Structure* / *Data Fields*; the card's earlier copy is
``docs/imageomics/RareSpecies_DatasetCard.md`` of github.com/Imageomics/bioclip):
400 IUCN-listed species (Near Threatened ... Extinct in the Wild, all
*Animalia*), 30 images each (five species have fewer unique images), all with
the full 7-rank taxonomy. The repository holds the images as
``dataset/<kingdom-phylum-class-order-family-genus-species>/<eol_content_id>_<eol_page_id>_eol_full-size-copy.jpg``,
``metadata/rarespecies-catalog.csv`` (columns ``rarespecies_id,
eol_content_id, eol_page_id, kingdom, phylum, class, order, family, genus,
species, sciName, common``) and, at its top level, ``metadata.csv``: the
Hugging Face *ImageFolder* metadata file, whose ``file_name`` column is each
image's path relative to the repository root, next to the catalog's columns.

Read here: ``<root>/metadata.csv`` with the columns named by the constants
below (``file_name`` and the seven rank columns are required; ``rarespecies_id``,
``common`` and ``sciName`` are used when present). That ``metadata.csv`` has
exactly these column names follows from the card (catalog columns) and the
ImageFolder convention (``file_name``); its full header could not be read
offline, so each name is one constant here.

**Taxonomy.** :data:`RANKS_7` from the rank columns; a species value that
starts with its genus (``Cyclonaias tuberculata``) is cut to the epithet. A
row with an empty rank names the file, the line and the column. Leaf ``i``
is the ``i``-th species path in lexicographic order (homonyms under different
parents are different nodes, as everywhere).

**Splits.** The whole set is BioCLIP's (and seed 003's) zero-shot test set
(``shots: 0``, models trained elsewhere through ``trained_on``). For few-shot
fine-tuning, a seeded k-shot protocol (as in BioCLIP's one- and five-shot
results): per species (rows in file order,
shuffled with a generator seeded by the dataset ``seed``) ``shots`` images go
to ``train``, ``val_shots`` to ``val`` and the rest to ``test``. ``shots: 0``
gives only ``test`` (the zero-shot set; nothing to train on). A species with
fewer than ``shots + val_shots + 1`` images is an error naming it.

**Images** are the files named by ``file_name`` (``ImageFile``, where =
``metadata.csv line N``), scaled and center-cropped to ``image_size``. Extra
columns: ``source_path`` (``file_name``) and ``common_name``.

**Download.** ``download: true`` fetches ``metadata.csv`` from the hub
(``download.SOURCES["rare_species/metadata.csv"]``; the hub shows no
checksum we could read, so ``allow_unverified: true`` is needed). The ~12,000
images are single files, not an archive: fetch them with ``huggingface-cli
download imageomics/rare-species --repo-type dataset --local-dir <root>``
(which also brings ``metadata.csv``); a missing image folder says so.
"""

from __future__ import annotations

import csv
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import ClassVar
from functools import cached_property
from pathlib import Path

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileDatasetAdapter, FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFile
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import RANKS_7, Taxonomy

METADATA = "metadata.csv"
FILE_COLUMN = "file_name"  # image path relative to root (Hugging Face ImageFolder metadata)
RANK_COLUMNS = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
ID_COLUMN = "rarespecies_id"  # optional; the row id falls back to file_name
COMMON_COLUMN = "common"  # optional
SOURCE_KEY = "rare_species/metadata.csv"


# ------------------------------------------------- helpers shared with crypticbio
def read_csv(path: Path, required: Sequence[str]) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """``(header, [(line number, row)])`` of a CSV file; a missing column names the file and the column."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            missing = [c for c in required if c not in header]
            if missing:
                raise TaxonbenchError(f"{path}: missing column {missing[0]!r} (header: {', '.join(header)})")
            rows = [(reader.line_num, {k: (v or "").strip() for k, v in row.items() if k is not None})
                    for row in reader]
    except UnicodeDecodeError as exc:
        raise TaxonbenchError(f"{path}: not UTF-8 text ({exc})") from None
    except csv.Error as exc:
        raise TaxonbenchError(f"{path}: not valid CSV ({exc})") from None
    return header, rows


def epithet(genus: str, species: str) -> str:
    """The species epithet: ``species`` without a leading ``genus`` (a binomial), else as is."""
    if genus and species.startswith(genus + " ") and species[len(genus) + 1:].strip():
        return species[len(genus) + 1:].strip()
    return species


def shot_split(groups: dict[int, list[int]], shots: int, val_shots: int, seed: int, tag: bytes,
               describe) -> dict[str, list[int]]:
    """Seeded per-leaf k-shot split: ``shots`` to train, ``val_shots`` to val, the rest to test.

    ``groups`` maps a leaf to its row indices (in file order); ``describe(leaf)``
    names a leaf in the error raised when it has too few rows.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(tag)]))
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for leaf in sorted(groups):
        rows = groups[leaf]
        if len(rows) < shots + val_shots + 1:
            raise TaxonbenchError(f"{describe(leaf)} has {len(rows)} image(s); shots + val_shots + 1 = "
                                  f"{shots + val_shots + 1} are needed (lower shots / val_shots)")
        perm = rng.permutation(len(rows))
        out["train"] += [rows[j] for j in perm[:shots]]
        out["val"] += [rows[j] for j in perm[shots:shots + val_shots]]
        out["test"] += [rows[j] for j in perm[shots + val_shots:]]
    return {k: sorted(v) for k, v in out.items()}


def split_names(shots: int, val_shots: int) -> list[str]:
    return (["train"] if shots else []) + (["val"] if val_shots else []) + ["test"]


def check_shots(options, where: str) -> None:
    for key in ("shots", "val_shots"):
        value = getattr(options, key)
        if value < 0:
            raise TaxonbenchError(f"{where}.{key}: expected a non-negative integer, got {value!r}")
    if options.val_shots and not options.shots:
        raise TaxonbenchError(f"{where}.val_shots: needs shots > 0 (a val split without a train split)")


class KShotSpecies(FileDatasetAdapter):
    """An evaluation set of species images split per species into k-shot train / val and test.

    Subclasses give :meth:`shot_samples` (objects with a ``path``: the 7-rank
    taxon path), :meth:`metadata_file` (named in messages) and ``shot_tag``
    (salts the seeded split); options carry ``shots`` and ``val_shots``.
    """

    shot_tag: ClassVar[bytes] = b""

    def shot_samples(self) -> list:
        raise NotImplementedError

    def metadata_file(self) -> Path:
        raise NotImplementedError

    @cached_property
    def _leaf_paths(self) -> list[tuple[str, ...]]:
        return sorted({s.path for s in self.shot_samples()})

    @cached_property
    def _taxonomy(self) -> Taxonomy:
        return Taxonomy.from_paths(self._leaf_paths, RANKS_7, source=str(self.metadata_file()))

    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    def splits(self) -> list[str]:
        return split_names(self.options.shots, self.options.val_shots)

    @cached_property
    def _split_rows(self) -> dict[str, list[int]]:
        leaf_of = {p: i for i, p in enumerate(self._leaf_paths)}
        groups: dict[int, list[int]] = {}
        for r, s in enumerate(self.shot_samples()):
            groups.setdefault(leaf_of[s.path], []).append(r)
        return shot_split(groups, self.options.shots, self.options.val_shots, self.seed, self.shot_tag,
                          lambda leaf: f"{self.metadata_file()}: species {' '.join(self._leaf_paths[leaf][-2:])}")

    def split_samples(self, split: str) -> tuple[list, dict[tuple[str, ...], int]]:
        """The samples of ``split`` in file order, and the leaf index of each taxon path."""
        self.check_split(split)
        samples = self.shot_samples()
        return [samples[r] for r in self._split_rows[split]], {p: i for i, p in enumerate(self._leaf_paths)}

    def info(self) -> dict:
        return {**super().info(), "split_counts": {s: len(self._split_rows[s]) for s in self.splits()}}


@dataclass(frozen=True)
class Sample:
    line: int
    id: str
    file_name: str
    path: tuple[str, ...]
    common: str


# ------------------------------------------------------------------ adapter
@dataclass(frozen=True)
class RareSpeciesOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: rare_species`` dataset."""

    root: str = "data/raw/rare_species"
    shots: int = 5  # train images per species (0: test only)
    val_shots: int = 0  # val images per species


@DATASETS.register("rare_species")
class RareSpecies(KShotSpecies):
    """Rare Species (see the module docstring)."""

    Options = RareSpeciesOptions
    label = "Rare Species"
    shot_tag = b"rare-species-shots"

    def validate_options(self) -> None:
        check_shots(self.options, self.where)

    def required(self) -> list[str]:
        return [METADATA]

    def fetches(self) -> list[download.Fetch]:
        return [download.Fetch(SOURCE_KEY, METADATA, extract=False)]

    def manual_note(self) -> str:
        return (f"fetch the images with `huggingface-cli download imageomics/rare-species --repo-type dataset "
                f"--local-dir {self.root}`")

    @cached_property
    def samples(self) -> list[Sample]:
        path = self.files / METADATA
        _, rows = read_csv(path, (FILE_COLUMN, *RANK_COLUMNS))
        out, seen = [], {}
        for line, row in rows:
            names = []
            for col in RANK_COLUMNS:
                if not row.get(col):
                    raise TaxonbenchError(f"{path}: line {line}: missing field {col!r}")
                names.append(row[col])
            names[-1] = epithet(names[-2], names[-1])
            if not row[FILE_COLUMN]:
                raise TaxonbenchError(f"{path}: line {line}: missing field {FILE_COLUMN!r}")
            rid = row.get(ID_COLUMN) or row[FILE_COLUMN]
            if rid in seen:
                raise TaxonbenchError(f"{path}: line {line}: id {rid!r} already on line {seen[rid]}")
            seen[rid] = line
            out.append(Sample(line, rid, row[FILE_COLUMN], tuple(names), row.get(COMMON_COLUMN, "")))
        if not out:
            raise TaxonbenchError(f"{path}: no rows")
        tops = sorted({Path(s.file_name).parts[0] for s in out if len(Path(s.file_name).parts) > 1})
        absent = [t for t in tops if not (self.files / t).is_dir()]
        if absent:
            raise TaxonbenchError(f"{self.files / absent[0]}: image folder not found (named by {FILE_COLUMN} in "
                                  f"{path}); {self.manual_note()}")
        return out

    def shot_samples(self) -> list[Sample]:
        return self.samples

    def metadata_file(self) -> Path:
        return self.files / METADATA

    def rows(self, split: str) -> Iterator[Rows]:
        chosen, leaf_of = self.split_samples(split)
        yield from row_batches(chosen, lambda s: {
            "id": s.id,
            "image": ImageFile(str(self.files / s.file_name), f"{METADATA} line {s.line}"),
            "leaf": leaf_of[s.path],
            "source_path": s.file_name,
            "common_name": s.common,
        })

    def info(self) -> dict:
        return {**super().info(),
                "protocol": f"{self.options.shots}-shot train, {self.options.val_shots}-shot val per species; "
                            f"the rest is test"}
