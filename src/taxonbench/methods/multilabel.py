"""The hierarchy-agnostic multi-label classifier (Dhall's thesis §3.1, Eq. 3.1).

One linear layer gives a logit x_j for each of the N_total = Σ_i N_i labels of
all levels (every non-root node; entry j is node j + 1), each a one-vs-rest
binary problem, positive iff the label lies on the true leaf's path::

    L(x, y) = −(1/N_total) Σ_j [ y_j log σ(x_j) + (1 − y_j) log(1 − σ(x_j)) ]      (3.1)

averaged over the batch (``binary_cross_entropy_with_logits``, mean reduction).
With ``class_weight: inverse_frequency`` term j is scaled by w_j
(:mod:`taxonbench.methods._class_weights`). The model knows nothing of the
hierarchy; its labels are decided by thresholds tuned on val: one per label
(PCDB, §3.1.1) or one for all (OFADB, §3.1.2), the inference ``pcdb`` /
``ofadb``. Node scores: p(v) = σ(x_v), the root 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.methods._class_weights import ClassWeighted, ClassWeightHparams
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision
from taxonbench.registries import METHODS


@dataclass(frozen=True)
class MultilabelHparams(ClassWeightHparams):
    pass


@METHODS.register("multilabel")
class Multilabel(ClassWeighted, Method):
    output_kind = "node_sigmoid_logits"
    Hparams = MultilabelHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.tree = TreeOps(taxonomy)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        x = loss_precision(outputs)
        targets = self.tree.on_path(leaf)[:, 1:].to(x.dtype)  # the root is not a label
        weight = None if self.node_weight is None else self.node_weight[1:].to(x.dtype)
        return F.binary_cross_entropy_with_logits(x, targets, weight=weight)
