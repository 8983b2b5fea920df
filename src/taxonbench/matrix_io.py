"""Parquet files holding one fixed-size float32 vector per sample.

Used for logits (``results/logits/...``: ``id``, ``leaf``, ``scores``) and node
scores (``results/scores/...``: ``id``, ``leaf``, ``node_prob``), docs/design.md §3.
Files are written through a temporary name and read back in row batches, so a
split of any size streams through a fixed amount of memory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path, read_json, write_json_atomic


def _table(ids: np.ndarray, leaf: np.ndarray, column: str, matrix: np.ndarray) -> pa.Table:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    values = pa.array(matrix.reshape(-1))
    return pa.table(
        {
            "id": pa.array([str(i) for i in ids], pa.string()),
            "leaf": pa.array(np.asarray(leaf, dtype=np.int32)),
            column: pa.FixedSizeListArray.from_arrays(values, matrix.shape[1]),
        }
    )


def write_matrix(
    path: str | os.PathLike,
    column: str,
    batches: Iterable[tuple[np.ndarray, np.ndarray, np.ndarray]],
    sidecar: dict | None = None,
) -> int:
    """Write ``(ids, leaf, matrix)`` batches to ``path``; the sidecar goes to ``path`` with ``.json``.

    Returns the number of rows. Nothing is visible at ``path`` until the file is complete.
    """
    path = Path(path)
    n_rows = 0
    with atomic_path(path) as tmp:
        writer = None
        try:
            for ids, leaf, matrix in batches:
                table = _table(ids, leaf, column, matrix)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                writer.write_table(table)
                n_rows += len(ids)
        finally:
            if writer is not None:
                writer.close()
        if writer is None:
            raise TaxonbenchError(f"{path}: nothing to write (no rows)")
    if sidecar is not None:
        write_json_atomic(sidecar_path(path), {**sidecar, "n_samples": n_rows})
    return n_rows


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def read_sidecar(path: str | os.PathLike) -> dict:
    return read_json(sidecar_path(path), f"{{path}}: sidecar missing (it says what the scores in {path} are)",
                     "{path}: corrupt sidecar ({exc})")


def iter_matrix(
    path: str | os.PathLike, column: str, batch_rows: int = 8192
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Yield ``(ids, leaf, matrix)`` row batches of a file written by :func:`write_matrix`."""
    path = Path(path)
    if not path.exists():
        raise TaxonbenchError(f"file not found: {path}")
    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:
        from taxonbench.recovery import rebuild_hint

        raise TaxonbenchError(f"{path}: corrupt or truncated Parquet file ({exc}){rebuild_hint(path)}") from None
    if column not in pf.schema_arrow.names:
        raise TaxonbenchError(f"{path}: no column {column!r}; has {pf.schema_arrow.names}")
    for batch in pf.iter_batches(batch_size=batch_rows, columns=["id", "leaf", column]):
        col = batch.column(column)
        width = col.type.list_size
        matrix = col.values.to_numpy(zero_copy_only=False).reshape(-1, width)
        yield (
            batch.column("id").to_numpy(zero_copy_only=False),
            batch.column("leaf").to_numpy().astype(np.int64),
            matrix,
        )
