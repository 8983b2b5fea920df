"""Conditional (hierarchical) softmax (Redmon & Farhadi 2017; Valmadre 2022 §3, "conditional softmax").

One linear layer gives a logit θ_v for every non-root node v (entry j is node
j + 1). Each internal node u defines a softmax over its children,
p(v | u) = exp θ_v / Σ_{w ∈ C(u)} exp θ_w, and the loss is the negative
log-likelihood of the true leaf by the chain rule::

    loss(θ, y) = − Σ_{v ∈ path(y) \\ root} log p(v | parent(v))

(an only child contributes log 1 = 0). Mean over the batch, no per-node
weights (``HierSoftmaxCrossEntropy`` with ``hier_normalize=''`` in the reference
``jvlmdr/hiercls``). This is also Dhall's thesis's hierarchical softmax
(§3.5, Eq. 3.9-3.12); its ``class_weight: inverse_frequency`` ("cw", thesis
§4.4) weights each level's term by the true node's inverse training frequency,
a weighted mean over the batch per level
(:func:`~taxonbench.methods._class_weights.level_weighted_mean`, as the masked
per-level classifier). Node scores: the top-down product of the conditionals,
p(v) = Π_{u ∈ path(v) \\ root} p(u | parent(u)).
"""

from __future__ import annotations

import torch
from torch import nn

from taxonbench.registries import METHODS
from taxonbench.methods._class_weights import ClassWeighted, ClassWeightHparams, level_weighted_mean
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision


@METHODS.register("cond_softmax")
class CondSoftmax(ClassWeighted, Method):
    output_kind = "sibling_softmax_logits"
    Hparams = ClassWeightHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.tree = TreeOps(taxonomy)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        theta = loss_precision(outputs)
        theta = torch.cat([torch.zeros_like(theta[:, :1]), theta], dim=1)  # the root's slot (unused)
        log_cond = self.tree.sibling_log_softmax(theta)  # (B, n), root 0
        on_path = self.tree.on_path(leaf).to(theta.dtype)
        if self.node_weight is None:
            return -(on_path * log_cond).sum(dim=1).mean()
        return level_weighted_mean(-log_cond, on_path, self.node_weight, self.tree.depth)
