"""Slow, readable reference structures shared by the metric tests.

``Tree`` is a plain-Python view of a taxonomy (parents, children, n(v),
info(v), paths, LCA by walking), written independently of
``taxonbench.taxonomy`` so the brute-force metrics do not share its code;
``taxonomies`` draws random trees for hypothesis; ``make_scores`` makes
consistent or inconsistent node scores.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from taxonbench.taxonomy import Taxonomy


class Tree:
    """Plain-Python view of a taxonomy: parents, children, n(v), info(v)."""

    def __init__(self, tax: Taxonomy) -> None:
        self.parent = [int(x) for x in tax.parent]
        self.n = len(self.parent)
        self.children = [[] for _ in range(self.n)]
        for v in range(1, self.n):
            self.children[self.parent[v]].append(v)
        self.leaf_nodes = [int(x) for x in tax.leaf_nodes]
        n_leaves = len(self.leaf_nodes)
        self.n_under = [0] * self.n
        for leaf in self.leaf_nodes:
            v = leaf
            while v != -1:
                self.n_under[v] += 1
                v = self.parent[v]
        self.info = [math.log2(n_leaves / self.n_under[v]) for v in range(self.n)]
        # Predictable nodes: non-trivial ones (not exactly one child), and the root.
        self.candidates = [v for v in range(self.n) if v == 0 or len(self.children[v]) != 1]

    def path(self, v: int) -> list[int]:
        out = []
        while v != -1:
            out.append(v)
            v = self.parent[v]
        return out[::-1]

    def lca(self, a: int, b: int) -> int:
        on_a = set(self.path(a))
        for v in reversed(self.path(b)):
            if v in on_a:
                return v
        raise AssertionError("the root is on every path")


@st.composite
def taxonomies(draw, max_nodes: int = 16) -> Taxonomy:
    """Random rooted trees with shuffled node ids and shuffled leaf indices."""
    n = draw(st.integers(1, max_nodes))
    parents = [-1] + [draw(st.integers(0, i - 1)) for i in range(1, n)]
    relabel = [0] + list(draw(st.permutations(range(1, n))))
    parent = [0] * n
    for i in range(n):
        parent[relabel[i]] = -1 if i == 0 else relabel[parents[i]]
    has_child = set(parent)
    childless = [v for v in range(n) if v not in has_child]
    leaf_nodes = draw(st.permutations(childless))
    return Taxonomy.from_parents(parent, leaf_nodes=leaf_nodes)


def make_scores(tax: Taxonomy, n: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    """Node scores of one of several kinds (consistent or not, with or without ties)."""
    L, m = tax.n_leaves, tax.n_nodes
    if kind == "softmax":  # consistent: leaf softmax summed up the tree
        logits = rng.normal(0.0, rng.uniform(0.5, 4.0), size=(n, L))
        leaf = np.exp(logits - logits.max(axis=1, keepdims=True))
        leaf /= leaf.sum(axis=1, keepdims=True)
        return np.asarray(leaf @ tax.leaf_ancestor_matrix, dtype=np.float32)
    if kind == "eighths":  # consistent with exact ties: 8 units of mass spread on leaves
        leaf = rng.multinomial(8, np.ones(L) / L, size=n) / 8.0
        return np.asarray(leaf @ tax.leaf_ancestor_matrix, dtype=np.float32)
    if kind == "sigmoid":  # inconsistent: independent per-node sigmoids
        return (1.0 / (1.0 + np.exp(-rng.normal(0.0, 2.0, size=(n, m))))).astype(np.float32)
    if kind == "grid":  # inconsistent with many exact ties, incl. 0.5 and grid thresholds
        return (rng.integers(0, 9, size=(n, m)) / 8.0).astype(np.float32)
    raise ValueError(kind)


SCORE_KINDS = ["softmax", "eighths", "sigmoid", "grid"]
