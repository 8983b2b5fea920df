"""The label-graph edge dataset and its negatives (Dhall's thesis §5.5 "Data splitting", after Ganea et al. 2018).

Nodes are the taxonomy's labels (every node but the root). An edge ``(u, v)``
is directed from the more general to the more specific concept: ``v`` is-a
``u``. From the tree:

* the **transitive closure** ``G_tc``: every ``(ancestor, descendant)`` pair of
  labels (ETHEC Merged: 1,974 edges);
* the **basic** edges: ``(parent(v), v)``, the tree itself (its own transitive
  reduction), always in train, since the closure cannot be recovered without
  them;
* the **non-basic** edges ``G_tc − basic``, shuffled once (``seed``): the first
  ``val_fraction`` go to val, the next ``test_fraction`` to test, the rest
  form the training pool in that order; ``train_non_basic`` of a training
  run takes the first fraction of *all* non-basic edges from the pool
  (thesis: 0, 10, 25, 50 %), so smaller training sets are nested in larger ones.

Val and test positives get fixed negatives: ``negatives / 2`` edges
``(x′, y)`` and as many ``(x, y′)`` not in ``G_tc`` (10 per positive). Training
draws its negatives on the fly the same way (:class:`NegativeSampler`).
**pick-per-level** (thesis §5.5): the k-th corrupted node of a row is drawn
from level ``1 + (k + o) mod D`` (``o`` a random offset per row), so the
corruptions do not all come from the leaf level that holds most nodes;
``uniform`` draws from all labels.

:func:`reconstruction_pairs` is the graph-reconstruction task (§6.1.1): the
basic edges are the positives; every ordered pair of distinct labels outside
``G_tc`` is a negative (pairs in ``G_tc`` but not basic are in neither set).

Torch-free; the dataset is ``edges.parquet`` + ``manifest.json`` in one directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from taxonbench.declare import build_options, param
from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path, write_json_atomic
from taxonbench.taxonomy import Taxonomy

EDGES = "edges.parquet"
MANIFEST = "manifest.json"
SPLITS = ("basic", "pool", "val", "test")
#: tries of the vectorised rejection sampler before a row's candidates are enumerated
_TRIES = 16


@dataclass(frozen=True)
class EdgeOptions:
    """How the edge dataset is split (params ``label_embeddings.edges``)."""

    val_fraction: float = param(0.05, gt=0.0, lt=0.5, doc="share of the non-basic edges held out for validation")
    test_fraction: float = param(0.05, gt=0.0, lt=0.5, doc="share of the non-basic edges held out for test")
    negatives: int = param(10, ge=2, doc="negatives per val / test positive: half (x', y), half (x, y')")
    sampling: str = param("pick_per_level", choices=("pick_per_level", "uniform"),
                          doc="corrupted nodes drawn one level after another, or from all labels")

    def __post_init__(self) -> None:
        if self.negatives % 2:
            raise TaxonbenchError(f"negatives: {self.negatives} is odd; half corrupt the parent, half the child")


def edge_options(block: dict | None) -> EdgeOptions:
    return build_options(EdgeOptions, block or {}, where="label_embeddings.edges")


# ------------------------------------------------------------------ the graph


def closure_edges(tax: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """Every ``(ancestor, descendant)`` pair of labels (the root is no label), ordered by descendant, then ancestor."""
    table = tax.ancestor_table
    child, depth = np.nonzero(table >= 0)
    ancestor = table[child, depth]
    keep = (ancestor != child) & (ancestor > 0)
    return ancestor[keep], child[keep]


def basic_edges(tax: Taxonomy) -> tuple[np.ndarray, np.ndarray]:
    """``(parent(v), v)`` for every label whose parent is a label."""
    v = np.arange(1, tax.n_nodes)
    v = v[tax.parent[v] > 0]
    return tax.parent[v].astype(np.int64), v


def in_closure(tax: Taxonomy, u: np.ndarray, v: np.ndarray, inclusive: bool = False) -> np.ndarray:
    """Whether ``(u[i], v[i])`` is an edge of ``G_tc``; ``inclusive``: ``u == v`` counts (an image's own leaf)."""
    u = np.asarray(u, dtype=np.int64)
    v = np.asarray(v, dtype=np.int64)
    return tax.is_ancestor(u, v) & (u > 0) & (inclusive | (u != v))


def reconstruction_pairs(tax: Taxonomy) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The graph-reconstruction edges (module docstring): ``(u, v, positive)`` over ordered label pairs."""
    labels = np.arange(1, tax.n_nodes)
    u, v = (a.ravel() for a in np.meshgrid(labels, labels, indexing="ij"))
    distinct = u != v
    u, v = u[distinct], v[distinct]
    positive = tax.parent[v] == u
    keep = positive | ~in_closure(tax, u, v)
    return u[keep], v[keep], positive[keep]


# ------------------------------------------------------------------ negatives


class NegativeSampler:
    """Corrupt one side of positive edges with labels that make them negatives (module docstring).

    ``children_inclusive``: the children are images, given by their leaf node
    (an image is-a its leaf and every ancestor of it), as in the joint model.
    Corruptions are always labels.
    """

    def __init__(self, tax: Taxonomy, sampling: str = "pick_per_level") -> None:
        self.tax = tax
        self.sampling = sampling
        self.levels = [tax.nodes_at_depth(d) for d in range(1, tax.max_depth + 1)]
        self.labels = np.arange(1, tax.n_nodes)

    def _draw(self, rows: int, k: int, rng: np.random.Generator) -> np.ndarray:
        if self.sampling == "uniform":
            return rng.choice(self.labels, size=(rows, k))
        depth_index = (np.arange(k)[None, :] + rng.integers(0, len(self.levels), size=(rows, 1))) % len(self.levels)
        out = np.empty((rows, k), dtype=np.int64)
        for d, nodes in enumerate(self.levels):
            where = depth_index == d
            out[where] = rng.choice(nodes, size=int(where.sum()))
        return out

    def corrupt(self, parent: np.ndarray, child: np.ndarray, k: int, rng: np.random.Generator,
                children_inclusive: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(B, k)`` replacements of the parents and ``(B, k)`` of the children: ``(x′, y)`` and ``(x, y′)``."""
        parent = np.asarray(parent, dtype=np.int64)
        child = np.asarray(child, dtype=np.int64)

        def bad_parent(x, y):  # (x', y) must be a negative: not an ancestor of y (nor y itself)
            return in_closure(self.tax, x, y, inclusive=children_inclusive) | (
                (x == y) & (not children_inclusive))

        def bad_child(x, y):  # (x, y') must be a negative: y' not a descendant of x, not x
            return in_closure(self.tax, x, y) | (x == y)

        new_parent = self._resample(np.repeat(child[:, None], k, 1), k, rng, lambda c, x: bad_parent(x, c))
        new_child = self._resample(np.repeat(parent[:, None], k, 1), k, rng, bad_child)
        return new_parent, new_child

    def _resample(self, fixed: np.ndarray, k: int, rng: np.random.Generator, bad) -> np.ndarray:
        drawn = self._draw(len(fixed), k, rng)
        for _ in range(_TRIES):
            wrong = bad(fixed, drawn)
            if not wrong.any():
                return drawn
            drawn[wrong] = self._draw(len(fixed), k, rng)[wrong]
        rows, cols = np.nonzero(bad(fixed, drawn))
        for r, c in zip(rows, cols):  # rare: enumerate the valid labels of the row
            valid = self.labels[~bad(np.full(len(self.labels), fixed[r, c]), self.labels)]
            if not len(valid):
                name = self.tax.name[fixed[r, c]]
                raise TaxonbenchError(f"label graph: no label makes a negative edge with node {fixed[r, c]} ({name!r})")
            drawn[r, c] = rng.choice(valid)
        return drawn


# ------------------------------------------------------------------ the dataset


def build_edge_table(tax: Taxonomy, opts: EdgeOptions, seed: int) -> pa.Table:
    """The edge dataset (module docstring): columns ``parent, child, split, label, order``."""
    if tax.n_nodes < 3:
        raise TaxonbenchError(f"{tax.source}: a label graph needs at least two labels")
    up, vp = closure_edges(tax)
    ub, vb = basic_edges(tax)
    non_basic = tax.parent[vp] != up
    un, vn = up[non_basic], vp[non_basic]
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(un))
    n_val = int(round(opts.val_fraction * len(un)))
    n_test = int(round(opts.test_fraction * len(un)))
    if len(un) and (n_val == 0 or n_test == 0):
        raise TaxonbenchError(f"label graph of {tax.source}: {len(un)} non-basic edges give no val or test edge "
                              f"at val_fraction {opts.val_fraction}, test_fraction {opts.test_fraction}")
    split = np.empty(len(un), dtype=object)
    split[order[:n_val]] = "val"
    split[order[n_val:n_val + n_test]] = "test"
    split[order[n_val + n_test:]] = "pool"
    rank = np.full(len(un), -1, dtype=np.int64)
    rank[order[n_val + n_test:]] = np.arange(len(un) - n_val - n_test)
    parts = [(ub, vb, np.full(len(ub), "basic", dtype=object), np.ones(len(ub)), np.full(len(ub), -1)),
             (un, vn, split, np.ones(len(un)), rank)]
    sampler = NegativeSampler(tax, opts.sampling)
    half = opts.negatives // 2
    for name in ("val", "test"):
        pos = split == name
        x, y = un[pos], vn[pos]
        new_parent, new_child = sampler.corrupt(x, y, half, rng)
        neg_u = np.concatenate([new_parent.ravel(), np.repeat(x, half)])
        neg_v = np.concatenate([np.repeat(y, half), new_child.ravel()])
        parts.append((neg_u, neg_v, np.full(len(neg_u), name, dtype=object), np.zeros(len(neg_u)),
                      np.full(len(neg_u), -1)))
    cols = [np.concatenate(c) for c in zip(*parts)]
    return pa.table({"parent": pa.array(cols[0], pa.int32()), "child": pa.array(cols[1], pa.int32()),
                     "split": pa.array(cols[2].astype(str), pa.string()), "label": pa.array(cols[3], pa.int8()),
                     "order": pa.array(cols[4], pa.int32())})


