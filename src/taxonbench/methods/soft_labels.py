"""Soft labels (Bertinetto et al. 2020, "Making Better Mistakes", CVPR, §3.2).

One linear layer gives L leaf logits θ. The one-hot target of leaf y is
replaced by a distribution over leaves that decays with the height of the
lowest common ancestor (the paper's soft-label equation)::

    q(c | y) = exp(−β · d(c, y)) / Σ_{c'} exp(−β · d(c', y)),   d(c, y) = h(LCA(c, y)) / h_max

and the loss is the cross-entropy to it, loss(θ, y) = −Σ_c q(c|y) · log softmax(θ)_c.
h(v) is the height of node v (longest path down to a leaf; a leaf 0, so
d(y, y) = 0); h_max = h(root), the tree height. With fixed ranks (every leaf at
the same depth) h(LCA) = depth(leaf) − depth(LCA), the ILSVRC "height of the
LCA" distance of the reference. β → ∞ recovers flat cross-entropy; β = 0 a
uniform target.

Departures from the reference ``fiveai/making-better-mistakes``
(``make_all_soft_labels`` + ``nn.KLDivLoss``), none of which changes a
gradient direction: the code divides by the largest pairwise distance (equal to
h_max unless the root has a single child), minimises KL(q‖p) = this loss minus
the target entropy (a constant), and its KLDivLoss ``mean`` also divides by L.

The targets are built per batch from the leaves' ancestor table,
O(B · L · depth), rather than stored as an L × L matrix (400 MB at iNat21's
10k leaves). Default β = 10, from the middle of the paper's sweep
(4, 5, 10, 15, 20, 30 in the reference experiment scripts; the reference CLI
default β = 0 is a uniform target). Mean over the batch, float32 (float64
kept). Node scores (kind ``leaf_logits``): bottom-up sums of the leaf softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.registries import METHODS
from taxonbench.methods.base import Method, loss_precision
from taxonbench.methods.hxe import node_heights


@dataclass(frozen=True)
class SoftLabelsHparams:
    beta: float = param(10.0, ge=0.0,
                        doc="hardness β of q(c|y) ∝ exp(−β·h(LCA)/h_max) (paper sweep 4–30; larger: nearer one-hot)")


@METHODS.register("soft_labels")
class SoftLabels(Method):
    output_kind = "leaf_logits"
    Hparams = SoftLabelsHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        height = node_heights(taxonomy)
        distance = height / max(int(height[0]), 1)  # d = h / h_max, h_max = h(root)
        self.register_buffer("distance", torch.as_tensor(distance, dtype=torch.float32), persistent=False)
        self.register_buffer("leaf_paths", torch.as_tensor(taxonomy.ancestor_table[taxonomy.leaf_nodes],
                                                           dtype=torch.long), persistent=False)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def soft_targets(self, leaf: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """``(B, L)`` rows q(· | y) for a batch of leaf indices."""
        path_y = self.leaf_paths[leaf]  # (B, D+1)
        # the paths of y and c agree on a prefix (root … LCA): its length - 1 is the LCA's depth
        agree = (path_y.unsqueeze(1) == self.leaf_paths.unsqueeze(0)) & (path_y.unsqueeze(1) >= 0)  # (B, L, D+1)
        lca = path_y.gather(1, agree.sum(dim=2) - 1)  # (B, L) LCA(c, y) node ids
        return F.softmax(-self.hparams.beta * self.distance.to(dtype)[lca], dim=1)

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        theta = loss_precision(outputs)
        q = self.soft_targets(leaf, theta.dtype)
        return -(q * F.log_softmax(theta, dim=1)).sum(dim=1).mean()

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)
