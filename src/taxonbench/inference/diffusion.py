"""Diffusion inference on the taxonomy graph (HCCF paper §3.3, Eq. 3–6).

Notation of the paper: ``n`` nodes (root and internal nodes included), the
connection matrix ``W`` with ``w_ij = 1`` iff ``i`` and ``j`` are parent and
child (symmetric, zero diagonal), and

* Eq. 3: ``W_n = D^{-1/2} W D^{-1/2}``, ``D = diag(W 1_n)``;
* Eq. 4: ``f^{t+1} = α W_n f^t + (1 − α) f^0``, ``α ∈ (0, 1)``;
* Eq. 6: ``f* = (1 − α) (I − α W_n)^{-1} f^0`` (the limit of Eq. 4).

``f^0`` is the model's own node scores (:func:`taxonbench.score_kinds.node_scores`),
so diffusion applies to every score kind. The result is a score per node, not
a probability: it is not hierarchically consistent and the root's value is
diffused like any other's.

**Solver.** ``A = I − α W_n`` is symmetric positive definite (the eigenvalues
of ``W_n`` lie in ``[−1, 1]``) and its graph is the taxonomy tree. Eliminating
nodes deepest first (every node after all its children) gives the Cholesky-type
factorisation ``A = L Δ Lᵀ`` with **no fill-in**: ``L`` is unit triangular with
one off-diagonal entry per non-root node ``v`` (in row ``parent(v)``), and
``Δ`` is diagonal. It is computed once per operator (i.e. once per taxonomy and
α) in ``O(n)``; it is the same factorisation that ``scipy.sparse.linalg.splu``
finds in that elimination order (the tests check the solutions agree). A batch
is solved as a matrix right-hand side by two sweeps over the depth levels (up:
``L z = b``; down: ``Lᵀ x = Δ^{-1} z``), each level one sparse × dense product
over all its nodes and all samples, in cache-sized blocks of samples. SuperLU's
own multi-right-hand-side solve (``splu(A).solve(B)``) gives the same numbers
but is slow for wide batches (~4 ms per sample on the 16,344-node iNat21 tree,
because each elimination step strides across all right-hand-side columns); it
is kept as :meth:`DiffusionOperator.apply_splu`, a reference.

**α.** The paper only says α ∈ (0, 1); it reports no value. The default here
is 0.5 (equal weight to the network's scores and to the neighbours); the
information-retrieval diffusion the paper cites (Zhou et al. 2003; Iscen et al.
2017) uses α = 0.99, which on a tree pulls every score towards the
degree-weighted stationary vector. Tune it on a validation split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.declare import param
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy

DEFAULT_ALPHA = 0.5


def check_alpha(alpha: object, where: str = "alpha") -> float:
    """``α`` as a float, or a :class:`TaxonbenchError` naming ``where`` unless ``0 < α < 1``."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float, np.floating, np.integer)):
        raise TaxonbenchError(f"{where}: expected a number in (0, 1), got {alpha!r}")
    value = float(alpha)
    if not 0.0 < value < 1.0:  # also refuses NaN
        raise TaxonbenchError(
            f"{where}: must lie strictly between 0 and 1 (HCCF Eq. 4); got {alpha!r}"
        )
    return value


