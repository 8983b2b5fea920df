"""Flat softmax (Bertinetto et al. 2020; Valmadre 2022's baseline).

One linear layer on the backbone features gives L leaf logits θ; the loss is
the cross-entropy ``-log softmax(θ)_y`` over leaves. Node scores come from
bottom-up inference: ``p(v) = Σ_{leaves u under v} softmax(θ)_u`` (HCCF Eq. 1).
``class_weight: inverse_frequency`` (Dhall's thesis "cw", §4.4) weights each
sample's term by its leaf's inverse training frequency, a weighted mean
``Σ_b w_{y_b} CE_b / Σ_b w_{y_b}`` (``torch.nn.functional.cross_entropy``'s ``weight``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.registries import METHODS
from taxonbench.methods._class_weights import ClassWeighted, ClassWeightHparams
from taxonbench.methods.base import Method


@METHODS.register("flat_softmax")
class FlatSoftmax(ClassWeighted, Method):
    output_kind = "leaf_logits"
    Hparams = ClassWeightHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.head = nn.Linear(self.num_features, taxonomy.n_leaves)

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        weight = None if self.node_weight is None else self.node_weight[self.taxonomy.leaf_nodes]
        return F.cross_entropy(outputs.float(), leaf, weight=weight)

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)
