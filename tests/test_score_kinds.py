"""Native node-score rules of every score kind vs. slow loops over paths and subtrees."""

import math

import numpy as np
import pytest

from taxonbench.errors import TaxonbenchError
from taxonbench.score_kinds import (BOTTOM_UP_KINDS, CONDITIONAL_KINDS, KINDS, NATIVE_KINDS, bottom_up_scores,
                                    conditional_probs, node_scores)
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


def path(v):
    out = [v]
    while PARENTS[out[-1]] != -1:
        out.append(PARENTS[out[-1]])
    return out[::-1]


def subtree(v):
    return [u for u in range(len(PARENTS)) if v in path(u)]


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def siblings(v):
    return [u for u in range(1, len(PARENTS)) if PARENTS[u] == PARENTS[v]]


def brute(kind, theta, temperature=1.0):
    n = len(PARENTS)
    full = [0.0] + list(theta) if len(theta) == n - 1 else list(theta)
    out = []
    for v in range(n):
        if kind == "leaf_logits":
            z = sum(math.exp(t) for t in theta)
            leaves = TAX.leaf_nodes.tolist()
            out.append(sum(math.exp(theta[i]) / z for i, u in enumerate(leaves) if u in subtree(v)))
        elif kind == "node_sigmoid_logits":
            out.append(1.0 if v == 0 else sigmoid(full[v]))
        elif kind == "sibling_softmax_logits":
            p = 1.0
            for u in path(v)[1:]:
                p *= math.exp(full[u]) / sum(math.exp(full[s]) for s in siblings(u))
            out.append(p)
        elif kind == "sibling_sigmoid_logits":
            out.append(math.prod(sigmoid(full[u]) for u in path(v)[1:]))
        elif kind == "path_sum_logits":
            out.append(1.0 if v == 0 else sigmoid(sum(full[u] for u in path(v)[1:]) / temperature))
        elif kind == "subtree_softmax_logits":
            z = sum(math.exp(t) for t in full)
            out.append(sum(math.exp(full[u]) / z for u in subtree(v)))
        elif kind == "level_softmax_logits":
            level = [u for u in range(n) if len(path(u)) == len(path(v))]
            out.append(1.0 if v == 0 else math.exp(full[v]) / sum(math.exp(full[u]) for u in level))
    return out


@pytest.mark.parametrize("kind", sorted(NATIVE_KINDS))
def test_rule_matches_brute_force(kind):
    dim = KINDS.get(kind).dim(TAX)
    theta = RNG.normal(0, 2, size=(5, dim))
    side = {"kind": kind, "temperature": 10.0}
    got = node_scores(theta, TAX, side)
    want = np.array([brute(kind, row, 10.0) for row in theta])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_level_softmax_conditionals_and_bottom_up():
    """Per-level scores: conditionals are the softmax over siblings; bottom-up sums the leaves' softmax."""
    theta = RNG.normal(0, 1, size=(3, len(PARENTS) - 1))
    side = {"kind": "level_softmax_logits"}
    full = np.c_[np.zeros(3), theta]
    cond = conditional_probs(theta, TAX, side)
    for v in range(1, len(PARENTS)):
        sib = siblings(v)
        np.testing.assert_allclose(cond[:, v], np.exp(full[:, v]) / np.exp(full[:, sib]).sum(axis=1))
    leaves = TAX.leaf_nodes.tolist()
    q = np.exp(full[:, leaves]) / np.exp(full[:, leaves]).sum(axis=1, keepdims=True)
    want = np.array([[sum(q[b, i] for i, u in enumerate(leaves) if u in subtree(v)) for v in range(len(PARENTS))]
                     for b in range(3)])
    np.testing.assert_allclose(bottom_up_scores(theta, TAX, side), want, rtol=1e-12)
    with pytest.raises(TaxonbenchError, match="no distribution over leaves"):
        bottom_up_scores(theta, TAX, {"kind": "node_sigmoid_logits"})


@pytest.mark.parametrize("kind", ["leaf_logits", "sibling_softmax_logits", "sibling_sigmoid_logits",
                                  "subtree_softmax_logits"])
def test_conditionals_multiply_back_to_node_scores(kind):
    dim = KINDS.get(kind).dim(TAX)
    theta = RNG.normal(0, 1, size=(4, dim))
    side = {"kind": kind}
    cond = conditional_probs(theta, TAX, side)
    product = np.array([[np.prod([c[u] for u in path(v)]) for v in range(len(PARENTS))] for c in cond])
    np.testing.assert_allclose(product, node_scores(theta, TAX, side), rtol=1e-10)
    if kind in ("leaf_logits", "sibling_softmax_logits"):  # children of a node share its whole mass
        np.testing.assert_allclose(cond[:, 1] + cond[:, 2], 1.0, rtol=1e-10)
        np.testing.assert_allclose(cond[:, 6] + cond[:, 7], 1.0, rtol=1e-10)


def test_wrong_width_and_kind():
    with pytest.raises(TaxonbenchError, match="must have 4 columns for this taxonomy; got 3"):
        node_scores(np.zeros((1, 3)), TAX, {"kind": "leaf_logits"})
    with pytest.raises(TaxonbenchError, match="unknown score kind 'probabilities'"):
        node_scores(np.zeros((1, 3)), TAX, {"kind": "probabilities"})
    with pytest.raises(TaxonbenchError, match="no conditional probabilities"):
        conditional_probs(np.zeros((1, 7)), TAX, {"kind": "node_sigmoid_logits"})


def test_rule_sets_follow_from_the_records():
    """Which kinds have conditionals / a bottom-up sum / node scores is read off the records."""
    assert CONDITIONAL_KINDS == {"sibling_softmax_logits", "sibling_sigmoid_logits", "leaf_logits",
                                 "subtree_softmax_logits", "level_softmax_logits"}
    assert BOTTOM_UP_KINDS == {"leaf_logits", "subtree_softmax_logits", "level_softmax_logits"}
    assert NATIVE_KINDS == {"leaf_logits", "node_sigmoid_logits", "sibling_softmax_logits", "sibling_sigmoid_logits",
                            "path_sum_logits", "subtree_softmax_logits", "level_softmax_logits"}
    assert "embeddings" in KINDS and "node_set" in KINDS and "node_prob" in KINDS


def test_embeddings_have_no_node_scores_and_take_their_width_from_the_sidecar():
    side = {"kind": "embeddings", "dim": 8}
    with pytest.raises(TaxonbenchError, match="'embeddings' have no node scores"):
        node_scores(np.zeros((2, 8)), TAX, side)
    with pytest.raises(TaxonbenchError, match="must have 8 columns"):
        node_scores(np.zeros((2, 5)), TAX, side)
