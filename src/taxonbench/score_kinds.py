"""What a method's dumped scores are, and each kind's own rule for node scores.

The logits sidecar records the ``kind``; inference methods use it to decide
whether they apply. Vectors over "non-root nodes" have ``n - 1`` entries,
entry ``j`` belonging to node ``j + 1``. Rules (METHODS.md §A, column "node
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

:func:`conditional_probs` gives p(v | parent(v)) for the kinds that have
conditionals (used by top-down inference).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit, softmax

from taxonbench.errors import TaxonbenchError
from taxonbench.registry import Registry
from taxonbench.taxonomy import Taxonomy

NodeRule = Callable[[np.ndarray, Taxonomy, dict], np.ndarray]


@dataclass(frozen=True)
class ScoreKind:
    name: str
    dim: Callable[[Taxonomy], int]
    node_scores: NodeRule  # (B, dim) scores -> (B, n) node scores, root included


KINDS: Registry[ScoreKind] = Registry("score kind")


def _register(name: str, dim: Callable[[Taxonomy], int]) -> Callable[[NodeRule], NodeRule]:
    def decorate(rule: NodeRule) -> NodeRule:
        KINDS.register(name)(ScoreKind(name, dim, rule))
        return rule

    return decorate


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


@_register("leaf_logits", _leaves)
def _leaf_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return np.asarray((tax.leaf_ancestor_matrix.T @ softmax(scores, axis=1).T).T)


@_register("node_sigmoid_logits", _non_root)
def _node_sigmoid_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return with_root(expit(scores), 1.0)


@_register("sibling_softmax_logits", _non_root)
def _sibling_softmax_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return np.exp(sum_over_paths(sibling_log_softmax(with_root(scores), tax), tax))


@_register("sibling_sigmoid_logits", _non_root)
def _sibling_sigmoid_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    log_sig = -np.logaddexp(0.0, -scores)  # log σ(θ), stable
    return np.exp(sum_over_paths(with_root(log_sig), tax))


@_register("path_sum_logits", _non_root)
def _path_sum_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    temperature = float(sidecar.get("temperature", 1.0))
    s = sum_over_paths(with_root(scores), tax)
    p = expit(s / temperature)
    p[:, 0] = 1.0
    return p


@_register("subtree_softmax_logits", _all)
def _subtree_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return sum_over_subtrees(softmax(scores, axis=1), tax)


@_register("level_softmax_logits", _non_root)
def _level_softmax_rule(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    return np.exp(level_log_softmax(with_root(scores), tax))


def node_scores(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """The kind's own node scores for a batch, after checking the width."""
    checked = node_scores_width_checked(scores, tax, sidecar)
    return KINDS.get(sidecar["kind"]).node_scores(checked, tax, sidecar)


def conditional_probs(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """``p(v | parent(v))`` for every node (root 1), for kinds with conditionals.

    Conditional kinds give them directly; for the other consistent kinds
    (leaf and subtree softmax) they are ratios of bottom-up node scores,
    ``p(v) / p(parent(v))`` (0 where the parent has 0).
    """
    kind = sidecar.get("kind")
    scores = scores.astype(np.float64)
    if kind in ("sibling_softmax_logits", "level_softmax_logits"):  # per-level heads: softmax over siblings
        return np.exp(sibling_log_softmax(with_root(scores), tax))
    if kind == "sibling_sigmoid_logits":
        return with_root(expit(scores), 1.0)
    if kind in ("leaf_logits", "subtree_softmax_logits"):
        p = node_scores(scores, tax, sidecar)
        parent_p = p[:, np.maximum(tax.parent, 0)]
        with np.errstate(divide="ignore", invalid="ignore"):
            cond = np.where(parent_p > 0, p / parent_p, 0.0)
        cond[:, 0] = 1.0
        return cond
    raise TaxonbenchError(f"scores of kind {kind!r} have no conditional probabilities")


CONDITIONAL_KINDS = frozenset({"sibling_softmax_logits", "sibling_sigmoid_logits", "leaf_logits",
                               "subtree_softmax_logits", "level_softmax_logits"})

#: Kinds with a distribution over leaves to sum upwards (bottom-up inference).
BOTTOM_UP_KINDS = frozenset({"leaf_logits", "subtree_softmax_logits", "level_softmax_logits"})


def bottom_up_scores(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """``p(v) = Σ_{u ∈ subtree(v)} q(u)`` (HCCF Eq. 1) with the kind's leaf (or node) softmax ``q``.

    ``leaf_logits`` and ``subtree_softmax_logits``: their own rule.
    ``level_softmax_logits``: ``q`` = softmax over the leaves' logits only.
    """
    kind = sidecar.get("kind")
    if kind not in BOTTOM_UP_KINDS:
        raise TaxonbenchError(f"scores of kind {kind!r} have no distribution over leaves to sum up")
    if kind == "level_softmax_logits":
        full = with_root(node_scores_width_checked(scores, tax, sidecar))
        return _leaf_rule(full[:, tax.leaf_nodes], tax, sidecar)
    return node_scores(scores, tax, sidecar)


def node_scores_width_checked(scores: np.ndarray, tax: Taxonomy, sidecar: dict) -> np.ndarray:
    """``scores`` as float64 after checking their width against the kind."""
    kind = KINDS.get(sidecar.get("kind", "?"))
    expected = kind.dim(tax)
    if scores.shape[1] != expected:
        raise TaxonbenchError(
            f"scores of kind {kind.name!r} must have {expected} columns for this taxonomy; got {scores.shape[1]}"
        )
    return scores.astype(np.float64)


__all__ = ["KINDS", "ScoreKind", "node_scores", "conditional_probs", "CONDITIONAL_KINDS", "BOTTOM_UP_KINDS",
           "bottom_up_scores", "with_root", "sum_over_paths", "sum_over_subtrees", "group_log_softmax",
           "sibling_log_softmax", "level_log_softmax"]
