"""Differentiable diffusion: starts at diffusion's closed form, learns on the train split, saves and loads.

The closed form is checked against ``taxonbench.inference.diffusion`` (and,
independently, a dense inverse written out here); the training loss against a
numpy re-statement of the per-level cross-entropy.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from taxonbench.errors import TaxonbenchError
from taxonbench.inference import INFERENCE, run_inference
from taxonbench.inference.diffusion import DEFAULT_ALPHA, DiffusionOperator
from taxonbench.inference._learned_maps import EdgeDiffusion, build_map
from taxonbench.inference.differentiable_diffusion import DEFAULTS, DifferentiableDiffusion, resolve_options
from taxonbench.matrix_io import iter_matrix, write_matrix
from taxonbench.score_kinds import KINDS, node_scores
from taxonbench.taxonomy import Taxonomy

#        0
#      /   \
#     1     2
#    / \     \
#   3   4     5
#            / \
#           6   7
SMALL = Taxonomy.from_parents([-1, 0, 0, 1, 1, 2, 5, 5])


def random_tree(n_nodes: int, seed: int) -> Taxonomy:
    """A random recursive tree: node i hangs under a uniformly drawn earlier node (ragged leaf depths)."""
    rng = np.random.default_rng(seed)
    return Taxonomy.from_parents([-1] + [int(rng.integers(0, i)) for i in range(1, n_nodes)])


def dense_closed_form(tax: Taxonomy, alpha: float) -> np.ndarray:
    """(1 − α)(I − α D^{-1/2} W D^{-1/2})^{-1}, W the 0/1 parent–child adjacency (HCCF Eq. 6)."""
    n = tax.n_nodes
    w = np.zeros((n, n))
    for v in range(1, n):
        w[v, tax.parent[v]] = w[tax.parent[v], v] = 1.0
    d = w.sum(1)
    return (1 - alpha) * np.linalg.inv(np.eye(n) - alpha * w / np.sqrt(np.outer(d, d)))


def write_logits(path, tax: Taxonomy, scores: np.ndarray, leaf: np.ndarray, kind: str = "leaf_logits",
                 method: str = "flat_softmax"):
    ids = np.array([f"s{i}" for i in range(len(leaf))])
    batches = [(ids[i:i + 64], leaf[i:i + 64], scores[i:i + 64]) for i in range(0, len(leaf), 64)]
    write_matrix(path, "scores", batches, {"kind": kind, "method": method, "split": "train",
                                           "dim": scores.shape[1]})
    return path


def noisy_leaf_logits(tax: Taxonomy, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Leaf logits of known leaves: a bump at the true leaf, a smaller one at its siblings, noise."""
    rng = np.random.default_rng(seed)
    leaf = rng.integers(0, tax.n_leaves, n)
    leaf_parent = tax.parent[tax.leaf_nodes]
    logits = rng.normal(0.0, 1.2, (n, tax.n_leaves))
    logits += 1.0 * (leaf_parent[None, :] == leaf_parent[leaf][:, None])
    logits[np.arange(n), leaf] += 1.5
    return logits.astype(np.float32), leaf


def level_nll(f_star: np.ndarray, tax: Taxonomy, leaf: np.ndarray) -> float:
    """Mean over levels of the mean −log(f*_target / Σ_level f*), written with loops."""
    per_level = []
    for d in range(1, tax.max_depth + 1):
        nodes = tax.nodes_at_depth(d)
        terms = []
        for row, y in zip(f_star, leaf):
            target = tax.ancestor_table[tax.leaf_nodes[y], d]
            if target >= 0:
                terms.append(-np.log(row[target] / row[nodes].sum()))
        if terms:
            per_level.append(np.mean(terms))
    return float(np.mean(per_level))


def infer(tax, state, logits_path, **options) -> np.ndarray:
    inference = DifferentiableDiffusion(tax, {"state": str(state), **options})
    out = logits_path.parent / f"scores-{state.stem}.parquet"
    run_inference(inference, logits_path, out)
    return np.concatenate([m for _, _, m in iter_matrix(out, "node_prob")])


