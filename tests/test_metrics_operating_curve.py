"""Tests of the operating-curve family (docs/metrics.md §1).

The vectorised implementation is compared with ``brute_force_family`` below,
a deliberately slow transcription of docs/metrics.md §1 with Python loops over
samples, thresholds and nodes, on random trees and random scores.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import taxonbench.metrics as metrics_pkg
from taxonbench.errors import TaxonbenchError
from taxonbench.metrics import METRIC_FAMILIES, evaluate
from taxonbench.metrics.operating_curve import (
    THRESHOLDS,
    pareto_front,
    pareto_integrate,
)
from taxonbench.taxonomy import Taxonomy

from brute_tree import SCORE_KINDS, Tree, make_scores, taxonomies

OP_KEYS = ["ap", "ac", "r_at_90c", "r_at_95c", "majority_f1", "leaf_f1", "leaf_top1"]
CURVE_KEYS = ["info_recall", "info_precision", "correct"]


# --------------------------------------------------------------- brute force
def bf_scores(tree: Tree, g: int, y: int) -> dict[str, float]:
    """docs/metrics.md §1 per-sample scores of prediction y for true node g."""
    a = tree.lca(g, y)
    exact = y == g
    if a == g:  # y is g or below it: truncate to g
        y = g
    correct = a == g or a == y
    info = tree.info
    recall = 1.0 if info[g] == 0 else info[a] / info[g]
    precision = 1.0 if info[y] == 0 else info[a] / info[y]
    f1 = 0.0 if recall == 0 or precision == 0 else 2 * precision * recall / (precision + recall)
    return {
        "info_recall": recall,
        "info_precision": precision,
        "correct": float(correct),
        "info_f1": f1,
        "exact": float(exact),
    }


def bf_pareto_sequence(tree: Tree, p: list[float]) -> list[int]:
    """Sort by p desc, then specificity desc (then node id); keep strict specificity records."""
    order = sorted(tree.candidates, key=lambda v: (-p[v], -tree.info[v], v))
    kept: list[int] = []
    for v in order:
        if all(tree.info[v] > tree.info[u] for u in kept):
            kept.append(v)
    return kept


def bf_majority(tree: Tree, p: list[float]) -> int:
    qualified = [v for v in tree.candidates if p[v] > 0.5] or [0]
    # most specific, then larger p, then lower id
    return min(qualified, key=lambda v: (-tree.info[v], -p[v], v))


def bf_leaf(tree: Tree, p: list[float]) -> int:
    return min(tree.leaf_nodes, key=lambda v: (-p[v], v))


def bf_pareto_integrate(x: list[float], y: list[float]) -> float:
    """docs/metrics.md §1: rectangles under the right-upper envelope, from x = 0."""
    points = sorted(zip(x, y), key=lambda xy: xy[0])
    envelope = []  # max of y over the points with x >= this x, scanning from the right
    best = -math.inf
    for xi, yi in reversed(points):
        best = max(best, yi)
        envelope.append(best)
    envelope.reverse()
    area, prev_x = 0.0, 0.0
    for (xi, _), yi in zip(points, envelope):
        area += (xi - prev_x) * yi
        prev_x = xi
    return area


def brute_force_family(tax: Taxonomy, node_prob: np.ndarray, gt_leaf: np.ndarray):
    tree = Tree(tax)
    probs = [[float(x) for x in row] for row in node_prob]  # exact float64 comparisons
    gts = [tree.leaf_nodes[int(i)] for i in gt_leaf]
    n = len(probs)
    seqs = [bf_pareto_sequence(tree, p) for p in probs]
    # per-sample scores of each element of its sequence (the curve only ever predicts these)
    seq_scores = [[bf_scores(tree, g, v) for v in seq] for g, seq in zip(gts, seqs)]
    thresholds = [(1000 - j) / 1000 for j in range(1001)]
    curve = {k: [] for k in CURVE_KEYS}
    for t in thresholds:
        totals = {k: 0.0 for k in CURVE_KEYS}
        for p, seq, scores in zip(probs, seqs, seq_scores):
            pred = 0  # position in seq: the first element holds until a step's score passes t
            for j in range(1, len(seq)):
                if p[seq[j]] > t:
                    pred = j
            s = scores[pred]
            for k in CURVE_KEYS:
                totals[k] += s[k]
        for k in CURVE_KEYS:
            curve[k].append(totals[k] / n)
    out = {
        "ap": bf_pareto_integrate(curve["info_recall"], curve["info_precision"]),
        "ac": bf_pareto_integrate(curve["info_recall"], curve["correct"]),
    }
    for key, level in (("r_at_90c", 0.9), ("r_at_95c", 0.95)):
        ok = [r for r, c in zip(curve["info_recall"], curve["correct"]) if c >= level]
        out[key] = max(ok) if ok else 0.0
    maj = [bf_scores(tree, g, bf_majority(tree, p)) for p, g in zip(probs, gts)]
    leaf = [bf_scores(tree, g, bf_leaf(tree, p)) for p, g in zip(probs, gts)]
    out["majority_f1"] = sum(s["info_f1"] for s in maj) / n
    out["leaf_f1"] = sum(s["info_f1"] for s in leaf) / n
    out["leaf_top1"] = sum(s["exact"] for s in leaf) / n
    return out, {k: np.array(v) for k, v in curve.items()}


# ---------------------------------------------------------------- generators
def assert_family_close(tax, p, g, tol=1e-9):
    got, curve = evaluate([(p, g)], tax, families=["operating_curve"])
    want, want_curve = brute_force_family(tax, p, g)
    for key in OP_KEYS:
        assert got[key] == pytest.approx(want[key], abs=tol), key
    for key in CURVE_KEYS:
        np.testing.assert_allclose(curve[key], want_curve[key], rtol=0, atol=tol, err_msg=key)
    np.testing.assert_array_equal(curve["threshold"], THRESHOLDS)
    assert got["n_samples"] == len(p)


# -------------------------------------------------------- worked examples
def test_pareto_worked_example():
    info = np.array([1, 2, 2, 4, 4, 4, 8, 8], dtype=float)
    p = np.array([1, 0.4, 0.6, 0.1, 0.3, 0.2, 0.1, 0.2])
    np.testing.assert_array_equal(np.flatnonzero(pareto_front(info, p)), [0, 2, 4, 7])


def test_pareto_worked_example_batched():
    """Rows are independent; the brute-force transcription agrees on the example."""
    info = np.array([1, 2, 2, 4, 4, 4, 8, 8], dtype=float)
    p = np.array([1, 0.4, 0.6, 0.1, 0.3, 0.2, 0.1, 0.2])
    q = np.array([0.2, 0.9, 0.1, 0.9, 0.1, 0.1, 0.3, 0.1])  # 3 beats 1 (tie, more specific)
    mask = pareto_front(info, np.stack([p, q]))
    np.testing.assert_array_equal(np.flatnonzero(mask[0]), [0, 2, 4, 7])
    np.testing.assert_array_equal(np.flatnonzero(mask[1]), [3, 6])
    tree = Tree.__new__(Tree)
    tree.info, tree.candidates = list(info), list(range(8))
    assert bf_pareto_sequence(tree, list(p)) == [0, 2, 4, 7]
    assert bf_pareto_sequence(tree, list(q)) == [3, 6]


def test_pareto_ties_prefer_more_specific_then_lower_id():
    info = np.array([0.0, 1.0, 1.0, 2.0])
    # equal scores across specificities: only the most specific survives
    keep = pareto_front(info, np.array([0.5, 0.5, 0.5, 0.5]))
    np.testing.assert_array_equal(np.flatnonzero(keep), [3])
    # equal scores and specificity: the lower id is kept
    keep = pareto_front(info, np.array([1.0, 0.4, 0.4, 0.1]))
    np.testing.assert_array_equal(np.flatnonzero(keep), [0, 1, 3])


def test_pareto_integrate_worked_example():
    assert pareto_integrate([0.1, 0.2, 0.8], [0.9, 0.5, 0.3]) == pytest.approx(0.32, abs=1e-12)
    # order does not matter; the envelope lifts dominated points
    assert pareto_integrate([0.8, 0.1, 0.2], [0.3, 0.9, 0.5]) == pytest.approx(0.32, abs=1e-12)
    assert pareto_integrate([0.1, 0.2, 0.8], [0.1, 0.5, 0.3]) == pytest.approx(0.28, abs=1e-12)
    assert pareto_integrate([], []) == 0.0


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=20))
@settings(max_examples=100, deadline=None, derandomize=True)
def test_pareto_integrate_matches_brute_force(points):
    x, y = zip(*points)
    assert pareto_integrate(x, y) == pytest.approx(bf_pareto_integrate(list(x), list(y)), abs=1e-12)


# ------------------------------------------------------- hand-worked cases
SMALL_PARENTS = [-1, 0, 0, 1, 1, 2, 2, 2]  # root; 1 -> {3, 4}; 2 -> {5, 6, 7}; L = 5


def test_perfect_predictions():
    tax = Taxonomy.from_parents(SMALL_PARENTS)
    gt = np.arange(tax.n_leaves)
    p = np.zeros((len(gt), tax.n_nodes), dtype=np.float32)
    for i, leaf in enumerate(gt):
        p[i, tax.ancestor_table[tax.leaf_nodes[leaf]][: tax.depth[tax.leaf_nodes[leaf]] + 1]] = 1
    m, curve = evaluate([(p, gt)], tax)
    for key in OP_KEYS:
        assert m[key] == 1.0, key
    assert np.all(curve["correct"] == 1) and np.all(curve["info_recall"] == 1)
    assert m["hier_dist_at_1"] == 0 and math.isnan(m["mistake_severity"])


def test_root_only_prediction():
    tax = Taxonomy.from_parents(SMALL_PARENTS)
    gt = np.array([3, 3])  # node 6
    p = np.zeros((2, tax.n_nodes), dtype=np.float32)
    p[:, 0] = 1.0
    m, curve = evaluate([(p, gt)], tax, families=["operating_curve"])
    # Every threshold predicts the root: recall 0, precision 0/0 = 1, always correct.
    assert np.all(curve["info_recall"] == 0)
    assert np.all(curve["info_precision"] == 1)
    assert np.all(curve["correct"] == 1)
    assert m["ap"] == 0 and m["ac"] == 0 and m["r_at_90c"] == 0 and m["r_at_95c"] == 0
    assert m["majority_f1"] == 0  # the root qualifies, recall 0
    assert m["leaf_top1"] == 0 and m["leaf_f1"] == 0  # tied leaves -> lowest node id (3)


def test_hand_worked_curve():
    """One sample, true node 4; sequence root (1), node 1 (.75), node 3 (.5)."""
    tax = Taxonomy.from_parents(SMALL_PARENTS)
    p = np.array([[1, 0.75, 0.25, 0.5, 0.25, 0.125, 0.0625, 0.0625]], dtype=np.float32)
    gt = np.array([int(tax.leaf_index[4])])
    m, curve = evaluate([(p, gt)], tax, families=["operating_curve"])
    r = math.log2(5 / 2) / math.log2(5)
    # t in 1.000..0.750 -> root; 0.749..0.500 -> node 1; 0.499..0 -> node 3.
    np.testing.assert_allclose(curve["info_recall"], [0] * 251 + [r] * 750, atol=1e-15)
    np.testing.assert_allclose(curve["info_precision"], [1] * 501 + [r] * 500, atol=1e-15)
    np.testing.assert_array_equal(curve["correct"], [1] * 501 + [0] * 500)
    assert m["ap"] == pytest.approx(r)
    assert m["ac"] == pytest.approx(r)
    assert m["r_at_90c"] == pytest.approx(r)
    assert m["majority_f1"] == pytest.approx(2 * r / (1 + r))  # node 1 (0.5 is not > 0.5)
    assert m["leaf_f1"] == pytest.approx(r) and m["leaf_top1"] == 0
    assert_family_close(tax, p, gt)


def test_trivial_nodes_are_never_predicted():
    # root -> 1 -> 2 -> {3, 4}; node 1 is trivial (one child).
    tax = Taxonomy.from_parents([-1, 0, 1, 2, 2, 0])
    p = np.array([[1.0, 0.9, 0.9, 0.6, 0.3, 0.1]], dtype=np.float32)
    gt = np.array([int(tax.leaf_index[3])])
    m, _ = evaluate([(p, gt)], tax, families=["operating_curve"])
    assert m["majority_f1"] == 1.0  # majority = node 3 (most specific with p > .5)
    assert_family_close(tax, p, gt)


# ------------------------------------------------------ brute-force properties
@given(
    tax=taxonomies(),
    n=st.integers(1, 10),
    kind=st.sampled_from(SCORE_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=300, deadline=None, derandomize=True)
def test_matches_brute_force(tax, n, kind, seed):
    rng = np.random.default_rng(seed)
    p = make_scores(tax, n, kind, rng)
    g = rng.integers(0, tax.n_leaves, size=n)
    assert_family_close(tax, p, g)


def test_matches_brute_force_larger_tree():
    rng = np.random.default_rng(7)
    parent = [-1] + [int(rng.integers(0, i)) for i in range(1, 40)]
    tax = Taxonomy.from_parents(parent)
    for kind in SCORE_KINDS:
        p = make_scores(tax, 25, kind, rng)
        g = rng.integers(0, tax.n_leaves, size=25)
        assert_family_close(tax, p, g)


def test_float64_scores_match_brute_force():
    rng = np.random.default_rng(3)
    tax = Taxonomy.from_parents([-1, 0, 0, 1, 1, 1, 2, 2, 0])
    p = make_scores(tax, 20, "softmax", rng).astype(np.float64) * 0.999
    g = rng.integers(0, tax.n_leaves, size=20)
    assert_family_close(tax, p, g)


# ------------------------------------------------------------- chunking
def _random_problem(seed: int, n: int = 300):
    rng = np.random.default_rng(seed)
    parent = [-1] + [int(rng.integers(max(0, i - 6), i)) for i in range(1, 60)]
    tax = Taxonomy.from_parents(parent)
    p = np.concatenate(
        [make_scores(tax, n // 2, "softmax", rng), make_scores(tax, n - n // 2, "sigmoid", rng)]
    )
    g = rng.integers(0, tax.n_leaves, size=n)
    return tax, p, g


def assert_same_results(metrics, curve, expected, expected_curve):
    """Same metric keys, every value (NaN included) and curve column to 1e-12."""
    assert metrics.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(metrics[key])
        else:
            assert metrics[key] == pytest.approx(value, abs=1e-12), key
    for key in expected_curve:
        np.testing.assert_allclose(curve[key], expected_curve[key], rtol=0, atol=1e-12)


def test_chunking_invariance(monkeypatch):
    tax, p, g = _random_problem(11)
    whole, whole_curve = evaluate([(p, g)], tax)
    cuts = [0, 0, 1, 2, 50, 51, 199, 300, 300]
    chunks = [(p[a:b], g[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]
    monkeypatch.setattr(metrics_pkg, "BLOCK_ELEMENTS", 7 * tax.n_nodes)  # also split inside chunks
    parts, parts_curve = evaluate(iter(chunks), tax)
    assert_same_results(parts, parts_curve, whole, whole_curve)


def test_column_major_scores_give_the_same_metrics():
    """A column-major array (what a dense x sparse product returns) is evaluated as its row-major copy:
    same numbers to 1e-12 (the families read row-major blocks; bench/metrics.py --tree random times it)."""
    tax, p, g = _random_problem(12)
    fortran = np.asfortranarray(p)
    assert fortran.flags.f_contiguous and not fortran.flags.c_contiguous
    rows, rows_curve = evaluate([(p, g)], tax)
    cols, cols_curve = evaluate([(fortran, g)], tax)
    assert_same_results(cols, cols_curve, rows, rows_curve)


# ---------------------------------------------------------- registry / API
def test_registry_and_family_selection():
    assert {"operating_curve", "mistake_severity"} <= set(METRIC_FAMILIES.names())
    tax, p, g = _random_problem(5, n=20)
    m, curve = evaluate([(p, g)], tax, families=["operating_curve"])
    assert set(m) == set(OP_KEYS) | {"n_samples"}
    assert set(curve) == {"threshold", *CURVE_KEYS}
    assert all(len(v) == 1001 for v in curve.values())
    for key in OP_KEYS:
        assert 0.0 <= m[key] <= 1.0


# ------------------------------------------------------------ validation
@pytest.fixture
def small():
    tax = Taxonomy.from_parents(SMALL_PARENTS)
    p = np.full((3, tax.n_nodes), 0.5, dtype=np.float32)
    return tax, p, np.array([0, 1, 4])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p, g: (p[:, :-1], g), "columns but the taxonomy has 8 nodes"),
        (lambda p, g: (p[0], g), "2-D array"),
        (lambda p, g: (p, g[:2]), "shape mismatch"),
        (lambda p, g: (p, g[:, None]), "1-D array"),
        (lambda p, g: (p, np.array([0, 5, 1])), "gt_leaf out of range at row 1: leaf index 5"),
        (lambda p, g: (p, np.array([0, -1, 1])), "gt_leaf out of range"),
        (lambda p, g: (p, g.astype(float)), "integer leaf indices"),
        (lambda p, g: (np.where(np.arange(8) == 3, np.nan, p).astype(np.float32), g), "non-finite"),
        (lambda p, g: (np.where(np.arange(8) == 3, np.inf, p).astype(np.float32), g), "non-finite"),
        (lambda p, g: (p.astype(str), g), "floating-point"),
    ],
)
def test_bad_input_raises(small, mutate, message):
    tax, p, g = small
    with pytest.raises(TaxonbenchError, match=message):
        evaluate([mutate(p, g)], tax)


def test_bad_input_reports_global_row(small):
    tax, p, g = small
    bad = p.copy()
    bad[2, 1] = np.nan
    with pytest.raises(TaxonbenchError, match="row 5, node 1"):
        evaluate([(p, g), (bad, g)], tax)


def test_no_samples_and_unknown_family(small):
    tax, p, g = small
    with pytest.raises(TaxonbenchError, match="no samples"):
        evaluate([], tax)
    with pytest.raises(TaxonbenchError, match="no samples"):
        evaluate([(p[:0], g[:0])], tax)
    with pytest.raises(TaxonbenchError, match="unknown metric family 'nope'"):
        evaluate([(p, g)], tax, families=["nope"])
    with pytest.raises(TaxonbenchError, match="pair"):
        evaluate([p], tax)
