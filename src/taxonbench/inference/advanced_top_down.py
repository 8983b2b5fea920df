"""Advanced top-down inference: hierarchical ensembles, HiE (Jain et al. 2023).

"Test-Time Amendment with a Coarse Classifier for Fine-Grained Classification":
the fine classifier's leaf probabilities are multiplied by a coarse
classifier's probability of each leaf's parent and renormalised over the
leaves; node scores are then bottom-up sums of the amended leaf probabilities
(HCCF Table 5, "Advanced-top-down"):

    q̃(ℓ) = q(ℓ) · c(parent ℓ) / Σ_{ℓ'} q(ℓ') · c(parent ℓ'),
    p(v) = Σ_{leaves ℓ under v} q̃(ℓ).

``q`` is the model's own leaf scores (:func:`taxonbench.score_kinds.node_scores`
at the leaf nodes: the leaf softmax for ``leaf_logits``, the path product for
the conditional kinds, the leaf's own softmax mass for ``subtree_softmax_logits``).
The coarse factor ``c`` is chosen by the option ``coarse``:

``marginalize``
    the reference code's ``post_hoc_marginalize`` for a model with no coarse
    head: the **mean** fine probability in the parent,
    ``c(u) = (1 / n(u)) Σ_{leaves ℓ under u} q(ℓ)``, ``n(u)`` = the number of
    leaves under ``u``. (In HiE the fine classes of a coarse class are all
    leaves, children of it; on a tree whose leaves sit at different depths
    this takes the mean over the leaves under ``u``.)
``native``
    the model's own node score of the parent, ``c(u) = p_model(u)``
    (reference ``post_hoc_adjustment`` with the coarse head's softmax): for
    models that score internal nodes themselves (conditional and subtree
    kinds, per-level heads). For ``leaf_logits`` this is the bottom-up *sum*
    ``Σ_{ℓ under u} q(ℓ)``, i.e. ``n(u)`` times the marginalised factor.
``auto`` (default)
    ``marginalize`` for ``leaf_logits`` (no internal-node outputs), ``native``
    for every other kind.

A leaf directly under the root gets the root's factor (``1/L`` marginalised,
the root's own score natively). The product is formed in log space; a sample
whose amended scores are all zero (only after underflow) gets uniform leaf
probabilities. Accepted kinds: :data:`taxonbench.score_kinds.CONDITIONAL_KINDS`,
the hierarchically consistent kinds with leaf scores (leaf, subtree softmax,
sibling softmax, sibling sigmoid); the inconsistent per-node sigmoid and
Deep RTC scores are not a distribution over leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from taxonbench.registries import INFERENCE
from taxonbench.inference.base import Inference
from taxonbench.declare import param
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy

COARSE_CHOICES = ("auto", "marginalize", "native")


@dataclass(frozen=True)
class AdvancedTopDownOptions:
    coarse: str = param("auto", choices=COARSE_CHOICES, doc="where the parent's coarse factor comes from")


@INFERENCE.register("advanced_top_down")
class AdvancedTopDown(Inference):
    """HiE (Jain et al. 2023): leaf probabilities × the parent's coarse factor, renormalised, summed up."""

    requires = "conditional"
    Options = AdvancedTopDownOptions

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        super().__init__(taxonomy, options)
        self.opts = self.parse_options(self.options)
        tax = taxonomy
        # parent of every leaf; a one-node taxonomy's only leaf is the root, its own "parent"
        self._leaf_parent = np.maximum(tax.parent[tax.leaf_nodes].astype(np.int64), 0)

    def coarse_mode(self) -> str:
        """The coarse factor used for the current scores: ``marginalize`` or ``native``."""
        if self.opts.coarse != "auto":
            return self.opts.coarse
        return "marginalize" if self.sidecar.get("kind") == "leaf_logits" else "native"

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        tax = self.taxonomy
        p = node_scores(scores, tax, self.sidecar)  # (B, n), float64
        fine = p[:, tax.leaf_nodes]  # q(ℓ)
        if self.coarse_mode() == "marginalize":
            sums = np.asarray((tax.leaf_ancestor_matrix.T @ fine.T).T)  # Σ_{ℓ under u} q(ℓ), (B, n)
            coarse = sums[:, self._leaf_parent] / tax.n_leaves_under[self._leaf_parent]
        else:
            coarse = p[:, self._leaf_parent]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_amended = np.log(fine) + np.log(coarse)
        top = log_amended.max(axis=1, keepdims=True)
        empty = top[:, 0] == -np.inf
        top[empty] = 0.0
        amended = np.exp(log_amended - top)
        amended[empty] = 1.0  # no mass anywhere: uniform
        amended /= amended.sum(axis=1, keepdims=True)
        return np.asarray((tax.leaf_ancestor_matrix.T @ amended.T).T).astype(np.float32)
