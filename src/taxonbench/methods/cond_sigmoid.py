"""Conditional sigmoid (Brust & Denzler 2019; Valmadre 2022 §3, "conditional sigmoid").

One linear layer gives a logit θ_v for every non-root node v (entry j is node
j + 1), read as p(v | parent(v)) = σ(θ_v). Training uses a binary
cross-entropy on exactly the nodes whose parent lies on the true path: the
path nodes themselves are positives, their siblings off the path are
negatives, every other node gets no loss::

    loss(θ, y) = Σ_{v ∈ path(y) \\ root} −log σ(θ_v)
               + Σ_{v ∉ path(y), parent(v) ∈ path(y)} −log(1 − σ(θ_v))

i.e. the children of every node on path(y) (the leaf y has none). Per-sample
sum over those terms, mean over the batch (``ConditionalMultiLabelLoss`` in the
reference ``jvlmdr/hiercls``). Node scores: p(v) = Π_{u ∈ path(v) \\ root} σ(θ_u).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.registries import METHODS
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision


@METHODS.register("cond_sigmoid")
class CondSigmoid(Method):
    output_kind = "sibling_sigmoid_logits"

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.tree = TreeOps(taxonomy)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        theta = loss_precision(outputs)
        on_path = self.tree.on_path(leaf).to(theta.dtype)  # (B, n)
        positive = on_path[:, 1:]
        counted = on_path[:, self.tree.parent[1:]]  # parent(v) on the path: positives and their siblings
        bce = F.binary_cross_entropy_with_logits(theta, positive, reduction="none")
        return (counted * bce).sum(dim=1).mean()
