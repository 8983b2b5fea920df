"""Level-restricted contrastive loss (seed 003): against open_clip's CLIP loss, a per-sample loop of the
formulas, the pooled baseline, the Lorentz geometry against geoopt and closed forms, zero-shot transfer."""

from __future__ import annotations

import math
import warnings

import open_clip
import pytest
import torch
import torch.nn.functional as F

from taxonbench.errors import TaxonbenchError
from taxonbench.logits import check_levels_seen
from taxonbench.methods import METHODS
from taxonbench.methods import _lorentz
from taxonbench.models.backbones import build_backbone
from taxonbench.taxon_text import node_prompts
from taxonbench.taxonomy import Taxonomy

from clip_fixtures import TINY, TREE

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    import geoopt

LEAF = torch.tensor([0, 1, 1, 2, 3, 4, 4, 0])  # repeated taxa: several positives per text
UNIQUE_LEAF = torch.tensor([0, 1, 2, 3, 4])


def make(hparams: dict | None = None, seed: int = 0, taxonomy: Taxonomy = TREE):
    torch.manual_seed(seed)
    model = METHODS.get("level_restricted")(build_backbone(TINY), taxonomy, hparams or {})
    return model.eval()  # BatchNorm in eval: the same features in every pass


def images(n: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def ancestor(leaf: int, depth: int) -> int:
    return int(TREE.ancestor_table[TREE.leaf_nodes[leaf], depth])


def independent_embeddings(model, x, nodes):
    """Unit image and text embeddings from the towers and open_clip's tokenizer directly."""
    image = F.normalize(model.backbone(x), dim=-1)
    prompts = node_prompts(TREE)
    tokens = open_clip.get_tokenizer(model.text.model_name)([prompts[v] for v in nodes])
    return image, F.normalize(model.text.clip.encode_text(tokens), dim=-1)


def loop_loss(S: torch.Tensor, positive: list[list[bool]], balance: str = "level") -> torch.Tensor:
    """½ (i→t + t→i) written per image and per text with Python loops (module docstring's formulas)."""
    n, k = S.shape
    pairs = [(i, j) for i in range(n) for j in range(k) if positive[i][j]]
    log_i2t = [[S[i, j] - torch.logsumexp(S[i], 0) for j in range(k)] for i in range(n)]
    log_t2i = [[S[i, j] - torch.logsumexp(S[:, j], 0) for j in range(k)] for i in range(n)]
    groups = [[i for i in range(n) if positive[i][j]] for j in range(k)]
    if balance == "group":
        i2t = sum(-sum(log_i2t[i][j] for i in g) / len(g) for j, g in enumerate(groups)) / k
    else:
        i2t = -sum(log_i2t[i][j] for i, j in pairs) / len(pairs)
    t2i = sum(-sum(log_t2i[i][j] for i in g) / len(g) for j, g in enumerate(groups)) / k
    return 0.5 * (i2t + t2i)


def test_one_level_of_distinct_taxa_is_the_standard_clip_loss():
    model = make({"levels": [3]})
    x = images(len(UNIQUE_LEAF))
    got = model.loss(model.training_forward(x, UNIQUE_LEAF), UNIQUE_LEAF)
    image, text = independent_embeddings(model, x, [ancestor(int(y), 3) for y in UNIQUE_LEAF])
    want = open_clip.ClipLoss()(image, text, logit_scale=model.text.logit_scale.exp())
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("balance", ["level", "group"])
def test_levels_are_averaged_and_each_is_the_multi_positive_loss_over_its_unique_texts(balance):
    model = make({"balance": balance})
    x = images(len(LEAF))
    got = model.loss(model.training_forward(x, LEAF), LEAF)
    terms = []
    for d in (1, 2, 3):
        nodes = sorted({ancestor(int(y), d) for y in LEAF})
        image, text = independent_embeddings(model, x, nodes)
        S = model.text.logit_scale.exp() * image @ text.T
        positive = [[ancestor(int(y), d) == v for v in nodes] for y in LEAF]
        terms.append(loop_loss(S, positive, balance))
    torch.testing.assert_close(got, sum(terms) / 3, rtol=1e-5, atol=1e-6)


def test_group_balance_changes_nothing_when_every_text_has_as_many_images():
    leaf = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 4, 4])
    x = images(len(leaf))
    a, b = make({"levels": [3]}), make({"levels": [3], "balance": "group"})
    torch.testing.assert_close(a.loss(a.training_forward(x, leaf), leaf), b.loss(b.training_forward(x, leaf), leaf))


