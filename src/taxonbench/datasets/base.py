"""The dataset adapter interface and the one ``prepare`` routine shared by all sources.

An adapter turns a source (a download, or the synthetic generator) into a
:class:`~taxonbench.taxonomy.Taxonomy` and, per split, batches of rows
``{"id": [...], "image": [encoded bytes...], "leaf": [...]}``.
:func:`prepare_dataset` writes them as shards (DESIGN.md §3).
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from taxonbench import __version__
from taxonbench.shards import TAXONOMY, prepared_directory, write_manifest, write_split
from taxonbench.taxonomy import Taxonomy

Rows = Mapping[str, Sequence[Any]]


class DatasetAdapter(abc.ABC):
    """One data source. Subclasses are registered in ``taxonbench.datasets.DATASETS``.

    ``options`` is the ``datasets.<name>.options`` block of params; the adapter
    validates it (unknown keys and wrong types are errors naming the key).
    """

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
        """Batches of rows of one split."""

    def info(self) -> dict:
        """Extra facts recorded in the manifest (image size, variant, ...)."""
        return {}


def prepare_dataset(adapter: DatasetAdapter, out_dir: str | os.PathLike, rows_per_shard: int) -> dict:
    """Write shards, ``taxonomy.parquet`` and ``manifest.json`` for ``adapter`` into ``out_dir``.

    Everything is written to a temporary directory first and swapped in whole.
    Returns the manifest.
    """
    out_dir = Path(out_dir)
    taxonomy = adapter.taxonomy()
    with prepared_directory(out_dir) as tmp:
        taxonomy.write(tmp / TAXONOMY)
        splits = {split: write_split(tmp, split, adapter.rows(split), rows_per_shard)
                  for split in adapter.splits()}
        manifest = {
            "dataset": adapter.name,
            "source": type(adapter).__name__,
            "taxonbench_version": __version__,
            "seed": adapter.seed,
            "n_nodes": taxonomy.n_nodes,
            "n_leaves": taxonomy.n_leaves,
            "splits": splits,
            **adapter.info(),
        }
        write_manifest(tmp, manifest)
    return manifest
