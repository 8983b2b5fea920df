"""Backbones: every registered one builds; weights load through `pretrained=`; clear errors."""

import pytest
import torch

from taxonbench.errors import TaxonbenchError
from taxonbench.models.backbones import BACKBONES, IMAGENET, build_backbone


FAMILY_EXAMPLES = {"open_clip": "open_clip:taxonbench-tiny-clip"}  # families that build many models


@pytest.mark.parametrize("name", [FAMILY_EXAMPLES.get(n, n) for n in BACKBONES.names()])
def test_every_backbone_maps_images_to_features(name):
    backbone = build_backbone(name)
    backbone.module.eval()
    side = max(32, backbone.min_image_size)
    with torch.no_grad():
        out = backbone.module(torch.randn(2, 3, side, side))
    assert out.shape == (2, backbone.num_features)


@pytest.mark.parametrize("name", ["tiny_cnn", "resnet18"])
def test_checkpoint_path_loads_the_same_weights(name, tmp_path):
    torch.manual_seed(1)
    original = build_backbone(name)
    path = tmp_path / f"{name}.pt"
    torch.save(original.module.state_dict(), path)
    torch.manual_seed(2)
    loaded = build_backbone(name, pretrained=str(path))
    for key, value in original.module.state_dict().items():
        torch.testing.assert_close(loaded.module.state_dict()[key], value)
    if name == "resnet18":
        assert loaded.preprocess == IMAGENET


def test_mismatched_checkpoint_and_unknown_names(tmp_path):
    path = tmp_path / "tiny.pt"
    torch.save(build_backbone("tiny_cnn").module.state_dict(), path)
    with pytest.raises(TaxonbenchError, match=r"tiny.pt: checkpoint does not match backbone 'resnet18'"):
        build_backbone("resnet18", pretrained=str(path))
    with pytest.raises(TaxonbenchError, match=r"unknown pretrained weights 'IMAGENET9K'; valid: IMAGENET1K_V1"):
        build_backbone("resnet18", pretrained="IMAGENET9K")
    with pytest.raises(TaxonbenchError, match=r"'tiny_cnn' has no named pretrained weights"):
        build_backbone("tiny_cnn", pretrained="IMAGENET1K_V1")
    with pytest.raises(TaxonbenchError, match=r"unknown backbone 'vit'; available: alexnet, open_clip, resnet101, resnet152, resnet18, resnet34, resnet50, tiny_cnn, vgg11, vgg16"):
        build_backbone("vit")


@pytest.mark.parametrize("variant, convs", [("x1", 1), ("x2", 2), ("x3", 3)])
def test_deeper_tiny_cnns_repeat_each_stages_convolution(variant, convs):
    net = build_backbone(f"tiny_cnn:{variant}").module
    per_stage = [m.out_channels for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert per_stage == [c for c in (16, 32, 64, 128) for _ in range(convs)]
    assert build_backbone(f"tiny_cnn:{variant}").num_features == 128


def test_tiny_cnn_x1_is_the_tiny_cnn():
    torch.manual_seed(0)
    plain = build_backbone("tiny_cnn").module.state_dict()
    torch.manual_seed(0)
    x1 = build_backbone("tiny_cnn:x1").module.state_dict()
    assert list(plain) == list(x1) and all(torch.equal(plain[k], x1[k]) for k in plain)
    with pytest.raises(TaxonbenchError, match=r"backbone 'tiny_cnn:x4': unknown depth; valid: tiny_cnn:x1, "
                                              r"tiny_cnn:x2, tiny_cnn:x3"):
        build_backbone("tiny_cnn:x4")
