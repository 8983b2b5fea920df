"""Per-level argmax: a set prediction of one node per level (thesis §3.2, per-level classifiers).

For every depth ``d = 1..D`` the predicted node is the argmax of the model's
own node scores ``p`` (:func:`taxonbench.score_kinds.node_scores`) among the
nodes at depth ``d``::

    ŷ_d = argmax_{v : depth(v) = d} p(v)

each level chosen independently (so the chosen nodes need not form one path;
hierarchical consistency measures how often they do). The output is a set
prediction (score kind ``node_set``): 1.0 at each ``ŷ_d``, 0.0 elsewhere, the
root included as 0. Ties go to the lowest node id (``numpy.argmax``).
"""

from __future__ import annotations

import numpy as np

from taxonbench.inference.base import Inference
from taxonbench.registries import INFERENCE
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy


@INFERENCE.register("level_argmax")
class LevelArgmax(Inference):
    """One predicted node per level: the argmax of the native node scores within each depth."""

    requires = "native"
    produces = "node_set"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return level_argmax_sets(node_scores(scores, self.taxonomy, self.sidecar), self.taxonomy)


def level_argmax_sets(p: np.ndarray, taxonomy: Taxonomy) -> np.ndarray:
    """``(B, n)`` node scores -> the ``node_set`` of their per-level argmax (module docstring)."""
    out = np.zeros(p.shape, dtype=np.float32)
    rows = np.arange(len(p))
    for depth in range(1, taxonomy.max_depth + 1):
        nodes = np.flatnonzero(taxonomy.depth == depth)
        out[rows, nodes[p[:, nodes].argmax(axis=1)]] = 1.0
    return out
