"""One dataset's leaderboard: every experiment of the run under one protocol, columns grouped by metric family.

The groups and their columns are the metric families' own :class:`~taxonbench.metrics.Headline`
declarations (operating curve, top-k, mistake severity, set-based, representation, zero-shot /
consistency) and the label graph's, in :data:`GROUP_ORDER`. A cell is blank where its family does not
apply to the row, and a footnote says why: the family reads another kind of scores than the row's
inference produces (set predictions have no operating curve, embeddings no mistake severity), or the
row's metrics do not hold the value. One footnote per reason, marked a, b, ... Groups and columns no
row fills are left out.

Rows of one model whose inferences give the same numbers in every column (the native scores of leaf logits
are their bottom-up sums, so ``native`` and ``bottom_up`` agree) are shown once, the inferences named
together (``native = bottom_up``); the CSV and JSON still list each inference.

Rows are sorted by the first ranked column (the better end first, blanks last, then by experiment and
inference name), so the order is a function of the numbers alone.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from pathlib import Path

from taxonbench.errors import TaxonbenchError
from taxonbench.io import read_json
from taxonbench.label_graph.edge_metrics import HEADLINE as LABEL_GRAPH_HEADLINE
from taxonbench.leaderboard.entries import LABEL_GRAPH
from taxonbench.metrics import Headline, unit_of
from taxonbench.registries import METRIC_FAMILIES

#: the groups' order on the board; a family declaring another group goes after these
GROUP_ORDER = ("operating curve", "top-k", "mistake severity", "set-based", "representation",
               "zero-shot / consistency", "label graph")
#: what each kind of scores is called in a footnote
KIND_NAMES = {"node_prob": "node scores", "node_set": "set predictions", "embeddings": "embeddings",
              LABEL_GRAPH: "label-graph edge decisions"}
#: the row fields before the metric columns
ROW_FIELDS = ("experiment", "method", "inference", "backbone", "trained_on")


@dataclass(frozen=True)
class Column:
    metric: str
    label: str
    group: str
    reads: str  # the score kind its family evaluates
    better: str | None  # "higher", "lower" or None (unranked)


@dataclass
class Row:
    entry: dict
    values: dict[str, float] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # group -> footnote mark
    inferences: list[str] = field(default_factory=list)  # every inference the row stands for (same numbers)

    def __post_init__(self) -> None:
        self.inferences = self.inferences or [self.entry["inference"]]

    def key(self) -> str:
        return f"{self.entry['experiment']}/{'+'.join(self.inferences)}"


@dataclass
class Board:
    dataset: str
    columns: list[Column]
    rows: list[Row]
    footnotes: dict[str, str]  # mark -> reason

    @property
    def groups(self) -> list[tuple[str, list[Column]]]:
        out: dict[str, list[Column]] = {}
        for c in self.columns:
            out.setdefault(c.group, []).append(c)
        return list(out.items())

    def best(self, column: Column) -> float | None:
        """The best value of a ranked column (``None`` for unranked or empty columns)."""
        values = [r.values[column.metric] for r in self.rows if column.metric in r.values]
        if column.better is None or not values:
            return None
        return max(values) if column.better == "higher" else min(values)


def all_columns() -> list[Column]:
    """Every declared leaderboard column, in :data:`GROUP_ORDER` and then declaration order."""
    headlines: list[tuple[Headline, str]] = [(cls.headline, cls.reads) for _, cls in METRIC_FAMILIES.items()]
    headlines.append((LABEL_GRAPH_HEADLINE, LABEL_GRAPH))
    rank = {g: k for k, g in enumerate(GROUP_ORDER)}
    headlines.sort(key=lambda h: rank.get(h[0].group, len(rank)))
    return [Column(metric, label, h.group, reads, h.better(metric))
            for h, reads in headlines for metric, label in h.columns.items()]


def read_metrics(path: str | Path) -> dict:
    return read_json(path, "leaderboard: missing metrics file {path} (run `snakemake {path}` to make it)",
                     "leaderboard: {path} is not valid JSON ({exc}); delete it and run `snakemake {path}` to remake it")


def _reason(column: Column, entry: dict) -> str:
    if column.reads != entry["kind"]:
        return (f"the row's inference gives {KIND_NAMES.get(entry['kind'], entry['kind'])}, which these "
                "columns' metrics do not read")
    return "not in the row's metrics file"


def merge_identical(rows: list[Row]) -> list[Row]:
    """One row per model and set of numbers: a row whose experiment, backbone, training dataset, score kind
    and every value (NaN equal to NaN) match an earlier row's is folded into it (module docstring)."""
    out: dict[tuple, Row] = {}
    for row in rows:
        e = row.entry
        values = tuple(sorted((k, "nan" if math.isnan(v) else v) for k, v in row.values.items()))
        key = (e["experiment"], e["backbone"], e["trained_on"], e["kind"], values)
        if key in out:
            out[key].inferences.append(e["inference"])
        else:
            out[key] = row
    return list(out.values())


def _sort_key(row: Row, column: Column | None) -> tuple:
    names = (row.entry["experiment"], row.entry["inference"])
    if column is None:
        return (0, 0.0, *names)
    value = row.values.get(column.metric)
    if value is None or math.isnan(value):
        return (1, 0.0, *names)
    return (0, -value if column.better == "higher" else value, *names)


def build_board(dataset: str, entries: list[dict], root: str | Path = ".") -> Board:
    """The board of ``dataset`` from its :func:`~taxonbench.leaderboard.entries.leaderboard_entries` rows;
    metrics paths are relative to ``root``."""
    if not entries:
        raise TaxonbenchError(f"leaderboard: no experiment ran on dataset {dataset!r}")
    columns = all_columns()
    rows = []
    for entry in entries:
        metrics = read_metrics(Path(root) / entry["metrics"])
        units = metrics.get("units", {})
        row = Row(entry)
        for c in columns:
            value = metrics.get(c.metric)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                row.values[c.metric] = float(value)
                row.units[c.metric] = unit_of(c.metric, units) or "fraction"
        rows.append(row)
    rows = merge_identical(rows)
    board = Board(dataset, [c for c in columns if any(c.metric in r.values for r in rows)], rows, {})
    marks: dict[str, str] = {}  # reason -> mark
    for row in rows:
        for group, group_columns in board.groups:
            if not any(c.metric in row.values for c in group_columns):
                reason = _reason(group_columns[0], row.entry)
                if reason not in marks:
                    marks[reason] = string.ascii_lowercase[len(marks) % 26] * (1 + len(marks) // 26)
                row.notes[group] = marks[reason]
    board.footnotes = {mark: reason for reason, mark in marks.items()}
    first_ranked = next((c for c in board.columns if c.better is not None), None)
    rows.sort(key=lambda r: _sort_key(r, first_ranked))
    return board


__all__ = ["GROUP_ORDER", "KIND_NAMES", "ROW_FIELDS", "Board", "Column", "Row", "all_columns", "build_board",
           "merge_identical", "read_metrics"]
