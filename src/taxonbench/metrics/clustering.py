"""Clustering quality of embeddings: category NMI and product NMI (docs/metrics.md §3; HiMulCon paper Table 3).

Reads ``embeddings`` of the evaluation split. "We first generate the embeddings for all the images
in the unseen test set, and perform K-means in the representation space" (§4.6):

* ``category_nmi``: K-means with K = the number of categories (the nodes at depth 1 present), NMI
  against the category labels;
* ``product_nmi_L<d>`` for every depth ``d ≥ 2``: within each category, K-means with K = its number of
  depth-``d`` taxa (the "products"), NMI against them; the mean over the categories with at least two
  (Table 3's "Product NMI" is the product level of the dataset: depth 2 on DeepFashion In-Shop
  category → product → variation, the leaves on a two-level tree).

scikit-learn's ``KMeans`` (seeded, ``n_init`` restarts) and ``normalized_mutual_info_score``
(:mod:`taxonbench.representation.clustering`), imported when the family computes its result.
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics.retrieval import EmbeddingRows
from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy


@METRIC_FAMILIES.register("clustering")
class Clustering:
    reads = "embeddings"
    splits = ("eval",)
    units = {"category_nmi": "fraction", "product_nmi_L{level}": "fraction"}
    headline = Headline("representation", {"category_nmi": "NMI"})

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self.rows = EmbeddingRows()

    def update(self, x: np.ndarray, leaf: np.ndarray) -> None:
        self.rows.add(x, leaf)

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        from taxonbench.representation.clustering import category_nmi, product_nmi

        x, leaf = self.rows.arrays()
        path = self.taxonomy.ancestor_table[self.taxonomy.leaf_nodes[leaf]]  # (N, max_depth + 1)
        metrics = {"category_nmi": category_nmi(x, path[:, 1]) if self.taxonomy.max_depth >= 1 else float("nan")}
        for depth in range(2, self.taxonomy.max_depth + 1):
            taxa = np.where(path[:, depth] >= 0, path[:, depth], self.taxonomy.leaf_nodes[leaf])
            metrics[f"product_nmi_L{depth}"] = product_nmi(x, path[:, 1], taxa).value
        return metrics, {}