def test_pooled_bank_puts_the_other_levels_texts_in_each_images_denominator():
    model = make({"comparison": "pooled"})
    x = images(len(LEAF))
    got = model.loss(model.training_forward(x, LEAF), LEAF)
    nodes = sorted({ancestor(int(y), d) for y in LEAF for d in (1, 2, 3)})
    image, text = independent_embeddings(model, x, nodes)
    S = model.text.logit_scale.exp() * image @ text.T
    positive = [[v in {ancestor(int(y), d) for d in (1, 2, 3)} for v in nodes] for y in LEAF]
    torch.testing.assert_close(got, loop_loss(S, positive), rtol=1e-5, atol=1e-6)
    restricted = make()
    assert not torch.isclose(got, restricted.loss(restricted.training_forward(x, LEAF), LEAF))


def test_identical_prompts_are_one_text():
    # with each taxon's own name, the two genera "Corvus" under different kingdoms read the same
    tree = Taxonomy.from_parents([-1, 0, 0, 1, 2, 3, 4], name=["Life", "A", "B", "Corvus", "Corvus", "x", "y"],
                                 rank=["root", "kingdom", "kingdom", "genus", "genus", "species", "species"],
                                 fixed_ranks=True)
    model = make({"names": "own", "levels": [2]}, taxonomy=tree)
    banks = model.batch_texts(torch.tensor([0, 1]))
    assert [len(bank) for bank, _ in banks] == [1]  # one text: both images are its positives
    assert banks[0][1].all()


