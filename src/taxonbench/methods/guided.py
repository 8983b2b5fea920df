"""Guided: metric-guided prototype learning (Garnot & Landrieu, BMVC 2021; the HiMulCon paper's "Guided" [10]).

A projection ``z = g(f(x))`` of the encoder's features and one learnable prototype ``π_k`` per leaf;
the class scores are negative Euclidean distances, and the prototypes are pulled towards the tree's
geometry by the scale-free distortion (:func:`taxonbench.losses.metric.tree_distortion`)::

    L = CE(softmax_k(-‖z - π_k‖), y) + λ · disto(π, D),   D(k, l) = edges between leaves k and l

(through their lowest common ancestor). The dumped output is the encoder's features ``f(x)``
(kind ``embeddings``), evaluated frozen as every method of the HiMulCon protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.losses.metric import tree_distortion
from taxonbench.methods._encoders import EncoderMethod, ProjectionHead
from taxonbench.methods.base import loss_precision
from taxonbench.registries import METHODS
from taxonbench.taxonomy import Taxonomy


@dataclass(frozen=True)
class GuidedHparams:
    dim: int = param(128, ge=1, doc="width of the prototype space")
    distortion_weight: float = param(1.0, ge=0.0, doc="λ, the weight of the distortion term")


def leaf_tree_distance(taxonomy: Taxonomy) -> np.ndarray:
    """``(L, L)``: the number of edges between two leaves, ``depth(a) + depth(b) - 2 depth(lca(a, b))``."""
    leaves = taxonomy.leaf_nodes
    a, b = np.meshgrid(leaves, leaves, indexing="ij")
    lca = taxonomy.lca(a.ravel(), b.ravel()).reshape(a.shape)
    depth = taxonomy.depth
    return (depth[a] + depth[b] - 2 * depth[lca]).astype(np.float64)


@METHODS.register("guided")
class Guided(EncoderMethod):
    Hparams = GuidedHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        dim = self.hparams.dim
        self.head = ProjectionHead(self.num_features, self.num_features, dim)
        self.prototypes = nn.Parameter(torch.randn(taxonomy.n_leaves, dim) / dim ** 0.5)
        self.register_buffer("tree_distance", torch.as_tensor(leaf_tree_distance(taxonomy), dtype=torch.float32),
                             persistent=False)

    def training_forward(self, images, leaf):
        """``-‖z - π_k‖`` for every leaf ``k``: ``(B, L)``."""
        z = loss_precision(self.head(self.backbone(images)))
        return -torch.cdist(z, self.prototypes.float())

    def loss(self, outputs, leaf):
        ce = F.cross_entropy(loss_precision(outputs), leaf)
        return ce + self.hparams.distortion_weight * tree_distortion(self.prototypes.float(), self.tree_distance)
