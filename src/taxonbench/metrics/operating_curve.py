"""The operating-curve family: AP, AC, R@90C, R@95C, Majority F1, Leaf F1, Leaf Top1.

Definitions: docs/metrics.md §1, after Valmadre, "Hierarchical classification at
multiple operating points" (NeurIPS 2022) and its code ``jvlmdr/hiercls``.

Per-sample scores of a prediction ``y`` against the true leaf ``g``, with
``a = LCA(g, y)`` and ``y`` first truncated to ``g`` when it lies below ``g``::

    info(v)        = log2(L / n(v))
    info_recall    = info(a) / info(g)          (0/0 = 1)
    info_precision = info(a) / info(y)          (0/0 = 1)
    correct        = a == g or a == y
    info_f1        = 2 P R / (P + R)            (0 if P or R is 0)

The curve is streamed: each sample's Pareto sequence contributes one step per
element after its first, a step being ``(score, change of the sample's
metric)``. The curve is only ever needed at the 1001 resampling thresholds
``t = 1.000, 0.999, ..., 0.000`` (a point counts the steps with score strictly
above ``t``), so the steps are binned by threshold as they arrive and the
curve is the running sum of the bins: no global sort, O(1001) state.
Scores are compared with the thresholds in float64, i.e. exactly.
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

N_THRESHOLDS = 1001
#: The resampling thresholds 1.000, 0.999, ..., 0.000 (docs/metrics.md §1).
THRESHOLDS = np.arange(N_THRESHOLDS - 1, -1, -1, dtype=np.float64) / (N_THRESHOLDS - 1)
_ASCENDING = THRESHOLDS[::-1].copy()

#: Correct-rate levels X of the R@XC metrics and their output keys.
RECALL_AT_CORRECT = {"r_at_90c": 0.90, "r_at_95c": 0.95}

MAJORITY_THRESHOLD = 0.5


def pareto_integrate(x: np.ndarray, y: np.ndarray) -> float:
    """Area under the right-upper envelope of the points ``(x, y)``.

    docs/metrics.md §1: sort by x, replace y by ``max{y_j : x_j >= x_i}``, and sum
    ``(x_i - x_{i-1}) * y_i`` from ``x_0 = 0`` to the largest x (no
    extrapolation). ``x = [.1, .2, .8], y = [.9, .5, .3]`` gives 0.32.
    """
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length: {x.shape} vs {y.shape}")
    if len(x) == 0:
        return 0.0
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    envelope = np.maximum.accumulate(y[::-1])[::-1]
    widths = np.diff(x, prepend=0.0)
    return float(np.sum(widths * envelope))


class SpecificityGroups:
    """Columns grouped by equal specificity, least specific group first.

    Within a group the columns are in increasing id, so an argmax over the
    group breaks ties in favour of the lowest column (node) id, as the
    reference's stable sort does. A group whose columns form a contiguous
    range is read as a view, not a gather.
    """

    def __init__(self, specificity: np.ndarray, columns: np.ndarray) -> None:
        specificity = np.asarray(specificity)
        columns = np.asarray(columns, dtype=np.int64)
        order = np.lexsort((columns, specificity))
        cols, spec = columns[order], specificity[order]
        starts = np.flatnonzero(np.r_[True, spec[1:] != spec[:-1]])
        ends = np.r_[starts[1:], len(cols)]
        self.specificity = spec[starts]
        self.columns: list[np.ndarray] = []
        self._index: list[slice | np.ndarray | int] = []
        for s, e in zip(starts, ends):
            c = cols[s:e]
            self.columns.append(c)
            if len(c) == 1:
                self._index.append(int(c[0]))
            elif c[-1] - c[0] == len(c) - 1:
                self._index.append(slice(int(c[0]), int(c[-1]) + 1))
            else:
                self._index.append(c)

    def __len__(self) -> int:
        return len(self.columns)

    def reduce(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row and group: the max score and the column achieving it (first on ties)."""
        n_rows = len(p)
        gmax = np.empty((n_rows, len(self)), dtype=p.dtype)
        garg = np.empty((n_rows, len(self)), dtype=np.int64)
        rows = np.arange(n_rows)
        for j, (cols, index) in enumerate(zip(self.columns, self._index)):
            if isinstance(index, int):
                gmax[:, j] = p[:, index]
                garg[:, j] = index
                continue
            # np.take returns a C-ordered block; p[:, array] would be F-ordered,
            # which makes the row-wise argmax several times slower.
            block = p[:, index] if isinstance(index, slice) else np.take(p, index, axis=1)
            best = block.argmax(axis=1)
            gmax[:, j] = block[rows, best]
            garg[:, j] = cols[best]
        return gmax, garg


