"""SimCLR (Chen et al. 2020; HiMulCon paper Eq. 1): the self-supervised baseline of Tables 1-3.

The only positive of a view is the other view of its image (NT-Xent, τ = 0.1), on the MLP head's
normalised projections; no label is read. The dumped output is the encoder's features
(:mod:`taxonbench.methods._encoders`).
"""

from __future__ import annotations

from taxonbench.losses.contrastive import simclr_loss
from taxonbench.methods._encoders import TwoViewContrastive
from taxonbench.registries import METHODS


@METHODS.register("simclr")
class SimCLR(TwoViewContrastive):
    def contrastive_loss(self, features, labels):
        return simclr_loss(features, self.hparams.temperature)
