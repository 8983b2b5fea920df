"""TreeOfLife-10M (BioCLIP's training set), read from its webdataset tar shards.

Source format (https://huggingface.co/datasets/imageomics/TreeOfLife-10M,
dataset card, *Dataset Contents*; the shards are written by
``scripts/evobio10m/make_wds.py`` of https://github.com/Imageomics/bioclip,
see ``docs/imageomics/treeoflife10m.md`` there): plain tar files named
``shard-NNNNNN.tar`` in ``train/``, ``val/`` and ``train_small/`` folders. The
members of one sample share a key (the ``treeoflife_id``, a UUID):
``<key>.jpg`` (the image, already resized to 224 x 224 by ``make_wds.py``)
and ten text members ``<key>.{com,common_name,sci,sci_com,scientific_name,
taxon,taxonTag,taxonTag_com,taxon_com,taxonomic_name}.txt``. Their formats
(``make_txt`` in ``make_wds.py``, names from ``src/imageomics/naming.py``):

- ``taxonomic_name.txt``: the non-empty ranks joined by spaces, kingdom ...
  genus capitalised and the species epithet lower-case
  (``Animalia Chordata Aves Passeriformes Corvidae Pica hudsonia``);
- ``taxonTag.txt``: ``a photo of kingdom Animalia phylum Chordata class Aves
  order Passeriformes family Corvidae genus Pica species hudsonia.``: each
  non-empty rank preceded by its rank word;
- ``common_name.txt``: the common name, else the scientific name, else the
  taxonomic name.

**Taxonomy** (:data:`RANKS_7`) is parsed from ``taxonTag.txt``, the caption
that says which rank each name has: ``taxonomic_name.txt`` silently drops the
empty ranks, so "A B C D E F g" cannot tell a missing order from a missing
family. About a fifth of TreeOfLife-10M lacks some rank (the card: 8,455,243
images with full taxonomic labels). The rule is the ``incomplete`` option:

- ``drop`` (default): a sample lacking any of the seven ranks is left out and
  counted in the manifest (``incomplete_dropped``);
- ``fill``: each missing rank is filled with the placeholder ``unknown
  <rank>`` (e.g. ``unknown order``). The tree is keyed by whole paths, so the
  placeholder is a separate node under each parent (the ``unknown order`` of
  Reptilia is not that of Insecta); a missing species gives a leaf ``unknown
  species`` under its genus. A sample with no rank at all is dropped.

Leaf ``i`` is the ``i``-th species path in lexicographic order. Species are
named by their epithet (as everywhere in taxonbench).

**Splits.** ``train``, ``val`` and ``test`` are a seeded species-stratified
split of every sample matched by the ``shards`` glob (by default the
upstream ``train/`` folder): each species' samples (in shard and member order)
are shuffled with a generator seeded by the dataset ``seed``;
``round_s(n * test_fraction)`` go to ``test``, ``round_s(n * val_fraction)``
to ``val`` and the rest to ``train``, where ``round_s`` rounds down or up with
a seeded coin weighted by the fraction (so the expected share is exact and a
species with one image is usually all in ``train``). Seed 003 trains on
TreeOfLife-10M and evaluates on other datasets (Rare Species, CrypticBio,
iNat21); the held-out ``val``/``test`` here are for model selection inside
taxonbench's one-dataset pipeline.

**Reading.** The shards are streamed (``tarfile`` mode ``r|*``, so gzip'd
shards work too): one pass builds the index (captions only) and each split
streams the shards again for its images. ``max_shards`` keeps the first N
shards of the sorted glob and ``limit`` stops after N kept samples (quick
subsets). A key with captions but no ``.jpg`` (or a ``.jpg`` without
``taxonTag.txt``), a key appearing in two shards, or an unparsable caption
is an error naming the shard and the key; a truncated shard is an error naming
it. Images are :class:`~taxonbench.datasets.images.ImageBytes` with ``where``
``<shard>!<key>.jpg``; extra columns ``source_path`` (the same) and
``common_name``.

**Download.** The shards are not published as such (the Hugging Face repo holds
the EOL images and the metadata; iNat21 and BIOSCAN-1M must be fetched from
their own sites), so nothing is fetched: :meth:`TreeOfLife10M.manual_note`
says how to build them.
"""

from __future__ import annotations

import glob
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from taxonbench import download
from taxonbench.registries import DATASETS
from taxonbench.datasets.base import ROWS_PER_BATCH, FileDatasetAdapter, FileOptions, Rows
from taxonbench.datasets.images import ImageBytes
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import RANKS_7, Taxonomy

