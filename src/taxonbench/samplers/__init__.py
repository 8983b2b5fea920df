"""Batch samplers, one module each, registered by name in :data:`taxonbench.registries.SAMPLERS`
(``train.sampler.name``): the order in which one training epoch visits the training rows."""

from taxonbench.registries import SAMPLERS
from taxonbench.samplers.base import Sampler, make_sampler

__all__ = ["SAMPLERS", "Sampler", "make_sampler"]
