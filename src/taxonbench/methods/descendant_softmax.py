"""Soft-max-descendant (Valmadre 2022, "Hierarchical classification at multiple operating points", NeurIPS).

One linear layer gives a score θ_v for every node v, root included (n
outputs). A node's probability is the softmax mass of its subtree,
p(v) = exp(E(v) − E(root)) with E(v) = log Σ_{u ∈ subtree(v)} exp θ_u
(kind ``subtree_softmax_logits``). The loss is a sum, over the ancestors a of
the true leaf y (path(y), root … y), of a softmax cross-entropy of θ_a against
a set of negatives N(a), each weighted by 1/n(a) (n(a) = leaves under a)::

    loss(θ, y) = Σ_{a ∈ path(y)} (1/n(a)) · [−θ_a + log(e^{θ_a} + Σ_{u ∈ N(a)} e^{θ_u})]

``negatives="exclusive"`` (default; docs/methods.md §A): N(a) = the nodes that are
neither ancestors nor descendants of a, N(a) = V \\ (anc(a) ∪ subtree(a)).
The root has no such node, so its term is 0 whether or not it is counted.
This is ``hier_torch.MaxCutSoftmaxComplementLoss`` /
``DescendantSoftmaxCousinLoss`` in the reference ``jvlmdr/hiercls``
(predict ``descendant_softmax_complement``, plotted as "… + cousin loss").

``negatives="all"``: N(a) = V \\ {a}, i.e. each term is −log softmax(θ)_a
over all n nodes, root term included; the reference's predict
``descendant_softmax`` (``MaxCutSoftmaxLoss(max_reduction='logsumexp')`` /
``DescendantSoftmaxLoss``, plotted as "Soft-max-descendant").

Both reference variants use node_weight = 1/n(a) (the ``-bal`` runs);
``balanced=False`` weighs every ancestor 1. Mean over the batch, float32
(float64 kept). Each per-ancestor log-sum-exp is taken directly over a masked
copy of θ, so no subtraction of exponentials is involved and large logits
stay finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from taxonbench.declare import param
from taxonbench.registries import METHODS
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision

_NEGATIVES = ("exclusive", "all")


@dataclass(frozen=True)
class DescendantSoftmaxHparams:
    negatives: str = param("exclusive", choices=_NEGATIVES,
                           doc='N(a): "exclusive" = neither ancestor nor descendant of a; "all" = all other nodes')
    balanced: bool = param(True, doc="weight ancestor a's term by 1/n(a) (reference node_weight, \"-bal\" runs); "
                                     "False: weight 1")


@METHODS.register("descendant_softmax")
class DescendantSoftmax(Method):
    output_kind = "subtree_softmax_logits"
    Hparams = DescendantSoftmaxHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        hp = self.hparams
        self.tree = TreeOps(taxonomy)
        # ancestor_table[v, d]: the ancestor of v at depth d (v itself at its depth), -1 below v
        self.register_buffer("ancestor_table", torch.as_tensor(taxonomy.ancestor_table, dtype=torch.long),
                             persistent=False)
        weight = 1.0 / taxonomy.n_leaves_under if hp.balanced else np.ones(taxonomy.n_nodes)
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32), persistent=False)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        theta = loss_precision(outputs)
        weight = self.weight.to(theta.dtype)
        on_path = self.tree.on_path(leaf).bool()  # (B, n): u ∈ path(y)
        if self.hparams.negatives == "all":
            w_path = on_path.to(theta.dtype) * weight  # root included
            nll = torch.logsumexp(theta, dim=1, keepdim=True) - theta  # −log softmax(θ)_u
            return (w_path * nll).sum(dim=1).mean()

        path = self.ancestor_table[self.tree.leaf_nodes[leaf]]  # (B, D+1): path(y) by depth, -1 past y
        depth = self.tree.depth.unsqueeze(0)  # (1, n)
        nodes = torch.arange(theta.shape[1], device=theta.device).unsqueeze(0)
        neg_fill = torch.finfo(theta.dtype).min / 4  # finite "−inf": gradients stay finite, never NaN
        total = theta.new_zeros(theta.shape[0])
        for d in range(1, path.shape[1]):  # the root's term (d = 0) is identically 0
            a = path[:, d : d + 1]  # (B, 1) the ancestor of y at depth d, -1 where y is shallower
            valid = a.squeeze(1) >= 0
            a = a.clamp(min=0)
            in_subtree = self.ancestor_table[:, d].unsqueeze(0) == a  # (B, n): u ∈ subtree(a), a included
            strict_anc = on_path & (depth < d)  # (B, n): u ∈ anc(a) \ {a}
            competitors = ~(in_subtree | strict_anc) | (nodes == a)  # N(a) ∪ {a}
            log_z = torch.logsumexp(theta.masked_fill(~competitors, neg_fill), dim=1)
            term = log_z - theta.gather(1, a).squeeze(1)
            total = total + torch.where(valid, term, torch.zeros_like(term)) * weight[a.squeeze(1)]
        return total.mean()

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        # a leaf's subtree is itself, so its node score is softmax(θ)_leaf: the argmax of the leaf scores
        return outputs[:, self.tree.leaf_nodes].argmax(dim=1)
