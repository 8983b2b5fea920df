"""Hit@k (Dhall's thesis Eq. 4.6): the true label among the k best-scored labels.

``hit@k = (1/N) Σ_i [y_i ∈ top-k of image i]``, over the leaves (``hit_at_k``)
and, per level d, over the nodes at depth d with the true leaf's depth-d
ancestor as y_i (``hit_at_k_L{d}``; images whose leaf lies above depth d are
left out). ``hit_at_k_levels`` pools the levels: the share of (image, level)
pairs whose true label of that level is among the level's k best (the thesis's
hit@k of the joint embeddings, Table 6.3). Ranks break ties towards the lower
index (as a stable sort on −p). Reported for k = 1, 3, 5 (``hit_at_1`` is the
leaf top-1 accuracy).
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

KS = (1, 3, 5)


def true_rank(scores: np.ndarray, true: np.ndarray) -> np.ndarray:
    """The 0-based rank of column ``true[i]`` in row i of ``scores`` (higher first, ties to the lower column)."""
    mine = scores[np.arange(len(scores)), true][:, None]
    column = np.arange(scores.shape[1])[None, :]
    return (scores > mine).sum(axis=1) + ((scores == mine) & (column < true[:, None])).sum(axis=1)


@METRIC_FAMILIES.register("hit_at_k")
class HitAtK:
    reads = "node_prob"
    splits = ("eval",)
    units = {f"hit_at_{k}{lvl}": "fraction" for k in KS for lvl in ("", "_L{level}", "_levels")}
    headline = Headline("top-k", {"hit_at_5": "hit@5"})  # hit@1 = leaf top-1; its level mean = mean level acc.

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.groups = {"": taxonomy.leaf_nodes}
        self.groups |= {f"_L{d}": taxonomy.nodes_at_depth(d) for d in range(1, taxonomy.max_depth + 1)}
        self.hits = {g: np.zeros(len(KS)) for g in self.groups}
        self.n = dict.fromkeys(self.groups, 0)

    def update(self, node_prob: np.ndarray, gt_leaf: np.ndarray) -> None:
        tax = self.taxonomy
        for group, nodes in self.groups.items():
            if group == "":
                true, rows = gt_leaf, slice(None)
            else:
                position = np.full(tax.n_nodes, -1)
                position[nodes] = np.arange(len(nodes))
                ancestor = tax.ancestor_table[tax.leaf_nodes[gt_leaf], int(group[2:])]
                keep = ancestor >= 0
                true, rows = position[ancestor[keep]], keep
            rank = true_rank(node_prob[rows][:, nodes], true)
            self.hits[group] += [(rank < k).sum() for k in KS]
            self.n[group] += len(rank)

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        out = {f"hit_at_{k}{group}": float(h / self.n[group]) if self.n[group] else float("nan")
               for group, hits in self.hits.items() for k, h in zip(KS, hits)}
        levels = [g for g in self.groups if g]
        n = sum(self.n[g] for g in levels)
        pooled = sum(self.hits[g] for g in levels) if levels else np.zeros(len(KS))
        out |= {f"hit_at_{k}_levels": float(h / n) if n else float("nan") for k, h in zip(KS, pooled)}
        return out, {}
