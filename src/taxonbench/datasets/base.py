"""The dataset adapter interface and the one ``prepare`` routine shared by all sources.

An adapter turns a source (a download, or the synthetic generator) into a
:class:`~taxonbench.taxonomy.Taxonomy` and, per split, batches of rows
``{"id": [...], "image": [...], "leaf": [...], <extra columns>}``, where an
``image`` is finished encoded bytes or an image source
(:mod:`taxonbench.datasets.images`) that :func:`prepare_dataset` decodes,
resizes and encodes in worker processes. :func:`prepare_dataset` writes the
shards (docs/design.md §3).

Adapters of downloadable datasets derive from :class:`FileDatasetAdapter`:
typed options with ``root`` / ``download`` / ``allow_unverified`` /
``image_size``, the upstream files checked before anything is read (a missing
one names the file and says where to place it or how to fetch it), and
:meth:`FileDatasetAdapter.download` fetching the missing archives listed by
:meth:`~FileDatasetAdapter.fetches`.
"""

from __future__ import annotations

import abc
import csv
import dataclasses
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

from taxonbench import __version__, download
from taxonbench.datasets.images import CorruptImage, ImageEncoder, ImageFormat
from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path
from taxonbench.params import dataclass_from_dict
from taxonbench.shards import TAXONOMY, file_records, prepared_directory, write_manifest, write_split
from taxonbench.taxonomy import Taxonomy

Rows = Mapping[str, Sequence[Any]]
CORRUPT_POLICIES = ("stop", "skip")
CORRUPT_REPORT = "corrupt_images.csv"


ROWS_PER_BATCH = 256  # rows per batch an adapter yields


def row_batches(items: Sequence[Any], row: Callable[[Any], Mapping[str, Any]],
                size: int = ROWS_PER_BATCH) -> Iterator[Rows]:
    """``items`` as row batches of ``size``: ``row(item)`` gives one row ``{column: value}``,
    batches are ``{column: [values]}`` (the form :meth:`DatasetAdapter.rows` yields)."""
    for start in range(0, len(items), size):
        rows = [row(item) for item in items[start:start + size]]
        yield {key: [r[key] for r in rows] for key in rows[0]}


class DatasetAdapter(abc.ABC):
    """One data source. Subclasses are registered in ``taxonbench.datasets.DATASETS``.

    ``options`` is the ``datasets.<name>.options`` block of params; the adapter
    validates it (unknown keys and wrong types are errors naming the key).
    """

    label: ClassVar[str] = "dataset"  # a human name for messages, e.g. "CIFAR-100"

    def __init__(self, options: Mapping[str, Any] | None, *, name: str, seed: int) -> None:
        self.name = name
        self.seed = seed

    @abc.abstractmethod
    def taxonomy(self) -> Taxonomy:
        """The dataset's tree."""

    @abc.abstractmethod
    def splits(self) -> list[str]:
        """The split names, e.g. ``["train", "val", "test"]``."""

    @abc.abstractmethod
    def rows(self, split: str) -> Iterator[Rows]:
        """Batches of rows of one split; ``image`` holds bytes or image sources."""

    def check_split(self, split: str) -> None:
        """Stop unless ``split`` is one of :meth:`splits`; the message lists them."""
        names = self.splits()
        if split not in names:
            raise TaxonbenchError(f"{self.label} dataset {self.name!r}: no split {split!r}; "
                                  f"splits: {', '.join(names)}")

    def image_format(self) -> ImageFormat:
        """How image sources are stored (unused when ``rows`` yields encoded bytes)."""
        return ImageFormat()

    def info(self) -> dict:
        """Extra facts recorded in the manifest (image size, variant, ...)."""
        return {}

    def download(self) -> list[Path]:
        """Fetch (and unpack) the upstream files; return what was fetched."""
        raise TaxonbenchError(f"dataset {self.name!r}: source {type(self).__name__} has nothing to download")


@dataclasses.dataclass(frozen=True)
class FileOptions:
    """Options every downloadable dataset has (adapters extend this dataclass)."""

    root: str = ""  # directory holding the upstream files (each adapter sets its default)
    image_size: int = 256  # stored side: short side scaled to it, then center-cropped square
    download: bool = False  # fetch and extract missing upstream files into root
    allow_unverified: bool = False  # accept files whose authors publish no checksum (said in the manifest)


