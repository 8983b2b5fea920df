"""Clustering quality of embeddings: category NMI and product NMI (docs/metrics.md §3).

Normalised mutual information of a labelling ``Y`` and a clustering ``C`` of
the same samples, scikit-learn's ``normalized_mutual_info_score`` with its
default arithmetic normalisation::

    NMI(Y, C) = I(Y; C) / ((H(Y) + H(C)) / 2)

(scikit-learn returns 1.0 when both are a single block, as it does for two
identical labellings).

* **Category NMI**: ``C`` = scikit-learn ``KMeans`` on the embeddings with
  ``K`` = the number of distinct labels, ``n_init`` restarts (10 by default,
  fixed: never ``"auto"``) and ``random_state=seed``; the clustering
  pytorch-metric-learning's ``AccuracyCalculator`` ``"NMI"`` does with faiss,
  here with scikit-learn (a test checks the two agree given the same K-means).
* **Product NMI**: for every category ``c`` (a coarse label, e.g. a clothing
  type) its samples ``S_c`` are clustered on their own with ``K_c`` = the
  number of distinct products (fine labels) in ``S_c``, and::

      product NMI = (1/|C'|) Σ_{c ∈ C'} NMI(product labels on S_c, KMeans_{K_c}(S_c))

  an unweighted mean over ``C'``, the categories with at least two products.
  A category with a single product has nothing to separate (its NMI would be
  scikit-learn's trivial 1.0) and is *skipped*: left out of the mean and
  counted in ``n_skipped`` (NaN when every category is skipped). Products are
  told apart within a category only, so product ids may repeat across
  categories.

Embeddings are clustered as given (``normalize=True`` L2-normalises them
first, for cosine-trained embeddings). K-means is deterministic for a fixed
``seed`` and ``n_init`` on the same data and thread count.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

#: Default K-means restarts (fixed, so results do not depend on scikit-learn's "auto").
DEFAULT_N_INIT = 10


def _as_embeddings(x: Any, name: str = "embeddings") -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, dim), got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{name} are empty")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    elif x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"{name} contain NaN or inf (first at row {int(np.nonzero(bad.any(axis=1))[0][0])})")
    return x


def _as_labels(y: Any, n: int, name: str) -> np.ndarray:
    if hasattr(y, "detach"):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {y.shape}")
    if len(y) != n:
        raise ValueError(f"{name} have {len(y)} entries for {n} embeddings")
    return y


def _normalise(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(f"embeddings have a zero vector at row {int(np.nonzero(norm[:, 0] == 0)[0][0])}; "
                         "cannot normalise")
    return x / norm


def kmeans_labels(embeddings: Any, n_clusters: int, *, n_init: int = DEFAULT_N_INIT, seed: int = 0,
                  normalize: bool = False) -> np.ndarray:
    """Cluster index per sample: ``KMeans(n_clusters, n_init=n_init, random_state=seed).fit_predict``."""
    x = _as_embeddings(embeddings)
    if isinstance(n_init, bool) or not isinstance(n_init, (int, np.integer)) or n_init < 1:
        raise ValueError(f"n_init must be a positive integer, got {n_init!r}")
    if not 1 <= n_clusters <= len(x):
        raise ValueError(f"n_clusters must lie in 1..{len(x)} (the number of samples), got {n_clusters}")
    if normalize:
        x = _normalise(x)
    return KMeans(n_clusters=int(n_clusters), n_init=int(n_init), random_state=seed).fit_predict(x)


def category_nmi(embeddings: Any, labels: Any, *, n_init: int = DEFAULT_N_INIT, seed: int = 0,
                 normalize: bool = False) -> float:
    """NMI of ``labels`` and K-means with K = the number of distinct labels (module docstring)."""
    x = _as_embeddings(embeddings)
    y = _as_labels(labels, len(x), "labels")
    clusters = kmeans_labels(x, len(np.unique(y)), n_init=n_init, seed=seed, normalize=normalize)
    return float(normalized_mutual_info_score(y, clusters))


@dataclass(frozen=True)
class ProductNMI:
    """Product NMI (``value``, the mean over the evaluated categories) and its parts.

    ``per_category`` maps each evaluated category to its NMI, ``n_products``
    and ``n_samples`` each category (evaluated or skipped) to its counts;
    ``skipped`` lists the single-product categories left out.
    """

    value: float
    per_category: dict[Any, float]
    skipped: tuple[Any, ...]
    n_products: dict[Any, int] = field(repr=False)
    n_samples: dict[Any, int] = field(repr=False)

    @property
    def n_evaluated(self) -> int:
        return len(self.per_category)

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)


def product_nmi(embeddings: Any, category_labels: Any, product_labels: Any, *, n_init: int = DEFAULT_N_INIT,
                seed: int = 0, normalize: bool = False) -> ProductNMI:
    """Mean over categories of the NMI of K-means within the category, K = its products (module docstring)."""
    x = _as_embeddings(embeddings)
    cat = _as_labels(category_labels, len(x), "category labels")
    prod = _as_labels(product_labels, len(x), "product labels")
    if normalize:
        x = _normalise(x)
    per_category: dict[Any, float] = {}
    skipped: list[Any] = []
    n_products: dict[Any, int] = {}
    n_samples: dict[Any, int] = {}
    for c in np.unique(cat):
        rows = np.flatnonzero(cat == c)
        key = c.item() if hasattr(c, "item") else c
        products = prod[rows]
        k = len(np.unique(products))
        n_products[key], n_samples[key] = k, len(rows)
        if k < 2:
            skipped.append(key)
            continue
        clusters = kmeans_labels(x[rows], k, n_init=n_init, seed=seed)
        per_category[key] = float(normalized_mutual_info_score(products, clusters))
    value = float(np.mean(list(per_category.values()))) if per_category else float("nan")
    return ProductNMI(value=value, per_category=per_category, skipped=tuple(skipped), n_products=n_products,
                      n_samples=n_samples)
