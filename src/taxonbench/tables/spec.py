"""Table specs: which experiment fills each row and which metric each column.

A :class:`TableSpec` describes one results table of a source paper in data:
its rows (the paper's row labels, exactly as printed, each mapped to one
experiment ``<method>/<inference>``) and its columns (a metric key of the
metrics JSON, mapped to the paper's column header). The dataset is not part
of the spec: the same table can be rebuilt on any dataset the pipeline ran.

The paper's own numbers live in ``reference/<reference_csv>`` (verbatim
copies of ``shared/paper_tables``; see ``reference/README.md``) and are read
by :func:`load_reference`, always as the strings the paper printed.

Specs are registered by id in :data:`TABLES`; one module per paper registers
its tables (e.g. :mod:`taxonbench.tables.hccf`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

from taxonbench.errors import TaxonbenchError
from taxonbench.registry import Registry

#: Metric fractions are printed as percentages (paper convention).
PERCENT_SCALE = 100.0
#: Decimals printed for every percentage.
DECIMALS = 2


@dataclass(frozen=True)
class RowSpec:
    """One row of a paper table.

    ``label`` is the paper's row label exactly as in the reference CSV.
    ``method`` is the training-method registry name; ``None`` means "the model
    the table is built for" (tables whose rows vary only the inference, e.g.
    HCCF Table 5), taken from ``build_table(..., model_override=...)`` or the
    spec's ``default_model``. ``inference`` is the inference registry name.
    """

    label: str
    method: str | None
    inference: str

    def resolve(self, model: str | None) -> tuple[str, str]:
        """The experiment ``(method, inference)`` this row reports."""
        method = self.method if self.method is not None else model
        if method is None:
            raise TaxonbenchError(f"row {self.label!r} needs a model but none was given")
        return method, self.inference


@dataclass(frozen=True)
class TableSpec:
    """One results table of a paper: rows -> experiments, columns -> metrics.

    ``columns`` is a sequence of ``(metric_key, paper_column_label)``;
    ``rows`` a sequence of :class:`RowSpec` in the paper's order. Sequences are
    stored as tuples, so a spec is immutable. ``source`` names the table in its
    paper (e.g. "HCCF paper Table 1"); ``paper_dataset`` the dataset the
    paper's numbers were measured on; ``default_model`` the model used for
    rows with ``method=None`` when the build call names none.
    """

    id: str
    paper: str
    caption: str
    reference_csv: str
    label_column: str
    columns: Sequence[tuple[str, str]]
    rows: Sequence[RowSpec]
    source: str = ""
    paper_dataset: str = ""
    default_model: str | None = None
    notes: Sequence[str] = field(default_factory=tuple)
    #: beyond the paper's rows: for every other model with metrics on the dataset,
    #: one row per inference listed here (HCCF Table 6: "diffusion works with any model")
    extra_model_inference: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple((str(k), str(c)) for k, c in self.columns))
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "extra_model_inference", tuple(self.extra_model_inference))
        if not self.rows or not self.columns:
            raise ValueError(f"table spec {self.id!r} needs at least one row and one column")
        labels = [r.label for r in self.rows]
        if len(set(labels)) != len(labels):
            raise ValueError(f"table spec {self.id!r} has duplicate row labels")
        keys = [k for k, _ in self.columns]
        if len(set(keys)) != len(keys):
            raise ValueError(f"table spec {self.id!r} has duplicate metric keys")
        if self.is_parametrized and self.default_model is None:
            raise ValueError(
                f"table spec {self.id!r} has rows without a method but no default_model"
            )

    @property
    def is_parametrized(self) -> bool:
        """True when some rows take their model from the build call (``method=None``)."""
        return any(r.method is None for r in self.rows)

    @property
    def metric_keys(self) -> list[str]:
        return [k for k, _ in self.columns]

    @property
    def column_labels(self) -> list[str]:
        return [c for _, c in self.columns]


#: All table specs, by id (``hccf_table1``, ...).
TABLES: Registry[TableSpec] = Registry("table")


def register_table(spec: TableSpec) -> TableSpec:
    """Add ``spec`` to :data:`TABLES` under its id."""
    return TABLES.register(spec.id)(spec)


def get_table(table: str | TableSpec) -> TableSpec:
    """The spec for an id (error listing the valid ids if unknown), or ``table`` itself."""
    if isinstance(table, TableSpec):
        return table
    return TABLES.get(table)


def reference_text(spec: TableSpec) -> str:
    """The raw text of the spec's reference CSV (the paper's numbers)."""
    ref = resources.files("taxonbench.tables").joinpath("reference", spec.reference_csv)
    try:
        return ref.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaxonbenchError(
            f"table {spec.id!r}: reference CSV {spec.reference_csv!r} not found in "
            "taxonbench/tables/reference/"
        ) from None


def load_reference(spec: TableSpec) -> dict[str, dict[str, str]]:
    """The paper's numbers: row label -> {paper column label -> printed string}.

    Only the spec's columns are returned. A row label or column of the spec
    missing from the reference CSV is a :class:`TaxonbenchError` naming it, so
    specs and copied numbers cannot drift apart silently.
    """
    reader = csv.DictReader(io.StringIO(reference_text(spec)))
    header = reader.fieldnames or []
    needed = [spec.label_column, *spec.column_labels]
    missing = [c for c in needed if c not in header]
    if missing:
        raise TaxonbenchError(
            f"reference/{spec.reference_csv}: missing column(s) {missing} needed by table "
            f"{spec.id!r}; header is {header}"
        )
    by_label = {
        row[spec.label_column]: {c: row[c] for c in spec.column_labels} for row in reader
    }
    for r in spec.rows:
        if r.label not in by_label:
            raise TaxonbenchError(
                f"reference/{spec.reference_csv}: no row labelled {r.label!r} "
                f"(table {spec.id!r}); rows are {list(by_label)}"
            )
    return by_label
