"""What a method's dumped scores are, and each kind's own rule for node scores.

The logits sidecar records the ``kind``; inference methods use it to decide
whether they apply. Vectors over "non-root nodes" have ``n - 1`` entries,
entry ``j`` belonging to node ``j + 1``. Rules (docs/methods.md §A, column "node
scores"; Valmadre 2022):

=========================  =====  ==========================================================  ==========================
kind                       dim    node score p(v)                                             methods
=========================  =====  ==========================================================  ==========================
``leaf_logits``            L      Σ_{leaves u under v} softmax(θ)_u  (bottom-up, HCCF Eq. 1)   flat_softmax, ps_softmax,
                                                                                              hxe, soft_labels
``node_sigmoid_logits``    n − 1  σ(θ_v); the root 1 (not hierarchically consistent)          multilabel_focal
``sibling_softmax_logits`` n − 1  Π_{u ∈ path(v)\\root} softmax over the siblings of u (θ)_u    cond_softmax
``sibling_sigmoid_logits`` n − 1  Π_{u ∈ path(v)\\root} σ(θ_u)                                  cond_sigmoid
``path_sum_logits``        n − 1  σ(s_v / T), s_v = Σ_{u ∈ path(v)\\root} θ_u; T in sidecar      deep_rtc
``subtree_softmax_logits`` n      Σ_{u ∈ subtree(v)} softmax(θ)_u                              softmargin,
                                                                                              descendant_softmax
``level_softmax_logits``   n − 1  softmax over the nodes at depth(v) (θ)_v; the root 1         hccf,
                                                                                              ce_text_init_levels
=========================  =====  ==========================================================  ==========================

``level_softmax_logits`` are per-level classifiers (HCCF: image-to-text
similarities of every level; not hierarchically consistent). Their
bottom-up scores (:func:`bottom_up_scores`) use the leaves' logits alone:
``q = softmax over all leaves of θ_leaf`` (the leaf level's softmax when the
leaves share one depth), summed upwards.

Each kind is one :class:`ScoreKind` record in
:data:`taxonbench.registries.SCORE_KINDS` holding its rules: ``native`` (the
table above), ``bottom_up`` (a distribution over leaves summed upwards, HCCF
Eq. 1) and ``conditional`` (``p(v | parent(v))``, used by top-down inference),
each ``None`` where the kind has no such rule. Inference methods declare which
rule they need (:attr:`taxonbench.inference.base.Inference.requires`), so the
kinds an inference accepts follow from the records, never from lists kept
beside them.

Beyond node scores, three kinds are not logits over the taxonomy:

=================  ===============  ==========================================================
kind               written by       what a row holds
=================  ===============  ==========================================================
``embeddings``     methods          a per-image vector (width chosen by the method, in the
                                    sidecar's ``dim``): probes, retrieval, clustering, order /
                                    cone embeddings, zero-shot
``node_prob``      inference        a score for every node, root included (the metrics' input)
``node_set``       inference        a set of predicted nodes: 1.0 for every node in the set,
                                    0.0 elsewhere, over all n nodes (set-based metrics)
=================  ===============  ==========================================================

``stages`` says where a kind may appear: ``logits`` (a method's dumped
outputs) and/or ``scores`` (an inference's output, what metric families read).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, softmax

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import SCORE_KINDS
from taxonbench.taxonomy import Taxonomy

NodeRule = Callable[[np.ndarray, Taxonomy, dict], np.ndarray]

LOGITS = "logits"  # a method's dumped outputs
SCORES = "scores"  # an inference's output, read by the metric families


@dataclass(frozen=True)
class ScoreKind:
    """One kind of scores and its rules; ``(B, dim)`` scores -> ``(B, n)`` node values, root included."""

    name: str
    #: the width for a taxonomy; ``None``: the producer chooses it (embeddings) and writes it in the sidecar
    dim: Callable[[Taxonomy], int] | None
    native: NodeRule | None = None  # the kind's own node scores (native inference, diffusion's f0)
    bottom_up: NodeRule | None = None  # a distribution over leaves summed up the tree (HCCF Eq. 1)
    conditional: NodeRule | None = None  # p(v | parent(v)), root 1 (top-down inference)
    stages: frozenset[str] = frozenset({LOGITS})

    @property
    def node_scores(self) -> NodeRule:  # the name of the native rule before the records held several
        if self.native is None:
            raise TaxonbenchError(f"scores of kind {self.name!r} have no node scores")
        return self.native

    def has(self, rule: str) -> bool:
        """Whether the kind has the rule ``native``, ``bottom_up`` or ``conditional``."""
        return getattr(self, rule) is not None


KINDS = SCORE_KINDS  # the registry's short name in this module




def _leaves(tax: Taxonomy) -> int:
    return tax.n_leaves


def _non_root(tax: Taxonomy) -> int:
    return tax.n_nodes - 1


def _all(tax: Taxonomy) -> int:
    return tax.n_nodes


def with_root(scores: np.ndarray, root_value: float = 0.0) -> np.ndarray:
    """Prepend the root's column to a non-root vector: ``(B, n-1) -> (B, n)``."""
    return np.concatenate([np.full((len(scores), 1), root_value, dtype=scores.dtype), scores], axis=1)


