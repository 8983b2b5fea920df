"""The per-level classifier (Dhall's thesis §3.2, Eq. 3.2–3.3): L N_i-way classifiers on any backbone.

One linear layer gives the logits of every non-root node (entry j is node
j + 1); the logits x_i of the N_i nodes at depth i form level i's classifier::

    L(x, τ) = Σ_{i ∈ levels} L_i(x_i, τ_i),   L_i = −x_i[τ_i] + log Σ_{j=1}^{N_i} exp x_i[j]      (3.2, 3.3)

τ_i the true leaf's ancestor at depth i; each term the batch mean
(:func:`taxonbench.methods._levels.level_cross_entropy`). ``levels`` chooses the
terms (null = all); ``class_weight: inverse_frequency`` weights each class of a
term by its inverse training frequency. Outputs ``level_softmax_logits``: each
level's softmax; set predictions by ``level_argmax`` (one label per level).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taxonbench.declare import param
from taxonbench.methods._class_weights import ClassWeighted, ClassWeightHparams
from taxonbench.methods._levels import LevelLayout, level_cross_entropy, resolve_levels
from taxonbench.methods.base import Method, loss_precision
from taxonbench.registries import METHODS


@dataclass(frozen=True)
class LevelHparams(ClassWeightHparams):
    levels: list[int] | None = param(None, ge=1, doc="the levels whose terms enter the loss, 1 = top .. D; null = all")


@METHODS.register("per_level")
class PerLevel(ClassWeighted, Method):
    output_kind = "level_softmax_logits"
    Hparams = LevelHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.levels = resolve_levels(self.hparams.levels, taxonomy, self.where)
        self.layout = LevelLayout(taxonomy)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        return level_cross_entropy(loss_precision(outputs), leaf, self.layout, self.levels, self.node_weight)
