"""Tests of the representation metrics: retrieval top-k / MAP@R and category / product NMI (docs/metrics.md §3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_metric_learning.distances import CosineSimilarity
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator
from pytorch_metric_learning.utils.inference import CustomKNN
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from taxonbench.representation.clustering import category_nmi, kmeans_labels, product_nmi
from taxonbench.representation.retrieval import nearest_neighbours, retrieval_scores


# --------------------------------------------------------------------------- helpers
def clustered(rng: np.random.Generator, n: int, centres: np.ndarray, noise: float = 0.8,
              labels: np.ndarray | None = None, dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points around random class centres (labels uniform unless given)."""
    y = rng.integers(0, len(centres), n) if labels is None else labels
    x = centres[y] + noise * rng.standard_normal((n, centres.shape[1]))
    return x.astype(dtype), y


def pml(query, query_labels, gallery=None, gallery_labels=None, ref_includes_query=False) -> dict:
    calc = AccuracyCalculator(include=("precision_at_1", "mean_average_precision_at_r"), k="max_bin_count",
                              device=torch.device("cpu"), knn_func=CustomKNN(CosineSimilarity()))
    return calc.get_accuracy(query, query_labels, gallery, gallery_labels, ref_includes_query=ref_includes_query)


def brute_force(query, query_labels, gallery, gallery_labels, k, exclude_self):
    """Full similarity matrix, ranks by (similarity desc, index asc); curve, MAP@R, per-query AP."""
    qn = query / np.linalg.norm(query, axis=1, keepdims=True)
    gn = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    sim = qn.astype(np.float64) @ gn.astype(np.float64).T
    hits, aps = [], []
    for i in range(len(query)):
        order = sorted(range(len(gallery)), key=lambda j: (-sim[i, j], j))
        if exclude_self:
            order.remove(i)
        match = np.array([gallery_labels[j] == query_labels[i] for j in order])
        r = int(match.sum())
        if r == 0:
            continue
        hits.append([bool(match[:kk].any()) for kk in range(1, k + 1)])
        precision = np.cumsum(match[:r]) / np.arange(1, r + 1)
        aps.append(float((precision * match[:r]).sum() / r))
    return np.mean(hits, axis=0), float(np.mean(aps)), len(aps)


# --------------------------------------------------------------------------- retrieval vs pytorch-metric-learning
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pml_query_vs_gallery(seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((40, 12))
    q, qy = clustered(rng, 400, centres)
    g, gy = clustered(rng, 700, centres)
    gy = np.where(gy == 3, 4, gy)  # label 3 has no gallery match: its queries are "lone"
    ours = retrieval_scores(q, qy, g, gy, k=30)
    ref = pml(q, qy, g, gy)
    assert ours.n_without_match == int((qy == 3).sum()) > 0
    assert ours.precision_at_1 == pytest.approx(ref["precision_at_1"], abs=1e-12)
    assert ours.map_at_r == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pml_same_set(seed):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((30, 10))
    x, y = clustered(rng, 600, centres)
    y[0] = 99  # a label seen once: no match once the query's own row is dropped
    ours = retrieval_scores(x, y, k=20)  # gallery=None: exclude_self defaults to True
    ref = pml(x, y)  # reference=None: pml sets ref_includes_query=True
    assert ours.n_without_match == 1
    assert ours.precision_at_1 == pytest.approx(ref["precision_at_1"], abs=1e-12)
    assert ours.map_at_r == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-12)
    # The same with an explicit gallery whose first rows are the queries (ref_includes_query=True).
    extra, extra_y = clustered(rng, 200, centres)
    g, gy = np.concatenate([x[:300], extra]), np.concatenate([y[:300], extra_y])
    ours = retrieval_scores(x[:300], y[:300], g, gy, k=20, exclude_self=True)
    ref = pml(x[:300], y[:300], g, gy, ref_includes_query=True)
    assert ours.precision_at_1 == pytest.approx(ref["precision_at_1"], abs=1e-12)
    assert ours.map_at_r == pytest.approx(ref["mean_average_precision_at_r"], abs=1e-12)


