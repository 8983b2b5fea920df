"""Table specs: what fills every cell of a paper's results table, written as data.

A :class:`TableSpec` is a grid, ``rows`` x ``columns``. Both are *axes*:
sequences of :class:`Entry`. An entry carries the label the paper prints for
that row or column, and part of the *address* of every cell in its row or
column:

=============  ==============================================================
``dataset``    the paper's dataset (a key such as ``"iNaturalist"``), mapped to
               one of our datasets when the table is built
               (``tables.<id>.datasets`` in params); ``None``: the table's one
               dataset (``tables.<id>.dataset``)
``method``     the experiment name (``results/metrics/<dataset>/<method>/``);
               ``None``: the table's model parameter (``tables.<id>.model``,
               else the spec's ``default_model``; HCCF Table 5)
``inference``  the inference registry name
``metric``     a metric key of the metrics JSON
``spread``     optional second key: the cell prints ``metric ± spread``
``level``      a taxonomy level (a template variable, see below)
``vars``       further template variables, e.g. ``{"d": 100}``
=============  ==============================================================

The address of a cell is ``row ⊕ column``: every field comes from whichever of
the two entries sets it (both setting it is an error in the spec). String
fields are then filled as :meth:`str.format` templates with the merged
variables, so ``metric="level{level}_micro_f1"`` on a column and ``level=3``
on a row address ``level3_micro_f1``, and ``method="cones_d{d}"`` with
``vars={"d": 100}`` addresses ``cones_d100``. :func:`product` builds an axis
whose entries combine several (several label columns per row: backbone x
fine-tuning regime); :func:`levels` and :func:`metric_columns` build common
axes. Plain ``(metric_key, label)`` pairs are accepted as column entries, and
:class:`RowSpec` ``(label, method, inference)`` is the same class as
:class:`Entry`, so the HCCF specs read as before.

Numbers: a metrics JSON may declare the *unit* of each value in a nested
``"units": {key: unit}`` object (:data:`UNITS`: ``fraction``, ``percent``,
``count``, ``real``; a key without a unit is a ``fraction``). The table's
:class:`NumberFormat` says how a unit is printed (``taxonbench.tables.render.format_value``):
``printed = value x format.scale / unit.scale`` for proportions (a fraction
in a percent table is x 100, a percent in a fraction table / 100), counts as
integers, reals as they are; all with the format's decimals. See
``docs/tables.md``.

The paper's own numbers live in ``reference/<reference_csv>`` (verbatim
transcriptions; see ``reference/README.md``), or in ``reference_data`` for a
spec built outside the package, and are read by :func:`load_reference`,
always as the strings the paper printed.

Specs are registered by id in :data:`TABLES`; one module per paper registers
its tables (e.g. :mod:`taxonbench.tables.hccf`).
"""

from __future__ import annotations

import csv
import io
import itertools
import string
from collections.abc import Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from functools import cached_property
from importlib import resources

from taxonbench.errors import TaxonbenchError
from taxonbench.registries import TABLES

# --------------------------------------------------------------------------- units and formats


@dataclass(frozen=True)
class Unit:
    """The unit of a metric value in a metrics JSON.

    ``scale``: how many of this unit make one (1 for a fraction, 100 for a
    percent); ``None`` for values that are not proportions (printed as they
    are). ``bounds``: the range a value must lie in (only fractions have one);
    ``integer``: the value must be a whole number (printed without decimals).
    """

    name: str
    scale: int | None = None
    bounds: tuple[float, float] | None = None
    integer: bool = False


#: The units a metrics JSON may declare in its ``units`` object.
UNITS: dict[str, Unit] = {
    u.name: u
    for u in (
        Unit("fraction", scale=1, bounds=(0.0, 1.0)),
        Unit("percent", scale=100),
        Unit("count", integer=True),
        Unit("real"),
    )
}
#: The unit of a key that the ``units`` object does not name (all metrics written so far).
DEFAULT_UNIT = "fraction"


@dataclass(frozen=True)
class NumberFormat:
    """How a table prints its numbers: proportions in ``scale`` (100: percent, 1: fraction).

    ``decimals`` applies to proportions and, unless ``real_decimals`` says otherwise, reals; counts print
    as integers.
    The paper's numbers in the reference CSV are printed in this format too
    (:meth:`paper_fraction` reads them back as fractions).
    """

    name: str
    scale: int
    decimals: int
    real_decimals: int | None = None

    def paper_fraction(self, text: str) -> float | None:
        """A number the paper printed in this format as a fraction; ``None`` if not a number."""
        try:
            value = float(text)
        except (TypeError, ValueError):
            return None
        return value / self.scale


