"""A :class:`~taxonbench.leaderboard.board.Board` as CSV, Markdown, a static sortable HTML page and JSON.

* CSV: one row per experiment and inference (a merged row, :func:`~taxonbench.leaderboard.board.merge_identical`,
  once per inference), the row fields then one column per metric (its key),
  the values as computed (fractions in [0, 1]), blank where the family does not apply; a ``notes``
  column holds the footnote marks.
* Markdown and HTML: fractions as percentages (two decimals), other reals with three; the best value
  of each ranked column in bold; blank cells marked with their footnote.
* HTML: one self-contained file (no server, no network): clicking a column header sorts the rows by
  it (first click: the better end first; again: reversed), blanks always last.
* JSON (what ``dvc metrics`` reads): dataset -> experiment -> inference -> metric -> value.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math

from taxonbench.leaderboard.board import ROW_FIELDS, Board, Column, Row
from taxonbench.tables.render import format_value
from taxonbench.tables.spec import NumberFormat


#: how the Markdown and HTML boards print a value: proportions as percentages with two decimals (as the
#: papers' tables), other reals with three, counts whole (taxonbench.tables.format_value)
BOARD_FORMAT = NumberFormat("percent", 100, 2, real_decimals=3)


def cell_number(value: float, unit: str) -> str:
    """A board value as displayed; ``nan`` where the family computed no finite value (a blank cell is a
    family that does not apply)."""
    return format_value(value, unit, BOARD_FORMAT) if math.isfinite(value) else str(value)


def _header(c: Column) -> str:
    arrow = {"higher": " ↑", "lower": " ↓"}.get(c.better or "", "")
    return f"{c.label}{arrow}"


def to_csv(board: Board) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*ROW_FIELDS, *(c.metric for c in board.columns), "notes"])
    for r in board.rows:
        for inference in r.inferences:
            fields = {**r.entry, "inference": inference}
            writer.writerow([*(fields[f] for f in ROW_FIELDS),
                             *(repr(r.values[c.metric]) if c.metric in r.values else "" for c in board.columns),
                             " ".join(sorted(set(r.notes.values())))])
    return buf.getvalue()


def _field_text(board: Board, row: Row, name: str) -> str:
    """A row field as displayed: ``trained_on`` only where the model comes from another dataset; the
    inferences of a merged row joined by `` = ``."""
    value = " = ".join(row.inferences) if name == "inference" else str(row.entry[name])
    return "" if name == "trained_on" and value == board.dataset else value


def _cell_text(row: Row, c: Column, bests: dict[str, float | None]) -> tuple[str, bool]:
    """The displayed text of a cell and whether it is the column's best."""
    if c.metric in row.values:
        value = row.values[c.metric]
        return cell_number(value, row.units[c.metric]), bests[c.metric] is not None and value == bests[c.metric]
    mark = row.notes.get(c.group)
    return (f"–{mark}" if mark else "–"), False


def _legend(board: Board) -> list[str]:
    return ["Columns by metric family: " + "; ".join(f"{g}: {', '.join(c.label for c in cols)}"
                                                   for g, cols in board.groups) + ".",
            "Fractions in %; ↑ higher is better, ↓ lower is better; the best value of a column in bold."] + (
            ["Inferences joined by '=' give the same numbers for that model (shown once)."]
            if any(len(r.inferences) > 1 for r in board.rows) else [])


