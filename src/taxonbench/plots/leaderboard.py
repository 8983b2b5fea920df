"""The leaderboard's figure: one point per experiment in the plane of two headline metrics.

The axes are the board's :data:`AXES` pair that every point has (leaf top-1 against AP when the dataset
has operating curves; else MAP@R against retrieval R@1, mean level accuracy against nLCA, ...), the
marker and colour say the inference. A board without two such columns gets a bar chart of its first
ranked column. The legend sits outside the axes; the figure is written atomically.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.io import atomic_path
from taxonbench.leaderboard.board import Board, Column

#: (x, y) metric pairs, the first whose columns hold values for at least two rows is drawn
AXES = (("ap", "leaf_top1"), ("retrieval_top_1", "map_at_r"), ("nlca", "mean_level_acc"),
        ("set_micro_f1", "set_macro_f1"), ("full_f1", "test_edge_f1"))
MARKERS = "osD^v<>PX*hp"


def _scale(board: Board, c: Column) -> tuple[float, str]:
    units = {r.units[c.metric] for r in board.rows if c.metric in r.units}
    return (100.0, f"{c.label} (%)") if units == {"fraction"} else (1.0, c.label)


def plot_board(board: Board, out: str | os.PathLike) -> Path:
    columns = {c.metric: c for c in board.columns}
    fig = Figure(figsize=(8.5, 5.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pair = next(((columns[x], columns[y]) for x, y in AXES if x in columns and y in columns
                 and sum(x in r.values and y in r.values for r in board.rows) >= 2), None)
    if pair is not None:
        cx, cy = pair
        (sx, x_label), (sy, y_label) = _scale(board, cx), _scale(board, cy)
        inferences = list(dict.fromkeys(r.entry["inference"] for r in board.rows))
        for k, inference in enumerate(inferences):
            rows = [r for r in board.rows if r.entry["inference"] == inference
                    and cx.metric in r.values and cy.metric in r.values]
            if rows:
                ax.scatter([sx * r.values[cx.metric] for r in rows], [sy * r.values[cy.metric] for r in rows],
                           marker=MARKERS[k % len(MARKERS)], s=36, alpha=0.8, label=f"{inference} ({len(rows)})")
        ax.set_xlabel(x_label)
        ax.set_ylabel(y_label)
        ax.grid(alpha=0.3)
        ax.legend(title="inference (experiments)", loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
        ax.set_title(f"{board.dataset}: {cy.label} against {cx.label}, one point per experiment", fontsize=10)
    else:
        c = next((c for c in board.columns if c.better is not None), board.columns[0])
        scale, label = _scale(board, c)
        rows = [r for r in board.rows if c.metric in r.values]
        ax.barh([r.key() for r in rows][::-1], [scale * r.values[c.metric] for r in rows][::-1])
        ax.set_xlabel(label)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_title(f"{board.dataset}: {c.label} per experiment", fontsize=10)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return out


__all__ = ["AXES", "plot_board"]
