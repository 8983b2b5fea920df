"""The thesis's CNN classifiers (Dhall Ch. 3): losses against plain-loop oracles, thresholds, masked decoding,
set-based metrics against scikit-learn and the thesis's worked example (Table 4.1)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.special import expit
from sklearn.metrics import precision_recall_fscore_support, top_k_accuracy_score

from loss_oracle import LEAF_NODES, NUM_FEATURES, PARENTS, Plain, build, make_tax

from taxonbench.errors import TaxonbenchError
from taxonbench.inference.masked_top_down import MaskedTopDown
from taxonbench.inference.thresholds import best_f1_threshold
from taxonbench.matrix_io import write_matrix
from taxonbench.methods._class_weights import inverse_frequency_weights
from taxonbench.metrics import evaluate, unit_of, units_of
from taxonbench.registries import INFERENCE
from taxonbench.score_kinds import conditional_probs
from taxonbench.taxonomy import Taxonomy

PLAIN = Plain(PARENTS, LEAF_NODES)
TAX = make_tax()
DEPTHS = (1, 2, 3)


def logits_for(method, b=6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(b, NUM_FEATURES, generator=gen, dtype=torch.float64)
    return method.double()(x), torch.randint(0, len(LEAF_NODES), (b,), generator=gen)


def lse(values):
    m = max(values)
    return m + math.log(sum(math.exp(v - m) for v in values))


def ancestor_at(leaf, d):
    path = PLAIN.path(LEAF_NODES[leaf])
    return path[d] if d < len(path) else None


# ------------------------------------------------------------------ losses
def test_multilabel_is_eq_3_1():
    method = build("multilabel")
    out, leaf = logits_for(method)
    expected = 0.0
    for b in range(len(leaf)):
        path = set(PLAIN.path(LEAF_NODES[leaf[b]]))
        terms = [(-math.log(1 / (1 + math.exp(-x))) if v in path else -math.log(math.exp(-x) / (1 + math.exp(-x))))
                 for v, x in zip(range(1, PLAIN.n), out[b].tolist())]
        expected += sum(terms) / (PLAIN.n - 1)
    assert method.loss(out, leaf).item() == pytest.approx(expected / len(leaf), rel=1e-10)


def _per_level_oracle(out, leaf, levels, masked):
    total = 0.0
    for d in levels:
        terms = []
        for b in range(len(leaf)):
            true = ancestor_at(int(leaf[b]), d)
            if true is None:
                continue
            pool = (PLAIN.children[PLAIN.parent[true]] if masked
                    else [v for v in range(1, PLAIN.n) if PLAIN.depth(v) == d])
            terms.append(-out[b, true - 1].item() + lse([out[b, v - 1].item() for v in pool]))
        if masked:  # the masked loss averages over every row (a row without a level-d label adds 0)
            total += sum(terms) / len(leaf)
        elif terms:  # cross_entropy's ignore_index: the mean over the rows that have a level-d label
            total += sum(terms) / len(terms)
    return total


@pytest.mark.parametrize("levels", [None, [2], [1, 3]])
def test_per_level_is_eq_3_2_3_3(levels):
    method = build("per_level", hparams={"levels": levels})
    out, leaf = logits_for(method, b=8)
    expected = _per_level_oracle(out, leaf, levels or DEPTHS, masked=False)
    assert method.loss(out, leaf).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("levels", [None, [3], [1, 2]])
def test_masked_per_level_is_eq_3_7_3_8(levels):
    method = build("masked_per_level", hparams={"levels": levels})
    out, leaf = logits_for(method, b=8)
    expected = _per_level_oracle(out, leaf, levels or DEPTHS, masked=True)
    assert method.loss(out, leaf).item() == pytest.approx(expected, rel=1e-10)


def test_masked_per_level_on_every_level_is_the_conditional_softmax_loss():
    masked, cond = build("masked_per_level"), build("cond_softmax")
    out, leaf = logits_for(masked, b=8)
    assert masked.loss(out, leaf).item() == pytest.approx(cond.double().loss(out, leaf).item(), rel=1e-12)


@pytest.mark.parametrize("levels", [None, [1], [2, 3]])
def test_marginalization_is_eq_3_4_3_6(levels):
    method = build("marginalization", hparams={"levels": levels})
    out, leaf = logits_for(method, b=8)
    expected = 0.0
    for d in levels or DEPTHS:
        terms = []
        for b in range(len(leaf)):
            true = ancestor_at(int(leaf[b]), d)
            if true is None:
                continue
            log_z = lse(out[b].tolist())
            terms.append(-(lse([out[b, i].item() for i in PLAIN.leaves_under(true)]) - log_z))
        expected += sum(terms) / len(terms)
    assert method.loss(out, leaf).item() == pytest.approx(expected, rel=1e-10)


def test_gradients_of_the_thesis_losses():
    for name in ("multilabel", "per_level", "marginalization", "masked_per_level"):
        method = build(name)
        out, leaf = logits_for(method)
        x = out.detach().clone().requires_grad_(True)
        assert torch.autograd.gradcheck(lambda t: method.loss(t, leaf), (x,)), name


# ------------------------------------------------------------------ class weights (cw)
def test_inverse_frequency_weights_by_hand():
    counts = np.array([1, 3, 2, 4])  # leaf indices -> nodes 6, 3, 7, 4
    w = inverse_frequency_weights(TAX, counts, "methods.x")
    node_counts = {1: 3 + 4, 2: 1 + 2, 3: 3, 4: 4, 5: 1 + 2, 6: 1, 7: 2}
    inverse = np.array([1 / node_counts[v] for v in range(1, 8)])
    np.testing.assert_allclose(w[1:], inverse / inverse.mean())
    with pytest.raises(TaxonbenchError, match=r"methods.x.class_weight: inverse_frequency needs a training image "
                                              r"of every label; 1 have none"):
        inverse_frequency_weights(TAX, np.array([0, 3, 2, 4]), "methods.x")


def test_reweighted_losses_are_weighted_means():
    method = build("per_level", hparams={"class_weight": "inverse_frequency", "levels": [2]})
    method.observe_training_labels(np.array([1, 3, 2, 4]))
    out, leaf = logits_for(method, b=8)
    w = method.node_weight.double()
    num = den = 0.0
    for b in range(len(leaf)):
        true = ancestor_at(int(leaf[b]), 2)
        pool = [v for v in range(1, PLAIN.n) if PLAIN.depth(v) == 2]
        num += w[true].item() * (-out[b, true - 1].item() + lse([out[b, v - 1].item() for v in pool]))
        den += w[true].item()
    assert method.loss(out, leaf).item() == pytest.approx(num / den, rel=1e-6)
    plain = build("multilabel")
    weighted = build("multilabel", hparams={"class_weight": "inverse_frequency"})
    weighted.observe_training_labels(np.array([1, 1, 1, 1]) * 5)
    out, leaf = logits_for(plain)
    assert weighted.loss(out, leaf).item() != pytest.approx(plain.loss(out, leaf).item())


# ------------------------------------------------------------------ thresholds (PCDB / OFADB)
def test_best_f1_threshold_is_the_brute_force_optimum():
    rng = np.random.default_rng(0)
    truth = rng.random(200) < 0.3
    scores = np.clip(truth * 0.3 + rng.random(200) * 0.7, 0, 1)
    theta = best_f1_threshold(scores, truth)

    def f1(t):
        pred = scores >= t
        tp = (pred & truth).sum()
        return 2 * tp / (pred.sum() + truth.sum())

    assert f1(theta) == pytest.approx(max(f1(t) for t in np.unique(scores)))
    assert best_f1_threshold(scores, np.zeros(200, bool)) == 0.5


def _write_logits(path, scores, leaf, kind="node_sigmoid_logits"):
    ids = np.array([f"r{i}" for i in range(len(leaf))])
    write_matrix(path, "scores", [(ids, np.asarray(leaf), scores.astype(np.float32))],
                 {"kind": kind, "dim": scores.shape[1], "method": "multilabel", "split": "val"})
    return path


@pytest.mark.parametrize("name", ["pcdb", "ofadb"])
def test_thresholds_fit_on_val_and_apply_to_test(tmp_path, name):
    rng = np.random.default_rng(1)
    leaf = rng.integers(0, 4, 60)
    truth = TAX.leaf_ancestor_matrix[leaf].toarray()[:, 1:] > 0
    logits = np.where(truth, 1.0, -1.0) + rng.normal(0, 1.0, truth.shape)
    val = _write_logits(tmp_path / "val.parquet", logits, leaf)
    cls = INFERENCE.get(name)
    assert cls.fitted and cls.fit_split == "val" and cls.produces == "node_set"
    state = cls.fit(TAX, val, tmp_path / f"{name}.state", {})
    theta = np.array(json.loads(state.read_text())["thresholds"])
    p = 1 / (1 + np.exp(-logits.astype(np.float32).astype(np.float64)))  # the scores as stored (float32)
    if name == "ofadb":
        assert len(set(theta[1:])) == 1 and theta[1] == pytest.approx(best_f1_threshold(p, truth), abs=1e-6)
    else:
        expected = [best_f1_threshold(p[:, v - 1], truth[:, v - 1]) for v in range(1, 8)]
        np.testing.assert_allclose(theta[1:], expected, atol=1e-6)
        assert len(set(theta[1:])) > 1
    inference = cls(TAX, {"state": str(state)})
    inference.check({"kind": "node_sigmoid_logits", "dim": 7}, "test")
    sets = inference(logits[:5].astype(np.float32))
    stored = expit(logits[:5].astype(np.float32).astype(np.float64)).astype(np.float32)  # as tuned: float32
    np.testing.assert_array_equal(sets[:, 1:], (stored >= theta[1:]).astype(np.float32))
    assert (sets[:, 0] == 0).all()
    other = Taxonomy.from_parents([-1, 0, 0])
    with pytest.raises(TaxonbenchError, match="fitted by .* on a tree of 8 nodes"):
        cls(other, {"state": str(state)})
    with pytest.raises(TaxonbenchError, match="option 'state'"):
        cls(TAX, {})
    with pytest.raises(TaxonbenchError, match="were tuned on 'node_sigmoid_logits'"):
        inference.check({"kind": "leaf_logits", "dim": 4}, "test")


# ------------------------------------------------------------------ masked top-down decoding
def test_masked_top_down_is_the_greedy_path():
    rng = np.random.default_rng(2)
    scores = rng.normal(size=(20, 7))
    sidecar = {"kind": "level_softmax_logits", "dim": 7}
    inference = MaskedTopDown(TAX)
    inference.check(sidecar, "test")
    sets = inference(scores)
    cond = conditional_probs(scores, TAX, sidecar)
    for b in range(len(scores)):
        v, path = 0, []
        while PLAIN.children[v]:
            kids = PLAIN.children[v]
            # among siblings the sibling softmax orders as the logits do (entry j is node j + 1)
            v = max(kids, key=lambda u: (scores[b, u - 1], -u))
            assert v == max(kids, key=lambda u: (cond[b, u], -u))
            path.append(v)
        assert np.flatnonzero(sets[b]).tolist() == sorted(path)


# ------------------------------------------------------------------ set-based metrics
def _sets(leaf_of_rows, predicted_nodes, tax):
    node_set = np.zeros((len(leaf_of_rows), tax.n_nodes), np.float32)
    for i, nodes in enumerate(predicted_nodes):
        node_set[i, list(nodes)] = 1.0
    return node_set


def test_set_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    leaf = rng.integers(0, 4, 50)
    node_set = (rng.random((50, 8)) < 0.4).astype(np.float32)
    node_set[:, 0] = 0
    metrics, _ = evaluate([(node_set, leaf)], TAX, ["set_prf"], kind="node_set")
    truth = TAX.leaf_ancestor_matrix[leaf].toarray() > 0
    for columns, suffix in [(np.arange(1, 8), "")] + [(np.flatnonzero(TAX.depth == d), f"_L{d}") for d in DEPTHS]:
        for average in ("micro", "macro"):
            p, r, f, _ = precision_recall_fscore_support(truth[:, columns], node_set[:, columns] > 0.5,
                                                         average=average, zero_division=0)
            assert metrics[f"set_{average}_precision{suffix}"] == pytest.approx(p)
            assert metrics[f"set_{average}_recall{suffix}"] == pytest.approx(r)
            assert metrics[f"set_{average}_f1{suffix}"] == pytest.approx(f)
    assert metrics["labels_L1"] == 2 and metrics["labels_L2"] == 3 and metrics["labels_L3"] == 2


def test_table_4_1_worked_example():
    """Dhall Table 4.1: always predicting Hesperiidae, Pyrginae, Pyrgus alveus gives micro (0.5, 0.5, 0.5)
    and macro (0.1364, 0.2727, 0.1724) over the 11 labels."""
    # family -> subfamily -> species, with the table's frequencies
    names = ["root", "Hesperiidae", "Riodinidae", "Hesperiinae", "Pyrginae", "Nemeobiinae", "Ochlodes venata",
             "Hesperia comma", "Pyrgus alveus", "Spialia sertorius", "Hamearis lucina", "Polycaena tamerlana"]
    parents = [-1, 0, 0, 1, 1, 2, 3, 3, 4, 4, 5, 5]
    tax = Taxonomy.from_parents(parents, name=names)
    counts = {"Ochlodes venata": 18, "Hesperia comma": 18, "Pyrgus alveus": 22, "Spialia sertorius": 18,
              "Hamearis lucina": 14, "Polycaena tamerlana": 2}
    leaf = np.concatenate([np.full(n, tax.leaf_index[names.index(s)]) for s, n in counts.items()])
    node_set = _sets(leaf, [[1, 4, 8]] * len(leaf), tax)
    metrics, _ = evaluate([(node_set, leaf)], tax, ["set_prf", "set_size"], kind="node_set")
    assert (metrics["set_micro_precision"], metrics["set_micro_recall"], metrics["set_micro_f1"]) == \
        pytest.approx((0.5, 0.5, 0.5))
    assert round(metrics["set_macro_precision"], 4) == 0.1364
    assert round(metrics["set_macro_recall"], 4) == 0.2727
    assert round(metrics["set_macro_f1"], 4) == 0.1724
    assert metrics["labels_mean"] == 3 and metrics["labels_std"] == 0


def test_hit_at_k_is_scikit_learns_top_k_accuracy():
    rng = np.random.default_rng(4)
    leaf = rng.integers(0, 4, 40)
    node_prob = rng.random((40, 8))
    metrics, _ = evaluate([(node_prob, leaf)], TAX, ["hit_at_k"], kind="node_prob")
    leaf_scores = node_prob[:, TAX.leaf_nodes]
    for k in (1, 3):
        assert metrics[f"hit_at_{k}"] == pytest.approx(top_k_accuracy_score(leaf, leaf_scores, k=k, labels=range(4)))
    assert metrics["hit_at_5"] == 1.0  # 4 leaves
    # level 2 (nodes 3, 4, 5): the true leaf's depth-2 ancestor among the level's k best
    level = [3, 4, 5]
    true = [level.index(ancestor_at(int(i), 2)) for i in leaf]
    assert metrics["hit_at_1_L2"] == pytest.approx(top_k_accuracy_score(true, node_prob[:, level], k=1, labels=range(3)))
    assert metrics["hit_at_3_L1"] == 1.0


def test_per_level_units_resolve_their_pattern():
    units = units_of(["set_prf", "hit_at_k"])
    assert unit_of("set_macro_f1_L3", units) == "fraction" and unit_of("labels_L2", units) == "count"
    assert unit_of("hit_at_3", units) == "fraction" and unit_of("nonsense", units) is None


def test_alexnet_refuses_images_smaller_than_its_stem_accepts(toy_shards, tmp_path):
    from test_training import toy_settings

    from taxonbench import training

    with pytest.raises(TaxonbenchError, match=r"train.backbone 'alexnet' needs images of at least 63 px; .* stores "
                                              r"16 px"):
        training.train(toy_settings(epochs=1, backbone="alexnet"), toy_shards, tmp_path / "m", progress=False)


@pytest.mark.parametrize("name", ["multilabel", "per_level", "marginalization", "masked_per_level"])
def test_each_thesis_method_trains_and_dumps_its_kind(toy_shards, tmp_path, name):
    from test_training import toy_settings

    from taxonbench import training
    from taxonbench.logits import dump_logits
    from taxonbench.matrix_io import read_sidecar

    settings = toy_settings(epochs=1)
    settings["method"] = settings["experiment"] = name
    settings["hparams"] = {"class_weight": "inverse_frequency"}
    model = training.train(settings, toy_shards, tmp_path / "m", progress=False)
    out = tmp_path / "test.parquet"
    dump_logits(model, toy_shards, "test", out, device="cpu")
    assert read_sidecar(out)["kind"] == build(name).output_kind


def test_class_weights_of_the_flat_and_the_hierarchical_softmax_by_hand():
    """cw on flat_softmax: Σ w_y CE / Σ w_y over the leaves; on cond_softmax (the thesis's hierarchical softmax):
    per level, the weighted mean of −log p(τ_d | τ_{d−1}), summed over levels — plain loops on the ragged tree."""
    counts = np.array([1, 3, 2, 4])
    flat = build("flat_softmax", hparams={"class_weight": "inverse_frequency"})
    flat.observe_training_labels(counts)
    out, leaf = logits_for(flat, b=8)
    w = flat.node_weight.double()
    num = den = 0.0
    for b in range(len(leaf)):
        k = int(leaf[b])
        wk = w[LEAF_NODES[k]].item()
        num += wk * (-out[b, k].item() + lse(out[b].tolist()))
        den += wk
    assert flat.loss(out, leaf).item() == pytest.approx(num / den, rel=1e-6)

    cond = build("cond_softmax", hparams={"class_weight": "inverse_frequency"})
    cond.observe_training_labels(counts)
    out, leaf = logits_for(cond, b=8)
    w = cond.node_weight.double()
    total = 0.0
    for d in (1, 2, 3):
        num = den = 0.0
        for b in range(len(leaf)):
            v = ancestor_at(int(leaf[b]), d)
            if v is None:
                continue
            siblings = PLAIN.children[PLAIN.parent[v]]
            num += w[v].item() * (-out[b, v - 1].item() + lse([out[b, u - 1].item() for u in siblings]))
            den += w[v].item()
        total += num / den
    assert cond.loss(out, leaf).item() == pytest.approx(total, rel=1e-6)
    plain = build("cond_softmax")
    assert plain.loss(out, leaf).item() != pytest.approx(total)
