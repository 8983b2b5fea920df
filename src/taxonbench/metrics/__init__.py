"""Metric families computed from node scores, one streaming pass over row chunks.

Input contract (docs/design.md §3, docs/metrics.md): for every sample a score ``p[i, v]``
for every taxonomy node ``v`` (root included) and the index of its true leaf
(``0..L-1``, see :attr:`Taxonomy.leaf_nodes`). The evaluate step reads node
scores from Parquet in row batches, so every family accumulates sufficient
statistics chunk by chunk and never holds all ``N x n`` scores at once.

A family is a class registered in :data:`METRIC_FAMILIES` that declares

* ``reads`` -- the score kind it evaluates (``node_prob``, ``node_set`` or
  ``embeddings``, :mod:`taxonbench.score_kinds`); the evaluate step computes
  every family that reads the kind an inference produces;
* ``splits`` -- the split roles it reads: ``("eval",)``; ``("tune", "eval")``
  for values tuned on a validation split (``experiments.tune_split``) and
  scored on the evaluation split; ``("gallery", "eval")`` for retrieval of the
  evaluation split's queries in a gallery (``experiments.gallery_split``);
* ``units`` -- metric name -> unit (``fraction`` in [0, 1], ``percent``,
  ``count``, ``real``), written beside the values in the metrics JSON;
* ``headline`` -- a :class:`Headline`: the leaderboard group the family's
  columns go to and the few metrics shown there (:mod:`taxonbench.leaderboard`);

and implements

* ``__init__(self, taxonomy)``,
* ``update_<role>(self, scores, gt_leaf)`` -- for every role but ``eval``
  (``update_tune``, ``update_gallery``): one block of that role's split, all of
  it before the first ``update``,
* ``update(self, scores, gt_leaf)`` -- one validated block of rows
  (``scores`` ``(b, dim)`` finite floats, ``gt_leaf`` ``(b,)`` int64 in range),
* ``result(self) -> (metrics: dict[str, float], curve: dict[str, np.ndarray])``.

Registered families: ``operating_curve`` (docs/metrics.md §1),
``mistake_severity`` (§5), ``hit_at_k`` (§2, the true leaf among the k best),
``level_accuracy`` (§4, per-level and top-down accuracy, nLCA, hierarchical consistency),
and for set predictions ``set_prf`` (§2, micro/macro precision, recall, F1
overall and per level) and ``set_size`` (§2, the number of labels predicted
per image).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

#: Rows are handed to the families in blocks of about this many scores
#: (``rows x n_nodes``), which bounds every family's temporaries (~32 MB of
#: float32) whatever chunk size the caller uses.
BLOCK_ELEMENTS = 1 << 23
#: split roles a family may do without (it then uses the evaluation split itself)
OPTIONAL_ROLES = ("gallery",)


@dataclass(frozen=True)
class Headline:
    """A family's leaderboard columns: its group, metric -> column label, and which way is better.

    ``lower_is_better``: metrics where smaller wins (a mistake's severity); ``unranked``: metrics with
    no better direction (labels predicted per image). Every other column: larger wins.
    """

    group: str
    columns: dict[str, str]
    lower_is_better: frozenset[str] = field(default_factory=frozenset)
    unranked: frozenset[str] = field(default_factory=frozenset)

    def better(self, metric: str) -> str | None:
        """``"higher"``, ``"lower"`` or ``None`` (unranked)."""
        if metric in self.unranked:
            return None
        return "lower" if metric in self.lower_is_better else "higher"


class MetricFamily(Protocol):
    """What :func:`evaluate` needs from a registered family."""

    reads: str
    splits: tuple[str, ...]
    units: dict[str, str]
    headline: Headline

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


def families_reading(kind: str) -> list[str]:
    """The registered families that evaluate scores of ``kind``."""
    return [name for name, cls in METRIC_FAMILIES.items() if cls.reads == kind]


def units_of(families: Iterable[str]) -> dict[str, str]:
    """Metric name -> unit for the families named (and ``n_samples``, a count). A name may hold the
    placeholder ``{level}`` for per-level metrics (``set_micro_f1_L{level}``): :func:`unit_of` resolves it."""
    units = {"n_samples": "count"}
    for name in families:
        units.update(METRIC_FAMILIES.get(name).units)
    return units


def unit_of(metric: str, units: dict[str, str]) -> str | None:
    """The unit of ``metric``: its own entry, or that of its ``{level}`` pattern (``…_L3`` -> ``…_L{level}``)."""
    if metric in units:
        return units[metric]
    return units.get(re.sub(r"_L\d+$", "_L{level}", metric))


def _stream(chunks: Iterable[tuple[Any, Any]], taxonomy: Taxonomy, kind: str,
            consumers: list[Any], what: str) -> int:
    """Validate ``(scores, gt_leaf)`` chunks and hand them, in bounded blocks, to ``consumers``; the row count."""
    node_shaped = kind != "embeddings"
    n_samples = 0
    for chunk_no, chunk in enumerate(chunks):
        try:
            scores, gt_leaf = chunk
        except (TypeError, ValueError):
            raise TaxonbenchError(
                f"{what} chunk {chunk_no} must be a (scores, gt_leaf) pair; got {type(chunk).__name__}"
            ) from None
        if node_shaped:
            p, g = check_chunk(scores, gt_leaf, taxonomy, row_offset=n_samples)
        else:
            p, g = np.asarray(scores, dtype=np.float64), np.asarray(gt_leaf, dtype=np.int64)
            if p.ndim != 2 or g.shape != (len(p),):
                raise TaxonbenchError(f"{what}: embeddings must be (samples x dim) with one leaf per row; "
                                      f"got {p.shape} and {g.shape}")
        for rows in _blocks(len(p), p.shape[1]):
            # Row-major blocks: the families gather columns row by row, which on a column-major
            # array (a sparse product's result, say) is an order of magnitude slower.
            block = np.ascontiguousarray(p[rows])
            check_finite(block, row_offset=n_samples + rows.start)
            for consume in consumers:
                consume(block, g[rows])
        n_samples += len(p)
    return n_samples


def evaluate(
    chunks: Iterable[tuple[Any, Any]],
    taxonomy: Taxonomy,
    families: Iterable[str] | None = None,
    *,
    kind: str = "node_prob",
    tune_chunks: Iterable[tuple[Any, Any]] | None = None,
    gallery_chunks: Iterable[tuple[Any, Any]] | None = None,
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Compute metric families over ``(scores, gt_leaf)`` chunks in one streaming pass.

    ``scores``: ``(batch, n_nodes)`` node scores or sets (root included,
    float32 in the pipeline), or ``(batch, dim)`` embeddings; ``gt_leaf``:
    ``(batch,)`` leaf indices ``0..L-1``. ``families`` names registered
    families (default: every family that reads ``kind``); ``tune_chunks`` is
    the tune split, read first by the families that tune on it; ``gallery_chunks``
    the gallery of retrieval families (``None``: they retrieve within the
    evaluation split, each query left out of its own ranking). Returns the
    merged metrics (plus ``n_samples``; units: :func:`units_of`) and the merged
    curves (for the operating curve: ``threshold``, ``info_recall``,
    ``info_precision``, ``correct``). Bad input raises :class:`TaxonbenchError`.
    """
    if families is None:
        names = families_reading(kind)
    elif isinstance(families, str):
        names = [families]
    else:
        names = list(families)
    if not names:
        raise TaxonbenchError(f"no metric family reads scores of kind {kind!r}")
    for name in names:
        reads = METRIC_FAMILIES.get(name).reads
        if reads != kind:
            raise TaxonbenchError(f"metric family {name!r} reads {reads!r} scores, not {kind!r}")
    instances = [METRIC_FAMILIES.get(name)(taxonomy) for name in names]
    role_chunks = {"tune": tune_chunks, "gallery": gallery_chunks}
    for role, given in role_chunks.items():
        readers = [(name, f) for name, f in zip(names, instances) if role in METRIC_FAMILIES.get(name).splits]
        if not readers:
            continue
        if given is None:
            if role in OPTIONAL_ROLES:  # e.g. no gallery: each family falls back to its own rule
                continue
            raise TaxonbenchError(f"metric family {readers[0][0]!r} tunes on a validation split: its scores are "
                                  "needed (evaluate --tune-scores)")
        if _stream(given, taxonomy, kind, [getattr(f, f"update_{role}") for _, f in readers], f"{role} split") == 0:
            raise TaxonbenchError("no samples to tune on: the tune split is empty" if role == "tune"
                                  else f"no samples in the {role} split")
    n_samples = _stream(chunks, taxonomy, kind, [f.update for f in instances], "evaluation split")
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
    "Headline",
    "METRIC_FAMILIES",
    "MetricFamily",
    "check_chunk",
    "check_finite",
    "evaluate",
    "families_reading",
    "unit_of",
    "units_of",
]
