"""Helpers shared by the dataset adapter tests."""

from __future__ import annotations

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
