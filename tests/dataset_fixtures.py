"""Helpers shared by the dataset adapter tests."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

from taxonbench.shards import read_shard, split_files


def split_table(out: Path, split: str) -> dict[str, list]:
    """Every column of one prepared split, concatenated over its shards in order."""
    rows: dict[str, list] = defaultdict(list)
    for f in split_files(out, split):
        table = read_shard(f)
        for key in table.column_names:
            rows[key] += table.column(key).to_pylist()
    return rows


def write_csv(path: Path, rows: list[dict], columns) -> None:
    """``rows`` as a CSV file with a header of ``columns`` (parents made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
