"""The HiMulCon stack (HiMulCon paper, doc 002): encoder methods, the linear probe, the retrieval and clustering
families through the evaluate step, the seen / unseen synthetic parts, the unseen-of check and the tables."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.losses import SupConLoss, TripletMarginLoss
from sklearn.metrics import normalized_mutual_info_score

from taxonbench.datasets.synthetic import SyntheticTaxonomy
from taxonbench.errors import TaxonbenchError
from taxonbench.losses.contrastive import hierarchical_contrastive_loss
from taxonbench.losses.metric import tree_distortion, triplet_margin_loss
from taxonbench.matrix_io import write_matrix
from taxonbench.methods import METHODS
from taxonbench.methods._encoders import level_label_table
from taxonbench.methods.guided import leaf_tree_distance
from taxonbench.metrics import evaluate
from taxonbench.models.backbones import build_backbone
from taxonbench.registries import INFERENCE
from taxonbench.representation.clustering import category_nmi
from taxonbench.representation.retrieval import retrieval_scores
from taxonbench.taxonomy import Taxonomy

ENCODERS = ("simclr", "supcon", "himulcon", "hicone", "himulcone", "triplet", "ce", "guided")
TWO_VIEW = ("simclr", "supcon", "himulcon", "hicone", "himulcone", "triplet")

#    0
#   / \
#  1   2        leaves 3, 4 (under 1) and 5, 6 (under 2), 7 directly under the root
# / \ / \
# 3 4 5 6  7
PARENTS = [-1, 0, 0, 1, 1, 2, 2, 0]


@pytest.fixture(scope="module")
def tree() -> Taxonomy:
    return Taxonomy.from_parents(PARENTS)


@pytest.fixture(scope="module")
def synthetic_tax() -> Taxonomy:
    return SyntheticTaxonomy({"ranks": ["order", "genus", "species"], "leaves": [8, 40],
                              "branching": {"order": [3, 3], "genus": [2, 2], "species": [2, 3]}},
                             name="t", seed=0).taxonomy()


def build(name: str, taxonomy: Taxonomy, hparams=None):
    torch.manual_seed(0)
    return METHODS.get(name)(build_backbone("tiny_cnn", None), taxonomy, hparams or {})


# ----------------------------------------------------------------------------- methods
def test_level_labels_are_each_leafs_path_coarse_to_fine_padded_with_itself(tree):
    # leaves in index order: 3, 4, 5, 6, 7; depth 1 then depth 2; leaf 7 (depth 1) repeats itself
    assert level_label_table(tree).tolist() == [[1, 3], [1, 4], [2, 5], [2, 6], [7, 7]]


@pytest.mark.parametrize("name", ENCODERS)
def test_encoders_dump_the_backbone_features_and_train_on_their_own_outputs(name, synthetic_tax):
    model = build(name, synthetic_tax)
    images = torch.randn(4, 3, 32, 32)
    assert model.output_kind == "embeddings" and model.output_dim() == model.num_features
    torch.testing.assert_close(model(images), model.backbone(images))
    leaf = torch.tensor([0, 0, 1, 2])
    batch = torch.randn(4, 2, 3, 32, 32) if model.views == 2 else images
    out = model.training_forward(batch, leaf)
    loss = model.loss(out, leaf)
    assert torch.isfinite(loss) and loss.requires_grad
    loss.backward()
    assert all(p.grad is not None for p in model.head.parameters())
    if name in TWO_VIEW:
        assert model.views == 2 and out.shape == (8, model.hparams.projection_dim)
        torch.testing.assert_close(out.norm(dim=1), torch.ones(8))


def test_supcon_method_is_pytorch_metric_learnings_supcon_on_its_projections(synthetic_tax):
    model = build("supcon", synthetic_tax)
    leaf = torch.tensor([0, 0, 1, 3, 3, 5])
    features = model.training_forward(torch.randn(6, 2, 3, 32, 32), leaf)
    expected = SupConLoss(temperature=0.1)(features, torch.cat([leaf, leaf]))
    torch.testing.assert_close(model.loss(features, leaf), expected)


def test_hierarchical_methods_pass_their_switches_and_options_to_the_loss(synthetic_tax):
    leaf = torch.tensor([0, 1, 2, 3, 4, 5])
    feats = torch.nn.functional.normalize(torch.randn(12, 128), dim=1)
    labels = level_label_table(synthetic_tax)[leaf]
    for name, penalty, constraint in (("himulcon", True, False), ("hicone", False, True), ("himulcone", True, True)):
        model = build(name, synthetic_tax, {"penalty": "pow2", "constraint": "code", "dedupe": "code"})
        expected = hierarchical_contrastive_loss(feats, labels, 0.1, level_penalty=penalty,
                                                 hierarchy_constraint=constraint, penalty="pow2", constraint="code",
                                                 dedupe="code")
        torch.testing.assert_close(model.loss(feats, leaf), expected)


def test_a_two_view_method_refuses_one_view_naming_the_experiment(synthetic_tax):
    model = METHODS.get("himulcone")(build_backbone("tiny_cnn", None), synthetic_tax, {}, experiment="himulcone_seen")
    with pytest.raises(TaxonbenchError, match=r"methods\.himulcone_seen: himulcone reads two augmented views"):
        model.training_forward(torch.randn(4, 3, 32, 32), torch.zeros(4, dtype=torch.int64))


def test_a_batch_without_a_positive_pair_stops_naming_the_experiment_and_keys(synthetic_tax):
    model = METHODS.get("triplet")(build_backbone("tiny_cnn", None), synthetic_tax, {}, experiment="triplet_seen")
    feats = torch.nn.functional.normalize(torch.randn(4, 128), dim=1)
    with pytest.raises(TaxonbenchError, match=r"methods\.triplet_seen: .*no positive pair.*train\.batch_size"):
        model.loss(feats, torch.tensor([2, 2]))  # two images of one leaf: positives but no negative


# ----------------------------------------------------------------------------- metric-learning losses
@pytest.mark.parametrize("margin", [0.05, 0.3, 2.0])
def test_triplet_loss_is_pytorch_metric_learnings_triplet_margin_loss(margin):
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(24, 16, generator=gen), torch.randint(0, 4, (24,), generator=gen)
    torch.testing.assert_close(triplet_margin_loss(x, y, margin), TripletMarginLoss(margin=margin)(x, y))


def test_tree_distance_between_leaves_counts_edges_through_the_lca(tree):
    # leaves 3, 4, 5, 6, 7: siblings 2 apart, cousins 4, to leaf 7 (depth 1) 3 from depth-2 leaves
    assert leaf_tree_distance(tree).tolist() == [[0, 2, 4, 4, 3], [2, 0, 4, 4, 3], [4, 4, 0, 2, 3],
                                                 [4, 4, 2, 0, 3], [3, 3, 3, 3, 0]]


def test_tree_distortion_is_zero_for_a_scaled_isometry_and_hand_worked_otherwise():
    big_d = torch.tensor([[0.0, 1.0, 2.0], [1.0, 0.0, 1.0], [2.0, 1.0, 0.0]])
    line = torch.tensor([[0.0], [3.0], [6.0]])  # distances 3, 6, 3 = 3 x D: no distortion at any scale
    assert float(tree_distortion(line, big_d)) == pytest.approx(0.0, abs=1e-7)
    # points 0, 1, 3: d = (1, 3, 2) against D = (1, 2, 1); s = (1 + 6 + 2) / (1 + 4 + 1) = 1.5
    pts = torch.tensor([[0.0], [1.0], [3.0]])
    ratios = np.array([1 / 1.5, 3 / 3.0, 2 / 1.5])
    assert float(tree_distortion(pts, big_d)) == pytest.approx(np.abs(ratios - 1).mean(), rel=1e-6)


# ----------------------------------------------------------------------------- linear probe
def blobs(taxonomy: Taxonomy, n_per_leaf: int, seed: int, dim: int = 8):
    rng = np.random.default_rng(seed)  # the centres are shared by every seed; the noise is not
    centres = np.random.default_rng(0).standard_normal((taxonomy.n_leaves, dim)) * 4
    leaf = np.repeat(np.arange(taxonomy.n_leaves), n_per_leaf)
    return (centres[leaf] + 0.3 * rng.standard_normal((len(leaf), dim))).astype(np.float32), leaf


def write_embeddings(path, x, leaf, method="supcon"):
    ids = np.array([f"r{i}" for i in range(len(x))])
    write_matrix(path, "scores", iter([(ids, leaf, x)]),
                 {"kind": "embeddings", "dim": x.shape[1], "method": method, "split": path.stem})


def test_linear_probe_separates_separable_embeddings_at_every_level(tmp_path, tree):
    x, leaf = blobs(tree, 30, seed=1)
    write_embeddings(tmp_path / "train.parquet", x, leaf)
    probe = INFERENCE.get("linear_probe")
    state = probe.fit(tree, tmp_path / "train.parquet", tmp_path / "probe.state", {"epochs": 20}, seed=0)
    inference = probe(tree, {"state": str(state)})
    inference.check({"kind": "embeddings", "dim": 8, "method": "supcon"}, "test")
    x_test, leaf_test = blobs(tree, 10, seed=2)
    p = inference(x_test)
    assert p.shape == (len(x_test), tree.n_nodes) and np.all(p[:, 0] == 1)
    np.testing.assert_allclose(p[:, tree.leaf_nodes].sum(1), 1, rtol=1e-5)  # the leaf probe
    assert np.all(p[:, [1, 2]].sum(1) <= 1 + 1e-6)  # the depth-1 probe (its class "leaf 7" is the leaf probe's)
    metrics, _ = evaluate(iter([(p, leaf_test)]), tree, ["hit_at_k"])
    assert metrics["hit_at_1"] == 1.0 and metrics["hit_at_1_L1"] == 1.0


def test_linear_probe_agrees_with_scikit_learns_logistic_regression_on_overlapping_classes(tmp_path, tree):
    """An independent fit of the same model: multinomial logistic regression on the standardised features
    (scikit-learn's lbfgs, C = inf: no penalty). On classes that overlap (noise 1.0 around the centres) the 40-epoch
    SGD probe should find nearly the same decision rule: the leaf predictions agree on >= 95 % of held-out
    points and the accuracies are within 3 points."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(5)
    centres = rng.standard_normal((tree.n_leaves, 8))
    train_leaf, test_leaf = np.repeat(np.arange(tree.n_leaves), 200), np.repeat(np.arange(tree.n_leaves), 100)
    x = (centres[train_leaf] + rng.standard_normal((len(train_leaf), 8))).astype(np.float32)
    x_test = (centres[test_leaf] + rng.standard_normal((len(test_leaf), 8))).astype(np.float32)
    write_embeddings(tmp_path / "train.parquet", x, train_leaf)
    probe = INFERENCE.get("linear_probe")
    state = probe.fit(tree, tmp_path / "train.parquet", tmp_path / "probe.state", {"epochs": 40}, seed=0)
    ours = probe(tree, {"state": str(state)})(x_test)[:, tree.leaf_nodes].argmax(1)
    scaler = StandardScaler().fit(x)
    sk = LogisticRegression(C=np.inf, max_iter=2000).fit(scaler.transform(x), train_leaf)
    theirs = sk.predict(scaler.transform(x_test))
    assert 0.4 < (theirs == test_leaf).mean() < 0.95  # overlapping classes: not a separable toy
    assert (ours == theirs).mean() >= 0.95
    assert abs((ours == test_leaf).mean() - (theirs == test_leaf).mean()) <= 0.03


def test_linear_probe_refuses_another_width_or_another_tree(tmp_path, tree):
    x, leaf = blobs(tree, 5, seed=1)
    write_embeddings(tmp_path / "train.parquet", x, leaf)
    probe = INFERENCE.get("linear_probe")
    state = probe.fit(tree, tmp_path / "train.parquet", tmp_path / "probe.state", {"epochs": 1})
    with pytest.raises(TaxonbenchError, match="width 16, but the linear_probe .* width 8"):
        probe(tree, {"state": str(state)}).check({"kind": "embeddings", "dim": 16}, "x.parquet")
    with pytest.raises(TaxonbenchError, match="fitted on another taxonomy"):
        probe(Taxonomy.from_parents([-1, 0, 0]), {"state": str(state)})
    with pytest.raises(TaxonbenchError, match="probes embeddings"):
        write_matrix(tmp_path / "logits.parquet", "scores", iter([(np.array(["a"]), np.array([0]), x[:1, :5])]),
                     {"kind": "leaf_logits", "dim": 5})
        probe.fit(tree, tmp_path / "logits.parquet", tmp_path / "bad.state", {})


# ----------------------------------------------------------------------------- retrieval and clustering families
def test_retrieval_family_matches_retrieval_scores_with_a_gallery_and_within_the_split(tree):
    rng = np.random.default_rng(3)
    q, q_leaf = blobs(tree, 6, seed=4)
    g, g_leaf = blobs(tree, 9, seed=5)
    q = q + rng.standard_normal(q.shape).astype(np.float32) * 3  # make retrieval imperfect
    metrics, _ = evaluate(iter([(q, q_leaf)]), tree, ["retrieval"], kind="embeddings",
                          gallery_chunks=iter([(g[:20], g_leaf[:20]), (g[20:], g_leaf[20:])]))
    ref = retrieval_scores(q, q_leaf, g, g_leaf, k=100)
    assert metrics["map_at_r"] == pytest.approx(ref.map_at_r)
    assert metrics["retrieval_top_1"] == pytest.approx(ref.top_k(1))
    assert metrics["retrieval_top_5"] == pytest.approx(ref.top_k(5))
    assert metrics["retrieval_top_100"] == pytest.approx(ref.top_k(min(100, ref.k_max)))
    within, _ = evaluate(iter([(q, q_leaf)]), tree, ["retrieval"], kind="embeddings")
    assert within["map_at_r"] == pytest.approx(retrieval_scores(q, q_leaf, k=100).map_at_r)
    tops = [within[f"retrieval_top_{k}"] for k in (1, 2, 5, 10, 50, 100)]
    assert tops == sorted(tops)


def test_clustering_family_is_category_and_within_category_kmeans_nmi(synthetic_tax):
    x, leaf = blobs(synthetic_tax, 8, seed=6)
    metrics, _ = evaluate(iter([(x, leaf)]), synthetic_tax, ["clustering"], kind="embeddings")
    path = synthetic_tax.ancestor_table[synthetic_tax.leaf_nodes[leaf]]
    assert metrics["category_nmi"] == pytest.approx(category_nmi(x, path[:, 1]))
    from sklearn.cluster import KMeans

    per = []
    for c in np.unique(path[:, 1]):
        rows = path[:, 1] == c
        k = len(np.unique(path[rows, 2]))
        clusters = KMeans(k, n_init=10, random_state=0).fit_predict(x[rows])
        per.append(normalized_mutual_info_score(path[rows, 2], clusters))
    assert metrics["product_nmi_L2"] == pytest.approx(np.mean(per))
    assert set(metrics) >= {"category_nmi", "product_nmi_L2", "product_nmi_L3"}


# ----------------------------------------------------------------------------- seen / unseen data
def test_synthetic_seen_and_unseen_parts_split_one_tree_by_category():
    opts = {"ranks": ["order", "genus", "species"], "leaves": [10, 60],
            "branching": {"order": [5, 5], "genus": [2, 3], "species": [2, 3]}}
    whole, seen, unseen = (SyntheticTaxonomy({**opts, "part": p}, name=p, seed=0) for p in ("all", "seen", "unseen"))
    t_all, t_seen, t_unseen = whole.taxonomy(), seen.taxonomy(), unseen.taxonomy()
    top = {p: {t.name[v] for v in t.nodes_at_depth(1)} for p, t in (("a", t_all), ("s", t_seen), ("u", t_unseen))}
    assert len(top["u"]) == 2 and len(top["s"]) == 3 and top["s"] | top["u"] == top["a"] and not top["s"] & top["u"]
    assert t_seen.n_leaves + t_unseen.n_leaves == t_all.n_leaves
    assert set(t_seen.name[1:]) | set(t_unseen.name[1:]) == set(t_all.name[1:])
    index = {name: i for i, name in enumerate(t_all.name)}  # a part keeps its whole-tree appearance codes
    np.testing.assert_array_equal(unseen.codes, whole.codes[[index[n] for n in t_unseen.name]])
    with pytest.raises(TaxonbenchError, match=r"datasets\.x\.options\.unseen_fraction: 0\.1 of the 5 order taxa"):
        _ = SyntheticTaxonomy({**opts, "part": "seen", "unseen_fraction": 0.1}, name="x", seed=0).taxonomy()
    with pytest.raises(TaxonbenchError, match=r"datasets\.x\.options\.part: expected one of all, seen, unseen"):
        SyntheticTaxonomy({**opts, "part": "half"}, name="x", seed=0)


def test_an_unseen_dataset_sharing_a_category_with_the_seen_one_is_refused(tmp_path):
    from taxonbench.logits import check_unseen
    from taxonbench.shards import TAXONOMY

    seen = Taxonomy.from_parents([-1, 0, 0, 1, 2], name=["root", "Aves", "Fish", "a", "b"])
    (tmp_path / "seen").mkdir()
    seen.write(tmp_path / "seen" / TAXONOMY)
    check_unseen(Taxonomy.from_parents([-1, 0, 1], name=["root", "Insecta", "c"]), "unseen", tmp_path / "seen")
    overlapping = Taxonomy.from_parents([-1, 0, 0, 1, 2], name=["root", "Insecta", "Fish", "c", "d"])
    with pytest.raises(TaxonbenchError, match=r"datasets\.unseen\.unseen_of: 'unseen' shares 1 category with "
                                              r"'seen' \(Fish\); an unseen split must not overlap the seen one"):
        check_unseen(overlapping, "unseen", tmp_path / "seen")


# ----------------------------------------------------------------------------- the plan
def test_the_default_plan_scores_encoders_on_test_probes_on_train_and_retrieves_among_train():
    from taxonbench.plan import load_params, logit_splits, method_inference, scored_splits

    cfg = load_params("params.yaml")
    pairs = method_inference(cfg)
    assert pairs["himulcone_seen"] == ["embedding", "linear_probe"]
    assert scored_splits(cfg, "embedding") == {"gallery": "train", "eval": "test"}
    assert scored_splits(cfg, "linear_probe") == {"eval": "test"}
    assert logit_splits(cfg, "himulcone_seen", pairs) == ["test", "train"]
    no_gallery = {**cfg, "experiments": {**cfg["experiments"], "gallery_split": None}}
    assert scored_splits(no_gallery, "embedding") == {"eval": "test"}  # retrieval among the queries themselves


def test_unseen_of_must_name_another_dataset():
    import copy

    from taxonbench.plan import load_params, validate

    cfg = copy.deepcopy(load_params("params.yaml"))
    cfg["datasets"]["synthetic_himulcon_unseen"]["unseen_of"] = "synthetic_himulcon_sen"
    with pytest.raises(TaxonbenchError, match=r"datasets\.synthetic_himulcon_unseen\.unseen_of: "
                                              r"'synthetic_himulcon_sen' is not another dataset.*did you mean"):
        validate(cfg)


def test_a_paper_config_of_one_dataset_leaves_the_other_columns_empty(tmp_path):
    """`tables.<id>.datasets.<column>: null` — the column is another config's; its cells stay empty."""
    import csv
    import json

    from taxonbench.tables import build_tables

    metrics = tmp_path / "metrics" / "inshop" / "himulcone"
    metrics.mkdir(parents=True)
    (metrics / "embedding.json").write_text(json.dumps({"map_at_r": 0.25}))
    tables = {"himulcon_table4": {"datasets": {"DeepFashion": "inshop", "iNaturalist": None, "ModelNet40": None}}}
    build_tables(tables, tmp_path / "metrics", tmp_path / "out")
    with open(tmp_path / "out" / "himulcon_table4.csv") as fh:
        rows = {r["model"]: r for r in csv.DictReader(fh)}
    assert rows["HiMulConE"]["DeepFashion"] == "25.0"
    assert rows["HiMulConE"]["iNaturalist"] == rows["HiMulConE"]["ModelNet40"] == ""
    latex = (tmp_path / "out" / "himulcon_table4.tex").read_text()
    assert "inshop (for DeepFashion)" in latex and "(not in this run)" not in latex
    with pytest.raises(TaxonbenchError, match=r"maps every column to null"):
        build_tables({"himulcon_table4": {"datasets": dict.fromkeys(("DeepFashion", "iNaturalist", "ModelNet40"))}},
                     tmp_path / "metrics", tmp_path / "out2")


@pytest.mark.parametrize("config", ["deepfashion", "modelnet40", "imagenet", "inat2017"])
def test_paper_configs_run_exactly_the_papers_encoders(config):
    """No stand-ins: every experiment of a HiMulCon paper config is one of the paper's losses, fine-tuned as
    §4.2 says (layer4 of a pretrained ResNet-50; ImageNet from scratch), scored by the probe / embeddings."""
    from taxonbench.plan import dataset_methods, load_params, method_inference, validate

    cfg = load_params(f"workflow/configs/{config}_himulcone.yaml")
    validate(cfg)
    paper = {"simclr", "ce", "supcon", "guided", "triplet", "himulcon", "hicone", "himulcone"}
    methods = {m for d in cfg["experiments"]["datasets"] for m in dataset_methods(cfg, d)}
    assert {cfg["methods"][m].get("method", m) for m in methods} <= paper
    assert set(sum(method_inference(cfg).values(), [])) <= {"embedding", "linear_probe"}
    train = cfg["train"]
    assert train["backbone"] == "resnet50" and train["batch_size"] == 512 and train["epochs"] == 100
    assert (train["pretrained"], train["finetune"]) == ((None, "all") if config == "imagenet"
                                                        else ("IMAGENET1K_V1", "last_k"))
    assert train["augment"]["resized_crop_scale"] == [0.2, 1.0] and train["augment"]["grayscale_p"] == 0.2
    for m in methods:
        if cfg["methods"][m].get("method", m) in ("himulcon", "hicone", "himulcone"):
            assert cfg["methods"][m]["train"]["sampler"]["name"] == "hierarchical", m
