"""CrypticBio (Manolache, Schouten, Vanschoren, NeurIPS 2025 D&B): visually confusing species groups.

**Format: best available knowledge, not fully confirmed offline.** The dataset
(https://huggingface.co/datasets/gmanolache/CrypticBio, dataset card;
https://georgianagmanolache.github.io/crypticbio) publishes metadata only,
no images: the full set as Parquet parts ``CrypticBio/part_*.parquet`` and
four benchmark subsets as CSV files
``CrypticBio-Benchmark/CrypticBio-{Common,CommonUnseen,Endangered,Invasive}.csv``
(Common: 158 species x 100 images; CommonUnseen: 133 species; Endangered: 37
species x 30; Invasive). Each row is one iNaturalist/GBIF research-grade
image: its scientific name, the taxonomic hierarchy, the image URL, date and
location, and the species' cryptic group (the species it is confused with).
The card does not list the exact column names; the names below are taken from
public code that reads these files (``scientificName``, ``kingdom`` ...
``genus``, ``url``, ``crypticGroup``, a list in the Parquet parts) and are each
one constant here, so a different header needs a one-line change. There is
no ``species`` column: the species is ``scientificName``.

**Taxonomy.** :data:`RANKS_7`: ``kingdom`` ... ``genus`` from their columns,
the species epithet from ``scientificName`` (the binomial without its genus;
the whole name when it does not start with the genus). An empty rank column
follows the ``incomplete`` rule of :mod:`~taxonbench.datasets.treeoflife`
(``fill``, the default here so that a benchmark keeps all its species:
``unknown <rank>`` under its parent; or ``drop``, counted in the manifest); an
empty ``scientificName`` or ``url`` names the file, the line and the column.
Leaf ``i`` is the ``i``-th species path in lexicographic order.

**Cryptic groups.** The ``crypticGroup`` cell is kept, normalised to the
group's names sorted and joined by ``|`` (a list, or its JSON / Python
``[...]`` text, or a comma-separated string), as the extra column
``cryptic_group``: seed 003's group-balanced design can group rows by it.

**Splits.** A benchmark subset is an evaluation set: ``shots: 0`` gives only
``test`` (zero-shot, the models trained elsewhere through ``trained_on``); for
few-shot fine-tuning, a seeded k-shot protocol per species as for Rare Species
(``shots`` to ``train``, ``val_shots`` to ``val``, the rest to ``test``).

**Images** are fetched by URL into ``<root>/images/<sha1(url)[:24]><ext>``
(``ImageFile``, where = ``<metadata file> line N``). ``download: true``
fetches the subset CSV from the hub and every missing image from its URL,
neither with a published checksum, so ``allow_unverified: true`` is required.
With ``missing_images: skip`` a row whose image is missing (or failed to
download) is left out and counted in the manifest instead of stopping the run.
``metadata`` points at another file under ``root`` (a ``.csv`` or a
``.parquet`` part of the full set) instead of a benchmark subset.
"""

from __future__ import annotations

import ast
import hashlib
import json
import posixpath
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import FileOptions, Rows, row_batches
from taxonbench.datasets.images import ImageFile
from taxonbench.datasets.rare_species import KShotSpecies, check_shots, epithet, read_csv
from taxonbench.datasets.treeoflife import INCOMPLETE_RULES, complete_path
from taxonbench.errors import TaxonbenchError

SUBSETS = ("Common", "CommonUnseen", "Endangered", "Invasive")
BENCHMARK_DIR = "CrypticBio-Benchmark"
SCIENTIFIC_COLUMN = "scientificName"
RANK_COLUMNS = ("kingdom", "phylum", "class", "order", "family", "genus")
URL_COLUMN = "url"
GROUP_COLUMN = "crypticGroup"  # optional
IMAGES_DIR = "images"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
MISSING_POLICIES = ("stop", "skip")


def image_name(url: str) -> str:
    """The local file name of an image URL: a SHA-1 prefix of the URL and its extension (``.jpg`` if none)."""
    ext = posixpath.splitext(urllib.parse.urlparse(url).path)[1].lower()
    return hashlib.sha1(url.encode()).hexdigest()[:24] + (ext if ext in IMAGE_EXTENSIONS else ".jpg")