def sum_over_paths(values: np.ndarray, tax: Taxonomy) -> np.ndarray:
    """``out[:, v] = Σ_{u ∈ path(v)} values[:, u]`` for a ``(B, n)`` array."""
    return np.asarray((tax.ancestor_matrix @ values.T).T)


def sum_over_subtrees(values: np.ndarray, tax: Taxonomy) -> np.ndarray:
    """``out[:, v] = Σ_{u ∈ subtree(v)} values[:, u]`` for a ``(B, n)`` array."""
    return np.asarray((tax.ancestor_matrix.T @ values.T).T)


def group_log_softmax(theta: np.ndarray, group: np.ndarray) -> np.ndarray:
    """Log-softmax of ``(B, n)`` scores within groups of non-root nodes (``group[v]`` for ``v ≥ 1``); root 0."""
    group = np.asarray(group, dtype=np.int64)
    order = np.argsort(group[1:], kind="stable") + 1  # non-root nodes grouped
    starts = np.flatnonzero(np.r_[True, np.diff(group[order]) != 0])
    grouped = theta[:, order]
    group_max = np.maximum.reduceat(grouped, starts, axis=1)
    sizes = np.diff(np.r_[starts, len(order)])
    shifted = grouped - np.repeat(group_max, sizes, axis=1)
    log_norm = np.log(np.add.reduceat(np.exp(shifted), starts, axis=1))
    out = np.zeros_like(theta)
    out[:, order] = shifted - np.repeat(log_norm, sizes, axis=1)
    return out


def sibling_log_softmax(theta: np.ndarray, tax: Taxonomy) -> np.ndarray:
    """``log p(v | parent(v))`` with a softmax over each sibling group; ``(B, n) -> (B, n)``, root 0."""
    return group_log_softmax(theta, tax.parent)


def level_log_softmax(theta: np.ndarray, tax: Taxonomy) -> np.ndarray:
    """Log-softmax over the nodes of each depth; ``(B, n) -> (B, n)``, root 0."""
    return group_log_softmax(theta, tax.depth)


def _leaf_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return np.asarray((tax.leaf_ancestor_matrix.T @ softmax(scores, axis=1).T).T)


def _node_sigmoid_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return with_root(expit(scores), 1.0)


def _sibling_softmax_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return np.exp(sum_over_paths(sibling_log_softmax(with_root(scores), tax), tax))


def _sibling_sigmoid_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    log_sig = -np.logaddexp(0.0, -scores)  # log σ(θ), stable
    return np.exp(sum_over_paths(with_root(log_sig), tax))


def _path_sum_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    temperature = float(sidecar.get("temperature", 1.0))
    s = sum_over_paths(with_root(scores), tax)
    p = expit(s / temperature)
    p[:, 0] = 1.0
    return p


def _subtree_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return sum_over_subtrees(softmax(scores, axis=1), tax)


def _level_softmax_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return np.exp(level_log_softmax(with_root(scores), tax))


