"""Masked greedy top-down decoding (Dhall's thesis §3.4): a set prediction of one path.

Level 1's label is the argmax of its scores; every next level's is the argmax
among the children of the label just predicted, all other nodes masked::

    ŷ_1 = argmax_{v ∈ children(root)} p(v | root),   ŷ_i = argmax_{v ∈ children(ŷ_{i−1})} p(v | ŷ_{i−1})

down to a leaf. The conditionals are the scores' ``conditional`` rule
(:func:`taxonbench.score_kinds.conditional_probs`); for per-level heads
(``level_softmax_logits``) that is the softmax over each sibling group, whose
argmax is the argmax of the level's logits among the siblings — exactly the
masking of the thesis. Output: ``node_set`` with the nodes of the decoded path
(the root excluded). Ties go to the lowest node id.
"""

from __future__ import annotations

import numpy as np

from taxonbench.inference.base import Inference
from taxonbench.registries import INFERENCE
from taxonbench.score_kinds import conditional_probs


@INFERENCE.register("masked_top_down")
class MaskedTopDown(Inference):
    requires = "conditional"
    produces = "node_set"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        tax = self.taxonomy
        cond = conditional_probs(scores, tax, self.sidecar)
        width = max(1, int(tax.n_children.max()))
        children = np.full((tax.n_nodes, width), -1, dtype=np.int64)  # padded child lists, increasing id
        for v, kids in enumerate(tax.children):
            children[v, :len(kids)] = kids
        rows = np.arange(len(cond))
        current = np.zeros(len(cond), dtype=np.int64)
        out = np.zeros(cond.shape, dtype=np.float32)
        for _ in range(tax.max_depth):
            kids = children[current]  # (B, width)
            alive = kids[:, 0] >= 0
            if not alive.any():
                break
            values = np.where(kids >= 0, cond[rows[:, None], np.maximum(kids, 0)], -np.inf)
            chosen = kids[rows, values.argmax(axis=1)]
            current = np.where(alive, chosen, current)
            out[rows[alive], current[alive]] = 1.0
        return out
