"""Marginalization, bottom up (Dhall's thesis §3.3, Eq. 3.4–3.6).

One linear layer gives a logit per leaf; the leaves' softmax is the
distribution of the last level and every other level's follows by summing
children (Eq. 3.5), so each level is a proper distribution::

    p_L[j] = exp x_j / Σ_k exp x_k                                   (3.6)
    p_i[v] = Σ_{c ∈ children(v)} p_{i+1}[c]  (= Σ of the leaves under v)      (3.5)
    L(x, τ) = −Σ_{i ∈ levels} log p_i[τ_i]                           (3.4)

computed as ``log p_i[τ_i] = logsumexp_{leaves j under τ_i} log_softmax(x)_j`` (exact,
no underflow). Each term is the batch mean; ``class_weight: inverse_frequency``
makes it the weighted mean ``Σ_b w_{τ_i,b} (−log p_i[τ_i,b]) / Σ_b w_{τ_i,b}`` (as
``cross_entropy``'s ``weight``). ``levels`` chooses the terms (Table 4.10; null
= all). Outputs ``leaf_logits``: node scores are the marginals (the thesis's
predictions: the argmax of each level, ``level_argmax``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.methods._class_weights import ClassWeighted
from taxonbench.methods._levels import resolve_levels
from taxonbench.methods.base import Method, loss_precision
from taxonbench.methods.per_level import LevelHparams
from taxonbench.registries import METHODS


@METHODS.register("marginalization")
class Marginalization(ClassWeighted, Method):
    output_kind = "leaf_logits"
    Hparams = LevelHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.levels = resolve_levels(self.hparams.levels, taxonomy, self.where)
        #: each leaf's ancestor at every depth (-1 below a shallower leaf)
        self.register_buffer("leaf_ancestors", torch.as_tensor(
            taxonomy.ancestor_table[taxonomy.leaf_nodes].astype(np.int64)), persistent=False)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        log_q = F.log_softmax(loss_precision(outputs), dim=1)  # (B, L)
        total = log_q.new_zeros(())
        for d in self.levels:
            groups = self.leaf_ancestors[:, d]  # (L,) every leaf's depth-d ancestor
            true = groups[leaf]  # (B,)
            rows = true >= 0  # leaves above depth d have no label there
            if not bool(rows.any()):
                continue
            under = groups.unsqueeze(0) == true[rows].unsqueeze(1)  # (b, L): leaves under τ_d
            log_p = torch.logsumexp(log_q[rows].masked_fill(~under, float("-inf")), dim=1)
            if self.node_weight is None:
                total = total - log_p.mean()
            else:
                w = self.node_weight[true[rows]].to(log_p.dtype)
                total = total - (w * log_p).sum() / w.sum()
        return total
