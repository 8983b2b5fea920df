"""Top-down inference (Redmon & Farhadi 2017, YOLO9000 §"Hierarchical classification").

A node's probability is the product of the conditional probabilities along
its path from the root (the root has probability 1):

    p(v) = Π_{u ∈ path(v) \\ root} p(u | parent(u)),

computed as ``exp`` of the path sum of ``log p(u | parent(u))``. The
conditionals come from :func:`taxonbench.score_kinds.conditional_probs`:

* ``sibling_softmax_logits`` (cond_softmax): a softmax over each sibling group;
* ``sibling_sigmoid_logits`` (cond_sigmoid): ``σ(θ_u)``;
* ``level_softmax_logits`` (HCCF, per-level heads): a softmax over each
  sibling group of the level's logits;
* ``leaf_logits`` and ``subtree_softmax_logits`` (models without conditional
  outputs): ratios of bottom-up node scores, ``p(u) / p(parent(u))``. The
  product then telescopes to ``p(v)`` itself, so for these kinds top-down
  **equals bottom-up** (to rounding; the tests check it).

For the two conditional kinds the product is also their native rule, so
top-down differs from ``native``/``bottom_up`` only for kinds whose
conditionals are not already their node scores (e.g. per-level heads, whose
conditionals renormalise a level's probabilities within each sibling group).
Accepted kinds: every kind with a ``conditional`` rule (:data:`taxonbench.score_kinds.CONDITIONAL_KINDS`).
"""

from __future__ import annotations

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.score_kinds import KINDS, conditional_probs, sum_over_paths


@INFERENCE.register("top_down")
class TopDown(Inference):
    """p(v) = Π of p(u | parent u) along path(v) (YOLO9000); no options."""

    requires = "conditional"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        kind = KINDS.get(self.sidecar.get("kind", "?"))
        expected = kind.dim(self.taxonomy)
        if scores.ndim != 2 or scores.shape[1] != expected:
            raise TaxonbenchError(
                f"inference {self.name!r}: scores of kind {kind.name!r} must have {expected} columns "
                f"for this taxonomy; got shape {scores.shape}"
            )
        cond = conditional_probs(scores, self.taxonomy, self.sidecar)
        with np.errstate(divide="ignore"):
            log_cond = np.log(cond)  # a zero conditional gives -inf, hence p = 0 below it
        return np.exp(sum_over_paths(log_cond, self.taxonomy)).astype(np.float32)
