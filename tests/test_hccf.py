"""HCCF and its CE ablations: Eq. 2 against open_clip's own CLIP loss, text-initialised heads, level subsets."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from taxonbench.errors import TaxonbenchError
from taxonbench.methods import METHODS
from taxonbench.models.backbones import build_backbone
from taxonbench.score_kinds import node_scores
from taxonbench.taxon_text import node_prompts

from clip_fixtures import TINY, TREE

N_LEVELS = TREE.max_depth  # 3: kingdom, genus, species
LEAF = torch.tensor([0, 1, 1, 2, 3, 4, 4, 0])  # duplicates on purpose: Eq. 2 treats every pair as its own positive


def make(method: str, hparams: dict | None = None, seed: int = 0):
    torch.manual_seed(seed)
    backbone = build_backbone(TINY)
    model = METHODS.get(method)(backbone, TREE, hparams or {})
    model.initialise()  # as training.build_method does for a new model
    return model, backbone


def images(seed: int = 1) -> torch.Tensor:
    return torch.randn(len(LEAF), 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def ancestors_at(depth: int) -> list[int]:
    return [int(TREE.ancestor_table[TREE.leaf_nodes[y], depth]) for y in LEAF]


def independent_clip_loss(model, x, depth: int, logit_scale: float) -> torch.Tensor:
    """open_clip's ClipLoss on embeddings computed here from the towers and the tokenizer directly."""
    head = model.heads[depth - 1]
    image = F.normalize(head(model.backbone(x)), dim=-1)
    prompts = node_prompts(TREE)
    tokens = open_clip.get_tokenizer(model.text.model_name)([prompts[v] for v in ancestors_at(depth)])
    text = F.normalize(model.text.clip.encode_text(tokens), dim=-1)
    return open_clip.ClipLoss()(image, text, logit_scale=torch.tensor(logit_scale))


def test_one_level_unit_temperature_is_the_standard_clip_loss():
    model, _ = make("hccf", {"levels": [3]})
    with torch.no_grad():
        model.text.clip.logit_scale.fill_(0.0)  # exp(0) = 1: unit temperature
    model.eval()  # BatchNorm in eval on both sides
    x = images()
    got = model.loss(model.training_forward(x, LEAF), LEAF)
    torch.testing.assert_close(got, independent_clip_loss(model, x, 3, 1.0), rtol=1e-5, atol=1e-6)


def test_every_level_sums_the_per_level_clip_losses():
    model, _ = make("hccf")
    model.eval()
    x = images(2)
    scale = float(model.text.logit_scale.detach().exp())
    want = sum(independent_clip_loss(model, x, d, scale) for d in range(1, N_LEVELS + 1))
    torch.testing.assert_close(model.loss(model.training_forward(x, LEAF), LEAF), want, rtol=1e-5, atol=1e-5)


def test_training_outputs_agree_with_full_scores_on_the_batch_taxa():
    model, _ = make("hccf", {"levels": [2, 3]})
    model.eval()
    x = images(3)
    with torch.no_grad():
        train_out = model.training_forward(x, LEAF)
        full = model(x)
    scored = torch.isfinite(train_out[0])
    want = {v - 1 for d in (2, 3) for v in ancestors_at(d)}
    assert set(torch.nonzero(scored).flatten().tolist()) == want
    torch.testing.assert_close(train_out[:, scored], full[:, scored], rtol=1e-5, atol=1e-5)
    # each full logit is s · cos(head_d(f(x)), g(prompt)) of the node's own level
    v = 4  # genus Pica, depth 2
    image = F.normalize(model.heads[1](model.backbone(x[:1])), dim=-1)
    tokens = open_clip.get_tokenizer(model.text.model_name)([node_prompts(TREE)[v]])
    text = F.normalize(model.text.clip.encode_text(tokens), dim=-1)
    torch.testing.assert_close(full[0, v - 1], (model.scale() * image @ text.T)[0, 0], rtol=1e-5, atol=1e-5)
    assert node_scores(full.double().numpy(), TREE, model.sidecar()).shape == (len(LEAF), TREE.n_nodes)


@pytest.mark.parametrize("method, levels", [("hccf", [3]), ("hccf", [2, 3]), ("ce_text_init_levels", [2, 3]),
                                            ("ce_text_init_levels", [1])])
def test_level_subsets_train_exactly_the_heads_named(method, levels):
    model, _ = make(method, {"levels": levels})
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    model.train()
    loss = model.loss(model.training_forward(images(), LEAF), LEAF)
    loss.backward()
    opt.step()
    after = model.state_dict()
    for d in range(1, N_LEVELS + 1):
        changed = not torch.equal(before[f"heads.{d - 1}.weight"], after[f"heads.{d - 1}.weight"])
        assert changed == (d in levels), f"level {d}"
    if method == "hccf":  # both encoders are updated
        assert not torch.equal(before["text.clip.token_embedding.weight"], after["text.clip.token_embedding.weight"])
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("backbone."))


def test_frozen_text_tower_stays_put():
    model, _ = make("hccf", {"train_text": False})
    before = model.text.clip.token_embedding.weight.clone()
    model.loss(model.training_forward(images(), LEAF), LEAF).backward()
    assert model.text.clip.token_embedding.weight.grad is None
    assert torch.equal(model.text.clip.token_embedding.weight, before)