def taxonomy_digest(tax: Taxonomy) -> str:
    """A digest of the tree (parents and names): the edge dataset belongs to one taxonomy."""
    h = hashlib.sha256(np.asarray(tax.parent, dtype=np.int64).tobytes())
    h.update("\0".join(map(str, tax.name)).encode())
    return h.hexdigest()[:16]


def write_edge_dataset(tax: Taxonomy, opts: EdgeOptions, seed: int, out_dir: str | os.PathLike,
                       dataset: str) -> dict:
    """Write ``edges.parquet`` then ``manifest.json`` (last, each atomically); the manifest."""
    table = build_edge_table(tax, opts, seed)
    out = Path(out_dir)
    with atomic_path(out / EDGES) as tmp:
        pq.write_table(table, tmp)
    split, label = np.asarray(table["split"]), np.asarray(table["label"])
    counts = {s: {"positive": int(((split == s) & (label == 1)).sum()), "negative": int(((split == s) & (label == 0)).sum())}
              for s in SPLITS}
    manifest = {"dataset": dataset, "n_labels": tax.n_nodes - 1, "closure": int((label == 1).sum()),
                "non_basic": int(((label == 1) & (split != "basic")).sum()), "splits": counts,
                "options": asdict(opts), "seed": seed, "taxonomy": taxonomy_digest(tax)}
    write_json_atomic(out / MANIFEST, manifest)
    return manifest


