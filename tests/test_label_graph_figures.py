"""The label-embedding figures (thesis Figs. 6.1, 6.2, 6.4, 6.5): what is drawn, the projection, the checks."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from taxonbench.errors import TaxonbenchError
from taxonbench.figures import FigureSpec, build_figure, check_figures, figure_inputs
from taxonbench.label_graph.models import build_label_model
from taxonbench.label_graph.train import save_points
from taxonbench.plots.embeddings import draw_embedding
from taxonbench.taxonomy import Taxonomy


def _tree() -> Taxonomy:
    # root; a, b; a1, a2 under a; b1 under b
    return Taxonomy.from_parents([-1, 0, 0, 1, 1, 2], name=["root", "a", "b", "a1", "a2", "b1"],
                                 rank=["root", "order", "order", "genus", "genus", "genus"])


def _rows(path) -> list[dict]:
    with open(path.with_suffix(".csv"), newline="") as fh:
        return list(csv.DictReader(fh))


def test_a_2d_embedding_is_drawn_as_it_is(tmp_path):
    tax = _tree()
    points = torch.tensor([[0, 0], [0.5, 0.5], [-1.0, 0.2], [1.0, 1.5], [2.0, 0.7], [-0.5, 1.0]], dtype=torch.float64)
    model = build_label_model("order_embeddings", {}, "test")
    written = draw_embedding(model, points, tax, tmp_path / "f.png", "title")
    assert [p.name for p in written] == ["f.png", "f.csv"] and written[0].stat().st_size > 10_000
    rows = _rows(tmp_path / "f.png")
    assert [r["name"] for r in rows] == ["a", "b", "a1", "a2", "b1"]
    assert [int(r["level"]) for r in rows] == [1, 1, 2, 2, 2]
    np.testing.assert_allclose([[float(r["x"]), float(r["y"])] for r in rows], points[1:].numpy(), rtol=1e-5)


def test_a_projection_keeps_an_embedding_that_lies_in_a_plane():
    """Points of R^10 on a 2-D plane: PCA onto two components is an isometry of them (distances kept)."""
    from taxonbench.plots.embeddings import _project

    rng = np.random.default_rng(0)
    plane = np.linalg.qr(rng.normal(size=(10, 2)))[0].T  # orthonormal rows
    flat = rng.normal(size=(30, 2)) * [3.0, 1.0]
    labels = flat @ plane + rng.normal(size=10)
    xy, _, names = _project(labels, None)
    dist = lambda z: np.linalg.norm(z[:, None] - z[None], axis=-1)  # noqa: E731
    np.testing.assert_allclose(dist(xy), dist(labels), atol=1e-9)
    shares = [float(n.split("(")[1].split("%")[0]) for n in names]
    assert names[0].startswith("principal component 1") and sum(shares) == pytest.approx(100, abs=1)


def test_joint_images_are_clamped_to_twice_the_largest_label_norm(tmp_path):
    tax = _tree()
    model = build_label_model("euclidean_cones", {}, "test")
    labels = torch.tensor([[0, 0], [0.5, 0.0], [0, 0.5], [1.0, 0.2], [1.0, -0.2], [0.1, 1.0]], dtype=torch.float64)
    images = torch.tensor([[10.0, 0.0], [0.3, 0.4]], dtype=torch.float64)
    draw_embedding(model, labels, tax, tmp_path / "j.png", "t", images, np.array([0, 2]))
    rows = [r for r in _rows(tmp_path / "j.png") if r["kind"] == "image"]
    limit = 2 * float(labels[1:].norm(dim=1).max())
    assert [r["name"] for r in rows] == ["a1", "b1"]  # an image's node is its leaf
    np.testing.assert_allclose([float(rows[0]["x"]), float(rows[0]["y"])], [limit, 0.0], rtol=1e-5)
    np.testing.assert_allclose([float(rows[1]["x"]), float(rows[1]["y"])], [0.3, 0.4], rtol=1e-5)


def test_build_figure_reads_the_embedding_the_rule_names(tmp_path):
    tax = _tree()
    inputs = figure_inputs("dhall_thesis_fig6_2", "d", "test", tmp_path / "results", tmp_path / "shards")
    assert inputs == {"embedding": [str(tmp_path / "results/label_embeddings/d/ec_d2/embedding.pt")],
                      "taxonomy": [str(tmp_path / "shards/taxonomy.parquet")]}
    (tmp_path / "shards").mkdir()
    tax.write(tmp_path / "shards/taxonomy.parquet")
    model = build_label_model("hyperbolic_cones", {}, "test")  # any model: the file says which
    points = torch.tensor([[0, 0], [0.2, 0.1], [-0.2, 0.1], [0.5, 0.3], [0.4, 0.5], [-0.6, 0.3]], dtype=torch.float64)
    out = tmp_path / "results/label_embeddings/d/ec_d2"
    out.mkdir(parents=True)
    save_points(out / "embedding.pt", model, points, tax, {"dim": 2})
    build_figure("dhall_thesis_fig6_2", "d", "test", tmp_path / "fig.png", tmp_path / "results", tmp_path / "shards")
    assert len(_rows(tmp_path / "fig.png")) == 5
    assert figure_inputs("dhall_thesis_fig6_5", "d", "test")["features"] == [
        "results/features/d/marginalization/test.parquet"]


def _cfg(**joint):
    return {"seed": 0, "datasets": {"d": {}}, "methods": {},
            "label_embeddings": {"datasets": ["d"], "experiments": {"ec_d2": {"model": "euclidean_cones"}},
                                 "joint": {"ec_joint_d2": {"model": "euclidean_cones", "features": "marginalization",
                                                           **joint}}}}


def test_embedding_figures_are_checked_at_start():
    check_figures({**_cfg(), "figures": {"dhall_thesis_fig6_2": {"dataset": "d"},
                                         "dhall_thesis_fig6_5": {"dataset": "d"}}}, {}, None)
    with pytest.raises(TaxonbenchError, match=r"figures.dhall_thesis_fig6_2: 'e' is not a label-embedding dataset"):
        check_figures({**_cfg(), "figures": {"dhall_thesis_fig6_2": {"dataset": "e"}}}, {}, None)
    with pytest.raises(TaxonbenchError, match=r"shows experiment 'oe_d2', which is not under label_embeddings"):
        check_figures({**_cfg(), "figures": {"dhall_thesis_fig6_1": {"dataset": "d"}}}, {}, None)
    with pytest.raises(TaxonbenchError, match=r"draws the images of 'marginalization'; 'ec_joint_d2' embeds those "
                                              r"of 'per_level'"):
        check_figures({**_cfg(features="per_level"), "figures": {"dhall_thesis_fig6_5": {"dataset": "d"}}}, {}, None)
    with pytest.raises(ValueError, match="features go with kind joint_embedding"):
        FigureSpec(id="x", paper="p", source="s", caption="c", kind="label_embedding", experiment="e", features="f")
