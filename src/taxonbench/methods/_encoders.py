"""What the representation-learning methods of the HiMulCon paper share (§3, §4.2).

They are trained as encoders: the dumped output (``forward``, score kind ``embeddings``) is the
backbone's feature vector (ResNet-50: the 2048-d pooled output), *before* any projection or
classification head, which the downstream tasks (linear probe, retrieval, clustering) read frozen.

* :class:`ProjectionHead` — the MLP projection of Khosla et al. (SupCon), used by the contrastive
  losses: ``Linear(F, H) → ReLU → Linear(H, P)`` (reference: 2048 → 2048 → 128), followed by L2
  normalisation.
* :func:`level_label_table` — per leaf, its labels coarse → fine (the ancestor at depths 1 … D),
  the ``(N, L)`` label matrix of :mod:`taxonbench.losses.contrastive`; a leaf shallower than ``D``
  repeats its own id below its depth (its deeper "levels" are the leaf itself).
* :class:`TwoViewContrastive` — the base of the two-view contrastive methods: ``views = 2``; the
  training outputs are the normalised projections of both views, rows ``0 … B-1`` the first views and
  ``B … 2B-1`` the second (the layout the losses expect); subclasses define :meth:`contrastive_loss`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.losses.contrastive import ContrastiveInputError
from taxonbench.methods.base import Method, loss_precision
from taxonbench.taxonomy import Taxonomy


def level_label_table(taxonomy: Taxonomy) -> torch.Tensor:
    """``(n_leaves, max_depth)`` int64: column ``d - 1`` the leaf's ancestor at depth ``d`` (padding: the leaf)."""
    table = taxonomy.ancestor_table[taxonomy.leaf_nodes][:, 1:].copy()
    own = taxonomy.leaf_nodes[:, None].repeat(table.shape[1], axis=1)
    return torch.as_tensor(np.where(table >= 0, table, own), dtype=torch.int64)


class ProjectionHead(nn.Sequential):
    """``Linear(F, H) → ReLU → Linear(H, P)`` (SupCon's MLP head)."""

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__(nn.Linear(in_features, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out_features))


@dataclass(frozen=True)
class ContrastiveHparams:
    temperature: float = param(0.1, gt=0.0, doc="τ of the softmax over similarities (HiMulCon §4.2: 0.1)")
    projection_dim: int = param(128, ge=1, doc="output width P of the MLP projection head")
    hidden_dim: int | None = param(None, ge=1, doc="hidden width H of the head (null: the encoder's width F)")


class EncoderMethod(Method):
    """A method whose dumped output is the encoder's feature vector (kind ``embeddings``)."""

    output_kind = "embeddings"

    def output_dim(self) -> int:
        return self.num_features

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)


class TwoViewContrastive(EncoderMethod):
    """Two augmented views, an MLP projection head, a contrastive loss on the normalised projections."""

    views = 2
    Hparams = ContrastiveHparams

    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        hidden = self.hparams.hidden_dim or self.num_features
        self.head = ProjectionHead(self.num_features, hidden, self.hparams.projection_dim)
        self.register_buffer("level_labels", level_label_table(taxonomy), persistent=False)

    def training_forward(self, images: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        """``(B, 2, C, H, W)`` -> ``(2B, P)``: first views, then second views, L2-normalised."""
        if images.ndim != 5 or images.shape[1] != 2:
            raise TaxonbenchError(f"{self.where}: {self.name} reads two augmented views per image (a B x 2 x C x H x W "
                                  f"batch); got shape {tuple(images.shape)} (the loader gives two views to a method "
                                  "declaring views = 2)")
        both = torch.cat([images[:, 0], images[:, 1]])
        return F.normalize(loss_precision(self.head(self.backbone(both))), dim=1)

    def loss(self, outputs: torch.Tensor, leaf: torch.Tensor) -> torch.Tensor:
        try:
            return self.contrastive_loss(loss_precision(outputs), self.level_labels[leaf])
        except ContrastiveInputError as exc:
            raise TaxonbenchError(f"{self.where}: a training batch of {len(leaf)} images: {exc} "
                                  "(train.batch_size, train.sampler)") from None

    def contrastive_loss(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``features`` ``(2N, P)`` normalised, ``labels`` ``(N, D)`` coarse -> fine."""
        raise NotImplementedError
