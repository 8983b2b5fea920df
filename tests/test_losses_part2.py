"""Hierarchical training losses, part 2: softmargin, descendant_softmax, hxe, soft_labels.

Each loss is checked against a slow oracle written here with plain Python
loops over nodes and paths (no TreeOps, nothing from the method modules),
by a float64 gradient check, on degenerate inputs with closed-form values,
and for its hyper-parameter errors.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from loss_oracle import LEAF_NODES, NUM_FEATURES, PARENTS, Plain, build

from taxonbench.errors import TaxonbenchError
from taxonbench.methods.base import Method
from taxonbench.score_kinds import KINDS, node_scores
from taxonbench.taxonomy import Taxonomy

NAMES = ["softmargin", "descendant_softmax", "hxe", "soft_labels"]
# every method with each of its non-default options
VARIANTS = [
    ("softmargin", None),
    ("softmargin", {"margin": 1.5}),
    ("descendant_softmax", None),
    ("descendant_softmax", {"negatives": "all"}),
    ("descendant_softmax", {"balanced": False}),
    ("descendant_softmax", {"negatives": "all", "balanced": False}),
    ("hxe", None),
    ("hxe", {"alpha": 0.6}),
    ("hxe", {"alpha": 0.4, "weighting": "height"}),
    ("soft_labels", None),
    ("soft_labels", {"beta": 2.5}),
]


# ------------------------------------------------------------ plain-Python oracle (Plain: loss_oracle.py)
def logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def softmax(values):
    z = logsumexp(values)
    return [math.exp(v - z) for v in values]


def oracle_softmargin(tree, row, y, margin):
    theta = list(row)  # one score per node, root included
    y_node = tree.leaf_nodes[y]
    path = tree.path(y_node)
    shifted = [theta[v] + (0.0 if v in path else margin) for v in range(tree.n)]
    return -theta[y_node] + logsumexp(shifted)


def oracle_descendant_softmax(tree, row, y, negatives, balanced):
    theta = list(row)
    total = 0.0
    for a in tree.path(tree.leaf_nodes[y]):
        if negatives == "exclusive":
            related = set(tree.path(a)) | set(tree.subtree(a))
            others = [u for u in range(tree.n) if u not in related]
        else:
            others = [u for u in range(tree.n) if u != a]
        term = -theta[a] + logsumexp([theta[a]] + [theta[u] for u in others])
        weight = 1.0 / len(tree.leaves_under(a)) if balanced else 1.0
        total += weight * term
    return total


def oracle_hxe(tree, row, y, alpha, weighting):
    p_leaf = softmax(list(row))

    def mass(v):
        return sum(p_leaf[i] for i in tree.leaves_under(v))

    total = 0.0
    node = tree.leaf_nodes[y]
    while tree.parent[node] != -1:  # from the leaf upwards, one edge at a time
        parent = tree.parent[node]
        if weighting == "depth":
            weight = math.exp(-alpha * (tree.depth(node) - 1))
        else:
            weight = math.exp(-alpha * tree.height(node))
        total += -weight * math.log(mass(node) / mass(parent))
        node = parent
    return total


def oracle_soft_labels(tree, row, y, beta):
    p_leaf = softmax(list(row))
    h_max = tree.height(0)
    y_node = tree.leaf_nodes[y]
    weights = [math.exp(-beta * tree.height(tree.lca(c_node, y_node)) / h_max) for c_node in tree.leaf_nodes]
    q = [w / sum(weights) for w in weights]
    return -sum(q_c * math.log(p_c) for q_c, p_c in zip(q, p_leaf))


def oracle_loss(name, tree, rows, leaf, hp):
    values = []
    for row, y in zip(rows, leaf):
        if name == "softmargin":
            values.append(oracle_softmargin(tree, row, y, hp.margin))
        elif name == "descendant_softmax":
            values.append(oracle_descendant_softmax(tree, row, y, hp.negatives, hp.balanced))
        elif name == "hxe":
            values.append(oracle_hxe(tree, row, y, hp.alpha, hp.weighting))
        elif name == "soft_labels":
            values.append(oracle_soft_labels(tree, row, y, hp.beta))
    return sum(values) / len(values)


def raw_outputs(method, batch, scale=2.0, seed=1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, method.output_dim(), generator=g, dtype=dtype)


# ------------------------------------------------------------------ (1) oracles
@pytest.mark.parametrize("name,hparams", VARIANTS)
def test_loss_matches_oracle(name, hparams):
    method = build(name, hparams=hparams)
    tree = Plain(PARENTS, LEAF_NODES)
    outputs = raw_outputs(method, 8)
    leaf = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    want = oracle_loss(name, tree, outputs.tolist(), leaf.tolist(), method.hparams)
    assert float(method.loss(outputs, leaf)) == pytest.approx(want, abs=1e-6)
    # the float32 path agrees too
    assert float(method.loss(outputs.float(), leaf)) == pytest.approx(want, abs=1e-5)


def test_soft_label_targets_match_oracle_rows():
    method = build("soft_labels", hparams={"beta": 3.0})
    tree = Plain(PARENTS, LEAF_NODES)
    q = method.soft_targets(torch.arange(4), torch.float64)
    h_max = tree.height(0)
    for y, y_node in enumerate(LEAF_NODES):
        w = [math.exp(-3.0 * tree.height(tree.lca(c, y_node)) / h_max) for c in LEAF_NODES]
        np.testing.assert_allclose(q[y].numpy(), np.array(w) / sum(w), atol=1e-12)


# ----------------------------------------------------------- (2) gradient checks
@pytest.mark.parametrize("name,hparams", VARIANTS)
def test_gradcheck(name, hparams):
    method = build(name, hparams=hparams)
    outputs = raw_outputs(method, 4, scale=1.0, seed=5).requires_grad_(True)
    leaf = torch.tensor([0, 1, 2, 3])
    assert torch.autograd.gradcheck(lambda x: method.loss(x, leaf), (outputs,), eps=1e-6, atol=1e-5)


# -------------------------------------------------------- (3) degenerate inputs
@pytest.mark.parametrize("margin", [0.0, 5.0])
def test_softmargin_equal_logits_closed_form(margin):
    method = build("softmargin", hparams={"margin": margin})
    # leaf index 1 = node 3: path {0, 1, 3} (3 nodes at margin 0), 5 nodes at margin τ
    assert float(method.loss(torch.full((1, 8), 0.3), torch.tensor([1]))) == pytest.approx(
        math.log(3 + 5 * math.exp(margin)), rel=1e-6)
    # leaf index 0 = node 6: path {0, 2, 5, 6}, 4 nodes off it
    assert float(method.loss(torch.full((1, 8), -2.0), torch.tensor([0]))) == pytest.approx(
        math.log(4 + 4 * math.exp(margin)), rel=1e-6)


def test_softmargin_zero_margin_is_softmax_over_all_nodes():
    method = build("softmargin", hparams={"margin": 0.0})
    outputs = raw_outputs(method, 4, dtype=torch.float32)
    leaf = torch.tensor([0, 1, 2, 3])
    want = F.cross_entropy(outputs, torch.tensor(LEAF_NODES)[leaf])
    assert float(method.loss(outputs, leaf)) == pytest.approx(float(want), rel=1e-6)


def test_descendant_softmax_equal_logits_closed_form():
    method = build("descendant_softmax")
    # node 3: a=1 competes with {2,5,6,7}: ½·log 5; a=3 with {2,5,6,7,4}: log 6 (the root's term is 0)
    assert float(method.loss(torch.full((1, 8), 1.7), torch.tensor([1]))) == pytest.approx(
        0.5 * math.log(5) + math.log(6), rel=1e-6)
    # node 6: a=2 and a=5 each compete with {1,3,4}: ½·log 4 twice; a=6 with {1,3,4,7}: log 5
    assert float(method.loss(torch.zeros(1, 8), torch.tensor([0]))) == pytest.approx(
        math.log(4) + math.log(5), rel=1e-6)
    # "all": every term is log 8; weights 1/4 + 1/2 + 1 along root, 1, 3
    method = build("descendant_softmax", hparams={"negatives": "all"})
    assert float(method.loss(torch.zeros(1, 8), torch.tensor([1]))) == pytest.approx(1.75 * math.log(8), rel=1e-6)


@pytest.mark.parametrize("weighting", ["depth", "height"])
def test_hxe_alpha_zero_is_flat_cross_entropy(weighting):
    method = build("hxe", hparams={"alpha": 0.0, "weighting": weighting})
    outputs = raw_outputs(method, 6, dtype=torch.float32)
    leaf = torch.tensor([0, 1, 2, 3, 1, 0])
    assert float(method.loss(outputs, leaf)) == pytest.approx(float(F.cross_entropy(outputs, leaf)), rel=1e-6)


def test_hxe_equal_logits_closed_form():
    alpha = 0.5
    method = build("hxe", hparams={"alpha": alpha})
    # node 3: P(1 | 0) = P(3 | 1) = 1/2, weights 1 (depth 1) and e^{-α} (depth 2)
    assert float(method.loss(torch.zeros(1, 4), torch.tensor([1]))) == pytest.approx(
        (1 + math.exp(-alpha)) * math.log(2), rel=1e-6)
    # node 6: P(2 | 0) = 1/2, P(5 | 2) = 1 (only child), P(6 | 5) = 1/2 at depth 3
    assert float(method.loss(torch.full((1, 4), 4.0), torch.tensor([0]))) == pytest.approx(
        (1 + math.exp(-2 * alpha)) * math.log(2), rel=1e-6)
    # literal-height weighting: node 6 (height 0) weighs 1, node 2 (height 2) e^{-2α}
    method = build("hxe", hparams={"alpha": alpha, "weighting": "height"})
    assert float(method.loss(torch.zeros(1, 4), torch.tensor([0]))) == pytest.approx(
        (1 + math.exp(-2 * alpha)) * math.log(2), rel=1e-6)
    assert float(method.loss(torch.zeros(1, 4), torch.tensor([1]))) == pytest.approx(
        (1 + math.exp(-alpha)) * math.log(2), rel=1e-6)


def test_soft_labels_limits():
    outputs = raw_outputs(build("soft_labels"), 6, dtype=torch.float32)
    leaf = torch.tensor([0, 1, 2, 3, 1, 0])
    hard = build("soft_labels", hparams={"beta": 1e6})
    assert float(hard.loss(outputs, leaf)) == pytest.approx(float(F.cross_entropy(outputs, leaf)), rel=1e-6)
    uniform = build("soft_labels", hparams={"beta": 0.0})
    want = float(-F.log_softmax(outputs, dim=1).mean())
    assert float(uniform.loss(outputs, leaf)) == pytest.approx(want, rel=1e-6)
    # equal logits: log L whatever the target
    assert float(build("soft_labels").loss(torch.zeros(1, 4), torch.tensor([2]))) == pytest.approx(math.log(4))


@pytest.mark.parametrize("name,hparams", VARIANTS)
def test_huge_logits_stay_finite(name, hparams):
    method = build(name, hparams=hparams)
    g = torch.Generator().manual_seed(7)
    outputs = (3e4 * torch.randn(4, method.output_dim(), generator=g)).requires_grad_(True)
    for y in range(4):
        loss = method.loss(outputs, torch.full((4,), y))
        (grad,) = torch.autograd.grad(loss, outputs)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_single_leaf_chain(name):
    # root -> 1 -> 2: one leaf, only children everywhere
    method = build(name, tax=Taxonomy.from_parents([-1, 0, 1]))
    outputs = torch.tensor([[0.7, -1.3, 0.4]])[:, : method.output_dim()]
    loss = float(method.loss(outputs, torch.tensor([0])))
    if name == "softmargin":  # every node is on the path: a plain softmax over the 3 nodes
        assert loss == pytest.approx(-0.4 + logsumexp([0.7, -1.3, 0.4]), rel=1e-6)
    elif name == "descendant_softmax":  # no node is exclusive of another
        assert loss == pytest.approx(0.0, abs=1e-7)
    else:  # one class
        assert loss == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", NAMES)
def test_low_precision_outputs_give_float32_loss(name):
    method = build(name)
    outputs = raw_outputs(method, 3)
    leaf = torch.tensor([2, 0, 1])
    ref = float(method.loss(outputs, leaf))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        got = method.loss(outputs.to(dtype), leaf)
        assert got.dtype == torch.float32
        assert float(got) == pytest.approx(ref, rel=1e-5 if dtype == torch.float32 else 3e-2)


@pytest.mark.parametrize("name", NAMES)
def test_autocast_forward_then_loss_backward(name):
    method = build(name)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method(torch.randn(4, NUM_FEATURES))
    loss = method.loss(out, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in method.head.parameters())


# --------------------------------------------------------------- output layout
@pytest.mark.parametrize("name", NAMES)
def test_forward_width_kind_and_predictions(name):
    method = build(name).eval()
    tax = method.taxonomy
    kind = KINDS.get(method.output_kind)
    assert method.output_kind == ("subtree_softmax_logits" if name in ("softmargin", "descendant_softmax")
                                  else "leaf_logits")
    with torch.no_grad():
        out = method(torch.randn(6, NUM_FEATURES))
    assert out.shape == (6, kind.dim(tax)) == (6, method.output_dim())
    side = method.sidecar()
    assert side["kind"] == method.output_kind and side["dim"] == kind.dim(tax)
    p = node_scores(out.numpy(), tax, side)
    assert p.shape == (6, tax.n_nodes) and np.all((p >= 0) & (p <= 1 + 1e-9))
    # the overrides of predict_leaf agree with the kind's node-score rule
    assert torch.equal(method.predict_leaf(out), Method.predict_leaf(method, out))


@pytest.mark.parametrize("name", NAMES)
def test_constants_are_non_persistent_buffers(name):
    method = build(name)
    assert not any(k.startswith(("weight", "leaf_paths", "distance", "ancestor_table"))
                   for k in method.state_dict())
    assert set(method.state_dict()) == {"head.weight", "head.bias"}


# ------------------------------------------------------------ (4) hparam errors
@pytest.mark.parametrize("name,hparams,key", [
    ("softmargin", {"margin": "5"}, "margin"),
    ("softmargin", {"margin": -1.0}, "margin"),
    ("softmargin", {"tau": 5.0}, "tau"),
    ("descendant_softmax", {"negatives": 1}, "negatives"),
    ("descendant_softmax", {"negatives": "cousins"}, "negatives"),
    ("descendant_softmax", {"balanced": 1}, "balanced"),
    ("hxe", {"alpha": "0.1"}, "alpha"),
    ("hxe", {"alpha": -0.1}, "alpha"),
    ("hxe", {"weighting": "width"}, "weighting"),
    ("hxe", {"weighting": ["depth"]}, "weighting"),
    ("soft_labels", {"beta": [10]}, "beta"),
    ("soft_labels", {"beta": float("nan")}, "beta"),
    ("soft_labels", {"alpha": 1.0}, "alpha"),
])
def test_bad_hparams_name_the_key(name, hparams, key):
    with pytest.raises(TaxonbenchError, match=rf"methods\.{name}\.{key}"):
        build(name, hparams=hparams)
