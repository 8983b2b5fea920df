"""Parquet image shards: writing, reading, and a torch ``Dataset`` over them.

Contract (docs/design.md §3): ``<dir>/<split>-NNNNN.parquet`` with columns ``id``
(string), ``image`` (binary: an encoded PNG/JPEG, already at the stored size)
and ``leaf`` (int32 leaf index), optional extra columns. Beside them
``taxonomy.parquet`` and ``manifest.json``; the manifest is written last, so a
directory without one is incomplete.

A dataset is prepared into a temporary sibling directory and swapped in whole
(:func:`prepared_directory`): a killed ``prepare`` never damages shards that
were already there.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image, UnidentifiedImageError

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path, write_json_atomic

MANIFEST = "manifest.json"
TAXONOMY = "taxonomy.parquet"
SHARD_SCHEMA = pa.schema([("id", pa.string()), ("image", pa.binary()), ("leaf", pa.int32())])


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:05d}.parquet"


class ShardWriter:
    """Writes rows of one split into numbered shards of at most ``rows_per_shard`` rows.

    Each shard is written to a temporary name and renamed when complete.
    """

    def __init__(self, directory: str | os.PathLike, split: str, rows_per_shard: int = 4096) -> None:
        if rows_per_shard < 1:
            raise TaxonbenchError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
        self.directory = Path(directory)
        self.split = split
        self.rows_per_shard = rows_per_shard
        self.files: list[str] = []
        self.n_rows = 0
        self._buffer: dict[str, list] = {}

    def add(self, rows: Mapping[str, Sequence[Any]]) -> None:
        """Append a batch of rows given as columns (``id``, ``image``, ``leaf``, extras)."""
        missing = [c for c in SHARD_SCHEMA.names if c not in rows]
        if missing:
            raise TaxonbenchError(f"shard rows lack column(s) {missing}")
        lengths = {len(v) for v in rows.values()}
        if len(lengths) != 1:
            raise TaxonbenchError(f"shard row columns have different lengths: {sorted(lengths)}")
        for key, values in rows.items():
            self._buffer.setdefault(key, []).extend(values)
        while len(self._buffer["id"]) >= self.rows_per_shard:
            self._flush(self.rows_per_shard)

    def close(self) -> list[str]:
        """Write the last partial shard; return the shard file names."""
        if self._buffer.get("id"):
            self._flush(len(self._buffer["id"]))
        return self.files

    def _flush(self, n: int) -> None:
        head = {k: v[:n] for k, v in self._buffer.items()}
        self._buffer = {k: v[n:] for k, v in self._buffer.items()}
        arrays = {
            "id": pa.array([str(x) for x in head.pop("id")], pa.string()),
            "image": pa.array(head.pop("image"), pa.binary()),
            "leaf": pa.array(np.asarray(head.pop("leaf"), dtype=np.int32)),
        }
        arrays.update({k: pa.array(v) for k, v in head.items()})
        name = shard_name(self.split, len(self.files))
        with atomic_path(self.directory / name) as tmp:
            pq.write_table(pa.table(arrays), tmp, compression="zstd")
        self.files.append(name)
        self.n_rows += n


@contextlib.contextmanager
def prepared_directory(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory; on success it replaces ``final`` whole.

    On failure the temporary directory is removed and ``final`` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".{final.name}.tmp"
    old = final.parent / f".{final.name}.old"
    for stale in (tmp, old):
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def file_records(directory: str | os.PathLike) -> dict[str, dict]:
    """File name -> ``{"bytes", "sha256"}`` of every file in a prepared directory (the manifest's ``files``)."""
    from taxonbench.recovery import sha256_of

    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_of(p)}
            for p in sorted(Path(directory).iterdir()) if p.is_file() and p.name != MANIFEST}


def write_manifest(directory: str | os.PathLike, manifest: dict) -> None:
    write_json_atomic(Path(directory) / MANIFEST, manifest)


