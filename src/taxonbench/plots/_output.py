"""Writing a paper figure: the PNG and, beside it, the numbers it draws as CSV (both atomically)."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.figure import Figure

from taxonbench.io import atomic_path, write_text_atomic


def write_figure(fig: Figure, out: str | os.PathLike, columns: Sequence[str], rows: Iterable[dict]) -> list[Path]:
    """``fig`` as PNG at ``out``, ``rows`` (dicts keyed by ``columns``) as ``out`` with suffix ``.csv``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    table = out.with_suffix(".csv")
    write_text_atomic(table, buf.getvalue())
    return [out, table]


__all__ = ["write_figure"]
