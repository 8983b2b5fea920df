"""The hierarchical batch sampler of HiMulCon (§3.5 of the HiMulCon paper).

"Randomly sample an anchor image and get the label hierarchy. For each label
in the multi-label, randomly sample an image in the sub-tree such that the
anchor image and the sampled image have common ancestry up to that label ...
each image is sampled only once in an epoch."

Here: the anchors are taken in a uniformly random order; for an anchor of leaf
``y``, for every node ``v`` on its path (``y`` itself first, then each coarser
ancestor, the root excluded) the next not yet used row of ``v``'s subtree in
a shuffled list of that subtree is appended after it, so each anchor brings a
positive pair at every level. A subtree with no unused row left contributes
none. Each row appears exactly once per epoch; batches are consecutive runs of
``batch_size`` positions, so a group of ``1 + depth`` rows may straddle two
batches (a batch size that is a multiple of the group size keeps them whole).
"""

from __future__ import annotations

import numpy as np

from taxonbench.registries import SAMPLERS
from taxonbench.samplers.base import Sampler


@SAMPLERS.register("hierarchical")
class Hierarchical(Sampler):
    def order(self, source, gen):
        import torch

        tax = self.taxonomy
        leaves = np.asarray(source.leaves)
        n = len(leaves)
        paths = tax.ancestor_table[tax.leaf_nodes]  # leaf index -> its ancestor at each depth
        row_paths = paths[leaves]  # (n, max_depth + 1)
        # one shuffled list of rows per node of the tree (the rows of its subtree), with a cursor each
        shuffle = torch.randperm(n, generator=gen).numpy()
        pools: dict[int, np.ndarray] = {}
        for depth in range(1, row_paths.shape[1]):
            nodes = row_paths[shuffle, depth]
            keep = nodes >= 0
            rows, nodes = shuffle[keep], nodes[keep]
            by_node = np.argsort(nodes, kind="stable")
            bounds = np.flatnonzero(np.diff(nodes[by_node])) + 1
            for chunk in np.split(rows[by_node], bounds):
                if len(chunk):
                    pools[int(row_paths[chunk[0], depth])] = chunk
        cursor = dict.fromkeys(pools, 0)
        used = np.zeros(n, dtype=bool)
        out: list[int] = []

        def next_unused(node: int) -> int | None:
            pool, i = pools[node], cursor[node]
            while i < len(pool) and used[pool[i]]:
                i += 1
            cursor[node] = i
            return int(pool[i]) if i < len(pool) else None

        for anchor in torch.randperm(n, generator=gen).tolist():
            if used[anchor]:
                continue
            used[anchor] = True
            out.append(anchor)
            for node in row_paths[anchor, ::-1]:  # the leaf first, then coarser ancestors
                if node <= 0:  # padding (-1) or the root (0)
                    continue
                row = next_unused(int(node))
                if row is not None:
                    used[row] = True
                    out.append(row)
        return torch.tensor(out, dtype=torch.int64)
