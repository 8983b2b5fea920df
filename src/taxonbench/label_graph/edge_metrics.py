"""Edge classification from violation energies (Dhall's thesis §6.1, Tables 6.1-6.3).

An edge ``(u, v)`` is predicted positive when its energy is at most a
threshold, ``E(f(u), f(v)) ≤ t``. With ``tp, fp, fn, tn`` counted over the
edges of a set::

    TPR = tp / (tp + fn)      TNR = tn / (tn + fp)      F1 = 2 tp / (2 tp + fp + fn)

F1 is the micro-F1 of the edge decisions (tp, fp, fn pooled over the edges;
the thesis's "micro-F1 on the test edges"). The threshold is the one that
maximises F1 on a reference set: the validation edges for the hidden-edge task
(Table 6.1: F1 on the test edges at the validation threshold), all edges
for graph reconstruction ("full-F1", Table 6.2). Candidate thresholds are the
reference set's distinct energies (every distinct decision); ties in F1 go
to the smallest threshold. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from taxonbench.metrics import Headline

#: the label-graph metrics on the leaderboard (label-only and joint experiments; taxonbench.leaderboard)
HEADLINE = Headline("label graph", {"test_edge_f1": "edge F1, test edges", "full_f1": "reconstruction F1"})


@dataclass(frozen=True)
class EdgeScores:
    tpr: float
    tnr: float
    precision: float
    f1: float
    threshold: float

    def as_metrics(self, prefix: str) -> dict[str, float]:
        return {f"{prefix}_tpr": self.tpr, f"{prefix}_tnr": self.tnr, f"{prefix}_precision": self.precision,
                f"{prefix}_f1": self.f1, f"{prefix}_threshold": self.threshold}


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def best_threshold(energy: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """``(t, F1)``: the threshold of largest F1 when ``E ≤ t`` predicts positive (module docstring)."""
    energy = np.asarray(energy, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if not positive.any():
        raise ValueError("best_threshold: no positive edge")
    order = np.argsort(energy, kind="stable")
    e, pos = energy[order], positive[order]
    tp = np.cumsum(pos)
    fp = np.cumsum(~pos)
    last = np.r_[e[1:] != e[:-1], True]  # the decision at each distinct energy includes all its ties
    tp, fp, thresholds = tp[last], fp[last], e[last]
    f1 = 2 * tp / (tp + fp + pos.sum())
    best = int(np.argmax(f1))
    return float(thresholds[best]), float(f1[best])


def edge_scores(energy: np.ndarray, positive: np.ndarray, threshold: float) -> EdgeScores:
    """TPR, TNR, precision and F1 of ``E ≤ threshold`` on one set of edges."""
    energy = np.asarray(energy, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    predicted = energy <= threshold
    tp = float((predicted & positive).sum())
    fp = float((predicted & ~positive).sum())
    fn = float((~predicted & positive).sum())
    tn = float((~predicted & ~positive).sum())
    return EdgeScores(_ratio(tp, tp + fn), _ratio(tn, tn + fp), _ratio(tp, tp + fp),
                      _ratio(2 * tp, 2 * tp + fp + fn), float(threshold))


def thresholded_on(reference: tuple[np.ndarray, np.ndarray], target: tuple[np.ndarray, np.ndarray]) -> EdgeScores:
    """Scores on ``target`` = ``(energy, positive)`` at the best threshold of ``reference``."""
    threshold, _ = best_threshold(*reference)
    return edge_scores(*target, threshold)