SPLITS = ("train", "val", "test")
INCOMPLETE_RULES = ("drop", "fill")
IMAGE_SUFFIX = "jpg"  # webdataset member suffix of the image
TAG_SUFFIX = "taxonTag.txt"  # the rank-tagged caption the taxonomy is parsed from
COMMON_SUFFIX = "common_name.txt"  # kept as the extra column common_name
TAG_PREFIX = "a photo of "
RANK_WORDS = RANKS_7  # the rank words of taxonTag.txt: kingdom phylum class order family genus species


def placeholder(rank: str) -> str:
    """The name that ``incomplete: fill`` gives a missing rank."""
    return f"unknown {rank}"


def complete_path(names: list[str | None], rule: str) -> tuple[str, ...] | None:
    """A 7-rank path from per-rank names (``None`` = missing) under ``rule``; ``None`` = drop it."""
    if all(n for n in names):
        return tuple(names)  # type: ignore[arg-type]
    if rule == "drop" or not any(n for n in names):
        return None
    return tuple(n if n else placeholder(rank) for n, rank in zip(names, RANKS_7))


def parse_tagged(text: str) -> list[str | None]:
    """``[kingdom, ..., species]`` (``None`` where absent) from a ``taxonTag.txt`` caption.

    Rank words must appear in rank order, each at most once; the name after a
    rank word runs to the next (later) rank word, so multi-word names (``sp.
    nov``, hybrids ``a x b``) are kept whole. Raises ``ValueError`` when the
    caption does not have that form.
    """
    body = text.strip()
    if not body.startswith(TAG_PREFIX) or not body.endswith("."):
        raise ValueError(f"expected {TAG_PREFIX!r}...'.', got {text!r}")
    tokens = body[len(TAG_PREFIX):-1].split()
    names: list[str | None] = [None] * len(RANK_WORDS)
    current = -1
    words: list[str] = []
    for tok in tokens:
        later = RANK_WORDS.index(tok) if tok in RANK_WORDS[current + 1:] else -1
        if later > current and (current < 0 or words):
            if current >= 0:
                names[current] = " ".join(words)
            current, words = later, []
        elif current < 0:
            raise ValueError(f"expected a rank word ({', '.join(RANK_WORDS)}) first, got {tok!r} in {text!r}")
        else:
            words.append(tok)
    if current < 0:
        raise ValueError(f"no ranks in {text!r}")
    if not words:
        raise ValueError(f"rank {RANK_WORDS[current]!r} has no name in {text!r}")
    names[current] = " ".join(words)
    return names


def split_key(member: str) -> tuple[str, str]:
    """``(key, suffix)`` of a webdataset member: the key ends at the first dot of the base name."""
    head, _, base = member.rpartition("/")
    stem, dot, suffix = base.partition(".")
    return (f"{head}/{stem}" if head else stem), (suffix if dot else "")


@dataclass(frozen=True)
class Record:
    """One indexed sample."""

    shard: int  # index into the adapter's shard list
    key: str
    species: int  # index into the species paths (before sorting)
    common: str


# ------------------------------------------------------------------ adapter
@dataclass(frozen=True)
class TreeOfLifeOptions(FileOptions):
    """The ``datasets.<name>.options`` block of a ``source: treeoflife10m`` dataset."""

    root: str = "data/raw/treeoflife10m"
    image_size: int = 224  # the shards' images are 224 x 224 already
    shards: str = "train/shard-*.tar"  # glob relative to root
    max_shards: int | None = None  # only the first N shards of the sorted glob
    limit: int | None = None  # stop indexing after N kept samples
    incomplete: str = "drop"  # "drop" or "fill" (module docstring)
    val_fraction: float = 0.05
    test_fraction: float = 0.05


