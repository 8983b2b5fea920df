"""Operating-curve figures: correct vs. specificity (info recall), one line per experiment.

The curves are those of Valmadre (2022), "Hierarchical classification at
multiple operating points", which the HCCF paper's AP/AC/R@XC metrics are
read from. Input: curve CSVs ``results/curves/<dataset>/<method>/<inference>.csv``
with columns ``threshold,info_recall,info_precision,correct``. Output: one PNG,
drawn with the Agg backend on a private Figure (no pyplot global state) and
written atomically.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Mapping
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from taxonbench.errors import TaxonbenchError
from taxonbench.io import atomic_path

X_COLUMN = "info_recall"
Y_COLUMN = "correct"


def read_curve(path: str | os.PathLike) -> tuple[list[float], list[float]]:
    """``(info_recall, correct)`` of a curve CSV; errors name the file, row and column."""
    path = Path(path)
    if not path.is_file():
        raise TaxonbenchError(f"curve file not found: {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in (X_COLUMN, Y_COLUMN) if c not in (reader.fieldnames or [])]
        if missing:
            raise TaxonbenchError(
                f"{path}: missing column(s) {missing}; header is {reader.fieldnames}"
            )
        xs: list[float] = []
        ys: list[float] = []
        for line_no, row in enumerate(reader, start=2):
            try:
                x, y = float(row[X_COLUMN]), float(row[Y_COLUMN])
            except (TypeError, ValueError):
                raise TaxonbenchError(
                    f"{path}, line {line_no}: {X_COLUMN}={row[X_COLUMN]!r}, "
                    f"{Y_COLUMN}={row[Y_COLUMN]!r}; expected numbers"
                ) from None
            if not (math.isfinite(x) and math.isfinite(y)):
                raise TaxonbenchError(f"{path}, line {line_no}: non-finite value")
            xs.append(x)
            ys.append(y)
    if not xs:
        raise TaxonbenchError(f"{path}: no data rows")
    return xs, ys


def plot_operating_curves(
    curves: Mapping[str, str | os.PathLike], out_path: str | os.PathLike, title: str
) -> Path:
    """Plot correct vs. info recall for each ``label -> curve CSV``; write a PNG to ``out_path``.

    Every curve is read (and checked) before the figure is drawn, so a missing
    or malformed file leaves ``out_path`` untouched. Returns ``out_path``.
    """
    if not curves:
        raise TaxonbenchError("plot_operating_curves: no curves given")
    data = {label: read_curve(path) for label, path in curves.items()}

    fig = Figure(figsize=(6.0, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for label, (xs, ys) in data.items():
        ax.plot(xs, ys, label=label, linewidth=1.5)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_xlabel("specificity / info recall")
    ax.set_ylabel("correct")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower left", fontsize="small")
    fig.tight_layout()

    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png")
    return out_path
