"""The level-restricted paper's Fig. 2 (t-SNE of the taxa's text embeddings): the dissimilarity against closed
forms (1 − cos; the Lorentz distance, by geoopt), the silhouette against a hand-worked value, the seeded layout,
the drawing's CSV, the errors, and the check of the figure block."""

from __future__ import annotations

import csv
import warnings

import numpy as np
import pytest
import torch

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import FIGURES
from taxonbench.figures import check_figures, figure_inputs
from taxonbench.methods import METHODS
from taxonbench.models.backbones import build_backbone
from taxonbench.plots.text_embeddings import draw_text_embeddings, layout, level_silhouette, text_dissimilarity

from clip_fixtures import TINY, TREE


def saved_model(tmp_path, name: str, method: str = "level_restricted", backbone: str = TINY, **hparams):
    """A freshly initialised method saved as the training step saves ``model.pt``; the model itself."""
    torch.manual_seed(0)
    model = METHODS.get(method)(build_backbone(backbone), TREE, hparams)
    model.initialise()
    path = tmp_path / name / "model.pt"
    path.parent.mkdir(parents=True)
    meta = {"method": method, "backbone": backbone, "hparams": hparams, "n_leaves": TREE.n_leaves,
            "n_nodes": TREE.n_nodes, "dataset": "d"}
    torch.save({"state_dict": model.state_dict(), "meta": meta}, path)
    return path, model.eval()


def test_euclidean_dissimilarity_is_one_minus_the_cosine(tmp_path):
    path, model = saved_model(tmp_path, "e")
    with torch.no_grad():
        t = torch.nn.functional.normalize(model.node_text_embeddings()[1:].double(), dim=-1)
    want = (1 - t @ t.T).clamp(min=0).numpy()
    np.fill_diagonal(want, 0)
    d = text_dissimilarity(path, TREE)
    assert d.shape == (TREE.n_nodes - 1, TREE.n_nodes - 1)
    np.testing.assert_allclose(d, want, atol=1e-5)


def test_hyperbolic_dissimilarity_is_the_lorentz_distance(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import geoopt
    path, model = saved_model(tmp_path, "h", geometry="hyperbolic", curvature=2.0)
    with torch.no_grad():
        t = model.node_text_embeddings()[1:].double()
        c = float(model.curvature())
    manifold = geoopt.Lorentz(k=1.0 / c)  # geoopt's sheet <x, x> = -k
    want = manifold.dist(t[:, None, :], t[None, :, :]).numpy()
    np.fill_diagonal(want, 0)
    # the method clamps arccosh's argument at 1 + 1e-6, so its distance of a point to itself is
    # arccosh(1 + 1e-6) / sqrt(c) (about 1e-3), which D subtracts from every pair
    offset = float(np.arccosh(1 + 1e-6) / np.sqrt(c))
    off_diagonal = ~np.eye(len(want), dtype=bool)
    np.testing.assert_allclose(text_dissimilarity(path, TREE)[off_diagonal], want[off_diagonal] - offset,
                               rtol=1e-4, atol=1e-5)


def test_silhouette_of_two_separated_levels_by_hand():
    # a, b at level 1 and c, d at level 2: within 1, across 3 -> every s_i = (3 - 1) / 3
    d = np.array([[0, 1, 3, 3], [1, 0, 3, 3], [3, 3, 0, 1], [3, 3, 1, 0]], dtype=float)
    assert level_silhouette(d, np.array([1, 1, 2, 2])) == pytest.approx(2 / 3)
    assert np.isnan(level_silhouette(d, np.array([1, 1, 1, 1])))


def test_layout_is_seeded_and_refuses_too_few_taxa():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 5))
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    a, b = layout(d), layout(d)
    assert a.shape == (20, 2)
    np.testing.assert_array_equal(a, b)
    with pytest.raises(TaxonbenchError, match="at least 3 taxa"):
        layout(d[:2, :2])


def test_the_figure_draws_every_taxon_of_every_model(tmp_path):
    first, _ = saved_model(tmp_path, "a")
    second, _ = saved_model(tmp_path, "b", comparison="pooled")
    tax_path = tmp_path / "taxonomy.parquet"
    TREE.write(tax_path)
    paths = draw_text_embeddings({"A": first, "B": second}, tax_path, tmp_path / "fig.png", "title")
    assert [p.name for p in paths] == ["fig.png", "fig.csv"]
    rows = list(csv.DictReader(paths[1].open()))
    assert [r["model"] for r in rows] == ["A"] * (TREE.n_nodes - 1) + ["B"] * (TREE.n_nodes - 1)
    assert [int(r["level"]) for r in rows[: TREE.n_nodes - 1]] == [int(TREE.depth[v]) for v in range(1, TREE.n_nodes)]
    assert paths[0].stat().st_size > 0


def test_a_model_without_taxon_texts_is_refused(tmp_path):
    path, _ = saved_model(tmp_path, "flat", method="flat_softmax", backbone="tiny_cnn")
    with pytest.raises(TaxonbenchError, match=r"method 'flat_softmax' has no text embeddings of the taxa"):
        text_dissimilarity(path, TREE)


def _cfg(trained_on):
    methods = {e: {"trained_on": trained_on} for e in FIGURES.get("level_restricted_fig2").experiments}
    return {"experiments": {"datasets": ["eval"]}, "methods": methods,
            "figures": {"level_restricted_fig2": {"dataset": "train_here"}}}


def test_the_figure_block_needs_models_trained_on_its_dataset():
    spec = FIGURES.get("level_restricted_fig2")
    runs = lambda cfg, d: spec.experiments if d == "eval" else []  # noqa: E731
    check_figures(_cfg("train_here"), {}, runs)
    with pytest.raises(TaxonbenchError, match=r"figures.level_restricted_fig2: the figure draws the model of "
                                              r"experiment 'clip_zero_shot' trained on 'train_here'"):
        check_figures(_cfg("elsewhere"), {}, runs)
    assert figure_inputs("level_restricted_fig2", "train_here", "test") == {
        "models": [f"results/models/train_here/{e}/model.pt" for e in spec.experiments],
        "taxonomy": ["data/shards/train_here/taxonomy.parquet"]}
