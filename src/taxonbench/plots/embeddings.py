"""2-D views of a label embedding, alone or with images (Dhall's thesis Figs. 6.1, 6.2, 6.4, 6.5).

Every label (non-root node) is a point coloured by its level; a line joins it
to its parent (the basic edges). In two dimensions the region where a node
entails, ``{y : E(x, y) = 0}``, is shaded for the nodes of level 1 (the
thesis's cones, drawn from the model's own energy on a 400 x 400 grid, so the
order-embeddings' quadrant, the Euclidean cones and the curved hyperbolic cones
all come from one code path); a model on the Poincaré ball gets the unit
circle. An embedding of more than two dimensions is projected on the first two
principal components of its label points (scikit-learn ``PCA``; Fig. 6.4's
"projected visualization"), without cones, which do not survive the
projection. A joint embedding (Fig. 6.5) adds its images ``f_i(image)`` as
small semi-transparent points; as the thesis clamps their norms (to 500 units)
to show them beside the labels, image norms are clamped to twice the largest
label norm here (on the ball: to 0.999), which the legend says.

The numbers drawn go beside the PNG as CSV: ``kind, node, name, level, x, y``
(``kind`` label or image; an image's ``node`` is its leaf; ``x, y`` as drawn,
after projection and clamping).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Circle

from taxonbench.errors import TaxonbenchError
from taxonbench.io import load_weights_only
from taxonbench.label_graph.models import LabelModel, build_label_model
from taxonbench.label_graph.train import load_points
from taxonbench.plots._output import write_figure
from taxonbench.taxonomy import Taxonomy

COLUMNS = ("kind", "node", "name", "level", "x", "y")
#: grid cells per axis of the shaded entailment regions
GRID = 400
#: at most this many images are drawn (a deterministic subsample beyond it)
MAX_IMAGES = 3000


def level_colours(n_levels: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["viridis"]
    return [cmap(0.9 * k / max(n_levels - 1, 1)) for k in range(n_levels)]


def _project(labels: np.ndarray, images: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """The 2-D coordinates drawn and the axes' names (module docstring)."""
    if labels.shape[1] == 2:
        return labels, images, ["coordinate 1", "coordinate 2"]
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=0).fit(labels)
    names = [f"principal component {k + 1} ({share:.0%} of the label points' variance)"
             for k, share in enumerate(pca.explained_variance_ratio_)]
    return pca.transform(labels), None if images is None else pca.transform(images), names


def _clamp(images: np.ndarray, labels: np.ndarray, on_ball: bool) -> tuple[np.ndarray, float]:
    limit = 0.999 if on_ball else 2.0 * float(np.linalg.norm(labels, axis=1).max())
    norm = np.linalg.norm(images, axis=1, keepdims=True)
    return images * np.minimum(1.0, limit / np.maximum(norm, 1e-12)), limit


def _entailment_regions(ax, model: LabelModel, points: torch.Tensor, nodes: np.ndarray, colours, extent) -> None:
    """Shade ``{y : E(points[v], y) = 0}`` for each ``v`` of ``nodes`` over the axes' extent."""
    (x0, x1), (y0, y1) = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID))
    grid = torch.as_tensor(np.stack([gx.ravel(), gy.ravel()], axis=1), dtype=torch.float64)
    inside = torch.ones(len(grid), dtype=torch.bool) if not model.on_ball else grid.norm(dim=1) < 1.0
    with torch.no_grad():
        for v, colour in zip(nodes, colours):
            energy = model.energy(points[int(v)].expand_as(grid), grid)
            entailed = ((energy <= 1e-9) & inside).numpy().reshape(gx.shape)
            ax.contourf(gx, gy, entailed.astype(float), levels=[0.5, 1.5], colors=[colour], alpha=0.12)


