"""Metric families computed from node scores, one streaming pass over row chunks.

Input contract (DESIGN.md §3, METRICS.md): for every sample a score ``p[i, v]``
for every taxonomy node ``v`` (root included) and the index of its true leaf
(``0..L-1``, see :attr:`Taxonomy.leaf_nodes`). The evaluate step reads node
scores from Parquet in row batches, so every family accumulates sufficient
statistics chunk by chunk and never holds all ``N x n`` scores at once.

A family is a class registered in :data:`METRIC_FAMILIES` with

* ``__init__(self, taxonomy)``,
* ``update(self, node_prob, gt_leaf)`` -- one validated block of rows
  (``node_prob`` ``(b, n_nodes)`` finite floats, ``gt_leaf`` ``(b,)`` int64 in range),
* ``result(self) -> (metrics: dict[str, float], curve: dict[str, np.ndarray])``.

Registered families: ``operating_curve`` (METRICS.md §1) and
``mistake_severity`` (METRICS.md §5).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

#: Rows are handed to the families in blocks of about this many scores
#: (``rows x n_nodes``), which bounds every family's temporaries (~32 MB of
#: float32) whatever chunk size the caller uses.
BLOCK_ELEMENTS = 1 << 23


class MetricFamily(Protocol):
    """What :func:`evaluate` needs from a registered family."""

    def __init__(self, taxonomy: Taxonomy) -> None: ...

    def update(self, node_prob: np.ndarray, gt_leaf: np.ndarray) -> None: ...

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]: ...




def check_chunk(
    node_prob: Any, gt_leaf: Any, taxonomy: Taxonomy, *, row_offset: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Validate one ``(node_prob, gt_leaf)`` chunk; return them as arrays.

    ``node_prob`` keeps its floating dtype (integers become float64);
    ``gt_leaf`` becomes int64. Row numbers in messages are global
    (``row_offset`` + the row in the chunk). The finiteness of the scores is
    checked by :func:`check_finite`, block by block, to bound memory.
    """
    p = np.asarray(node_prob)
    g = np.asarray(gt_leaf)
    if p.ndim != 2:
        raise TaxonbenchError(
            f"node_prob must be a 2-D array (samples x nodes); got shape {p.shape}"
        )
    if p.dtype.kind in "biu":
        p = p.astype(np.float64)
    elif p.dtype.kind != "f":
        raise TaxonbenchError(f"node_prob must hold floating-point scores; got dtype {p.dtype}")
    if p.shape[1] != taxonomy.n_nodes:
        raise TaxonbenchError(
            f"node_prob has {p.shape[1]} columns but the taxonomy has {taxonomy.n_nodes} "
            f"nodes (one score per node, root included)"
        )
    if g.ndim != 1:
        raise TaxonbenchError(f"gt_leaf must be a 1-D array of leaf indices; got shape {g.shape}")
    if len(g) != len(p):
        raise TaxonbenchError(
            f"shape mismatch: node_prob has {len(p)} rows but gt_leaf has {len(g)} entries"
        )
    if g.dtype.kind not in "iu":
        raise TaxonbenchError(f"gt_leaf must hold integer leaf indices; got dtype {g.dtype}")
    g = g.astype(np.int64)
    bad = np.flatnonzero((g < 0) | (g >= taxonomy.n_leaves))
    if len(bad):
        raise TaxonbenchError(
            f"gt_leaf out of range at row {row_offset + int(bad[0])}: leaf index {int(g[bad[0]])} "
            f"(valid 0..{taxonomy.n_leaves - 1}; {len(bad)} bad row(s) in this chunk)"
        )
    return p, g


def check_finite(node_prob: np.ndarray, *, row_offset: int = 0) -> None:
    """Raise :class:`TaxonbenchError` naming the first row with a NaN or infinite score."""
    finite = np.isfinite(node_prob)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        raise TaxonbenchError(
            f"node_prob has non-finite scores (NaN or inf): first at row "
            f"{row_offset + int(rows[0])}, node {int(cols[0])} "
            f"(value {node_prob[rows[0], cols[0]]}); {len(np.unique(rows))} bad row(s) in this block"
        )


def _blocks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = max(1, BLOCK_ELEMENTS // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def evaluate(
    chunks: Iterable[tuple[Any, Any]],
    taxonomy: Taxonomy,
    families: Iterable[str] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Compute metric families over ``(node_prob, gt_leaf)`` chunks in one streaming pass.

    ``node_prob``: ``(batch, n_nodes)`` scores (root included, float32 in the
    pipeline); ``gt_leaf``: ``(batch,)`` leaf indices ``0..L-1``. ``families``
    names registered families (default: all). Returns the merged metrics
    (fractions, plus ``n_samples``) and the merged curves (for the operating
    curve: ``threshold``, ``info_recall``, ``info_precision``, ``correct``).
    Bad input raises :class:`TaxonbenchError`.
    """
    if families is None:
        names = METRIC_FAMILIES.names()
    elif isinstance(families, str):
        names = [families]
    else:
        names = list(families)
    instances = [METRIC_FAMILIES.get(name)(taxonomy) for name in names]
    n_samples = 0
    for chunk_no, chunk in enumerate(chunks):
        try:
            node_prob, gt_leaf = chunk
        except (TypeError, ValueError):
            raise TaxonbenchError(
                f"chunk {chunk_no} must be a (node_prob, gt_leaf) pair; got {type(chunk).__name__}"
            ) from None
        p, g = check_chunk(node_prob, gt_leaf, taxonomy, row_offset=n_samples)
        for rows in _blocks(len(p), p.shape[1]):
            block = p[rows]
            check_finite(block, row_offset=n_samples + rows.start)
            for family in instances:
                family.update(block, g[rows])
        n_samples += len(p)
    if n_samples == 0:
        raise TaxonbenchError("no samples to evaluate: every chunk was empty")

    metrics: dict[str, float] = {"n_samples": n_samples}
    curve: dict[str, np.ndarray] = {}
    for name, family in zip(names, instances):
        fam_metrics, fam_curve = family.result()
        for key, value in fam_metrics.items():
            if key in metrics and key != "n_samples":
                raise ValueError(f"metric {key!r} produced by two families (last: {name})")
            metrics[key] = value
        for key, value in fam_curve.items():
            if key in curve:
                raise ValueError(f"curve column {key!r} produced by two families (last: {name})")
            curve[key] = value
    return metrics, curve


__all__ = [
    "BLOCK_ELEMENTS",
    "METRIC_FAMILIES",
    "MetricFamily",
    "check_chunk",
    "check_finite",
    "evaluate",
]
