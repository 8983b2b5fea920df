"""Uniform shuffling: every training row once per epoch (the default)."""

from __future__ import annotations

from taxonbench.registries import SAMPLERS
from taxonbench.samplers.base import Sampler


@SAMPLERS.register("shuffle")
class Shuffle(Sampler):
    """A uniformly random permutation of the rows, the source's own: ``torch.randperm`` for a split decoded
    in memory, a block-shuffled order (:func:`taxonbench.batches.block_shuffled_order`) for one streamed from
    many shards."""

    def order(self, source, gen):
        return source.shuffled(gen)
