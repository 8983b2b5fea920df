"""Multi-label focal loss over the non-root nodes (Valmadre 2022, "multilabel focal" baseline).

One linear layer gives a logit θ_v for every non-root node v (entry j is node
j + 1). Each node is an independent binary problem, positive iff v lies on the
true leaf's root path, trained with the sigmoid focal loss of Lin et al. 2017
(Eq. 5, as ``torchvision.ops.sigmoid_focal_loss``)::

    loss(θ, y) = Σ_{v ≠ root} FL(θ_v, [v ∈ path(y)])
    FL(θ, t)   = α_t · (1 − p_t)^γ · BCE(θ, t),  p = σ(θ), p_t = p^t (1 − p)^(1−t),
                 α_t = α·t + (1 − α)·(1 − t)   (no α-weighting when α = −1)

Reduction: the per-sample *sum* over the n − 1 nodes, then the mean over the
batch (as ``MultiLabelFocalLoss`` in the reference ``jvlmdr/hiercls``; the root
is left out since it is always positive). The HCCF/Valmadre run uses γ = 1,
α = 0.95. Node scores: p(v) = σ(θ_v), the root 1 (not hierarchically consistent).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.registries import METHODS
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision


@dataclass(frozen=True)
class MultilabelFocalHparams:
    gamma: float = param(1.0, ge=0.0, doc="focusing exponent γ of (1 − p_t)^γ; the Valmadre 2022 / HCCF run uses 1")
    alpha: float = param(0.95, ge=-1.0, le=1.0,
                         doc="weight α of the positives (1 − α of negatives), −1 = none; the paper run uses 0.95")


@METHODS.register("multilabel_focal")
class MultilabelFocal(Method):
    output_kind = "node_sigmoid_logits"
    Hparams = MultilabelFocalHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        hp = self.hparams
        if not hp.gamma >= 0:
            raise TaxonbenchError(f"{self.where}.gamma: must be >= 0, got {hp.gamma!r}")
        if not (0 <= hp.alpha <= 1 or hp.alpha == -1):
            raise TaxonbenchError(f"{self.where}.alpha: must be in [0, 1] or -1 (no weighting), "
                                  f"got {hp.alpha!r}")
        self.tree = TreeOps(taxonomy)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        from torchvision.ops import sigmoid_focal_loss  # here: importing torchvision costs seconds per job

        theta = loss_precision(outputs)
        targets = self.tree.on_path(leaf)[:, 1:].to(theta.dtype)  # drop the root
        per_node = sigmoid_focal_loss(theta, targets, alpha=float(self.hparams.alpha),
                                      gamma=float(self.hparams.gamma), reduction="none")
        return per_node.sum(dim=1).mean()
