"""Micro / macro precision, recall and F1 of set predictions, overall and per level (Dhall's thesis §4.1).

The labels are the non-root nodes (N_total = Σ_i N_i, N_i the nodes at depth
i); an image's true labels are the nodes on its leaf's path, its predicted
labels the nodes of its set prediction (score kind ``node_set``). Per label v,
over the N images: ``tp_v``, ``fp_v``, ``fn_v``. Over a set of labels S (all of
them, or those of one level)::

    micro:  P = Σ tp / Σ (tp + fp),   R = Σ tp / Σ (tp + fn),   F1 = 2PR / (P + R)     (Eq. 4.3–4.5 pooled)
    macro:  P = (1/|S|) Σ_v P_v,  R = (1/|S|) Σ_v R_v,  F1 = (1/|S|) Σ_v F1_v           (Eq. 4.7)

with 0/0 := 0 — scikit-learn's ``precision_recall_fscore_support`` with
``average="micro"`` / ``"macro"`` and ``zero_division=0`` on the label-indicator
matrices (a test checks it), so macro-F1 is the mean of the labels' F1, not the
F1 of the macro P and R, and a label never true nor predicted counts as 0.
Metric names: ``set_{micro,macro}_{precision,recall,f1}``, the same with
``_L{d}`` for level d, and ``labels_L{d}`` = N_d (a count).
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

MEASURES = ("precision", "recall", "f1")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def per_label(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(P_v, R_v, F1_v)`` of every label from its counts (0/0 := 0)."""
    per_p, per_r = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    return per_p, per_r, _ratio(2 * per_p * per_r, per_p + per_r)


def micro_macro(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> dict[str, float]:
    """``{micro,macro}_{precision,recall,f1}`` of per-label counts (0/0 := 0)."""
    p, r = _ratio(tp.sum(), tp.sum() + fp.sum()), _ratio(tp.sum(), tp.sum() + fn.sum())
    per_p, per_r, per_f1 = per_label(tp, fp, fn)
    return {"micro_precision": float(p), "micro_recall": float(r), "micro_f1": float(_ratio(2 * p * r, p + r)),
            "macro_precision": float(per_p.mean()) if len(tp) else 0.0,
            "macro_recall": float(per_r.mean()) if len(tp) else 0.0,
            "macro_f1": float(per_f1.mean()) if len(tp) else 0.0}


@METRIC_FAMILIES.register("set_prf")
class SetPRF:
    reads = "node_set"
    splits = ("eval",)
    units = {f"set_{avg}_{m}{lvl}": "fraction" for avg in ("micro", "macro") for m in MEASURES
             for lvl in ("", "_L{level}")} | {"labels_L{level}": "count"}
    headline = Headline("set-based", {"set_micro_f1": "micro F1", "set_macro_f1": "macro F1"})

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.paths = taxonomy.leaf_ancestor_matrix  # (L, n) sparse 0/1
        self.tp = np.zeros(taxonomy.n_nodes)
        self.fp = np.zeros(taxonomy.n_nodes)
        self.fn = np.zeros(taxonomy.n_nodes)

    def update(self, node_set: np.ndarray, gt_leaf: np.ndarray) -> None:
        predicted = node_set > 0.5
        true = self.paths[gt_leaf].toarray() > 0
        self.tp += (predicted & true).sum(axis=0)
        self.fp += (predicted & ~true).sum(axis=0)
        self.fn += (~predicted & true).sum(axis=0)

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        depth = self.taxonomy.depth
        out = {f"set_{k}": v for k, v in micro_macro(self.tp[1:], self.fp[1:], self.fn[1:]).items()}
        for d in range(1, self.taxonomy.max_depth + 1):
            at = depth == d
            out.update({f"set_{k}_L{d}": v for k, v in micro_macro(self.tp[at], self.fp[at], self.fn[at]).items()})
            out[f"labels_L{d}"] = float(at.sum())
        return out, {}
