"""Per-level, top-down and consistency accuracies of node scores (docs/metrics.md §4).

These are the zero-shot evaluation measures of the level-restricted contrastive
paper ("Beyond Flat Labels: Level-Restricted Contrastive Learning for
Hierarchical Fine-Grained Vision Classification", arXiv 2606.21838): per-level
accuracy, the average accuracy across levels, top-down accuracy, nLCA (the mean
length of the correct top-down prefix over the number of levels) and
hierarchical consistency.

Notation: levels ``d = 1..D`` (``D`` = the taxonomy's max depth, depth 1 = the
top rank); ``V_d`` = every node at depth ``d`` (the evaluated taxonomy's labels
at that level); ``g_i`` the true leaf of sample ``i``, ``k_i = depth(g_i)`` and
``a_d(g_i)`` its ancestor at depth ``d``; ``p_i(v)`` the node scores. A sample
is scored at the levels ``1..k_i`` (a tree may have leaves at different depths),
so level ``d`` counts ``N_d = #{i : k_i >= d}`` samples (``N`` at every level of
a balanced tree).

* Independent per-level prediction ``ŷ_{i,d} = argmax_{v ∈ V_d} p_i(v)``;
  ``level_acc_L{d} = (1/N_d) Σ_{i : k_i >= d} [ŷ_{i,d} = a_d(g_i)]``.
* ``mean_level_acc`` = the mean of ``level_acc_L{d}`` over the levels (those
  with ``N_d > 0``; all ``D`` unless no sample reaches the deepest levels).
* Top-down prediction: ``t_{i,1} = ŷ_{i,1}``, then
  ``t_{i,d} = argmax_{v ∈ children(t_{i,d-1})} p_i(v)``. The correct prefix
  ``c_i`` = the largest ``m <= k_i`` with ``t_{i,e} = a_e(g_i)`` for every
  ``e <= m`` (0 when level 1 is wrong; a sample stops counting at its first
  error; ``c_i`` is also ``depth(LCA(t_i, g_i))``);
  ``top_down_acc_L{d} = #{i : k_i >= d, c_i >= d} / N_d``.
* ``nlca = (1/N_1) Σ_{i : k_i >= 1} c_i / k_i``. On a balanced tree
  (``k_i = D``) it equals ``(1/D) Σ_d top_down_acc_L{d}``; on an unbalanced one
  it need not (a shallow sample weighs more per level).
* ``consistency`` (hierarchical consistency) = ``(1/N_1) #{i : parent(ŷ_{i,d})
  = ŷ_{i,d-1} for every d = 2..k_i}``: the share of samples whose independent
  per-level predictions, at the levels the sample is scored at, form one path
  from the top rank down (for a balanced tree: levels 2..D; a sample with
  ``k_i = 1`` is consistent). The paper names the measure without defining it
  precisely; this definition is ours.

``N_1`` counts every sample except in the degenerate one-node taxonomy (the
root is the only leaf, ``D = 0``), where every metric is NaN; a level without
samples gives NaN. Ties in an argmax go to the first candidate
(``numpy.argmax``), i.e. the lowest node id. Every metric is a ``fraction``;
there is no curve. The family is streaming: it accumulates integer counts
block by block (vectorised over the block's samples, one loop over levels), so
its result does not depend on how the rows are split into blocks.
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy


@METRIC_FAMILIES.register("level_accuracy")
class LevelAccuracy:
    """Streaming per-level / top-down accuracy, nLCA and hierarchical consistency (module docstring)."""

    reads = "node_prob"
    splits = ("eval",)
    units = {"level_acc_L{level}": "fraction", "mean_level_acc": "fraction",
             "top_down_acc_L{level}": "fraction", "nlca": "fraction", "consistency": "fraction"}
    headline = Headline("zero-shot / consistency", {"mean_level_acc": "mean level acc.", "nlca": "nLCA",
                                                    "consistency": "consistency"})

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.max_depth = taxonomy.max_depth
        self.parent = taxonomy.parent.astype(np.int64)
        self.level_nodes = {d: taxonomy.nodes_at_depth(d) for d in range(1, self.max_depth + 1)}
        self.leaf_ancestor = taxonomy.ancestor_table[taxonomy.leaf_nodes]  # (L, D + 1), -1 below the leaf
        self.leaf_depth = taxonomy.depth[taxonomy.leaf_nodes]
        size = self.max_depth + 1
        self.n_at = np.zeros(size, dtype=np.int64)  # N_d
        self.level_correct = np.zeros(size, dtype=np.int64)
        self.top_down_correct = np.zeros(size, dtype=np.int64)
        self.prefix_counts = np.zeros((size, size), dtype=np.int64)  # [k_i, c_i] -> number of samples
        self.n_consistent = 0

    def update(self, node_prob: np.ndarray, gt_leaf: np.ndarray) -> None:
        """Add one validated block of rows (see :mod:`taxonbench.metrics`)."""
        n_rows = len(node_prob)
        if n_rows == 0 or self.max_depth == 0:
            return
        true = self.leaf_ancestor[gt_leaf]  # (b, D + 1)
        k = self.leaf_depth[gt_leaf]
        prefix = np.zeros(n_rows, dtype=np.int64)
        alive = np.ones(n_rows, dtype=bool)  # top-down still correct at every level so far
        consistent = np.ones(n_rows, dtype=bool)
        top_down = np.zeros(n_rows, dtype=np.int64)  # t_{i,d-1} for the alive rows (the root at d = 1)
        previous = np.zeros(n_rows, dtype=np.int64)  # ŷ_{i,d-1}
        for d, nodes in self.level_nodes.items():
            scored = k >= d
            scores = node_prob[:, nodes]
            predicted = nodes[scores.argmax(axis=1)]
            self.n_at[d] += int(scored.sum())
            self.level_correct[d] += int((scored & (predicted == true[:, d])).sum())
            if d > 1:
                consistent &= ~scored | (self.parent[predicted] == previous)
            previous = predicted

            rows = np.flatnonzero(alive & scored)
            candidates = self.parent[nodes][None, :] == top_down[rows][:, None]
            choice = nodes[np.where(candidates, scores[rows], -np.inf).argmax(axis=1)]
            right = choice == true[rows, d]
            top_down[rows] = choice
            alive[:] = False
            alive[rows[right]] = True
            prefix[rows[right]] = d
            self.top_down_correct[d] += int(right.sum())
        self.n_consistent += int(consistent.sum())
        size = self.max_depth + 1
        self.prefix_counts += np.bincount(k * size + prefix, minlength=size * size).reshape(size, size)

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        nan = float("nan")
        out: dict[str, float] = {}
        levels = range(1, self.max_depth + 1)
        for d in levels:
            n = self.n_at[d]
            out[f"level_acc_L{d}"] = float(self.level_correct[d] / n) if n else nan
        for d in levels:
            n = self.n_at[d]
            out[f"top_down_acc_L{d}"] = float(self.top_down_correct[d] / n) if n else nan
        accs = [out[f"level_acc_L{d}"] for d in levels if self.n_at[d]]
        out["mean_level_acc"] = float(np.mean(accs)) if accs else nan
        n = int(self.n_at[1]) if self.max_depth else 0
        if n:
            depth, length = np.nonzero(self.prefix_counts)
            share = self.prefix_counts[depth, length] * length / depth  # depth >= 1: counted samples only
            out["nlca"] = float(share.sum() / n)
            out["consistency"] = self.n_consistent / n
        else:
            out["nlca"] = nan
            out["consistency"] = nan
        return out, {}
