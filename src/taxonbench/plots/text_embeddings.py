"""The taxa's text embeddings of CLIP models in 2-D (the level-restricted paper's Fig. 2, "t-SNE
visualization of text embeddings").

For every model, the prompt of every taxon of the dataset's taxonomy (all levels, root excluded) is encoded
by the model's own text tower (``node_text_embeddings``) and compared by the model's own ``similarity``
(methods that define both: ``level_restricted``; ``hccf`` has per-level image heads and no text-text
similarity, so it is refused), and the taxa are placed by t-SNE (scikit-learn ``TSNE``, ``random_state=0``: the same picture on
every run) from the model's own dissimilarity

    D_jk = (S_jj − S_jk) / s,

with ``S`` the method's similarity of text embeddings and ``s`` its temperature scale: ``1 − cos`` for the
Euclidean geometry, the Lorentz distance for the hyperbolic one (less the method's distance of a point to
itself, ``arccosh(1 + 10⁻⁶)/√c`` ≈ 10⁻³ from its clamp: the same for every pair). One panel per model,
the taxa coloured by level. Each panel's title gives the silhouette of the levels under ``D`` (scikit-learn
``silhouette_score``, precomputed): near 1 when each level's texts form their own region, near 0 or below
when the levels mix — the paper's point that comparing all levels' texts at once (the pooled baseline)
does not keep the levels apart.

The numbers drawn go beside the PNG as CSV: ``model, node, name, level, x, y``.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.errors import TaxonbenchError
from taxonbench.plots._output import write_figure
from taxonbench.plots.embeddings import level_colours
from taxonbench.taxonomy import Taxonomy

COLUMNS = ("model", "node", "name", "level", "x", "y")


def text_dissimilarity(model_path: str | os.PathLike, taxonomy: Taxonomy) -> np.ndarray:
    """``D`` (module docstring) over the non-root nodes of ``taxonomy`` (row ``v − 1`` = node ``v``), from a
    trained CLIP method that scores nodes by their prompts."""
    from taxonbench.training import load_model

    model, _, meta = load_model(model_path, taxonomy, torch.device("cpu"))
    if not hasattr(model, "node_text_embeddings") or not hasattr(model, "similarity"):
        raise TaxonbenchError(f"{model_path}: method {meta['method']!r} has no text embeddings of the taxa "
                              "and no similarity between them (a method that defines both, e.g. level_restricted)")
    with torch.no_grad():
        texts = model.node_text_embeddings()[1:]
        similarity = model.similarity(texts, texts).double() / float(model.scale())
    d = (torch.diagonal(similarity)[:, None] - similarity).clamp(min=0).numpy()
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return d


def layout(d: np.ndarray) -> np.ndarray:
    """2-D t-SNE coordinates of a precomputed dissimilarity (seeded)."""
    from sklearn.manifold import TSNE

    n = len(d)
    if n < 3:
        raise TaxonbenchError(f"a t-SNE view needs at least 3 taxa; the taxonomy has {n}")
    tsne = TSNE(n_components=2, metric="precomputed", init="random", perplexity=min(30.0, (n - 1) / 3),
                random_state=0)
    return tsne.fit_transform(d)


def level_silhouette(d: np.ndarray, level: np.ndarray) -> float:
    """The silhouette of the levels under ``d`` (NaN with fewer than two levels)."""
    from sklearn.metrics import silhouette_score

    if len(np.unique(level)) < 2:
        return float("nan")
    return float(silhouette_score(d, level, metric="precomputed"))


def draw_text_embeddings(models: Mapping[str, str | os.PathLike], taxonomy_path: str | os.PathLike, out,
                         title: str) -> list[Path]:
    """One panel per ``label -> model.pt`` (module docstring)."""
    tax = Taxonomy.read(taxonomy_path)
    nodes = np.arange(1, tax.n_nodes)
    level = tax.depth[nodes]
    colours = level_colours(tax.max_depth)
    fig = Figure(figsize=(4.2 * len(models), 4.8))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    rows = []
    for ax, (label, path) in zip(axes, models.items()):
        d = text_dissimilarity(path, tax)
        xy = layout(d)
        for k in range(1, tax.max_depth + 1):
            at = level == k
            ax.scatter(xy[at, 0], xy[at, 1], s=10, color=colours[k - 1], label=tax.rank_names[k - 1])
        ax.set_title(f"{label}\nlevel silhouette {level_silhouette(d, level):.2f}", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
        rows += [{"model": label, "node": int(v), "name": str(tax.name[v]), "level": int(tax.depth[v]),
                  "x": f"{p[0]:.6g}", "y": f"{p[1]:.6g}"} for v, p in zip(nodes, xy)]
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=min(len(names), 7), fontsize=8, markerscale=1.5,
               frameon=False)
    fig.suptitle("\n".join(textwrap.wrap(title, 70 * len(models))), fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 0.95))
    return write_figure(fig, out, COLUMNS, rows)


__all__ = ["COLUMNS", "draw_text_embeddings", "layout", "level_silhouette", "text_dissimilarity"]
