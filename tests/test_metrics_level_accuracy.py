"""Tests of the per-level / top-down accuracy, nLCA and consistency family (docs/metrics.md §4)."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import taxonbench.metrics as metrics_pkg
from taxonbench.metrics import METRIC_FAMILIES, evaluate, families_reading, unit_of, units_of
from taxonbench.taxonomy import Taxonomy

from brute_tree import SCORE_KINDS, Tree, make_scores, taxonomies

FAMILY = "level_accuracy"
GLOBAL_KEYS = ("mean_level_acc", "nlca", "consistency")


def keys(max_depth: int) -> set[str]:
    per_level = {f"{name}_L{d}" for name in ("level_acc", "top_down_acc") for d in range(1, max_depth + 1)}
    return per_level | set(GLOBAL_KEYS)


def run(tax: Taxonomy, p: np.ndarray, g: np.ndarray) -> dict[str, float]:
    m, curve = evaluate([(p, g)], tax, families=[FAMILY])
    assert curve == {}
    return m


# ------------------------------------------------------------ brute force
def brute_force(tax: Taxonomy, node_prob: np.ndarray, gt_leaf: np.ndarray) -> dict[str, float]:
    """A per-sample loop over the definitions, on the plain-Python tree of brute_tree."""
    tree = Tree(tax)

    def depth(v: int) -> int:
        return len(tree.path(v)) - 1

    D = max(depth(v) for v in range(tree.n))
    at_depth = {d: [v for v in range(tree.n) if depth(v) == d] for d in range(1, D + 1)}

    def best(p: list[float], nodes: list[int]) -> int:  # highest score, ties to the lowest node id
        return min(nodes, key=lambda v: (-p[v], v))

    n_at = dict.fromkeys(range(1, D + 1), 0)
    level_ok = dict.fromkeys(range(1, D + 1), 0)
    top_ok = dict.fromkeys(range(1, D + 1), 0)
    nlca_terms, consistent = [], []
    for row, gi in zip(node_prob, gt_leaf):
        p = [float(x) for x in row]
        path = tree.path(tree.leaf_nodes[int(gi)])  # root .. leaf; path[d] = the depth-d ancestor
        k = len(path) - 1
        if k == 0:
            continue
        independent = {d: best(p, at_depth[d]) for d in range(1, k + 1)}
        for d in range(1, k + 1):
            n_at[d] += 1
            level_ok[d] += independent[d] == path[d]
        prefix, node = 0, 0
        for d in range(1, k + 1):  # top-down: the children of the node predicted above
            node = best(p, sorted(tree.children[node]))
            if node != path[d]:
                break
            prefix = d
            top_ok[d] += 1
        nlca_terms.append(prefix / k)
        consistent.append(all(tree.parent[independent[d]] == independent[d - 1] for d in range(2, k + 1)))

    nan = math.nan
    out = {}
    for d in range(1, D + 1):
        out[f"level_acc_L{d}"] = level_ok[d] / n_at[d] if n_at[d] else nan
        out[f"top_down_acc_L{d}"] = top_ok[d] / n_at[d] if n_at[d] else nan
    accs = [out[f"level_acc_L{d}"] for d in range(1, D + 1) if n_at[d]]
    out["mean_level_acc"] = sum(accs) / len(accs) if accs else nan
    out["nlca"] = sum(nlca_terms) / len(nlca_terms) if nlca_terms else nan
    out["consistency"] = sum(consistent) / len(consistent) if consistent else nan
    return out


def assert_same(got: dict, want: dict, tol: float = 1e-12) -> None:
    for key, value in want.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, abs=tol), key


def balanced_tree(rng: np.random.Generator, depth: int, max_branch: int = 3) -> Taxonomy:
    """Every leaf at ``depth``; each internal node has 1..max_branch children."""
    paths = [()]
    for d in range(depth):
        paths = [p + (f"t{d}_{j}",) for p in paths for j in range(int(rng.integers(1, max_branch + 1)))]
    return Taxonomy.from_paths(paths, [f"rank{d}" for d in range(depth)])


def unbalanced_tree(rng: np.random.Generator, n: int = 60) -> Taxonomy:
    parent = [-1] + [int(rng.integers(max(0, i - 5), i)) for i in range(1, n)]
    tax = Taxonomy.from_parents(parent)
    assert len(set(tax.depth[tax.leaf_nodes])) > 1
    return tax


# ------------------------------------------------------------ hand-worked
# root 0 -> A 1, B 2; A -> a1 3, a2 4; B -> b1 5, b2 6. Leaves at depth 2: leaf index a1 0, a2 1, b1 2, b2 3.
PARENTS = [-1, 0, 0, 1, 1, 2, 2]


def test_hand_worked_balanced():
    tax = Taxonomy.from_parents(PARENTS)
    #                 root  A    B    a1   a2   b1   b2
    p = np.array([[1.0, 0.9, 0.1, 0.8, 0.2, 0.0, 0.0],   # truth a1: L1 A ok, L2 a1 ok; top-down A, a1: prefix 2
                  [1.0, 0.6, 0.4, 0.1, 0.3, 0.5, 0.0],   # truth a2: L1 A ok, L2 b1 wrong; top-down A, a2: prefix 2
                  [1.0, 0.7, 0.3, 0.2, 0.1, 0.6, 0.4],   # truth b1: L1 A wrong, L2 b1 ok; top-down A wrong: prefix 0
                  [1.0, 0.2, 0.8, 0.1, 0.1, 0.7, 0.3],   # truth b2: L1 B ok, L2 b1 wrong; top-down B, b1 wrong: prefix 1
                  [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]],  # truth b2: ties -> A, a1 (lowest ids): all wrong, prefix 0
                 dtype=np.float32)
    g = np.array([0, 1, 2, 3, 3])
    m = run(tax, p, g)
    assert set(m) == keys(2) | {"n_samples"}
    assert m["level_acc_L1"] == pytest.approx(3 / 5)  # samples 0, 1, 3
    assert m["level_acc_L2"] == pytest.approx(2 / 5)  # samples 0, 2
    assert m["mean_level_acc"] == pytest.approx((3 / 5 + 2 / 5) / 2)  # 0.5
    assert m["top_down_acc_L1"] == pytest.approx(3 / 5)  # the same argmax as the per-level one
    assert m["top_down_acc_L2"] == pytest.approx(2 / 5)  # samples 0, 1 (sample 1: a2 beats a1 under A)
    assert m["nlca"] == pytest.approx((2 / 2 + 2 / 2 + 0 / 2 + 1 / 2 + 0 / 2) / 5)  # 0.5 = mean top-down
    # independent chains: (A, a1) path; (A, b1) no; (A, b1) no; (B, b1) path; (A, a1) path
    assert m["consistency"] == pytest.approx(3 / 5)
    assert_same(m, brute_force(tax, p, g))


def test_hand_worked_unbalanced_nlca_is_not_the_mean_top_down_accuracy():
    # root 0 -> A 1, b 2 (a leaf at depth 1); A -> a1 3, a2 4. Leaf index b 0, a1 1, a2 2.
    tax = Taxonomy.from_parents([-1, 0, 0, 1, 1])
    #                 root  A    b    a1   a2
    p = np.array([[1.0, 0.3, 0.7, 0.5, 0.1],   # truth b (k = 1): L1 b ok; prefix 1 of 1; consistent (one level)
                  [1.0, 0.6, 0.4, 0.2, 0.8],   # truth a1 (k = 2): L1 A ok, L2 a2 wrong; prefix 1 of 2; (A, a2) path
                  [1.0, 0.1, 0.9, 0.3, 0.6]],  # truth a2 (k = 2): L1 b wrong, L2 a2 ok; prefix 0; (b, a2) no path
                 dtype=np.float32)
    g = np.array([0, 1, 2])
    m = run(tax, p, g)
    assert m["level_acc_L1"] == pytest.approx(2 / 3)
    assert m["level_acc_L2"] == pytest.approx(1 / 2)  # over the 2 samples whose leaf is at depth 2
    assert m["mean_level_acc"] == pytest.approx((2 / 3 + 1 / 2) / 2)
    assert m["top_down_acc_L1"] == pytest.approx(2 / 3)
    assert m["top_down_acc_L2"] == 0.0
    assert m["nlca"] == pytest.approx((1 / 1 + 1 / 2 + 0 / 2) / 3)  # 0.5
    # by construction the relation of balanced trees fails: mean top-down = (2/3 + 0) / 2 = 1/3
    assert m["nlca"] != pytest.approx((m["top_down_acc_L1"] + m["top_down_acc_L2"]) / 2)
    assert m["consistency"] == pytest.approx(2 / 3)
    assert_same(m, brute_force(tax, p, g))


def test_a_level_without_samples_is_nan():
    tax = Taxonomy.from_parents([-1, 0, 0, 1, 1])
    p = np.array([[1.0, 0.3, 0.7, 0.5, 0.1]], dtype=np.float32)
    m = run(tax, p, np.array([0]))  # only the depth-1 leaf b
    assert math.isnan(m["level_acc_L2"]) and math.isnan(m["top_down_acc_L2"])
    assert m["mean_level_acc"] == 1.0 and m["nlca"] == 1.0 and m["consistency"] == 1.0


def test_single_node_taxonomy_gives_nan():
    tax = Taxonomy.from_parents([-1])
    m = run(tax, np.ones((2, 1), dtype=np.float32), np.array([0, 0]))
    assert set(m) == set(GLOBAL_KEYS) | {"n_samples"}
    assert all(math.isnan(m[k]) for k in GLOBAL_KEYS)


# ---------------------------------------------------- brute-force property
@given(
    tax=taxonomies(),
    n=st.integers(1, 12),
    kind=st.sampled_from(SCORE_KINDS),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=150, deadline=None, derandomize=True)
def test_matches_brute_force(tax, n, kind, seed):
    rng = np.random.default_rng(seed)
    p = make_scores(tax, n, kind, rng)
    g = rng.integers(0, tax.n_leaves, size=n)
    m = run(tax, p, g)
    assert set(m) == keys(tax.max_depth) | {"n_samples"}
    assert_same(m, brute_force(tax, p, g))


@pytest.mark.parametrize("kind", SCORE_KINDS)
def test_matches_brute_force_in_blocks_on_an_unbalanced_tree(monkeypatch, kind):
    rng = np.random.default_rng(7)
    tax = unbalanced_tree(rng)
    p = make_scores(tax, 150, kind, rng)
    g = rng.integers(0, tax.n_leaves, size=150)
    whole = run(tax, p, g)
    assert_same(whole, brute_force(tax, p, g))
    cuts = [0, 1, 1, 40, 77, 150]
    monkeypatch.setattr(metrics_pkg, "BLOCK_ELEMENTS", 9 * tax.n_nodes)  # also blocks inside the chunks
    parts, _ = evaluate([(p[a:b], g[a:b]) for a, b in itertools.pairwise(cuts)], tax, families=[FAMILY])
    assert parts.keys() == whole.keys()
    for key, value in whole.items():  # integer counts: identical, not only close
        assert (math.isnan(value) and math.isnan(parts[key])) or parts[key] == value, key


def test_matches_brute_force_on_a_balanced_tree():
    rng = np.random.default_rng(3)
    tax = balanced_tree(rng, 4)
    p = make_scores(tax, 200, "sigmoid", rng)
    g = rng.integers(0, tax.n_leaves, size=200)
    assert_same(run(tax, p, g), brute_force(tax, p, g))


# ------------------------------------------------------------- relations
@pytest.mark.parametrize("seed", range(5))
def test_nlca_is_the_mean_top_down_accuracy_on_a_balanced_tree(seed):
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(1, 6))
    tax = balanced_tree(rng, depth)
    assert len(set(tax.depth[tax.leaf_nodes])) == 1
    n = 300
    p = rng.random((n, tax.n_nodes))
    g = rng.integers(0, tax.n_leaves, size=n)
    m = run(tax, p, g)
    top_down = [m[f"top_down_acc_L{d}"] for d in range(1, depth + 1)]
    assert abs(m["nlca"] - sum(top_down) / depth) <= 1e-12
    assert 0 < m["nlca"] < 1  # not a trivial case


@pytest.mark.parametrize("seed", range(5))
def test_scores_on_one_path_are_consistent(seed):
    """1 on one root-to-leaf path (of a random leaf), 0 elsewhere: every chain is a path, and the
    per-level argmax follows the same path as top-down, so both accuracies agree at every level."""
    rng = np.random.default_rng(seed)
    depth = int(rng.integers(2, 5))
    tax = balanced_tree(rng, depth)
    n = 100
    chosen = rng.integers(0, tax.n_leaves, size=n)
    p = tax.leaf_ancestor_matrix[chosen].toarray().astype(np.float32)
    g = np.where(rng.random(n) < 0.3, chosen, rng.integers(0, tax.n_leaves, size=n))
    m = run(tax, p, g)
    assert m["consistency"] == 1.0
    for d in range(1, depth + 1):
        assert m[f"level_acc_L{d}"] == m[f"top_down_acc_L{d}"]
    assert m[f"level_acc_L{depth}"] == np.mean(chosen == g)


def test_known_inconsistency():
    tax = Taxonomy.from_parents(PARENTS)
    p = np.zeros((4, tax.n_nodes), dtype=np.float32)
    p[:, 1] = 1.0  # level 1: A for everyone
    p[0, 3] = p[1, 4] = 1.0  # level 2: a1, a2 (children of A): consistent
    p[2, 5] = p[3, 6] = 1.0  # level 2: b1, b2 (children of B): inconsistent
    m = run(tax, p, np.array([0, 1, 2, 3]))
    assert m["consistency"] == 0.5
    assert m["level_acc_L1"] == 0.5 and m["level_acc_L2"] == 1.0
    assert m["top_down_acc_L2"] == 0.5  # samples 2, 3 fail at level 1 (A) and stop there


# --------------------------------------------------- registry / pipeline
def test_registered_and_evaluated_by_the_evaluate_step(tmp_path):
    from taxonbench.evaluation import evaluate_scores
    from taxonbench.matrix_io import write_matrix

    assert FAMILY in METRIC_FAMILIES.names() and FAMILY in families_reading("node_prob")
    family = METRIC_FAMILIES.get(FAMILY)
    assert family.reads == "node_prob" and family.splits == ("eval",)
    assert set(family.units.values()) == {"fraction"}

    rng = np.random.default_rng(11)
    tax = unbalanced_tree(rng)
    p = make_scores(tax, 50, "softmax", rng)
    g = rng.integers(0, tax.n_leaves, size=50)
    path = tmp_path / "test.parquet"
    write_matrix(path, "node_prob", [(np.arange(50), g, p)], {"kind": "node_prob"})
    evaluate_scores(path, tax, tmp_path / "m.json", batch_rows=7)
    out = json.loads((tmp_path / "m.json").read_text())
    want = brute_force(tax, p, g)
    for key in keys(tax.max_depth):
        assert out["units"][key] == "fraction", key
        if math.isnan(want[key]):
            assert out[key] is None, key
        else:
            assert out[key] == pytest.approx(want[key], abs=1e-12), key
    # units through the public helpers, {level} patterns resolved
    units = units_of([FAMILY])
    assert unit_of("level_acc_L3", units) == unit_of("top_down_acc_L1", units) == "fraction"
    assert all(units[k] == "fraction" for k in GLOBAL_KEYS)


def test_names_do_not_collide_with_other_families():
    mine = set(METRIC_FAMILIES.get(FAMILY).units)
    for name, cls in METRIC_FAMILIES.items():
        if name != FAMILY:
            assert not mine & set(cls.units), name
