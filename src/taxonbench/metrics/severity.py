"""Mistake severity and hierarchical distance@k (docs/metrics.md §5).

After Bertinetto et al., "Making better mistakes: leveraging class hierarchies
with deep networks" (CVPR 2020). With ``height(y, g) = depth(g) - depth(LCA(y, g))``
for the true leaf ``g``:

* average mistake severity: mean height of the top-1 leaf over top-1 mistakes
  (NaN when there is no mistake);
* hierarchical distance@k: mean over samples of the mean height of the k
  best-scored leaves (correct ones count 0);
* ``mistake_lca_depth``: mean ``depth(LCA)`` over top-1 mistakes, and
  ``random_mistake_lca_depth``: over the same samples, the exact expectation of
  ``depth(LCA(g, w))`` for a uniformly random wrong leaf ``w``, which is
  ``sum_{d=1..depth(g)} (n(anc_d(g)) - 1) / (L - 1)`` (``anc_d`` = the ancestor
  at depth d). Comparing the two shows whether mistakes fall closer in the tree
  than chance.

Leaves are ranked by their node score, ties broken by lower node id (the same
rule as the leaf prediction of the operating-curve family).
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

#: The k of the hierarchical distance@k outputs (``hier_dist_at_<k>``).
TOP_K = (1, 5)


def random_wrong_leaf_lca_depth(taxonomy: Taxonomy) -> np.ndarray:
    """Per leaf index: ``E[depth(LCA(g, w))]`` for ``w`` uniform over the other leaves.

    ``P(depth(LCA) >= d) = (n(anc_d(g)) - 1) / (L - 1)``, summed over
    ``d = 1..depth(g)``. NaN everywhere when the taxonomy has a single leaf.
    """
    n_leaves = taxonomy.n_leaves
    if n_leaves < 2:
        return np.full(n_leaves, np.nan)
    anc = taxonomy.ancestor_table[taxonomy.leaf_nodes][:, 1:]  # depths 1..max_depth
    under = np.where(anc >= 0, taxonomy.n_leaves_under[np.maximum(anc, 0)], 1)
    return (under - 1).sum(axis=1) / (n_leaves - 1)


def _select_k(values: np.ndarray, k: int) -> np.ndarray:
    """Mask with exactly ``k`` True per row: the largest values, ties to earlier columns."""
    kth = np.sort(values, axis=1)[:, -k][:, None]
    above = values > kth
    need = k - above.sum(axis=1, keepdims=True)
    tie = values == kth
    return above | (tie & (np.cumsum(tie, axis=1) <= need))


def top_k_columns(scores: np.ndarray, k: int, block: int = 64) -> np.ndarray:
    """Column indices ``(rows, k)`` of each row's ``k`` largest scores, ties to lower columns.

    The set is exact under the order (score desc, column asc); within a row the
    columns come in increasing index, not by rank. Two stages keep it linear
    in the row length: pick the ``k`` best blocks of ``block`` consecutive
    columns by their maximum (the top-k elements must lie in them), then the
    ``k`` best columns among those blocks.
    """
    rows, n_cols = scores.shape
    if k >= n_cols:
        return np.broadcast_to(np.arange(n_cols), (rows, n_cols)).copy()
    starts = np.arange(0, n_cols, block)
    if len(starts) <= k:
        cols = np.broadcast_to(np.arange(n_cols), (rows, n_cols))
        return cols[_select_k(scores, k)].reshape(rows, k)
    block_max = np.maximum.reduceat(scores, starts, axis=1)
    best_blocks = np.nonzero(_select_k(block_max, k))[1].reshape(rows, k)
    cols = (starts[best_blocks][:, :, None] + np.arange(block)).reshape(rows, k * block)
    values = np.take_along_axis(scores, np.minimum(cols, n_cols - 1), axis=1)
    values[cols >= n_cols] = -np.inf
    return cols[_select_k(values, k)].reshape(rows, k)


@METRIC_FAMILIES.register("mistake_severity")
class MistakeSeverity:
    """Streaming accumulator of docs/metrics.md §5 (Bertinetto et al. 2020).

    Outputs: ``mistake_severity``, ``hier_dist_at_1``, ``hier_dist_at_5``,
    ``mistake_lca_depth``, ``random_mistake_lca_depth``, ``n_mistakes``.
    Heights and depths are mean numbers of tree edges (unit ``real``), not fractions.
    """

    reads = "node_prob"
    splits = ("eval",)
    units = {"mistake_severity": "real", "mistake_lca_depth": "real", "random_mistake_lca_depth": "real",
             "n_mistakes": "count", **{f"hier_dist_at_{k}": "real" for k in TOP_K}}
    headline = Headline("mistake severity",
                        {"mistake_severity": "mistake severity", "hier_dist_at_1": "hier. dist@1",
                         "hier_dist_at_5": "hier. dist@5"},
                        lower_is_better=frozenset({"mistake_severity", "hier_dist_at_1", "hier_dist_at_5"}))

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.leaves = np.sort(taxonomy.leaf_nodes)  # column j of the leaf block = node leaves[j]
        contiguous = self.leaves[-1] - self.leaves[0] == len(self.leaves) - 1
        self._index = (
            slice(int(self.leaves[0]), int(self.leaves[-1]) + 1) if contiguous else self.leaves
        )
        self._random_depth = random_wrong_leaf_lca_depth(taxonomy)
        self.n = 0
        self.n_mistakes = 0
        self._mistake_height = 0.0
        self._mistake_lca_depth = 0.0
        self._random_lca_depth = 0.0
        self._hier_dist = {k: 0.0 for k in TOP_K}

    def update(self, node_prob: np.ndarray, gt_leaf: np.ndarray) -> None:
        """Add one validated block of rows (see :mod:`taxonbench.metrics`)."""
        n_rows = len(node_prob)
        if n_rows == 0:
            return
        tax = self.taxonomy
        depth = tax.depth
        gt = tax.leaf_nodes[gt_leaf]
        index = self._index
        scores = node_prob[:, index] if isinstance(index, slice) else np.take(node_prob, index, axis=1)

        top1 = self.leaves[scores.argmax(axis=1)]
        lca_depth = depth[tax.lca(gt, top1)]
        height = depth[gt] - lca_depth
        wrong = top1 != gt
        self.n_mistakes += int(wrong.sum())
        self._mistake_height += float(height[wrong].sum())
        self._mistake_lca_depth += float(lca_depth[wrong].sum())
        self._random_lca_depth += float(self._random_depth[gt_leaf[wrong]].sum())

        for k in TOP_K:
            if k == 1:
                self._hier_dist[k] += float(height.sum())
                continue
            kk = min(k, len(self.leaves))
            nodes = self.leaves[top_k_columns(scores, kk)]
            lca = tax.lca(np.repeat(gt, kk), nodes.ravel()).reshape(n_rows, kk)
            heights = depth[gt][:, None] - depth[lca]
            self._hier_dist[k] += float(heights.mean(axis=1).sum())
        self.n += n_rows

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        nan = float("nan")
        m = self.n_mistakes
        metrics: dict[str, float] = {
            "mistake_severity": self._mistake_height / m if m else nan,
            "mistake_lca_depth": self._mistake_lca_depth / m if m else nan,
            "random_mistake_lca_depth": self._random_lca_depth / m if m else nan,
            "n_mistakes": m,
        }
        for k in TOP_K:
            metrics[f"hier_dist_at_{k}"] = self._hier_dist[k] / self.n if self.n else nan
        return metrics, {}