FAST = {"epochs": 25, "batch_size": 128, "lr": 0.05}


# ------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("alpha", [0.2, 0.7])
def test_edge_map_at_init_is_the_closed_form(alpha):
    tax = random_tree(30, 1)
    f0 = np.random.default_rng(0).random((9, tax.n_nodes))
    got = EdgeDiffusion(tax, alpha)(torch.as_tensor(f0)).detach().numpy()
    np.testing.assert_allclose(got, f0 @ dense_closed_form(tax, alpha).T, atol=1e-12)
    np.testing.assert_allclose(got, DiffusionOperator(tax, alpha).apply(f0), atol=1e-10)


def test_edge_map_with_weights_is_the_weighted_closed_form():
    tax = random_tree(20, 2)
    alpha, rng = 0.6, np.random.default_rng(1)
    model = EdgeDiffusion(tax, alpha)
    with torch.no_grad():
        model.log_weight.copy_(torch.as_tensor(rng.normal(0, 1, tax.n_nodes - 1)))
    w = np.zeros((tax.n_nodes, tax.n_nodes))
    for v in range(1, tax.n_nodes):
        w[v, tax.parent[v]] = w[tax.parent[v], v] = float(torch.exp(model.log_weight[v - 1].detach()))
    d = w.sum(1)
    want = (1 - alpha) * np.linalg.inv(np.eye(tax.n_nodes) - alpha * w / np.sqrt(np.outer(d, d)))
    weights = torch.exp(model.log_weight.detach()).numpy()  # in DiffusionOperator.edges order
    w_n = DiffusionOperator(tax, alpha).normalized_adjacency(weights).toarray()
    np.testing.assert_allclose(want, (1 - alpha) * np.linalg.inv(np.eye(tax.n_nodes) - alpha * w_n), atol=1e-12)
    f0 = rng.random((5, tax.n_nodes))
    np.testing.assert_allclose(model(torch.as_tensor(f0)).detach().numpy(), f0 @ want.T, atol=1e-12)
    # the gradient with respect to the edge weights, through the tree solver
    x = torch.as_tensor(f0[:2])
    lw = model.log_weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda w: torch.func.functional_call(model, {"log_weight": w}, (x,)), (lw,))


@pytest.mark.parametrize("parametrization", ["edges", "full"])
@pytest.mark.parametrize("kind", ["leaf_logits", "node_sigmoid_logits", "subtree_softmax_logits"])
def test_untrained_output_equals_diffusion(tmp_path, parametrization, kind):
    rng = np.random.default_rng(3)
    leaf = rng.integers(0, SMALL.n_leaves, 40)
    scores = rng.normal(0, 2, (40, KINDS.get(kind).dim(SMALL))).astype(np.float32)
    logits = write_logits(tmp_path / "train.parquet", SMALL, scores, leaf, kind=kind)
    alpha = 0.4
    state = DifferentiableDiffusion.fit(SMALL, logits, tmp_path / "dd.pt",
                                        {"parametrization": parametrization, "alpha": alpha, "epochs": 0})
    got = infer(SMALL, state, logits)
    f0 = node_scores(scores, SMALL, {"kind": kind})
    op = DiffusionOperator(SMALL, alpha)
    np.testing.assert_allclose(got, op.apply(f0), atol=1e-6)
    np.testing.assert_allclose(got, f0 @ dense_closed_form(SMALL, alpha).T, atol=1e-6)
    if "diffusion" in INFERENCE:  # the registered inference, output transform included
        diff = INFERENCE.get("diffusion")(SMALL, {"alpha": alpha})
        diff.check({"kind": kind}, "test")
        np.testing.assert_allclose(got, diff(scores), atol=1e-6)


def test_full_map_starts_at_dense_matrix():
    model = build_map(SMALL, "full", 0.5)
    np.testing.assert_allclose(model.matrix().detach().numpy(), DiffusionOperator(SMALL, 0.5).dense_matrix(),
                               atol=1e-12)


