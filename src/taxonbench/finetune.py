"""Which backbone weights a training updates (``train.finetune``; docs/training.md).

The backbone's *layers* are its parameterised parts in forward order: the
top-level children of the backbone module that hold parameters, where a single
parameterised container (``TinyCNN.features``) is opened into its children.
For a torchvision ResNet they are ``conv1, bn1, layer1, layer2, layer3,
layer4``; for the tiny CNN its four conv and four BatchNorm layers.

Regimes (the method's own heads — everything of the method outside
``method.backbone``, e.g. the classifier or CLIP's text tower — always train):

``all``         every weight (the default);
``head``        no backbone weight: a frozen feature extractor ("only the last
                layer is fine-tuned", Dhall's thesis Ch. 4; the linear probe);
``last_k``      the last ``train.finetune_last_k`` layers (HiMulCon fine-tunes
                ResNet's ``layer4``: ``last_k`` with k = 1);
``first_last``  the first layer (the thesis's "the last layer and the first
                layer is fine-tuned", which lets a pretrained stem adapt to new
                inputs such as grayscale).

A frozen layer gets ``requires_grad = False`` and stays in eval mode during
training, so its BatchNorm statistics do not move either.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from taxonbench.errors import TaxonbenchError


def backbone_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """The parameterised layers of a backbone, in order, with their dotted names."""
    prefix, layers = "", [(n, m) for n, m in module.named_children() if any(True for _ in m.parameters())]
    while len(layers) == 1 and any(True for _ in layers[0][1].children()):
        prefix += layers[0][0] + "."
        layers = [(n, m) for n, m in layers[0][1].named_children() if any(True for _ in m.parameters())]
    return [(prefix + n, m) for n, m in layers]


#: regime -> (number of layers, finetune_last_k) -> indices of the layers that train
REGIMES: dict[str, Callable[[int, int], list[int]]] = {
    "all": lambda n, k: list(range(n)),
    "head": lambda n, k: [],
    "last_k": lambda n, k: list(range(n - k, n)),
    "first_last": lambda n, k: [0],
}


def freeze_backbone(backbone: nn.Module, regime: str, last_k: int = 1, where: str = "train") -> list[nn.Module]:
    """Freeze the layers ``regime`` does not train; return them (the loop keeps them in eval mode)."""
    if regime not in REGIMES:
        raise TaxonbenchError(f"{where}.finetune: unknown regime {regime!r}; valid: {', '.join(REGIMES)}")
    layers = backbone_layers(backbone)
    if regime == "last_k" and last_k > len(layers):
        names = ", ".join(n for n, _ in layers)
        raise TaxonbenchError(f"{where}.finetune_last_k: {last_k} exceeds the backbone's {len(layers)} layers "
                              f"({names})")
    trained = set(REGIMES[regime](len(layers), last_k))
    frozen = [m for i, (_, m) in enumerate(layers) if i not in trained]
    for module in frozen:
        module.requires_grad_(False)
    return frozen
