"""Training curves (Dhall's thesis Fig. 4.3) from ``train_log.csv`` files written with ``train.curve_splits``.

Four panels against the epoch: (a) the val micro-F1 of every compared
experiment (the thesis: its cw / rs combinations); for the figure's main
experiment (b) the loss: the running training loss (``train_loss``, under
augmentation and the sampler) and each curve split's loss in eval mode,
(c) the micro-F1 and (d) the macro-F1 of each curve split (the per-level
argmax decoding of :mod:`taxonbench.training_curves`). Legends sit below
their axes. The numbers drawn go beside the PNG as CSV in long form
(``experiment, epoch, measure, value``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.errors import TaxonbenchError
from taxonbench.plots._output import write_figure

SPLITS = ("train", "val", "test")


def read_log(path: str | os.PathLike) -> dict[str, list[float]]:
    """A train log's columns as floats (``epoch`` first)."""
    path = Path(path)
    if not path.is_file():
        raise TaxonbenchError(f"file not found: {path}")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or "epoch" not in rows[0]:
        raise TaxonbenchError(f"{path}: not a train log (no rows, or no 'epoch' column)")
    try:
        return {c: [float(r[c]) for r in rows] for c in rows[0]}
    except ValueError as exc:
        raise TaxonbenchError(f"{path}: a non-numeric value ({exc})") from None


def _column(log: dict, column: str, path) -> list[float]:
    if column not in log:
        raise TaxonbenchError(f"{path}: no column {column!r}: train that experiment with train.curve_splits "
                              "naming the split")
    return log[column]


def draw_training_curves(runs: Mapping[str, tuple[str, str | os.PathLike]], main: str, out: str | os.PathLike,
                         title: str) -> list[Path]:
    """``runs``: experiment -> (legend label, train log path); ``main`` the experiment of panels b-d."""
    logs = {e: read_log(path) for e, (_, path) in runs.items()}
    main_log, main_path = logs[main], runs[main][1]
    splits = [s for s in SPLITS if f"{s}_eval_loss" in main_log]
    if not splits:
        raise TaxonbenchError(f"{main_path}: no per-epoch split scores; train {main!r} with train.curve_splits")
    fig = Figure(figsize=(15.0, 4.4), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    drawn: list[tuple[str, float, str, float]] = []

    def line(ax, experiment: str, column: str, label: str) -> None:
        log = logs[experiment]
        values = _column(log, column, runs[experiment][1])
        ax.plot(log["epoch"], values, marker="o", markersize=3, label=label)
        drawn.extend((experiment, e, column, v) for e, v in zip(log["epoch"], values))

    for experiment, (label, _) in runs.items():
        line(axes[0], experiment, "val_micro_f1", label)
    line(axes[1], main, "train_loss", "train (running, augmented)")
    for split in splits:
        line(axes[1], main, f"{split}_eval_loss", f"{split} (eval mode)")
        line(axes[2], main, f"{split}_micro_f1", split)
        line(axes[3], main, f"{split}_macro_f1", split)
    for ax, (panel, ylabel) in zip(axes, (("(a) val micro-F1 per experiment", "micro-F1"),
                                          (f"(b) loss: {runs[main][0]}", "loss"),
                                          (f"(c) micro-F1: {runs[main][0]}", "micro-F1"),
                                          (f"(d) macro-F1: {runs[main][0]}", "macro-F1"))):
        ax.set_title(panel, fontsize=10)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return write_figure(fig, out, ("experiment", "epoch", "measure", "value"),
                        ({"experiment": e, "epoch": int(epoch), "measure": c, "value": f"{v:.6f}"}
                         for e, epoch, c, v in drawn))

__all__ = ["draw_training_curves", "read_log"]
