"""Deep RTC: path-sum scores trained with a softmax over a random cut of the tree.

Wu et al. 2020 ("Solving long-tailed recognition with deep realistic taxonomic
classifier", ECCV; stochastic tree sampling, §4) as restated by Valmadre 2022
§3 ("Deep RTC") and implemented in the reference ``jvlmdr/hiercls``
(``RandomCutLossWithAncestorSum``, predict ``share_random_cut``).

One linear layer gives θ_u for every non-root node u (entry j is node j + 1);
the score of node v sums its path, s_v = Σ_{u ∈ path(v) \\ root} θ_u.

Random cut (per sample, redrawn at every call): every internal non-root node
is *collapsed* (its descendants pruned, so it becomes a leaf of the sampled
tree) independently with probability ρ; the root never is. The frontier F is
the set of leaves of the pruned tree: the nodes none of whose strict ancestors
is collapsed and that are collapsed themselves or are leaves of the taxonomy.
F contains exactly one node f(y) of path(y), the label's ancestor at the cut,
and the loss is the cross-entropy over the frontier::

    loss(θ, y) = −s_{f(y)} + log Σ_{v ∈ F} exp s_v

mean over the batch. With ρ = 0 (the default, which reproduces the reference
table) F is the set of leaves and this is the cross-entropy over leaves with
leaf logits s. Node scores: p(v) = σ(s_v / T), T = ``temperature`` (10 in the
reference code), recorded in the sidecar.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.registries import METHODS
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision


@dataclass(frozen=True)
class DeepRTCHparams:
    rho: float = param(0.0, ge=0.0, le=1.0,
                       doc="probability of collapsing each internal non-root node in the random cut; 0 = reference table")
    temperature: float = param(10.0, gt=0.0,
                               doc="T of the node scores σ(s_v / T) (hard-coded 10.0 in the reference predict function)")


@METHODS.register("deep_rtc")
class DeepRTC(Method):
    output_kind = "path_sum_logits"
    Hparams = DeepRTCHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.tree = TreeOps(taxonomy)
        is_leaf = np.zeros(taxonomy.n_nodes, dtype=bool)
        is_leaf[taxonomy.leaf_nodes] = True
        self.register_buffer("is_leaf", torch.as_tensor(is_leaf), persistent=False)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def sidecar(self) -> dict:
        return {**super().sidecar(), "temperature": float(self.hparams.temperature)}

    def node_logits(self, outputs: torch.Tensor) -> torch.Tensor:
        """``(B, n-1)`` θ -> ``(B, n)`` path sums s (root 0), in float32 (float64 kept)."""
        theta = loss_precision(outputs)
        with torch.autocast(theta.device.type, enabled=False):  # the sparse product stays in full precision
            return self.tree.path_sum(torch.cat([torch.zeros_like(theta[:, :1]), theta], dim=1))

    def sample_collapsed(self, batch: int, device: torch.device) -> torch.Tensor:
        """``(B, n)`` bool: which nodes the random cut collapses (internal, non-root, each with prob ρ)."""
        draw = torch.rand(batch, self.taxonomy.n_nodes, device=device) < self.hparams.rho
        draw[:, 0] = False
        return draw & ~self.is_leaf

    def frontier(self, collapsed: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` bool: the leaves of the tree pruned below the ``collapsed`` nodes."""
        c = collapsed.to(torch.float32)
        with torch.autocast(c.device.type, enabled=False):
            strict_ancestor_collapsed = (self.tree.path_sum(c) - c) > 0.5
        return ~strict_ancestor_collapsed & (collapsed | self.is_leaf) & (torch.arange(
            collapsed.shape[1], device=collapsed.device) > 0)

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        s = self.node_logits(outputs)
        if self.hparams.rho == 0:
            return F.cross_entropy(s[:, self.tree.leaf_nodes], leaf)
        front = self.frontier(self.sample_collapsed(len(leaf), s.device))
        target = front & (self.tree.on_path(leaf) > 0)
        log_z = torch.logsumexp(torch.where(front, s, torch.full_like(s, float("-inf"))), dim=1)
        return (log_z - (s * target.to(s.dtype)).sum(dim=1)).mean()

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        # σ(s / T) is increasing in s, so the top leaf is the leaf with the largest path sum
        return self.node_logits(outputs.detach())[:, self.tree.leaf_nodes].argmax(dim=1)