# ------------------------------------------------------------------------- fitting
@pytest.mark.parametrize("parametrization", ["edges", "full"])
def test_fit_lowers_loss_and_keeps_leaf_accuracy(tmp_path, parametrization):
    tax = random_tree(28, 4)
    scores, leaf = noisy_leaf_logits(tax, 600, 5)
    logits = write_logits(tmp_path / "train.parquet", tax, scores, leaf)
    init = DifferentiableDiffusion.fit(tax, logits, tmp_path / "init.pt",
                                       {"parametrization": parametrization, "epochs": 0})
    fitted = DifferentiableDiffusion.fit(tax, logits, tmp_path / "fit.pt",
                                         {"parametrization": parametrization, **FAST})
    before, after = infer(tax, init, logits), infer(tax, fitted, logits)
    loss_before, loss_after = level_nll(before, tax, leaf), level_nll(after, tax, leaf)
    assert loss_after < loss_before - 0.01
    top1 = [float((s[:, tax.leaf_nodes].argmax(1) == leaf).mean()) for s in (before, after)]
    assert top1[1] >= top1[0]
    meta = torch.load(fitted, weights_only=True)["meta"]
    assert meta["loss_init"] == pytest.approx(loss_before, rel=1e-4)
    assert meta["loss_final"] == pytest.approx(loss_after, rel=1e-4)
    assert len(meta["history"]) == FAST["epochs"]
    assert (meta["n_nodes"], meta["n_leaves"], meta["kind"]) == (tax.n_nodes, tax.n_leaves, "leaf_logits")


@pytest.mark.parametrize("parametrization", ["edges", "full"])
def test_fit_is_deterministic_and_round_trips(tmp_path, parametrization):
    tax = random_tree(20, 6)
    scores, leaf = noisy_leaf_logits(tax, 300, 7)
    logits = write_logits(tmp_path / "train.parquet", tax, scores, leaf)
    opts = {"parametrization": parametrization, "epochs": 4, "batch_size": 64, "lr": 0.05}
    paths = [DifferentiableDiffusion.fit(tax, logits, tmp_path / f"{name}.pt", opts, seed=seed)
             for name, seed in (("a", 0), ("b", 0), ("c", 1))]
    params = [torch.load(p, weights_only=True)["parameters"] for p in paths]
    for key in params[0]:
        assert torch.equal(params[0][key], params[1][key])
        assert not torch.equal(params[0][key], params[2][key])  # the seed orders the mini-batches
    out_a, out_b = infer(tax, paths[0], logits), infer(tax, paths[1], logits)
    np.testing.assert_array_equal(out_a, out_b)
    # the loaded map is the trained one: same outputs as the parameters applied directly
    alpha = torch.load(paths[0], weights_only=True)["meta"]["options"]["alpha"]
    model = build_map(tax, parametrization, alpha, "cpu", params[0])
    f0 = node_scores(scores, tax, {"kind": "leaf_logits"})
    with torch.no_grad():
        direct = model(torch.as_tensor(f0)).numpy()
    np.testing.assert_allclose(out_a, direct, atol=1e-6)
    assert out_a.dtype == np.float32 and out_a.shape == (300, tax.n_nodes)


def test_max_samples_fits_on_a_subset(tmp_path):
    tax = random_tree(15, 8)
    scores, leaf = noisy_leaf_logits(tax, 200, 9)
    logits = write_logits(tmp_path / "train.parquet", tax, scores, leaf)
    state = DifferentiableDiffusion.fit(tax, logits, tmp_path / "dd.pt", {"epochs": 1, "max_samples": 50})
    assert torch.load(state, weights_only=True)["meta"]["n_train"] == 50


