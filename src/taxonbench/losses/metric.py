"""Metric-learning losses of the HiMulCon paper's baselines (Tables 1-2, Fig. 3): triplet and Guided.

* :func:`triplet_margin_loss` — the triplet loss (Schroff et al. 2015; Weinberger & Saul 2009) over every
  valid triplet of the batch: anchors ``a``, positives ``p`` (same label, ``p != a``), negatives ``q``
  (another label), with ``d`` the Euclidean distance of L2-normalised embeddings::

      ℓ(a, p, q) = max(0, d(a, p) - d(a, q) + m)

  averaged over the triplets whose loss is positive (0 when none is). This is pytorch-metric-learning's
  ``TripletMarginLoss(margin=m)`` with its defaults (all triplets, ``LpDistance(normalize_embeddings=True)``,
  ``AvgNonZeroReducer``); a test checks the two agree.
* :func:`tree_distortion` — the "scale-free distortion" regulariser of Garnot & Landrieu, "Leveraging Class
  Hierarchies with Metric-Guided Prototype Learning" (BMVC 2021, the HiMulCon paper's "Guided" [10]): for
  class prototypes ``π_k`` and the tree distance ``D(k, l)`` between classes (edges on the path through their
  lowest common ancestor)::

      disto = mean_{k < l} | d(π_k, π_l) / (s · D(k, l)) - 1 |,   s = Σ d·D / Σ D²

  where ``s`` is the least-squares scale between the prototype and tree distances (Garnot & Landrieu
  optimise the scale with the prototypes; taking its closed-form optimum per step is our reading). The
  guided loss is ``CE(-d(x, π)) + λ · disto`` (:mod:`taxonbench.methods.guided`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from taxonbench.losses.contrastive import ContrastiveInputError


def triplet_margin_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.05) -> Tensor:
    """All-triplets margin loss, mean over the non-zero terms (module docstring)."""
    if embeddings.ndim != 2 or labels.shape != (len(embeddings),):
        raise ContrastiveInputError(f"triplet loss: embeddings must be (B, d) with one label per row; "
                                    f"got {tuple(embeddings.shape)} and {tuple(labels.shape)}")
    if margin < 0:
        raise ContrastiveInputError(f"triplet loss: margin must be >= 0, got {margin}")
    x = F.normalize(embeddings, dim=1)
    dist = torch.cdist(x, x)
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(x), dtype=torch.bool, device=x.device)
    positive, negative = same & ~eye, ~same
    if not bool(positive.any()) or not bool(negative.any()):
        raise ContrastiveInputError("triplet loss: the batch has no positive pair or no negative "
                                    "(it needs two rows of one label and one of another)")
    # (a, p, q): d(a, p) - d(a, q) + m, one row per positive pair (a, p): |P| x B values, not B^3
    anchor, pos = positive.nonzero(as_tuple=True)
    terms = (dist[anchor, pos][:, None] - dist[anchor] + margin).clamp_min(0)
    terms = terms[negative[anchor]]
    nonzero = terms > 0
    if not bool(nonzero.any()):
        return terms.sum() * 0.0
    return terms[nonzero].mean()


def tree_distortion(prototypes: Tensor, tree_distance: Tensor) -> Tensor:
    """Scale-free distortion of the prototype distances against the tree distances (module docstring)."""
    k = len(prototypes)
    if tree_distance.shape != (k, k):
        raise ContrastiveInputError(f"tree distortion: tree distances must be ({k}, {k}), "
                                    f"got {tuple(tree_distance.shape)}")
    rows, cols = torch.triu_indices(k, k, offset=1, device=prototypes.device)
    if len(rows) == 0:
        return prototypes.sum() * 0.0
    d = (prototypes[rows] - prototypes[cols]).norm(dim=1)
    big_d = tree_distance[rows, cols].to(d.dtype)
    scale = (d * big_d).sum() / (big_d * big_d).sum()
    return (d / (scale * big_d).clamp_min(1e-12) - 1).abs().mean()


__all__ = ["tree_distortion", "triplet_margin_loss"]
