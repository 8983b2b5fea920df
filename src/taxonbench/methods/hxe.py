"""Hierarchical cross-entropy, HXE (Bertinetto et al. 2020, "Making Better Mistakes", CVPR, §3.1).

One linear layer gives L leaf logits θ; the flat softmax defines a leaf
distribution and every node gets the mass of its leaves,
P(v) = Σ_{leaves c under v} softmax(θ)_c. With path(y) = (root = C⁽ʰ⁾, …, C⁽⁰⁾ = y),
the loss is the weighted sum of the conditional negative log-likelihoods along
the path (the paper's HXE equation)::

    loss(θ, y) = − Σ_{v ∈ path(y) \\ root} λ(v) · log [P(v) / P(parent(v))]

(an only child contributes log 1 = 0). With λ ≡ 1 (α = 0) the sum telescopes
to −log P(y): flat cross-entropy. The weights, ``weighting``:

* ``"depth"`` (default): λ(v) = exp(−α·(depth(v) − 1)); the top edge weighs 1
  and the weights decay towards the leaves. This is what both reference codes
  do (``fiveai/making-better-mistakes`` ``get_exponential_weighting``:
  exp(−α·depth(v)), divided by a global constant; ``jvlmdr/hiercls``
  ``flat_bertinetto_hxe``: exp(−α·depth(parent(v)))) and what the paper's text
  says α does: larger α prefers coarse ("generic") over fine-grained
  information, the behaviour its experiments report. The two codes differ from
  this only by a constant factor of the loss (fiveai: e^{−α} / Σ_u e^{−α·depth(u)}),
  which is not reproduced.
* ``"height"``: λ(v) = exp(−α·h(v)), h(v) = the height of v (longest path down
  to a leaf; leaves 0): the literal reading of the paper's λ(C) = exp(−α·h(C)),
  which weighs the leaf edge 1 and decays towards the root (the opposite
  preference).

Default α = 0.1, the smallest value of the paper's sweeps (0.1–0.6 on
tieredImageNet, 0.1–0.9 on iNaturalist19 in the reference experiment scripts;
the reference CLI default α = 0 is plain cross-entropy). Mean over the batch,
float32 (float64 kept). Node scores (kind ``leaf_logits``): bottom-up sums of
the leaf softmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.registries import METHODS
from taxonbench.methods.base import Method, loss_precision
from taxonbench.taxonomy import Taxonomy

_WEIGHTINGS = ("depth", "height")


def node_heights(taxonomy: Taxonomy) -> np.ndarray:
    """h(v): the length of the longest downward path from v to a leaf (leaves 0), int64."""
    depth = taxonomy.depth
    table = taxonomy.ancestor_table[taxonomy.leaf_nodes]  # (L, D+1): each leaf's path by depth
    rows, cols = np.nonzero(table >= 0)
    height = np.zeros(taxonomy.n_nodes, dtype=np.int64)
    np.maximum.at(height, table[rows, cols], depth[taxonomy.leaf_nodes][rows] - cols)
    return height


@dataclass(frozen=True)
class HXEHparams:
    alpha: float = param(0.1, ge=0.0,
                         doc="decay of the per-edge weights exp(−α·…) (paper sweeps 0.1–0.6; 0 = flat cross-entropy)")
    weighting: str = param("depth", choices=_WEIGHTINGS,
                           doc='"depth": λ decays from the root down (reference codes); "height": λ = exp(−α·height)')


@METHODS.register("hxe")
class HXE(Method):
    output_kind = "leaf_logits"
    Hparams = HXEHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        hp = self.hparams
        exponent = taxonomy.depth - 1.0 if hp.weighting == "depth" else node_heights(taxonomy).astype(np.float64)
        weight = np.exp(-hp.alpha * exponent)
        weight[0] = 0.0  # the root has no conditional
        self.register_buffer("weight", torch.as_tensor(weight, dtype=torch.float32), persistent=False)
        # each leaf's path by depth: leaf_paths[i, d] = the ancestor of leaf i at depth d, -1 below the leaf
        self.register_buffer("leaf_paths", torch.as_tensor(taxonomy.ancestor_table[taxonomy.leaf_nodes],
                                                           dtype=torch.long), persistent=False)
        self.head = nn.Linear(self.num_features, self.output_dim())

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        theta = loss_precision(outputs)
        weight = self.weight.to(theta.dtype)
        log_p = F.log_softmax(theta, dim=1)  # (B, L)
        path = self.leaf_paths[leaf]  # (B, D+1)
        neg_fill = torch.finfo(theta.dtype).min / 4  # finite "−inf": gradients stay finite, never NaN
        log_mass_parent = torch.logsumexp(log_p, dim=1)  # log P(root) (= 0 up to rounding)
        total = theta.new_zeros(theta.shape[0])
        for d in range(1, path.shape[1]):
            v = path[:, d]  # the ancestor of y at depth d, -1 where y is shallower
            valid = v >= 0
            v = v.clamp(min=0)
            under_v = self.leaf_paths[:, d].unsqueeze(0) == v.unsqueeze(1)  # (B, L): leaves under v
            log_mass = torch.logsumexp(log_p.masked_fill(~under_v, neg_fill), dim=1)  # log P(v)
            cond_nll = torch.where(valid, log_mass_parent - log_mass, torch.zeros_like(log_mass))
            total = total + weight[v] * cond_nll
            log_mass_parent = log_mass
        return total.mean()

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)
