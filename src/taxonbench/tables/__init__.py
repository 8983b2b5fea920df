"""Results tables of the source papers: specs, rendering, comparison with the paper.

A table spec (:mod:`taxonbench.tables.spec`) is data: rows x columns of
entries whose combination addresses each cell (dataset, experiment, metric
key, level), and a number format; :mod:`taxonbench.tables.render` reads the
metrics JSONs and writes CSV, LaTeX and a comparison with the paper
(``docs/tables.md``). Importing this package registers every table spec in
:data:`TABLES` (``hccf_table1`` ... ``hccf_table6``, from
:mod:`taxonbench.tables.hccf`).
"""

from taxonbench.tables import hccf as _hccf  # noqa: F401  (registers the HCCF specs)
from taxonbench.tables.render import TableJob, build_table, build_tables, format_value, resolve_table
from taxonbench.tables.spec import (
    FRACTION_4,
    PERCENT_2,
    TABLES,
    UNITS,
    Address,
    Entry,
    NumberFormat,
    RowSpec,
    TableSpec,
    get_table,
    levels,
    load_reference,
    metric_columns,
    product,
)

__all__ = [
    "FRACTION_4",
    "PERCENT_2",
    "TABLES",
    "UNITS",
    "Address",
    "Entry",
    "NumberFormat",
    "RowSpec",
    "TableJob",
    "TableSpec",
    "build_table",
    "build_tables",
    "format_value",
    "get_table",
    "levels",
    "load_reference",
    "metric_columns",
    "product",
    "resolve_table",
]
