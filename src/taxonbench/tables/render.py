"""Build a paper table from metrics JSONs: CSV, LaTeX and a comparison with the paper.

For a :class:`~taxonbench.tables.spec.TableSpec` and a dataset,
:func:`build_table` reads ``<metrics_root>/<dataset>/<method>/<inference>.json``
for every row and writes, atomically, into ``out_dir``:

* ``<table_id>.csv`` -- the paper's label column and metric columns, metric
  fractions printed as percentages with two decimals (paper convention), only
  the rows whose metrics JSON exists, in the paper's order;
* ``<table_id>.tex`` -- the same table in LaTeX (booktabs rules), a caption
  naming the dataset the numbers were computed on, and footnote lines listing
  the rows not run (and any non-finite values);
* ``<table_id>_vs_paper.csv`` -- every paper row, with for each metric
  ``<col> (ours)`` and ``<col> (paper)`` side by side (ours empty when not
  run), plus the dataset and experiment ours came from.

Non-finite values (NaN, +/-inf, or JSON ``null``) are never written silently:
the cell is left empty in every output, the LaTeX gets a footnote line naming
row and column, and a warning is logged. A finite value outside [0, 1], a
missing key, a non-numeric value or a file that is not valid JSON is a
:class:`~taxonbench.errors.TaxonbenchError` naming the file and key. All
inputs are read and checked before any file is written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taxonbench.errors import TaxonbenchError
from taxonbench.io import write_text_atomic
from taxonbench.tables.spec import (
    DECIMALS,
    PERCENT_SCALE,
    TABLES,
    TableSpec,
    get_table,
    load_reference,
)

log = logging.getLogger(__name__)

#: Tolerance when checking that a metric is a fraction in [0, 1].
_FRACTION_TOL = 1e-9


# --------------------------------------------------------------------------- reading


def metrics_path(
    metrics_root: str | os.PathLike, dataset: str, method: str, inference: str
) -> Path:
    """``<metrics_root>/<dataset>/<method>/<inference>.json`` (DESIGN.md §1)."""
    for what, name in (("dataset", dataset), ("method", method), ("inference", inference)):
        if not name or "/" in name or "\\" in name or name in {".", ".."}:
            raise TaxonbenchError(f"invalid {what} name {name!r}: must be one path component")
    return Path(metrics_root) / dataset / method / f"{inference}.json"


def read_metrics(path: Path, keys: Sequence[str]) -> dict[str, float]:
    """The metrics ``keys`` of the metrics JSON at ``path`` (fractions; NaN if non-finite).

    JSON ``null``, ``NaN`` and ``Infinity`` come back as NaN/inf for the caller
    to footnote. Anything else that is not a number in [0, 1] is an error.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise TaxonbenchError(f"{path}: not valid JSON ({e})") from None
    except UnicodeDecodeError as e:
        raise TaxonbenchError(f"{path}: not UTF-8 text ({e})") from None
    if not isinstance(data, dict):
        raise TaxonbenchError(f"{path}: expected a JSON object of metric name -> number")
    out: dict[str, float] = {}
    for key in keys:
        if key not in data:
            raise TaxonbenchError(
                f"{path}: missing metric key {key!r}; keys present: {', '.join(sorted(data))}"
            )
        value = data[key]
        if value is None:
            out[key] = math.nan
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TaxonbenchError(f"{path}: metric {key!r} is {value!r}, expected a number")
        value = float(value)
        if math.isfinite(value) and not (-_FRACTION_TOL <= value <= 1 + _FRACTION_TOL):
            raise TaxonbenchError(
                f"{path}: metric {key!r} is {value}, expected a fraction in [0, 1]"
            )
        out[key] = value
    return out


def format_percent(value: float) -> str:
    """A fraction as a percentage with two decimals; empty for non-finite values."""
    if not math.isfinite(value):
        return ""
    return f"{value * PERCENT_SCALE:.{DECIMALS}f}"


# --------------------------------------------------------------------------- collecting


@dataclass(frozen=True)
class RowResult:
    """One paper row with our numbers (``None`` when its experiment was not run)."""

    label: str
    method: str
    inference: str
    path: Path
    values: dict[str, float] | None

    @property
    def ran(self) -> bool:
        return self.values is not None

    def cells(self, keys: Sequence[str]) -> list[str]:
        if self.values is None:
            return ["" for _ in keys]
        return [format_percent(self.values[k]) for k in keys]


def _model_for(spec: TableSpec, model_override: str | None) -> str | None:
    if model_override is not None and not spec.is_parametrized:
        raise TaxonbenchError(
            f"table {spec.id!r} has a fixed model per row; 'model' is not a parameter of it"
        )
    return model_override if model_override is not None else spec.default_model


def collect_rows(
    spec: TableSpec, dataset: str, metrics_root: str | os.PathLike, model: str | None
) -> list[RowResult]:
    """Every row of ``spec`` in paper order, with the metrics read if its JSON exists."""
    results = []
    for row in spec.rows:
        method, inference = row.resolve(model)
        path = metrics_path(metrics_root, dataset, method, inference)
        values = read_metrics(path, spec.metric_keys) if path.is_file() else None
        results.append(RowResult(row.label, method, inference, path, values))
    if spec.extra_model_inference:
        named = {r.method for r in results}
        dataset_dir = Path(metrics_root) / dataset
        others = sorted(p.name for p in dataset_dir.iterdir() if p.is_dir() and p.name not in named) \
            if dataset_dir.is_dir() else []
        for method in others:
            for inference in spec.extra_model_inference:
                path = metrics_path(metrics_root, dataset, method, inference)
                if path.is_file():
                    results.append(RowResult(f"{method} {inference.replace('_', ' ')}", method, inference, path,
                                             read_metrics(path, spec.metric_keys)))
    return results


