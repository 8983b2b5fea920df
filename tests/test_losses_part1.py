"""Hierarchical training losses, part 1: multilabel_focal, cond_softmax, cond_sigmoid, deep_rtc, ps_softmax.

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

from loss_oracle import LEAF_NODES, NUM_FEATURES, PARENTS, Plain, build

from taxonbench.errors import TaxonbenchError
from taxonbench.methods.base import Method
from taxonbench.score_kinds import KINDS, node_scores
from taxonbench.taxonomy import Taxonomy

NAMES = ["multilabel_focal", "cond_softmax", "cond_sigmoid", "deep_rtc", "ps_softmax"]


# ------------------------------------------------------------ plain-Python oracle (Plain: loss_oracle.py)
def node_theta(row):
    """Non-root output row -> {node: θ}; entry j is node j + 1."""
    return {j + 1: float(x) for j, x in enumerate(row)}


def log_sigmoid(x):
    return -math.log1p(math.exp(-x)) if x >= 0 else x - math.log1p(math.exp(x))


def logsumexp(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def oracle_multilabel_focal(tree, row, y, gamma, alpha):
    theta = node_theta(row)
    on_path = set(tree.path(tree.leaf_nodes[y]))
    total = 0.0
    for v in range(1, tree.n):
        t = 1.0 if v in on_path else 0.0
        p = 1.0 / (1.0 + math.exp(-theta[v]))
        bce = -(t * log_sigmoid(theta[v]) + (1 - t) * log_sigmoid(-theta[v]))
        p_t = p if t else 1 - p
        a_t = 1.0 if alpha == -1 else (alpha if t else 1 - alpha)  # -1: no α-weighting
        total += a_t * (1 - p_t) ** gamma * bce
    return total


def oracle_cond_softmax(tree, row, y):
    theta = node_theta(row)
    total = 0.0
    for v in tree.path(tree.leaf_nodes[y])[1:]:
        siblings = tree.children[tree.parent[v]]  # v included
        total += -(theta[v] - logsumexp([theta[w] for w in siblings]))
    return total


def oracle_cond_sigmoid(tree, row, y):
    theta = node_theta(row)
    path = tree.path(tree.leaf_nodes[y])
    total = 0.0
    for u in path:
        for c in tree.children[u]:  # positives (on the path) and their siblings (negatives)
            if c in path:
                total += -log_sigmoid(theta[c])
            else:
                total += -log_sigmoid(-theta[c])
    return total


def path_sums(tree, row):
    theta = node_theta(row)
    return {v: sum(theta[u] for u in tree.path(v)[1:]) for v in range(tree.n)}


def oracle_frontier(tree, collapsed):
    """Walk down from the root; stop at leaves and at collapsed nodes."""
    out, stack = [], list(tree.children[0])
    while stack:
        v = stack.pop()
        if not tree.children[v] or v in collapsed:
            out.append(v)
        else:
            stack.extend(tree.children[v])
    return out


def oracle_deep_rtc(tree, row, y, collapsed=()):
    s = path_sums(tree, row)
    front = oracle_frontier(tree, set(collapsed))
    (target,) = [v for v in front if v in tree.path(tree.leaf_nodes[y])]
    return -s[target] + logsumexp([s[v] for v in front])


def oracle_ps_leaf_logits(tree, row):
    s = path_sums(tree, row)
    return [s[v] for v in tree.leaf_nodes]


def oracle_ps_softmax(tree, row, y):
    z = oracle_ps_leaf_logits(tree, row)
    return -z[y] + logsumexp(z)


def oracle_loss(name, tree, rows, leaf, hp=None, collapsed=None):
    values = []
    for b, (row, y) in enumerate(zip(rows, leaf)):
        if name == "multilabel_focal":
            values.append(oracle_multilabel_focal(tree, row, y, hp.gamma, hp.alpha))
        elif name == "cond_softmax":
            values.append(oracle_cond_softmax(tree, row, y))
        elif name == "cond_sigmoid":
            values.append(oracle_cond_sigmoid(tree, row, y))
        elif name == "deep_rtc":
            values.append(oracle_deep_rtc(tree, row, y, () if collapsed is None else collapsed[b]))
        elif name == "ps_softmax":
            values.append(oracle_ps_softmax(tree, row, y))
    return sum(values) / len(values)


def raw_outputs(method, batch, scale=2.0, seed=1, dtype=torch.float64):
    """Random head outputs θ: n-1 per row (for ps_softmax too: its head's width)."""
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(batch, method.taxonomy.n_nodes - 1, generator=g, dtype=dtype)


def loss_of_theta(method, theta, leaf):
    """The loss as a function of the head outputs θ (ps_softmax dumps leaf logits made from θ)."""
    outputs = method.leaf_logits(theta) if method.name == "ps_softmax" else theta
    return method.loss(outputs, leaf)


def fixed_cut(method, collapsed_sets):
    """Make deep_rtc's random cut deterministic: row b collapses the nodes in collapsed_sets[b]."""
    n = method.taxonomy.n_nodes

    def sample(batch, device):
        mask = torch.zeros(batch, n, dtype=torch.bool, device=device)
        for b, nodes in enumerate(collapsed_sets):
            mask[b, list(nodes)] = True
        return mask

    method.sample_collapsed = sample


# ------------------------------------------------------------------ (1) oracles
@pytest.mark.parametrize("name,hparams", [
    ("multilabel_focal", None),
    ("multilabel_focal", {"gamma": 2.0, "alpha": 0.25}),
    ("multilabel_focal", {"gamma": 0.0, "alpha": -1.0}),
    ("cond_softmax", None),
    ("cond_sigmoid", None),
    ("deep_rtc", None),
    ("ps_softmax", None),
])
def test_loss_matches_oracle(name, hparams):
    method = build(name, hparams=hparams)
    tree = Plain(PARENTS, LEAF_NODES)
    theta = raw_outputs(method, 8)
    leaf = torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    got = float(loss_of_theta(method, theta, leaf))
    want = oracle_loss(name, tree, theta.tolist(), leaf.tolist(), method.hparams)
    assert got == pytest.approx(want, abs=1e-6)


def test_deep_rtc_random_cut_matches_oracle():
    method = build("deep_rtc", hparams={"rho": 0.5})
    tree = Plain(PARENTS, LEAF_NODES)
    # internal non-root nodes are 1, 2, 5; 5 below a collapsed 2 is pruned away with it
    cuts = [set(), {1}, {2}, {5}, {1, 5}, {2, 5}, {1, 2, 5}, {1, 2}]
    fixed_cut(method, cuts)
    theta = raw_outputs(method, len(cuts), seed=3)
    leaf = torch.tensor([0, 1, 0, 2, 3, 2, 1, 0])
    got = float(method.loss(theta, leaf))
    want = oracle_loss("deep_rtc", tree, theta.tolist(), leaf.tolist(), collapsed=cuts)
    assert got == pytest.approx(want, abs=1e-6)


def test_deep_rtc_frontier_and_sampling():
    method = build("deep_rtc", hparams={"rho": 0.3})
    tree = Plain(PARENTS, LEAF_NODES)
    torch.manual_seed(0)
    collapsed = method.sample_collapsed(4000, torch.device("cpu"))
    # only internal non-root nodes are ever collapsed, each about rho of the time
    assert not collapsed[:, [0, 3, 4, 6, 7]].any()
    rates = collapsed[:, [1, 2, 5]].float().mean(0)
    assert torch.all((rates - 0.3).abs() < 0.04)
    front = method.frontier(collapsed[:50])
    for b in range(50):
        nodes = set(np.flatnonzero(collapsed[b].numpy()).tolist())
        assert sorted(np.flatnonzero(front[b].numpy()).tolist()) == sorted(oracle_frontier(tree, nodes))


def test_ps_softmax_forward_gives_leaf_path_sums():
    method = build("ps_softmax")
    tree = Plain(PARENTS, LEAF_NODES)
    images = torch.randn(3, NUM_FEATURES)
    with torch.no_grad():
        theta = method.head(images)
        out = method(images)
    want = [oracle_ps_leaf_logits(tree, row) for row in theta.double().tolist()]
    np.testing.assert_allclose(out.numpy(), np.array(want), atol=1e-6)


# ----------------------------------------------------------- (2) gradient checks
@pytest.mark.parametrize("name,hparams", [
    ("multilabel_focal", None),
    ("multilabel_focal", {"gamma": 2.0, "alpha": 0.25}),
    ("cond_softmax", None),
    ("cond_sigmoid", None),
    ("deep_rtc", None),
    ("deep_rtc", {"rho": 0.5}),
    ("ps_softmax", None),
])
def test_gradcheck(name, hparams):
    method = build(name, hparams=hparams)
    if name == "deep_rtc" and hparams:
        fixed_cut(method, [{1}, {2}, {5}, set()])
    theta = raw_outputs(method, 4, scale=1.0, seed=5).requires_grad_(True)
    leaf = torch.tensor([0, 1, 2, 3])
    assert torch.autograd.gradcheck(lambda x: loss_of_theta(method, x, leaf), (theta,), eps=1e-6, atol=1e-5)


# -------------------------------------------------------- (3) degenerate inputs
def test_focal_closed_form_at_zero_logits():
    gamma, alpha = 1.0, 0.95
    method = build("multilabel_focal", hparams={"gamma": gamma, "alpha": alpha})
    leaf = torch.tensor([0])  # node 6: positives 2, 5, 6; negatives 1, 3, 4, 7
    loss = float(method.loss(torch.zeros(1, 7), leaf))
    per_node = 0.5 ** gamma * math.log(2)
    assert loss == pytest.approx(3 * alpha * per_node + 4 * (1 - alpha) * per_node, rel=1e-6)


def test_cond_softmax_equal_logits_give_log_sibling_counts():
    method = build("cond_softmax")
    # leaf index 0 = node 6: log 2 (root's children) + log 1 (only child 5) + log 2; node 3: log 2 + log 2
    loss = method.loss(torch.full((2, 7), 3.0), torch.tensor([0, 1]))
    assert float(loss) == pytest.approx(2 * math.log(2), rel=1e-6)


def test_cond_sigmoid_zero_logits_count_the_terms():
    method = build("cond_sigmoid")
    # node 6: children of 0, 2, 5 = {1, 2}, {5}, {6, 7}: 5 terms; node 3: {1, 2}, {3, 4}: 4 terms
    loss = method.loss(torch.zeros(2, 7), torch.tensor([0, 1]))
    assert float(loss) == pytest.approx(4.5 * math.log(2), rel=1e-6)


def test_deep_rtc_full_cut_is_softmax_over_root_children():
    method = build("deep_rtc", hparams={"rho": 1.0})
    theta = raw_outputs(method, 2, dtype=torch.float32)
    leaf = torch.tensor([0, 1])  # node 6 under 2, node 3 under 1
    want = torch.nn.functional.cross_entropy(theta[:, [0, 1]], torch.tensor([1, 0]))
    assert float(method.loss(theta, leaf)) == pytest.approx(float(want), rel=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_single_leaf_chain_gives_zero_or_known(name):
    # root -> 1 -> 2: one leaf, only children everywhere
    method = build(name, tax=Taxonomy.from_parents([-1, 0, 1]))
    theta = torch.tensor([[0.7, -1.3]])
    loss = float(loss_of_theta(method, theta, torch.tensor([0])))
    if name == "multilabel_focal":
        tree = Plain([-1, 0, 1], [2])
        hp = method.hparams
        assert loss == pytest.approx(oracle_multilabel_focal(tree, [0.7, -1.3], 0, hp.gamma, hp.alpha), rel=1e-5)
    elif name == "cond_sigmoid":
        assert loss == pytest.approx(-log_sigmoid(0.7) - log_sigmoid(-1.3), rel=1e-5)
    else:  # one class: the softmax losses vanish
        assert loss == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_huge_logits_stay_finite(name):
    method = build(name, hparams={"rho": 0.5} if name == "deep_rtc" else None)
    theta = (torch.tensor([[1e4, -1e4, 3e4, -2e4, 1e4, -1e4, 5e3]])).requires_grad_(True)
    for y in range(4):
        loss = loss_of_theta(method, theta, torch.tensor([y]))
        (grad,) = torch.autograd.grad(loss, theta)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()


@pytest.mark.parametrize("name", NAMES)
def test_low_precision_outputs_give_float32_loss(name):
    method = build(name)
    theta = raw_outputs(method, 3, dtype=torch.float64)
    leaf = torch.tensor([2, 0, 1])
    outputs = method.leaf_logits(theta) if name == "ps_softmax" else theta
    ref = float(method.loss(outputs, leaf))
    for dtype in (torch.float32, torch.float16):
        got = method.loss(outputs.to(dtype), leaf)
        assert got.dtype == torch.float32
        assert float(got) == pytest.approx(ref, rel=1e-2 if dtype == torch.float16 else 1e-5)


# --------------------------------------------------------------- output layout
@pytest.mark.parametrize("name", NAMES)
def test_forward_width_kind_and_predictions(name):
    method = build(name).eval()
    tax = method.taxonomy
    kind = KINDS.get(method.output_kind)
    with torch.no_grad():
        out = method(torch.randn(6, NUM_FEATURES))
    assert out.shape == (6, kind.dim(tax)) == (6, method.output_dim())
    side = method.sidecar()
    assert side["kind"] == method.output_kind and side["dim"] == kind.dim(tax)
    p = node_scores(out.numpy(), tax, side)
    assert p.shape == (6, tax.n_nodes) and np.all((p >= 0) & (p <= 1 + 1e-9))
    # overrides of predict_leaf agree with the kind's node-score rule
    assert torch.equal(method.predict_leaf(out), Method.predict_leaf(method, out))


def test_deep_rtc_sidecar_temperature():
    assert build("deep_rtc").sidecar()["temperature"] == 10.0
    assert build("deep_rtc", hparams={"temperature": 2.5}).sidecar()["temperature"] == 2.5


# ------------------------------------------------------------ (4) hparam errors
@pytest.mark.parametrize("name,hparams,key", [
    ("multilabel_focal", {"gamma": "one"}, "gamma"),
    ("multilabel_focal", {"alpha": [0.9]}, "alpha"),
    ("multilabel_focal", {"alpha": 1.5}, "alpha"),
    ("multilabel_focal", {"gamma": -1.0}, "gamma"),
    ("deep_rtc", {"rho": "0.1"}, "rho"),
    ("deep_rtc", {"temperature": True}, "temperature"),
    ("deep_rtc", {"rho": 1.5}, "rho"),
    ("deep_rtc", {"temperature": 0}, "temperature"),
    ("cond_softmax", {"tau": 1.0}, "tau"),  # no hyper-parameters: any key is unknown
    ("cond_sigmoid", {"alpha": 0.5}, "alpha"),
    ("ps_softmax", {"temperature": 1.0}, "temperature"),
])
def test_bad_hparams_name_the_key(name, hparams, key):
    with pytest.raises(TaxonbenchError, match=rf"methods\.{name}\.{key}"):
        build(name, hparams=hparams)


@pytest.mark.parametrize("name", NAMES)
def test_autocast_forward_then_loss_backward(name):
    # as in training: forward under autocast (bfloat16 on CPU), loss outside it
    method = build(name, hparams={"rho": 0.5} if name == "deep_rtc" else None)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = method(torch.randn(4, NUM_FEATURES))
    loss = method.loss(out, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in method.head.parameters())