# --------------------------------------------------------------------------- hand-worked MAP@R
def test_hand_worked_map_at_r():
    """Musgrave et al.'s point against R-precision: R = 10 and 5 of the first 10 retrieved correct.

    Twenty gallery items on the unit circle at angles 0.05·rank from the
    queries' direction, so the ranking is rank 1..20 for every query. Label
    "a" at ranks 1-5 and 11-15, label "b" at ranks 6-10 and 16-20: both have
    R = 10 and R-precision 0.5, but

        AP@R(a) = (1/10)(1/1 + 2/2 + 3/3 + 4/4 + 5/5)          = 0.5
        AP@R(b) = (1/10)(1/6 + 2/7 + 3/8 + 4/9 + 5/10)         ≈ 0.177183

    A third query labelled "c" has no gallery match and is left out.
    """
    angles = 0.05 * np.arange(1, 21)
    gallery = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    gallery_labels = np.array(["a"] * 5 + ["b"] * 5 + ["a"] * 5 + ["b"] * 5)
    query = np.array([[1.0, 0.0]] * 3)
    query_labels = np.array(["a", "b", "c"])
    s = retrieval_scores(query, query_labels, gallery, gallery_labels, k=25)
    ap_b = (1 / 6 + 2 / 7 + 3 / 8 + 4 / 9 + 5 / 10) / 10
    assert s.n_evaluated == 2 and s.n_without_match == 1
    np.testing.assert_allclose(s.average_precision_at_r[:2], [0.5, ap_b], rtol=1e-12)
    assert np.isnan(s.average_precision_at_r[2])
    assert s.map_at_r == pytest.approx((0.5 + ap_b) / 2, rel=1e-12)
    assert s.map_at_r == pytest.approx(0.338591, abs=1e-6)
    np.testing.assert_array_equal(s.r, [10, 10, 0])
    np.testing.assert_array_equal(s.first_hit_rank, [0, 5, -1])
    # top-k: "a" hits from k = 1, "b" from k = 6; past the gallery (k > 20) the curve stays flat.
    np.testing.assert_allclose(s.top_k_accuracy, [0.5] * 5 + [1.0] * 20)
    assert s.metrics(ks=(1, 6))["top_6"] == 1.0


def test_ties_break_towards_lower_gallery_index():
    gallery = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    s = retrieval_scores(np.array([[1.0, 0.1]]), [7], gallery, [3, 7, 7], k=2)
    assert s.first_hit_rank[0] == 1  # item 0 (label 3) ranks before its exact twin item 1
    assert s.average_precision_at_r[0] == pytest.approx(0.5 * (1 / 2))  # R = 2: P(2) at rank 2 only


# --------------------------------------------------------------------------- brute force, monotonicity, chunking
@pytest.mark.parametrize("same_set", [False, True])
def test_top_k_curve_equals_brute_force(same_set):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((15, 6))
    g, gy = clustered(rng, 150, centres, noise=1.0, dtype=np.float64)
    if same_set:
        q, qy = g, gy
        s = retrieval_scores(g, gy, k=40)
    else:
        q, qy = clustered(rng, 90, centres, noise=1.0, dtype=np.float64)
        s = retrieval_scores(q, qy, g, gy, k=40)
    curve, map_at_r, n = brute_force(q, qy, g, gy, 40, exclude_self=same_set)
    assert s.n_evaluated == n
    np.testing.assert_allclose(s.top_k_accuracy, curve, atol=1e-12)
    assert s.map_at_r == pytest.approx(map_at_r, abs=1e-12)
    assert np.all(np.diff(s.top_k_accuracy) >= 0)
    assert 0 <= s.top_k_accuracy[0] <= s.top_k_accuracy[-1] <= 1


