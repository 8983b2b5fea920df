"""The masked per-level classifier (Dhall's thesis §3.4, Eq. 3.7–3.8).

Per-level classifiers as :mod:`~taxonbench.methods.per_level` (one logit per
non-root node), but level i's term compares only the children of the true
parent τ_{i−1} (training uses the ground truth even where the model would
predict the parent wrongly)::

    L(x, τ) = Σ_{i ∈ levels} L_i,   L_i = −x_i[τ_i] + log Σ_{j ∈ C} exp x_i[j],  C = children(τ_{i−1})      (3.7, 3.8)

(level 1: C = the children of the root, all of level 1). Each term is the
batch mean, ``class_weight`` weights it by the true node's inverse frequency
(a weighted mean), ``levels`` chooses the terms (Table 4.13; null = all).
Prediction masks the same way, top down from the predicted parent: the
inference ``masked_top_down``. Outputs ``level_softmax_logits``, whose
conditional rule is exactly the softmax over each sibling group.

With every level trained this is the loss of the conditional softmax
(``cond_softmax``, the thesis's hierarchical softmax, Eq. 3.9–3.12): the two
differ in the levels trained and in how predictions are decoded.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from taxonbench.methods._class_weights import ClassWeighted, level_weighted_mean
from taxonbench.methods._levels import resolve_levels
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision
from taxonbench.methods.per_level import LevelHparams
from taxonbench.registries import METHODS


@METHODS.register("masked_per_level")
class MaskedPerLevel(ClassWeighted, Method):
    output_kind = "level_softmax_logits"
    Hparams = LevelHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.levels = resolve_levels(self.hparams.levels, taxonomy, self.where)
        self.tree = TreeOps(taxonomy)
        trained = np.isin(taxonomy.depth, self.levels).astype(np.float32)
        self.register_buffer("trained_node", torch.as_tensor(trained), persistent=False)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        x = loss_precision(outputs)
        x = torch.cat([torch.zeros_like(x[:, :1]), x], dim=1)  # the root's slot (unused)
        log_cond = self.tree.sibling_log_softmax(x)  # (B, n): log softmax over each sibling group
        terms = self.tree.on_path(leaf).to(x.dtype) * self.trained_node.to(x.dtype)  # (B, n): τ_i, i ∈ levels
        if self.node_weight is None:
            return -(terms * log_cond).sum(dim=1).mean()
        return level_weighted_mean(-log_cond, terms, self.node_weight, self.tree.depth)