def cryptic_group(value) -> str:
    """A ``crypticGroup`` cell as its names sorted and joined by ``|``."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                try:
                    value = ast.literal_eval(text)
                except (ValueError, SyntaxError):
                    value = text.strip("[]").split(",")
        else:
            value = text.split(",") if text else []
    names = {str(v).strip().strip("'\"").strip() for v in value}
    return "|".join(sorted(n for n in names if n))


@dataclass(frozen=True)
class Sample:
    line: int
    url: str
    path: tuple[str, ...]
    group: str

    @property
    def id(self) -> str:
        return Path(image_name(self.url)).stem


# ------------------------------------------------------------------ adapter
@dataclass(frozen=True)
class CrypticBioOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: crypticbio`` dataset."""

    root: str = "data/raw/crypticbio"
    subset: str = "Common"  # Common, CommonUnseen, Endangered or Invasive
    metadata: str = ""  # another metadata file under root (.csv or .parquet) instead of the subset's CSV
    shots: int = 10  # train images per species (0: test only)
    val_shots: int = 0  # val images per species
    incomplete: str = "fill"  # empty rank columns: "fill" or "drop" (module docstring)
    missing_images: str = "stop"  # "stop" or "skip" rows whose image file is missing


@DATASETS.register("crypticbio")
class CrypticBio(KShotSpecies):
    """CrypticBio benchmark subsets (see the module docstring)."""

    Options = CrypticBioOptions
    label = "CrypticBio"
    shot_tag = b"crypticbio-shots"

    def validate_options(self) -> None:
        o, w = self.options, self.where
        if o.subset not in SUBSETS:
            raise TaxonbenchError(f"{w}.subset: expected one of {', '.join(SUBSETS)}, got {o.subset!r}")
        if o.incomplete not in INCOMPLETE_RULES:
            raise TaxonbenchError(f"{w}.incomplete: expected one of {', '.join(INCOMPLETE_RULES)}, "
                                  f"got {o.incomplete!r}")
        if o.missing_images not in MISSING_POLICIES:
            raise TaxonbenchError(f"{w}.missing_images: expected one of {', '.join(MISSING_POLICIES)}, "
                                  f"got {o.missing_images!r}")
        if o.metadata and not o.metadata.endswith((".csv", ".parquet")):
            raise TaxonbenchError(f"{w}.metadata: expected a .csv or .parquet file, got {o.metadata!r}")
        check_shots(o, w)

    @property
    def metadata_path(self) -> str:
        return self.options.metadata or f"{BENCHMARK_DIR}/CrypticBio-{self.options.subset}.csv"

    def required(self) -> list[str]:
        return [self.metadata_path]

    def fetches(self) -> list[download.Fetch]:
        if self.options.metadata:
            return []
        name = f"CrypticBio-{self.options.subset}.csv"
        return [download.Fetch(f"crypticbio/{name}", name, extract=False)]

    def manual_note(self) -> str:
        return (f"place {self.options.metadata} under {self.root}, e.g. from `huggingface-cli download "
                f"gmanolache/CrypticBio --repo-type dataset --local-dir {self.root}`")

    def download(self) -> list[Path]:
        if not self.fetches():
            return []  # a custom metadata file is placed by hand; its images are still fetched by URL
        return download.fetch_missing(self.fetches(), self.root / BENCHMARK_DIR,
                                      allow_unverified=self.options.allow_unverified)

    # ---------------------------------------------------------- metadata
    def _read(self) -> tuple[Path, list[tuple[int, dict]]]:
        path = self.files / self.metadata_path
        required = (SCIENTIFIC_COLUMN, *RANK_COLUMNS, URL_COLUMN)
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            try:
                schema = pq.read_schema(path)
            except Exception as exc:  # pyarrow raises several types for a damaged file
                raise TaxonbenchError(f"{path}: not a readable Parquet file ({exc})") from None
            missing = [c for c in required if c not in schema.names]
            if missing:
                raise TaxonbenchError(f"{path}: missing column {missing[0]!r} (columns: {', '.join(schema.names)})")
            columns = [*required] + ([GROUP_COLUMN] if GROUP_COLUMN in schema.names else [])
            table = pq.read_table(path, columns=columns).to_pylist()
            rows = [(k + 1, {c: ("" if v is None else v if c == GROUP_COLUMN else str(v).strip())
                             for c, v in row.items()}) for k, row in enumerate(table)]
            return path, rows
        _, rows = read_csv(path, required)
        return path, rows

    @cached_property
    def _loaded(self) -> tuple[list[Sample], dict]:
        path, rows = self._read()
        where = "row" if path.suffix == ".parquet" else "line"
        samples, seen = [], {}
        counts = {"rows": len(rows), "incomplete": 0, "incomplete_dropped": 0}
        for line, row in rows:
            for col in (SCIENTIFIC_COLUMN, URL_COLUMN):
                if not row.get(col):
                    raise TaxonbenchError(f"{path}: {where} {line}: missing field {col!r}")
            names: list[str | None] = [row.get(c) or None for c in RANK_COLUMNS]
            names.append(epithet(names[-1] or "", row[SCIENTIFIC_COLUMN]))
            if not all(names):
                counts["incomplete"] += 1
            full = complete_path(names, self.options.incomplete)
            if full is None:
                counts["incomplete_dropped"] += 1
                continue
            sample = Sample(line, row[URL_COLUMN], full, cryptic_group(row.get(GROUP_COLUMN)))
            if sample.id in seen:
                raise TaxonbenchError(f"{path}: {where} {line}: image {sample.url} already on {where} {seen[sample.id]}")
            seen[sample.id] = line
            samples.append(sample)
        if self.options.download:
            self._fetch_images(samples)
        images = self.files / IMAGES_DIR
        missing = [s for s in samples if not (images / image_name(s.url)).is_file()]
        if missing and self.options.missing_images == "stop":
            s = missing[0]
            raise TaxonbenchError(
                f"{images / image_name(s.url)}: image of {path.name} {where} {s.line} ({s.url}) not found "
                f"({len(missing)} of {len(samples)} missing); set {self.where}.download: true (with "
                f"allow_unverified: true) to fetch them, or missing_images: skip to leave them out")
        counts["missing_images"] = len(missing)
        gone = {id(s) for s in missing}
        samples = [s for s in samples if id(s) not in gone]
        if not samples:
            raise TaxonbenchError(f"{path}: no usable rows")
        return samples, counts

    def _fetch_images(self, samples: list[Sample]) -> None:
        images = self.files / IMAGES_DIR
        todo = [s for s in samples if not (images / image_name(s.url)).is_file()]
        if todo and not self.options.allow_unverified:
            raise TaxonbenchError(f"{self.where}.download: CrypticBio images come from their URLs with no "
                                  f"checksum; set allow_unverified: true to fetch {len(todo)} image(s)")
        for s in todo:
            source = download.Source(s.url, None, image_name(s.url))
            try:
                download.fetch(source, images, progress=False, allow_unverified=True)
            except TaxonbenchError:
                if self.options.missing_images == "stop":
                    raise
                (images / f"{source.filename}.part").unlink(missing_ok=True)

    def shot_samples(self) -> list[Sample]:
        return self._loaded[0]

    def metadata_file(self) -> Path:
        return self.files / self.metadata_path

    def rows(self, split: str) -> Iterator[Rows]:
        chosen, leaf_of = self.split_samples(split)
        name = Path(self.metadata_path).name
        kind = "row" if name.endswith(".parquet") else "line"
        images = self.files / IMAGES_DIR
        yield from row_batches(chosen, lambda s: {
            "id": s.id,
            "image": ImageFile(str(images / image_name(s.url)), f"{name} {kind} {s.line}"),
            "leaf": leaf_of[s.path],
            "source_path": s.url,
            "cryptic_group": s.group,
        })

    def info(self) -> dict:
        _, counts = self._loaded
        return {**super().info(), "metadata": self.metadata_path, **counts,
                "format_note": "column names are best knowledge (see datasets/crypticbio.py)"}