def test_large_r_beyond_k_and_tiny_chunks():
    """A label with R = 240 gallery matches and K = 5: MAP@R still needs the top 240 neighbours."""
    rng = np.random.default_rng(4)
    centres = rng.standard_normal((6, 5))
    labels = np.r_[np.zeros(240, dtype=int), rng.integers(1, 6, 160)]
    g, gy = clustered(rng, 400, centres, noise=1.5, labels=labels, dtype=np.float64)
    q, qy = clustered(rng, 60, centres, noise=1.5, dtype=np.float64)
    curve, map_at_r, _ = brute_force(q, qy, g, gy, 5, exclude_self=False)
    for kwargs in ({}, {"max_chunk_bytes": 1}, {"chunk_size": 7}):
        s = retrieval_scores(q, qy, g, gy, k=5, **kwargs)
        np.testing.assert_allclose(s.top_k_accuracy, curve, atol=1e-12)
        assert s.map_at_r == pytest.approx(map_at_r, abs=1e-12)
    assert s.r.max() == 240


@pytest.mark.parametrize("same_set", [False, True])
def test_chunk_size_does_not_change_results(same_set):
    rng = np.random.default_rng(5)
    centres = rng.standard_normal((25, 16))
    g, gy = clustered(rng, 500, centres)
    q, qy = (g, gy) if same_set else clustered(rng, 300, centres)
    gallery = None if same_set else g
    gallery_labels = None if same_set else gy
    base = retrieval_scores(q, qy, gallery, gallery_labels, k=50)
    for kwargs in ({"chunk_size": 1}, {"chunk_size": 13}, {"chunk_size": 10_000}, {"max_chunk_bytes": 50_000}):
        other = retrieval_scores(q, qy, gallery, gallery_labels, k=50, **kwargs)
        np.testing.assert_array_equal(other.top_k_accuracy, base.top_k_accuracy)
        np.testing.assert_array_equal(other.first_hit_rank, base.first_hit_rank)
        np.testing.assert_array_equal(other.average_precision_at_r, base.average_precision_at_r)
        assert other.map_at_r == base.map_at_r


def test_nearest_neighbours_brute_force_and_self_exclusion():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((80, 4))
    sim, idx = nearest_neighbours(x, k=6, chunk_size=9)  # same set, own row excluded
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    full = xn @ xn.T
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(idx, np.argsort(-full, axis=1, kind="stable")[:, :6])
    np.testing.assert_allclose(sim, np.take_along_axis(full, idx, axis=1), atol=1e-12)
    assert not (idx == np.arange(80)[:, None]).any()
    _, with_self = nearest_neighbours(x, x, k=1)  # a separate gallery: no exclusion, each finds itself
    np.testing.assert_array_equal(with_self[:, 0], np.arange(80))