class DiffusionOperator:
    """The HCCF diffusion map of one taxonomy and one α (Eq. 3–6), factorised once.

    Stable API (``differentiable_diffusion`` builds on it):

    ``n``, ``alpha``
        the number of nodes and α.
    ``edges``
        ``(n − 1, 2)`` int64, row ``e`` = ``(child, parent)`` with ``child = e + 1``:
        one undirected edge of ``W`` per non-root node. Per-edge weights for a
        weighted ``W`` are vectors of length ``n − 1`` in this order.
    ``W``
        ``n × n`` CSR float64, symmetric 0/1 parent–child adjacency, zero diagonal.
    ``degree``
        ``W 1_n`` (float64, length ``n``): number of children, plus one for a non-root.
    ``W_n``
        ``D^{-1/2} W D^{-1/2}`` (HCCF Eq. 3), CSR float64, symmetric.
    :meth:`normalized_adjacency`
        Eq. 3 for any non-negative per-edge weights (``None`` = ``W``).
    :meth:`system_matrix`
        ``I − α W_n`` (CSC).
    :meth:`apply`
        ``f* = (1 − α)(I − α W_n)^{-1} f^0`` (Eq. 6) for a batch, via the factorisation.
    :meth:`iterate`
        ``steps`` applications of Eq. 4 from ``f^0`` (a check of :meth:`apply`).
    :meth:`dense_matrix`
        the ``n × n`` matrix ``M = (1 − α)(I − α W_n)^{-1}`` of Eq. 6.

    Batches are row-major: ``f0`` has shape ``(B, n)`` (or ``(n,)``), one
    sample per row, columns = node ids, like ``node_prob``. ``M`` is symmetric,
    so ``apply(f0) == f0 @ M == (M @ f0.T).T``.
    """

    def __init__(self, taxonomy: Taxonomy, alpha: float = DEFAULT_ALPHA, *, block_rows: int | None = None) -> None:
        self.taxonomy = taxonomy
        self.alpha = check_alpha(alpha)
        self.n = n = taxonomy.n_nodes
        # Samples per block of the level sweeps: ~2 MB of float64 (16 rows on the iNat21 tree,
        # measured best there: larger blocks fall out of cache, smaller ones pay Python overhead).
        self.block_rows = max(1, int(block_rows)) if block_rows else int(np.clip(2**18 // n, 16, 1024))
        parent = taxonomy.parent.astype(np.int64)
        child = np.arange(1, n, dtype=np.int64)
        self.edges = np.stack([child, parent[1:]], axis=1)
        self.W = self._adjacency(np.ones(n - 1))
        self.degree = np.asarray(self.W.sum(axis=1)).ravel()
        self.W_n = self.normalized_adjacency()
        self._factorise()
        self._lu = None

    # ---------------------------------------------------------------- matrices
    def _adjacency(self, weights: np.ndarray) -> sp.csr_matrix:
        c, p = self.edges[:, 0], self.edges[:, 1]
        return sp.csr_matrix(
            (np.r_[weights, weights], (np.r_[c, p], np.r_[p, c])), shape=(self.n, self.n), dtype=np.float64
        )

    def normalized_adjacency(self, weights: np.ndarray | None = None) -> sp.csr_matrix:
        """HCCF Eq. 3, ``D^{-1/2} W D^{-1/2}`` with ``D = diag(W 1)``, for per-edge ``weights``.

        ``weights`` (length ``n − 1``, edge order of :attr:`edges`) replaces the
        0/1 entries of ``W``; ``None`` uses ``W`` itself. A node of degree 0
        (only in a one-node taxonomy) gets a zero row.
        """
        if weights is None:
            w = self.W
        else:
            weights = np.asarray(weights, dtype=np.float64)
            if weights.shape != (self.n - 1,):
                raise TaxonbenchError(
                    f"diffusion edge weights must have one entry per non-root node ({self.n - 1}); "
                    f"got shape {weights.shape}"
                )
            w = self._adjacency(weights)
        deg = np.asarray(w.sum(axis=1)).ravel()
        with np.errstate(divide="ignore"):
            inv_sqrt = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0)
        d = sp.diags(inv_sqrt)
        return (d @ w @ d).tocsr()

    def system_matrix(self) -> sp.csc_matrix:
        """``I − α W_n`` (CSC): the matrix inverted in HCCF Eq. 6."""
        return (sp.identity(self.n, format="csc") - self.alpha * self.W_n).tocsc()

    # ------------------------------------------------------------ factorising
    def _factorise(self) -> None:
        """``I − α W_n = L Δ Lᵀ``, eliminating deepest nodes first (no fill-in on a tree).

        Eliminating child ``c`` of ``p`` subtracts ``a_c² / δ_c`` from ``δ_p``,
        where ``a_c = −α / sqrt(deg_c deg_p)`` is the off-diagonal entry of
        edge ``(c, p)``; ``L[p, c] = a_c / δ_c``. Nodes are renumbered by depth
        (stable), so every depth level is a contiguous block of rows; the
        entries of ``L`` between level ``d`` and level ``d − 1`` form one
        sparse matrix per level, used by both sweeps.
        """
        tax, n = self.taxonomy, self.n
        parent = tax.parent.astype(np.int64)
        depth = tax.depth
        order = np.argsort(depth, kind="stable")  # order[i] = node at position i
        pos = np.empty(n, dtype=np.int64)
        pos[order] = np.arange(n)
        identity = bool(np.array_equal(order, np.arange(n)))
        self._order = None if identity else order
        self._pos = None if identity else pos

        off = np.zeros(n)  # a_v of the edge (v, parent v), by node id; 0 for the root
        if n > 1:
            off[1:] = -self.alpha / np.sqrt(self.degree[1:] * self.degree[parent[1:]])
        delta = np.ones(n)
        for d in range(tax.max_depth, 0, -1):
            nodes = np.flatnonzero(depth == d)
            delta -= np.bincount(parent[nodes], weights=off[nodes] ** 2 / delta[nodes], minlength=n)
        if not np.all(delta > 0):  # cannot happen for 0 < α < 1 (A is positive definite)
            raise TaxonbenchError(f"diffusion: I − αW_n is not positive definite for α={self.alpha}")
        self.pivots = delta  # Δ, by node id
        mult = np.zeros(n)  # L[parent v, v], by node id
        mult[1:] = off[1:] / delta[1:]

        bounds = np.searchsorted(depth[order], np.arange(tax.max_depth + 2))
        self._levels = []  # (lo, hi, plo, phi, up (n_{d-1} x n_d), down (n_d x n_{d-1}))
        for d in range(1, tax.max_depth + 1):
            lo, hi, plo, phi = int(bounds[d]), int(bounds[d + 1]), int(bounds[d - 1]), int(bounds[d])
            nodes = order[lo:hi]
            rows, cols = pos[parent[nodes]] - plo, np.arange(hi - lo)
            up = sp.csr_matrix((mult[nodes], (rows, cols)), shape=(phi - plo, hi - lo))
            self._levels.append((lo, hi, plo, phi, up, up.T.tocsr()))
        self._scale = ((1.0 - self.alpha) / delta[order])[:, None]  # (1 − α) Δ^{-1}, by position

    # --------------------------------------------------------------- applying
    def apply(self, f0: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """HCCF Eq. 6, ``f* = (1 − α)(I − α W_n)^{-1} f^0``, for a batch ``(B, n)`` or one ``(n,)``.

        Exact (to rounding) via the ``L Δ Lᵀ`` factorisation; no loop over
        samples: blocks of ``block_rows`` samples (default: about 2 MB of
        float64 per block, at least 16 rows) go through the level sweeps as
        one matrix each. Computed in float64; ``out`` (shape ``(B, n)``, any float
        dtype) receives the result when given.
        """
        f0 = np.asarray(f0)
        single = f0.ndim == 1
        f0 = f0[None, :] if single else f0
        if f0.ndim != 2 or f0.shape[1] != self.n:
            raise TaxonbenchError(
                f"diffusion: scores must have {self.n} columns (one per node); got shape {f0.shape}"
            )
        b_total = f0.shape[0]
        if out is None:
            out = np.empty((b_total, self.n), dtype=np.float64)
        elif out.shape != (b_total, self.n):
            raise TaxonbenchError(f"diffusion: out has shape {out.shape}; expected {(b_total, self.n)}")
        rows = min(self.block_rows, max(b_total, 1))
        work = np.empty(self.n * rows)  # node-major (n, rows): a node's samples contiguous
        back = np.empty(self.n * rows) if self._order is not None else None
        for s in range(0, b_total, rows):
            b = min(rows, b_total - s)
            y = work[: self.n * b].reshape(self.n, b)
            block = f0[s : s + b].T
            if self._order is None:
                np.copyto(y, block)
            else:
                np.take(block, self._order, axis=0, out=y)
            self._solve_inplace(y)
            if self._order is not None:
                y = np.take(y, self._pos, axis=0, out=back[: self.n * b].reshape(self.n, b))
            np.copyto(out[s : s + b], y.T)
        return out[0] if single else out

    def _solve_inplace(self, y: np.ndarray) -> None:
        """``y ← (1 − α) A^{-1} y`` for node-major ``y`` ``(n, b)``, rows in depth order."""
        for lo, hi, plo, phi, up, _down in reversed(self._levels):  # L z = y, deepest level first
            y[plo:phi] -= up @ y[lo:hi]
        y *= self._scale  # (1 − α) Δ^{-1} z
        for lo, hi, plo, phi, _up, down in self._levels:  # Lᵀ x = ·, from the root down
            y[lo:hi] -= down @ y[plo:phi]

    def apply_splu(self, f0: np.ndarray) -> np.ndarray:
        """Eq. 6 through SuperLU (``scipy.sparse.linalg.splu``), the batch as one right-hand side.

        A reference for :meth:`apply` (same result to rounding); slow for wide
        batches on large trees (see the module docstring). The factorisation
        is computed on first use and kept.
        """
        if self._lu is None:
            self._lu = spla.splu(self.system_matrix())
        f0 = np.asarray(f0, dtype=np.float64)
        single = f0.ndim == 1
        rhs = f0[:, None] if single else f0.T
        x = (1.0 - self.alpha) * self._lu.solve(np.asfortranarray(rhs))
        return x[:, 0] if single else x.T

    def iterate(self, f0: np.ndarray, steps: int) -> np.ndarray:
        """HCCF Eq. 4 run ``steps`` times from ``f^0``: ``f^{t+1} = α W_n f^t + (1 − α) f^0``.

        Converges to :meth:`apply` geometrically (rate ≤ α). Rows are samples.
        """
        f0 = np.asarray(f0, dtype=np.float64)
        single = f0.ndim == 1
        f0t = f0[:, None] if single else f0.T  # node-major (n, B)
        f = f0t.copy()
        for _ in range(int(steps)):
            f = self.alpha * (self.W_n @ f) + (1.0 - self.alpha) * f0t
        return f[:, 0] if single else f.T

    def dense_matrix(self) -> np.ndarray:
        """``M = (1 − α)(I − α W_n)^{-1}``, dense ``n × n`` float64, symmetric (HCCF Eq. 6).

        ``apply(f0) == f0 @ M``. Built by solving against the identity with
        the factorisation, a slab of rows at a time (``O(n²)`` work; the result
        itself is about 2 GB for the 16,344-node iNat21 tree, with little
        beyond it), not by a dense ``O(n³)`` inverse; the tests compare it with
        ``numpy.linalg.inv``. Symmetrised exactly (rounding leaves ~1e-16
        asymmetry).
        """
        n = self.n
        m = np.empty((n, n))
        slab = max(self.block_rows, 256)
        for a in range(0, n, slab):
            b = min(a + slab, n)
            eye = np.zeros((b - a, n))
            eye[np.arange(b - a), np.arange(a, b)] = 1.0
            self.apply(eye, out=m[a:b])
        for a in range(0, n, slab):  # rows/columns a:b against everything from a on
            b = min(a + slab, n)
            avg = (m[a:b, a:] + m[a:, a:b].T) * 0.5
            m[a:b, a:] = avg
            m[a:, a:b] = avg.T
        return m


@dataclass(frozen=True)
class DiffusionOptions:
    alpha: float = param(DEFAULT_ALPHA, gt=0.0, lt=1.0, doc="HCCF Eq. 4; the paper gives no value")


@INFERENCE.register("diffusion")
class Diffusion(Inference):
    """HCCF diffusion (Eq. 6) of the model's own node scores; options: ``alpha`` (default 0.5)."""

    requires = "native"
    Options = DiffusionOptions

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        super().__init__(taxonomy, options)
        opts = self.parse_options(self.options)
        self.alpha = check_alpha(opts.alpha, f"{self.where()}.alpha")
        self.operator = DiffusionOperator(taxonomy, self.alpha)  # factorised once, reused per batch

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        f0 = node_scores(scores, self.taxonomy, self.sidecar)
        return self.operator.apply(f0, out=np.empty(f0.shape, dtype=np.float32))


__all__ = ["DiffusionOperator", "Diffusion", "DiffusionOptions", "check_alpha", "DEFAULT_ALPHA"]