def to_markdown(board: Board) -> str:
    bests = {c.metric: board.best(c) for c in board.columns}
    lines = [f"# Leaderboard: {board.dataset}", "", f"{len(board.rows)} experiments (method × inference × "
             "backbone), sorted by the first ranked column.", "", *_legend(board), ""]
    head = [*ROW_FIELDS, *(_header(c) for c in board.columns)]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "|".join(["---"] * len(ROW_FIELDS) + ["---:"] * len(board.columns)) + "|")
    for r in board.rows:
        cells = [_field_text(board, r, f) for f in ROW_FIELDS]
        for c in board.columns:
            text, best = _cell_text(r, c, bests)
            cells.append(f"**{text}**" if best else text)
        lines.append("| " + " | ".join(cells) + " |")
    if board.footnotes:
        lines += ["", "Blank cells:", ""] + [f"- –{m}: {reason}" for m, reason in board.footnotes.items()]
    return "\n".join(lines) + "\n"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.blank { color: #999; text-align: center; }
td.best { font-weight: bold; background: #eef6ee; }
thead th.sortable { cursor: pointer; background: #f4f4f4; }
thead th.sortable:hover { background: #e4e4f4; }
thead th[aria-sort="ascending"]::after { content: " ▲"; }
thead th[aria-sort="descending"]::after { content: " ▼"; }
tbody tr:nth-child(even) { background: #fafafa; }
"""

# Sorting: each cell carries data-value (a number, or "" for a blank); blanks stay last either way.
_SCRIPT = """
document.querySelectorAll("th.sortable").forEach(function (th) {
  th.addEventListener("click", function () {
    var table = th.closest("table"), body = table.tBodies[0], col = Number(th.dataset.col);
    var numeric = th.dataset.numeric === "1";
    var first = th.dataset.better === "lower" || !numeric ? "ascending" : "descending";
    var dir = th.getAttribute("aria-sort") === first ? (first === "ascending" ? "descending" : "ascending") : first;
    table.querySelectorAll("th.sortable").forEach(function (o) { o.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir);
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.value, y = b.cells[col].dataset.value;
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      if (numeric) { return sign * (Number(x) - Number(y)); }
      return sign * x.localeCompare(y);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def to_html(board: Board) -> str:
    e = html.escape
    bests = {c.metric: board.best(c) for c in board.columns}
    n_fields = len(ROW_FIELDS)
    group_row = [f'<th colspan="{n_fields}"></th>'] + [
        f'<th colspan="{len(cols)}">{e(g)}</th>' for g, cols in board.groups]
    column_row = [f'<th class="sortable" data-col="{k}" data-numeric="0">{e(f)}</th>'
                  for k, f in enumerate(ROW_FIELDS)]
    for k, c in enumerate(board.columns, n_fields):
        column_row.append(f'<th class="sortable" data-col="{k}" data-numeric="1" data-metric="{e(c.metric)}" '
                          f'data-better="{c.better or ""}" title="{e(c.metric)}">{e(_header(c))}</th>')
    body = []
    for r in board.rows:
        cells = [f'<td data-value="{e(_field_text(board, r, f))}">{e(_field_text(board, r, f))}</td>'
                 for f in ROW_FIELDS]
        for c in board.columns:
            text, best = _cell_text(r, c, bests)
            if c.metric in r.values:
                cls = "num best" if best else "num"
                cells.append(f'<td class="{cls}" data-value="{r.values[c.metric]!r}">{e(text)}</td>')
            else:
                cells.append(f'<td class="blank" data-value="">{e(text)}</td>')
        body.append(f'<tr data-key="{e(r.key())}">' + "".join(cells) + "</tr>")
    notes = "".join(f"<li>–{e(m)}: {e(reason)}</li>" for m, reason in board.footnotes.items())
    legend = "".join(f"<p>{e(line)}</p>" for line in _legend(board))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>taxonbench leaderboard: {e(board.dataset)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>Leaderboard: {e(board.dataset)}</h1>\n"
        f"<p>{len(board.rows)} experiments (method × inference × backbone); click a column header to sort.</p>\n"
        f"{legend}\n<table id=\"leaderboard\">\n<thead>\n<tr>{''.join(group_row)}</tr>\n"
        f"<tr>{''.join(column_row)}</tr>\n</thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody>\n</table>\n"
        + (f"<p>Blank cells:</p>\n<ul>{notes}</ul>\n" if notes else "")
        + f"<script>{_SCRIPT}</script>\n</body>\n</html>\n"
    )


def to_json(boards: list[Board]) -> str:
    """dataset -> experiment -> inference -> metric -> value (values as computed; blanks left out)."""
    out: dict = {}
    for board in boards:
        for r in board.rows:
            for inference in r.inferences:
                out.setdefault(board.dataset, {}).setdefault(r.entry["experiment"], {})[inference] = dict(
                    sorted(r.values.items()))
    return json.dumps(out, indent=2, sort_keys=True) + "\n"


__all__ = ["BOARD_FORMAT", "cell_number", "to_csv", "to_html", "to_json", "to_markdown"]
