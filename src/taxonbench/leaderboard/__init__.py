"""The leaderboard: every experiment of a run compared under one protocol, per dataset.

:func:`write_leaderboards` writes, for each dataset, ``<out>/<dataset>.csv``, ``.md``, ``.html`` (static,
sortable) and ``.png`` (:mod:`taxonbench.plots.leaderboard`), and all datasets' headline metrics as one
JSON file for ``dvc metrics diff`` (``results/metrics/leaderboard.json`` in the pipeline). Rows:
:mod:`taxonbench.leaderboard.entries`; columns and blanks: :mod:`taxonbench.leaderboard.board`;
formats: :mod:`taxonbench.leaderboard.render`.
"""

from __future__ import annotations

import os
from pathlib import Path

from taxonbench.io import write_text_atomic
from taxonbench.leaderboard.board import Board, build_board
from taxonbench.leaderboard.render import to_csv, to_html, to_json, to_markdown

#: the files written per dataset, by suffix
FORMATS = {".csv": to_csv, ".md": to_markdown, ".html": to_html}


def write_leaderboards(entries: dict[str, list[dict]], out_dir: str | os.PathLike, json_out: str | os.PathLike,
                       root: str | os.PathLike = ".") -> list[Path]:
    """Every dataset's board (``entries``: :func:`~taxonbench.leaderboard.entries.leaderboard_entries`);
    the paths written. Every metrics file is read before anything is written."""
    from taxonbench.plots.leaderboard import plot_board

    boards: list[Board] = [build_board(dataset, rows, root) for dataset, rows in entries.items()]
    out_dir = Path(out_dir)
    written = []
    for board in boards:
        for suffix, render in FORMATS.items():
            path = out_dir / f"{board.dataset}{suffix}"
            write_text_atomic(path, render(board))
            written.append(path)
        written.append(plot_board(board, out_dir / f"{board.dataset}.png"))
    write_text_atomic(json_out, to_json(boards))
    written.append(Path(json_out))
    return written


__all__ = ["FORMATS", "write_leaderboards"]
