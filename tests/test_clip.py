"""open_clip backbones (the weights' own preprocessing, real checkpoint loading, clear refusals) and taxon prompts."""

from __future__ import annotations

import open_clip
import pytest
import torch

from taxonbench.errors import TaxonbenchError
from taxonbench.models.backbones import build_backbone
from taxonbench.models.clip import TINY_CLIP, build_clip
from taxonbench.taxon_text import node_prompts

from clip_fixtures import TINY, TREE

def tiny_state(seed: int) -> dict[str, torch.Tensor]:
    """The state dict of a freshly initialised tiny CLIP (what a user's checkpoint file holds)."""
    torch.manual_seed(seed)
    build_clip(TINY_CLIP)  # registers the config with open_clip
    return open_clip.create_model(TINY_CLIP).state_dict()


def test_tiny_clip_uses_its_own_preprocessing_and_shapes():
    backbone = build_backbone(TINY)
    cfg = open_clip.get_model_preprocess_cfg(open_clip.create_model(TINY_CLIP))
    assert backbone.preprocess.mean == pytest.approx(cfg["mean"])
    assert backbone.preprocess.std == pytest.approx(cfg["std"])
    assert backbone.preprocess.image_size == 32
    assert backbone.module(torch.randn(2, 3, 32, 32)).shape == (2, backbone.num_features)
    tokens = backbone.text.tokenize(["a photo of Corvus corax."])
    assert tokens.shape == (1, backbone.text.context_length)
    assert backbone.text.encode(tokens).shape == (1, backbone.num_features)
    assert not hasattr(backbone.text.clip, "visual")  # the text tower does not carry a second visual tower


def test_checkpoint_path_loads_through_the_pretrained_code(tmp_path):
    state = tiny_state(seed=3)
    path = tmp_path / "tiny_clip.pt"
    torch.save(state, path)
    backbone = build_backbone(TINY, str(path))
    for key, value in backbone.module.state_dict().items():
        torch.testing.assert_close(value, state[f"visual.{key}"], rtol=0, atol=0)
    text_state = backbone.text.clip.state_dict()
    for key in ("token_embedding.weight", "text_projection", "logit_scale", "ln_final.weight"):
        torch.testing.assert_close(text_state[key], state[key], rtol=0, atol=0)
    other = build_backbone(TINY)  # random init differs: the test would notice weights not loaded
    assert not torch.equal(other.text.clip.token_embedding.weight, state["token_embedding.weight"])


def test_mismatched_checkpoint_is_refused(tmp_path):
    state = tiny_state(seed=0)
    state["token_embedding.weight"] = state["token_embedding.weight"][:, :32]
    path = tmp_path / "wrong.pt"
    torch.save(state, path)
    with pytest.raises(TaxonbenchError, match=f"{path}: not a checkpoint of open_clip model '{TINY_CLIP}' .*size mismatch"):
        build_backbone(TINY, str(path))


def test_corrupt_checkpoint_is_refused(tmp_path):
    path = tmp_path / "corrupt.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(TaxonbenchError, match="corrupt.pt: not a checkpoint of open_clip model"):
        build_backbone(TINY, str(path))


@pytest.mark.parametrize("name, pretrained, message", [
    ("open_clip:RN5O", None, r"unknown open_clip model 'RN5O' \(did you mean .*RN50"),
    ("open_clip:RN50", "opneai", r"unknown pretrained tag 'opneai' \(did you mean openai\?\); valid tags: openai"),
    ("open_clip:RN50", "weights/rn50.pt", r"checkpoint for open_clip model 'RN50' not found: weights/rn50.pt"),
    ("open_clip", None, r"needs a model name: open_clip:<model>"),
    ("resnet18:big", None, r"backbone 'resnet18' builds one model"),
    ("tiny_cnn:big", None, r"backbone 'tiny_cnn:big': unknown depth; valid: tiny_cnn:x1"),
    ("open_clip:hf-hub:org/model", "openai", r"brings its own weights; set pretrained to null"),
])
def test_bad_names_are_refused_with_the_valid_ones(name, pretrained, message):
    with pytest.raises(TaxonbenchError, match=message):
        build_backbone(name, pretrained)


def test_weights_that_cannot_be_fetched_never_fall_back_to_random(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", offline)
    with pytest.raises(TaxonbenchError, match=r"could not build open_clip model 'RN50' with pretrained 'openai'.*"
                                              r"pass the local checkpoint path"):
        build_backbone("open_clip:RN50", "openai")


def test_prompt_name_styles():
    assert node_prompts(TREE, "{name}", "own")[6] == "corax"
    assert node_prompts(TREE, "{name}", "scientific")[6] == "Corvus corax"
    assert node_prompts(TREE, "{name}", "scientific")[3] == "Corvus"
    assert node_prompts(TREE, "{name}", "cumulative")[6] == "Animalia Corvus corax"
    assert node_prompts(TREE, "a photo of the {rank} {name}.", "own")[5] == "a photo of the genus Quercus."
    assert len(node_prompts(TREE)) == TREE.n_nodes


@pytest.mark.parametrize("template, names, message", [
    ("a photo of {taxon}.", "own", r"hccf.prompt_template: unknown field \{taxon\}"),
    ("a photo.", "own", r"hccf.prompt_template: the template must contain \{name\}"),
    ("a photo of {name", "own", r"hccf.prompt_template: not a valid template"),
    ("{name}", "latin", r"hccf.names: must be one of own, scientific, cumulative; got 'latin'"),
])
def test_bad_prompt_settings(template, names, message):
    with pytest.raises(TaxonbenchError, match=message):
        node_prompts(TREE, template, names, where="hccf")
