"""Re-sampling by class frequency (the thesis's ``rs``, Chapter 4.4 of Dhall's thesis).

Row ``i`` of leaf class ``c`` is drawn with probability proportional to
``n_c ** -power``, ``n_c`` the number of training rows of class ``c``,
``len(source)`` draws with replacement from that multinomial — what
``torch.utils.data.WeightedRandomSampler`` does with these weights (the
thesis: "re-sampling is performed proportional to the inverse frequency of
the occurrence of a label ... normalized to sum to 1 to sample using a
multinomial distribution"). ``power = 1``: inverse frequency (every class
equally likely per draw); ``power = 1/2``: the thesis's "sqrt" re-sampler
(weights ``1 / sqrt(n_c)``). A leaf with no training row cannot be balanced:
an error naming ``train.sampler`` and the leaf.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import SAMPLERS
from taxonbench.samplers.base import Sampler


def frequency_weights(leaves: np.ndarray, power: float) -> np.ndarray:
    """``w_i = n_{c(i)} ** -power`` for every row (unnormalised; float64)."""
    counts = np.bincount(leaves)
    return counts[leaves].astype(np.float64) ** -power


class FrequencyWeighted(Sampler):
    power: ClassVar[float]

    def order(self, source, gen):
        import torch

        leaves = np.asarray(source.leaves)
        empty = np.flatnonzero(np.bincount(leaves, minlength=self.taxonomy.n_leaves) == 0)
        if len(empty):  # a class never drawn: the re-sampling cannot balance it
            names = self.taxonomy.name[self.taxonomy.leaf_nodes[empty[:5]]]
            raise TaxonbenchError(f"{self.where}: {self.name} re-sampling needs a training image of every leaf; "
                                  f"{len(empty)} have none (e.g. {', '.join(map(str, names))})")
        weights = torch.from_numpy(frequency_weights(leaves, self.power))
        return torch.multinomial(weights, len(weights), replacement=True, generator=gen)


@SAMPLERS.register("inverse_frequency")
class InverseFrequency(FrequencyWeighted):
    """Weights ``1 / n_c``."""

    power = 1.0


@SAMPLERS.register("inverse_sqrt_frequency")
class InverseSqrtFrequency(FrequencyWeighted):
    """Weights ``1 / sqrt(n_c)``."""

    power = 0.5