@dataclass(frozen=True)
class EdgeDataset:
    """The edges of one label graph, read back (:func:`read_edge_dataset`)."""

    parent: np.ndarray
    child: np.ndarray
    split: np.ndarray
    label: np.ndarray
    order: np.ndarray
    manifest: dict

    @classmethod
    def from_table(cls, table: pa.Table, manifest: dict) -> EdgeDataset:
        cols = {c: table[c].to_numpy(zero_copy_only=False) for c in table.column_names}
        return cls(cols["parent"].astype(np.int64), cols["child"].astype(np.int64), cols["split"].astype(str),
                   cols["label"].astype(np.int8), cols["order"].astype(np.int64), manifest)

    def positives(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        keep = (self.split == split) & (self.label == 1)
        return self.parent[keep], self.child[keep]

    def labelled(self, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(u, v, positive)`` of a held-out split (val / test), negatives included."""
        keep = self.split == split
        return self.parent[keep], self.child[keep], self.label[keep] == 1

    def train(self, non_basic_fraction: float) -> tuple[np.ndarray, np.ndarray]:
        """The basic edges and the first ``non_basic_fraction`` of all non-basic edges from the pool."""
        n = min(int(round(non_basic_fraction * self.manifest["non_basic"])), int((self.split == "pool").sum()))
        keep = (self.split == "basic") | ((self.split == "pool") & (self.order >= 0) & (self.order < n))
        return self.parent[keep], self.child[keep]


def read_edge_dataset(edges_dir: str | os.PathLike, tax: Taxonomy | None = None) -> EdgeDataset:
    """Read ``edges.parquet`` + ``manifest.json``; with ``tax``, check that they were made from that tree."""
    d = Path(edges_dir)
    try:
        manifest = json.loads((d / MANIFEST).read_text())
        table = pq.read_table(d / EDGES)
    except FileNotFoundError as exc:
        raise TaxonbenchError(f"{d}: no label-graph edge dataset ({Path(exc.filename).name} missing; "
                              "made by `taxonbench label-edges`)") from None
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise TaxonbenchError(f"{d}: corrupt label-graph edge dataset ({exc})") from None
    missing = [c for c in ("parent", "child", "split", "label", "order") if c not in table.column_names]
    if missing:
        raise TaxonbenchError(f"{d / EDGES}: missing column(s) {missing}")
    if tax is not None and manifest.get("taxonomy") != taxonomy_digest(tax):
        raise TaxonbenchError(f"{d}: the edge dataset was made from another taxonomy than {tax.source}; "
                              "rerun `taxonbench label-edges`")
    return EdgeDataset.from_table(table, manifest)
