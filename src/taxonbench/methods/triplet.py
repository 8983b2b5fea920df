"""Triplet loss (Schroff et al. 2015), the retrieval baseline of the HiMulCon paper's Fig. 3.

On the MLP head's projections of two views per image (the contrastive methods' input, so the
batches are alike), labelled by their leaf: every valid triplet ``max(0, d(a,p) − d(a,q) + m)`` of
L2-normalised embeddings, averaged over the non-zero ones
(:func:`taxonbench.losses.metric.triplet_margin_loss`, = pytorch-metric-learning's ``TripletMarginLoss``).
The dumped output is the encoder's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from taxonbench.declare import param
from taxonbench.losses.metric import triplet_margin_loss
from taxonbench.methods._encoders import ContrastiveHparams, TwoViewContrastive
from taxonbench.registries import METHODS


@dataclass(frozen=True)
class TripletHparams(ContrastiveHparams):
    margin: float = param(0.05, ge=0.0, doc="margin m (pytorch-metric-learning's default 0.05)")


@METHODS.register("triplet")
class Triplet(TwoViewContrastive):
    Hparams = TripletHparams

    def contrastive_loss(self, features, labels):
        leaf = labels[:, -1]
        return triplet_margin_loss(features, torch.cat([leaf, leaf]), self.hparams.margin)