def draw_embedding(model: LabelModel, labels: torch.Tensor, tax: Taxonomy, out: str | os.PathLike, title: str,
                   images: torch.Tensor | None = None, image_leaf: np.ndarray | None = None) -> list[Path]:
    """The figure (module docstring): ``labels`` the points of every node (row 0, the root, not drawn) in the
    model's space; ``images`` the image points of a joint embedding with their leaves."""
    label_np = labels[1:].numpy()
    image_np = None if images is None else images.numpy()
    clamp = None
    if image_np is not None:
        image_np, clamp = _clamp(image_np, label_np, model.on_ball)
        if len(image_np) > MAX_IMAGES:
            keep = np.sort(np.random.default_rng(0).choice(len(image_np), MAX_IMAGES, replace=False))
            image_np, image_leaf = image_np[keep], image_leaf[keep]
    xy, image_xy, axis_names = _project(label_np, image_np)
    level = tax.depth[1:]
    colours = level_colours(tax.max_depth)
    ranks = tax.rank_names

    fig = Figure(figsize=(7.2, 7.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if image_xy is not None:
        ax.scatter(image_xy[:, 0], image_xy[:, 1], s=5, color="0.45", alpha=0.25, edgecolors="none",
                   label=f"images (norm clamped to {clamp:.3g})", zorder=1)
    child = np.arange(1, tax.n_nodes)
    has_parent = tax.parent[child] > 0
    segments = np.stack([xy[tax.parent[child[has_parent]] - 1], xy[child[has_parent] - 1]], axis=1)
    ax.add_collection(LineCollection(segments, colors="0.55", linewidths=0.5, alpha=0.6, zorder=2))
    for d in range(1, tax.max_depth + 1):
        at = level == d
        ax.scatter(xy[at, 0], xy[at, 1], s=max(6, 40 - 8 * d), color=colours[d - 1], edgecolors="black",
                   linewidths=0.3, label=f"level {d} ({ranks[d - 1]}): {int(at.sum())}", zorder=3 + d)
    everything = xy if image_xy is None else np.vstack([xy, image_xy])
    lo, hi = everything.min(axis=0), everything.max(axis=0)
    pad = 0.08 * np.maximum(hi - lo, 1e-6)
    extent = ((lo[0] - pad[0], hi[0] + pad[0]), (lo[1] - pad[1], hi[1] + pad[1]))
    if model.on_ball and labels.shape[1] == 2:
        extent = tuple((min(a, -1.02), max(b, 1.02)) for a, b in extent)
        ax.add_patch(Circle((0, 0), 1.0, fill=False, color="black", linewidth=0.8))
    if labels.shape[1] == 2:
        top = tax.nodes_at_depth(1)
        _entailment_regions(ax, model, labels, top, [colours[0]] * len(top), extent)
        ax.plot([], [], color=colours[0], alpha=0.35, linewidth=6, label="where a level-1 label entails (E = 0)")
    ax.set_xlim(*extent[0])
    ax.set_ylim(*extent[1])
    if labels.shape[1] == 2:  # true geometry; a projection's axes are not comparable
        ax.set_aspect("equal")
    ax.set_xlabel(axis_names[0])
    ax.set_ylabel(axis_names[1])
    ax.grid(alpha=0.25)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle(textwrap.fill(title, 80), fontsize=10)

    rows = [{"kind": "label", "node": v, "name": str(tax.name[v]), "level": int(tax.depth[v]),
             "x": f"{xy[v - 1, 0]:.6g}", "y": f"{xy[v - 1, 1]:.6g}"} for v in range(1, tax.n_nodes)]
    if image_xy is not None:
        nodes = tax.leaf_nodes[image_leaf]
        rows += [{"kind": "image", "node": int(v), "name": str(tax.name[v]), "level": int(tax.depth[v]),
                  "x": f"{p[0]:.6g}", "y": f"{p[1]:.6g}"} for v, p in zip(nodes, image_xy)]
    return write_figure(fig, out, COLUMNS, rows)


def draw_label_embedding(embedding_path: str | os.PathLike, taxonomy_path: str | os.PathLike, out, title) -> list[Path]:
    """A label-only embedding (``embedding.pt`` of ``taxonbench train-label-embedding``)."""
    tax = Taxonomy.read(taxonomy_path)
    state = load_weights_only(embedding_path, "label embedding")
    if not isinstance(state, dict) or "model" not in state:
        raise TaxonbenchError(f"{embedding_path}: not a label embedding (no 'model')")
    model = build_label_model(state["model"], state.get("options"), str(embedding_path))
    return draw_embedding(model, load_points(embedding_path, tax, model, str(embedding_path)), tax, out, title)


def draw_joint_embedding(model_path: str | os.PathLike, features_path: str | os.PathLike,
                         taxonomy_path: str | os.PathLike, out, title) -> list[Path]:
    """A joint embedding (``model.pt`` of ``taxonbench train-joint-embedding``) with the images of a features file."""
    from taxonbench.label_graph.joint import load_joint, read_features

    tax = Taxonomy.read(taxonomy_path)
    net = load_joint(model_path, tax)
    _, leaf, features = read_features(features_path)
    with torch.no_grad():
        labels = net.label_points().detach()
        images = net.image_points(torch.as_tensor(features)).detach()
    return draw_embedding(net.model, labels, tax, out, title, images, leaf)


__all__ = ["COLUMNS", "draw_embedding", "draw_joint_embedding", "draw_label_embedding", "level_colours"]