# ---------------------------------------------------------------- conditionals (top-down inference)
def _sibling_softmax_conditional(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """Per-level or sibling heads: ``p(v | parent(v))`` = softmax of θ over v's siblings."""
    return np.exp(sibling_log_softmax(with_root(scores), tax))


def _sigmoid_conditional(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return with_root(expit(scores), 1.0)


def _ratio_conditional(native: NodeRule) -> NodeRule:
    """For consistent node scores: ``p(v | parent(v)) = p(v) / p(parent(v))`` (0 where the parent has 0)."""

    def rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
        p = native(scores, tax, sidecar)
        parent_p = p[:, np.maximum(tax.parent, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = np.where(parent_p > 0, p / parent_p, 0.0)
        cond[:, 0] = 1.0
        return cond

    return rule


# ---------------------------------------------------------------- bottom-up sums (HCCF Eq. 1)
def _leaves_of_levels_bottom_up(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """Per-level scores: ``q`` = softmax over the leaves' logits alone, summed upwards."""
    return _leaf_rule(with_root(scores)[:, tax.leaf_nodes], tax, sidecar)


for _kind in (
    ScoreKind("leaf_logits", _leaves, native=_leaf_rule, bottom_up=_leaf_rule,
              conditional=_ratio_conditional(_leaf_rule)),
    ScoreKind("node_sigmoid_logits", _non_root, native=_node_sigmoid_rule),
    ScoreKind("sibling_softmax_logits", _non_root, native=_sibling_softmax_rule,
              conditional=_sibling_softmax_conditional),
    ScoreKind("sibling_sigmoid_logits", _non_root, native=_sibling_sigmoid_rule, conditional=_sigmoid_conditional),
    ScoreKind("path_sum_logits", _non_root, native=_path_sum_rule),
    ScoreKind("subtree_softmax_logits", _all, native=_subtree_rule, bottom_up=_subtree_rule,
              conditional=_ratio_conditional(_subtree_rule)),
    ScoreKind("level_softmax_logits", _non_root, native=_level_softmax_rule, bottom_up=_leaves_of_levels_bottom_up,
              conditional=_sibling_softmax_conditional),
    ScoreKind("embeddings", None, stages=frozenset({LOGITS, SCORES})),
    ScoreKind("node_prob", _all, stages=frozenset({SCORES})),
    ScoreKind("node_set", _all, stages=frozenset({SCORES})),
):
    KINDS.add(_kind.name, _kind)


def kinds_with(rule: str, stage: str = LOGITS) -> frozenset[str]:
    """The kinds of ``stage`` that have the rule ``native``, ``bottom_up`` or ``conditional``."""
    return frozenset(name for name, kind in KINDS.items() if stage in kind.stages and kind.has(rule))


def _apply(rule: str, what: str, scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    kind = KINDS.get(sidecar.get("kind", "?"))
    checked = node_scores_width_checked(scores, tax, sidecar)
    function = getattr(kind, rule)
    if function is None:
        raise TaxonbenchError(f"scores of kind {kind.name!r} have no {what}")
    return function(checked, tax, sidecar)


def node_scores(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """The kind's own node scores for a batch (its ``native`` rule), after checking the width."""
    return _apply("native", "node scores", scores, tax, sidecar)


def conditional_probs(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """``p(v | parent(v))`` for every node (root 1), for kinds with conditionals.

    Conditional kinds give them directly; for the other consistent kinds
    (leaf and subtree softmax) they are ratios of bottom-up node scores,
    ``p(v) / p(parent(v))`` (0 where the parent has 0).
    """
    return _apply("conditional", "conditional probabilities", scores, tax, sidecar)


#: Kinds with conditional probabilities (top-down inference); derived from the records.
CONDITIONAL_KINDS = kinds_with("conditional")

#: Kinds with a distribution over leaves to sum upwards (bottom-up inference); derived from the records.
BOTTOM_UP_KINDS = kinds_with("bottom_up")

#: Kinds with node scores of their own (native inference, diffusion); derived from the records.
NATIVE_KINDS = kinds_with("native")


def bottom_up_scores(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """``p(v) = Σ_{u ∈ subtree(v)} q(u)`` (HCCF Eq. 1) with the kind's leaf (or node) softmax ``q``.

    ``leaf_logits`` and ``subtree_softmax_logits``: their own rule.
    ``level_softmax_logits``: ``q`` = softmax over the leaves' logits only.
    """
    return _apply("bottom_up", "distribution over leaves to sum up", scores, tax, sidecar)


def node_scores_width_checked(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """``scores`` as float64 after checking their width against the kind (or the sidecar's ``dim``)."""
    kind = KINDS.get(sidecar.get("kind", "?"))
    expected = kind.dim(tax) if kind.dim is not None else sidecar.get("dim")
    if expected is not None and scores.shape[1] != expected:
        raise TaxonbenchError(
            f"scores of kind {kind.name!r} must have {expected} columns for this taxonomy; got {scores.shape[1]}"
        )
    return scores.astype(np.float64)


__all__ = ["KINDS", "LOGITS", "SCORES", "ScoreKind", "node_scores", "conditional_probs", "CONDITIONAL_KINDS",
           "BOTTOM_UP_KINDS", "NATIVE_KINDS", "bottom_up_scores", "kinds_with", "with_root", "sum_over_paths",
           "sum_over_subtrees", "group_log_softmax", "sibling_log_softmax", "level_log_softmax"]
