"""Bottom-up inference (Valmadre 2022; HCCF Eq. 1).

An internal node's probability is the sum of the probabilities beneath it:
``p(v) = Σ_{u ∈ L(v)} softmax(θ)_u`` for leaf logits, and
``p(v) = Σ_{u ∈ subtree(v)} softmax(θ)_u`` for scores over all nodes; for
per-level scores (HCCF) only the leaves' scores are used. The root gets 1.
See :func:`taxonbench.score_kinds.bottom_up_scores`.
"""

from __future__ import annotations

import numpy as np

from taxonbench.registries import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.score_kinds import bottom_up_scores


@INFERENCE.register("bottom_up")
class BottomUp(Inference):
    requires = "bottom_up"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return bottom_up_scores(scores, self.taxonomy, self.sidecar).astype(np.float32)
