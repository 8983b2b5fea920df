"""SupCon (Khosla et al. 2020; HiMulCon paper Eq. 2): supervised contrastive learning on the leaf label.

Positives of a view are every other view whose image has its leaf (the finest label), the
denominator over all other views, τ = 0.1; pytorch-metric-learning's ``SupConLoss`` on the same
features (a test checks it). The dumped output is the encoder's features.
"""

from __future__ import annotations

from taxonbench.losses.contrastive import supcon_loss
from taxonbench.methods._encoders import TwoViewContrastive
from taxonbench.registries import METHODS


@METHODS.register("supcon")
class SupCon(TwoViewContrastive):
    def contrastive_loss(self, features, labels):
        return supcon_loss(features, labels[:, -1], self.hparams.temperature)