def test_text_initialised_classifiers_are_the_normalised_text_embeddings():
    template, names = "a photo of the {rank} {name}.", "scientific"
    leaf_model, backbone = make("ce_text_init", {"prompt_template": template, "names": names})
    prompts = node_prompts(TREE, template, names)
    tokenizer = open_clip.get_tokenizer(backbone.text.model_name)
    with torch.no_grad():
        backbone.text.eval()
        text = F.normalize(backbone.text.clip.encode_text(tokenizer(prompts)), dim=-1)
    torch.testing.assert_close(leaf_model.head.weight, text[TREE.leaf_nodes], rtol=1e-5, atol=1e-6)
    assert float(leaf_model.head.scale) == pytest.approx(float(backbone.text.logit_scale.detach().exp()))
    level_model, backbone = make("ce_text_init_levels", {"prompt_template": template, "names": names})
    with torch.no_grad():
        backbone.text.eval()
        text = F.normalize(backbone.text.clip.encode_text(tokenizer(prompts)), dim=-1)
    for d in range(1, N_LEVELS + 1):
        torch.testing.assert_close(level_model.heads[d - 1].weight, text[TREE.nodes_at_depth(d)], rtol=1e-5,
                                   atol=1e-6)


def test_text_init_levels_loss_is_the_sum_of_level_cross_entropies():
    model, _ = make("ce_text_init_levels", {"levels": [1, 3]})
    model.eval()
    x = images(4)
    out = model(x)
    want = 0.0
    for d in (1, 3):
        nodes = TREE.nodes_at_depth(d).tolist()
        target = torch.tensor([nodes.index(v) for v in ancestors_at(d)])
        want = want + F.cross_entropy(out[:, [v - 1 for v in nodes]], target)
    torch.testing.assert_close(model.loss(out, LEAF), want)


def test_flat_softmax_trains_on_the_clip_visual_tower():
    """Table 3's "CE loss baseline": flat softmax on the CLIP image tower; the text tower is not in the model."""
    model, backbone = make("flat_softmax")
    assert model.backbone is backbone.module and model.output_kind == "leaf_logits"
    assert not any(name.startswith("text") for name, _ in model.named_modules())


@pytest.mark.parametrize("method, hparams, message", [
    ("hccf", {"levels": [4]}, r"methods.hccf.levels: 4 is not a level of this taxonomy \(1 = top rank .. 3"),
    ("hccf", {"levels": [2, 2]}, r"methods.hccf.levels: repeated level"),
    ("hccf", {"levels": "L67"}, r"methods.hccf.levels: must be a list of integers >= 1 or null; got .L67."),
    ("hccf", {"levels": []}, r"methods.hccf.levels: expected a non-empty list"),
    ("ce_text_init_levels", {"levels": [0]}, r"methods.ce_text_init_levels.levels: must be a list of integers >= 1"),
    ("hccf", {"names": "latin"}, r"methods.hccf.names: must be one of"),
    ("ce_text_init", {"prompt_template": "{taxon}"}, r"methods.ce_text_init.prompt_template: unknown field"),
    ("hccf", {"levles": [3]}, r"methods.hccf.levles: unknown key \(did you mean 'levels'\?\)"),
])
def test_bad_hyper_parameters_name_the_key(method, hparams, message):
    with pytest.raises(TaxonbenchError, match=message):
        make(method, hparams)


@pytest.mark.parametrize("method", ["hccf", "ce_text_init", "ce_text_init_levels"])
def test_clip_methods_refuse_a_backbone_without_text(method):
    with pytest.raises(TaxonbenchError, match=rf"methods.{method}: needs a CLIP backbone with a text tower"):
        METHODS.get(method)(build_backbone("tiny_cnn"), TREE, {})


def test_experiment_name_appears_in_messages():
    with pytest.raises(TaxonbenchError, match=r"methods.hccf_L67.levels: 8 is not a level"):
        METHODS.get("hccf")(build_backbone(TINY), TREE, {"levels": [2, 8]}, "hccf_L67")


def test_a_reloaded_text_init_model_encodes_no_prompt(tmp_path, monkeypatch):
    """Dumping logits rebuilds the model before loading its state dict: the text-derived
    initialisation, which the state dict overwrites, is skipped (10k prompts through a CLIP text
    tower at iNat scale)."""
    from taxonbench.methods import clip_ce
    from taxonbench.training import build_method

    meta = {"method": "ce_text_init_levels", "backbone": TINY, "pretrained": None, "hparams": {}}
    trained, _ = build_method(meta, TREE)
    monkeypatch.setattr(clip_ce, "prompt_embeddings", lambda *a, **k: pytest.fail("prompts encoded"))
    reloaded, _ = build_method(meta, TREE, load_pretrained=False)
    reloaded.load_state_dict(trained.state_dict())
    x = images()
    torch.testing.assert_close(reloaded.eval()(x), trained.eval()(x))
    with pytest.raises(pytest.fail.Exception, match="prompts encoded"):
        build_method(meta, TREE)  # a new model does initialise from the text tower
