"""Parameter-sharing softmax: flat softmax with ancestor-summed scores.

"PS softmax" of Valmadre 2022 §3 (the parameter sharing of Wu et al. 2020,
Deep RTC, used with a plain softmax over the leaves; the sharing goes back to
Salakhutdinov et al. 2011). One linear layer gives a score θ_u for every
non-root node u (n − 1 outputs, entry j is node j + 1). The logit of leaf y
is the sum of the scores on its path, so leaves with common ancestors share
parameters::

    z_y = Σ_{u ∈ path(y) \\ root} θ_u,     loss(θ, y) = −log softmax(z)_y

mean over the batch (``SoftmaxNLLWithAncestorSum`` in the reference
``jvlmdr/hiercls``). ``forward`` returns the L leaf logits z (leaf-index
order), which is what is dumped; node scores are bottom-up sums of the leaf
softmax, as for flat softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.registries import METHODS
from taxonbench.methods._tree_ops import TreeOps
from taxonbench.methods.base import Method, loss_precision


@METHODS.register("ps_softmax")
class PathSumSoftmax(Method):
    output_kind = "leaf_logits"

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.tree = TreeOps(taxonomy)
        self.head = nn.Linear(self.num_features, taxonomy.n_nodes - 1)  # one score per non-root node

    def leaf_logits(self, theta: torch.Tensor) -> torch.Tensor:
        """``(B, n-1)`` node scores -> ``(B, L)`` leaf logits (path sums at the leaves)."""
        theta = loss_precision(theta)
        full = torch.cat([torch.zeros_like(theta[:, :1]), theta], dim=1)  # the root adds 0
        with torch.autocast(theta.device.type, enabled=False):  # the sparse product stays in full precision
            return self.tree.path_sum(full)[:, self.tree.leaf_nodes]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.leaf_logits(self.head(self.backbone(images)))

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        logits = loss_precision(outputs)
        return F.cross_entropy(logits, leaf)

    def predict_leaf(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(dim=1)
