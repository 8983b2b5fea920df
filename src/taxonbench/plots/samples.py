"""A grid of sample images grouped by taxon, to see a dataset's structure at a glance.

Rows are leaves in tree order, a contiguous run of leaves from each kingdom
(the depth-1 taxa), so neighbouring rows are siblings (same genus), cousins
(same family) and, across the bold kingdom headers, distant taxa. Each run of
rows that shares a family (the ancestor two ranks above the leaves) gets a
header with its lineage; each row is labelled with the leaf's genus and
species names and shows ``per_taxon`` images of that leaf. Drawn with the
Agg backend on a private Figure and written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path
from taxonbench.shards import TAXONOMY, ShardDataset
from taxonbench.taxonomy import Taxonomy

_ROW_IN = 0.46  # height of one image row, inches
_HEADER_IN = 0.24  # height of a header line, inches
_LABEL_IN = 2.3  # width of the row-label column, inches
_GAP_PX = 2  # white gap between images in a row, pixels


def select_leaves(tax: Taxonomy, n_taxa: int) -> np.ndarray:
    """Leaf indices to show: an equal contiguous run (in tree order) from each depth-1 taxon."""
    order = np.argsort(tax.leaf_nodes, kind="stable")  # leaf indices in tree (node id) order
    top = tax.ancestor_table[tax.leaf_nodes[order], min(1, tax.max_depth)]
    groups = [order[top == k] for k in dict.fromkeys(top.tolist())]
    base, extra = divmod(n_taxa, len(groups))
    chosen = [g[: base + (k < extra)] for k, g in enumerate(groups)]
    return np.concatenate(chosen).astype(np.int64)


def _row_strip(images: list[np.ndarray], per_taxon: int, size: tuple[int, int]) -> np.ndarray:
    h, w = size
    strip = np.full((h, per_taxon * (w + _GAP_PX) - _GAP_PX, 3), 255, dtype=np.uint8)
    for j, im in enumerate(images[:per_taxon]):
        strip[:, j * (w + _GAP_PX): j * (w + _GAP_PX) + w] = im[:h, :w]
    return strip


def plot_samples(
    shard_dir: str | os.PathLike,
    out_path: str | os.PathLike,
    n_taxa: int = 18,
    per_taxon: int = 8,
    split: str = "train",
) -> Path:
    """Write a PNG grid of ``per_taxon`` images for each of ``n_taxa`` leaves of ``split``.

    Parameters
    ----------
    shard_dir : path, a prepared dataset directory (``taxonomy.parquet``, manifest, shards).
    out_path : path of the PNG to write (atomically).
    n_taxa : int, default=18, the number of leaves (rows) shown.
    per_taxon : int, default=8, images per leaf.
    split : str, default="train", the split the images come from.

    Returns the written path.
    """
    if n_taxa < 1 or per_taxon < 1:
        raise TaxonbenchError(f"plot_samples: n_taxa and per_taxon must be >= 1, got {n_taxa}, {per_taxon}")
    shard_dir, out_path = Path(shard_dir), Path(out_path)
    tax = Taxonomy.read(shard_dir / TAXONOMY)
    data = ShardDataset(shard_dir, split)
    leaves = select_leaves(tax, n_taxa)
    split_leaves = data.leaves
    rows: list[tuple[int, list[np.ndarray]]] = []
    size = None
    for leaf in leaves:
        idx = np.flatnonzero(split_leaves == leaf)[:per_taxon]
        images = [np.asarray(data[int(i)][0]) for i in idx]
        size = size or (images[0].shape[:2] if images else None)
        rows.append((int(leaf), images))
    if size is None:
        raise TaxonbenchError(f"{shard_dir}: split {split!r} has no images of the selected taxa")

    family_depth = max(1, tax.max_depth - 2)
    layout: list[tuple[str, str]] = []  # ("kingdom" | "family" | "row", text)
    last_top = last_family = -1
    for leaf, _ in rows:
        node = int(tax.leaf_nodes[leaf])
        path = tax.ancestor_table[node]
        if path[min(1, tax.max_depth)] != last_top:
            last_top = path[min(1, tax.max_depth)]
            layout.append(("kingdom", f"{tax.rank[last_top]} {tax.name[last_top]}".strip()))
        if path[family_depth] != last_family:
            last_family = path[family_depth]
            lineage = [str(tax.name[u]) for u in path[2: family_depth + 1] if u > 0]
            if lineage:
                layout.append(("family", " › ".join(lineage)))
        parent = int(tax.parent[node])
        layout.append(("row", f"{tax.name[parent]} {tax.name[node]}" if parent > 0 else str(tax.name[node])))

    strip_w = per_taxon * (size[1] + _GAP_PX) - _GAP_PX
    img_w_in = _ROW_IN * strip_w / size[0] * 0.92
    width = _LABEL_IN + img_w_in + 0.2
    heights = [_ROW_IN if kind == "row" else _HEADER_IN for kind, _ in layout]
    height = sum(heights) + 0.2
    fig = Figure(figsize=(width, height), dpi=120)
    FigureCanvasAgg(fig)
    y = height - 0.1
    strips = iter(rows)
    for (kind, text), h in zip(layout, heights):
        y -= h
        if kind == "kingdom":
            fig.text(0.05 / width, (y + 0.05) / height, text, fontsize=9, weight="bold", va="bottom")
        elif kind == "family":
            fig.text(0.2 / width, (y + 0.04) / height, text, fontsize=7, color="0.3",
                     style="italic", va="bottom")
        else:
            _, images = next(strips)
            fig.text((_LABEL_IN - 0.08) / width, (y + h / 2) / height, text, fontsize=7.5,
                     style="italic", ha="right", va="center")
            ax = fig.add_axes((_LABEL_IN / width, (y + 0.02) / height, img_w_in / width,
                               (h - 0.04) / height))
            ax.imshow(_row_strip(images, per_taxon, size), interpolation="nearest", aspect="auto")
            ax.set_axis_off()
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    return out_path
