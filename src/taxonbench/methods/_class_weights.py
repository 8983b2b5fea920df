"""Loss re-weighting by inverse class frequency (the thesis's "cw", Dhall §4.4: "the loss is re-weighted using
the per-class inverse frequencies").

For a label (node) ``v`` with ``n_v`` training images (the images of every leaf under it), the weight is
``w_v = (1 / n_v) / mean_u (1 / n_u)``, the mean over the labels the loss reads: inverse frequencies
scaled to mean 1, so that switching re-weighting on leaves the loss's scale (and the learning rate's
meaning) about where it was. A label with no training image has no frequency: an error naming the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from taxonbench.declare import param
from taxonbench.errors import TaxonbenchError
from taxonbench.taxonomy import Taxonomy

if TYPE_CHECKING:
    import torch

CLASS_WEIGHTS = ("none", "inverse_frequency")


@dataclass(frozen=True)
class ClassWeightHparams:
    class_weight: str = param("none", choices=CLASS_WEIGHTS,
                              doc="re-weight each label's loss term by its inverse training frequency (thesis 'cw')")


def inverse_frequency_weights(taxonomy: Taxonomy, leaf_counts: np.ndarray, where: str) -> np.ndarray:
    """``w_v`` over all n nodes (the root's is that of a label every image has), scaled to mean 1 over the
    non-root nodes."""
    counts = taxonomy.node_counts(leaf_counts)  # n_v
    empty = np.flatnonzero(counts[1:] == 0) + 1
    if len(empty):
        names = taxonomy.name[empty[:5]]
        raise TaxonbenchError(f"{where}.class_weight: inverse_frequency needs a training image of every label; "
                              f"{len(empty)} have none (e.g. {', '.join(map(str, names))})")
    inverse = 1.0 / counts
    return inverse / inverse[1:].mean()


def level_weighted_mean(neg_log: "torch.Tensor", terms: "torch.Tensor", node_weight: "torch.Tensor",
                        depth: "torch.Tensor") -> "torch.Tensor":
    """``Σ_d Σ_b w_{τ_bd} ℓ_bd / Σ_b w_{τ_bd}``: each level's terms a weighted mean over the batch (the class
    weights of ``torch.nn.functional.cross_entropy``), summed over levels. ``neg_log`` and ``terms`` are
    ``(B, n)`` over the nodes (``terms`` 1 at each row's counted true nodes), ``depth`` the ``(n,)`` depths."""
    import torch

    w = terms * node_weight.to(neg_log.dtype)
    levels = int(depth.max()) + 1
    flat_depth = depth.expand_as(w).flatten()
    total = torch.zeros(levels, dtype=neg_log.dtype, device=neg_log.device).index_add(0, flat_depth,
                                                                                      (w * neg_log).flatten())
    norm = torch.zeros_like(total).index_add(0, flat_depth, w.flatten())
    return (total[norm > 0] / norm[norm > 0]).sum()


class ClassWeighted:
    """Mixin of a :class:`~taxonbench.methods.base.Method` whose Hparams have ``class_weight``: keeps
    ``self.node_weight`` (a float tensor over all n nodes, or None without re-weighting) from the training
    labels training reports (:meth:`Method.observe_training_labels`)."""

    node_weight = None

    def observe_training_labels(self, leaf_counts: np.ndarray) -> None:
        import torch

        if self.hparams.class_weight == "inverse_frequency":
            weights = inverse_frequency_weights(self.taxonomy, leaf_counts, self.where)
            self.node_weight = torch.as_tensor(weights, dtype=torch.float32,
                                               device=next(self.parameters()).device)