def pareto_keep(gmax: np.ndarray) -> np.ndarray:
    """Which specificity groups hold an element of each row's Pareto sequence.

    docs/metrics.md §1: sort by p descending, ties by specificity descending, and
    keep a node iff it is strictly more specific than every node before it.
    Per group that is: its best node is kept iff its score is strictly above
    the best score of every strictly more specific group (a suffix max); on a
    score tie the more specific node comes first and wins.
    ``gmax``: ``(rows, groups)``, groups least specific first.
    """
    rows, groups = gmax.shape
    more_specific_best = np.full((rows, groups), -np.inf, dtype=np.float64)
    if groups > 1:
        more_specific_best[:, :-1] = np.maximum.accumulate(gmax[:, :0:-1], axis=1)[:, ::-1]
    return gmax > more_specific_best


def pareto_front(specificity: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Boolean mask of the per-sample Pareto sequence over arbitrary columns.

    ``specificity``: ``(m,)``; ``prob``: ``(m,)`` or ``(rows, m)``. The kept
    columns, in increasing specificity, are the sequence (docs/metrics.md §1). The
    worked example ``info [1,2,2,4,4,4,8,8]``, ``p [1,.4,.6,.1,.3,.2,.1,.2]``
    keeps columns 0, 2, 4, 7.
    """
    prob = np.asarray(prob)
    single = prob.ndim == 1
    p2 = np.atleast_2d(prob)
    groups = SpecificityGroups(specificity, np.arange(p2.shape[1]))
    gmax, garg = groups.reduce(p2)
    keep = pareto_keep(gmax)
    mask = np.zeros(p2.shape, dtype=bool)
    rows, cols = np.nonzero(keep)
    mask[rows, garg[rows, cols]] = True
    return mask[0] if single else mask


def info_scores(
    taxonomy: Taxonomy, gt_node: np.ndarray, pred_node: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-sample ``info_recall``, ``info_precision``, ``info_f1``, ``correct``, ``exact``.

    docs/metrics.md §1 (Valmadre 2022): ``a = LCA(g, y)``; a prediction below the
    truth is truncated to it; ratios with 0/0 count as 1.
    """
    g = np.asarray(gt_node, dtype=np.int64)
    y = np.asarray(pred_node, dtype=np.int64)
    info = taxonomy.info
    a = taxonomy.lca(g, y)
    exact = y == g
    truncated = a == g
    correct = truncated | (a == y)
    y = np.where(truncated, g, y)
    recall = _ratio(info[a], info[g])
    precision = _ratio(info[a], info[y])
    denom = precision + recall
    f1 = np.divide(
        2.0 * precision * recall,
        denom,
        out=np.zeros_like(denom),
        where=(precision > 0) & (recall > 0),
    )
    return {
        "info_recall": recall,
        "info_precision": precision,
        "info_f1": f1,
        "correct": correct,
        "exact": exact,
    }


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` with 0/0 = 1 (``den == 0`` implies ``num == 0`` for LCA info ratios)."""
    return np.divide(num, den, out=np.ones_like(num, dtype=np.float64), where=den != 0)


def candidate_nodes(taxonomy: Taxonomy) -> np.ndarray:
    """Nodes that may be predicted: non-trivial nodes and the root (docs/metrics.md §1)."""
    candidate = taxonomy.n_children != 1
    candidate[0] = True
    return np.flatnonzero(candidate)


@METRIC_FAMILIES.register("operating_curve")
class OperatingCurve:
    """Streaming accumulator of the docs/metrics.md §1 family (Valmadre 2022).

    Outputs (fractions): ``ap``, ``ac``, ``r_at_90c``, ``r_at_95c``,
    ``majority_f1``, ``leaf_f1``, ``leaf_top1``, ``n_samples``; curve:
    ``threshold``, ``info_recall``, ``info_precision``, ``correct`` at
    :data:`THRESHOLDS`.
    """

    reads = "node_prob"
    splits = ("eval",)
    units = {"ap": "fraction", "ac": "fraction", "r_at_90c": "fraction", "r_at_95c": "fraction",
             "majority_f1": "fraction", "leaf_f1": "fraction", "leaf_top1": "fraction"}
    headline = Headline("operating curve", {"ap": "AP", "ac": "AC", "r_at_90c": "R@90C", "r_at_95c": "R@95C",
                                            "majority_f1": "majority F1", "leaf_f1": "leaf F1",
                                            "leaf_top1": "leaf top-1"})

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        nodes = candidate_nodes(taxonomy)
        # Specificity = -n(v): same order as info, exact integer ties.
        self.groups = SpecificityGroups(-taxonomy.n_leaves_under[nodes], nodes)
        leaves = np.sort(taxonomy.leaf_nodes)
        last = self.groups.columns[-1]
        self._leaf_is_last_group = len(last) == len(leaves) and np.array_equal(last, leaves)
        self._leaf_groups = None if self._leaf_is_last_group else SpecificityGroups(
            np.zeros(len(leaves)), leaves
        )
        self.n = 0
        self._init = np.zeros(3)  # summed initial metric: recall, precision, correct
        self._hist = np.zeros((3, N_THRESHOLDS + 1))  # summed step deltas per threshold bin
        self._sums = {"majority_f1": 0.0, "leaf_f1": 0.0, "leaf_top1": 0.0}

    def update(self, node_prob: np.ndarray, gt_leaf: np.ndarray) -> None:
        """Add one validated block of rows (see :mod:`taxonbench.metrics`)."""
        n_rows = len(node_prob)
        if n_rows == 0:
            return
        gt_node = self.taxonomy.leaf_nodes[gt_leaf]
        gmax, garg = self.groups.reduce(node_prob)
        all_rows = np.arange(n_rows)

        # Pareto sequences: kept (row, group) pairs in row-major order are each
        # row's sequence in increasing specificity, i.e. decreasing score.
        rows, grp = np.nonzero(pareto_keep(gmax))
        scores = info_scores(self.taxonomy, gt_node[rows], garg[rows, grp])
        values = np.stack(
            [scores["info_recall"], scores["info_precision"], scores["correct"].astype(np.float64)]
        )
        first = np.ones(len(rows), dtype=bool)
        first[1:] = rows[1:] != rows[:-1]
        self._init += values[:, first].sum(axis=1)
        step = np.flatnonzero(~first)
        deltas = values[:, step] - values[:, step - 1]
        step_score = gmax[rows[step], grp[step]].astype(np.float64)
        # A step counts at threshold t iff score > t: bin b is the first
        # (descending) threshold index where it counts; bin 1001 = never.
        bins = N_THRESHOLDS - np.searchsorted(_ASCENDING, step_score, side="left")
        for k in range(3):
            self._hist[k] += np.bincount(bins, weights=deltas[k], minlength=N_THRESHOLDS + 1)

        # Majority: the most specific candidate group with a score > 0.5, root otherwise.
        above = gmax > MAJORITY_THRESHOLD
        last_above = gmax.shape[1] - 1 - np.argmax(above[:, ::-1], axis=1)
        majority = np.where(above.any(axis=1), garg[all_rows, last_above], 0)
        self._sums["majority_f1"] += float(
            info_scores(self.taxonomy, gt_node, majority)["info_f1"].sum()
        )

        # Leaf: argmax over leaves (lowest node id on ties).
        if self._leaf_is_last_group:
            leaf = garg[:, -1]
        else:
            leaf = self._leaf_groups.reduce(node_prob)[1][:, 0]
        leaf_scores = info_scores(self.taxonomy, gt_node, leaf)
        self._sums["leaf_f1"] += float(leaf_scores["info_f1"].sum())
        self._sums["leaf_top1"] += float(leaf_scores["exact"].sum())
        self.n += n_rows

    def curve(self) -> dict[str, np.ndarray]:
        """The dataset curve resampled at :data:`THRESHOLDS` (means over samples)."""
        n = self.n
        running = self._init[:, None] + np.cumsum(self._hist[:, :N_THRESHOLDS], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recall, precision, correct = running / n
        return {
            "threshold": THRESHOLDS.copy(),
            "info_recall": recall,
            "info_precision": precision,
            "correct": correct,
        }

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        curve = self.curve()
        if self.n == 0:
            nan = float("nan")
            keys = ["ap", "ac", *RECALL_AT_CORRECT, *self._sums]
            return {**{k: nan for k in keys}, "n_samples": 0}, curve
        recall, precision, correct = curve["info_recall"], curve["info_precision"], curve["correct"]
        metrics: dict[str, float] = {
            "ap": pareto_integrate(recall, precision),
            "ac": pareto_integrate(recall, correct),
        }
        for key, level in RECALL_AT_CORRECT.items():
            ok = correct >= level
            metrics[key] = float(recall[ok].max()) if ok.any() else 0.0
        for key, total in self._sums.items():
            metrics[key] = total / self.n
        metrics["n_samples"] = self.n
        return metrics, curve
