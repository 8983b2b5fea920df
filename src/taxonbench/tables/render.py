"""Build a paper table from metrics JSONs: CSV, LaTeX and a comparison with the paper.

For a :class:`~taxonbench.tables.spec.TableSpec` and its build parameters
(one dataset, or a mapping of the paper's datasets to ours, and the model of
parametrized tables), :func:`build_table` reads
``<metrics_root>/<dataset>/<method>/<inference>.json`` for every cell
(:meth:`TableSpec.cell_of` gives its address) and writes, atomically, into
``out_dir``:

* ``<table_id>.csv`` -- the paper's label column(s) and value columns, only
  the rows with at least one cell run, in the paper's order;
* ``<table_id>.tex`` -- the same table in LaTeX (booktabs rules), a caption
  naming the dataset(s) the numbers were computed on, and footnote lines
  listing the rows not run, the cells not run in rows shown, and any
  non-finite values;
* ``<table_id>_vs_paper.csv`` -- every paper row, with for each column
  ``<col> (ours)`` and ``<col> (paper)`` side by side (ours empty when not
  run), plus the dataset(s), method(s) and inference(s) ours came from
  (several are joined with ``"; "``) and the paper's dataset.

Values are printed by :func:`format_value`: ``f(table format, unit)``, where
the unit of a key is read from the JSON's ``"units"`` object (a key it does
not name is a ``fraction``; see :mod:`taxonbench.tables.spec` and
``docs/tables.md``). A cell with a ``spread`` key prints ``value ± spread``.

Non-finite values (NaN, +/-inf, or JSON ``null``) are never written silently:
the cell is left empty in every output, the LaTeX gets a footnote line naming
row and column, and a warning is logged. A ``fraction`` outside [0, 1], a
``count`` that is not a whole number, an unknown unit, a missing key, a
non-numeric value or a file that is not valid JSON is a
:class:`~taxonbench.errors.TaxonbenchError` naming the file and key. All
inputs of every table are read and checked before any file is written.
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
from fractions import Fraction
from pathlib import Path

from taxonbench.errors import TaxonbenchError
from taxonbench.io import write_text_atomic
from taxonbench.tables.spec import (
    DEFAULT_UNIT,
    PERCENT_2,
    TABLES,
    UNITS,
    Address,
    Difference,
    Entry,
    NumberFormat,
    TableSpec,
    get_table,
    load_reference,
)

log = logging.getLogger(__name__)

#: Tolerance when checking that a metric is a fraction in [0, 1] or a count is whole.
_FRACTION_TOL = 1e-9
#: The key of the units object in a metrics JSON (not a metric).
UNITS_KEY = "units"


# --------------------------------------------------------------------------- reading


def _check_name(what: str, name: object) -> str:
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in {".", ".."}:
        raise TaxonbenchError(f"invalid {what} name {name!r}: must be one path component")
    return name


def metrics_path(
    metrics_root: str | os.PathLike, dataset: str, method: str, inference: str
) -> Path:
    """``<metrics_root>/<dataset>/<method>/<inference>.json`` (docs/architecture.md, data flow)."""
    for what, name in (("dataset", dataset), ("method", method), ("inference", inference)):
        _check_name(what, name)
    return Path(metrics_root) / dataset / method / f"{inference}.json"


@dataclass(frozen=True)
class MetricsFile:
    """One metrics JSON: its flat values (the ``units`` object removed) and the units it declares."""

    path: Path
    data: Mapping[str, object]
    units: Mapping[str, str]

    @classmethod
    def read(cls, path: Path) -> MetricsFile:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise TaxonbenchError(f"{path}: not valid JSON ({e})") from None
        except UnicodeDecodeError as e:
            raise TaxonbenchError(f"{path}: not UTF-8 text ({e})") from None
        if not isinstance(data, dict):
            raise TaxonbenchError(f"{path}: expected a JSON object of metric name -> number")
        units = data.pop(UNITS_KEY, {})
        if not isinstance(units, dict):
            raise TaxonbenchError(
                f"{path}: {UNITS_KEY!r} is {units!r}, expected an object of metric name -> unit"
            )
        for key, unit in units.items():
            if unit not in UNITS:
                raise TaxonbenchError(
                    f"{path}: unit of {key!r} is {unit!r}; valid units: {', '.join(UNITS)}"
                )
        return cls(path, data, units)

    def unit(self, key: str) -> str:
        return self.units.get(key, DEFAULT_UNIT)

    def value(self, key: str) -> float:
        """The value of ``key``, checked against its unit (NaN/inf for non-finite values)."""
        if key not in self.data:
            raise TaxonbenchError(
                f"{self.path}: missing metric key {key!r}; keys present: {', '.join(sorted(self.data))}"
            )
        value = self.data[key]
        if value is None:
            return math.nan
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TaxonbenchError(f"{self.path}: metric {key!r} is {value!r}, expected a number")
        value = float(value)
        if not math.isfinite(value):
            return value
        unit = UNITS[self.unit(key)]
        if unit.bounds is not None:
            lo, hi = unit.bounds
            if not (lo - _FRACTION_TOL <= value <= hi + _FRACTION_TOL):
                raise TaxonbenchError(
                    f"{self.path}: metric {key!r} is {value}, expected a {unit.name} in "
                    f"[{lo:g}, {hi:g}] (declare another unit in {UNITS_KEY!r} if it is not one)"
                )
        if unit.integer and abs(value - round(value)) > _FRACTION_TOL:
            raise TaxonbenchError(
                f"{self.path}: metric {key!r} is {value}, expected a whole number (unit {unit.name!r})"
            )
        return value


def read_metrics(path: Path, keys: Sequence[str]) -> dict[str, float]:
    """The metrics ``keys`` of the metrics JSON at ``path``, each checked against its unit.

    JSON ``null``, ``NaN`` and ``Infinity`` come back as NaN/inf for the caller
    to footnote. The ``units`` object is not a metric.
    """
    f = MetricsFile.read(path)
    return {key: f.value(key) for key in keys}


def format_value(value: float, unit: str = DEFAULT_UNIT, fmt: NumberFormat = PERCENT_2) -> str:
    """``value`` (in ``unit``) as the table of format ``fmt`` prints it; empty if non-finite.

    Proportions: ``value * fmt.scale / unit.scale`` with ``fmt.decimals``
    (a fraction in a percent table x 100; a percent in a fraction table / 100);
    counts: a whole number; reals: ``value`` with ``fmt.real_decimals`` (default ``fmt.decimals``).
    """
    if not math.isfinite(value):
        return ""
    u = UNITS[unit]
    if u.integer:
        return str(int(round(value)))
    if u.scale is None:
        decimals = fmt.decimals if fmt.real_decimals is None else fmt.real_decimals
        return f"{value:.{decimals}f}"
    ratio = Fraction(fmt.scale, u.scale)
    value = value * ratio.numerator / ratio.denominator
    return f"{value:.{fmt.decimals}f}"


def format_percent(value: float) -> str:
    """A fraction as a percentage with two decimals; empty for non-finite values."""
    return format_value(value, DEFAULT_UNIT, PERCENT_2)


# --------------------------------------------------------------------------- build parameters


@dataclass(frozen=True)
class TableJob:
    """A table with its build parameters resolved (what :func:`resolve_table` checks).

    ``datasets`` maps each dataset key of the spec's cells (``None`` for cells
    that name none) to our dataset, or to ``None`` for a column that this run
    does not cover (a paper config of one of the table's datasets); ``model``
    is the model of cells no entry gives a method (``None`` for tables without
    such cells).
    """

    spec: TableSpec
    datasets: Mapping[str | None, str | None]
    model: str | None

    def experiment(self, address: Address) -> tuple[str | None, str, str]:
        """``(dataset, method, inference)`` of a cell; dataset None: a column not in this run."""
        method = address.method if address.method is not None else self.model
        assert method is not None  # resolve_table guarantees it
        return self.datasets[address.dataset], method, address.inference

    def row_experiments(self, row: Entry) -> list[tuple[str, str, str]]:
        """The distinct experiments a row's cells read, in column order."""
        return list(dict.fromkeys(
            self.experiment(self.spec.cell_of(row, c)) for c in self.spec.columns
        ))

    @property
    def our_datasets(self) -> list[str]:
        """Our datasets this table reads, in the order of the spec's dataset keys."""
        return list(dict.fromkeys(d for d in self.datasets.values() if d is not None))


def _model_for(spec: TableSpec, model_override: str | None) -> str | None:
    if model_override is not None and not spec.is_parametrized:
        raise TaxonbenchError(
            f"table {spec.id!r} has a fixed model per row; 'model' is not a parameter of it"
        )
    return model_override if model_override is not None else spec.default_model


def _dataset_map(
    spec: TableSpec, dataset: str | None, datasets: Mapping[str, str] | None
) -> dict[str | None, str]:
    """Check ``dataset`` / ``datasets`` against the spec's cells; the key -> dataset mapping."""
    where = f"table {spec.id!r}"
    keys = spec.dataset_keys
    out: dict[str | None, str] = {}
    if datasets is not None and isinstance(datasets, Mapping) and not datasets:
        datasets = None  # an empty mapping (a schema default) is no mapping
    if spec.uses_default_dataset:
        if not dataset:
            raise TaxonbenchError(f"{where}: missing 'dataset'")
        out[None] = _check_name(f"{where}: dataset", dataset)
    elif dataset:
        raise TaxonbenchError(
            f"{where}: its columns name their datasets ({', '.join(keys)}); "
            "give 'datasets' (paper dataset -> our dataset), not 'dataset'"
        )
    if keys:
        if datasets is None:
            raise TaxonbenchError(
                f"{where}: missing 'datasets': a mapping of the table's datasets "
                f"({', '.join(keys)}) to ours"
            )
        if not isinstance(datasets, Mapping):
            raise TaxonbenchError(f"{where}: 'datasets' must be a mapping, got {datasets!r}")
        missing = [k for k in keys if k not in datasets]
        if missing:
            raise TaxonbenchError(
                f"{where}: 'datasets' does not map {missing}; the table's datasets are {keys}"
            )
        for key in datasets:
            if key not in keys:
                raise TaxonbenchError(
                    f"{where}: 'datasets' key {key!r} is not a dataset of the table; "
                    f"its datasets are {keys}"
                )
        for key in keys:  # null: the column is not part of this run (its cells are left empty)
            out[key] = None if datasets[key] is None else _check_name(f"{where}: datasets.{key}:", datasets[key])
        if all(out[key] is None for key in keys):
            raise TaxonbenchError(f"{where}: 'datasets' maps every column to null; map at least one")
    elif datasets is not None:
        raise TaxonbenchError(
            f"{where}: 'datasets' given but the table's cells name no dataset; give 'dataset'"
        )
    return out


_TABLE_PARAMS = {"dataset", "datasets", "model"}


def resolve_table(table_id: str | TableSpec, params: Mapping[str, object]) -> TableJob:
    """Check one ``tables.<id>`` block of params (``dataset`` or ``datasets``, ``model``).

    Unknown id: error listing the valid ones; errors name the table and the key.
    """
    spec = get_table(table_id)
    if not isinstance(params, Mapping):
        raise TaxonbenchError(
            f"table {spec.id!r}: expected a mapping with 'dataset' or 'datasets' (and optionally 'model')"
        )
    unknown = sorted(set(params) - _TABLE_PARAMS)
    if unknown:
        raise TaxonbenchError(
            f"table {spec.id!r}: unknown parameter(s) {unknown}; expected {sorted(_TABLE_PARAMS)}"
        )
    datasets = _dataset_map(spec, params.get("dataset"), params.get("datasets"))  # type: ignore[arg-type]
    model = _model_for(spec, params.get("model"))  # type: ignore[arg-type]
    return TableJob(spec, datasets, model)


# --------------------------------------------------------------------------- collecting


@dataclass(frozen=True)
class CellResult:
    """One cell: where it comes from and our number (``value`` None when not run)."""

    address: Address
    dataset: str
    method: str
    inference: str
    path: Path
    value: float | None
    unit: str = DEFAULT_UNIT
    spread: float | None = None
    spread_unit: str = DEFAULT_UNIT

    @property
    def ran(self) -> bool:
        return self.value is not None

    @property
    def finite(self) -> bool:
        values = [self.value] if self.spread is None else [self.value, self.spread]
        return all(v is not None and math.isfinite(v) for v in values)

    def text(self, fmt: NumberFormat) -> str:
        """The cell as printed: empty when not run or not finite."""
        if not self.ran or not self.finite:
            return ""
        out = format_value(self.value, self.unit, fmt)  # type: ignore[arg-type]
        if self.address.spread is not None:
            out += " ± " + format_value(self.spread, self.spread_unit, fmt)  # type: ignore[arg-type]
        return out


@dataclass(frozen=True)
class RowResult:
    """One table row with our numbers, one :class:`CellResult` per column."""

    entry: Entry
    reference_key: str | tuple[str, ...]
    cells: tuple[CellResult, ...]

    @property
    def label(self) -> str:
        return self.entry.display

    @property
    def labels(self) -> tuple[str, ...]:
        return self.entry.labels

    @property
    def ran(self) -> bool:
        return any(c.ran for c in self.cells)

    def provenance(self, part: str) -> str:
        """The row's distinct ``dataset``/``method``/``inference`` values, joined by "; "."""
        return "; ".join(dict.fromkeys(getattr(c, part) for c in self.cells))


NOT_IN_RUN = "(not in this run)"
"""The dataset of a cell whose column ``tables.<id>.datasets`` maps to null."""


class _Reader:
    """Reads each metrics JSON once."""

    def __init__(self) -> None:
        self._files: dict[Path, MetricsFile] = {}

    def cell(self, job: TableJob, address: Address, metrics_root: str | os.PathLike) -> CellResult:
        dataset, method, inference = job.experiment(address)
        if dataset is None:  # a column this run does not cover
            return CellResult(address, NOT_IN_RUN, method, inference, Path(), None)
        path = metrics_path(metrics_root, dataset, method, inference)
        if not path.is_file():
            return CellResult(address, dataset, method, inference, path, None)
        if path not in self._files:
            self._files[path] = MetricsFile.read(path)
        f = self._files[path]
        value = f.value(address.metric)
        spread = f.value(address.spread) if address.spread is not None else None
        return CellResult(
            address, dataset, method, inference, path, value, f.unit(address.metric),
            spread, f.unit(address.spread) if address.spread is not None else DEFAULT_UNIT,
        )


def _row(job: TableJob, entry: Entry, metrics_root, reader: _Reader) -> RowResult:
    cells = tuple(
        reader.cell(job, job.spec.cell_of(entry, column), metrics_root)
        for column in job.spec.columns
    )
    return RowResult(entry, job.spec.reference_key(entry), cells)


def _difference_row(spec: TableSpec, difference: Difference, row: RowResult, baseline: RowResult) -> RowResult:
    """``row − baseline`` cell by cell (:class:`~taxonbench.tables.spec.Difference`)."""
    cells = []
    for a, b in zip(row.cells, baseline.cells):
        same = a.finite and b.finite and a.unit == b.unit and a.address.spread is None
        cells.append(CellResult(a.address, a.dataset, f"{a.method} − {b.method}", a.inference, a.path,
                                a.value - b.value if same else None, a.unit))  # type: ignore[operator]
    labels = (difference.label,) + ("",) * (len(spec.label_columns) - 1)
    return RowResult(Entry(labels if len(labels) > 1 else difference.label), difference.label, tuple(cells))


def collect_rows(
    job: TableJob, metrics_root: str | os.PathLike, reader: _Reader | None = None
) -> list[RowResult]:
    """Every row of the table in paper order (then ``extra_model_inference`` rows), metrics read."""
    reader = reader or _Reader()
    spec = job.spec
    results = [_row(job, entry, metrics_root, reader) for entry in spec.rows]
    by_label = {r.label: r for r in results}
    results += [_difference_row(spec, d, by_label[d.row], by_label[d.baseline]) for d in spec.differences]
    if spec.extra_model_inference:
        named = {c.method for r in results for c in r.cells}
        others: set[str] = set()
        for dataset in job.our_datasets:
            dataset_dir = Path(metrics_root) / dataset
            if dataset_dir.is_dir():
                others |= {p.name for p in dataset_dir.iterdir() if p.is_dir() and p.name not in named}
        for method in sorted(others):
            for inference in spec.extra_model_inference:
                entry = Entry(f"{method} {inference.replace('_', ' ')}", method, inference)
                if len(spec.label_columns) > 1:
                    entry = Entry((entry.display,) + ("",) * (len(spec.label_columns) - 1),
                                  method, inference)
                row = _row(job, entry, metrics_root, reader)
                if row.ran:
                    results.append(row)
    return results


def _column_label(spec: TableSpec, i: int) -> str:
    return spec.column_labels[i]


def non_finite_cells(spec: TableSpec, rows: Sequence[RowResult]) -> list[tuple[str, str]]:
    """``(row label, column label)`` of every non-finite value among the cells run."""
    return [
        (r.label, _column_label(spec, i))
        for r in rows
        for i, c in enumerate(r.cells)
        if c.ran and not c.finite
    ]


def missing_cells(spec: TableSpec, rows: Sequence[RowResult]) -> list[tuple[str, str]]:
    """``(row label, column label)`` of every cell not run in a row that is shown."""
    return [
        (r.label, _column_label(spec, i))
        for r in rows
        if r.ran
        for i, c in enumerate(r.cells)
        if not c.ran
    ]


# --------------------------------------------------------------------------- rendering


def _csv_text(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def render_csv(spec: TableSpec, rows: Sequence[RowResult]) -> str:
    """The table as CSV: label column(s) + value columns, only the rows run."""
    fmt = spec.number_format
    body = [[*r.labels, *(c.text(fmt) for c in r.cells)] for r in rows if r.ran]
    return _csv_text([*spec.label_columns, *spec.column_labels], body)


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


def _latex_cell(text: str) -> str:
    return latex_escape(text).replace(" ± ", r" $\pm$ ")


def _datasets_phrase(job: TableJob) -> tuple[str, str]:
    """(for the comment line, for the caption) naming the dataset(s) our numbers come from."""
    if list(job.datasets) == [None]:
        d = job.datasets[None]
        return f"dataset {d!r}", f"dataset {d}"
    ours = job.our_datasets
    comment = ("dataset " if len(ours) == 1 else "datasets ") + ", ".join(repr(d) for d in ours)
    caption = "datasets " + ", ".join(
        d if key is None else f"{d} (for {key})" for key, d in job.datasets.items() if d is not None
    )
    return comment, caption


def render_latex(job: TableJob, rows: Sequence[RowResult]) -> str:
    """The table in LaTeX (booktabs), with footnotes for rows/cells not run and non-finite values."""
    spec = job.spec
    fmt = spec.number_format
    comment, on = _datasets_phrase(job)
    caption = f"{spec.caption} ({spec.source}). Our numbers, computed on {on}"
    if spec.is_parametrized:
        caption += f", model {job.model}"
    if spec.paper_dataset:
        caption += f"; the paper's are on {spec.paper_dataset}"
    caption += "."
    n_labels = len(spec.label_columns)
    lines = [
        f"% Generated by taxonbench from the metrics of {comment}; do not edit.",
        f"% Source: {spec.source}. Requires \\usepackage{{booktabs}}.",
        *(f"% Note: {note}" for note in spec.notes),
        r"\begin{table}[t]",
        r"\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{tab:{spec.id}}}",
        f"\\begin{{tabular}}{{{'l' * n_labels}{'r' * len(spec.columns)}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in [*spec.label_columns, *spec.column_labels]) + r" \\",
        r"\midrule",
    ]
    for r in rows:
        if r.ran:
            cells = [*(latex_escape(x) for x in r.labels), *(_latex_cell(c.text(fmt)) for c in r.cells)]
            lines.append(" & ".join(cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    not_run = [r.label for r in rows if not r.ran]
    if not_run:
        text = "Not run: " + "; ".join(not_run) + "."
        lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(text)}}}")
    for title, cells in (
        ("Not run (left empty)", missing_cells(spec, rows)),
        ("Not finite (left empty)", non_finite_cells(spec, rows)),
    ):
        if cells:
            text = f"{title}: " + "; ".join(f"{lbl}: {col}" for lbl, col in cells) + "."
            lines.append(f"\\par\\smallskip{{\\footnotesize {latex_escape(text)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def render_vs_paper(job: TableJob, rows: Sequence[RowResult]) -> str:
    """Every row: our number and the paper's (verbatim; empty for rows beyond the paper) side by side."""
    spec = job.spec
    fmt = spec.number_format
    reference = load_reference(spec)
    header = [*spec.label_columns, "dataset", "method", "inference", "paper dataset"]
    for col in spec.column_labels:
        header += [f"{col} (ours)", f"{col} (paper)"]
    body = []
    for r in rows:
        paper_dataset = "; ".join(dict.fromkeys(
            c.address.dataset if c.address.dataset is not None else spec.paper_dataset
            for c in r.cells
        ))
        line = [*r.labels, r.provenance("dataset"), r.provenance("method"),
                r.provenance("inference"), paper_dataset]
        paper = reference.get(r.reference_key, {})  # rows beyond the paper: no paper number
        for cell, col in zip(r.cells, spec.column_labels, strict=True):
            line += [cell.text(fmt), paper.get(col, "")]
        body.append(line)
    return _csv_text(header, body)


# --------------------------------------------------------------------------- building


def _render(job: TableJob, rows: Sequence[RowResult]) -> dict[str, str]:
    spec = job.spec
    label = ", ".join(job.our_datasets)
    for row_label, col in non_finite_cells(spec, rows):
        log.warning(
            "table %s, dataset %s: %s / %s is not finite; left empty", spec.id, label, row_label, col
        )
    return {
        f"{spec.id}.csv": render_csv(spec, rows),
        f"{spec.id}.tex": render_latex(job, rows),
        f"{spec.id}_vs_paper.csv": render_vs_paper(job, rows),
    }


def _write(outputs: Mapping[str, str], out_dir: str | os.PathLike) -> list[Path]:
    out_dir = Path(out_dir)
    written = []
    for name, text in outputs.items():
        write_text_atomic(out_dir / name, text)
        written.append(out_dir / name)
    return written


def build_table(
    spec: TableSpec | str,
    dataset: str | None,
    metrics_root: str | os.PathLike,
    out_dir: str | os.PathLike,
    model_override: str | None = None,
    datasets: Mapping[str, str] | None = None,
) -> list[Path]:
    """Write ``<table_id>.csv``, ``.tex`` and ``_vs_paper.csv`` into ``out_dir``.

    ``spec`` is a spec or a table id (unknown id: error listing the valid
    ones). ``dataset`` is the dataset of cells that name none; ``datasets``
    maps the paper datasets the cells name to ours. ``model_override`` is the
    model of tables whose rows vary only the inference (e.g. ``hccf_table5``);
    giving it for any other table is an error. Returns the paths written, in
    that order.
    """
    params: dict[str, object] = {"model": model_override}
    if dataset is not None:
        params["dataset"] = dataset
    if datasets is not None:
        params["datasets"] = datasets
    job = resolve_table(spec, params)
    return _write(_render(job, collect_rows(job, metrics_root)), out_dir)


def build_tables(
    tables: Mapping[str, Mapping[str, object]],
    metrics_root: str | os.PathLike,
    out_dir: str | os.PathLike,
) -> list[Path]:
    """Build several tables: ``{table_id: {"dataset" | "datasets": ..., "model": optional}}``.

    Every id and its parameters are checked, and every table's metrics read
    and rendered, before anything is written. Returns all paths written.
    """
    jobs = [resolve_table(TABLES.get(table_id), params) for table_id, params in tables.items()]
    reader = _Reader()
    outputs = [_render(job, collect_rows(job, metrics_root, reader)) for job in jobs]
    written: list[Path] = []
    for out in outputs:
        written += _write(out, out_dir)
    return written