def non_finite_cells(spec: TableSpec, rows: Sequence[RowResult]) -> list[tuple[str, str]]:
    """``(row label, column label)`` of every non-finite value among the rows run."""
    return [
        (r.label, col)
        for r in rows
        if r.values is not None
        for key, col in spec.columns
        if not math.isfinite(r.values[key])
    ]


# --------------------------------------------------------------------------- rendering


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_csv(spec: TableSpec, rows: Sequence[RowResult]) -> str:
    """The table as CSV: label column + metric columns, only the rows run."""
    body = [[r.label, *r.cells(spec.metric_keys)] for r in rows if r.ran]
    return _csv_text([spec.label_column, *spec.column_labels], body)


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    """``text`` with LaTeX's special characters escaped."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def render_latex(
    spec: TableSpec, rows: Sequence[RowResult], dataset: str, model: str | None
) -> str:
    """The table in LaTeX (booktabs), with footnotes for rows not run and non-finite values."""
    caption = f"{spec.caption} ({spec.source}). Our numbers, computed on dataset {dataset}"
    if spec.is_parametrized:
        caption += f", model {model}"
    if spec.paper_dataset:
        caption += f"; the paper's are on {spec.paper_dataset}"
    caption += "."
    lines = [
        f"% Generated by taxonbench from the metrics of dataset {dataset!r}; do not edit.",
        f"% Source: {spec.source}. Requires \\usepackage{{booktabs}}.",
        *(f"% Note: {note}" for note in spec.notes),
        r"\begin{table}[t]",
        r"\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{tab:{spec.id}}}",
        f"\\begin{{tabular}}{{l{'r' * len(spec.columns)}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in [spec.label_column, *spec.column_labels]) + r" \\",
        r"\midrule",
    ]
    for r in rows:
        if r.ran:
            cells = [latex_escape(r.label), *r.cells(spec.metric_keys)]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    not_run = [r.label for r in rows if not r.ran]
    if not_run:
        text = "Not run: " + "; ".join(not_run) + "."
        lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(text)}}}")
    bad = non_finite_cells(spec, rows)
    if bad:
        text = "Not finite (left empty): " + "; ".join(f"{lbl}: {col}" for lbl, col in bad) + "."
        lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(text)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_vs_paper(spec: TableSpec, rows: Sequence[RowResult], dataset: str) -> str:
    """Every row: our number and the paper's (verbatim; empty for rows beyond the paper) side by side."""
    reference = load_reference(spec)
    header = [spec.label_column, "dataset", "method", "inference", "paper dataset"]
    for col in spec.column_labels:
        header += [f"{col} (ours)", f"{col} (paper)"]
    body = []
    for r in rows:
        line = [r.label, dataset, r.method, r.inference, spec.paper_dataset]
        for ours, col in zip(r.cells(spec.metric_keys), spec.column_labels, strict=True):
            line += [ours, reference.get(r.label, {}).get(col, "")]  # rows beyond the paper: no paper number
        body.append(line)
    return _csv_text(header, body)


# --------------------------------------------------------------------------- building


def build_table(
    spec: TableSpec | str,
    dataset: str,
    metrics_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_override: str | None = None,
) -> list[Path]:
    """Write ``<table_id>.csv``, ``.tex`` and ``_vs_paper.csv`` into ``out_dir``.

    ``spec`` is a spec or a table id (unknown id: error listing the valid
    ones). ``model_override`` is the model of tables whose rows vary only the
    inference (e.g. ``hccf_table5``); giving it for any other table is an
    error. Returns the paths written, in that order.
    """
    spec = get_table(spec)
    model = _model_for(spec, model_override)
    rows = collect_rows(spec, dataset, metrics_root, model)
    for label, col in non_finite_cells(spec, rows):
        log.warning(
            "table %s, dataset %s: %s / %s is not finite; left empty", spec.id, dataset, label, col
        )
    outputs = {
        f"{spec.id}.csv": render_csv(spec, rows),
        f"{spec.id}.tex": render_latex(spec, rows, dataset, model),
        f"{spec.id}_vs_paper.csv": render_vs_paper(spec, rows, dataset),
    }
    out_dir = Path(out_dir)
    written = []
    for name, text in outputs.items():
        write_text_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written


_TABLE_PARAMS = {"dataset", "model"}


def build_tables(
    tables: Mapping[str, Mapping[str, str | None]],
    metrics_root: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> list[Path]:
    """Build several tables: ``{table_id: {"dataset": ..., "model": optional}}``.

    Every id and its parameters are checked before anything is written.
    Returns all paths written.
    """
    jobs = []
    for table_id, params in tables.items():
        spec = TABLES.get(table_id)
        if not isinstance(params, Mapping):
            raise TaxonbenchError(
                f"table {table_id!r}: expected a mapping with 'dataset' (and optionally 'model')"
            )
        unknown = sorted(set(params) - _TABLE_PARAMS)
        if unknown:
            raise TaxonbenchError(
                f"table {table_id!r}: unknown parameter(s) {unknown}; "
                f"expected {sorted(_TABLE_PARAMS)}"
            )
        dataset = params.get("dataset")
        if not dataset:
            raise TaxonbenchError(f"table {table_id!r}: missing 'dataset'")
        model = params.get("model")
        _model_for(spec, model)
        jobs.append((spec, dataset, model))
    written: list[Path] = []
    for spec, dataset, model in jobs:
        written += build_table(spec, dataset, metrics_root, out_dir, model_override=model)
    return written
