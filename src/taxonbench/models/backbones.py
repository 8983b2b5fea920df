"""Backbone registry: image -> feature vector.

Every backbone is an ``nn.Module`` mapping ``(B, 3, H, W)`` to ``(B, num_features)``
with a ``num_features`` attribute, plus the normalisation its weights expect
(:class:`Preprocess`), so transforms are always derived from the backbone.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from taxonbench.errors import TaxonbenchError
from taxonbench.io import load_weights_only
from taxonbench.registries import BACKBONES


@dataclass(frozen=True)
class Preprocess:
    """The input normalisation that belongs to a set of weights."""

    mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    std: tuple[float, float, float] = (0.25, 0.25, 0.25)
    image_size: int | None = None  # None: use the dataset's stored size
    #: luminance replicated to three channels before normalising (``train.grayscale``; docs/training.md)
    grayscale: bool = False


IMAGENET = Preprocess(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


@dataclass
class Backbone:
    """A feature extractor, its input normalisation, and (CLIP models) the text tower trained with it."""

    module: nn.Module
    num_features: int
    preprocess: Preprocess
    text: nn.Module | None = None  # taxonbench.models.clip.TextTower for open_clip models
    #: the smallest input side the architecture accepts (AlexNet's stride-4 stem and three poolings: 63 px)
    min_image_size: int = 1


BackboneFactory = Callable[..., Backbone]


def build_backbone(name: str, pretrained: str | None = None) -> Backbone:
    """Build the backbone ``name``; ``pretrained`` is None (random init), a weights name, or a path.

    ``name`` is a registered family (``tiny_cnn``, ``resnet50``) or
    ``family:model`` for families that build many models (``open_clip:RN50``).
    """
    family, has_model, model = name.partition(":")
    factory = BACKBONES.get(family)
    if not has_model:
        return factory(pretrained)
    if "model" not in inspect.signature(factory).parameters:
        raise TaxonbenchError(f"backbone {family!r} builds one model; write {family!r}, not {name!r}")
    return factory(pretrained, model=model)


class TinyCNN(nn.Module):
    """A small CPU-friendly convolutional net for 32-64 px images (the embedded default).

    Four stages (16, 32, 64, 128 channels) of ``convs_per_stage`` conv-BN-ReLU
    layers each, stride-2 max pooling between stages, then global average
    pooling: 128 features (about 98k parameters with one conv per stage).
    ``tiny_cnn:x2`` / ``tiny_cnn:x3`` (two / three convs per stage, 2x / 3x
    the depth) stand in for ResNet-101 / -152 beside ``tiny_cnn`` for ResNet-50
    in the embedded default: the same family, deeper.
    """

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), convs_per_stage: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(widths):
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(c_in, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                ]
                c_in = c
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.num_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


#: ``tiny_cnn:<variant>`` -> convolutions per stage
TINY_CNN_DEPTHS = {"x1": 1, "x2": 2, "x3": 3}


def _load_local_checkpoint(module: nn.Module, path: Path, name: str) -> None:
    """Load a state dict saved by ``torch.save`` (weights_only); strict, with a clear error."""
    state = load_weights_only(path, f"checkpoint for backbone {name!r}")
    if isinstance(state, dict) and "backbone" in state:
        state = state["backbone"]
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise TaxonbenchError(f"{path}: checkpoint does not match backbone {name!r}: {exc}") from None


@BACKBONES.register("tiny_cnn")
def tiny_cnn(pretrained: str | None = None, model: str = "x1") -> Backbone:
    if model not in TINY_CNN_DEPTHS:
        raise TaxonbenchError(f"backbone 'tiny_cnn:{model}': unknown depth; valid: "
                              + ", ".join(f"tiny_cnn:{k}" for k in TINY_CNN_DEPTHS))
    module = TinyCNN(convs_per_stage=TINY_CNN_DEPTHS[model])
    if pretrained is not None:
        path = Path(pretrained)
        if not path.is_file():
            raise TaxonbenchError(
                f"backbone 'tiny_cnn' has no named pretrained weights; {pretrained!r} is not a checkpoint file"
            )
        _load_local_checkpoint(module, path, "tiny_cnn")
    return Backbone(module, module.num_features, Preprocess())


def _drop_classifier(model: nn.Module) -> int:
    """Replace a torchvision classifier's last layer by the identity; the width of the features it read
    (ResNet: ``fc``; AlexNet and VGG: the last ``Linear`` of ``classifier``)."""
    if isinstance(getattr(model, "fc", None), nn.Linear):
        width, model.fc = model.fc.in_features, nn.Identity()
        return width
    last = model.classifier[-1]
    width, model.classifier[-1] = last.in_features, nn.Identity()
    return width


def _torchvision_classifier(arch: str) -> BackboneFactory:
    def build(pretrained: str | None = None) -> Backbone:
        import torchvision

        weights_enum = torchvision.models.get_model_weights(arch)
        weights = None
        preprocess = Preprocess()
        path = Path(pretrained) if pretrained else None
        if pretrained is not None and not (path and path.is_file()):
            valid = [w.name for w in weights_enum]
            if pretrained not in valid and pretrained != "DEFAULT":
                raise TaxonbenchError(
                    f"backbone {arch!r}: unknown pretrained weights {pretrained!r}; "
                    f"valid: {', '.join(valid + ['DEFAULT'])} or a checkpoint path"
                )
            weights = weights_enum[pretrained] if pretrained != "DEFAULT" else weights_enum.DEFAULT
            preprocess = IMAGENET
        model = torchvision.models.get_model(arch, weights=weights)
        num_features = _drop_classifier(model)
        if path is not None and path.is_file():
            _load_local_checkpoint(model, path, arch)
            preprocess = IMAGENET
        return Backbone(model, num_features, preprocess, min_image_size=MIN_IMAGE_SIZE.get(arch, 1))

    return build


MIN_IMAGE_SIZE = {"alexnet": 63, "vgg11": 32, "vgg16": 32, "resnet18": 32, "resnet34": 32, "resnet50": 32,
                  "resnet101": 32, "resnet152": 32}
#: torchvision classifiers, their last layer removed (the thesis's backbones: AlexNet, VGG, ResNet-18 .. 152)
TORCHVISION_ARCHS = ("alexnet", "vgg11", "vgg16", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")
for _arch in TORCHVISION_ARCHS:
    BACKBONES.register(_arch)(_torchvision_classifier(_arch))
