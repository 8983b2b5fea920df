"""Soft-max-margin (Valmadre 2022, "Hierarchical classification at multiple operating points", NeurIPS).

One linear layer gives a score θ_v for every node v, root included (n outputs).
The loss is the soft (log-sum-exp) version of the structured hinge loss with
the margin τ·[v ∉ path(y)] (the reference's ``margin='incorrect'``)::

    loss(θ, y) = −θ_y + log Σ_{v ∈ V} exp(θ_v + τ·[v ∉ path(y)])

y is the true leaf *node*; v ranges over **all n nodes**, the root and y
included (nodes on path(y) enter with margin 0), as in the reference
``jvlmdr/hiercls`` ``hier_torch.SoftMarginLoss(hardness='soft',
margin='incorrect', tau=margin_tau)`` with ``margin_tau = 5`` in its configs
(the paper's "soft-max-margin" runs, ``soft_margin-incorrect-5``). Mean over
the batch, computed in float32 (float64 kept).

Node scores (kind ``subtree_softmax_logits``): p(v) = Σ_{u ∈ subtree(v)} softmax(θ)_u.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from taxonbench.declare import param
from taxonbench.registries import METHODS
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision


@dataclass(frozen=True)
class SoftmarginHparams:
    margin: float = param(5.0, ge=0.0,
                          doc="τ added to every node off path(y) (reference config margin_tau=5, margin='incorrect')")


@METHODS.register("softmargin")
class Softmargin(Method):
    output_kind = "subtree_softmax_logits"
    Hparams = SoftmarginHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.tree = TreeOps(taxonomy)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        theta = loss_precision(outputs)
        off_path = 1.0 - self.tree.on_path(leaf).to(theta.dtype)  # (B, n): 1 where v ∉ path(y)
        true_score = theta.gather(1, self.tree.leaf_nodes[leaf].unsqueeze(1)).squeeze(1)
        return (torch.logsumexp(theta + self.hparams.margin * off_path, dim=1) - true_score).mean()

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        # a leaf's subtree is itself, so its node score is softmax(θ)_leaf: the argmax of the leaf scores
        return outputs[:, self.tree.leaf_nodes].argmax(dim=1)