#: HCCF: percentages with two decimals.
PERCENT_2 = NumberFormat("percent", 100, 2)
#: Dhall's thesis: fractions with four decimals.
FRACTION_4 = NumberFormat("fraction", 1, 4)

#: Kept for code written against the first, percent-only tables.
PERCENT_SCALE = float(PERCENT_2.scale)
DECIMALS = PERCENT_2.decimals


# --------------------------------------------------------------------------- entries and axes

#: The address fields an entry can set, in the order they are reported.
ADDRESS_FIELDS = ("dataset", "method", "inference", "metric", "spread", "level")


@dataclass(frozen=True)
class Entry:
    """One row or column of a table: its label and its part of the cell address.

    ``label`` is what the paper prints: a string, or for rows of a table with
    several label columns (``TableSpec.label_column`` a sequence) one string
    per label column. The address fields are described in the module
    docstring; ``None`` means "this entry does not set it". Positional
    ``(label, method, inference)`` is the row of an experiment table
    (:class:`RowSpec` is this class).
    """

    label: str | tuple[str, ...]
    method: str | None = None
    inference: str | None = None
    _: KW_ONLY
    dataset: str | None = None
    metric: str | None = None
    spread: str | None = None
    level: int | str | None = None
    vars: Mapping[str, int | str] | tuple[tuple[str, int | str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.label, str):
            object.__setattr__(self, "label", tuple(str(x) for x in self.label))
        pairs = self.vars.items() if isinstance(self.vars, Mapping) else self.vars
        object.__setattr__(self, "vars", tuple(sorted((str(k), v) for k, v in pairs)))

    @property
    def labels(self) -> tuple[str, ...]:
        """The label as a tuple, one string per label column."""
        return (self.label,) if isinstance(self.label, str) else self.label

    @property
    def display(self) -> str:
        """The label as one string (footnotes, figure legends)."""
        return " / ".join(self.labels)

    def template_vars(self) -> dict[str, int | str]:
        """The variables templates are filled with: ``vars`` plus ``level`` when set."""
        out = dict(self.vars)
        if self.level is not None:
            out["level"] = self.level
        return out

    def merge(self, other: Entry, label: str | tuple[str, ...] | None = None) -> Entry:
        """An entry setting every field that ``self`` or ``other`` sets; both setting one: ValueError."""
        fields = {}
        for name in ADDRESS_FIELDS:
            a, b = getattr(self, name), getattr(other, name)
            if a is not None and b is not None and a != b:
                raise ValueError(
                    f"entries {self.display!r} and {other.display!r} both set {name} "
                    f"({a!r} vs {b!r})"
                )
            fields[name] = a if a is not None else b
        mine, theirs = dict(self.vars), dict(other.vars)
        clash = sorted(k for k in set(mine) & set(theirs) if mine[k] != theirs[k])
        if clash:
            raise ValueError(
                f"entries {self.display!r} and {other.display!r} both set variable(s) {clash}"
            )
        return Entry(
            self.labels + other.labels if label is None else label,
            vars={**mine, **theirs},
            **fields,
        )

    def resolve(self, model: str | None) -> tuple[str, str]:
        """The experiment ``(method, inference)`` of this row on its own (rows of experiment tables)."""
        method = self.method if self.method is not None else model
        if method is None:
            raise TaxonbenchError(f"row {self.display!r} needs a model but none was given")
        if self.inference is None:
            raise TaxonbenchError(f"row {self.display!r} names no inference")
        return method, self.inference


#: A row of an experiment table, ``RowSpec(label, method, inference)``: the same class as :class:`Entry`.
RowSpec = Entry


def product(*axes: Sequence[Entry]) -> tuple[Entry, ...]:
    """Every combination of one entry per axis (first axis slowest); labels concatenated.

    E.g. ``product(backbones, regimes)`` for rows labelled by two columns.
    """
    out = []
    for combo in itertools.product(*axes):
        entry = combo[0]
        for other in combo[1:]:
            entry = entry.merge(other)
        out.append(entry)
    return tuple(out)


def levels(values: Sequence[int | str], label: str = "L{level}", **fields) -> tuple[Entry, ...]:
    """One entry per taxonomy level, labelled ``label.format(level=...)``; ``fields`` set on each."""
    return tuple(Entry(label.format(level=v), level=v, **fields) for v in values)


def metric_columns(pairs: Sequence[tuple[str, str]], **fields) -> tuple[Entry, ...]:
    """Column entries from ``(metric_key, paper_label)`` pairs; ``fields`` set on each."""
    return tuple(Entry(lbl, metric=key, **fields) for key, lbl in pairs)


@dataclass(frozen=True)
class Address:
    """Where one cell's number comes from; ``method=None``: the table's model parameter."""

    dataset: str | None
    method: str | None
    inference: str
    metric: str
    spread: str | None = None

    @property
    def keys(self) -> tuple[str, ...]:
        """The metric keys the cell reads (the value, then the spread if any)."""
        return (self.metric,) if self.spread is None else (self.metric, self.spread)


def _fill(template: str | None, variables: Mapping[str, int | str]) -> str | None:
    if template is None:
        return None
    names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    missing = sorted(n for n in names if n not in variables)
    if missing:
        raise KeyError(", ".join(missing))
    return template.format(**variables)


# --------------------------------------------------------------------------- specs


def _as_entry(item: Entry | tuple[str, str]) -> Entry:
    if isinstance(item, Entry):
        return item
    key, label = item
    return Entry(str(label), metric=str(key))


@dataclass(frozen=True)
class Difference:
    """A row after the table's rows: ``row − baseline``, column by column (``row``, ``baseline``: the labels of
    two of its rows), e.g. the improvement a paper claims over its baseline. A cell is empty unless both
    cells ran, are finite and share a unit."""

    label: str
    row: str
    baseline: str


@dataclass(frozen=True)
class TableSpec:
    """One results table of a paper: ``rows`` x ``columns`` of :class:`Entry`, a number format.

    ``label_column`` names the paper's row-label column(s): a string, or a
    sequence of strings for rows labelled by several columns (every row label
    then has that many parts). ``columns`` entries may be given as
    ``(metric_key, paper_column_label)`` pairs. Sequences are stored as
    tuples, so a spec is immutable. ``source`` names the table in its paper
    (e.g. "HCCF paper Table 1"); ``paper_dataset`` the dataset the paper's
    numbers were measured on (cells with a ``dataset`` key report that key
    instead); ``default_model`` the model of cells no entry gives a method;
    ``number_format`` how numbers print (default: percentages, 2 decimals);
    ``reference_data``: the paper's numbers as CSV text, read instead of
    ``reference/<reference_csv>`` (specs made outside the package, tests).
    """

    id: str
    paper: str
    caption: str
    reference_csv: str
    label_column: str | Sequence[str]
    columns: Sequence[Entry | tuple[str, str]]
    rows: Sequence[Entry]
    source: str = ""
    paper_dataset: str = ""
    default_model: str | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    #: beyond the paper's rows: for every other model with metrics on the dataset,
    #: one row per inference listed here (HCCF Table 6: "diffusion works with any model")
    extra_model_inference: Sequence[str] = field(default_factory=tuple)
    number_format: NumberFormat = PERCENT_2
    reference_data: str | None = None
    #: rows computed from two of the rows (:class:`Difference`), printed after them
    differences: Sequence[Difference] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.label_column, str):
            object.__setattr__(self, "label_column", tuple(str(c) for c in self.label_column))
        object.__setattr__(self, "columns", tuple(_as_entry(c) for c in self.columns))
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "extra_model_inference", tuple(self.extra_model_inference))
        object.__setattr__(self, "differences", tuple(self.differences))
        if not self.rows or not self.columns:
            raise ValueError(f"table spec {self.id!r} needs at least one row and one column")
        n_labels = len(self.label_columns)
        for r in self.rows:
            if len(r.labels) != n_labels:
                raise ValueError(
                    f"table spec {self.id!r}: row {r.display!r} has {len(r.labels)} label(s), "
                    f"the table has {n_labels} label column(s) {list(self.label_columns)}"
                )
        for c in self.columns:
            if not isinstance(c.label, str):
                raise ValueError(f"table spec {self.id!r}: column labels are strings, got {c.label!r}")
        labels = [r.display for r in self.rows] + [d.label for d in self.differences]
        if len(set(labels)) != len(labels):
            raise ValueError(f"table spec {self.id!r} has duplicate row labels")
        shown = {r.display for r in self.rows}
        for d in self.differences:
            for label in (d.row, d.baseline):
                if label not in shown:
                    raise ValueError(f"table spec {self.id!r}: difference {d.label!r} names no row {label!r}")
        columns = self.column_labels
        if len(set(columns)) != len(columns):
            raise ValueError(f"table spec {self.id!r} has duplicate column labels")
        for row in self.rows:
            for column in self.columns:
                self.cell_of(row, column)  # every cell must resolve
        if self.is_parametrized and self.default_model is None:
            raise ValueError(
                f"table spec {self.id!r} has rows without a method but no default_model"
            )

    def cell_of(self, row: Entry, column: Entry) -> Address:
        """The address of the cell at ``row`` x ``column`` (ValueError naming them if incomplete)."""
        where = f"table spec {self.id!r}, row {row.display!r}, column {column.display!r}"
        try:
            merged = row.merge(column)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        variables = merged.template_vars()
        filled = {}
        for name in ("dataset", "method", "inference", "metric", "spread"):
            value = getattr(merged, name)
            try:
                filled[name] = _fill(value, variables)
            except KeyError as e:
                raise ValueError(
                    f"{where}: {name} template {value!r} needs variable(s) {e.args[0]} "
                    "that neither entry sets"
                ) from None
        for name in ("inference", "metric"):
            if not filled[name]:
                raise ValueError(f"{where}: no entry sets the cell's {name}")
        return Address(**filled)

    @cached_property
    def cells(self) -> tuple[tuple[Address, ...], ...]:
        """The address of every cell, ``cells[row][column]``."""
        return tuple(tuple(self.cell_of(r, c) for c in self.columns) for r in self.rows)

    @property
    def label_columns(self) -> tuple[str, ...]:
        """The row-label column header(s), as a tuple."""
        return (self.label_column,) if isinstance(self.label_column, str) else self.label_column

    @property
    def is_parametrized(self) -> bool:
        """True when some cells take their model from the build call (no entry sets a method)."""
        return any(a.method is None for row in self.cells for a in row)

    @property
    def metric_keys(self) -> list[str]:
        """Every metric key the paper rows read, in first-use order (row by row)."""
        return list(dict.fromkeys(k for row in self.cells for a in row for k in a.keys))

    @property
    def column_labels(self) -> list[str]:
        return [c.label for c in self.columns]  # type: ignore[misc]

    @property
    def dataset_keys(self) -> list[str]:
        """The paper datasets the cells name (to be mapped by ``tables.<id>.datasets``)."""
        return list(dict.fromkeys(a.dataset for row in self.cells for a in row if a.dataset))

    @property
    def uses_default_dataset(self) -> bool:
        """True when some cells name no dataset (they use ``tables.<id>.dataset``)."""
        return any(a.dataset is None for row in self.cells for a in row)

    def reference_key(self, row: Entry) -> str | tuple[str, ...]:
        """The key of ``row`` in :func:`load_reference`: the label, a tuple for several label columns."""
        return row.labels[0] if len(self.label_columns) == 1 else row.labels