class FileDatasetAdapter(DatasetAdapter):
    """A dataset read from upstream files under ``options.root``.

    Subclasses set ``Options`` (a :class:`FileOptions` subclass), implement
    :meth:`required` (paths under root that must exist) and, when the files can
    be fetched, :meth:`fetches`; :attr:`files` is ``root`` once checked.
    """

    Options: ClassVar[type[FileOptions]] = FileOptions

    def __init__(self, options: Mapping[str, Any] | None, *, name: str, seed: int) -> None:
        super().__init__(options, name=name, seed=seed)
        self.where = f"datasets.{name}.options"
        if not (isinstance(options, Mapping) or options is None):
            raise TaxonbenchError(f"{self.where}: expected a mapping, got {options!r}")
        self.options = dataclass_from_dict(self.Options, options, where=self.where)
        if self.options.image_size is not None and self.options.image_size < 8:
            raise TaxonbenchError(f"{self.where}.image_size: expected at least 8, got {self.options.image_size}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise TaxonbenchError(f"seed: expected a non-negative integer, got {seed!r}")
        self.root = Path(self.options.root)
        self.validate_options()

    def validate_options(self) -> None:
        """Adapter-specific checks of ``self.options`` (errors name ``self.where.<key>``)."""

    @abc.abstractmethod
    def required(self) -> list[str]:
        """Paths relative to ``root`` that must exist before reading."""

    def fetches(self) -> list[download.Fetch]:
        """What :meth:`download` fetches; empty when the data cannot be downloaded automatically."""
        return []

    def manual_note(self) -> str:
        """Where to get the files when they cannot be fetched (``fetches()`` empty)."""
        return ""

    def image_format(self) -> ImageFormat:
        return ImageFormat(size=self.options.image_size)

    def _expected(self) -> str:
        fetches = self.fetches()
        how = (f", or set {self.where}.download: true to fetch "
               f"{', '.join(download.SOURCES[f.key].filename for f in fetches)}" if fetches
               else f" ({self.manual_note()})" if self.manual_note() else "")
        return f"the {self.label} files {', '.join(self.required())} under {self.root}{how}"

    def download(self) -> list[Path]:
        fetches = self.fetches()
        if not fetches:
            raise TaxonbenchError(f"{self.where}.download: the {self.label} files cannot be downloaded "
                                  f"automatically: {self.manual_note() or 'place them under ' + str(self.root)}")
        return download.fetch_missing(fetches, self.root, allow_unverified=self.options.allow_unverified)

    @cached_property
    def files(self) -> Path:
        """``root``, with every required path present (fetched first when ``download`` is on)."""
        if self.options.download:
            self.download()
        if not self.root.is_dir():
            raise TaxonbenchError(f"{self.where}.root: {self.root} does not exist; expected {self._expected()}")
        missing = [str(self.root / p) for p in self.required() if not (self.root / p).exists()]
        if missing:
            raise TaxonbenchError(f"{self.where}.root: {', '.join(missing)} not found; expected {self._expected()}")
        return self.root

    def info(self) -> dict:
        return {"image_size": self.options.image_size, "options": dataclasses.asdict(self.options)}


def _filter_corrupt(batch: Rows, images: list, split: str, policy: str, skipped: list[dict]) -> dict:
    """``batch`` with encoded images; corrupt ones stop the run or are dropped and recorded."""
    keep = []
    for i, image in enumerate(images):
        if isinstance(image, CorruptImage):
            if policy == "stop":
                raise TaxonbenchError(
                    f"{image.where}: corrupt image ({image.reason}); to skip corrupt images and list them "
                    f"in {CORRUPT_REPORT}, set on_corrupt_image: skip for this dataset"
                )
            skipped.append({"split": split, "id": str(batch["id"][i]), "where": image.where, "reason": image.reason})
        else:
            keep.append(i)
    out = {k: [v[i] for i in keep] for k, v in batch.items() if k != "image"}
    out["image"] = [images[i] for i in keep]
    return out


def _write_report(path: Path, skipped: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["split", "id", "where", "reason"])
        writer.writeheader()
        writer.writerows(skipped)


def prepare_dataset(adapter: DatasetAdapter, out_dir: str | os.PathLike, rows_per_shard: int, *,
                    workers: int = 1, on_corrupt_image: str = "stop") -> dict:
    """Write shards, ``taxonomy.parquet`` and ``manifest.json`` for ``adapter`` into ``out_dir``.

    Image sources are encoded in ``workers`` processes (the shards do not
    depend on ``workers``). A corrupt image stops the run with a message naming
    it (``on_corrupt_image: stop``) or, with ``skip``, its row is left out,
    listed in ``corrupt_images.csv`` (split, id, where, reason) and counted in
    the manifest's ``corrupt_images``; a warning goes to stderr. Everything is
    written to a temporary directory first and swapped in whole. Returns the
    manifest.
    """
    if on_corrupt_image not in CORRUPT_POLICIES:
        raise TaxonbenchError(f"datasets.{adapter.name}.on_corrupt_image: expected one of "
                              f"{', '.join(CORRUPT_POLICIES)}, got {on_corrupt_image!r}")
    out_dir = Path(out_dir)
    taxonomy = adapter.taxonomy()
    skipped: list[dict] = []
    with prepared_directory(out_dir) as tmp, ImageEncoder(adapter.image_format(), workers) as encoder:
        taxonomy.write(tmp / TAXONOMY)

        def encoded(split: str) -> Iterator[dict]:
            for batch, images in encoder.encode_batches(adapter.rows(split)):
                yield _filter_corrupt(batch, images, split, on_corrupt_image, skipped)

        splits = {split: write_split(tmp, split, encoded(split), rows_per_shard) for split in adapter.splits()}
        counts = {split: sum(1 for s in skipped if s["split"] == split) for split in splits}
        if skipped:
            _write_report(tmp / CORRUPT_REPORT, skipped)
            print(f"warning: {len(skipped)} corrupt image(s) skipped in dataset {adapter.name!r} "
                  f"(on_corrupt_image: skip); listed in {out_dir / CORRUPT_REPORT}", file=sys.stderr)
        manifest = {
            "dataset": adapter.name,
            "source": type(adapter).__name__,
            "taxonbench_version": __version__,
            "seed": adapter.seed,
            "n_nodes": taxonomy.n_nodes,
            "n_leaves": taxonomy.n_leaves,
            "splits": splits,
            "on_corrupt_image": on_corrupt_image,
            "corrupt_images": counts,
            **adapter.info(),
            # every file of the dataset with its size and SHA-256 (taxonbench verify; the Snakefile's check at start)
            "files": file_records(tmp),
        }
        write_manifest(tmp, manifest)
    return manifest