def test_no_query_with_a_match_gives_nan():
    s = retrieval_scores(np.eye(3), [0, 1, 2], np.eye(3), [5, 5, 6], k=2)
    assert s.n_evaluated == 0 and s.n_without_match == 3
    assert np.isnan(s.map_at_r) and np.isnan(s.top_k_accuracy).all()


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("call, message", [
    (lambda: retrieval_scores(np.ones((3, 4)), [0, 1, 2], np.ones((5, 3)), [0] * 5), "dimension mismatch"),
    (lambda: retrieval_scores(np.ones((3, 4)), [0, 1, 2], np.ones((0, 4)), []), "gallery is empty"),
    (lambda: retrieval_scores(np.ones((0, 4)), [], np.ones((2, 4)), [0, 1]), "query set is empty"),
    (lambda: retrieval_scores(np.array([[1.0, np.nan]]), [0], np.ones((2, 2)), [0, 1]), "query embeddings contain NaN"),
    (lambda: retrieval_scores(np.ones((1, 2)), [0], np.array([[1.0, 1.0], [np.inf, 0.0]]), [0, 1]),
     "gallery embeddings contain NaN"),
    (lambda: retrieval_scores(np.ones((2, 2)), [0], np.ones((2, 2)), [0, 1]), "query labels have 1 entries"),
    (lambda: retrieval_scores(np.ones((2, 2)), [0, 1], np.ones((2, 2)), [0]), "gallery labels have 1 entries"),
    (lambda: retrieval_scores(np.ones((1, 2)), [0], np.array([[1.0, 1.0], [0.0, 0.0]]), [0, 1]), "zero vector"),
    (lambda: retrieval_scores(np.ones(3), [0, 1, 2]), "must be 2-D"),
    (lambda: retrieval_scores(np.eye(2), [0, 1], np.eye(3)[:, :2] + 1, [0, 1, 1], exclude_self=True),
     "exclude_self"),
    (lambda: retrieval_scores(np.ones((1, 2)), [0]), "own row is excluded"),
    (lambda: retrieval_scores(np.eye(2), [0, 1], k=0), "k must be a positive integer"),
    (lambda: nearest_neighbours(np.eye(3), np.eye(3), k=4), "k must lie in 1..3"),
    (lambda: category_nmi(np.array([[0.0, np.nan], [1.0, 1.0]]), [0, 1]), "embeddings contain NaN"),
    (lambda: category_nmi(np.ones((3, 2)), [0, 1]), "labels have 2 entries"),
    (lambda: product_nmi(np.ones((0, 2)), [], []), "embeddings are empty"),
    (lambda: kmeans_labels(np.ones((3, 2)), 4), "n_clusters must lie in 1..3"),
])
def test_bad_input_raises_value_error_naming_it(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --------------------------------------------------------------------------- NMI
def test_category_nmi_equals_sklearn_and_pml():
    rng = np.random.default_rng(7)
    centres = 3 * rng.standard_normal((8, 5))
    x, y = clustered(rng, 300, centres, noise=1.0)
    clusters = KMeans(n_clusters=8, n_init=4, random_state=11).fit_predict(x)
    expected = normalized_mutual_info_score(y, clusters)
    assert category_nmi(x, y, n_init=4, seed=11) == expected
    assert 0.3 < expected < 1.0
    # pytorch-metric-learning's NMI given the same K-means (its default is faiss).
    calc = AccuracyCalculator(include=("NMI",), device=torch.device("cpu"), knn_func=CustomKNN(CosineSimilarity()),
                              kmeans_func=lambda emb, k: torch.as_tensor(
                                  KMeans(n_clusters=k, n_init=4, random_state=11).fit_predict(emb.numpy())))
    assert calc.get_accuracy(x, y)["NMI"] == pytest.approx(expected, abs=1e-12)
    # normalize=True clusters the unit vectors.
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    on_unit = normalized_mutual_info_score(y, KMeans(n_clusters=8, n_init=4, random_state=11).fit_predict(xn))
    assert category_nmi(x, y, n_init=4, seed=11, normalize=True) == pytest.approx(on_unit, abs=1e-12)


def test_product_nmi_hand_made_two_categories():
    """Category "shirt": products 0 and 1 form two far-apart groups, K-means (K = 2) recovers them: NMI 1.
    Category "shoe": points at 0, 0.1, 10, 10.1 with products 2, 3, 2, 3; K-means (K = 2) splits
    {0, 0.1} from {10, 10.1}, independent of the products: NMI 0. Category "hat" has one product:
    skipped. Product NMI = (1 + 0) / 2."""
    shirt = np.array([[0.0, 0.0], [0.2, 0.0], [0.0, 0.2], [50.0, 50.0], [50.2, 50.0], [50.0, 50.2]])
    shoe = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0]])
    hat = np.array([[1.0, 1.0], [2.0, 2.0]])
    x = np.concatenate([shirt, shoe, hat])
    category = ["shirt"] * 6 + ["shoe"] * 4 + ["hat"] * 2
    product = [0, 0, 0, 1, 1, 1, 2, 3, 2, 3, 4, 4]
    res = product_nmi(x, category, product, n_init=3, seed=0)
    assert res.per_category["shirt"] == pytest.approx(1.0)
    assert res.per_category["shoe"] == pytest.approx(0.0, abs=1e-12)
    assert res.skipped == ("hat",) and res.n_skipped == 1 and res.n_evaluated == 2
    assert res.value == pytest.approx(0.5)
    assert res.n_products == {"hat": 1, "shirt": 2, "shoe": 2}
    assert res.n_samples == {"hat": 2, "shirt": 6, "shoe": 4}
    only_hats = product_nmi(hat, ["hat", "hat"], [4, 4])
    assert np.isnan(only_hats.value) and only_hats.n_skipped == 1
