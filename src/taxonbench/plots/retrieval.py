"""Top-k retrieval accuracy against k (HiMulCon paper Figs. 3-4) from metrics JSONs of the ``retrieval`` family.

One line per experiment: ``retrieval_top_<k>`` (the fraction of queries with a same-class gallery
item among their k nearest, docs/metrics.md §3) against k on a log axis, in percent as the paper
plots it; the legend sits below the axes. The numbers drawn go beside the PNG as CSV
(``experiment, k, top_k``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.errors import TaxonbenchError
from taxonbench.plots._output import write_figure

TOP_K = re.compile(r"retrieval_top_(\d+)$")


def read_top_k(path: str | os.PathLike) -> dict[int, float]:
    """``k -> top-k accuracy`` of a metrics JSON."""
    path = Path(path)
    if not path.is_file():
        raise TaxonbenchError(f"file not found: {path}")
    try:
        metrics = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TaxonbenchError(f"{path}: not a metrics JSON ({exc})") from None
    curve = {int(m[1]): float(v) for key, v in metrics.items() if (m := TOP_K.match(key)) and v is not None}
    if not curve:
        raise TaxonbenchError(f"{path}: no retrieval_top_<k> metrics (the retrieval family reads embeddings)")
    return dict(sorted(curve.items()))


def draw_retrieval_curves(runs: Mapping[str, str | os.PathLike], out: str | os.PathLike, title: str) -> list[Path]:
    """``runs``: legend label -> metrics JSON path."""
    curves = {label: read_top_k(path) for label, path in runs.items()}
    fig = Figure(figsize=(6.4, 5.2), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    markers = "osD^vP*Xh"
    for i, (label, curve) in enumerate(curves.items()):
        ax.plot(list(curve), [100 * v for v in curve.values()], marker=markers[i % len(markers)], markersize=3.5,
                linewidth=1.3, label=label)
    ax.set_xscale("log")
    ax.set_xlabel("k (retrieved gallery images)")
    ax.set_ylabel("top-k retrieval accuracy (%)")
    ax.grid(True, which="both", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside lower center", ncol=min(4, len(curves)), fontsize=8)
    rows = [{"experiment": label, "k": k, "top_k": v} for label, curve in curves.items() for k, v in curve.items()]
    return write_figure(fig, out, ["experiment", "k", "top_k"], rows)
