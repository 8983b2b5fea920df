"""Cross-entropy encoder: the supervised baseline of the HiMulCon paper (Tables 1-3, "Cross Entropy").

Trained as flat softmax (a linear classifier over the leaves on the encoder's features, CE loss),
but evaluated as the contrastive methods are: its dumped output is the encoder's features (kind
``embeddings``), which the linear probe, retrieval and clustering read frozen ("All approaches
evaluated here have exactly the same classifier training mechanism", §4.3).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from taxonbench.methods._encoders import EncoderMethod
from taxonbench.methods.base import loss_precision
from taxonbench.registries import METHODS


@METHODS.register("ce")
class CrossEntropyEncoder(EncoderMethod):
    def __init__(self, backbone, taxonomy, hparams=None, experiment=None) -> None:
        super().__init__(backbone, taxonomy, hparams, experiment)
        self.head = nn.Linear(self.num_features, taxonomy.n_leaves)

    def training_forward(self, images, leaf):
        return self.head(self.backbone(images))

    def loss(self, outputs, leaf):
        return F.cross_entropy(loss_precision(outputs), leaf)
