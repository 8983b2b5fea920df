"""Decision thresholds tuned on val: set predictions of a multi-label classifier (Dhall's thesis §3.1.1–3.1.2).

A label (non-root node) v is predicted for an image when its native node
score reaches the threshold, ``ŷ_v = [p(v) ≥ θ_v]``, so an image may get any
number of labels (the root is never a prediction). The thresholds are fitted
on the val split's scores (``fit_split = "val"``) and applied to test:

* ``pcdb`` — per-class decision boundary (§3.1.1): for every label its own
  θ_v, the one that maximises that label's F1 on val;
* ``ofadb`` — one-fits-all decision boundary (§3.1.2): one θ for all labels,
  the one that maximises the micro-F1 over all labels of val.

Candidates are the distinct val scores (``sklearn.metrics.precision_recall_curve``,
whose thresholds predict ``score ≥ θ``); ties in F1 go to the smallest θ. A
label with no positive on val has no F1 to maximise and keeps θ = 0.5. The
state file is JSON: the thresholds over all n nodes (the root's unused), the
kind of the scores and the tree they were fitted on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import ClassVar

import numpy as np

from taxonbench.errors import TaxonbenchError
from taxonbench.inference._fitting import read_training_scores, state_option, tree_digest
from taxonbench.inference.base import Inference
from taxonbench.io import write_text_atomic
from taxonbench.registries import INFERENCE
from taxonbench.score_kinds import node_scores
from taxonbench.taxonomy import Taxonomy

FORMAT = 1
UNTUNED = 0.5  # the threshold of a label with no positive on val


def best_f1_threshold(scores: np.ndarray, truth: np.ndarray) -> float:
    """The threshold ``θ`` maximising the F1 of ``[scores ≥ θ]`` against the 0/1 ``truth`` (flattened)."""
    from sklearn.metrics import precision_recall_curve

    scores, truth = np.ravel(scores), np.ravel(truth).astype(bool)
    if not truth.any():
        return UNTUNED
    precision, recall, thresholds = precision_recall_curve(truth, scores)
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(thresholds[int(np.argmax(f1[:-1]))])  # the last point (recall 0) has no threshold


def path_indicator(taxonomy: Taxonomy, leaf: np.ndarray) -> np.ndarray:
    """``(N, n)`` 0/1: node v is on the root path of image i's true leaf."""
    return taxonomy.leaf_ancestor_matrix[leaf].toarray() > 0


class Thresholds(Inference):
    requires = "native"
    produces = "node_set"
    fitted = True
    fit_split = "val"
    per_class: ClassVar[bool]

    @classmethod
    def fit(cls, taxonomy: Taxonomy, logits_path: str | os.PathLike, out_path: str | os.PathLike,
            options: dict, seed: int = 0) -> Path:
        cls.parse_options(options, ignore=("state",))
        p, leaf, sidecar = read_training_scores(taxonomy, logits_path, what=cls.name)
        truth = path_indicator(taxonomy, leaf)
        theta = np.full(taxonomy.n_nodes, UNTUNED)
        if cls.per_class:
            for v in range(1, taxonomy.n_nodes):
                theta[v] = best_f1_threshold(p[:, v], truth[:, v])
        else:
            theta[1:] = best_f1_threshold(p[:, 1:], truth[:, 1:])
        state = {"format": FORMAT, "inference": cls.name, "kind": sidecar.get("kind"), "fitted_on": str(logits_path),
                 "n_nodes": taxonomy.n_nodes, "tree_digest": tree_digest(taxonomy), "thresholds": theta.tolist()}
        out_path = Path(out_path)
        write_text_atomic(out_path, json.dumps(state, indent=1))
        return out_path

    def __init__(self, taxonomy: Taxonomy, options: dict | None = None) -> None:
        super().__init__(taxonomy, options)
        self.parse_options(options, ignore=("state",))
        path = state_option(self.name, self.fit_split, options)
        try:
            state = json.loads(Path(path).read_text())
            theta = np.asarray(state["thresholds"], dtype=np.float64)
            fitted = (state["inference"], state["n_nodes"], state["tree_digest"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TaxonbenchError(f"{path}: not a readable {self.name} state ({exc})") from None
        if fitted != (self.name, taxonomy.n_nodes, tree_digest(taxonomy)) or len(theta) != taxonomy.n_nodes:
            raise TaxonbenchError(f"{path}: fitted by {fitted[0]!r} on a tree of {fitted[1]} nodes ({fitted[2]}); "
                                  f"this is {self.name!r} on {taxonomy.n_nodes} nodes ({tree_digest(taxonomy)})")
        self.state_path, self.state_kind, self.theta = Path(path), state.get("kind"), theta

    def check(self, sidecar: dict, where: str) -> None:
        super().check(sidecar, where)
        if sidecar.get("kind") != self.state_kind:
            raise TaxonbenchError(f"{where}: scores of kind {sidecar.get('kind')!r}, but the thresholds in "
                                  f"{self.state_path} were tuned on {self.state_kind!r}")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        # float32, as the scores the thresholds were tuned on (read_training_scores): a val score equal to its
        # threshold stays predicted
        p = node_scores(scores, self.taxonomy, self.sidecar).astype(np.float32)
        out = (p >= self.theta.astype(np.float32)).astype(np.float32)
        out[:, 0] = 0.0
        return out


@INFERENCE.register("pcdb")
class PerClassDecisionBoundary(Thresholds):
    """One threshold per label, each maximising that label's F1 on val (§3.1.1)."""

    per_class = True


@INFERENCE.register("ofadb")
class OneFitsAllDecisionBoundary(Thresholds):
    """One threshold for every label, maximising the micro-F1 on val (§3.1.2)."""

    per_class = False