def test_training_columns_are_the_full_scores_of_the_batch_texts():
    for geometry in ("euclidean", "hyperbolic"):
        model = make({"geometry": geometry})
        x = images(len(LEAF))
        with torch.no_grad():
            compact = model.training_forward(x, LEAF)
            full = model(x)
        ids = torch.cat([bank for bank, _ in model.batch_texts(LEAF)])
        torch.testing.assert_close(compact[:, :len(ids)], full[:, ids - 1], rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------- Lorentz geometry (MERU)
def test_lifted_points_lie_on_the_hyperboloid_and_distances_match_geoopt():
    c = torch.tensor(0.7, dtype=torch.float64)
    x = _lorentz.lift(torch.randn(5, 4, dtype=torch.float64), c)
    y = _lorentz.lift(torch.randn(3, 4, dtype=torch.float64), c)
    torch.testing.assert_close(_lorentz.lorentz_inner(x, x).diagonal(), torch.full((5,), -1 / 0.7, dtype=torch.float64))
    want = geoopt.manifolds.Lorentz(k=1 / 0.7).dist(x[:, None, :], y[None, :, :])
    torch.testing.assert_close(_lorentz.pairwise_distance(x, y, c), want)
    # closed form: the distance from the origin of exp_0(v) is ‖v‖
    v = torch.tensor([[0.3, -0.4]], dtype=torch.float64)
    origin = _lorentz.lift(torch.zeros(1, 2, dtype=torch.float64), c)
    torch.testing.assert_close(_lorentz.pairwise_distance(origin, _lorentz.lift(v, c), c),
                               torch.tensor([[0.5]], dtype=torch.float64))


def test_entailment_cone_contains_the_points_beyond_its_apex_and_not_those_behind():
    c = torch.tensor(1.0, dtype=torch.float64)
    u = torch.tensor([[0.6, 0.8]], dtype=torch.float64)
    apex = _lorentz.lift(2.0 * u, c)
    beyond, behind = _lorentz.lift(4.0 * u, c), _lorentz.lift(0.5 * u, c)
    assert _lorentz.exterior_angle(apex, beyond, c).item() == pytest.approx(0.0, abs=2e-3)
    assert _lorentz.exterior_angle(apex, behind, c).item() == pytest.approx(math.pi, abs=2e-3)
    # half-aperture: arcsin(2K / (√c ‖x_s‖)), ‖x_s‖ = sinh(2) at c = 1
    assert _lorentz.half_aperture(apex, c).item() == pytest.approx(math.asin(0.2 / math.sinh(2.0)), rel=1e-5)
    assert _lorentz.entailment_violation(apex, beyond, c).item() == 0.0
    assert _lorentz.entailment_violation(apex, behind, c).item() > 2.5


def test_hyperbolic_loss_adds_the_entailment_term_and_learns_the_curvature():
    model = make({"geometry": "hyperbolic", "curvature": 0.5}).train()
    x = images(len(LEAF))
    out = model.training_forward(x, LEAF)
    assert out.shape[1] == 2 * sum(len(bank) for bank, _ in model.batch_texts(LEAF))
    loss = model.loss(out, LEAF)
    loss.backward()
    assert model.log_curvature.grad is not None and model.log_curvature.grad != 0
    assert model.curvature().item() == pytest.approx(0.5)
    without = make({"geometry": "hyperbolic", "curvature": 0.5, "entailment_weight": 0.0}).train()
    assert loss.item() > without.loss(without.training_forward(x, LEAF), LEAF).item()
    fixed = make({"geometry": "hyperbolic", "learn_curvature": False})
    assert not fixed.log_curvature.requires_grad
    with torch.no_grad():
        fixed.log_curvature.fill_(10.0)  # out of MERU's range [c/10, 10 c]
    assert fixed.curvature().item() == pytest.approx(10.0)


@pytest.mark.parametrize("hparams, message", [
    ({"curvature": -1.0}, "methods.level_restricted.curvature"),
    ({"curvature": 0.0}, "methods.level_restricted.curvature"),
    ({"comparison": "all"}, "methods.level_restricted.comparison"),
    ({"prompt_template": "a photo of {taxon}."}, "methods.level_restricted.prompt_template"),
    ({"prompt_template": "a photo."}, "methods.level_restricted.prompt_template"),
    ({"levels": [4]}, "methods.level_restricted.levels"),
])
def test_bad_hyper_parameters_name_the_key(hparams, message):
    with pytest.raises(TaxonbenchError, match=message.replace(".", r"\.")):
        make(hparams)


# ---------------------------------------------------------------------- zero-shot on another taxonomy
SUBTREE = Taxonomy.from_parents(  # kingdom A only, one genus dropped, one new species: another dataset's tree
    [-1, 0, 1, 1, 2, 2, 3],
    name=["Life", "Animalia", "Corvus", "Pica", "corax", "cornix", "pica"],
    rank=["root", "kingdom", "genus", "genus", "species", "species", "species"], fixed_ranks=True)


def test_a_model_built_on_another_taxonomy_scores_the_same_prompts_the_same():
    trained = make()
    moved = METHODS.get("level_restricted")(build_backbone(TINY), SUBTREE, {})
    moved.load_state_dict(trained.state_dict())  # nothing in the weights is tied to the taxa
    moved.eval()
    x = images(4)
    with torch.no_grad():
        a, b = trained(x), moved(x)
    # Animalia (node 1), Corvus (3 -> 2), corax (6 -> 4) and pica (8 -> 6) have the same prompts in both trees
    for old, new in ((1, 1), (3, 2), (6, 4), (8, 6)):
        torch.testing.assert_close(a[:, old - 1], b[:, new - 1], rtol=1e-5, atol=1e-5)


def test_zero_shot_refuses_levels_the_model_never_saw():
    check_levels_seen(["kingdom", "genus", "species"], SUBTREE, "target", "source", "model.pt")
    check_levels_seen(["Kingdom", "Genus", "Species", "subspecies"], SUBTREE, "target", "source", "model.pt")
    with pytest.raises(TaxonbenchError, match=r"level 3 \('species'\) is not a level the model was trained on"):
        check_levels_seen(["kingdom", "genus"], SUBTREE, "target", "source", "model.pt")
    with pytest.raises(TaxonbenchError, match=r"level 2 \('genus'\).*'family'.*datasets\.target"):
        check_levels_seen(["kingdom", "family", "species"], SUBTREE, "target", "source", "model.pt")


@pytest.mark.parametrize("block, message", [
    ({"curvature": -0.5}, "methods.level_restricted.curvature: must be a finite number > 0"),
    ({"prompt_template": "a photo of {taxon}."},
     "methods.level_restricted.prompt_template: unknown field {taxon} in 'a photo of {taxon}.'; fields: {name}, {rank}"),
    ({"prompt_template": "a photo of a {rank}."},
     "methods.level_restricted.prompt_template: the template must contain {name}"),
])
def test_the_run_stops_at_start_on_a_bad_block(block, message):
    """The checks of the declarations run when Snakemake starts (plan.validate), before any job."""
    from taxonbench.plan import load_params, validate

    cfg = load_params("params.yaml")
    cfg["methods"]["level_restricted"] = {**cfg["methods"]["level_restricted"], **block}
    with pytest.raises(TaxonbenchError) as caught:
        validate(cfg)
    assert message in str(caught.value)
