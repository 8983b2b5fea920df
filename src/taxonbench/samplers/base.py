"""The batch-sampler interface: the order of one training epoch.

A sampler declares, as class attributes (torch-free, read at Snakemake start),
its ``name`` (set by ``@SAMPLERS.register(name)``) and its ``Options``
(:mod:`taxonbench.declare`), given in params as the other keys of
``train.sampler`` (``{name: class_balanced, per_class: 4}``).

:meth:`Sampler.order` returns, for epoch ``e``, the positions (``0 .. len(source) - 1``)
of the training rows in the order they are batched: consecutive runs of
``train.batch_size`` positions form the global batches (a position may repeat
when the sampler draws with replacement). Every draw comes from the epoch's
generator (:func:`taxonbench.batches.epoch_generator`), so a resumed run replays an
uninterrupted one and every rank of a distributed run draws the same order.

The source is a batch source of :mod:`taxonbench.batches`: ``len(source)``,
``source.leaves`` (the leaf index of every position) and
``source.shuffled(gen)`` (its own uniform permutation).

Modules import torch inside :meth:`order` only, so the registry stays torch-free.
"""

from __future__ import annotations

from typing import Any, ClassVar

from taxonbench.declare import NoOptions, build_options
from taxonbench.registries import SAMPLERS
from taxonbench.taxonomy import Taxonomy


class Sampler:
    name: ClassVar[str]  # set by ``@SAMPLERS.register(name)``
    Options: ClassVar[type] = NoOptions

    def __init__(self, options: dict[str, Any] | None, taxonomy: Taxonomy, batch_size: int,
                 where: str = "train.sampler") -> None:
        self.options = build_options(self.Options, options, where=where)
        self.taxonomy = taxonomy
        self.batch_size = batch_size
        self.where = where

    def order(self, source, gen):
        """The positions of one epoch (a sequence of ints or a 1-D int64 tensor)."""
        raise NotImplementedError


def make_sampler(block: dict[str, Any], taxonomy: Taxonomy, batch_size: int,
                 where: str = "train.sampler") -> Sampler:
    """The sampler a ``train.sampler`` block names, with the block's other keys as its options."""
    options = dict(block)
    name = options.pop("name", "shuffle")
    return SAMPLERS.get(name)(options, taxonomy, batch_size, where)


__all__ = ["Sampler", "make_sampler"]
