"""How many labels a set prediction holds per image (docs/metrics.md §2; thesis Tables 4.x).

A set prediction (score kind ``node_set``) is a 0/1 indicator over every
taxonomy node; its labels are the non-root nodes in the set (the root is the
trivial label every image has). For the per-image counts ``c_i``:

* ``labels_min = min_i c_i``, ``labels_max = max_i c_i`` (unit ``count``),
* ``labels_mean = (1/N) Σ_i c_i`` and ``labels_std = sqrt((1/N) Σ_i (c_i − mean)²)``
  (the population standard deviation, as ``numpy.std``; unit ``real``).

The thesis reports them for the hierarchy-agnostic multi-label classifier
(any number of labels per image) against per-level models (one per level).
"""

from __future__ import annotations

import math

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy


@METRIC_FAMILIES.register("set_size")
class SetSize:
    """Streaming min / max / mean / std of the number of predicted labels per image."""

    reads = "node_set"
    splits = ("eval",)
    units = {"labels_min": "count", "labels_max": "count", "labels_mean": "real", "labels_std": "real"}
    headline = Headline("set-based", {"labels_mean": "labels / image"}, unranked=frozenset({"labels_mean"}))

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.n = 0
        self.total = 0.0
        self.total_sq = 0.0
        self.low = math.inf
        self.high = -math.inf

    def update(self, node_set: np.ndarray, gt_leaf: np.ndarray) -> None:
        counts = (node_set[:, 1:] > 0.5).sum(axis=1).astype(np.float64)
        if len(counts) == 0:
            return
        self.n += len(counts)
        self.total += counts.sum()
        self.total_sq += (counts**2).sum()
        self.low = min(self.low, counts.min())
        self.high = max(self.high, counts.max())

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        mean = self.total / self.n
        variance = max(0.0, self.total_sq / self.n - mean**2)
        return {"labels_min": float(self.low), "labels_max": float(self.high), "labels_mean": mean,
                "labels_std": math.sqrt(variance)}, {}
