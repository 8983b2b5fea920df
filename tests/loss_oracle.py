"""The hand-made tree, method builder and plain-Python tree shared by the loss tests.

``Plain`` is written with lists and loops, independently of
``taxonbench.taxonomy`` and ``TreeOps``, so the oracle losses built on it do
not share code with the implementations they check.
"""

from __future__ import annotations

import torch

from taxonbench.methods import METHODS, Method
from taxonbench.models.backbones import Backbone, Preprocess
from taxonbench.taxonomy import Taxonomy

# root 0 -> {1, 2}; 1 -> {3, 4}; 2 -> {5}; 5 -> {6, 7}: a ragged tree with a single-child node,
# with leaf indices in a shuffled order so that index != rank of the node id.
PARENTS = [-1, 0, 0, 1, 1, 2, 5, 5]
LEAF_NODES = [6, 3, 7, 4]
NUM_FEATURES = 5


def make_tax(parents=PARENTS, leaf_nodes=LEAF_NODES) -> Taxonomy:
    return Taxonomy.from_parents(parents, leaf_nodes=leaf_nodes)


def build(name: str, tax: Taxonomy | None = None, hparams=None) -> Method:
    torch.manual_seed(0)
    backbone = Backbone(torch.nn.Flatten(), NUM_FEATURES, Preprocess())
    return METHODS.get(name)(backbone, tax or make_tax(), hparams)


class Plain:
    """The tree as Python lists: parents, children, root paths, subtrees."""

    def __init__(self, parents, leaf_nodes):
        self.parent = list(parents)
        self.n = len(parents)
        self.children = [[] for _ in range(self.n)]
        for v in range(1, self.n):
            self.children[self.parent[v]].append(v)
        self.leaf_nodes = list(leaf_nodes)

    def path(self, v):
        """root ... v"""
        out = []
        while v != -1:
            out.append(v)
            v = self.parent[v]
        return out[::-1]

    def depth(self, v):
        return len(self.path(v)) - 1

    def subtree(self, v):
        """v and all its descendants"""
        out, stack = [], [v]
        while stack:
            u = stack.pop()
            out.append(u)
            stack.extend(self.children[u])
        return out

    def leaves_under(self, v):
        """leaf *indices* i whose node is in the subtree of v"""
        below = set(self.subtree(v))
        return [i for i, node in enumerate(self.leaf_nodes) if node in below]

    def height(self, v):
        """longest path from v down to a leaf"""
        return max(self.depth(self.leaf_nodes[i]) - self.depth(v) for i in self.leaves_under(v))

    def lca(self, u, v):
        common = [a for a in self.path(u) if a in self.path(v)]
        return common[-1]
