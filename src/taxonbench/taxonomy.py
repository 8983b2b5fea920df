"""The taxonomy tree: nodes, parents, depths, ranks, names, leaves.

This module is the only home of hierarchy semantics. Contract (docs/design.md §3),
``taxonomy.parquet``:

=========  ======  =====================================================
column     type    meaning
=========  ======  =====================================================
node       int32   0..n-1, root = 0
parent     int32   -1 for the root
depth      int8    root 0
rank       string  e.g. kingdom ... species
name       string  the taxon's own name
leaf       int32   leaf index 0..L-1; null for internal nodes
=========  ======  =====================================================

Derived quantities follow docs/metrics.md: ``n(v)`` is the number of leaves under
``v`` (a leaf counts itself), ``info(v) = log2(L / n(v))``, a *trivial* node is
an internal node with exactly one child, and ``LCA(a, b)`` is the deepest node
on both root paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import scipy.sparse as sp

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path

RANKS_7 = ("kingdom", "phylum", "class", "order", "family", "genus", "species")
"""The seven Linnaean ranks below the root used by iNat and the synthetic data."""

_FIXED_RANKS_KEY = b"taxonbench.fixed_ranks"
_SCHEMA = pa.schema(
    [
        ("node", pa.int32()),
        ("parent", pa.int32()),
        ("depth", pa.int8()),
        ("rank", pa.string()),
        ("name", pa.string()),
        ("leaf", pa.int32()),
    ]
)


def _first(ids: np.ndarray, k: int = 10) -> str:
    """A short printable list of node ids for error messages."""
    ids = [int(i) for i in np.asarray(ids).ravel()]
    more = f" (and {len(ids) - k} more)" if len(ids) > k else ""
    return ", ".join(map(str, ids[:k])) + more


@dataclass(eq=False)
class Taxonomy:
    """A rooted tree over nodes ``0..n-1`` (root 0) with ranks, names and leaf indices.

    Build one with :meth:`from_parents` or :meth:`read`; both validate. Heavy
    derived structures (ancestor tables, sparse matrices) are computed lazily
    and cached.
    """

    parent: np.ndarray
    name: np.ndarray
    rank: np.ndarray
    leaf_nodes: np.ndarray
    fixed_ranks: bool = False
    source: str = field(default="<memory>", repr=False)

    # ------------------------------------------------------------------ build
    @classmethod
    def from_parents(
        cls,
        parent: Sequence[int] | np.ndarray,
        *,
        name: Sequence[str] | None = None,
        rank: Sequence[str] | None = None,
        node: Sequence[int] | None = None,
        leaf_nodes: Sequence[int] | None = None,
        fixed_ranks: bool = False,
        source: str = "<memory>",
    ) -> Taxonomy:
        """Validate and build a taxonomy from a parent array.

        ``node`` gives the id of each row (default ``0..n-1`` in order); rows are
        reordered by id. ``leaf_nodes[i]`` is the node of leaf index ``i``
        (default: childless nodes in increasing id). ``fixed_ranks`` demands that
        every leaf sits at the same depth (datasets with a label at every rank).
        """
        parent = np.asarray(parent, dtype=np.int64)
        n = len(parent)
        if n == 0:
            raise TaxonbenchError(f"{source}: the taxonomy has no nodes")
        if node is not None:
            node = np.asarray(node, dtype=np.int64)
            uniq, counts = np.unique(node, return_counts=True)
            if (counts > 1).any():
                raise TaxonbenchError(
                    f"{source}: duplicate node ids: {_first(uniq[counts > 1])}"
                )
            if node.min() != 0 or node.max() != n - 1:
                raise TaxonbenchError(
                    f"{source}: node ids must be 0..{n - 1}; got ids from "
                    f"{node.min()} to {node.max()}"
                )
            order = np.argsort(node)
            parent = parent[order]
            name = None if name is None else np.asarray(name, dtype=object)[order]
            rank = None if rank is None else np.asarray(rank, dtype=object)[order]
        name = np.array([f"node{i}" for i in range(n)] if name is None else list(name), dtype=object)
        rank = np.array([""] * n if rank is None else list(rank), dtype=object)
        if len(name) != n or len(rank) != n:
            raise TaxonbenchError(f"{source}: parent, name and rank have different lengths")

        roots = np.flatnonzero(parent == -1)
        if len(roots) != 1:
            what = "no root" if len(roots) == 0 else f"{len(roots)} roots (nodes {_first(roots)})"
            raise TaxonbenchError(f"{source}: a taxonomy needs exactly one root (parent -1); found {what}")
        if roots[0] != 0:
            raise TaxonbenchError(f"{source}: the root must be node 0; it is node {roots[0]}")
        unknown = np.flatnonzero((parent != -1) & ((parent < 0) | (parent >= n)))
        if len(unknown):
            raise TaxonbenchError(
                f"{source}: unknown parent for nodes {_first(unknown)} "
                f"(parents {_first(parent[unknown])}; valid ids are 0..{n - 1})"
            )
        self_loops = np.flatnonzero(parent == np.arange(n))
        if len(self_loops):
            raise TaxonbenchError(f"{source}: cycle: nodes {_first(self_loops)} are their own parent")
        depth = _depths_from_root(parent)
        unreachable = np.flatnonzero(depth < 0)
        if len(unreachable):
            raise TaxonbenchError(
                f"{source}: cycle: nodes {_first(unreachable)} never reach the root"
            )

        has_child = np.zeros(n, dtype=bool)
        has_child[parent[parent >= 0]] = True
        childless = np.flatnonzero(~has_child)
        if leaf_nodes is None:
            leaf_nodes = childless
        leaf_nodes = np.asarray(leaf_nodes, dtype=np.int64)
        if not np.array_equal(np.sort(leaf_nodes), childless):
            bad = np.setxor1d(leaf_nodes, childless)
            raise TaxonbenchError(
                f"{source}: the leaf column must index exactly the childless nodes; "
                f"mismatch at nodes {_first(bad)}"
            )
        if fixed_ranks:
            leaf_depths = depth[leaf_nodes]
            if leaf_depths.min() != leaf_depths.max():
                common = np.bincount(leaf_depths).argmax()
                off = leaf_nodes[leaf_depths != common]
                raise TaxonbenchError(
                    f"{source}: the dataset declares fixed ranks but leaves sit at different "
                    f"depths: most at depth {common}, nodes {_first(off)} elsewhere"
                )
        return cls(
            parent=parent.astype(np.int32),
            name=name,
            rank=rank,
            leaf_nodes=leaf_nodes.astype(np.int64),
            fixed_ranks=fixed_ranks,
            source=source,
        )

    @classmethod
    def from_paths(
        cls,
        leaf_paths: Sequence[Sequence[str]],
        ranks: Sequence[str],
        *,
        source: str = "<memory>",
    ) -> Taxonomy:
        """A tree whose taxa are identified by their whole path of names from the top rank down.

        ``leaf_paths[i]`` is the path of leaf ``i`` (e.g. ``("Animalia", ...,
        "Corvus", "corax")``); every proper prefix of a leaf path is an internal
        node, so two taxa with the same name under different parents are
        different nodes. ``ranks[d - 1]`` is the rank of the nodes at depth ``d``
        (``ranks`` at least as long as the longest path). Internal nodes are
        numbered depth by depth, each depth in the lexicographic order of the
        paths; the leaves follow in the given order. When every path has the
        same length the taxonomy has fixed ranks. A duplicate leaf path, or a
        leaf path that is also the prefix of another, is an error naming it.
        """
        paths = [tuple(str(x) for x in p) for p in leaf_paths]
        if not paths:
            raise TaxonbenchError(f"{source}: no leaves")
        longest = max(len(p) for p in paths)
        if min(len(p) for p in paths) < 1 or len(ranks) < longest:
            raise TaxonbenchError(f"{source}: leaf paths of 1 to {len(ranks)} names expected "
                                  f"(ranks {', '.join(ranks)}); found lengths up to {longest}")
        seen: set[tuple[str, ...]] = set()
        for p in paths:
            if p in seen:
                raise TaxonbenchError(f"{source}: leaf {' / '.join(p)} appears twice")
            seen.add(p)
        prefixes = {p[:d] for p in paths for d in range(1, len(p))}
        both = sorted(seen & prefixes)
        if both:
            raise TaxonbenchError(f"{source}: {' / '.join(both[0])} is a leaf and also has children")
        node_of: dict[tuple[str, ...], int] = {(): 0}
        parent, name, rank = [-1], ["root"], ["root"]
        for path in sorted(prefixes, key=lambda q: (len(q), q)):
            node_of[path] = len(parent)
            parent.append(node_of[path[:-1]])
            name.append(path[-1])
            rank.append(ranks[len(path) - 1])
        for path in paths:  # childless nodes in increasing id = leaf order
            parent.append(node_of[path[:-1]])
            name.append(path[-1])
            rank.append(ranks[len(path) - 1])
        fixed = len({len(p) for p in paths}) == 1
        return cls.from_parents(parent, name=name, rank=rank, fixed_ranks=fixed, source=source)

    # ------------------------------------------------------------------- I/O
    @classmethod
    def read(cls, path: str | os.PathLike) -> Taxonomy:
        """Read and validate ``taxonomy.parquet``."""
        path = Path(path)
        if not path.exists():
            raise TaxonbenchError(f"taxonomy file not found: {path}")
        try:
            table = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for corrupt files
            raise TaxonbenchError(f"{path}: not a readable Parquet file ({exc})") from None
        missing = [c for c in _SCHEMA.names if c not in table.column_names]
        if missing:
            raise TaxonbenchError(f"{path}: missing column(s) {missing}; expected {_SCHEMA.names}")
        cols = {c: table.column(c).to_numpy(zero_copy_only=False) for c in ("node", "parent")}
        leaf = table.column("leaf").to_pylist()
        node = cols["node"].astype(np.int64)
        leaf_of = {int(nd): int(lf) for nd, lf in zip(node, leaf) if lf is not None}
        n_leaves = len(leaf_of)
        leaf_nodes = np.full(n_leaves, -1, dtype=np.int64)
        for nd, lf in leaf_of.items():
            if not 0 <= lf < n_leaves or leaf_nodes[lf] != -1:
                raise TaxonbenchError(
                    f"{path}: leaf indices must be 0..{n_leaves - 1}, each once; node {nd} has {lf}"
                )
            leaf_nodes[lf] = nd
        meta = table.schema.metadata or {}
        tax = cls.from_parents(
            cols["parent"],
            name=table.column("name").to_pylist(),
            rank=table.column("rank").to_pylist(),
            node=node,
            leaf_nodes=leaf_nodes,
            fixed_ranks=meta.get(_FIXED_RANKS_KEY) == b"true",
            source=str(path),
        )
        stored_depth = table.column("depth").to_numpy().astype(np.int64)[np.argsort(node)]
        bad = np.flatnonzero(stored_depth != tax.depth)
        if len(bad):
            raise TaxonbenchError(f"{path}: stored depth disagrees with the tree at nodes {_first(bad)}")
        return tax

    def write(self, path: str | os.PathLike) -> None:
        """Write ``taxonomy.parquet`` atomically."""
        leaf = [None] * self.n_nodes
        for i, nd in enumerate(self.leaf_nodes):
            leaf[nd] = i
        table = pa.table(
            {
                "node": pa.array(np.arange(self.n_nodes, dtype=np.int32)),
                "parent": pa.array(self.parent.astype(np.int32)),
                "depth": pa.array(self.depth.astype(np.int8)),
                "rank": pa.array([str(r) for r in self.rank], pa.string()),
                "name": pa.array([str(s) for s in self.name], pa.string()),
                "leaf": pa.array(leaf, pa.int32()),
            },
            schema=_SCHEMA.with_metadata(
                {_FIXED_RANKS_KEY: b"true" if self.fixed_ranks else b"false"}
            ),
        )
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)

    # ------------------------------------------------------------- structure
    @property
    def n_nodes(self) -> int:
        return len(self.parent)

    @property
    def n_leaves(self) -> int:
        return len(self.leaf_nodes)

    @cached_property
    def depth(self) -> np.ndarray:
        """Depth of every node (root 0), int64."""
        return _depths_from_root(self.parent.astype(np.int64))

    @property
    def max_depth(self) -> int:
        return int(self.depth.max())

    @cached_property
    def leaf_index(self) -> np.ndarray:
        """Leaf index of every node, -1 for internal nodes."""
        out = np.full(self.n_nodes, -1, dtype=np.int64)
        out[self.leaf_nodes] = np.arange(self.n_leaves)
        return out

    @cached_property
    def n_children(self) -> np.ndarray:
        return np.bincount(self.parent[1:], minlength=self.n_nodes).astype(np.int64)

    @cached_property
    def is_trivial(self) -> np.ndarray:
        """True for internal nodes with exactly one child (docs/metrics.md: *trivial*)."""
        return self.n_children == 1

    @cached_property
    def ancestor_table(self) -> np.ndarray:
        """``A[v, d]`` = the ancestor of ``v`` at depth ``d`` (``v`` itself at its depth), -1 below.

        Shape ``(n, max_depth + 1)``, int64.
        """
        n, dmax = self.n_nodes, self.max_depth
        table = np.full((n, dmax + 1), -1, dtype=np.int64)
        cur = np.arange(n)
        cur_depth = self.depth.copy()
        parent = self.parent.astype(np.int64)
        for _ in range(dmax + 1):
            alive = cur >= 0
            table[np.flatnonzero(alive), cur_depth[alive]] = cur[alive]
            cur = np.where(alive, parent[np.maximum(cur, 0)], -1)
            cur_depth = cur_depth - 1
        return table

    @cached_property
    def ancestor_matrix(self) -> sp.csr_matrix:
        """Sparse ``n x n`` 0/1 matrix, ``M[v, u] = 1`` iff ``u`` is on path(v) (self included)."""
        rows, cols = np.nonzero(self.ancestor_table >= 0)
        return sp.csr_matrix(
            (np.ones(len(rows), dtype=np.float32), (rows, self.ancestor_table[rows, cols])),
            shape=(self.n_nodes, self.n_nodes),
        )

    @property
    def descendant_matrix(self) -> sp.csr_matrix:
        """Sparse ``n x n``, ``M[u, v] = 1`` iff ``v`` is in the subtree of ``u`` (self included)."""
        return self.ancestor_matrix.T.tocsr()

    @cached_property
    def leaf_ancestor_matrix(self) -> sp.csr_matrix:
        """Sparse ``L x n``: row ``i`` marks path(leaf i). ``p_nodes = p_leaves @ M``."""
        return self.ancestor_matrix[self.leaf_nodes].tocsr()

    @cached_property
    def n_leaves_under(self) -> np.ndarray:
        """``n(v)``: the number of leaves in the subtree of ``v`` (a leaf counts itself)."""
        return np.asarray(self.leaf_ancestor_matrix.sum(axis=0)).ravel().astype(np.int64)

    def node_counts(self, leaf_counts: np.ndarray) -> np.ndarray:
        """``n_v = Σ_{leaves u under v} c_u``: per-leaf counts (e.g. training images) summed up the tree, root included."""
        return np.asarray(self.leaf_ancestor_matrix.T @ np.asarray(leaf_counts, dtype=np.float64)).ravel()

    @cached_property
    def info(self) -> np.ndarray:
        """``info(v) = log2(L / n(v))``: 0 at the root, ``log2 L`` at a leaf (docs/metrics.md §1)."""
        return np.log2(self.n_leaves / self.n_leaves_under)

    @cached_property
    def children(self) -> list[np.ndarray]:
        """Children of every node, in increasing id."""
        order = np.argsort(self.parent[1:], kind="stable") + 1
        bounds = np.searchsorted(self.parent[order], np.arange(self.n_nodes + 1))
        return [order[bounds[v] : bounds[v + 1]] for v in range(self.n_nodes)]

    def nodes_at_depth(self, d: int) -> np.ndarray:
        return np.flatnonzero(self.depth == d)

    @cached_property
    def rank_names(self) -> list[str]:
        """The rank label of each depth 1..max_depth (the most common rank string there)."""
        out = []
        for d in range(1, self.max_depth + 1):
            values, counts = np.unique(self.rank[self.depth == d].astype(str), return_counts=True)
            out.append(str(values[counts.argmax()]))
        return out

    # ---------------------------------------------------------------- queries
    def lca(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Lowest common ancestor of ``a[i]`` and ``b[i]``, vectorised over the batch."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        ta, tb = self.ancestor_table[a], self.ancestor_table[b]
        same = (ta == tb) & (ta >= 0)
        lca_depth = np.cumprod(same, axis=1).sum(axis=1) - 1  # root always agrees
        return ta[np.arange(len(a)), lca_depth]

    def is_ancestor(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """True where ``u[i]`` is on path(``v[i]``) (a node is its own ancestor)."""
        u = np.asarray(u, dtype=np.int64)
        v = np.asarray(v, dtype=np.int64)
        du = self.depth[u]
        return self.ancestor_table[v, du] == u

    def path_names(self, v: int, sep: str = " ") -> str:
        """The cumulative-prefix name of ``v``: names from depth 1 down to ``v``."""
        nodes = [u for u in self.ancestor_table[v] if u > 0]
        return sep.join(str(self.name[u]) for u in nodes)


def _depths_from_root(parent: np.ndarray) -> np.ndarray:
    """Depth by breadth-first sweeps from the root; -1 for nodes that never reach it."""
    n = len(parent)
    depth = np.full(n, -1, dtype=np.int64)
    frontier = parent == -1
    depth[frontier] = 0
    d = 0
    while frontier.any() and d <= n:
        d += 1
        frontier = np.isin(parent, np.flatnonzero(frontier)) & (depth < 0)
        depth[frontier] = d
    return depth
