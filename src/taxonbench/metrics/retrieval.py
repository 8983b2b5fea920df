"""Retrieval of the evaluation split's images in a gallery, by cosine similarity of embeddings (docs/metrics.md §3).

Reads ``embeddings`` (the encoder's features; HiMulCon paper §4.4, Fig. 3-4, Table 4). The queries
are the evaluation split; the gallery is ``experiments.gallery_split`` (DeepFashion In-Shop: its
gallery; iNat2017: 80 % of val, the query being the other 20 %), or, without one, the evaluation
split itself with each query left out of its own ranking. The class of an image is its leaf ("the
finest subcategory ID", §4.4). With ``R_i`` the gallery items of query i's class (queries with
``R_i = 0`` left out, counted in ``retrieval_n_without_match``):

* ``retrieval_top_<k>`` = the fraction of queries with a same-class item among their k nearest
  (k = 1 … 10, 20, …, 100: the curves of Figs. 3-4);
* ``map_at_r`` = mean over queries of ``(1/R_i) Σ_{r ≤ R_i} P_i(r) [class(nn_i(r)) = y_i]`` (Musgrave et
  al. 2020; Table 4).

Computed by :func:`taxonbench.representation.retrieval.retrieval_scores` (equal to
pytorch-metric-learning's ``AccuracyCalculator``, tested); torch is imported only when the family
computes its result, so the metric registry stays light at Snakemake start.
"""

from __future__ import annotations

import numpy as np

from taxonbench.metrics import Headline
from taxonbench.registries import METRIC_FAMILIES
from taxonbench.taxonomy import Taxonomy

KS = (*range(1, 11), *range(20, 101, 10))


class EmbeddingRows:
    """Accumulates ``(embeddings, leaf)`` blocks of one split."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.leaves: list[np.ndarray] = []

    def add(self, x: np.ndarray, leaf: np.ndarray) -> None:
        self.blocks.append(np.asarray(x, dtype=np.float32))
        self.leaves.append(np.asarray(leaf, dtype=np.int64))

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.blocks), np.concatenate(self.leaves)

    def __bool__(self) -> bool:
        return bool(self.blocks)


@METRIC_FAMILIES.register("retrieval")
class Retrieval:
    reads = "embeddings"
    splits = ("gallery", "eval")
    units = {f"retrieval_top_{k}": "fraction" for k in KS} | {
        "map_at_r": "fraction", "retrieval_n_without_match": "count"}
    headline = Headline("representation", {"retrieval_top_1": "retrieval R@1", "map_at_r": "MAP@R"})

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.queries, self.gallery = EmbeddingRows(), EmbeddingRows()

    def update_gallery(self, x: np.ndarray, leaf: np.ndarray) -> None:
        self.gallery.add(x, leaf)

    def update(self, x: np.ndarray, leaf: np.ndarray) -> None:
        self.queries.add(x, leaf)

    def result(self) -> tuple[dict[str, float], dict[str, np.ndarray]]:
        from taxonbench.representation.retrieval import retrieval_scores

        q, q_leaf = self.queries.arrays()
        if self.gallery:
            g, g_leaf = self.gallery.arrays()
            scores = retrieval_scores(q, q_leaf, g, g_leaf, k=max(KS))
        else:
            scores = retrieval_scores(q, q_leaf, k=max(KS))
        metrics = {f"retrieval_top_{k}": scores.top_k(min(k, scores.k_max)) for k in KS}
        metrics["map_at_r"] = scores.map_at_r
        metrics["retrieval_n_without_match"] = float(scores.n_without_match)
        return metrics, {}
