"""Bottom-up inference (Valmadre 2022; HCCF Eq. 1).

Leaf probabilities are the softmax of the leaf logits; an internal node's
probability is the sum over the leaves beneath it:
``p(v) = Σ_{u ∈ L(v)} softmax(θ)_u``, i.e. ``P_nodes = P_leaves · M`` with the
sparse leaf-ancestor matrix ``M`` (L × n). The root gets 1.
"""

from __future__ import annotations

import numpy as np
from scipy.special import softmax

from taxonbench.inference import INFERENCE
from taxonbench.inference.base import Inference


@INFERENCE.register("bottom_up")
class BottomUp(Inference):
    name = "bottom_up"
    kinds = frozenset({"leaf_logits"})

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        leaf_prob = softmax(scores.astype(np.float64), axis=1)
        node_prob = (self.taxonomy.leaf_ancestor_matrix.T @ leaf_prob.T).T
        return np.asarray(node_prob, dtype=np.float32)