def register_table(spec: TableSpec) -> TableSpec:
    """Add ``spec`` to :data:`TABLES` under its id."""
    return TABLES.add(spec.id, spec)


def get_table(table: str | TableSpec) -> TableSpec:
    """The spec for an id (error listing the valid ids if unknown), or ``table`` itself."""
    if isinstance(table, TableSpec):
        return table
    return TABLES.get(table)


def reference_text(spec: TableSpec) -> str:
    """The raw text of the spec's reference CSV (the paper's numbers)."""
    if spec.reference_data is not None:
        return spec.reference_data
    ref = resources.files("taxonbench.tables").joinpath("reference", spec.reference_csv)
    try:
        return ref.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonbenchError(
            f"table {spec.id!r}: reference CSV {spec.reference_csv!r} not found in "
            "taxonbench/tables/reference/"
        ) from None


def load_reference(spec: TableSpec) -> dict[str | tuple[str, ...], dict[str, str]]:
    """The paper's numbers: row key -> {paper column label -> printed string}.

    The row key is the row label (:meth:`TableSpec.reference_key`: a tuple of
    the label columns' values when there are several). Only the spec's
    columns are returned. A label column, column or row of the spec missing
    from the reference CSV is a :class:`TaxonbenchError` naming it, so specs
    and copied numbers cannot drift apart silently.
    """
    reader = csv.DictReader(io.StringIO(reference_text(spec)))
    header = reader.fieldnames or []
    needed = [*spec.label_columns, *spec.column_labels]
    missing = [c for c in needed if c not in header]
    name = spec.reference_csv or "reference_data"
    if missing:
        raise TaxonbenchError(
            f"reference/{name}: missing column(s) {missing} needed by table "
            f"{spec.id!r}; header is {header}"
        )
    by_label: dict[str | tuple[str, ...], dict[str, str]] = {}
    for row in reader:
        labels = tuple(row[c] for c in spec.label_columns)
        key = labels[0] if len(labels) == 1 else labels
        by_label[key] = {c: row[c] for c in spec.column_labels}
    for r in spec.rows:
        if spec.reference_key(r) not in by_label:
            raise TaxonbenchError(
                f"reference/{name}: no row labelled {spec.reference_key(r)!r} "
                f"(table {spec.id!r}); rows are {list(by_label)}"
            )
    return by_label