@DATASETS.register("treeoflife10m")
class TreeOfLife10M(FileDatasetAdapter):
    """TreeOfLife-10M webdataset shards (see the module docstring)."""

    Options = TreeOfLifeOptions
    label = "TreeOfLife-10M"

    def validate_options(self) -> None:
        o, w = self.options, self.where
        if o.incomplete not in INCOMPLETE_RULES:
            raise TaxonbenchError(f"{w}.incomplete: expected one of {', '.join(INCOMPLETE_RULES)}, "
                                  f"got {o.incomplete!r}")
        for key in ("max_shards", "limit"):
            value = getattr(o, key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise TaxonbenchError(f"{w}.{key}: expected a positive integer or null, got {value!r}")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(o, key)
            if not 0.0 <= value < 1.0:
                raise TaxonbenchError(f"{w}.{key}: expected a fraction in [0, 1), got {value!r}")
        if o.val_fraction + o.test_fraction >= 1.0:
            raise TaxonbenchError(f"{w}: val_fraction + test_fraction must be below 1, got "
                                  f"{o.val_fraction} + {o.test_fraction}")
        if not o.shards or Path(o.shards).is_absolute() or ".." in Path(o.shards).parts:
            raise TaxonbenchError(f"{w}.shards: expected a glob relative to root, got {o.shards!r}")

    def required(self) -> list[str]:
        return []

    def manual_note(self) -> str:
        return ("TreeOfLife-10M's webdataset shards are built, not downloaded: fetch the EOL images and metadata "
                "with `huggingface-cli download imageomics/TreeOfLife-10M --repo-type dataset --local-dir <dir>`, "
                "add iNat21 and BIOSCAN-1M, and run make_wds.py as in docs/imageomics/treeoflife10m.md of "
                "github.com/Imageomics/bioclip; then place (or link) the resulting train/shard-NNNNNN.tar under "
                f"{self.root}")

    @cached_property
    def shard_paths(self) -> list[Path]:
        root = self.files
        paths = sorted(Path(p) for p in glob.glob(str(root / self.options.shards)) if Path(p).is_file())
        if not paths:
            raise TaxonbenchError(f"{self.where}.shards: no file matches {root / self.options.shards}; "
                                  f"{self.manual_note()}")
        return paths[: self.options.max_shards] if self.options.max_shards else paths

    def _shard_name(self, i: int) -> str:
        return self.shard_paths[i].relative_to(self.files).as_posix()

    def _members(self, i: int, read: set[str]) -> Iterator[tuple[str, str, bytes | None]]:
        """``(key, suffix, data)`` of every member of shard ``i``; data only for suffixes in ``read``."""
        path = self.shard_paths[i]
        try:
            with tarfile.open(path, "r|*") as tar:
                for member in tar:
                    if not member.isfile():
                        continue
                    key, suffix = split_key(member.name)
                    data = None
                    if suffix in read:
                        f = tar.extractfile(member)
                        data = f.read() if f is not None else b""
                    yield key, suffix, data
                download.check_tar_complete(tar, path)
        except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
            raise TaxonbenchError(f"{path}: corrupt or truncated shard ({type(exc).__name__}: {exc})") from None

    # ------------------------------------------------------------- index
    @cached_property
    def _index(self) -> tuple[list[tuple[str, ...]], list[Record], dict]:
        """(species paths in first-seen order, kept records in shard order, counts)."""
        species: dict[tuple[str, ...], int] = {}
        records: list[Record] = []
        seen: dict[str, int] = {}
        counts = {"samples": 0, "incomplete": 0, "incomplete_dropped": 0}
        limit = self.options.limit
        for i in range(len(self.shard_paths)):
            name = self._shard_name(i)
            images: set[str] = set()
            tags: dict[str, str] = {}
            commons: dict[str, str] = {}
            order: list[str] = []
            local: set[str] = set()
            for key, suffix, data in self._members(i, {TAG_SUFFIX, COMMON_SUFFIX}):
                first = seen.setdefault(key, i)
                if first != i:
                    raise TaxonbenchError(f"{name}: key {key!r} also appears in {self._shard_name(first)}")
                if key not in local:
                    local.add(key)
                    order.append(key)
                if suffix == IMAGE_SUFFIX:
                    images.add(key)
                elif suffix == TAG_SUFFIX:
                    tags[key] = (data or b"").decode("utf-8", "replace")
                elif suffix == COMMON_SUFFIX:
                    commons[key] = (data or b"").decode("utf-8", "replace").strip()
            for key in order:
                if key in tags and key not in images:
                    raise TaxonbenchError(f"{name}: key {key!r} has a {TAG_SUFFIX} caption but no .{IMAGE_SUFFIX} image")
                if key in images and key not in tags:
                    raise TaxonbenchError(f"{name}: key {key!r} has a .{IMAGE_SUFFIX} image but no {TAG_SUFFIX} caption")
                if key not in images:
                    continue  # other members only (e.g. a stray .json): not a sample
                try:
                    names = parse_tagged(tags[key])
                except ValueError as exc:
                    raise TaxonbenchError(f"{name}: key {key!r}: cannot read {key}.{TAG_SUFFIX}: {exc}") from None
                counts["samples"] += 1
                if not all(names):
                    counts["incomplete"] += 1
                path = complete_path(names, self.options.incomplete)
                if path is None:
                    counts["incomplete_dropped"] += 1
                    continue
                records.append(Record(i, key, species.setdefault(path, len(species)), commons.get(key, "")))
                if limit and len(records) >= limit:
                    break
            if limit and len(records) >= limit:
                break
        if not records:
            raise TaxonbenchError(f"{self.files / self.options.shards}: no usable samples "
                                  f"({counts['samples']} read, {counts['incomplete_dropped']} dropped as incomplete)")
        return list(species), records, counts

    @cached_property
    def _leaf_of(self) -> np.ndarray:
        """Leaf index of each species id (leaves in sorted path order)."""
        paths, _, _ = self._index
        order = sorted(range(len(paths)), key=lambda s: paths[s])
        leaf = np.empty(len(paths), np.int64)
        leaf[order] = np.arange(len(paths))
        return leaf

    @cached_property
    def _taxonomy(self) -> Taxonomy:
        paths, _, _ = self._index
        return Taxonomy.from_paths(sorted(paths), RANKS_7, source=str(self.files / self.options.shards))

    def taxonomy(self) -> Taxonomy:
        return self._taxonomy

    def splits(self) -> list[str]:
        return list(SPLITS)

    @cached_property
    def _split_of(self) -> dict[str, np.ndarray]:
        """Record indices per split (in shard order)."""
        _, records, _ = self._index
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, zlib.crc32(b"treeoflife10m-split")]))
        by_species: dict[int, list[int]] = {}
        for r, rec in enumerate(records):
            by_species.setdefault(rec.species, []).append(r)
        out: dict[str, list[int]] = {s: [] for s in SPLITS}
        tf, vf = self.options.test_fraction, self.options.val_fraction
        for leaf_species in sorted(by_species, key=lambda s: self._leaf_of[s]):
            group = by_species[leaf_species]
            n = len(group)
            perm = rng.permutation(n)
            n_test = int(np.floor(n * tf + rng.random()))
            n_val = min(int(np.floor(n * vf + rng.random())), n - n_test)
            out["test"] += [group[j] for j in perm[:n_test]]
            out["val"] += [group[j] for j in perm[n_test:n_test + n_val]]
            out["train"] += [group[j] for j in perm[n_test + n_val:]]
        return {s: np.sort(np.asarray(v, np.int64)) for s, v in out.items()}

    def records(self, split: str) -> list[Record]:
        self.check_split(split)
        _, records, _ = self._index
        return [records[r] for r in self._split_of[split]]

    def rows(self, split: str) -> Iterator[Rows]:
        wanted: dict[int, dict[str, Record]] = {}
        for rec in self.records(split):
            wanted.setdefault(rec.shard, {})[rec.key] = rec
        batch: dict[str, list] = {"id": [], "image": [], "leaf": [], "source_path": [], "common_name": []}
        for i in sorted(wanted):
            name, keys = self._shard_name(i), wanted[i]
            found = 0
            for key, suffix, data in self._members(i, {IMAGE_SUFFIX}):
                rec = keys.get(key)
                if rec is None or suffix != IMAGE_SUFFIX:
                    continue
                where = f"{name}!{key}.{IMAGE_SUFFIX}"
                batch["id"].append(key)
                batch["image"].append(ImageBytes(data or b"", where))
                batch["leaf"].append(int(self._leaf_of[rec.species]))
                batch["source_path"].append(where)
                batch["common_name"].append(rec.common)
                found += 1
                if len(batch["id"]) >= ROWS_PER_BATCH:
                    yield batch
                    batch = {k: [] for k in batch}
            if found != len(keys):
                raise TaxonbenchError(f"{name}: {len(keys) - found} indexed image(s) missing on the second read "
                                      f"(did the shard change?)")
        if batch["id"]:
            yield batch

    def info(self) -> dict:
        _, records, counts = self._index
        return {
            **super().info(),
            "shards": [self._shard_name(i) for i in range(len(self.shard_paths))],
            "samples_read": counts["samples"],
            "incomplete": counts["incomplete"],
            "incomplete_dropped": counts["incomplete_dropped"],
            "incomplete_rule": self.options.incomplete,
            "split_counts": {s: int(len(self._split_of[s])) for s in SPLITS},
        }
