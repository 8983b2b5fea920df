"""Differentiable tree operations in torch, shared by the hierarchical losses.

Vectors are over all ``n`` nodes (root 0) unless a name says "non-root".
Sparse products keep memory linear in the number of (node, ancestor) pairs,
so they scale to iNat21's 16k-node tree.
"""

from __future__ import annotations

import numpy as np
import torch

from taxonbench.taxonomy import Taxonomy


class TreeOps(torch.nn.Module):
    """Index tensors of one taxonomy as buffers (they follow ``.to(device)``)."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        super().__init__()
        self.n_nodes = taxonomy.n_nodes
        anc = taxonomy.ancestor_matrix.tocoo()  # [v, u] = 1 iff u on path(v)
        self.register_buffer("anc_rows", torch.as_tensor(anc.row, dtype=torch.long), persistent=False)
        self.register_buffer("anc_cols", torch.as_tensor(anc.col, dtype=torch.long), persistent=False)
        self.register_buffer("parent", torch.as_tensor(np.maximum(taxonomy.parent, 0), dtype=torch.long),
                             persistent=False)
        self.register_buffer("leaf_nodes", torch.as_tensor(taxonomy.leaf_nodes, dtype=torch.long), persistent=False)
        self.register_buffer("depth", torch.as_tensor(taxonomy.depth, dtype=torch.long), persistent=False)

    def _matrix(self, transpose: bool, dtype: torch.dtype) -> torch.Tensor:
        rows, cols = (self.anc_cols, self.anc_rows) if transpose else (self.anc_rows, self.anc_cols)
        values = torch.ones(len(rows), dtype=dtype, device=rows.device)
        return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (self.n_nodes, self.n_nodes),
                                       check_invariants=False).coalesce()

    def path_sum(self, x: torch.Tensor) -> torch.Tensor:
        """``out[:, v] = Σ_{u ∈ path(v)} x[:, u]``."""
        return torch.sparse.mm(self._matrix(False, x.dtype), x.T).T

    def sibling_log_softmax(self, x: torch.Tensor) -> torch.Tensor:
        """``log p(v | parent(v))``: a log-softmax over each sibling group; the root gets 0."""
        b, n = x.shape
        index = self.parent.expand(b, n)
        group_max = torch.full((b, n), float("-inf"), dtype=x.dtype, device=x.device)
        group_max = group_max.scatter_reduce(1, index[:, 1:], x[:, 1:].detach(), reduce="amax", include_self=True)
        shifted = x - group_max.gather(1, index)
        sums = torch.zeros_like(x).scatter_add(1, index[:, 1:], torch.exp(shifted[:, 1:]))
        out = shifted - torch.log(sums.gather(1, index))
        return torch.cat([torch.zeros_like(out[:, :1]), out[:, 1:]], dim=1)

    def on_path(self, leaf: torch.Tensor) -> torch.Tensor:
        """``(B, n)`` 0/1 float mask of path(leaf node) for a batch of leaf *indices*."""
        nodes = self.leaf_nodes[leaf]
        mask = torch.zeros(len(leaf), self.n_nodes, device=leaf.device)
        # anc_rows/anc_cols list (v, u) pairs with u on path(v): select the rows of our leaf nodes
        sel = (self.anc_rows.unsqueeze(0) == nodes.unsqueeze(1))
        b_idx, pair = sel.nonzero(as_tuple=True)
        mask[b_idx, self.anc_cols[pair]] = 1.0
        return mask
