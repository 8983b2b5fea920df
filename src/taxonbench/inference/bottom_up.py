"""Bottom-up inference (Valmadre 2022; HCCF Eq. 1).

An internal node's probability is the sum of the probabilities beneath it:
``p(v) = Σ_{u ∈ L(v)} softmax(θ)_u`` for leaf logits, and
``p(v) = Σ_{u ∈ subtree(v)} softmax(θ)_u`` for scores over all nodes. The
root gets 1. See :mod:`taxonbench.score_kinds`.
"""

from __future__ import annotations

import numpy as np

from taxonbench.inference import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.score_kinds import node_scores


@INFERENCE.register("bottom_up")
class BottomUp(Inference):
    name = "bottom_up"
    kinds = frozenset({"leaf_logits", "subtree_softmax_logits"})

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return node_scores(scores, self.taxonomy, self.sidecar).astype(np.float32)
