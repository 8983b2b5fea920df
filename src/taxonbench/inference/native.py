"""Native inference: each method's own node-score rule (docs/methods.md §A, "node scores").

This is how the HCCF paper's Tables 1–2 evaluate the baseline losses (after
Valmadre 2022): independent sigmoids for multilabel focal, products of
conditionals for the conditional models, σ(s_v/T) for Deep RTC, subtree
softmax sums for softmargin and descendant softmax, bottom-up sums for leaf
logits. The rules live in :mod:`taxonbench.score_kinds`.
"""

from __future__ import annotations

import numpy as np

from taxonbench.registries import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.score_kinds import node_scores


@INFERENCE.register("native")
class Native(Inference):
    requires = "native"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return node_scores(scores, self.taxonomy, self.sidecar).astype(np.float32)