# -------------------------------------------------------------------------- errors
@pytest.mark.parametrize("options, key", [
    ({"alpha": 0.0}, "alpha"), ({"alpha": 1.0}, "alpha"), ({"alpha": 1.5}, "alpha"), ({"alpha": "x"}, "alpha"),
    ({"parametrization": "dense"}, "parametrization"), ({"epochs": -1}, "epochs"), ({"lr": 0}, "lr"),
    ({"batch_size": 1.5}, "batch_size"), ({"weight_decay": -1}, "weight_decay"), ({"epoch": 3}, "epoch"),
    ({"max_samples": 0}, "max_samples"),
])
def test_bad_options_name_their_key(tmp_path, options, key):
    with pytest.raises(TaxonbenchError, match=f"inference_options.differentiable_diffusion.{key}: "):
        resolve_options(options)
    logits = write_logits(tmp_path / "t.parquet", SMALL, np.zeros((4, 4), np.float32), np.arange(4))
    with pytest.raises(TaxonbenchError, match=f"inference_options.differentiable_diffusion.{key}: "):
        DifferentiableDiffusion.fit(SMALL, logits, tmp_path / "dd.pt", options)
    assert not (tmp_path / "dd.pt").exists()


def test_defaults_are_complete():
    opts = resolve_options({})
    assert set(opts) == set(DEFAULTS) and opts["parametrization"] == "edges"
    assert opts["alpha"] == DEFAULT_ALPHA


def test_state_errors_name_the_file(tmp_path):
    with pytest.raises(TaxonbenchError, match="'state'"):
        DifferentiableDiffusion(SMALL, {})
    missing = tmp_path / "nope.pt"
    with pytest.raises(TaxonbenchError, match="nope.pt"):
        DifferentiableDiffusion(SMALL, {"state": str(missing)})
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a torch file")
    with pytest.raises(TaxonbenchError, match="corrupt.pt"):
        DifferentiableDiffusion(SMALL, {"state": str(corrupt)})
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, foreign)
    with pytest.raises(TaxonbenchError, match="foreign.pt"):
        DifferentiableDiffusion(SMALL, {"state": str(foreign)})

    rng = np.random.default_rng(0)
    scores = rng.normal(size=(8, 4)).astype(np.float32)
    logits = write_logits(tmp_path / "t.parquet", SMALL, scores, np.arange(8) % 4)
    state = DifferentiableDiffusion.fit(SMALL, logits, tmp_path / "dd.pt", {"epochs": 1, "alpha": 0.3})
    other = Taxonomy.from_parents([-1, 0, 0, 1, 1, 2, 2, 2])  # same size, another tree
    with pytest.raises(TaxonbenchError, match="dd.pt"):
        DifferentiableDiffusion(other, {"state": str(state)})
    with pytest.raises(TaxonbenchError, match="'alpha'"):
        DifferentiableDiffusion(SMALL, {"state": str(state), "alpha": 0.5})
    with pytest.raises(TaxonbenchError, match="'parametrization'"):
        DifferentiableDiffusion(SMALL, {"state": str(state), "parametrization": "full"})
    # training options are accepted (and ignored) at inference: one options block serves fit and infer
    inference = DifferentiableDiffusion(SMALL, {"state": str(state), "alpha": 0.3, "epochs": 9})
    with pytest.raises(TaxonbenchError, match="dd.pt"):
        inference.check({"kind": "node_sigmoid_logits", "method": "multilabel_focal"}, "test.parquet")


def test_fit_refuses_bad_leaves(tmp_path):
    logits = write_logits(tmp_path / "t.parquet", SMALL, np.zeros((3, 4), np.float32), np.array([0, 1, 9]))
    with pytest.raises(TaxonbenchError, match="t.parquet"):
        DifferentiableDiffusion.fit(SMALL, logits, tmp_path / "dd.pt", {"epochs": 1})


def test_the_registries_import_without_torch():
    """Snakemake imports the registries at every start; torch (seconds to import) stays out of it."""
    code = ("import sys, taxonbench.inference, taxonbench.params, taxonbench.tables, taxonbench.metrics, "
            "taxonbench.samplers; from taxonbench.registries import SAMPLERS; SAMPLERS.load(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
