"""Top-down, advanced top-down (HiE) and diffusion (HCCF Eq. 3–6) vs. hand-made references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from brute_tree import taxonomies
from hypothesis import given, settings
from hypothesis import strategies as st

from taxonbench.errors import TaxonbenchError
from taxonbench.inference import INFERENCE, run_inference
from taxonbench.inference.diffusion import DiffusionOperator
from taxonbench.matrix_io import iter_matrix, write_matrix
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy

#        0
#      /   \
#     1     2
#    / \     \
#   3   4     5
#            / \
#           6   7
PARENTS = [-1, 0, 0, 1, 1, 2, 5, 5]
TAX = Taxonomy.from_parents(PARENTS)
RNG = np.random.default_rng(0)


def make(name: str, kind: str, tax: Taxonomy = TAX, **options):
    inference = INFERENCE.get(name)(tax, options)
    inference.check({"kind": kind, "method": "m"}, "test")
    return inference


def path(v: int, parents=PARENTS) -> list[int]:
    out = [v]
    while parents[out[-1]] != -1:
        out.append(parents[out[-1]])
    return out[::-1]


def siblings(v: int) -> list[int]:
    return [u for u in range(1, len(PARENTS)) if PARENTS[u] == PARENTS[v]]


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


# ------------------------------------------------------------------ top-down
def brute_top_down(kind: str, theta: np.ndarray) -> list[float]:
    full = [0.0, *theta]  # non-root vector -> by node id
    out = []
    for v in range(len(PARENTS)):
        p = 1.0
        for u in path(v)[1:]:
            if kind == "sibling_softmax_logits":
                p *= math.exp(full[u]) / sum(math.exp(full[s]) for s in siblings(u))
            else:
                p *= sigmoid(full[u])
        out.append(p)
    return out


@pytest.mark.parametrize("kind", ["sibling_softmax_logits", "sibling_sigmoid_logits"])
def test_top_down_is_the_product_of_conditionals(kind):
    theta = RNG.normal(0, 2, size=(6, len(PARENTS) - 1))
    got = make("top_down", kind)(theta)
    assert got.dtype == np.float32 and got.shape == (6, len(PARENTS))
    want = np.array([brute_top_down(kind, row) for row in theta])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("kind", ["leaf_logits", "subtree_softmax_logits"])
def test_top_down_equals_bottom_up_without_conditional_outputs(kind):
    dim = TAX.n_leaves if kind == "leaf_logits" else TAX.n_nodes
    theta = RNG.normal(0, 3, size=(8, dim))
    theta[0, 0] = -800.0  # a leaf with probability 0: its conditional is 0, the product too
    np.testing.assert_allclose(make("top_down", kind)(theta), make("bottom_up", kind)(theta), rtol=1e-6, atol=1e-7)


def test_top_down_wrong_width():
    with pytest.raises(TaxonbenchError, match="must have 7 columns"):
        make("top_down", "sibling_softmax_logits")(np.zeros((2, 5)))


# --------------------------------------------------------- advanced top-down
#        0
#      /   \
#     1     2          leaves 3, 4, 5 under 1; leaf 6 under 2
#   / | \    \
#  3  4  5    6
HIE = Taxonomy.from_parents([-1, 0, 0, 1, 1, 1, 2])


def test_advanced_top_down_marginalised_by_hand():
    q = np.array([[0.1, 0.2, 0.3, 0.4]])  # leaf softmax
    # coarse factors: mean fine probability in the parent: c(1) = 0.6 / 3 = 0.2, c(2) = 0.4 / 1
    # amended ∝ [0.02, 0.04, 0.06, 0.16], sum 0.28
    leaves = np.array([1, 2, 3, 8]) / 14
    want = np.r_[1.0, leaves[:3].sum(), leaves[3], leaves]
    for options in ({}, {"coarse": "marginalize"}):  # auto = marginalize for leaf logits
        got = make("advanced_top_down", "leaf_logits", HIE, **options)(np.log(q))
        assert got.dtype == np.float32
        np.testing.assert_allclose(got[0], want, rtol=1e-6)


def test_advanced_top_down_native_by_hand():
    q = np.array([[0.1, 0.2, 0.3, 0.4]])
    # native factor of a leaf-only model: the bottom-up sum, c(1) = 0.6, c(2) = 0.4
    leaves = np.array([0.06, 0.12, 0.18, 0.16]) / 0.52
    got = make("advanced_top_down", "leaf_logits", HIE, coarse="native")(np.log(q))
    np.testing.assert_allclose(got[0], np.r_[1.0, leaves[:3].sum(), leaves[3], leaves], rtol=1e-6)

    # cond softmax: p(1) = 3/4, p(2) = 1/4; p(3|1), p(4|1), p(5|1) = 1/4, 1/2, 1/4; p(6|2) = 1
    theta = np.log([[3.0, 1.0, 1.0, 2.0, 1.0, 5.0]])
    # leaves q = [3/16, 3/8, 3/16, 1/4]; × native c = [3/4, 3/4, 3/4, 1/4]; renormalised
    leaves = np.array([0.140625, 0.28125, 0.140625, 0.0625]) / 0.625
    want = np.r_[1.0, 0.9, 0.1, leaves]
    for options in ({}, {"coarse": "native"}):  # auto = native for kinds scoring internal nodes
        got = make("advanced_top_down", "sibling_softmax_logits", HIE, **options)(theta)
        np.testing.assert_allclose(got[0], want, rtol=1e-6)
    # marginalised instead: c(1) = (3/4) / 3 = c(2) = 1/4, the leaf probabilities stay as they are
    got = make("advanced_top_down", "sibling_softmax_logits", HIE, coarse="marginalize")(theta)
    np.testing.assert_allclose(got[0], [1.0, 0.75, 0.25, 3 / 16, 3 / 8, 3 / 16, 1 / 4], rtol=1e-6)


def test_advanced_top_down_is_a_distribution_and_survives_underflow():
    theta = RNG.normal(0, 3, size=(5, HIE.n_nodes - 1))
    theta[0] = -1000.0  # every sigmoid 0: no mass anywhere -> uniform leaves
    got = make("advanced_top_down", "sibling_sigmoid_logits", HIE)(theta)
    np.testing.assert_allclose(got[:, 0], 1.0, rtol=1e-6)
    np.testing.assert_allclose(got[:, 3:].sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(got[0], [1.0, 0.75, 0.25, 0.25, 0.25, 0.25, 0.25], rtol=1e-6)


def test_advanced_top_down_options():
    with pytest.raises(TaxonbenchError, match=r"inference_options.advanced_top_down.coarse: must be one of .*'sum'"):
        INFERENCE.get("advanced_top_down")(HIE, {"coarse": "sum"})
    with pytest.raises(TaxonbenchError, match=r"inference_options.advanced_top_down.corse: unknown key"):
        INFERENCE.get("advanced_top_down")(HIE, {"corse": "native"})


# ----------------------------------------------------------------- diffusion
def reference_w_n(parents: list[int]) -> np.ndarray:
    """HCCF Eq. 3 with dense loops: W symmetric 0/1 parent-child, D = diag(W 1)."""
    n = len(parents)
    w = np.zeros((n, n))
    for v, p in enumerate(parents):
        if p >= 0:
            w[v, p] = w[p, v] = 1.0
    d = w.sum(axis=1)
    inv = np.array([1 / math.sqrt(x) if x > 0 else 0.0 for x in d])
    return inv[:, None] * w * inv[None, :]


def test_diffusion_adjacency_and_degrees():
    op = DiffusionOperator(TAX, 0.5)
    np.testing.assert_array_equal(op.degree, [2, 3, 2, 1, 1, 3, 1, 1])
    w = op.W.toarray()
    assert np.array_equal(w, w.T) and np.all(np.diag(w) == 0) and set(np.unique(w)) == {0.0, 1.0}
    assert w.sum() == 2 * (len(PARENTS) - 1)
    np.testing.assert_array_equal(op.edges, [[v, PARENTS[v]] for v in range(1, len(PARENTS))])
    w_n = op.W_n.toarray()
    np.testing.assert_allclose(w_n, w_n.T, atol=0)
    np.testing.assert_allclose(w_n, reference_w_n(PARENTS), rtol=1e-15)
    assert w_n[5, 6] == pytest.approx(1 / math.sqrt(3))  # degrees 3 and 1
    # uniform edge weights give the same normalised matrix; other weights are Eq. 3 of the weighted W
    np.testing.assert_allclose(op.normalized_adjacency(np.full(7, 2.5)).toarray(), w_n, rtol=1e-14)


def test_diffusion_iteration_converges_to_the_closed_form():
    op = DiffusionOperator(TAX, 0.9)
    f0 = RNG.random((4, len(PARENTS)))
    closed = op.apply(f0)
    np.testing.assert_allclose(op.iterate(f0, 500), closed, atol=1e-8, rtol=0)
    # one step of Eq. 4 by hand
    w_n = reference_w_n(PARENTS)
    np.testing.assert_allclose(op.iterate(f0, 1), (0.9 * w_n @ f0.T + 0.1 * f0.T).T, atol=1e-14)
    np.testing.assert_allclose(op.apply(f0[0]), closed[0], atol=1e-15)  # a single vector


@settings(max_examples=60, deadline=None)
@given(tax=taxonomies(max_nodes=16), alpha=st.floats(0.01, 0.99), rows=st.integers(1, 7),
       block=st.integers(1, 4), seed=st.integers(0, 2**32 - 1))
def test_diffusion_closed_form_equals_dense_inverse(tax, alpha, rows, block, seed):
    n = tax.n_nodes
    f0 = np.random.default_rng(seed).normal(size=(rows, n))
    dense = (1 - alpha) * np.linalg.inv(np.eye(n) - alpha * reference_w_n(tax.parent.tolist()))
    want = f0 @ dense.T  # f* = (1 − α)(I − αW_n)^{-1} f0, one sample per row
    op = DiffusionOperator(tax, alpha, block_rows=block)  # several blocks, shuffled ids
    np.testing.assert_allclose(op.apply(f0), want, atol=1e-10, rtol=0)
    m = op.dense_matrix()
    assert np.array_equal(m, m.T)
    np.testing.assert_allclose(m, dense, atol=1e-10, rtol=0)
    np.testing.assert_allclose(op.apply_splu(f0), want, atol=1e-10, rtol=0)
    np.testing.assert_allclose(op.system_matrix().toarray(), np.eye(n) - alpha * op.W_n.toarray(), atol=0)


@pytest.mark.parametrize("alpha", [0, 1, 0.0, 1.0, -0.2, 1.5, float("nan"), float("inf")])
def test_diffusion_alpha_outside_the_open_interval(alpha):
    with pytest.raises(TaxonbenchError, match=r"inference_options\.diffusion\.alpha: must be a finite number > 0 and < 1") as e:
        INFERENCE.get("diffusion")(TAX, {"alpha": alpha})
    assert repr(alpha) in str(e.value)


@pytest.mark.parametrize("alpha", ["0.5", True, None, [0.5]])
def test_diffusion_alpha_not_a_number(alpha):
    with pytest.raises(TaxonbenchError, match=r"inference_options\.diffusion\.alpha"):
        INFERENCE.get("diffusion")(TAX, {"alpha": alpha})


def test_diffusion_unknown_option():
    with pytest.raises(TaxonbenchError, match=r"inference_options\.diffusion\.alfa: unknown key \(did you mean 'alpha'"):
        INFERENCE.get("diffusion")(TAX, {"alfa": 0.3})


@pytest.mark.parametrize(("name", "kind"), [("top_down", "node_sigmoid_logits"), ("top_down", "path_sum_logits"),
                                            ("advanced_top_down", "node_sigmoid_logits"),
                                            ("diffusion", "probabilities")])
def test_inapplicable_kind(tmp_path, name, kind):
    path = tmp_path / "logits.parquet"
    write_matrix(path, "scores", [(np.array(["a"]), np.array([0]), np.zeros((1, 7)))],
                 {"kind": kind, "method": "some_method", "split": "test"})
    with pytest.raises(TaxonbenchError, match=rf"inference '{name}' cannot use the outputs of method 'some_method'"):
        run_inference(INFERENCE.get(name)(TAX), path, tmp_path / "out.parquet")


@pytest.mark.parametrize("kind", ["leaf_logits", "node_sigmoid_logits", "path_sum_logits"])
def test_diffusion_end_to_end(tmp_path, kind):
    dim = TAX.n_leaves if kind == "leaf_logits" else TAX.n_nodes - 1
    theta = RNG.normal(0, 2, size=(11, dim))
    sidecar = {"kind": kind, "method": "m", "split": "test", "temperature": 10.0}
    path = tmp_path / "logits.parquet"
    write_matrix(path, "scores", [(np.arange(11).astype(str), np.zeros(11, dtype=int), theta)], sidecar)
    inference = INFERENCE.get("diffusion")(TAX, {"alpha": 0.3})
    assert run_inference(inference, path, tmp_path / "out.parquet", batch_rows=4) == 11
    got = np.concatenate([m for _, _, m in iter_matrix(tmp_path / "out.parquet", "node_prob", 100)])
    f0 = node_scores(theta, TAX, sidecar)
    want = f0 @ (0.7 * np.linalg.inv(np.eye(8) - 0.3 * reference_w_n(PARENTS)))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