def read_manifest(directory: str | os.PathLike) -> dict:
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.exists():
        raise TaxonbenchError(
            f"{directory}: no {MANIFEST}; the dataset was not prepared or its preparation "
            f"did not finish (run `taxonbench prepare` for it)"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TaxonbenchError(f"{path}: corrupt manifest ({exc})") from None


def split_files(directory: str | os.PathLike, split: str) -> list[Path]:
    """The shard files of ``split``, as listed in the manifest, checked to exist."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    splits = manifest.get("splits", {})
    if split not in splits:
        raise TaxonbenchError(
            f"{directory}: no split {split!r}; the manifest lists {', '.join(splits) or 'none'}"
        )
    files = [directory / f for f in splits[split]["files"]]
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        from taxonbench.recovery import rebuild_command

        raise TaxonbenchError(f"missing shard(s) listed in {directory / MANIFEST}: {', '.join(missing)}; prepare the "
                              f"dataset again: `{rebuild_command(directory / MANIFEST)}`")
    return files


def read_shard(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pa.Table:
    """Read one shard, with a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.exists():
        raise TaxonbenchError(f"shard not found: {path}")
    try:
        table = pq.read_table(path, columns=list(columns) if columns else None)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ... for damaged files
        raise TaxonbenchError(_damaged_shard(path, exc)) from None
    missing = [c for c in (columns or SHARD_SCHEMA.names) if c not in table.column_names]
    if missing:
        raise TaxonbenchError(f"{path}: missing column(s) {missing}")
    return table


def _damaged_shard(path: Path, exc: Exception) -> str:
    from taxonbench.recovery import rebuild_command

    return (f"{path}: corrupt or unreadable shard ({exc}); prepare the dataset again: "
            f"`{rebuild_command(path.parent / MANIFEST)}` (or a plain `snakemake`, which notices a shard of "
            "another size than its manifest recorded)")


def _num_rows(path: Path) -> int:
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:
        raise TaxonbenchError(_damaged_shard(path, exc)) from None


def read_split_column(directory: str | os.PathLike, split: str, column: str) -> np.ndarray:
    """One column of a whole split, concatenated in shard order (e.g. ``leaf`` or ``id``)."""
    parts = [read_shard(f, [column]).column(column).to_numpy(zero_copy_only=False)
             for f in split_files(directory, split)]
    return np.concatenate(parts) if parts else np.array([])


def decode_image(data: bytes, where: str) -> Image.Image:
    """Decode an encoded image to RGB; a corrupt one names where it came from."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise TaxonbenchError(f"{where}: corrupt image ({exc})") from None


def encode_png(array: np.ndarray) -> bytes:
    """Encode an ``H x W x 3`` uint8 array as PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


@dataclass
class _ShardIndex:
    files: list[Path]
    offsets: np.ndarray  # start row of each shard, plus the total at the end


class ShardDataset:
    """A map-style torch ``Dataset`` over the shards of one split.

    Items are ``(image_tensor, leaf)``; ``transform`` maps a PIL image to a
    tensor (torchvision transforms). Shards are read lazily and the most
    recently used ``cache_shards`` of them are kept per worker process, so a
    split larger than memory can be read when the sampler visits shards in
    blocks.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str,
        transform: Callable[[Image.Image], Any] | None = None,
        cache_shards: int = 4,
    ) -> None:
        self.directory = Path(directory)
        self.split = split
        self.transform = transform
        self.cache_shards = cache_shards
        files = split_files(self.directory, split)
        counts = [_num_rows(f) for f in files]
        self.index = _ShardIndex(files, np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
        self._cache: OrderedDict[int, tuple[list, np.ndarray, list]] = OrderedDict()

    def __len__(self) -> int:
        return int(self.index.offsets[-1])

    @property
    def leaves(self) -> np.ndarray:
        return read_split_column(self.directory, self.split, "leaf").astype(np.int64)

    @property
    def ids(self) -> np.ndarray:
        return read_split_column(self.directory, self.split, "id")

    def _shard(self, k: int) -> tuple[list, np.ndarray, list]:
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        table = read_shard(self.index.files[k], ["id", "image", "leaf"])
        entry = (
            table.column("image").to_pylist(),
            table.column("leaf").to_numpy().astype(np.int64),
            table.column("id").to_pylist(),
        )
        self._cache[k] = entry
        while len(self._cache) > self.cache_shards:
            self._cache.popitem(last=False)
        return entry

    def __getitem__(self, i: int):
        if not 0 <= i < len(self):
            raise IndexError(i)
        k = int(np.searchsorted(self.index.offsets, i, side="right") - 1)
        images, leaves, ids = self._shard(k)
        row = i - int(self.index.offsets[k])
        img = decode_image(images[row], f"{self.index.files[k]} row {row} (id {ids[row]})")
        return (self.transform(img) if self.transform else img), int(leaves[row])


def write_split(
    directory: str | os.PathLike,
    split: str,
    batches: Iterable[Mapping[str, Sequence[Any]]],
    rows_per_shard: int,
) -> dict:
    """Write all batches of one split; return its manifest entry."""
    writer = ShardWriter(directory, split, rows_per_shard)
    for batch in batches:
        writer.add(batch)
    files = writer.close()
    return {"files": files, "rows": writer.n_rows}
