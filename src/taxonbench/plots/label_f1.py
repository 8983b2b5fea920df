"""Per-label F1 against the number of training images, one panel per level (Dhall's thesis Figs. 4.1, 4.2, 4.4).

A point is a label (a non-root node v): x = its training images
``n_v = Σ_{leaves u under v} c_u`` (``c_u`` the train split's images of leaf u,
:meth:`Taxonomy.node_counts`), on a log axis; y = its F1 on the eval split,
``F1_v = 2 P_v R_v / (P_v + R_v)`` with the set-based family's counts
(:mod:`taxonbench.metrics.set_prf`, 0/0 := 0), from a set-prediction scores file
(kind ``node_set``). As in the thesis, a histogram of the training images sits
above each scatter and one of the F1 scores on its right. The numbers drawn are
written beside the PNG as CSV (``level, node, name, n_train, n_eval,
precision, recall, f1``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.errors import TaxonbenchError
from taxonbench.evaluation import score_chunks
from taxonbench.metrics.set_prf import SetPRF, per_label
from taxonbench.plots._output import write_figure
from taxonbench.shards import TAXONOMY, read_split_column
from taxonbench.taxonomy import Taxonomy

COLUMNS = ("level", "node", "name", "n_train", "n_eval", "precision", "recall", "f1")


def label_f1_rows(scores_path: str | os.PathLike, shards_dir: str | os.PathLike,
                  taxonomy: Taxonomy | None = None) -> list[dict]:
    """One row per label: its level, training images, eval-split positives and P / R / F1."""
    shards_dir = Path(shards_dir)
    taxonomy = taxonomy or Taxonomy.read(shards_dir / TAXONOMY)
    kind, chunks = score_chunks(Path(scores_path), taxonomy)
    if kind != "node_set":
        raise TaxonbenchError(f"{scores_path}: per-label F1 needs set predictions (kind node_set), not {kind!r}")
    prf = SetPRF(taxonomy)
    for matrix, leaf in chunks:
        prf.update(matrix, leaf)
    precision, recall, f1 = per_label(prf.tp, prf.fp, prf.fn)
    train_leaf = read_split_column(shards_dir, "train", "leaf").astype(np.int64)
    n_train = taxonomy.node_counts(np.bincount(train_leaf, minlength=taxonomy.n_leaves))
    return [{"level": int(taxonomy.depth[v]), "node": v, "name": str(taxonomy.name[v]), "n_train": int(n_train[v]),
             "n_eval": int(prf.tp[v] + prf.fn[v]), "precision": float(precision[v]), "recall": float(recall[v]),
             "f1": float(f1[v])} for v in range(1, taxonomy.n_nodes)]


def draw_label_f1(scores_path: str | os.PathLike, shards_dir: str | os.PathLike, out: str | os.PathLike,
                  title: str) -> list[Path]:
    """The figure (module docstring) as PNG at ``out`` and its numbers as CSV beside it."""
    taxonomy = Taxonomy.read(Path(shards_dir) / TAXONOMY)
    rows = label_f1_rows(scores_path, shards_dir, taxonomy)
    ranks = taxonomy.rank_names
    levels = sorted({r["level"] for r in rows})
    x_all = np.maximum(1, [r["n_train"] for r in rows])
    x_bins = np.geomspace(x_all.min() / 1.2, x_all.max() * 1.2, 16)
    y_bins = np.linspace(0.0, 1.0, 21)
    fig = Figure(figsize=(3.6 * len(levels), 4.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(1, len(levels))
    for k, level in enumerate(levels):
        at = [r for r in rows if r["level"] == level]
        x = np.maximum(1, [r["n_train"] for r in at])
        y = np.array([r["f1"] for r in at])
        cell = grid[0, k].subgridspec(2, 2, width_ratios=(4, 1), height_ratios=(1, 4), wspace=0.05, hspace=0.05)
        main = fig.add_subplot(cell[1, 0])
        top = fig.add_subplot(cell[0, 0], sharex=main)
        right = fig.add_subplot(cell[1, 1], sharey=main)
        main.scatter(x, y, s=14, alpha=0.7, color="tab:blue", edgecolors="none")
        main.set_xscale("log")
        main.set_ylim(-0.03, 1.03)
        main.set_xlabel("training images of the label")
        if k == 0:
            main.set_ylabel("F1 on the eval split")
        main.grid(alpha=0.3)
        top.hist(x, bins=x_bins, color="tab:gray")
        top.set_title(f"level {level} ({ranks[level - 1]}): {len(at)} labels", fontsize=10)
        right.hist(y, bins=y_bins, orientation="horizontal", color="tab:gray")
        top.tick_params(labelbottom=False)
        right.tick_params(labelleft=False)
    fig.suptitle(title, fontsize=11)
    return write_figure(fig, out, COLUMNS,
                        ({**r, **{m: f"{r[m]:.6f}" for m in ("precision", "recall", "f1")}} for r in rows))

__all__ = ["COLUMNS", "draw_label_f1", "label_f1_rows"]
