"""Embedding retrieval: cosine nearest neighbours, top-k accuracy and MAP@R (docs/metrics.md §3).

Query embeddings ``q_1..q_Q`` with labels ``y_i`` are ranked against gallery
embeddings ``g_1..g_G`` with labels ``z_j`` by cosine similarity

    s(i, j) = <q_i / ||q_i||, g_j / ||g_j||>

(``torch.nn.functional.normalize`` on both sides, then a matmul), highest
first. ``nn_i(r)`` is the gallery item at 1-based rank ``r`` of query i. With
``exclude_self`` (the same-set case, pytorch-metric-learning's
``ref_includes_query``: query i *is* gallery item i) item i is dropped from
query i's ranking.

Per query, ``R_i = #{j : z_j = y_i}`` (minus 1 with ``exclude_self``) is the
number of gallery matches. Queries with ``R_i = 0`` are *excluded from every
metric* -- from top-k as from MAP@R -- as pytorch-metric-learning's
``AccuracyCalculator`` leaves out its "lone" queries in ``precision_at_1``
and ``mean_average_precision_at_r``; ``n_evaluated`` counts the queries kept
(``N``) and ``n_without_match`` the others. Over the kept queries:

* top-k accuracy, for k = 1..K (K = 100 by default)::

      top_k(k) = (1/N) Σ_i [∃ r ≤ k : z_{nn_i(r)} = y_i]

  a non-decreasing curve; ``top_k(1)`` is AccuracyCalculator's
  ``precision_at_1``. For ``k`` above the gallery size (``G``, or ``G - 1``
  with ``exclude_self``) the curve stays at its value for the whole gallery.
  The hit rate over *all* queries is ``top_k(k) * n_evaluated / n_queries``.

* MAP@R (Musgrave, Belongie, Lim, "A Metric Learning Reality Check", ECCV 2020)::

      AP@R_i = (1/R_i) Σ_{r=1..R_i} P_i(r) · [z_{nn_i(r)} = y_i],
      P_i(r) = (1/r) Σ_{t ≤ r} [z_{nn_i(t)} = y_i],
      MAP@R  = (1/N) Σ_i AP@R_i

  which is AccuracyCalculator's ``mean_average_precision_at_r`` with
  ``k="max_bin_count"``.

Memory is bounded by chunking the queries: a chunk of ``c`` queries holds its
``c x G`` similarities and its ``c x k_c`` neighbours, ``k_c = max(K,
max R_i in the chunk)`` (capped at the gallery size), never the full ``Q x G``
matrix. Without an explicit ``chunk_size``, ``c`` is the largest that keeps
``c · (4 G + 96 k_max)`` bytes within ``max_chunk_bytes`` (256 MiB by
default), so a label with a huge R (``k_max`` large) shrinks the chunks
rather than growing the memory. Similarities are computed in the embeddings'
dtype (float64 stays float64, everything else becomes float32). Within one
query's selected neighbours the order is (similarity descending, gallery index
ascending); which of several exactly tied items enter at the k-th place is
``torch.topk``'s choice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

#: Default largest rank K of the top-k accuracy curve.
DEFAULT_K = 100
#: Default memory budget of one query chunk's temporaries (similarities + neighbours).
DEFAULT_CHUNK_BYTES = 256 * 2**20
#: Bytes per (query, gallery item) similarity and per (query, neighbour) kept,
#: as used to size the chunks (float32 similarity; value + index + label + masks + float64 precision).
_BYTES_PER_SIMILARITY = 4
_BYTES_PER_NEIGHBOUR = 96


@dataclass(frozen=True)
class RetrievalScores:
    """Top-k accuracy curve and MAP@R of a query set against a gallery (module docstring for the formulas).

    ``top_k_accuracy[k - 1]`` is top-k accuracy, k = 1..K. Per-query arrays
    (length ``n_queries``): ``r`` the number of gallery matches R_i,
    ``first_hit_rank`` the 0-based rank of the first match (``K`` when none
    is among the first K, -1 for an excluded query), ``average_precision_at_r``
    AP@R_i (NaN for an excluded query). The aggregates are NaN when no query
    has a gallery match.
    """

    top_k_accuracy: np.ndarray
    map_at_r: float
    n_queries: int
    n_evaluated: int
    r: np.ndarray = field(repr=False)
    first_hit_rank: np.ndarray = field(repr=False)
    average_precision_at_r: np.ndarray = field(repr=False)

    @property
    def k_max(self) -> int:
        return len(self.top_k_accuracy)

    @property
    def n_without_match(self) -> int:
        """Queries whose label has no gallery match (left out of every metric)."""
        return self.n_queries - self.n_evaluated

    @property
    def precision_at_1(self) -> float:
        return float(self.top_k_accuracy[0])

    def top_k(self, k: int) -> float:
        """Top-k accuracy for ``1 <= k <= k_max``."""
        if not 1 <= k <= self.k_max:
            raise ValueError(f"k must lie in 1..{self.k_max}, got {k}")
        return float(self.top_k_accuracy[k - 1])

    def metrics(self, ks: tuple[int, ...] = (1, 5, 10, 100)) -> dict[str, float]:
        """``{"top_<k>": ..., "map_at_r": ..., "n_evaluated": ..., "n_without_match": ...}`` (k > k_max left out)."""
        out = {f"top_{k}": self.top_k(k) for k in ks if k <= self.k_max}
        out["map_at_r"] = self.map_at_r
        out["n_evaluated"] = float(self.n_evaluated)
        out["n_without_match"] = float(self.n_without_match)
        return out


# ----------------------------------------------------------------------------- validation
def _as_embeddings(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2:
        raise ValueError(f"{name} embeddings must be 2-D (n, dim), got shape {tuple(t.shape)}")
    if t.dtype != torch.float64:
        t = t.to(torch.float32)
    bad = ~torch.isfinite(t)
    if bad.any():
        row = int(torch.nonzero(bad.any(dim=1))[0, 0])
        raise ValueError(f"{name} embeddings contain NaN or inf (first at row {row}, "
                         f"{int(bad.any(dim=1).sum())} bad row(s))")
    zero = (t == 0).all(dim=1) if t.shape[1] else torch.ones(len(t), dtype=torch.bool)
    if len(t) and zero.any():
        raise ValueError(f"{name} embeddings have a zero vector (no cosine similarity) at row "
                         f"{int(torch.nonzero(zero)[0, 0])}")
    return t


def _as_labels(y: Any, n: int, name: str) -> np.ndarray:
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
    if y.ndim != 1:
        raise ValueError(f"{name} labels must be 1-D, got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{name} labels have {len(y)} entries for {n} {name} embeddings")
    return y


def _prepare(query: Any, query_labels: Any, gallery: Any, gallery_labels: Any, exclude_self: bool | None,
             ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray, np.ndarray, bool]:
    """Validated, L2-normalised embeddings and labels coded 0..C-1 on a shared code book."""
    q = _as_embeddings(query, "query")
    if len(q) == 0:
        raise ValueError("query set is empty")
    qy = _as_labels(query_labels, len(q), "query")
    if gallery is None:
        if gallery_labels is not None:
            raise ValueError("gallery_labels given without gallery")
        g, gy = q, qy
        exclude_self = True if exclude_self is None else bool(exclude_self)
    else:
        if gallery_labels is None:
            raise ValueError("gallery given without gallery_labels")
        g = _as_embeddings(gallery, "gallery")
        gy = _as_labels(gallery_labels, len(g), "gallery")
        exclude_self = bool(exclude_self)
    if len(g) == 0:
        raise ValueError("gallery is empty")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"dimension mismatch: query embeddings have dimension {q.shape[1]}, "
                         f"gallery embeddings {g.shape[1]}")
    if g.dtype != q.dtype:
        q, g = q.to(torch.float64), g.to(torch.float64)
    # ref_includes_query: query i is gallery item i (the first Q gallery rows are the queries).
    if exclude_self and gallery is not None and (
            len(q) > len(g) or not (np.array_equal(qy, gy[: len(q)]) and torch.equal(q, g[: len(q)]))):
        raise ValueError("exclude_self needs the queries to be the first rows of the gallery "
                         "(same embeddings and labels)")
    if exclude_self and len(g) < 2:
        raise ValueError("gallery is empty once each query's own row is excluded")
    _, inverse = np.unique(np.concatenate([qy, gy]), return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    q_codes, g_codes = inverse[: len(qy)], inverse[len(qy):]
    with torch.no_grad():
        qn = torch.nn.functional.normalize(q, p=2, dim=1)
        gn = qn if gallery is None else torch.nn.functional.normalize(g, p=2, dim=1)
    return qn, gn, q_codes, g_codes, exclude_self


def _chunk_rows(n_gallery: int, k: int, chunk_size: int | None, max_chunk_bytes: int) -> int:
    if chunk_size is not None:
        if int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
        return int(chunk_size)
    per_row = _BYTES_PER_SIMILARITY * n_gallery + _BYTES_PER_NEIGHBOUR * k
    return max(1, int(max_chunk_bytes) // per_row)


# ----------------------------------------------------------------------------- neighbours
def _topk_chunk(qn: torch.Tensor, gn: torch.Tensor, rows: torch.Tensor, k: int,
                exclude_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The k most similar gallery items of the query rows ``rows``: (similarities, indices), rank order."""
    sim = qn[rows] @ gn.T
    if exclude_self:
        sim[torch.arange(len(rows)), rows] = -torch.inf
    values, index = torch.topk(sim, k, dim=1, largest=True, sorted=True)
    del sim
    # Deterministic order among the selected: similarity desc, then gallery index asc.
    by_index = torch.argsort(index, dim=1)
    index = torch.gather(index, 1, by_index)
    values = torch.gather(values, 1, by_index)
    order = torch.sort(values, dim=1, descending=True, stable=True).indices
    return torch.gather(values, 1, order), torch.gather(index, 1, order)


