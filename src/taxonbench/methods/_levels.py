"""The levels of a taxonomy as per-level methods see them (thesis Ch. 3; HCCF §3.2).

- :func:`resolve_levels`: the levels a loss trains (``levels: [6, 7]``; level ``d`` =
  depth ``d``, 1 the top rank, ``max_depth`` the leaves; ``null`` = all);
- :class:`LevelLayout`: where each level's nodes sit in a ``level_softmax_logits``
  vector (entry ``j`` = node ``j + 1``) and each leaf's ancestor per level;
- :func:`level_cross_entropy`: the per-level cross-entropies summed over the trained
  levels (Eq. 3.2–3.3 of Dhall's thesis), with optional class weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy


def resolve_levels(levels: Sequence[int] | None, taxonomy: Taxonomy, where: str) -> tuple[int, ...]:
    """The trained levels, sorted; ``None`` means every level ``1 .. max_depth``."""
    depth = taxonomy.max_depth
    if depth < 1:
        raise TaxonbenchError(f"{where}: the taxonomy has no level below the root")
    if levels is None:
        return tuple(range(1, depth + 1))
    if isinstance(levels, (str, bytes)) or not isinstance(levels, Sequence) or not levels:
        raise TaxonbenchError(f"{where}.levels: expected a non-empty list of levels 1..{depth}, got {levels!r}")
    for level in levels:
        if isinstance(level, bool) or not isinstance(level, int) or not 1 <= level <= depth:
            raise TaxonbenchError(
                f"{where}.levels: {level!r} is not a level of this taxonomy (1 = top rank .. {depth} = leaves)"
            )
    if len(set(levels)) != len(levels):
        raise TaxonbenchError(f"{where}.levels: repeated level in {list(levels)}")
    return tuple(sorted(levels))


class LevelLayout(nn.Module):
    """Index tensors of the per-level layout (buffers: they follow ``.to(device)``).

    ``columns(d)``: the columns of depth-``d`` nodes in a non-root node vector;
    ``target(leaf, d)``: the position, within level ``d``, of each leaf's ancestor
    at depth ``d`` (-1 where a leaf is shallower than ``d``).
    """

    def __init__(self, taxonomy: Taxonomy) -> None:
        super().__init__()
        self.max_depth = taxonomy.max_depth
        anc = taxonomy.ancestor_table[taxonomy.leaf_nodes]  # (L, D + 1) node ids, -1 below a leaf
        for d in range(1, self.max_depth + 1):
            nodes = taxonomy.nodes_at_depth(d).astype(np.int64)
            position = np.full(taxonomy.n_nodes, -1, dtype=np.int64)
            position[nodes] = np.arange(len(nodes))
            target = np.where(anc[:, d] >= 0, position[np.maximum(anc[:, d], 0)], -1)
            self.register_buffer(f"nodes_{d}", torch.as_tensor(nodes), persistent=False)
            self.register_buffer(f"target_{d}", torch.as_tensor(target), persistent=False)

    def nodes(self, d: int) -> torch.Tensor:
        """Node ids at depth ``d``."""
        return getattr(self, f"nodes_{d}")

    def columns(self, d: int) -> torch.Tensor:
        """Columns of the depth-``d`` nodes in a non-root vector (node ``v`` is column ``v - 1``)."""
        return self.nodes(d) - 1

    def target(self, leaf: torch.Tensor, d: int) -> torch.Tensor:
        """Position within level ``d`` of each leaf's depth-``d`` ancestor (-1: leaf above depth ``d``)."""
        return getattr(self, f"target_{d}")[leaf]

    def ancestor(self, leaf: torch.Tensor, d: int) -> torch.Tensor:
        """Node id of each leaf's depth-``d`` ancestor (-1: leaf above depth ``d``)."""
        target = self.target(leaf, d)
        return torch.where(target >= 0, self.nodes(d)[target.clamp(min=0)], target)


def level_cross_entropy(theta: torch.Tensor, leaf: torch.Tensor, layout: LevelLayout, levels: Sequence[int],
                        node_weight: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_{d ∈ levels} CE(θ_d, τ_d)`` (thesis Eq. 3.2–3.3): ``θ_d`` the logits of the depth-``d`` nodes
    (columns of a non-root vector), ``τ_d`` the true leaf's ancestor at depth ``d``; each term the batch mean,
    rows whose leaf lies above depth ``d`` left out. ``node_weight`` (over all n nodes): the class weights of
    ``torch.nn.functional.cross_entropy`` (a weighted mean, ``Σ w_τ · CE / Σ w_τ``)."""
    total = theta.new_zeros(())
    for d in levels:
        target = layout.target(leaf, d)
        if bool((target >= 0).any()):  # leaves above depth d have no label there
            weight = None if node_weight is None else node_weight[layout.nodes(d)].to(theta.dtype)
            total = total + F.cross_entropy(theta[:, layout.columns(d)], target, weight=weight, ignore_index=-1)
    return total


__all__ = ["LevelLayout", "level_cross_entropy", "resolve_levels"]
