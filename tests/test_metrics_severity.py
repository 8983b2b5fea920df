"""Tests of mistake severity and hierarchical distance@k (docs/metrics.md §5)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taxonbench.metrics import evaluate
from taxonbench.metrics.severity import random_wrong_leaf_lca_depth, top_k_columns
from taxonbench.taxonomy import Taxonomy

from brute_tree import SCORE_KINDS, Tree, make_scores, taxonomies

SEV_KEYS = [
    "mistake_severity",
    "hier_dist_at_1",
    "hier_dist_at_5",
    "mistake_lca_depth",
    "random_mistake_lca_depth",
]


# ------------------------------------------- helpers (as in the operating-curve tests)
# --------------------------------------------------------------- brute force
def depth_of(tree: Tree, v: int) -> int:
    return len(tree.path(v)) - 1


def ranked_leaves(tree: Tree, p: list[float]) -> list[int]:
    """Leaves by score descending, ties to the lower node id."""
    return sorted(tree.leaf_nodes, key=lambda v: (-p[v], v))


def brute_force_severity(tax: Taxonomy, node_prob: np.ndarray, gt_leaf: np.ndarray) -> dict:
    tree = Tree(tax)
    L = len(tree.leaf_nodes)
    heights_mistakes, lca_depth_mistakes, random_depth, hd = [], [], [], {1: [], 5: []}
    for row, gi in zip(node_prob, gt_leaf):
        p = [float(x) for x in row]
        g = tree.leaf_nodes[int(gi)]
        ranking = ranked_leaves(tree, p)

        def height(y: int) -> int:
            return depth_of(tree, g) - depth_of(tree, tree.lca(g, y))

        for k in hd:
            top = ranking[: min(k, L)]
            hd[k].append(sum(height(y) for y in top) / len(top))
        y = ranking[0]
        if y != g:
            heights_mistakes.append(height(y))
            lca_depth_mistakes.append(depth_of(tree, tree.lca(g, y)))
            # exact expectation by enumerating every wrong leaf
            wrong = [w for w in tree.leaf_nodes if w != g]
            random_depth.append(sum(depth_of(tree, tree.lca(g, w)) for w in wrong) / len(wrong))

    def mean(xs):
        return sum(xs) / len(xs) if xs else math.nan

    return {
        "mistake_severity": mean(heights_mistakes),
        "mistake_lca_depth": mean(lca_depth_mistakes),
        "random_mistake_lca_depth": mean(random_depth),
        "hier_dist_at_1": mean(hd[1]),
        "hier_dist_at_5": mean(hd[5]),
        "n_mistakes": len(heights_mistakes),
    }


def assert_severity_close(tax, p, g, tol=1e-9):
    got, curve = evaluate([(p, g)], tax, families=["mistake_severity"])
    want = brute_force_severity(tax, p, g)
    assert curve == {}
    assert got["n_mistakes"] == want["n_mistakes"]
    for key in SEV_KEYS:
        if math.isnan(want[key]):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(want[key], abs=tol), key


# ------------------------------------------------------------ hand-worked
# root 0 -> A 1, B 2; A -> a1 3, a2 4; B -> b1 5, b2 6. Leaves at depth 2, L = 4.
PARENTS = [-1, 0, 0, 1, 1, 2, 2]


def one_hot_leaf_scores(tax: Taxonomy, ranking: list[list[int]]) -> np.ndarray:
    """Scores where leaves are ranked in the given node order (first = best)."""
    p = np.zeros((len(ranking), tax.n_nodes), dtype=np.float32)
    for i, nodes in enumerate(ranking):
        for r, v in enumerate(nodes):
            p[i, v] = 0.5 ** (r + 1)
    return p


def test_hand_worked_severity():
    tax = Taxonomy.from_parents(PARENTS)
    li = tax.leaf_index
    # sample 0: truth a1, top-1 a2 (LCA A, height 1)
    # sample 1: truth a1, top-1 b1 (LCA root, height 2)
    # sample 2: truth b2, top-1 b2 (correct, height 0)
    p = one_hot_leaf_scores(tax, [[4, 3, 5, 6], [5, 6, 3, 4], [6, 5, 3, 4]])
    g = np.array([li[3], li[3], li[6]])
    m, _ = evaluate([(p, g)], tax, families=["mistake_severity"])
    assert m["n_mistakes"] == 2
    assert m["mistake_severity"] == pytest.approx(1.5)
    assert m["mistake_lca_depth"] == pytest.approx(0.5)  # depths 1 and 0
    # a random wrong leaf for a1: a2 (LCA depth 1), b1, b2 (depth 0) -> 1/3
    assert m["random_mistake_lca_depth"] == pytest.approx(1 / 3)
    assert m["hier_dist_at_1"] == pytest.approx((1 + 2 + 0) / 3)
    # top-4 = all leaves: heights for a1: 0,1,2,2 (mean 1.25); for b2: same -> 1.25
    assert m["hier_dist_at_5"] == pytest.approx(1.25)
    assert_severity_close(tax, p, g)


def test_no_mistakes_gives_nan():
    tax = Taxonomy.from_parents(PARENTS)
    p = one_hot_leaf_scores(tax, [[3, 4, 5, 6]])
    m, _ = evaluate([(p, np.array([tax.leaf_index[3]]))], tax, families=["mistake_severity"])
    assert m["n_mistakes"] == 0
    assert math.isnan(m["mistake_severity"]) and math.isnan(m["random_mistake_lca_depth"])
    assert m["hier_dist_at_1"] == 0.0
    assert m["hier_dist_at_5"] == pytest.approx((0 + 1 + 2 + 2) / 4)


def test_ties_rank_lower_node_id_first():
    tax = Taxonomy.from_parents(PARENTS)
    p = np.zeros((1, tax.n_nodes), dtype=np.float32)  # all leaves tied -> node 3 is top-1
    m, _ = evaluate([(p, np.array([tax.leaf_index[4]]))], tax, families=["mistake_severity"])
    assert m["mistake_severity"] == 1.0  # predicted a1 for a2


# ------------------------------------------- random-wrong-leaf expectation
@given(tax=taxonomies(max_nodes=20))
@settings(max_examples=100, deadline=None, derandomize=True)
def test_random_wrong_leaf_expectation_by_enumeration(tax):
    tree = Tree(tax)
    got = random_wrong_leaf_lca_depth(tax)
    if tax.n_leaves < 2:
        assert np.all(np.isnan(got))
        return
    for i, g in enumerate(tree.leaf_nodes):
        wrong = [w for w in tree.leaf_nodes if w != g]
        want = sum(depth_of(tree, tree.lca(g, w)) for w in wrong) / len(wrong)
        assert got[i] == pytest.approx(want, abs=1e-12)


def test_random_wrong_leaf_expectation_monte_carlo():
    rng = np.random.default_rng(0)
    parent = [-1] + [int(rng.integers(max(0, i - 5), i)) for i in range(1, 80)]
    tax = Taxonomy.from_parents(parent)
    exact = random_wrong_leaf_lca_depth(tax)
    L = tax.n_leaves
    g = rng.integers(0, L, size=200_000)
    w = (g + rng.integers(1, L, size=len(g))) % L  # uniform over the other leaves
    depth = tax.depth[tax.lca(tax.leaf_nodes[g], tax.leaf_nodes[w])]
    standard_error = depth.std() / math.sqrt(len(depth))
    assert abs(depth.mean() - exact[g].mean()) < 5 * standard_error


# ------------------------------------------------------------------ top-k
@given(
    rows=st.integers(1, 6),
    cols=st.integers(1, 300),
    k=st.integers(1, 7),
    levels=st.integers(1, 50),
    block=st.sampled_from([1, 2, 3, 8, 64]),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None, derandomize=True)
def test_top_k_columns_exact_with_ties(rows, cols, k, levels, block, seed):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, levels, size=(rows, cols)) / levels).astype(np.float32)
    got = top_k_columns(scores, k, block=block)
    kk = min(k, cols)
    assert got.shape == (rows, kk)
    for r in range(rows):
        want = sorted(range(cols), key=lambda c: (-scores[r, c], c))[:kk]
        assert sorted(got[r].tolist()) == sorted(want)


def test_top_k_columns_partial_last_block():
    # 200 columns in blocks of 64: four blocks, the last one 8 wide and padded.
    scores = np.linspace(0, 1, 200, dtype=np.float32)[None, :]  # best columns are the last ones
    np.testing.assert_array_equal(top_k_columns(scores, 3, block=64), [[197, 198, 199]])
    scores = np.zeros((1, 200), dtype=np.float32)
    scores[0, 199] = 1.0
    np.testing.assert_array_equal(top_k_columns(scores, 3, block=64), [[0, 1, 199]])


# ---------------------------------------------------- brute-force property
@given(
    tax=taxonomies(),
    n=st.integers(1, 10),
    kind=st.sampled_from(SCORE_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None, derandomize=True)
def test_matches_brute_force(tax, n, kind, seed):
    rng = np.random.default_rng(seed)
    p = make_scores(tax, n, kind, rng)
    g = rng.integers(0, tax.n_leaves, size=n)
    assert_severity_close(tax, p, g)


def test_matches_brute_force_many_leaves():
    """More than 5 leaves and more than one 64-column block, so top-5 is a strict subset."""
    rng = np.random.default_rng(2)
    parent = [-1] + [int(rng.integers(max(0, i - 4), i)) for i in range(1, 400)]
    tax = Taxonomy.from_parents(parent)
    assert tax.n_leaves > 64
    for kind in SCORE_KINDS:
        p = make_scores(tax, 30, kind, rng)
        g = rng.integers(0, tax.n_leaves, size=30)
        assert_severity_close(tax, p, g)


def test_chunking_invariance():
    rng = np.random.default_rng(4)
    parent = [-1] + [int(rng.integers(max(0, i - 4), i)) for i in range(1, 200)]
    tax = Taxonomy.from_parents(parent)
    p = make_scores(tax, 120, "softmax", rng)
    g = rng.integers(0, tax.n_leaves, size=120)
    whole, _ = evaluate([(p, g)], tax, families=["mistake_severity"])
    cuts = [0, 1, 1, 40, 77, 120]
    parts, _ = evaluate(
        [(p[a:b], g[a:b]) for a, b in itertools.pairwise(cuts)], tax, families=["mistake_severity"]
    )
    for key in SEV_KEYS:
        assert parts[key] == pytest.approx(whole[key], abs=1e-12), key