def iter_nearest_neighbours(query: Any, gallery: Any | None = None, k: int = DEFAULT_K, *,
                            exclude_self: bool | None = None, chunk_size: int | None = None,
                            max_chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                            ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Yield ``(start, similarities, indices)`` per chunk of queries: the ``k`` nearest gallery items by cosine.

    ``similarities`` / ``indices`` are ``(c, k)`` arrays for queries
    ``start..start+c-1``, in rank order (module docstring). ``gallery=None``
    ranks the queries among themselves (``exclude_self`` then defaults to
    True). ``k`` must not exceed the gallery size (minus 1 with ``exclude_self``).
    """
    q = _as_embeddings(query, "query")
    dummy_q = np.zeros(len(q), dtype=np.int64)
    if gallery is None:
        qn, gn, _, _, exclude_self = _prepare(q, dummy_q, None, None, exclude_self)
    else:
        g = _as_embeddings(gallery, "gallery")
        qn, gn, _, _, exclude_self = _prepare(q, dummy_q, g, np.zeros(len(g), dtype=np.int64), exclude_self)
    available = len(gn) - int(exclude_self)
    if not 1 <= k <= available:
        raise ValueError(f"k must lie in 1..{available} (the gallery size), got {k}")
    step = _chunk_rows(len(gn), k, chunk_size, max_chunk_bytes)
    with torch.no_grad():
        for start in range(0, len(qn), step):
            rows = torch.arange(start, min(len(qn), start + step))
            values, index = _topk_chunk(qn, gn, rows, k, exclude_self)
            yield start, values.numpy(), index.numpy()


def nearest_neighbours(query: Any, gallery: Any | None = None, k: int = DEFAULT_K, **kwargs: Any,
                       ) -> tuple[np.ndarray, np.ndarray]:
    """All queries' ``k`` nearest gallery items: ``(similarities (Q, k), indices (Q, k))``.

    :func:`iter_nearest_neighbours` concatenated (its keyword arguments); the
    result holds ``Q x k`` values, the chunks bound only the temporaries.
    """
    parts = list(iter_nearest_neighbours(query, gallery, k, **kwargs))
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


# ----------------------------------------------------------------------------- scores
def retrieval_scores(query: Any, query_labels: Any, gallery: Any | None = None, gallery_labels: Any | None = None,
                     *, k: int = DEFAULT_K, exclude_self: bool | None = None, chunk_size: int | None = None,
                     max_chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> RetrievalScores:
    """Top-k accuracy (k = 1..``k``) and MAP@R of ``query`` against ``gallery`` (module docstring).

    Embeddings are ``(n, dim)`` arrays or tensors (finite, no zero rows),
    labels any 1-D array of comparable values. ``gallery=None``: the queries
    are their own gallery and ``exclude_self`` defaults to True (as
    AccuracyCalculator's ``get_accuracy(query, labels)``). With a gallery,
    ``exclude_self=True`` means query i is gallery row i
    (``ref_includes_query=True``). ``chunk_size`` fixes the queries per chunk;
    by default it follows from ``max_chunk_bytes``. Raises ``ValueError`` on
    bad input, naming what is wrong.
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    k = int(k)
    qn, gn, q_codes, g_codes, exclude_self = _prepare(query, query_labels, gallery, gallery_labels, exclude_self)
    n_q, n_g = len(qn), len(gn)
    available = n_g - int(exclude_self)
    r = np.bincount(g_codes, minlength=int(max(q_codes.max(), g_codes.max())) + 1)[q_codes] - int(exclude_self)
    r = r.astype(np.int64)
    valid = np.flatnonzero(r > 0)
    first_hit = np.full(n_q, -1, dtype=np.int64)
    ap = np.full(n_q, np.nan)
    k_eff = min(k, available)
    hits_at = np.zeros(k + 1, dtype=np.int64)  # hits_at[t]: queries whose first match is at rank t (t = k: none)
    if len(valid):
        k_need_max = max(k_eff, int(r[valid].max()))
        step = _chunk_rows(n_g, k_need_max, chunk_size, max_chunk_bytes)
        g_codes_t = torch.from_numpy(g_codes)
        with torch.no_grad():
            for start in range(0, len(valid), step):
                rows_np = valid[start: start + step]
                rows = torch.from_numpy(rows_np)
                r_chunk = torch.from_numpy(r[rows_np])
                kc = max(k_eff, int(r_chunk.max()))
                _, index = _topk_chunk(qn, gn, rows, kc, exclude_self)
                match = g_codes_t[index] == torch.from_numpy(q_codes[rows_np])[:, None]
                del index
                # top-k: the rank of the first match among the first k_eff.
                head = match[:, :k_eff]
                has = head.any(dim=1)
                first = torch.where(has, head.to(torch.uint8).argmax(dim=1), torch.full_like(r_chunk, k))
                first_hit[rows_np] = first.numpy()
                hits_at += np.bincount(first.numpy(), minlength=k + 1)
                # AP@R: (1/R) Σ_{rank ≤ R} P(rank) · match(rank).
                rank = torch.arange(1, kc + 1)
                relevant = match & (rank[None, :] <= r_chunk[:, None])
                del match
                correct_so_far = torch.cumsum(relevant, dim=1, dtype=torch.int64)
                precision = correct_so_far.to(torch.float64) / rank.to(torch.float64)
                ap[rows_np] = ((precision * relevant).sum(dim=1) / r_chunk.to(torch.float64)).numpy()
        curve = np.cumsum(hits_at[:k]) / len(valid)
        map_at_r = float(ap[valid].mean())
    else:
        curve = np.full(k, np.nan)
        map_at_r = float("nan")
    return RetrievalScores(top_k_accuracy=curve.astype(np.float64), map_at_r=map_at_r, n_queries=n_q,
                           n_evaluated=len(valid), r=r, first_hit_rank=first_hit, average_precision_at_r=ap)
